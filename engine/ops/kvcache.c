/* The kernels of the KV-cache path (kvcache.h): decode attention, cache append, RoPE and learned
 * positions at per-row positions read from a buffer, and the GPU argmax
 * (shaders/attention_decode_{f32,f16}[_split][_sg].comp, attention_merge_f32.comp,
 * attention_prefill_{f32,f16}[_cpu].comp, kv_store_{f32,f16}.comp, rope_cached_f32.comp,
 * pos_add_f32.comp, argmax_f32.comp), with their C references. */
#include "kvcache.h"

#include <math.h>
#include <stdlib.h>

#include "attention_tiles.h"
#include "matmul.h"
#include "op_util.h"

typedef struct attn_push {
  uint32_t n, NH, NKV, HS, QS;
  float scale;
  uint32_t maxT;
} attn_push;
_Static_assert(sizeof(attn_push) == 28, "attention_decode_one.glsl push constants");

typedef struct store_push {
  uint32_t total, NH, NKV, HS, maxT, S;
} store_push;
_Static_assert(sizeof(store_push) == 24, "kv_store.glsl push constants");

typedef struct rows_push {
  uint32_t total, NH, NKV, HS, maxT;
} rows_push;
_Static_assert(sizeof(rows_push) == 20, "rope_cached_f32.comp push constants");

typedef struct pos_push {
  uint32_t total, C, maxT;
} pos_push;
_Static_assert(sizeof(pos_push) == 12, "pos_add_f32.comp push constants");

typedef struct split_push {
  uint32_t n, NH, NKV, HS, QS;
  float scale;
  uint32_t maxT, S;
} split_push;
_Static_assert(sizeof(split_push) == 32, "attention_decode_split.glsl push constants");

typedef struct prefill_push {
  uint32_t n, NH, NKV, QS;
  float scale;
  uint32_t maxT, S;
} prefill_push;
_Static_assert(sizeof(prefill_push) == 28, "attention_prefill.glsl push constants");

typedef struct merge_push {
  uint32_t total, HS, S;
} merge_push;
_Static_assert(sizeof(merge_push) == 12, "attention_merge_f32.comp push constants");

uint64_t vklm_attention_decode_scratch_bytes(uint32_t n, uint32_t NH, uint32_t HS,
                                             uint32_t splits) {
  return splits > 1 ? (uint64_t)n * NH * splits * (HS + 2) * 4 : 0;
}

static void check_cache(const char *op, vklm_buffer kc, vklm_buffer vc, vklm_dtype dt,
                        uint32_t S, uint32_t maxT, uint32_t NKV, uint32_t HS) {
  VKLM_ASSERT(dt == VKLM_DTYPE_F32 || dt == VKLM_DTYPE_F16, "%s: a KV cache in %s", op,
              vklm_dtype_name(dt));
  uint64_t elems = (uint64_t)S * maxT * NKV * HS;
  VKLM_ASSERT(elems < (1ull << 32), "%s: a cache of %llu elements past 2^32", op,
              (unsigned long long)elems);
  uint64_t bytes = vklm_dtype_bytes(dt, 1, (uint32_t)elems);
  VKLM_ASSERT(kc.block && vc.block && kc.size >= bytes && vc.size >= bytes,
              "%s: cache buffers smaller than (%u*%u, %u, %u) %s", op, S, maxT, NKV, HS,
              vklm_dtype_name(dt));
}

/* The decode kernels' workgroup size and G, the query heads of one KV head that a workgroup
 * serves (each cached key and value then read once for G heads, not G times): the largest
 * divisor of the group NH/NKV up to 8 whose shared memory, G * (256 + 2 * WG) floats, fits. */
static void decode_geometry(vklm_context *ctx, uint32_t NH, uint32_t NKV, uint32_t *wg,
                            uint32_t *G) {
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint32_t grp = NH / NKV;
  *wg = vklm_op_wg_fit(ctx, 128, 8); /* at G = 1: ps + red 8 bytes a thread, the 1 KiB query */
  *G = 1;
  for (uint32_t g = grp < 8 ? grp : 8; g > 1; g--)
    if (grp % g == 0 && (uint64_t)g * (256 + 2 * *wg) * 4 <= caps->max_shared_memory) {
      *G = g;
      break;
    }
}

/* The tiled kernel (attention_prefill.glsl): GH query heads of one KV head per workgroup (the
 * largest power of two up to 8 dividing NH/NKV, and no more than the tile's rows), BQ/GH query
 * rows; tiles from vklm_attn_choose with the shared memory of sQ, sK, sV, sS and two uints. */
static uint32_t group_heads(uint32_t NH, uint32_t NKV) {
  uint32_t grp = NH / NKV, gh = 1;
  while (gh < 8 && grp % (2 * gh) == 0) gh *= 2;
  return gh;
}

static vklm_attn_tiles prefill_geometry(const vklm_context *ctx, uint32_t n, uint32_t NH,
                                        uint32_t NKV, uint32_t HS, uint32_t *gh) {
  *gh = group_heads(NH, NKV);
  vklm_attn_tiles t = vklm_attn_choose(ctx, n * *gh, HS, 4, 1, 2, 1, 2);
  if (*gh > t.br) *gh = t.br;
  return t;
}

/* Loop iterations of one invocation of the tiled kernel over caches of maxT rows, counting every
 * loop as if none were unrolled (pessimistic): per pass over a slot (at most min(BQ/GH, S)
 * passes, each up to maxT keys) the tiles' load, dot-product, softmax and accumulation loops. */
static uint64_t prefill_loops(vklm_attn_tiles t, uint32_t gh, uint32_t HS, uint32_t maxT,
                              uint32_t S) {
  uint64_t tpr = t.nt / (t.br / t.rm), kpt = (t.bc + tpr - 1) / tpr, dpt = (HS + tpr - 1) / tpr;
  uint64_t tile = (uint64_t)HS * (kpt + 1) + (uint64_t)t.bc * (t.rm + dpt + 2) +
                  (uint64_t)t.bc * HS / t.nt + 16;
  uint64_t rq = t.br / gh, passes = rq < S ? rq : S;
  return passes * ((maxT + t.bc - 1) / t.bc * tile + rq + 8) + 64;
}

/* Drivers that end shader loops early (llvmpipe; matmul.c's vklm_matmul_k_chunk says which). */
static int loop_limited(const vklm_context *ctx) { return vklm_matmul_k_chunk(ctx) != 0; }

/* The CPU-type tiled kernel (attention_prefill_cpu.glsl): VKLM_ATTN_CPU_W invocations of R pairs
 * (attention_tiles.h), GH heads as for the GPU kernel; *rq query rows per workgroup. */
static void prefill_cpu_geometry(const vklm_context *ctx, uint32_t NH, uint32_t NKV, uint32_t HS,
                                 uint32_t spec[5], uint32_t *rq) {
  uint32_t gh = group_heads(NH, NKV);
  spec[0] = vklm_op_wg_fit(ctx, VKLM_ATTN_CPU_W, 0);
  spec[1] = HS;
  spec[2] = VKLM_ATTN_CPU_BK;
  spec[3] = vklm_attn_cpu_rows(HS, 2);
  while (gh > spec[0] * spec[3]) gh /= 2;
  spec[4] = gh;
  *rq = spec[0] * spec[3] / gh;
}

/* Its loop iterations per invocation: per pass over a slot (at most min(rq, S)) the key loops of
 * attention_forward_f32_cpu over up to maxT keys and the scan of the rows. */
static uint64_t prefill_cpu_loops(uint32_t rq, uint32_t maxT, uint32_t S) {
  uint64_t passes = rq < S ? rq : S;
  return passes * (vklm_attn_cpu_loops(maxT) + rq + 2) + rq + 8;
}

int vklm_attention_decode_fits(const vklm_context *ctx, vklm_kv_attention_kernel kernel,
                               uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t S,
                               uint32_t maxT, uint32_t splits) {
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint32_t sg_ops = VKLM_SUBGROUP_BASIC | VKLM_SUBGROUP_ARITHMETIC, gh, rq, spec[5];
  switch (kernel) {
  case VKLM_KV_ATTENTION_ROW_SHARED:
    return 1;
  case VKLM_KV_ATTENTION_ROW_SUBGROUP:
    return (caps->subgroup_ops & sg_ops) == sg_ops;
  case VKLM_KV_ATTENTION_PREFILL: {
    if (splits > 1) return 0;
    vklm_attn_tiles t = prefill_geometry(ctx, n, NH, NKV, HS, &gh);
    return !loop_limited(ctx) || prefill_loops(t, gh, HS, maxT, S) <= VKLM_CPU_LOOP_BUDGET;
  }
  case VKLM_KV_ATTENTION_PREFILL_CPU:
    if (splits > 1 || HS > VKLM_ATTN_CPU_MAX_HS) return 0;
    prefill_cpu_geometry(ctx, NH, NKV, HS, spec, &rq);
    return prefill_cpu_loops(rq, maxT, S) <= VKLM_CPU_LOOP_BUDGET;
  default:
    return 0;
  }
}

vklm_kv_attention_kernel vklm_attention_decode_choose(const vklm_context *ctx, uint32_t n,
                                                      uint32_t NH, uint32_t NKV, uint32_t HS,
                                                      uint32_t S, uint32_t maxT,
                                                      uint32_t splits) {
  int cpu = vklm_context_cpu_kernels(ctx);
  if (splits == 1 && n >= VKLM_ATTENTION_PREFILL_ROWS) {
    if (cpu && vklm_attention_decode_fits(ctx, VKLM_KV_ATTENTION_PREFILL_CPU, n, NH, NKV, HS, S,
                                          maxT, splits))
      return VKLM_KV_ATTENTION_PREFILL_CPU;
    if (vklm_attention_decode_fits(ctx, VKLM_KV_ATTENTION_PREFILL, n, NH, NKV, HS, S, maxT,
                                   splits))
      return VKLM_KV_ATTENTION_PREFILL;
  }
  /* the subgroup reductions measured 5-10% slower than the shared-memory ones on llvmpipe */
  return !cpu && vklm_attention_decode_fits(ctx, VKLM_KV_ATTENTION_ROW_SUBGROUP, n, NH, NKV, HS,
                                            S, maxT, splits)
             ? VKLM_KV_ATTENTION_ROW_SUBGROUP
             : VKLM_KV_ATTENTION_ROW_SHARED;
}

static vklm_status prefill(vklm_cmd *cmd, vklm_buffer *b, int f16, uint32_t n, uint32_t NH,
                           uint32_t NKV, uint32_t HS, uint32_t QS, uint32_t S, uint32_t maxT,
                           float scale) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint32_t gh;
  vklm_attn_tiles t = prefill_geometry(ctx, n, NH, NKV, HS, &gh);
  uint32_t rq = t.br / gh, gx = (n + rq - 1) / rq;
  VKLM_ASSERT(gx <= caps->max_workgroup_count[0] && NH / gh <= caps->max_workgroup_count[1],
              "attention_decode: a grid of (%u, %u) workgroups exceeds the device's", gx, NH / gh);
  uint32_t spec[6] = {t.nt, t.br, t.bc, HS, t.rm, gh};
  prefill_push pc = {n, NH, NKV, QS, scale, maxT, S};
  return vklm_op_dispatch(cmd, f16 ? "attention_prefill_f16" : "attention_prefill_f32", spec, 6,
                          b, 5, &pc, sizeof pc, gx, NH / gh, 1);
}

static vklm_status prefill_cpu(vklm_cmd *cmd, vklm_buffer *b, int f16, uint32_t n, uint32_t NH,
                               uint32_t NKV, uint32_t HS, uint32_t QS, uint32_t S, uint32_t maxT,
                               float scale) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint32_t spec[5], rq;
  prefill_cpu_geometry(ctx, NH, NKV, HS, spec, &rq);
  uint32_t gx = (n + rq - 1) / rq, gy = NH / spec[4];
  VKLM_ASSERT(gx <= caps->max_workgroup_count[0] && gy <= caps->max_workgroup_count[1],
              "attention_decode: a grid of (%u, %u) workgroups exceeds the device's", gx, gy);
  prefill_push pc = {n, NH, NKV, QS, scale, maxT, S};
  return vklm_op_dispatch(cmd, f16 ? "attention_prefill_f16_cpu" : "attention_prefill_f32_cpu",
                          spec, 5, b, 5, &pc, sizeof pc, gx, gy, 1);
}

vklm_status vklm_attention_decode_ex(vklm_cmd *cmd, vklm_buffer out, vklm_buffer scratch,
                                     vklm_buffer q, vklm_buffer kc, vklm_buffer vc,
                                     vklm_dtype kv_dt, vklm_buffer rows, uint32_t n, uint32_t NH,
                                     uint32_t NKV, uint32_t HS, uint32_t QS, uint32_t S,
                                     uint32_t maxT, uint32_t splits,
                                     vklm_kv_attention_kernel kernel) {
  check_cache("attention_decode", kc, vc, kv_dt, S, maxT, NKV, HS);
  VKLM_ASSERT(rows.block && rows.size >= (uint64_t)n * 8, "attention_decode: rows too small");
  int f16 = kv_dt == VKLM_DTYPE_F16;
  VKLM_ASSERT(n >= 1 && NKV >= 1 && NH % NKV == 0, "attention_decode: n=%u NH=%u NKV=%u", n, NH,
              NKV);
  VKLM_ASSERT(HS >= 1 && HS <= 256, "attention_decode: HS=%u outside [1,256]", HS);
  VKLM_ASSERT(out.size >= (uint64_t)n * NH * HS * 4 && q.size >= ((uint64_t)(n - 1) * QS +
              (uint64_t)NH * HS) * 4, "attention_decode: out or q too small");
  vklm_context *ctx = vklm_cmd_context(cmd);
  const vklm_caps *caps = vklm_context_caps(ctx);
  if (kernel == VKLM_KV_ATTENTION_AUTO)
    kernel = vklm_attention_decode_choose(ctx, n, NH, NKV, HS, S, maxT, splits);
  VKLM_ASSERT(vklm_attention_decode_fits(ctx, kernel, n, NH, NKV, HS, S, maxT, splits),
              "attention_decode: kernel %d cannot run n=%u HS=%u maxT=%u S=%u splits=%u here",
              (int)kernel, n, HS, maxT, S, splits);
  float scale = (float)(1.0 / sqrt((double)HS));
  vklm_buffer b[5] = {out, q, kc, vc, rows};
  if (kernel == VKLM_KV_ATTENTION_PREFILL)
    return prefill(cmd, b, f16, n, NH, NKV, HS, QS, S, maxT, scale);
  if (kernel == VKLM_KV_ATTENTION_PREFILL_CPU)
    return prefill_cpu(cmd, b, f16, n, NH, NKV, HS, QS, S, maxT, scale);
  uint32_t wg, G;
  decode_geometry(ctx, NH, NKV, &wg, &G);
  VKLM_ASSERT(wg >= 64 && HS <= 4 * wg, "attention_decode: workgroup %u too small", wg);
  uint32_t spec[2] = {wg, G};
  int sg = kernel == VKLM_KV_ATTENTION_ROW_SUBGROUP;
  if (splits <= 1) {
    attn_push pc = {n, NH, NKV, HS, QS, scale, maxT};
    static const char *const one[2][2] = {{"attention_decode_f32", "attention_decode_f16"},
                                          {"attention_decode_f32_sg", "attention_decode_f16_sg"}};
    return vklm_op_dispatch(cmd, one[sg][f16], spec, 2, b, 5, &pc, sizeof pc, NH / G, n, 1);
  }
  VKLM_ASSERT(scratch.size >= vklm_attention_decode_scratch_bytes(n, NH, HS, splits),
              "attention_decode: scratch of %llu bytes too small",
              (unsigned long long)scratch.size);
  VKLM_ASSERT(splits <= caps->max_workgroup_count[2],
              "attention_decode: %u splits exceed the device's z groups", splits);
  split_push sp = {n, NH, NKV, HS, QS, scale, maxT, splits};
  b[0] = scratch;
  static const char *const split[2][2] = {
      {"attention_decode_f32_split", "attention_decode_f16_split"},
      {"attention_decode_f32_split_sg", "attention_decode_f16_split_sg"}};
  vklm_status st = vklm_op_dispatch(cmd, split[sg][f16], spec, 2, b, 5, &sp, sizeof sp, NH / G,
                                    n, splits);
  if (st != VKLM_OK) return st;
  merge_push mp = {n * NH * HS, HS, splits};
  vklm_buffer mb[2] = {out, scratch};
  return vklm_op_dispatch_1d(cmd, "attention_merge_f32", mb, 2, &mp, sizeof mp, mp.total);
}

vklm_status vklm_attention_decode(vklm_cmd *cmd, vklm_buffer out, vklm_buffer scratch,
                                  vklm_buffer q, vklm_buffer kc, vklm_buffer vc, vklm_dtype kv_dt,
                                  vklm_buffer rows, uint32_t n, uint32_t NH, uint32_t NKV,
                                  uint32_t HS, uint32_t QS, uint32_t S, uint32_t maxT,
                                  uint32_t splits) {
  return vklm_attention_decode_ex(cmd, out, scratch, q, kc, vc, kv_dt, rows, n, NH, NKV, HS, QS,
                                  S, maxT, splits, VKLM_KV_ATTENTION_AUTO);
}

void vklm_attention_decode_ref(float *out, const float *q, const float *kcache,
                               const float *vcache, const uint32_t *rows, uint32_t n, uint32_t NH,
                               uint32_t NKV, uint32_t HS, uint32_t QS, uint32_t maxT) {
  double scale = 1.0 / sqrt((double)HS);
  uint32_t grp = NH / NKV;
  double *s = malloc(sizeof(double) * (maxT ? maxT : 1));
  VKLM_ASSERT(s, "attention_decode_ref: out of memory");
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t h = 0; h < NH; h++) {
      const float *qi = q + (uint64_t)i * QS + (uint64_t)h * HS;
      uint32_t g = h / grp, Li = rows[2 * i] + 1;
      const float *kc = kcache + (uint64_t)rows[2 * i + 1] * maxT * NKV * HS;
      const float *vc = vcache + (uint64_t)rows[2 * i + 1] * maxT * NKV * HS;
      double mx = -INFINITY, sum = 0;
      for (uint32_t j = 0; j < Li; j++) {
        const float *k = kc + ((uint64_t)j * NKV + g) * HS;
        double d = 0;
        for (uint32_t c = 0; c < HS; c++) d += (double)qi[c] * k[c];
        s[j] = d * scale;
        if (s[j] > mx) mx = s[j];
      }
      for (uint32_t j = 0; j < Li; j++) sum += (s[j] = exp(s[j] - mx));
      for (uint32_t c = 0; c < HS; c++) {
        double a = 0;
        for (uint32_t j = 0; j < Li; j++) a += s[j] * vc[((uint64_t)j * NKV + g) * HS + c];
        out[(uint64_t)i * NH * HS + (uint64_t)h * HS + c] = (float)(a / sum);
      }
    }
  free(s);
}

vklm_status vklm_kv_store(vklm_cmd *cmd, vklm_buffer kc, vklm_buffer vc, vklm_dtype kv_dt,
                          vklm_buffer qkv, vklm_buffer rows, uint32_t n, uint32_t NH, uint32_t NKV,
                          uint32_t HS, uint32_t S, uint32_t maxT) {
  check_cache("kv_store", kc, vc, kv_dt, S, maxT, NKV, HS);
  VKLM_ASSERT(rows.block && rows.size >= (uint64_t)n * 8, "kv_store: rows too small");
  store_push pc = {n * NKV * HS, NH, NKV, HS, maxT, S};
  vklm_buffer b[4] = {kc, vc, qkv, rows};
  return vklm_op_dispatch_1d(cmd, kv_dt == VKLM_DTYPE_F16 ? "kv_store_f16" : "kv_store_f32", b, 4,
                             &pc, sizeof pc, pc.total);
}

vklm_status vklm_rope_cached(vklm_cmd *cmd, vklm_buffer qkv, vklm_buffer tab, vklm_buffer rows,
                             uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t maxT) {
  VKLM_ASSERT(HS % 2 == 0, "rope_cached: HS=%u must be even", HS);
  VKLM_ASSERT(tab.size >= (uint64_t)maxT * HS * 4, "rope_cached: table smaller than (maxT,HS)");
  rows_push pc = {n * (NH + NKV) * (HS / 2), NH, NKV, HS, maxT};
  vklm_buffer b[3] = {qkv, tab, rows};
  return vklm_op_dispatch_1d(cmd, "rope_cached_f32", b, 3, &pc, sizeof pc, pc.total);
}

vklm_status vklm_pos_add(vklm_cmd *cmd, vklm_buffer x, vklm_buffer wpe, vklm_buffer rows,
                         uint32_t n, uint32_t C, uint32_t maxT) {
  VKLM_ASSERT(wpe.size >= (uint64_t)maxT * C * 4, "pos_add: wpe smaller than (maxT,C)");
  pos_push pc = {n * C, C, maxT};
  vklm_buffer b[3] = {x, wpe, rows};
  return vklm_op_dispatch_1d(cmd, "pos_add_f32", b, 3, &pc, sizeof pc, pc.total);
}

vklm_status vklm_argmax(vklm_cmd *cmd, vklm_buffer out, vklm_buffer x, uint32_t n, uint32_t V) {
  VKLM_ASSERT(n >= 1 && n <= vklm_context_caps(vklm_cmd_context(cmd))->max_workgroup_count[0] &&
                  out.size >= (uint64_t)n * 4 && x.size >= (uint64_t)n * V * 4,
              "argmax: %u rows of %u", n, V);
  uint32_t wg = vklm_op_wg_fit(vklm_cmd_context(cmd), 256, 8);
  vklm_buffer b[2] = {out, x};
  return vklm_op_dispatch(cmd, "argmax_f32", &wg, 1, b, 2, &V, sizeof V, n, 1, 1);
}

uint32_t vklm_argmax_ref(const float *x, uint32_t V) {
  uint32_t best = 0;
  int have = 0;
  for (uint32_t j = 0; j < V; j++)
    if (!isnan(x[j]) && (!have || x[j] > x[best])) best = j, have = 1;
  return best;
}

/* LayerNorm and RMSNorm, forward (plain and after a residual add) and backward
 * (shaders/layernorm_*.comp, rmsnorm_*.comp, add_layernorm_*.comp, add_rmsnorm_*.comp,
 * norm_backward_f32_reduce.comp), and their C references. */
#include "norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "op_util.h"

/* The backward's row chunks (a workgroup, or on CPU-type devices an invocation, per chunk, each
 * writing its own partial sums): on GPUs up to NORM_GPU_CHUNKS workgroups, a few per multiprocessor
 * of a large GPU, so that few rows run one after another in a workgroup, while the reduce still
 * has few partials to add up (2 * 512 * C floats per LayerNorm at most); on CPU-type devices about
 * NORM_CPU_CHUNKS invocations, a few per CPU thread. Either family takes smaller chunks where a
 * chunk's loops would pass llvmpipe's per-invocation limit (op_util.h). */
#define NORM_GPU_CHUNKS 512u
#define NORM_CPU_CHUNKS 64u
/* Rows per workgroup of the CPU-type forward variants (one invocation per row). */
#define NORM_CPU_WG 32u
/* Invocations (chunks) per workgroup of the CPU-type backward variants. */
#define NORM_CPU_BWD_WG 8u

typedef struct norm_fwd_push {
  uint32_t N, C;
  float eps;
} norm_fwd_push;
_Static_assert(sizeof(norm_fwd_push) == 12,
               "(add_)layernorm/rmsnorm_forward_f32.comp push constants");

typedef struct norm_bwd_push {
  uint32_t N, C, rows_per_chunk, chunks, params;
} norm_bwd_push;
_Static_assert(sizeof(norm_bwd_push) == 20, "layernorm/rmsnorm_backward_f32.comp push constants");

typedef struct reduce_push {
  uint32_t first, count;
} reduce_push;
_Static_assert(sizeof(reduce_push) == 8, "norm_backward_f32_reduce.comp push constants");

/* One table entry of norm_backward_f32_reduce.comp: float offsets from the start of the blocks
 * its bindings begin at, and the partials' layout (vklm_norm_grads). */
typedef struct reduce_entry {
  uint32_t dw, db, part, C, chunks, nparams, kstride, cstride;
} reduce_entry;
_Static_assert(sizeof(reduce_entry) == 32, "norm_backward_f32_reduce.comp table entry");

/* How a backward of (N, C) runs: the family, rows per chunk and chunks. */
typedef struct bwd_plan {
  int cpu;
  uint32_t wg, rows_per_chunk, chunks;
} bwd_plan;

/* Loop iterations of one row in a CPU variant: three passes (rows_cpu.glsl), as op_util.c's. */
static uint64_t cpu_row_loops(uint32_t C) { return 3ull * (C / 8 + C / 64 + 8) + 8; }
/* ... and in a GPU kernel of wg threads run on llvmpipe: three strided passes and the tree. */
static uint64_t gpu_row_loops(uint32_t C, uint32_t wg) { return 3ull * (C / wg + 1) + 40; }

static bwd_plan plan_family(const vklm_context *ctx, uint32_t N, uint32_t C, int cpu) {
  bwd_plan p;
  p.cpu = cpu;
  p.wg = cpu ? vklm_op_wg_fit(ctx, NORM_CPU_BWD_WG, 0) : vklm_op_wg_fit(ctx, 256, 8);
  uint64_t per = cpu ? cpu_row_loops(C) : gpu_row_loops(C, p.wg);
  uint32_t target = cpu ? NORM_CPU_CHUNKS : NORM_GPU_CHUNKS;
  uint64_t rpc = N / target + (N % target != 0);
  uint64_t most = VKLM_CPU_LOOP_BUDGET / per;
  if (rpc > most) rpc = most;
  if (rpc == 0) rpc = 1;
  p.rows_per_chunk = (uint32_t)rpc;
  p.chunks = N ? (uint32_t)((N + rpc - 1) / rpc) : 1;
  return p;
}

static bwd_plan plan(const vklm_context *ctx, uint32_t N, uint32_t C) {
  int cpu = vklm_context_cpu_kernels(ctx) && cpu_row_loops(C) <= VKLM_CPU_LOOP_BUDGET;
  return plan_family(ctx, N, C, cpu);
}

uint64_t vklm_norm_partials_bytes(const vklm_context *ctx, uint32_t N, uint32_t C, int rms) {
  uint32_t a = plan_family(ctx, N, C, 0).chunks, b = plan_family(ctx, N, C, 1).chunks;
  return (rms ? 1ull : 2ull) * (a > b ? a : b) * (C ? C : 1) * sizeof(float);
}

uint64_t vklm_norm_grads_table_bytes(uint32_t n) {
  return (uint64_t)(n ? n : 1) * sizeof(reduce_entry);
}

static void check_shape(const char *op, uint32_t N, uint32_t C) {
  VKLM_ASSERT((uint64_t)N * C < (1ull << 32), "%s: N*C = %llu exceeds 2^32", op,
              (unsigned long long)N * C);
}

static void check(const char *op, vklm_buffer b, uint64_t n, const char *what) {
  VKLM_ASSERT(b.block && b.size >= n * 4, "%s: %s holds %llu bytes, needs %llu floats", op, what,
              (unsigned long long)b.size, (unsigned long long)n);
}


/* The forward kernels' output: n elements in format fmt (0 fp32, 1 fp16, 2 bf16: the spec
 * constant OUT_FMT of shaders/store16.glsl). */
static void check_out(const char *op, vklm_buffer out, uint64_t n, int fmt) {
  VKLM_ASSERT(fmt >= 0 && fmt <= 2, "%s: output format %d (0 f32, 1 f16, 2 bf16)", op, fmt);
  if (fmt == 0) {
    check(op, out, n, "out");
    return;
  }
  VKLM_ASSERT(out.block && out.size >= (n + 1) / 2 * 4,
              "%s: out holds %llu bytes, needs %llu 16-bit elements", op,
              (unsigned long long)out.size, (unsigned long long)n);
}

/* A forward kernel (vklm_op_dispatch_rows_spec): GPU workgroups of up to 256 threads per row,
 * CPU-type variants NORM_CPU_WG rows per workgroup; spec constant 1 the output format. */
static vklm_status dispatch_fwd(vklm_cmd *cmd, const char *name, const vklm_buffer *b,
                                uint32_t nb, const norm_fwd_push *pc, int fmt) {
  return vklm_op_dispatch_rows_spec(cmd, name, b, nb, pc, sizeof *pc, pc->N, pc->C, 256,
                                    NORM_CPU_WG, (uint32_t)fmt);
}

/* The backward kernel `name` (its _cpu variant on CPU-type devices) over (N, C): b[1] is the
 * partials binding, replaced by b[0] (dinp) for a frozen norm (nparams 0). */
static vklm_status backward(vklm_cmd *cmd, const char *name, vklm_buffer *b, uint32_t nb,
                            uint32_t N, uint32_t C, vklm_buffer dweight, vklm_buffer dbias,
                            uint32_t nparams, vklm_norm_grads *pending) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  bwd_plan p = plan(ctx, N, C);
  if (nparams) {
    VKLM_ASSERT(pending, "%s: parameter gradients need a vklm_norm_grads to fill", name);
    uint64_t need = (uint64_t)nparams * p.chunks * C * 4;
    VKLM_ASSERT(b[1].block && b[1].size >= need,
                "%s: part holds %llu bytes, needs %llu (vklm_norm_partials_bytes)", name,
                (unsigned long long)b[1].size, (unsigned long long)need);
    *pending = (vklm_norm_grads){dweight, dbias, b[1], C, p.chunks, nparams,
                                 p.cpu ? 1 : C, p.cpu ? p.chunks : 1};
  } else {
    b[1] = b[0];
    if (pending) *pending = (vklm_norm_grads){.C = C};
  }
  if (N == 0 || C == 0) {
    if (pending) pending->nparams = 0;
    return VKLM_OK;
  }
  norm_bwd_push pc = {N, C, p.rows_per_chunk, p.chunks, nparams ? 1u : 0u};
  char nm[64];
  snprintf(nm, sizeof nm, "%s%s", name, p.cpu ? "_cpu" : "");
  uint32_t gx, gy;
  vklm_groups_1d(ctx, p.cpu ? (p.chunks + p.wg - 1) / p.wg : p.chunks, &gx, &gy);
  return vklm_op_dispatch(cmd, nm, &p.wg, 1, b, nb, &pc, sizeof pc, gx, gy, 1);
}

/* The binding of role r of entries g[a..b): from the start of the block, up to the furthest end. */
static vklm_buffer reduce_span(const vklm_norm_grads *g, uint32_t a, uint32_t b, int r) {
  vklm_buffer out = {0};
  for (uint32_t j = a; j < b; j++) {
    if (!g[j].nparams) continue;
    vklm_buffer x = r == 0 ? g[j].dweight : r == 1 ? (g[j].nparams > 1 ? g[j].dbias : g[j].dweight)
                                                     : g[j].part;
    uint64_t len = (uint64_t)g[j].C * 4;
    if (r == 2) len *= (uint64_t)g[j].nparams * g[j].chunks;
    out.block = x.block;
    if (x.offset + len > out.size) out.size = x.offset + len;
  }
  return out;
}

static uint32_t float_off(vklm_buffer b) {
  VKLM_ASSERT(b.offset % 4 == 0 && b.offset / 4 <= UINT32_MAX,
              "norm grads reduce: buffer offset %llu is not a float offset",
              (unsigned long long)b.offset);
  return (uint32_t)(b.offset / 4);
}

vklm_status vklm_norm_grads_reduce(vklm_cmd *cmd, vklm_buffer table, uint32_t first,
                                   const vklm_norm_grads *g, uint32_t n) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  VKLM_ASSERT(table.block && table.size >= vklm_norm_grads_table_bytes(first + n),
              "norm grads reduce: table holds %llu bytes, needs %llu",
              (unsigned long long)table.size,
              (unsigned long long)vklm_norm_grads_table_bytes(first + n));
  if (n == 0) return VKLM_OK;
  reduce_entry *tab = calloc(n, sizeof *tab);
  if (!tab) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint32_t j = 0; j < n; j++) {
    const vklm_norm_grads *e = &g[j];
    if (!e->nparams) continue;
    VKLM_ASSERT(e->nparams <= 2 && e->dweight.block && e->dweight.size >= (uint64_t)e->C * 4 &&
                    (e->nparams == 1 || (e->dbias.block && e->dbias.size >= (uint64_t)e->C * 4)) &&
                    e->part.block && e->part.size >= (uint64_t)e->nparams * e->chunks * e->C * 4,
                "norm grads reduce: entry %u (C=%u, %u chunks, %u parameters) has missing or "
                "short buffers",
                j, e->C, e->chunks, e->nparams);
    VKLM_ASSERT((e->kstride == e->C && e->cstride == 1) ||
                    (e->kstride == 1 && e->cstride == e->chunks),
                "norm grads reduce: entry %u: partials of stride %u per chunk and %u per channel",
                j, e->kstride, e->cstride);
    tab[j] = (reduce_entry){float_off(e->dweight), e->nparams > 1 ? float_off(e->dbias) : 0,
                            float_off(e->part), e->C, e->chunks, e->nparams, e->kstride,
                            e->cstride};
  }
  vklm_status st = vklm_buffer_upload(ctx, table, (uint64_t)first * sizeof *tab, tab,
                                      (uint64_t)n * sizeof *tab);
  free(tab);
  if (st != VKLM_OK) return st;
  uint32_t wg = vklm_op_wg1d(ctx);
  /* runs of consecutive entries whose roles lie in the same blocks (frozen entries join any) */
  for (uint32_t a = 0; a < n && st == VKLM_OK;) {
    uint32_t b = a, ref = UINT32_MAX, most = 0;
    for (; b < n; b++) {
      const vklm_norm_grads *e = &g[b];
      if (!e->nparams) continue;
      if (ref == UINT32_MAX) {
        ref = b;
      } else {
        const vklm_norm_grads *r = &g[ref];
        const vklm_block *eb = e->nparams > 1 ? e->dbias.block : e->dweight.block;
        const vklm_block *rb = r->nparams > 1 ? r->dbias.block : r->dweight.block;
        if (e->dweight.block != r->dweight.block || eb != rb || e->part.block != r->part.block)
          break;
      }
      if (e->nparams * e->C > most) most = e->nparams * e->C;
    }
    if (ref != UINT32_MAX) {
      vklm_buffer bufs[4] = {reduce_span(g, a, b, 0), reduce_span(g, a, b, 1),
                             reduce_span(g, a, b, 2), table};
      reduce_push pc = {first + a, b - a};
      st = vklm_op_dispatch(cmd, "norm_backward_f32_reduce", &wg, 1, bufs, 4, &pc, sizeof pc,
                            (most + wg - 1) / wg, b - a, 1);
    }
    a = b;
  }
  return st;
}

vklm_status vklm_layernorm_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer mean,
                                   vklm_buffer rstd, vklm_buffer inp, vklm_buffer weight,
                                   vklm_buffer bias, uint32_t N, uint32_t C) {
  return vklm_layernorm_forward_fmt(cmd, out, 0, mean, rstd, inp, weight, bias, N, C);
}

vklm_status vklm_layernorm_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt,
                                       vklm_buffer mean, vklm_buffer rstd, vklm_buffer inp,
                                       vklm_buffer weight, vklm_buffer bias, uint32_t N,
                                       uint32_t C) {
  const char *op = "layernorm_forward";
  check_shape(op, N, C);
  check_out(op, out, (uint64_t)N * C, out_fmt);
  check(op, inp, (uint64_t)N * C, "inp");
  check(op, mean, N, "mean");
  check(op, rstd, N, "rstd");
  check(op, weight, C, "weight");
  check(op, bias, C, "bias");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_fwd_push pc = {N, C, VKLM_LAYERNORM_EPS};
  vklm_buffer b[6] = {out, mean, rstd, inp, weight, bias};
  return dispatch_fwd(cmd, "layernorm_forward_f32", b, 6, &pc, out_fmt);
}

vklm_status vklm_add_layernorm_forward(vklm_cmd *cmd, vklm_buffer res, vklm_buffer out,
                                       vklm_buffer mean, vklm_buffer rstd, vklm_buffer a,
                                       vklm_buffer b, vklm_buffer weight, vklm_buffer bias,
                                       uint32_t N, uint32_t C) {
  return vklm_add_layernorm_forward_fmt(cmd, res, out, 0, mean, rstd, a, b, weight, bias, N, C);
}

vklm_status vklm_add_layernorm_forward_fmt(vklm_cmd *cmd, vklm_buffer res, vklm_buffer out,
                                           int out_fmt, vklm_buffer mean, vklm_buffer rstd,
                                           vklm_buffer a, vklm_buffer b, vklm_buffer weight,
                                           vklm_buffer bias, uint32_t N, uint32_t C) {
  const char *op = "add_layernorm_forward";
  check_shape(op, N, C);
  check(op, res, (uint64_t)N * C, "res");
  check_out(op, out, (uint64_t)N * C, out_fmt);
  check(op, a, (uint64_t)N * C, "a");
  check(op, b, (uint64_t)N * C, "b");
  check(op, mean, N, "mean");
  check(op, rstd, N, "rstd");
  check(op, weight, C, "weight");
  check(op, bias, C, "bias");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_fwd_push pc = {N, C, VKLM_LAYERNORM_EPS};
  vklm_buffer bb[8] = {res, out, mean, rstd, a, b, weight, bias};
  return dispatch_fwd(cmd, "add_layernorm_forward_f32", bb, 8, &pc, out_fmt);
}

vklm_status vklm_layernorm_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dweight,
                                    vklm_buffer dbias, vklm_buffer part, vklm_buffer dout,
                                    vklm_buffer inp, vklm_buffer weight, vklm_buffer mean,
                                    vklm_buffer rstd, uint32_t N, uint32_t C,
                                    vklm_norm_grads *pending) {
  const char *op = "layernorm_backward";
  check_shape(op, N, C);
  check(op, dinp, (uint64_t)N * C, "dinp");
  check(op, dout, (uint64_t)N * C, "dout");
  check(op, inp, (uint64_t)N * C, "inp");
  int params = dweight.block != NULL; /* a frozen norm: dinp only */
  VKLM_ASSERT(params == (dbias.block != NULL), "%s: give both dweight and dbias, or neither", op);
  if (params) check(op, dweight, C, "dweight");
  if (params) check(op, dbias, C, "dbias");
  check(op, weight, C, "weight");
  check(op, mean, N, "mean");
  check(op, rstd, N, "rstd");
  vklm_buffer b[7] = {dinp, part, dout, inp, weight, mean, rstd};
  return backward(cmd, "layernorm_backward_f32", b, 7, N, C, dweight, dbias, params ? 2 : 0,
                  pending);
}

vklm_status vklm_rmsnorm_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer rstd,
                                 vklm_buffer inp, vklm_buffer weight, uint32_t N, uint32_t C,
                                 float eps) {
  return vklm_rmsnorm_forward_fmt(cmd, out, 0, rstd, inp, weight, N, C, eps);
}

vklm_status vklm_rmsnorm_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt,
                                     vklm_buffer rstd, vklm_buffer inp, vklm_buffer weight,
                                     uint32_t N, uint32_t C, float eps) {
  const char *op = "rmsnorm_forward";
  check_shape(op, N, C);
  check_out(op, out, (uint64_t)N * C, out_fmt);
  check(op, inp, (uint64_t)N * C, "inp");
  check(op, rstd, N, "rstd");
  check(op, weight, C, "weight");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_fwd_push pc = {N, C, eps};
  vklm_buffer b[4] = {out, rstd, inp, weight};
  return dispatch_fwd(cmd, "rmsnorm_forward_f32", b, 4, &pc, out_fmt);
}

vklm_status vklm_add_rmsnorm_forward(vklm_cmd *cmd, vklm_buffer res, vklm_buffer out,
                                     vklm_buffer rstd, vklm_buffer a, vklm_buffer b,
                                     vklm_buffer weight, uint32_t N, uint32_t C, float eps) {
  return vklm_add_rmsnorm_forward_fmt(cmd, res, out, 0, rstd, a, b, weight, N, C, eps);
}

vklm_status vklm_add_rmsnorm_forward_fmt(vklm_cmd *cmd, vklm_buffer res, vklm_buffer out,
                                         int out_fmt, vklm_buffer rstd, vklm_buffer a,
                                         vklm_buffer b, vklm_buffer weight, uint32_t N,
                                         uint32_t C, float eps) {
  const char *op = "add_rmsnorm_forward";
  check_shape(op, N, C);
  check(op, res, (uint64_t)N * C, "res");
  check_out(op, out, (uint64_t)N * C, out_fmt);
  check(op, a, (uint64_t)N * C, "a");
  check(op, b, (uint64_t)N * C, "b");
  check(op, rstd, N, "rstd");
  check(op, weight, C, "weight");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_fwd_push pc = {N, C, eps};
  vklm_buffer bb[6] = {res, out, rstd, a, b, weight};
  return dispatch_fwd(cmd, "add_rmsnorm_forward_f32", bb, 6, &pc, out_fmt);
}

vklm_status vklm_rmsnorm_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dweight,
                                  vklm_buffer part, vklm_buffer dout, vklm_buffer inp,
                                  vklm_buffer weight, vklm_buffer rstd, uint32_t N, uint32_t C,
                                  vklm_norm_grads *pending) {
  const char *op = "rmsnorm_backward";
  check_shape(op, N, C);
  check(op, dinp, (uint64_t)N * C, "dinp");
  check(op, dout, (uint64_t)N * C, "dout");
  check(op, inp, (uint64_t)N * C, "inp");
  if (dweight.block) check(op, dweight, C, "dweight"); /* {0}: a frozen norm, dinp only */
  check(op, weight, C, "weight");
  check(op, rstd, N, "rstd");
  vklm_buffer b[6] = {dinp, part, dout, inp, weight, rstd};
  return backward(cmd, "rmsnorm_backward_f32", b, 6, N, C, dweight, (vklm_buffer){0},
                  dweight.block ? 1 : 0, pending);
}

/* ---- references ------------------------------------------------------------------------- */

void vklm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, uint32_t N, uint32_t C) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C;
    double m = 0, v = 0;
    for (uint32_t c = 0; c < C; c++) m += x[c];
    m /= C;
    for (uint32_t c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    double rs = 1.0 / sqrt(v / C + VKLM_LAYERNORM_EPS);
    for (uint32_t c = 0; c < C; c++)
      out[(size_t)r * C + c] = (float)((x[c] - m) * rs * weight[c] + bias[c]);
    mean[r] = (float)m;
    rstd[r] = (float)rs;
  }
}

void vklm_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, uint32_t N, uint32_t C) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
    double m = mean[r], rs = rstd[r], a = 0, b = 0;
    for (uint32_t c = 0; c < C; c++) {
      double g = (double)d[c] * weight[c];
      a += g;
      b += g * (x[c] - m) * rs;
    }
    a /= C;
    b /= C;
    for (uint32_t c = 0; c < C; c++) {
      double n = (x[c] - m) * rs, g = (double)d[c] * weight[c];
      dinp[(size_t)r * C + c] += (float)((g - a - n * b) * rs);
    }
  }
  for (uint32_t c = 0; c < C; c++) {
    double dw = 0, db = 0;
    for (uint32_t r = 0; r < N; r++) {
      double d = dout[(size_t)r * C + c];
      dw += d * (inp[(size_t)r * C + c] - (double)mean[r]) * rstd[r];
      db += d;
    }
    dweight[c] += (float)dw;
    dbias[c] += (float)db;
  }
}

void vklm_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
                              uint32_t N, uint32_t C, float eps) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C;
    double s = 0;
    for (uint32_t c = 0; c < C; c++) s += (double)x[c] * x[c];
    double rs = 1.0 / sqrt(s / C + eps);
    for (uint32_t c = 0; c < C; c++) out[(size_t)r * C + c] = (float)(x[c] * rs * weight[c]);
    rstd[r] = (float)rs;
  }
}

void vklm_add_layernorm_forward_ref(float *res, float *out, float *mean, float *rstd,
                                    const float *a, const float *b, const float *weight,
                                    const float *bias, uint32_t N, uint32_t C) {
  for (size_t i = 0; i < (size_t)N * C; i++) res[i] = a[i] + b[i];
  vklm_layernorm_forward_ref(out, mean, rstd, res, weight, bias, N, C);
}

void vklm_add_rmsnorm_forward_ref(float *res, float *out, float *rstd, const float *a,
                                  const float *b, const float *weight, uint32_t N, uint32_t C,
                                  float eps) {
  for (size_t i = 0; i < (size_t)N * C; i++) res[i] = a[i] + b[i];
  vklm_rmsnorm_forward_ref(out, rstd, res, weight, N, C, eps);
}

void vklm_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const float *rstd, uint32_t N, uint32_t C) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
    double rs = rstd[r], a = 0;
    for (uint32_t c = 0; c < C; c++) a += (double)d[c] * weight[c] * x[c];
    double k = a / C * rs * rs;
    for (uint32_t c = 0; c < C; c++)
      dinp[(size_t)r * C + c] += (float)(rs * ((double)d[c] * weight[c] - x[c] * k));
  }
  for (uint32_t c = 0; c < C; c++) {
    double dw = 0;
    for (uint32_t r = 0; r < N; r++)
      dw += (double)dout[(size_t)r * C + c] * inp[(size_t)r * C + c] * rstd[r];
    dweight[c] += (float)dw;
  }
}

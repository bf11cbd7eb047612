/* Batched GEMM (shaders/matmul_tiled_f32.comp, matmul_tiled_f16.comp, matmul_naive_f32.comp,
 * shaders/matmul.glsl; matmul_cpu_f32.comp on CPU devices), the linear-layer wrappers, and their C
 * references. */
#include "matmul.h"

#include <string.h>
#include <unistd.h>

#include "activation.h"
#include "elementwise.h"
#include "op_util.h"

/* The push constants of all the matmul shaders. */
typedef struct gemm_push {
  uint32_t M, N, K;
  uint32_t lda, ldb, ldc;
  uint32_t stride_a, stride_b, stride_c;
  uint32_t off_a, off_b, off_c;
  float alpha, beta;
  uint32_t has_bias;
} gemm_push;
_Static_assert(sizeof(gemm_push) == 60, "matmul_*.comp push constants");

/* Tile configurations, largest first. 128x128 with an 8x8 register tile is the classic fast
 * SGEMM shape on desktop GPUs but needs ~80 registers a thread and many output tiles; 64x64 with
 * 4x4 suits every GPU; 64x64 with 8x4 fits the Vulkan minimums (128 invocations, 16 KiB); the
 * rest are for devices below even those. */
static const vklm_matmul_config CONFIGS[] = {
    {128, 128, 8, 8, 8, 256},
    {64, 64, 16, 4, 4, 256},
    {64, 64, 16, 8, 4, 128},
    {32, 32, 16, 4, 4, 64},
    {16, 16, 16, 2, 2, 64},
    {8, 8, 8, 1, 1, 64},
};
#define NCONFIGS (sizeof CONFIGS / sizeof CONFIGS[0])
/* The large tile is used only when it still makes this many workgroups (Vulkan does not say how
 * many compute units a device has; 128 keeps the big ones busy). */
#define LARGE_TILE_MIN_GROUPS 128

static uint32_t shared_bytes(const vklm_matmul_config *c) {
  return 4 * c->BK * (c->BM + 1 + c->BN + 1) * (c->dbuf ? 2 : 1);
}

static int fits(const vklm_caps *caps, const vklm_matmul_config *c) {
  uint32_t inv = caps->max_workgroup_invocations < caps->max_workgroup_size[0]
                     ? caps->max_workgroup_invocations
                     : caps->max_workgroup_size[0];
  return c->threads <= inv && shared_bytes(c) <= caps->max_shared_memory;
}

uint32_t vklm_matmul_configs(const vklm_context *ctx, vklm_matmul_config *out, uint32_t max) {
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint32_t n = 0;
  for (size_t i = 0; i < NCONFIGS && n < max; i++) {
    if (!fits(caps, &CONFIGS[i])) continue;
    out[n++] = CONFIGS[i];
    vklm_matmul_config d = CONFIGS[i];
    d.dbuf = 1;
    if (n < max && fits(caps, &d)) out[n++] = d;
  }
  return n;
}

/* Double buffering hides the global loads' latency behind the FMAs and halves the barriers, at
 * the cost of LA + LB more registers a thread and twice the shared memory, which can cut how many
 * workgroups a compute unit holds at once. Vulkan reports only the per-workgroup maximum; on
 * AMD and Intel that is also all a compute unit has (64 KiB), so the rule keeps room for two
 * workgroups: two sets of tiles at most half of maxComputeSharedMemorySize. The 64x64x16 and
 * 128x128x8 tiles (16.6 KiB double-buffered) get it on desktop GPUs (48-64 KiB), not under the
 * 16 KiB minimum nor on lavapipe (32 KiB), which run the single-buffered loop as before. */
static vklm_matmul_config with_dbuf(const vklm_caps *caps, vklm_matmul_config c) {
  vklm_matmul_config d = c;
  d.dbuf = 1;
  return fits(caps, &d) && 2 * shared_bytes(&d) <= caps->max_shared_memory ? d : c;
}

vklm_matmul_config vklm_matmul_config_choose(const vklm_context *ctx, const vklm_gemm *g) {
  const vklm_caps *caps = vklm_context_caps(ctx);
  const vklm_matmul_config *large = &CONFIGS[0];
  uint64_t groups = (uint64_t)((g->M + large->BM - 1) / large->BM) *
                    ((g->N + large->BN - 1) / large->BN) * (g->batch ? g->batch : 1);
  if (caps->type == VKLM_DEVICE_DISCRETE && fits(caps, large) && groups >= LARGE_TILE_MIN_GROUPS)
    return with_dbuf(caps, *large);
  for (size_t i = 1; i < NCONFIGS; i++)
    if (fits(caps, &CONFIGS[i])) return with_dbuf(caps, CONFIGS[i]);
  return CONFIGS[NCONFIGS - 1];
}

/* ---- the CPU-type fp32 kernel (matmul_cpu_f32) ---------------------------------------------
 * A workgroup of WG lanes (one subgroup) computes TM x (WG*TN) outputs, each lane TM x TN of them
 * in registers (see the shader). Its broadcasts need subgroup ballot operations and subgroups of
 * at least 8 lanes; a device without them keeps the tiled kernel. */
typedef struct cpu_block {
  uint32_t wg, tm, tn;
} cpu_block;

static int cpu_kernel_fits(const vklm_caps *caps, uint32_t *wg) {
  uint32_t sg = caps->subgroup_size, sg_min = caps->subgroup_min ? caps->subgroup_min : sg;
  uint32_t lim = caps->max_workgroup_invocations < caps->max_workgroup_size[0]
                     ? caps->max_workgroup_invocations
                     : caps->max_workgroup_size[0];
  *wg = sg;
  return (caps->subgroup_ops & VKLM_SUBGROUP_BALLOT) && sg_min >= 8 && sg <= 128 && sg <= lim;
}

int vklm_matmul_cpu_available(const vklm_context *ctx) {
  uint32_t wg;
  return cpu_kernel_fits(vklm_context_caps(ctx), &wg);
}

/* The block for g: TN the fewest columns per lane (1, 2, 4 or 8) that cover N; TM the most rows
 * (32, 16 or 8: measured on lavapipe, larger blocks are faster, 32 x 64 the fastest) that still
 * give two workgroups per CPU thread (llvmpipe runs one workgroup per thread at a time, with as
 * many threads as the host has CPUs). */
/* The host's CPU threads (llvmpipe runs a workgroup per thread): read once, since sysconf reads
 * a file; every thread would store the same value. */
static uint64_t host_cpus(void) {
  static long cpus;
  if (cpus <= 0) cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? (uint64_t)cpus : 1;
}

static cpu_block cpu_block_choose(uint32_t wg, const vklm_gemm *g) {
  cpu_block b = {wg, 8, 1};
  while (b.tn < 8 && (uint64_t)wg * b.tn < g->N) b.tn *= 2;
  uint64_t want = 2 * host_cpus();
  uint64_t width = (uint64_t)wg * b.tn;
  uint64_t cols = (g->N + width - 1) / width * (g->batch ? g->batch : 1);
  for (uint32_t tm = 32; tm > 8; tm /= 2)
    if (g->M > tm / 2 && (g->M + tm - 1) / tm * cols >= want) {
      b.tm = tm;
      break;
    }
  return b;
}

vklm_gemm vklm_gemm_make(uint32_t M, uint32_t N, uint32_t K) {
  vklm_gemm g = {0};
  g.M = M;
  g.N = N;
  g.K = K;
  g.batch = 1;
  g.alpha = 1.0f;
  return g;
}

double vklm_matmul_flops(const vklm_gemm *g) {
  return 2.0 * g->M * g->N * g->K * (g->batch ? g->batch : 1);
}

/* Checks that an operand stored as (rows, cols) with row stride ld (elements; 0 = cols) lies in
 * its buffer for every batch item; returns the row stride to use. half: packed fp16 elements. */
static uint32_t check_operand(const char *op, const char *what, vklm_buffer b, uint32_t rows,
                              uint32_t cols, uint32_t ld, uint64_t off, uint64_t stride,
                              uint32_t batch, int half) {
  if (ld == 0) ld = cols;
  VKLM_ASSERT(ld >= cols, "%s: %s row stride %u < its %u columns", op, what, ld, cols);
  VKLM_ASSERT(b.block, "%s: %s has no buffer", op, what);
  uint64_t end = off + (uint64_t)(batch - 1) * stride + (uint64_t)(rows - 1) * ld + cols;
  uint64_t bytes = half ? (end + 1) / 2 * 4 : end * 4;
  VKLM_ASSERT(end <= (1ull << 32),
              "%s: %s spans %llu elements, past the 2^32 the shaders index", op, what,
              (unsigned long long)end);
  VKLM_ASSERT(b.size >= bytes, "%s: %s holds %llu bytes, needs %llu", op, what,
              (unsigned long long)b.size, (unsigned long long)bytes);
  return ld;
}

/* The fp32 kernels' epilogue variants, by what their binding 4 (extra) is (matmul.glsl): none;
 * the row sums of op(A) ("_dbias"); act = gelu(C) in C's layout ("_gelu"); pre, C multiplied by
 * gelu'(pre) in C's layout ("_dgelu"). Separate variants, so the plain kernels stay as they are. */
enum { EPI_NONE, EPI_ROWSUM, EPI_GELU, EPI_DGELU };
static const char *const CPU_SHADER[] = {"matmul_cpu_f32", "matmul_cpu_f32_dbias",
                                         "matmul_cpu_f32_gelu", "matmul_cpu_f32_dgelu"};
static const char *const TILED_SHADER[] = {"matmul_tiled_f32", "matmul_tiled_f32_dbias",
                                           "matmul_tiled_f32_gelu", "matmul_tiled_f32_dgelu"};
/* The 16-bit operand kernels' variants (row sums with an fp32 A only). The "_gelu" variants of
 * every family take spec constant 10, act's format (VKLM_GEMM_*: matmul_store.glsl). */
static const char *const CPU_F16B_SHADER[] = {"matmul_cpu_f16b", "matmul_cpu_f16b_dbias",
                                              "matmul_cpu_f16b_gelu", "matmul_cpu_f16b_dgelu"};
static const char *const TILED_F16_SHADER[] = {"matmul_tiled_f16", "matmul_tiled_f16_dbias",
                                               "matmul_tiled_f16_gelu", "matmul_tiled_f16_dgelu"};
#define SPEC_ACT_FMT 10 /* binding 4's format: act (written, "_gelu") or pre (read, "_dgelu") */
#define SPEC_DBUF 11 /* the tiled kernels' double buffering (matmul.glsl) */
#define SPEC_C_FMT 13 /* C's format (matmul_store.glsl): every body, 16-bit only with beta 0 */
#define SPEC_VEC 14   /* the tiled kernels' vector loads (matmul.glsl) */

/* The tiled kernels' vector loads (matmul.glsl's VEC: bit 0 A, bit 1 B): an operand gets them
 * where every 4-element group a tile loads starts at an element index that is a multiple of 4
 * and lies inside the matrix, i.e. its contiguous dimension (K for A, N for B; M and K when
 * transposed) and the tile's extent along it, its row stride, offset and batch stride are all
 * multiples of 4 (16-bit operands too: 4 elements are then 2 words, 8-byte aligned). */
static uint32_t vec_bits(const vklm_gemm *g, const gemm_push *pc, const vklm_matmul_config *cf) {
  if (cf->novec) return 0;
  uint32_t ea = g->trans_a ? g->M : g->K, ta = g->trans_a ? cf->BM : cf->BK;
  uint32_t eb = g->trans_b ? g->K : g->N, tb = g->trans_b ? cf->BK : cf->BN;
  uint32_t a = ea | ta | pc->lda | pc->off_a | pc->stride_a;
  uint32_t b = eb | tb | pc->ldb | pc->off_b | pc->stride_b;
  return (a % 4 == 0 ? 1u : 0u) | (b % 4 == 0 ? 2u : 0u);
}

/* naive: matmul_naive_f32 (fp32 only); else, for fp32 without a configuration cfg on a context
 * that asks for CPU-type kernels (vklm_context_cpu_kernels), matmul_cpu_f32; else the tiled
 * kernels with configuration cfg (NULL: chosen); epi (EPI_*, fp32 only) picks the epilogue
 * variant and extra its binding 4. One dispatch over the whole K: see gemm() for the split along
 * K. */
/* Whether gemm_one records matmul_cpu_f32 (or, for a 16-bit B, matmul_cpu_f16b: fp32 or 16-bit
 * A, row sums with an fp32 A) and its workgroup size into *wg. */
static int cpu_kernel_runs(vklm_context *ctx, int naive, int half_a, int half_b, int epi,
                           const vklm_matmul_config *cfg, uint32_t *wg) {
  return !naive && !cfg && (!half_a || half_b) && (!half_a || epi != EPI_ROWSUM) &&
         vklm_context_cpu_kernels(ctx) && cpu_kernel_fits(vklm_context_caps(ctx), wg);
}

static vklm_status gemm_one(vklm_cmd *cmd, int naive, vklm_buffer c, vklm_buffer a, int half_a,
                        vklm_buffer b, int half_b, vklm_buffer bias, int epi, vklm_buffer extra,
                        int act_fmt, int c_fmt, const vklm_gemm *g,
                        const vklm_matmul_config *cfg) {
  const char *op = naive ? "matmul_naive" : half_a || half_b ? "matmul_f16" : "matmul";
  vklm_context *ctx = vklm_cmd_context(cmd);
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint32_t batch = g->batch ? g->batch : 1;
  if (g->M == 0 || g->N == 0) return VKLM_OK;
  VKLM_ASSERT(!naive || (!half_a && !half_b), "matmul_naive: fp32 only");
  gemm_push pc = {0};
  pc.M = g->M;
  pc.N = g->N;
  pc.K = g->K;
  pc.alpha = g->alpha;
  pc.beta = g->beta;
  /* a 16-bit C (mixed precision's saved qkv / fch) is written once: beta 0, never read back */
  VKLM_ASSERT(c_fmt >= VKLM_GEMM_F32 && c_fmt <= VKLM_GEMM_BF16 &&
                  (c_fmt == VKLM_GEMM_F32 || (g->beta == 0.0f && !naive)),
              "%s: C format %d (0 f32, 1 f16, 2 bf16; 16-bit only with beta 0, beta is %g)", op,
              c_fmt, (double)g->beta);
  pc.ldc = check_operand(op, "c", c, g->M, g->N, g->ldc, g->off_c, g->stride_c, batch, c_fmt);
  if (g->K > 0) {
    pc.lda = g->trans_a ? check_operand(op, "a", a, g->K, g->M, g->lda, g->off_a, g->stride_a,
                                        batch, half_a)
                        : check_operand(op, "a", a, g->M, g->K, g->lda, g->off_a, g->stride_a,
                                        batch, half_a);
    pc.ldb = g->trans_b ? check_operand(op, "b", b, g->N, g->K, g->ldb, g->off_b, g->stride_b,
                                        batch, half_b)
                        : check_operand(op, "b", b, g->K, g->N, g->ldb, g->off_b, g->stride_b,
                                        batch, half_b);
  }
  VKLM_ASSERT(a.block && b.block, "%s: a and b need buffers", op);
  pc.stride_a = batch > 1 ? (uint32_t)g->stride_a : 0;
  pc.stride_b = batch > 1 ? (uint32_t)g->stride_b : 0;
  pc.stride_c = batch > 1 ? (uint32_t)g->stride_c : 0;
  pc.off_a = (uint32_t)g->off_a;
  pc.off_b = (uint32_t)g->off_b;
  pc.off_c = (uint32_t)g->off_c;
  pc.has_bias = bias.block && bias.size > 0;
  if (pc.has_bias)
    VKLM_ASSERT(bias.size >= (uint64_t)g->N * 4, "%s: bias holds %llu bytes, needs %u floats", op,
                (unsigned long long)bias.size, g->N);
  else
    bias = a; /* bound but not read */
  /* Grids past the device's workgroup-count limits (M or N over ~4M rows, batch over the z
   * limit) are refused by the runtime with a status. */
  if (epi != EPI_NONE)
    VKLM_ASSERT(!naive && extra.block && (epi != EPI_ROWSUM || !half_a),
                "%s: the %s epilogue needs %sits buffer", op,
                TILED_SHADER[epi] + sizeof "matmul_tiled_f32",
                epi == EPI_ROWSUM ? "an fp32 A and " : "");
  VKLM_ASSERT(act_fmt >= VKLM_GEMM_F32 && act_fmt <= VKLM_GEMM_BF16 &&
                  (act_fmt == VKLM_GEMM_F32 || epi == EPI_GELU || epi == EPI_DGELU),
              "%s: act/pre format %d (0 f32, 1 f16, 2 bf16; 16-bit only for the GELU epilogues)",
              op, act_fmt);
  if (epi == EPI_ROWSUM) /* the "_dbias" variants: row sums of op(A) into extra */
    VKLM_ASSERT(batch == 1 && !pc.has_bias && extra.size >= (uint64_t)g->M * 4,
                "%s: row sums need batch 1, no bias and %u floats", op, g->M);
  else if (epi != EPI_NONE) /* act (fp32 or 16-bit pairs) or pre (fp32): laid out as C */
    check_operand(op, epi == EPI_GELU ? "act" : "pre", extra, g->M, g->N, g->ldc, g->off_c,
                  g->stride_c, batch, act_fmt);
  vklm_buffer bufs[5] = {c, a, b, bias, extra};
  uint32_t nb = epi != EPI_NONE ? 5 : 4;
  uint32_t ta = g->trans_a ? 1 : 0, tb = g->trans_b ? 1 : 0;

  /* Cooperative matrices where they apply (matmul_coopmat.c: fp16 B, no configuration asked) or
   * are asked for (cfg == &vklm_matmul_config_coopmat). */
  if (!naive && epi == EPI_NONE && vklm__matmul_coopmat_pick(ctx, half_a, half_b, cfg))
    return vklm__matmul_coopmat_record(cmd, bufs, &pc, sizeof pc, g, half_a, half_b, c_fmt);

  if (naive) {
    uint32_t wg = vklm_op_wg1d(ctx), wx = 16 < wg ? 16 : wg, wy = wg / wx;
    uint32_t spec[8] = {wx, wy, 0, 0, 0, 0, ta, tb};
    uint32_t gx = (g->N + wx - 1) / wx, gy = (g->M + wy - 1) / wy;
    return vklm_op_dispatch(cmd, "matmul_naive_f32", spec, 8, bufs, 4, &pc, sizeof pc, gx, gy,
                            batch);
  }
  uint32_t wg;
  if (cpu_kernel_runs(ctx, naive, half_a, half_b, epi, cfg, &wg)) {
    cpu_block cb = cpu_block_choose(wg, g);
    uint32_t spec[SPEC_C_FMT + 1] = {cb.wg, cb.tm, cb.tn, 0, 0, 0, ta, tb, (uint32_t)half_a,
                                     (uint32_t)half_b, (uint32_t)act_fmt};
    uint32_t gx = (g->N + cb.wg * cb.tn - 1) / (cb.wg * cb.tn), gy = (g->M + cb.tm - 1) / cb.tm;
    uint32_t nspec = epi == EPI_GELU || epi == EPI_DGELU ? SPEC_ACT_FMT + 1 : half_b ? 10 : 8;
    spec[SPEC_C_FMT] = (uint32_t)c_fmt;
    if (c_fmt) nspec = SPEC_C_FMT + 1; /* only when set: the fp32-C pipelines are the ones before */
    return vklm_op_dispatch(cmd, half_b ? CPU_F16B_SHADER[epi] : CPU_SHADER[epi], spec, nspec,
                            bufs, nb, &pc, sizeof pc, gx, gy, batch);
  }
  vklm_matmul_config cf = cfg ? *cfg : vklm_matmul_config_choose(ctx, g);
  VKLM_ASSERT(fits(caps, &cf) && cf.threads == (cf.BM / cf.TM) * (cf.BN / cf.TN) && cf.dbuf <= 1,
              "%s: tile configuration %ux%ux%u/%ux%u/%u%s does not fit this device", op, cf.BM,
              cf.BN, cf.BK, cf.TM, cf.TN, cf.threads, cf.dbuf ? " double-buffered" : "");
  uint32_t spec[SPEC_VEC + 1] = {cf.threads, cf.BM, cf.BN, cf.BK, cf.TM, cf.TN, ta, tb,
                                 (uint32_t)half_a, (uint32_t)half_b, (uint32_t)act_fmt, cf.dbuf};
  uint32_t gx = (g->N + cf.BN - 1) / cf.BN, gy = (g->M + cf.BM - 1) / cf.BM;
  int half = half_a || half_b;
  /* spec constant 11 DBUF only when set: the single-buffered pipelines are the ones before */
  uint32_t nspec = cf.dbuf ? SPEC_DBUF + 1
                   : epi == EPI_GELU || epi == EPI_DGELU ? SPEC_ACT_FMT + 1
                   : half ? 10 : 8;
  spec[SPEC_C_FMT] = (uint32_t)c_fmt;
  if (c_fmt) nspec = SPEC_C_FMT + 1; /* C's format (13) likewise */
  spec[SPEC_VEC] = vec_bits(g, &pc, &cf);
  if (spec[SPEC_VEC]) nspec = SPEC_VEC + 1; /* and the vector loads (14) */
  return vklm_op_dispatch(cmd, half ? TILED_F16_SHADER[epi] : TILED_SHADER[epi], spec, nspec,
                          bufs, nb, &pc, sizeof pc, gx, gy, batch);
}

/* Long reductions are split along K into dispatches of at most MATMUL_K_CHUNK, each adding into
 * C (beta 1 after the first; the bias with the last), in a fixed order, so the result stays
 * deterministic. Why: Mesa's llvmpipe/lavapipe ends every loop of a shader invocation after
 * 65535 iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS, its guard against infinite loops, shared
 * by all loops the compiler did not unroll), which silently truncated GEMMs with K above ~29k
 * (the LM head's input gradient, K = 50257). Iterations per invocation for a K of 8192: the naive
 * kernel 8192 (its K loop); matmul_cpu_f32 8192 (its K loop; its row and column loops are
 * unrolled); the tiled kernels K/BK steps, each with the tile-load loops and the BK loop, which
 * 8192 keeps under the limit for every configuration (tested with K = 50257 in
 * tests/test_ops_matmul.c). GPU drivers have no such limit, so the split is applied only where the
 * driver needs it (vklm_matmul_k_chunk): there it would cost one extra read and write of C per
 * 8192 of K for nothing. matmul_cpu_f32's only loop is along K, so it takes 32768 (half the
 * limit, for the loops the compiler may add): the LM head's input gradient over a vocabulary
 * chunk of GPT-2's is one dispatch instead of four. */
#define MATMUL_K_CHUNK 8192u
#define MATMUL_K_CHUNK_CPU 32768u

/* Drivers that end shader loops early: llvmpipe (lavapipe reports driverName "llvmpipe"), and,
 * when the driver does not say its name (no VK_KHR_driver_properties), any CPU device. */
static int loop_limited(const vklm_caps *caps) {
  char name[sizeof caps->driver_name];
  size_t i = 0;
  for (; caps->driver_name[i] && i + 1 < sizeof name; i++)
    name[i] = (char)(caps->driver_name[i] >= 'A' && caps->driver_name[i] <= 'Z'
                         ? caps->driver_name[i] - 'A' + 'a'
                         : caps->driver_name[i]);
  name[i] = 0;
  if (!name[0]) return caps->type == VKLM_DEVICE_CPU;
  return strstr(name, "llvmpipe") != NULL || strstr(name, "lavapipe") != NULL;
}

uint32_t vklm_matmul_k_chunk(const vklm_context *ctx) {
  return loop_limited(vklm_context_caps(ctx)) ? MATMUL_K_CHUNK : 0;
}

/* The row sums add up over the parts; the GELU epilogues need the whole sum, so they run only
 * on the last part (beta 1: reading what the others accumulated in C), the others plain. */
static vklm_status gemm_epi(vklm_cmd *cmd, int naive, vklm_buffer c, vklm_buffer a, int half_a,
                            vklm_buffer b, int half_b, vklm_buffer bias, int epi,
                            vklm_buffer extra, int act_fmt, int c_fmt, const vklm_gemm *g,
                            const vklm_matmul_config *cfg) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t chunk = vklm_matmul_k_chunk(ctx), wg;
  if (chunk && cpu_kernel_runs(ctx, naive, half_a, half_b, epi, cfg, &wg))
    chunk = MATMUL_K_CHUNK_CPU;
  if (chunk == 0 || g->K <= chunk)
    return gemm_one(cmd, naive, c, a, half_a, b, half_b, bias, epi, extra, act_fmt, c_fmt, g,
                    cfg);
  /* the parts accumulate in C (beta 1), which a 16-bit C cannot hold exactly */
  VKLM_ASSERT(c_fmt == VKLM_GEMM_F32,
              "matmul: a 16-bit C takes K up to %u on this driver (one dispatch), not %u", chunk,
              g->K);
  uint64_t lda = g->lda ? g->lda : (g->trans_a ? g->M : g->K);
  uint64_t ldb = g->ldb ? g->ldb : (g->trans_b ? g->K : g->N);
  for (uint32_t k0 = 0; k0 < g->K; k0 += chunk) {
    uint32_t kn = g->K - k0 < chunk ? g->K - k0 : chunk;
    vklm_gemm part = *g;
    part.K = kn;
    part.lda = (uint32_t)lda;
    part.ldb = (uint32_t)ldb;
    part.off_a = g->off_a + (g->trans_a ? (uint64_t)k0 * lda : k0); /* A (M,K) or (K,M) */
    part.off_b = g->off_b + (g->trans_b ? k0 : (uint64_t)k0 * ldb); /* B (K,N) or (N,K) */
    if (k0 > 0) part.beta = 1.0f;
    int last = k0 + kn == g->K;
    int e = last || epi == EPI_ROWSUM ? epi : EPI_NONE;
    vklm_status st = gemm_one(cmd, naive, c, a, half_a, b, half_b, last ? bias : (vklm_buffer){0},
                              e, e != EPI_NONE ? extra : (vklm_buffer){0},
                              e != EPI_NONE ? act_fmt : VKLM_GEMM_F32, VKLM_GEMM_F32, &part,
                              cfg);
    if (st != VKLM_OK) return st;
  }
  return VKLM_OK;
}

/* gemm_epi with the row sums into rowsum when it has a buffer (the "_dbias" variants). */
static vklm_status gemm(vklm_cmd *cmd, int naive, vklm_buffer c, vklm_buffer a, int half_a,
                        vklm_buffer b, int half_b, vklm_buffer bias, vklm_buffer rowsum,
                        const vklm_gemm *g, const vklm_matmul_config *cfg) {
  return gemm_epi(cmd, naive, c, a, half_a, b, half_b, bias,
                  rowsum.block ? EPI_ROWSUM : EPI_NONE, rowsum, VKLM_GEMM_F32, VKLM_GEMM_F32, g,
                  cfg);
}

static const vklm_buffer NO_BIAS = {0};

vklm_status vklm_matmul(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                        const vklm_gemm *g) {
  return gemm(cmd, 0, c, a, 0, b, 0, NO_BIAS, NO_BIAS, g, NULL);
}

vklm_status vklm_matmul_bias(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                             vklm_buffer bias, const vklm_gemm *g) {
  return gemm(cmd, 0, c, a, 0, b, 0, bias, NO_BIAS, g, NULL);
}

vklm_status vklm_matmul_f16(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                            const vklm_gemm *g) {
  return gemm(cmd, 0, c, a, 1, b, 1, NO_BIAS, NO_BIAS, g, NULL);
}

vklm_status vklm_matmul_f16b(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                             const vklm_gemm *g) {
  return gemm(cmd, 0, c, a, 0, b, 1, NO_BIAS, NO_BIAS, g, NULL);
}

vklm_status vklm_matmul_ex(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, int a_f16, vklm_buffer b,
                           int b_f16, const vklm_gemm *g, const vklm_matmul_config *cfg) {
  VKLM_ASSERT(a_f16 >= VKLM_GEMM_F32 && a_f16 <= VKLM_GEMM_BF16 && b_f16 >= VKLM_GEMM_F32 &&
                  b_f16 <= VKLM_GEMM_BF16,
              "matmul: operand formats %d, %d (0 f32, 1 f16, 2 bf16)", a_f16, b_f16);
  return gemm(cmd, 0, c, a, a_f16, b, b_f16, NO_BIAS, NO_BIAS, g, cfg);
}


vklm_status vklm_matmul_naive(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                              const vklm_gemm *g) {
  return gemm(cmd, 1, c, a, 0, b, 0, NO_BIAS, NO_BIAS, g, NULL);
}

vklm_status vklm_matmul_gelu(vklm_cmd *cmd, vklm_buffer c, vklm_buffer act, vklm_buffer a,
                             vklm_buffer b, vklm_buffer bias, const vklm_gemm *g) {
  return gemm_epi(cmd, 0, c, a, 0, b, 0, bias, EPI_GELU, act, VKLM_GEMM_F32, VKLM_GEMM_F32, g,
                  NULL);
}

vklm_status vklm_matmul_dgelu(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                              vklm_buffer pre, const vklm_gemm *g) {
  return gemm_epi(cmd, 0, c, a, 0, b, 0, NO_BIAS, EPI_DGELU, pre, VKLM_GEMM_F32, VKLM_GEMM_F32,
                  g, NULL);
}

int vklm_matmul_epilogue_fuses(const vklm_context *ctx, int a_fmt, int b_fmt) {
  return !vklm__matmul_coopmat_pick(ctx, a_fmt, b_fmt, NULL);
}

#define FMT_OK(f) ((f) >= VKLM_GEMM_F32 && (f) <= VKLM_GEMM_BF16)

vklm_status vklm_matmul_gelu_fmt(vklm_cmd *cmd, vklm_buffer c, int c_fmt, vklm_buffer act,
                                 int act_fmt, vklm_buffer a, int a_fmt, vklm_buffer b, int b_fmt,
                                 vklm_buffer bias, const vklm_gemm *g) {
  VKLM_ASSERT(FMT_OK(a_fmt) && FMT_OK(b_fmt) && FMT_OK(act_fmt) && FMT_OK(c_fmt),
              "matmul_gelu: formats a %d, b %d, act %d, c %d (0 f32, 1 f16, 2 bf16)", a_fmt,
              b_fmt, act_fmt, c_fmt);
  return gemm_epi(cmd, 0, c, a, a_fmt, b, b_fmt, bias, EPI_GELU, act, act_fmt, c_fmt, g, NULL);
}

vklm_status vklm_matmul_dgelu_fmt(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, int a_fmt,
                                  vklm_buffer b, int b_fmt, vklm_buffer pre, int pre_fmt,
                                  const vklm_gemm *g) {
  VKLM_ASSERT(FMT_OK(a_fmt) && FMT_OK(b_fmt) && FMT_OK(pre_fmt),
              "matmul_dgelu: formats a %d, b %d, pre %d (0 f32, 1 f16, 2 bf16)", a_fmt, b_fmt,
              pre_fmt);
  return gemm_epi(cmd, 0, c, a, a_fmt, b, b_fmt, NO_BIAS, EPI_DGELU, pre, pre_fmt, VKLM_GEMM_F32,
                  g, NULL);
}

vklm_status vklm_matmul_fmt(vklm_cmd *cmd, vklm_buffer c, int c_fmt, vklm_buffer a, int a_fmt,
                            vklm_buffer b, int b_fmt, vklm_buffer bias, const vklm_gemm *g) {
  VKLM_ASSERT(FMT_OK(a_fmt) && FMT_OK(b_fmt) && FMT_OK(c_fmt),
              "matmul: formats a %d, b %d, c %d (0 f32, 1 f16, 2 bf16)", a_fmt, b_fmt, c_fmt);
  return gemm_epi(cmd, 0, c, a, a_fmt, b, b_fmt, bias, EPI_NONE, NO_BIAS, VKLM_GEMM_F32, c_fmt, g,
                  NULL);
}

vklm_status vklm_matmul_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp,
                                vklm_buffer weight, vklm_buffer bias, uint32_t BT, uint32_t C,
                                uint32_t OC) {
  vklm_gemm g = vklm_gemm_make(BT, OC, C);
  g.trans_b = 1; /* weight (OC,C) is op(B)^T */
  return gemm(cmd, 0, out, inp, 0, weight, 0, bias, NO_BIAS, &g, NULL);
}

vklm_status vklm_matmul_forward_gelu(vklm_cmd *cmd, vklm_buffer out, vklm_buffer act,
                                     vklm_buffer inp, vklm_buffer weight, vklm_buffer bias,
                                     uint32_t BT, uint32_t C, uint32_t OC) {
  vklm_gemm g = vklm_gemm_make(BT, OC, C);
  g.trans_b = 1;
  return gemm_epi(cmd, 0, out, inp, 0, weight, 0, bias, EPI_GELU, act, VKLM_GEMM_F32,
                  VKLM_GEMM_F32, &g, NULL);
}

/* vklm_matmul_backward and, with pre (a buffer), vklm_matmul_backward_gelu. */
static vklm_status linear_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dweight,
                                   vklm_buffer dbias, vklm_buffer dout, vklm_buffer inp,
                                   vklm_buffer weight, vklm_buffer pre, uint32_t BT, uint32_t C,
                                   uint32_t OC) {
  vklm_status st;
  int has_dinp = dinp.block && dinp.size > 0, has_dbias = dbias.block && dbias.size > 0;
  /* With a weight gradient, the bias gradient comes from the same pass over dout (the dW GEMM's
   * "_dbias" variant adds the row sums of dout^T: no dispatch of its own); alone, it is the
   * two-stage column sum. */
  if (has_dbias && !dweight.block) {
    /* dinp is overwritten below, so its memory is free scratch until then (the runtime puts a
     * barrier between the reduction's last read and the GEMM's write). */
    vklm_buffer scratch = {0};
    uint64_t room = (uint64_t)BT * C * 4;
    if (has_dinp && room > 0) scratch = vklm_buffer_slice(dinp, 0, dinp.size < room ? dinp.size : room);
    st = vklm_bias_backward(cmd, dbias, scratch, dout, BT, OC);
    if (st != VKLM_OK) return st;
  }
  if (dweight.block) { /* a frozen weight has no gradient */
    /* dweight (OC,C) += dout^T (OC,BT) @ inp (BT,C), the bias gradient with it; dinp's memory
     * (written below) is the split-K scratch where one is taken */
    if (has_dbias)
      VKLM_ASSERT(dbias.size >= (uint64_t)OC * 4, "matmul_backward: dbias holds %llu bytes, "
                  "needs %u floats", (unsigned long long)dbias.size, OC);
    st = vklm_matmul_dweight(cmd, dweight, has_dbias ? dbias : NO_BIAS, dout, inp, VKLM_GEMM_F32,
                             has_dinp ? dinp : NO_BIAS, BT, C, OC);
    if (st != VKLM_OK) return st;
  }
  if (has_dinp) { /* dinp (BT,C) = dout (BT,OC) @ weight (OC,C) (* gelu'(pre)) */
    vklm_gemm g = vklm_gemm_make(BT, C, OC);
    st = gemm_epi(cmd, 0, dinp, dout, 0, weight, 0, NO_BIAS, pre.block ? EPI_DGELU : EPI_NONE,
                  pre, VKLM_GEMM_F32, VKLM_GEMM_F32, &g, NULL);
    if (st != VKLM_OK) return st;
  }
  return VKLM_OK;
}

vklm_status vklm_matmul_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dweight,
                                 vklm_buffer dbias, vklm_buffer dout, vklm_buffer inp,
                                 vklm_buffer weight, uint32_t BT, uint32_t C, uint32_t OC) {
  return linear_backward(cmd, dinp, dweight, dbias, dout, inp, weight, NO_BIAS, BT, C, OC);
}

vklm_status vklm_matmul_backward_gelu(vklm_cmd *cmd, vklm_buffer dpre, vklm_buffer dweight,
                                      vklm_buffer dbias, vklm_buffer dout, vklm_buffer inp,
                                      vklm_buffer weight, vklm_buffer pre, uint32_t BT,
                                      uint32_t C, uint32_t OC) {
  VKLM_ASSERT(dpre.block && dpre.size > 0 && pre.block && pre.size > 0,
              "matmul_backward_gelu: dpre and pre need buffers");
  return linear_backward(cmd, dpre, dweight, dbias, dout, inp, weight, pre, BT, C, OC);
}

/* ---- split-K ----------------------------------------------------------------------------- */
/* A weight gradient dW = dout^T @ in has K = B*T large and M*N small (llama-tiny, GPT-2's
 * attention projection at small widths): its ceil(M/BM)*ceil(N/BN) workgroups leave most of a
 * GPU idle while each walks the whole K. Splitting K into S slices gives S times the workgroups.
 * Vulkan core does not say how many workgroups a device runs at once (no compute-unit count), so
 * the target is an estimate: 2 * 128 workgroups on discrete GPUs (LARGE_TILE_MIN_GROUPS: the
 * count that keeps the big ones busy, twice over for the tail), 2 * 32 on other GPUs, and on
 * CPU devices two per CPU thread (llvmpipe runs one workgroup per thread). A slice keeps at least
 * SPLITK_MIN_K of K (below that the extra pass over S*M*N floats costs more than it gives) and
 * S is at most SPLITK_MAX. */
#define SPLITK_MIN_K 256u
#define SPLITK_MAX 64u

uint32_t vklm_matmul_splitk_choose(const vklm_context *ctx, const vklm_gemm *g) {
  const vklm_caps *caps = vklm_context_caps(ctx);
  if ((g->batch ? g->batch : 1) != 1 || g->M == 0 || g->N == 0) return 1;
  vklm_matmul_config cf = vklm_matmul_config_choose(ctx, g);
  uint64_t groups = (uint64_t)((g->M + cf.BM - 1) / cf.BM) * ((g->N + cf.BN - 1) / cf.BN);
  uint64_t target;
  if (caps->type == VKLM_DEVICE_CPU) {
    target = 2 * host_cpus();
  } else {
    target = 2 * (uint64_t)(caps->type == VKLM_DEVICE_DISCRETE ? LARGE_TILE_MIN_GROUPS : 32);
  }
  if (groups >= target) return 1;
  uint64_t s = (target + groups - 1) / groups, smax = g->K / SPLITK_MIN_K;
  if (s > smax) s = smax;
  if (s > SPLITK_MAX) s = SPLITK_MAX;
  return s < 2 ? 1 : (uint32_t)s;
}

/* Each slice's part starts at a bindable offset (a multiple of the buffer alignment), so that the
 * slices' GEMMs write disjoint ranges and the runtime puts no barrier between them. */
static uint64_t splitk_part_bytes(const vklm_context *ctx, const vklm_gemm *g) {
  uint64_t al = vklm_buffer_alignment(ctx), b = (uint64_t)g->M * g->N * 4;
  return (b + al - 1) / al * al;
}

uint64_t vklm_matmul_splitk_scratch_bytes(const vklm_context *ctx, const vklm_gemm *g,
                                          uint32_t splits) {
  return splits > 1 ? splits * splitk_part_bytes(ctx, g) : 0;
}

typedef struct splitk_push {
  uint32_t M, N, S, pstride, ldc, off_c;
  float alpha, beta;
} splitk_push;

static vklm_status splitk(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b, int b_fmt,
                          const vklm_gemm *g, uint32_t splits, vklm_buffer scratch);

vklm_status vklm_matmul_splitk(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                               const vklm_gemm *g, uint32_t splits, vklm_buffer scratch) {
  return splitk(cmd, c, a, b, VKLM_GEMM_F32, g, splits, scratch);
}

/* The weight gradient (matmul.h). Split-K only on contexts recording the GPU kernels: the
 * CPU-type GEMMs already give each CPU thread its own blocks. */
vklm_status vklm_matmul_dweight(vklm_cmd *cmd, vklm_buffer dw, vklm_buffer db, vklm_buffer dout,
                                vklm_buffer in, int in_fmt, vklm_buffer scratch, uint32_t M,
                                uint32_t K, uint32_t N) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  VKLM_ASSERT(in_fmt >= VKLM_GEMM_F32 && in_fmt <= VKLM_GEMM_BF16,
              "matmul_dweight: input format %d (0 f32, 1 f16, 2 bf16)", in_fmt);
  int has_db = db.block && db.size > 0;
  vklm_gemm g = vklm_gemm_make(N, K, M);
  g.trans_a = 1;
  g.beta = 1.0f;
  uint32_t s = vklm_context_cpu_kernels(ctx) ? 1 : vklm_matmul_splitk_choose(ctx, &g);
  uint64_t need = vklm_matmul_splitk_scratch_bytes(ctx, &g, s);
  if (s > 1 && scratch.block && scratch.size >= need) {
    /* the bias gradient first, in the same scratch (the runtime orders the two) */
    vklm_status st = has_db ? vklm_bias_backward(cmd, db, scratch, dout, M, N) : VKLM_OK;
    return st != VKLM_OK ? st : splitk(cmd, dw, dout, in, in_fmt, &g, s, scratch);
  }
  /* one GEMM, the row sums of dout^T in its "_dbias" variant where the kernel has one */
  int fused = has_db && vklm_matmul_epilogue_fuses(ctx, VKLM_GEMM_F32, in_fmt);
  if (has_db && !fused) {
    if (scratch.size < vklm_bias_backward_scratch_bytes(M, N)) scratch = NO_BIAS;
    vklm_status st = vklm_bias_backward(cmd, db, scratch, dout, M, N);
    if (st != VKLM_OK) return st;
  }
  return gemm(cmd, 0, dw, dout, VKLM_GEMM_F32, in, in_fmt, NO_BIAS, fused ? db : NO_BIAS, &g,
              NULL);
}

uint64_t vklm_matmul_dweight_scratch_bytes(const vklm_context *ctx, uint32_t M, uint32_t K,
                                           uint32_t N) {
  vklm_gemm g = vklm_gemm_make(N, K, M);
  g.trans_a = 1;
  return vklm_matmul_splitk_scratch_bytes(ctx, &g, vklm_matmul_splitk_choose(ctx, &g));
}

static vklm_status splitk(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b, int b_fmt,
                          const vklm_gemm *g, uint32_t splits, vklm_buffer scratch) {
  const char *op = "matmul_splitk";
  VKLM_ASSERT((g->batch ? g->batch : 1) == 1, "%s: batch %u (one matrix only)", op, g->batch);
  VKLM_ASSERT(splits >= 1 && splits <= SPLITK_MAX, "%s: %u slices (1..%u)", op, splits,
              SPLITK_MAX);
  if (g->M == 0 || g->N == 0) return VKLM_OK;
  uint32_t kper = splits > 1 && g->K > 0 ? (g->K + splits - 1) / splits : g->K;
  uint32_t S = kper ? (g->K + kper - 1) / kper : 1; /* no empty slice */
  if (S <= 1) return gemm(cmd, 0, c, a, 0, b, b_fmt, NO_BIAS, NO_BIAS, g, NULL);
  uint64_t mn = (uint64_t)g->M * g->N, pb = splitk_part_bytes(vklm_cmd_context(cmd), g);
  VKLM_ASSERT(pb / 4 * S < (1ull << 32), "%s: %u slices of %u x %u exceed 2^32 elements", op, S,
              g->M, g->N);
  VKLM_ASSERT(scratch.block && scratch.size >= pb * S,
              "%s: scratch holds %llu bytes, needs %llu (vklm_matmul_splitk_scratch_bytes)", op,
              (unsigned long long)scratch.size, (unsigned long long)(pb * S));
  splitk_push pc = {g->M, g->N, S, (uint32_t)(pb / 4), 0, (uint32_t)g->off_c, g->alpha, g->beta};
  pc.ldc = check_operand(op, "c", c, g->M, g->N, g->ldc, g->off_c, 0, 1, 0);
  uint64_t lda = g->lda ? g->lda : (g->trans_a ? g->M : g->K);
  uint64_t ldb = g->ldb ? g->ldb : (g->trans_b ? g->K : g->N);
  /* The slices' partial products, each packed (M,N) at its own aligned range of scratch: the
   * full slices (kper of K each) as one batched GEMM, slice z its batch item (all in one
   * dispatch, so they run side by side), and a shorter last slice, if any, as a GEMM of its own
   * into its own range (no barrier between the two). */
  uint32_t full = g->K / kper, rem = g->K - full * kper;
  vklm_gemm part = *g;
  part.K = kper;
  part.batch = full;
  part.lda = (uint32_t)lda;
  part.ldb = (uint32_t)ldb;
  part.stride_a = g->trans_a ? (uint64_t)kper * lda : kper; /* A (K,M) or (M,K) */
  part.stride_b = g->trans_b ? kper : (uint64_t)kper * ldb; /* B (N,K) or (K,N) */
  part.alpha = 1.0f;
  part.beta = 0.0f;
  part.ldc = g->N;
  part.off_c = 0;
  part.stride_c = pb / 4;
  vklm_status st = gemm(cmd, 0, vklm_buffer_slice(scratch, 0, full * pb), a, 0, b, b_fmt,
                        NO_BIAS, NO_BIAS, &part, NULL);
  if (st != VKLM_OK) return st;
  if (rem) {
    uint64_t k0 = (uint64_t)full * kper;
    part.K = rem;
    part.batch = 1;
    part.stride_a = part.stride_b = part.stride_c = 0;
    part.off_a = g->off_a + (g->trans_a ? k0 * lda : k0);
    part.off_b = g->off_b + (g->trans_b ? k0 : k0 * ldb);
    st = gemm(cmd, 0, vklm_buffer_slice(scratch, full * pb, mn * 4), a, 0, b, b_fmt, NO_BIAS,
              NO_BIAS, &part, NULL);
    if (st != VKLM_OK) return st;
  }
  vklm_buffer bufs[2] = {c, vklm_buffer_slice(scratch, 0, pb * S)};
  return vklm_op_dispatch_1d(cmd, "matmul_splitk_reduce_f32", bufs, 2, &pc, sizeof pc, mn);
}

/* ---- references ------------------------------------------------------------------------- */

static double load(const void *x, int half, uint64_t i) {
  if (!half) return ((const float *)x)[i];
  uint32_t w = ((const uint32_t *)x)[i / 2];
  uint16_t h = (uint16_t)(w >> (16 * (i & 1)));
  if (half == VKLM_GEMM_BF16) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  return vklm_f16_to_f32_ref(h);
}

void vklm_gemm_ref(float *c, const void *a, int a_f16, const void *b, int b_f16,
                   const vklm_gemm *g) {
  uint32_t batch = g->batch ? g->batch : 1;
  uint64_t lda = g->lda ? g->lda : (g->trans_a ? g->M : g->K);
  uint64_t ldb = g->ldb ? g->ldb : (g->trans_b ? g->K : g->N);
  uint64_t ldc = g->ldc ? g->ldc : g->N;
  for (uint32_t z = 0; z < batch; z++) {
    uint64_t ab = g->off_a + z * g->stride_a, bb = g->off_b + z * g->stride_b;
    uint64_t cb = g->off_c + z * g->stride_c;
    for (uint32_t m = 0; m < g->M; m++)
      for (uint32_t n = 0; n < g->N; n++) {
        double s = 0;
        for (uint32_t k = 0; k < g->K; k++) {
          double av = load(a, a_f16, ab + (g->trans_a ? k * lda + m : m * lda + k));
          double bv = load(b, b_f16, bb + (g->trans_b ? n * ldb + k : k * ldb + n));
          s += av * bv;
        }
        float *cp = &c[cb + m * ldc + n];
        double v = g->alpha * s;
        if (g->beta != 0.0f) v += (double)g->beta * *cp;
        *cp = (float)v;
      }
  }
}

void vklm_matmul_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                             uint32_t BT, uint32_t C, uint32_t OC) {
  for (uint32_t t = 0; t < BT; t++)
    for (uint32_t o = 0; o < OC; o++) {
      double s = bias ? bias[o] : 0.0;
      for (uint32_t i = 0; i < C; i++) s += (double)inp[(size_t)t * C + i] * weight[(size_t)o * C + i];
      out[(size_t)t * OC + o] = (float)s;
    }
}

void vklm_matmul_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, uint32_t BT, uint32_t C,
                              uint32_t OC) {
  if (dinp)
    for (uint32_t t = 0; t < BT; t++)
      for (uint32_t i = 0; i < C; i++) {
        double s = 0;
        for (uint32_t o = 0; o < OC; o++) s += (double)dout[(size_t)t * OC + o] * weight[(size_t)o * C + i];
        dinp[(size_t)t * C + i] = (float)s;
      }
  for (uint32_t o = 0; o < OC; o++) {
    for (uint32_t i = 0; i < C; i++) {
      double s = 0;
      for (uint32_t t = 0; t < BT; t++) s += (double)dout[(size_t)t * OC + o] * inp[(size_t)t * C + i];
      dweight[(size_t)o * C + i] += (float)s;
    }
    if (dbias) {
      double s = 0;
      for (uint32_t t = 0; t < BT; t++) s += dout[(size_t)t * OC + o];
      dbias[o] += (float)s;
    }
  }
}

void vklm_matmul_forward_gelu_ref(float *out, float *act, const float *inp, const float *weight,
                                  const float *bias, uint32_t BT, uint32_t C, uint32_t OC) {
  vklm_matmul_forward_ref(out, inp, weight, bias, BT, C, OC);
  vklm_gelu_forward_ref(act, out, BT * OC);
}

void vklm_matmul_backward_gelu_ref(float *dpre, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const float *pre,
                                   uint32_t BT, uint32_t C, uint32_t OC) {
  vklm_matmul_backward_ref(dpre, dweight, dbias, dout, inp, weight, BT, C, OC);
  vklm_gelu_backward_ref(dpre, dpre, pre, BT * C);
}

/* Linear layers on quantized weights (shaders/matvec_forward_*.comp, matvec.glsl, quant.glsl,
 * matmul_tiled_q8_0/q4_0.comp with matmul.glsl), their C references and the test quantizers. */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "activation.h"
#include "elementwise.h"
#include "formats/quant.h"
#include "matmul.h"
#include "op_util.h"

static const char *MATVEC_SHADER[VKLM_DTYPE_LINEAR_COUNT] = {
    "matvec_forward_f32", "matvec_forward_f16", "matvec_forward_q8_0", "matvec_forward_q4_0"};
static const char *MATVEC_GELU_SHADER[VKLM_DTYPE_LINEAR_COUNT] = {
    "matvec_forward_f32_gelu", "matvec_forward_f16_gelu", "matvec_forward_q8_0_gelu",
    "matvec_forward_q4_0_gelu"};
static const char *TILED_SHADER[VKLM_DTYPE_LINEAR_COUNT] = {
    "matmul_tiled_f32", "matmul_tiled_f16", "matmul_tiled_q8_0", "matmul_tiled_q4_0"};

int vklm_dtype_from_ggml(uint32_t ggml_type, vklm_dtype *out) {
  switch (ggml_type) { /* ggml's type numbers, as GGUF stores them */
  case 0: *out = VKLM_DTYPE_F32; return 0;
  case 1: *out = VKLM_DTYPE_F16; return 0;
  case 2: *out = VKLM_DTYPE_Q4_0; return 0;
  case 8: *out = VKLM_DTYPE_Q8_0; return 0;
  default: return -1;
  }
}

static int quantized(vklm_dtype t) { return vklm_dtype_is_block(t); }
#define TYPE_NAME(t) vklm_dtype_name(t)

/* Shape and size checks shared by both kernels. */
static void check(const char *op, vklm_buffer out, vklm_buffer inp, vklm_buffer w,
                  vklm_dtype type, vklm_buffer bias, uint32_t M, uint32_t N, uint32_t K) {
  VKLM_ASSERT((unsigned)type < VKLM_DTYPE_LINEAR_COUNT || type == VKLM_DTYPE_BF16,
              "%s: unknown weight type %d", op, (int)type);
  VKLM_ASSERT(N > 0 && K > 0, "%s: empty weight (%u,%u)", op, N, K);
  VKLM_ASSERT(!quantized(type) || K % VKLM_QK == 0, "%s: %s needs K %% 32 == 0, K = %u", op,
              TYPE_NAME(type), K);
  uint64_t wb = vklm_dtype_buffer_bytes(type, N, K);
  VKLM_ASSERT(wb < (1ull << 32), "%s: a %s weight (%u,%u) is %llu bytes, past the 4 GiB the "
              "shaders address", op, TYPE_NAME(type), N, K, (unsigned long long)wb);
  VKLM_ASSERT((uint64_t)M * K < (1ull << 32) && (uint64_t)M * N < (1ull << 32),
              "%s: (M,K,N) = (%u,%u,%u) past 2^32 elements", op, M, K, N);
  VKLM_ASSERT(out.block && inp.block && w.block, "%s: out, inp and w need buffers", op);
  VKLM_ASSERT(out.size >= (uint64_t)M * N * 4, "%s: out holds %llu bytes, needs %u x %u floats",
              op, (unsigned long long)out.size, M, N);
  VKLM_ASSERT(inp.size >= (uint64_t)M * K * 4, "%s: inp holds %llu bytes, needs %u x %u floats",
              op, (unsigned long long)inp.size, M, K);
  VKLM_ASSERT(w.size >= wb, "%s: w holds %llu bytes, a %s (%u,%u) weight needs %llu", op,
              (unsigned long long)w.size, TYPE_NAME(type), N, K, (unsigned long long)wb);
  if (bias.block && bias.size > 0)
    VKLM_ASSERT(bias.size >= (uint64_t)N * 4, "%s: bias holds %llu bytes, needs %u floats", op,
                (unsigned long long)bias.size, N);
}

/* ---- matvec ---------------------------------------------------------------------------------- */

typedef struct matvec_push {
  uint32_t N, K, m0, has_bias, ldy, off_y;
} matvec_push;
_Static_assert(sizeof(matvec_push) == 24, "matvec_forward_*.comp push constants");

/* Threads per row of W: a power of two giving each thread at least two 8-weight units, at most
 * 64 (a row of 768 gets 32, of 3072 64) and at most the workgroup. */
static uint32_t threads_per_row(uint32_t K, uint32_t wg) {
  uint32_t units = (K + 7) / 8, tpr = 1;
  while (tpr * 2 <= wg && tpr * 2 <= 64 && tpr * 4 <= units) tpr *= 2;
  return tpr;
}

/* The output's layout: rows ld elements apart from element off (packed: ld = N, off = 0). */
static void check_out(const char *op, vklm_buffer out, uint32_t M, uint32_t N, uint32_t ld,
                      uint64_t off) {
  VKLM_ASSERT(ld >= N, "%s: output row stride %u < N = %u", op, ld, N);
  uint64_t end = M ? off + (uint64_t)(M - 1) * ld + N : 0;
  VKLM_ASSERT(end < (1ull << 32) && out.size >= end * 4,
              "%s: out holds %llu bytes, needs %llu floats", op, (unsigned long long)out.size,
              (unsigned long long)end);
}

/* The CPU-type variant (shaders/matvec_cpu.glsl) runs on contexts with CPU-type kernels for F32
 * and F16 weights whose rows are whole vec4s (K % 4 == 0): rows of W per invocation, and the
 * invocations per workgroup (a few SIMD vectors, so that narrow layers still give every CPU
 * thread workgroups). */
#define MATVEC_CPU_NB 2
#define MATVEC_CPU_WG 32
static int matvec_cpu_runs(vklm_context *ctx, vklm_dtype type, uint32_t K) {
  return (type == VKLM_DTYPE_F32 || type == VKLM_DTYPE_F16) && K % 4 == 0 &&
         vklm_context_cpu_kernels(ctx);
}
static const char *const MATVEC_CPU_SHADER[2][2] = {{"matvec_cpu_f32", "matvec_cpu_f32_gelu"},
                                                    {"matvec_cpu_f16", "matvec_cpu_f16_gelu"}};

/* act {0}: none; else act = gelu(out) too (the _gelu variants, act laid out as out). */
static vklm_status matvec(vklm_cmd *cmd, vklm_buffer out, uint32_t ldy, uint64_t off_y,
                          vklm_buffer inp, vklm_buffer w, vklm_dtype type, uint32_t M, uint32_t N,
                          uint32_t K, vklm_buffer bias, vklm_buffer act) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  VKLM_ASSERT(type < VKLM_DTYPE_LINEAR_COUNT, "matvec: no kernel for %s weights",
              TYPE_NAME(type));
  matvec_push pc = {N, K, 0, bias.block && bias.size > 0, ldy, (uint32_t)off_y};
  vklm_buffer bufs[5] = {out, inp, w, pc.has_bias ? bias : inp, act}; /* no bias: not read */
  int gelu = act.block != NULL;
  if (matvec_cpu_runs(ctx, type, K)) {
    uint32_t wg = vklm_op_wg_fit(ctx, MATVEC_CPU_WG, 0), per = wg * MATVEC_CPU_NB, gx, gy;
    vklm_groups_1d(ctx, (N + per - 1) / per, &gx, &gy);
    for (uint32_t m0 = 0; m0 < M; m0 += VKLM_MATVEC_MAX_M) {
      uint32_t nm = M - m0 < VKLM_MATVEC_MAX_M ? M - m0 : VKLM_MATVEC_MAX_M;
      uint32_t spec[3] = {wg, MATVEC_CPU_NB, nm};
      pc.m0 = m0;
      vklm_status st = vklm_op_dispatch(cmd, MATVEC_CPU_SHADER[type == VKLM_DTYPE_F16][gelu],
                                        spec, 3, bufs, gelu ? 5 : 4, &pc, sizeof pc, gx, gy, 1);
      if (st != VKLM_OK) return st;
    }
    return VKLM_OK;
  }
  for (uint32_t m0 = 0; m0 < M; m0 += VKLM_MATVEC_MAX_M) {
    uint32_t nm = M - m0 < VKLM_MATVEC_MAX_M ? M - m0 : VKLM_MATVEC_MAX_M;
    uint32_t wg = vklm_op_wg_fit(ctx, 128, 4 * nm);
    uint32_t tpr = threads_per_row(K, wg), rows = wg / tpr, gx, gy;
    uint32_t spec[3] = {wg, tpr, nm};
    pc.m0 = m0;
    vklm_groups_1d(ctx, (N + rows - 1) / rows, &gx, &gy);
    vklm_status st = vklm_op_dispatch(cmd, gelu ? MATVEC_GELU_SHADER[type] : MATVEC_SHADER[type],
                                      spec, 3, bufs, gelu ? 5 : 4, &pc, sizeof pc, gx, gy, 1);
    if (st != VKLM_OK) return st;
  }
  return VKLM_OK;
}

vklm_status vklm_matvec(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp, vklm_buffer w,
                        vklm_dtype type, uint32_t M, uint32_t N, uint32_t K,
                        vklm_buffer bias) {
  check("matvec", out, inp, w, type, bias, M, N, K);
  return matvec(cmd, out, N, 0, inp, w, type, M, N, K, bias, (vklm_buffer){0});
}

/* ---- tiled ------------------------------------------------------------------------------------ */

/* The push constants of the matmul_tiled_* shaders (as matmul.c's). */
typedef struct gemm_push {
  uint32_t M, N, K;
  uint32_t lda, ldb, ldc;
  uint32_t stride_a, stride_b, stride_c;
  uint32_t off_a, off_b, off_c;
  float alpha, beta;
  uint32_t has_bias;
} gemm_push;
_Static_assert(sizeof(gemm_push) == 60, "matmul_tiled_*.comp push constants");

static vklm_status matmul_w(vklm_cmd *cmd, vklm_buffer out, uint32_t ldc, uint64_t off_c,
                           vklm_buffer inp, vklm_buffer w, vklm_dtype type, uint32_t M,
                           uint32_t N, uint32_t K, vklm_buffer bias) {
  if (M == 0) return VKLM_OK;
  vklm_context *ctx = vklm_cmd_context(cmd);
  vklm_gemm g = vklm_gemm_make(M, N, K);
  g.trans_b = 1;
  if (type == VKLM_DTYPE_F32 || type == VKLM_DTYPE_F16 || type == VKLM_DTYPE_BF16) {
    /* matmul.c: the tiled dispatch by operand format, or the CPU-type fp32 kernel */
    g.ldc = ldc;
    g.off_c = off_c;
    int fmt = type == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : type == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : 0;
    return vklm_matmul_fmt(cmd, out, VKLM_GEMM_F32, inp, VKLM_GEMM_F32, w, fmt, bias, &g);
  }
  vklm_matmul_config cf = vklm_matmul_config_choose(ctx, &g);
  gemm_push pc = {0};
  pc.M = M;
  pc.N = N;
  pc.K = K;
  pc.lda = K;
  pc.ldb = K;
  pc.ldc = ldc;
  pc.off_c = (uint32_t)off_c;
  pc.alpha = 1.0f;
  pc.has_bias = bias.block && bias.size > 0;
  vklm_buffer bufs[4] = {out, inp, w, pc.has_bias ? bias : inp};
  /* 0 threads, 1..5 tile, 6 TRANS_A, 7 TRANS_B, and for matmul_tiled_f16 8 HALF_A, 9 HALF_B */
  uint32_t spec[10] = {cf.threads, cf.BM, cf.BN, cf.BK, cf.TM, cf.TN, 0, 1, 0, 1};
  uint32_t nspec = type == VKLM_DTYPE_F16 ? 10 : 8;
  return vklm_op_dispatch(cmd, TILED_SHADER[type], spec, nspec, bufs, 4, &pc, sizeof pc,
                          (N + cf.BN - 1) / cf.BN, (M + cf.BM - 1) / cf.BM, 1);
}

vklm_status vklm_matmul_w(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp, vklm_buffer w,
                          vklm_dtype type, uint32_t M, uint32_t N, uint32_t K,
                          vklm_buffer bias) {
  check("matmul_w", out, inp, w, type, bias, M, N, K);
  return matmul_w(cmd, out, N, 0, inp, w, type, M, N, K, bias);
}

/* Whether a linear forward of M rows runs a matrix-vector kernel (else the GEMM): up to
 * VKLM_LINEAR_MATVEC_MAX_M rows, but not for bf16 weights (mixed-precision training's copies have
 * no decode kernel). On contexts with CPU-type kernels, F32 and F16 weights take the CPU-type
 * matvec where K % 4 == 0 and otherwise the GEMM's CPU variants (matmul_cpu_f32, _f16b): the GPU
 * matvec's loads of x lane by lane cost llvmpipe more than its single pass over W saves
 * (docs/benchmarks.md). */
static int use_matvec(vklm_context *ctx, uint32_t M, vklm_dtype type, uint32_t K) {
  if (M > VKLM_LINEAR_MATVEC_MAX_M || type == VKLM_DTYPE_BF16) return 0;
  if ((type == VKLM_DTYPE_F32 || type == VKLM_DTYPE_F16) && vklm_context_cpu_kernels(ctx))
    return matvec_cpu_runs(ctx, type, K) || !vklm_matmul_cpu_available(ctx);
  return 1;
}

vklm_status vklm_linear_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp, vklm_buffer w,
                                vklm_dtype type, vklm_buffer bias, uint32_t M, uint32_t K,
                                uint32_t N) {
  return vklm_linear_forward_ex(cmd, out, N, 0, inp, w, type, bias, M, K, N);
}

vklm_status vklm_linear_forward_ex(vklm_cmd *cmd, vklm_buffer out, uint32_t ldo, uint64_t off_o,
                                   vklm_buffer inp, vklm_buffer w, vklm_dtype type,
                                   vklm_buffer bias, uint32_t M, uint32_t K, uint32_t N) {
  /* the packed-output check of the shared one, then the real layout */
  vklm_buffer whole = out;
  whole.size = (uint64_t)M * N * 4 > out.size ? (uint64_t)M * N * 4 : out.size;
  check("linear_forward", whole, inp, w, type, bias, M, N, K);
  check_out("linear_forward", out, M, N, ldo, off_o);
  /* bf16 weights (mixed-precision training's copies) have no decode kernel: the GEMM */
  if (use_matvec(vklm_cmd_context(cmd), M, type, K))
    return matvec(cmd, out, ldo, off_o, inp, w, type, M, N, K, bias, (vklm_buffer){0});
  return matmul_w(cmd, out, ldo, off_o, inp, w, type, M, N, K, bias);
}

vklm_status vklm_linear_forward_gelu(vklm_cmd *cmd, vklm_buffer out, vklm_buffer act,
                                     vklm_buffer inp, vklm_buffer w, vklm_dtype type,
                                     vklm_buffer bias, uint32_t M, uint32_t K, uint32_t N) {
  check("linear_forward_gelu", out, inp, w, type, bias, M, N, K);
  VKLM_ASSERT(act.block && act.size >= (uint64_t)M * N * 4,
              "linear_forward_gelu: act holds %llu bytes, needs %u x %u floats",
              (unsigned long long)act.size, M, N);
  if (use_matvec(vklm_cmd_context(cmd), M, type, K))
    return matvec(cmd, out, N, 0, inp, w, type, M, N, K, bias, act);
  if (type == VKLM_DTYPE_F32) return vklm_matmul_forward_gelu(cmd, out, act, inp, w, bias, M, K, N);
  int fmt = type == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : type == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : -1;
  if (fmt > 0 && vklm_matmul_epilogue_fuses(vklm_cmd_context(cmd), VKLM_GEMM_F32, fmt)) {
    /* 16-bit weights (mixed precision's copies, fp16 models): the GEMM's GELU variant */
    vklm_gemm g = vklm_gemm_make(M, N, K);
    g.trans_b = 1;
    return vklm_matmul_gelu_fmt(cmd, out, VKLM_GEMM_F32, act, VKLM_GEMM_F32, inp, VKLM_GEMM_F32,
                                w, fmt, bias, &g);
  }
  /* quantized weights past the decode path, or fp16 ones whose GEMM runs on cooperative
   * matrices (no epilogue variants there): the GEMM, then the activation */
  vklm_status st = matmul_w(cmd, out, N, 0, inp, w, type, M, N, K, bias);
  return st != VKLM_OK ? st : vklm_gelu_forward(cmd, act, out, M * N);
}

/* ---- references ------------------------------------------------------------------------------ */

static float half_at(const uint8_t *p) { return vklm_f16_to_f32_ref((uint16_t)(p[0] | p[1] << 8)); }

void vklm_weight_dequant_block_ref(vklm_dtype t, const uint8_t *block, float out[32]) {
  float d = half_at(block);
  const uint8_t *q = block + 2;
  if (t == VKLM_DTYPE_Q8_0) {
    for (int j = 0; j < 32; j++) out[j] = d * (float)(int8_t)q[j];
  } else {
    VKLM_ASSERT(t == VKLM_DTYPE_Q4_0, "dequant_block: %s is not a block type",
                vklm_dtype_name(t));
    for (int j = 0; j < 16; j++) {
      out[j] = d * (float)((q[j] & 15) - 8);
      out[j + 16] = d * (float)((q[j] >> 4) - 8);
    }
  }
}

void vklm_weight_dequant_row_ref(vklm_dtype t, const void *w, uint32_t n, uint32_t K,
                                 float *out) {
  const uint8_t *row = (const uint8_t *)w + vklm_dtype_bytes(t, n, K);
  switch (t) {
  case VKLM_DTYPE_F32: memcpy(out, row, (size_t)K * 4); break;
  case VKLM_DTYPE_F16:
    for (uint32_t k = 0; k < K; k++) out[k] = half_at(row + 2 * (size_t)k);
    break;
  case VKLM_DTYPE_BF16:
    for (uint32_t k = 0; k < K; k++)
      out[k] = vklm_bf16_to_f32_ref((uint16_t)(row[2 * (size_t)k] | row[2 * (size_t)k + 1] << 8));
    break;
  case VKLM_DTYPE_Q8_0:
  case VKLM_DTYPE_Q4_0: {
    VKLM_ASSERT(K % VKLM_QK == 0, "dequant_row: K = %u is not a multiple of 32", K);
    uint32_t bb = t == VKLM_DTYPE_Q8_0 ? VKLM_Q8_0_BLOCK_BYTES : VKLM_Q4_0_BLOCK_BYTES;
    for (uint32_t b = 0; b < K / VKLM_QK; b++)
      vklm_weight_dequant_block_ref(t, row + (size_t)b * bb, out + (size_t)b * VKLM_QK);
    break;
  }
  default: VKLM_ASSERT(0, "unknown weight type %d", (int)t);
  }
}

void vklm_linear_forward_ref(float *out, const float *inp, const void *w, vklm_dtype type,
                             const float *bias, uint32_t M, uint32_t K, uint32_t N) {
  float *row = malloc((size_t)K * sizeof *row);
  VKLM_ASSERT(row, "linear_forward_ref: out of memory");
  for (uint32_t n = 0; n < N; n++) {
    vklm_weight_dequant_row_ref(type, w, n, K, row);
    for (uint32_t m = 0; m < M; m++) {
      const float *x = inp + (size_t)m * K;
      double s = bias ? bias[n] : 0.0;
      for (uint32_t k = 0; k < K; k++) s += (double)x[k] * row[k];
      out[(size_t)m * N + n] = (float)s;
    }
  }
  free(row);
}

/* ---- quantizers: the file-format side's (engine/formats/quant.c), by weight type -------------- */

void vklm_q_quantize(vklm_dtype t, const float *src, void *dst, uint32_t N, uint32_t K) {
  static const uint32_t GGML[VKLM_DTYPE_LINEAR_COUNT] = {0 /* F32 */, 1 /* F16 */, 8 /* Q8_0 */,
                                                        2 /* Q4_0 */};
  VKLM_ASSERT((unsigned)t < VKLM_DTYPE_LINEAR_COUNT, "unknown weight type %d", (int)t);
  VKLM_ASSERT(!quantized(t) || K % VKLM_QK == 0, "quantize: K = %u is not a multiple of 32", K);
  int rc = vklm_ggml_from_f32(GGML[t], dst, src, (size_t)N * K);
  VKLM_ASSERT(rc == 0, "quantize to %s: non-finite input", TYPE_NAME(t));
}

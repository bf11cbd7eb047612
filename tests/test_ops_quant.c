/* Quantized-weight linear layers (VKLM_TEST_GPU): for every weight type (F32, F16, Q8_0, Q4_0),
 * out = inp @ W^T (+ bias) on the GPU against the C reference on the SAME quantized bytes
 * (the dequantized weights are exact in fp32, so only the summation order differs), through
 * vklm_linear_forward at M = 1 and 3 (matvec) and 37 and 130 (tiled), over shapes from one block
 * to GPT-2's (2304,768), with and without bias; both kernels are also forced past the threshold
 * (matvec at M = 37 in passes of 8, tiled at M = 3); F32/F16 with K not a multiple of 8.
 * The quantizers and block dequantizers are checked on a known block (ggml's rules) and by the
 * round-trip error bound. The matvec must be bitwise deterministic across runs, and a grid too
 * large for one dimension must split. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/activation.h"
#include "ops/elementwise.h"
#include "testutil.h"

static uint64_t seed = 1;

/* The per-element check as in test_ops_matmul (fp32 accumulation over K terms). */
static double tol_for(uint32_t K) { return 3e-5 * (1.0 + sqrt((double)K)); }

/* ||got - want|| / ||want||. */
static double rel_norm(const float *got, const float *want, size_t n) {
  double e = 0, w = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    e += d * d;
    w += (double)want[i] * want[i];
  }
  return w > 0 ? sqrt(e / w) : sqrt(e);
}

/* Random (N,K) weight quantized to type t; returns the bytes (padded to whole words, zeroed). */
static uint8_t *make_weight(vklm_dtype t, uint32_t N, uint32_t K) {
  float *w = vt_randf((size_t)N * K, seed++, -1, 1);
  uint64_t bytes = vklm_dtype_buffer_bytes(t, N, K);
  uint8_t *q = calloc(bytes, 1);
  if (t == VKLM_DTYPE_BF16) vklm_convert_f32_to_bf16_ref((uint32_t *)q, w, N * K);
  else vklm_q_quantize(t, w, q, N, K);
  free(w);
  return q;
}

typedef enum { PATH_AUTO, PATH_MATVEC, PATH_TILED } path;
static const char *PATH_NAME[] = {"linear", "matvec", "tiled"};
static const char *family = "auto"; /* the kernel family under test (main) */

static void run_case(vt_env *env, vklm_dtype t, uint32_t M, uint32_t N, uint32_t K,
                     int with_bias, path p) {
  uint8_t *w = make_weight(t, N, K);
  float *inp = vt_randf((size_t)M * K, seed++, -1, 1);
  float *bias = vt_randf(N, seed++, -1, 1);
  float *want = malloc((size_t)M * N * sizeof *want);
  vklm_buffer W = vt_upload(env, w, vklm_dtype_buffer_bytes(t, N, K));
  vklm_buffer Inp = vt_upload(env, inp, (size_t)M * K * 4);
  vklm_buffer Bias = with_bias ? vt_upload(env, bias, (size_t)N * 4) : (vklm_buffer){0};
  vklm_buffer Out = vt_alloc(env, (size_t)M * N * 4);
  vt_begin(env);
  vklm_status st = p == PATH_MATVEC  ? vklm_matvec(env->cmd, Out, Inp, W, t, M, N, K, Bias)
                   : p == PATH_TILED ? vklm_matmul_w(env->cmd, Out, Inp, W, t, M, N, K, Bias)
                                     : vklm_linear_forward(env->cmd, Out, Inp, W, t, Bias, M, K, N);
  vt_ok(env, st, "linear");
  vt_run(env);
  float *got = vt_download(env, Out, (size_t)M * N);
  vklm_linear_forward_ref(want, inp, w, t, with_bias ? bias : NULL, M, K, N);
  const char *kernel = p != PATH_AUTO                  ? PATH_NAME[p]
                       : M <= VKLM_LINEAR_MATVEC_MAX_M && t != VKLM_DTYPE_BF16 ? "matvec"
                                                       : "tiled";
  char what[128];
  snprintf(what, sizeof what, "%s %-4s %-6s M=%-3u (N,K)=(%u,%u)%s", family, vklm_dtype_name(t),
           kernel, M, N, K, with_bias ? " +bias" : "");
  double rn = rel_norm(got, want, (size_t)M * N);
  size_t len = strlen(what);
  snprintf(what + len, sizeof what - len, " norm %.1e", rn);
  vt_compare(env, what, got, want, (size_t)M * N, tol_for(K));
  if (rn > 1e-4) vt_expect(env, 0, "%s: relative norm error %.2e > 1e-4", what, rn);
  free(w), free(inp), free(bias), free(want), free(got);
  vklm_arena_reset(env->arena);
}

/* vklm_linear_forward_gelu: out and act = gelu(out) against the references, for every weight
 * type on the decode path (M <= 8: the matvec's _gelu variants, one dispatch) and past it (fp32:
 * the GEMM's epilogue, one dispatch; f16: the GEMM and the activation, two). */
static void run_gelu(vt_env *env, vklm_dtype t, uint32_t M, uint32_t N, uint32_t K, int with_bias) {
  uint8_t *w = make_weight(t, N, K);
  float *inp = vt_randf((size_t)M * K, seed++, -1, 1), *bias = vt_randf(N, seed++, -1, 1);
  float *want = malloc((size_t)M * N * sizeof *want), *wact = malloc((size_t)M * N * sizeof *wact);
  vklm_buffer W = vt_upload(env, w, vklm_dtype_buffer_bytes(t, N, K));
  vklm_buffer Inp = vt_upload(env, inp, (size_t)M * K * 4);
  vklm_buffer Bias = with_bias ? vt_upload(env, bias, (size_t)N * 4) : (vklm_buffer){0};
  vklm_buffer Out = vt_alloc(env, (size_t)M * N * 4), Act = vt_alloc(env, (size_t)M * N * 4);
  vt_begin(env);
  vt_ok(env, vklm_linear_forward_gelu(env->cmd, Out, Act, Inp, W, t, Bias, M, K, N), "linear gelu");
  uint32_t nd = vklm_cmd_dispatch_count(env->cmd);
  vt_run(env);
  float *got = vt_download(env, Out, (size_t)M * N), *gact = vt_download(env, Act, (size_t)M * N);
  vklm_linear_forward_ref(want, inp, w, t, with_bias ? bias : NULL, M, K, N);
  vklm_gelu_forward_ref(wact, got, M * N); /* the activation of what the kernel computed */
  /* one dispatch: the matvec's _gelu variant, or the GEMM's GELU epilogue for fp32 and 16-bit
   * weights (unless a 16-bit GEMM runs on cooperative matrices); quantized: GEMM, then GELU */
  int fused16 = (t == VKLM_DTYPE_F16 || t == VKLM_DTYPE_BF16) &&
                vklm_matmul_epilogue_fuses(env->ctx, VKLM_GEMM_F32,
                                           t == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : VKLM_GEMM_BF16);
  uint32_t want_nd = M <= VKLM_LINEAR_MATVEC_MAX_M || t == VKLM_DTYPE_F32 || fused16 ? 1 : 2;
  char what[128];
  snprintf(what, sizeof what, "%s %-4s linear+gelu M=%-3u (N,K)=(%u,%u)%s", family,
           vklm_dtype_name(t), M, N, K, with_bias ? " +bias" : "");
  vt_compare(env, what, got, want, (size_t)M * N, tol_for(K));
  snprintf(what + strlen(what), sizeof what - strlen(what), " act");
  vt_compare(env, what, gact, wact, (size_t)M * N, 1e-6);
  vt_expect(env, nd == want_nd, "%s: %u dispatch(es) (want %u)", what, nd, want_nd);
  free(w), free(inp), free(bias), free(want), free(wact), free(got), free(gact);
  vklm_arena_reset(env->arena);
}

/* The quantizers against ggml's rules on a known block, and the dequantizer round trip. */
static void test_blocks(vt_env *env) {
  float x[32], back[32];
  uint8_t b8[VKLM_Q8_0_BLOCK_BYTES], b4[VKLM_Q4_0_BLOCK_BYTES];
  for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
  vklm_q_quantize(VKLM_DTYPE_Q8_0, x, b8, 1, 32);
  vklm_q_quantize(VKLM_DTYPE_Q4_0, x, b4, 1, 32);
  /* Q8_0: d = 16/127; x = -16 -> q = -127 (0x81); x = 15 -> round(15*127/16) = 119. */
  uint16_t d8 = (uint16_t)(b8[0] | b8[1] << 8);
  vt_expect(env, d8 == vklm_f32_to_f16_ref(16.0f / 127.0f) && b8[2] == 0x81 && b8[2 + 31] == 119,
            "q8_0 known block: d %04x q0 %02x q31 %u", d8, b8[2], b8[33]);
  /* Q4_0: the signed max is -16, d = 2, q = min(15, (int)(x/2 + 8.5)): byte 0 = q0 | q16 << 4 =
   * 0 | 8 << 4; byte 15 = q15 | q31 << 4 = 8 | 15 << 4 (q31 = (int)16.0 clamped). */
  uint16_t d4 = (uint16_t)(b4[0] | b4[1] << 8);
  vt_expect(env, d4 == 0x4000 && b4[2] == 0x80 && b4[2 + 15] == 0xf8,
            "q4_0 known block: d %04x byte0 %02x byte15 %02x", d4, b4[2], b4[17]);
  vklm_weight_dequant_block_ref(VKLM_DTYPE_Q4_0, b4, back);
  vt_expect(env, back[0] == -16.0f && back[16] == 0.0f && back[31] == 14.0f,
            "q4_0 dequant: %g %g %g", back[0], back[16], back[31]);
  /* Round trip on random data: |x - dq(q(x))| <= d/2 (Q8_0), <= d (Q4_0, with the clamp). */
  uint32_t N = 9, K = 64;
  float *r = vt_randf((size_t)N * K, seed++, -3, 3), *row = malloc(K * sizeof *row);
  for (int ti = VKLM_DTYPE_F16; ti <= VKLM_DTYPE_Q4_0; ti++) {
    vklm_dtype t = (vklm_dtype)ti;
    uint8_t *q = calloc(vklm_dtype_buffer_bytes(t, N, K), 1);
    vklm_q_quantize(t, r, q, N, K);
    double worst = 0;
    for (uint32_t n = 0; n < N; n++) {
      vklm_weight_dequant_row_ref(t, q, n, K, row);
      for (uint32_t b = 0; b < K / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(r[n * K + b * 32 + j]));
        /* half a step (Q8_0) or a step (Q4_0, the clamp at 15), plus the scale's fp16 rounding
         * (2^-11 relative) times the largest |q| (127, 8) */
        double unit = t == VKLM_DTYPE_F16    ? amax / 2048.0
                      : t == VKLM_DTYPE_Q8_0 ? amax / 127.0 * (0.5 + 127.0 / 2048)
                                              : amax / 8.0 * (1.0 + 8.0 / 2048);
        for (int j = 0; j < 32; j++) {
          double e = fabs(row[b * 32 + j] - r[n * K + b * 32 + j]) / unit;
          if (e > worst) worst = e;
        }
      }
    }
    printf("  %-4s round trip: worst |x - dq(q(x))| = %.3f of its bound\n",
           vklm_dtype_name(t), worst);
    vt_expect(env, worst <= 1.0 + 1e-3, "%s round trip %.3f of the bound",
              vklm_dtype_name(t), worst);
    free(q);
  }
  free(r), free(row);
}

/* The matvec twice on the same inputs: bitwise equal. */
static void test_determinism(vt_env *env) {
  uint32_t M = 2, N = 300, K = 768;
  vklm_dtype t = VKLM_DTYPE_Q4_0;
  uint8_t *w = make_weight(t, N, K);
  float *inp = vt_randf((size_t)M * K, seed++, -1, 1);
  vklm_buffer W = vt_upload(env, w, vklm_dtype_buffer_bytes(t, N, K));
  vklm_buffer Inp = vt_upload(env, inp, (size_t)M * K * 4);
  vklm_buffer O1 = vt_alloc(env, (size_t)M * N * 4), O2 = vt_alloc(env, (size_t)M * N * 4);
  vt_begin(env);
  vt_ok(env, vklm_matvec(env->cmd, O1, Inp, W, t, M, N, K, (vklm_buffer){0}), "matvec");
  vt_run(env);
  vt_begin(env);
  vt_ok(env, vklm_matvec(env->cmd, O2, Inp, W, t, M, N, K, (vklm_buffer){0}), "matvec");
  vt_run(env);
  float *a = vt_download(env, O1, (size_t)M * N), *b = vt_download(env, O2, (size_t)M * N);
  vt_expect(env, memcmp(a, b, (size_t)M * N * 4) == 0, "matvec is not deterministic");
  printf("  matvec deterministic across runs: %s\n", memcmp(a, b, (size_t)M * N * 4) ? "NO" : "yes");
  free(w), free(inp), free(a), free(b);
  vklm_arena_reset(env->arena);
}

/* Every product in both kernel families: the GPU kernels (the threads-per-row matvec, the tiled
 * GEMM) and the CPU-type ones (matvec_cpu for F32/F16 weights with K % 4 == 0, matmul_cpu). */
static void test_products(vt_env *env) {
  static const uint32_t shapes[][2] = {{1, 32}, {7, 64}, {67, 96}, {300, 768}, {2304, 768}};
  static const uint32_t Ms[] = {1, 3, 37, 130};
  int nshapes = sizeof shapes / sizeof shapes[0], nms = sizeof Ms / sizeof Ms[0];
  for (int ti = 0; ti < VKLM_DTYPE_LINEAR_COUNT; ti++)
    for (int s = 0; s < nshapes; s++)
      for (int m = 0; m < nms; m++) {
        /* bias on and off alternate over the grid; the small shapes get both */
        int bias = (ti + s + m) & 1;
        run_case(env, (vklm_dtype)ti, Ms[m], shapes[s][0], shapes[s][1], bias, PATH_AUTO);
        if (s < 3) run_case(env, (vklm_dtype)ti, Ms[m], shapes[s][0], shapes[s][1], !bias,
                            PATH_AUTO);
      }
  for (int ti = 0; ti < VKLM_DTYPE_LINEAR_COUNT; ti++) {
    vklm_dtype t = (vklm_dtype)ti;
    run_case(env, t, 37, 67, 96, 1, PATH_MATVEC); /* passes of 8 rows: 8+8+8+8+5 */
    run_case(env, t, 3, 67, 96, 1, PATH_TILED);
    run_case(env, t, 8, 300, 3072, 0, PATH_MATVEC); /* a long row (64 threads a row) */
  }
  /* unquantized weights with K not a multiple of 8 (partial units; odd rows start mid-word) */
  for (int ti = VKLM_DTYPE_F32; ti <= VKLM_DTYPE_F16; ti++) {
    run_case(env, (vklm_dtype)ti, 1, 5, 13, 1, PATH_AUTO);
    run_case(env, (vklm_dtype)ti, 5, 33, 77, 0, PATH_AUTO);
    run_case(env, (vklm_dtype)ti, 17, 33, 77, 1, PATH_AUTO);
  }
  /* bf16 weights (mixed-precision training's copies): the GEMM at every M (no decode kernel) */
  run_case(env, VKLM_DTYPE_BF16, 1, 5, 13, 1, PATH_AUTO);
  run_case(env, VKLM_DTYPE_BF16, 8, 300, 768, 0, PATH_AUTO);
  run_case(env, VKLM_DTYPE_BF16, 37, 67, 96, 1, PATH_AUTO);
  run_case(env, VKLM_DTYPE_BF16, 130, 33, 77, 1, PATH_TILED);
  for (int ti = 0; ti < VKLM_DTYPE_LINEAR_COUNT; ti++) {
    run_gelu(env, (vklm_dtype)ti, 1, 67, 96, 1);
    run_gelu(env, (vklm_dtype)ti, 8, 300, 768, 0);
  }
  run_gelu(env, VKLM_DTYPE_F32, 37, 67, 96, 1);
  run_gelu(env, VKLM_DTYPE_F16, 37, 67, 96, 0);
  /* more rows than one grid dimension holds (65535 groups of 4 rows): the grid splits over y */
  run_case(env, VKLM_DTYPE_Q4_0, 1, 270001, 32, 1, PATH_AUTO);
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_quant");
  test_blocks(&env);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_GPU);
  family = "gpu";
  test_products(&env);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_CPU);
  family = "cpu";
  test_products(&env);
  /* the CPU-type matvec with more rows of x than one pass takes, and a row count past one
   * invocation's NB */
  for (int ti = VKLM_DTYPE_F32; ti <= VKLM_DTYPE_F16; ti++) {
    run_case(&env, (vklm_dtype)ti, 8, 65, 4, 1, PATH_AUTO);
    run_gelu(&env, (vklm_dtype)ti, 3, 1, 8, 1);
  }
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_AUTO);
  test_determinism(&env);
  return vt_finish(&env);
}

/* Matmul GELU epilogues with 16-bit operands (VKLM_TEST_GPU): vklm_matmul_gelu_fmt /
 * vklm_matmul_dgelu_fmt with an fp16 or bf16 B (mixed precision's weight copies; an fp16 A too),
 * against the C reference (vklm_gemm_ref on the operands as packed, the
 * bias, vklm_gelu_*_ref), in both kernel families (matmul_tiled_f16_{gelu,dgelu} and
 * matmul_cpu_f16b_{gelu,dgelu}), at sizes off every block edge, all four transposes, batches
 * with odd offsets and padded rows, alpha/beta, and a K long enough for llvmpipe's split along K.
 * act written as fp32, fp16 or bf16 (act_fmt): every element is the GPU's own pre-activation
 * through the reference GELU rounded to nearest even (within one 16-bit ulp: the shader's GELU
 * and the reference's may round differently), the halves outside the matrix untouched (exact).
 * Then the tensor-level entries with F16 / BF16 weight tensors (nn.h: one dispatch forward, two
 * backward with the weight gradient, results against the references). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/nn.h"
#include "ops/ops.h"
#include "testutil.h"

static uint64_t seed = 11;
static const char *family = "gpu";
static const char *const FMT[] = {"f32", "f16", "bf16"};

static double tol_for(uint32_t K) { return 3e-5 * (1.0 + sqrt((double)K)); }


/* One fused GEMM. dgelu 0: C = v, act = gelu(v) in act_fmt; dgelu 1: C = v * gelu'(pre). */
static void run(vt_env *env, int dgelu, const vklm_gemm *g, int a_fmt, int b_fmt, int act_fmt,
                int with_bias, const char *label) {
  uint32_t batch = g->batch ? g->batch : 1;
  if (dgelu) with_bias = 0, act_fmt = VKLM_GEMM_F32;
  uint64_t na, nb, nc;
  vt_gemm_spans(g, &na, &nb, &nc);
  float *a = vt_randf(na, seed++, -1, 1), *b = vt_randf(nb, seed++, -1, 1);
  float *c = vt_randf(nc, seed++, -1, 1), *x = vt_randf(nc, seed++, -3, 3);
  float *bias = vt_randf(g->N, seed++, -1, 1);
  if (g->beta == 0.0f)
    for (uint64_t i = 0; i < nc; i++) c[i] = NAN;
  void *ha, *hb, *hx;
  vklm_buffer A = vt_upload_fmt(env, a, na, a_fmt, &ha), B = vt_upload_fmt(env, b, nb, b_fmt, &hb);
  vklm_buffer Cb = vt_upload(env, c, nc * 4);
  /* act / pre: random values in act's format, so that untouched halves can be checked */
  vklm_buffer X = vt_upload_fmt(env, x, nc, act_fmt, &hx);
  vklm_buffer Bias = with_bias ? vt_upload(env, bias, g->N * 4) : (vklm_buffer){0};
  vt_begin(env);
  vt_ok(env,
        dgelu ? vklm_matmul_dgelu_fmt(env->cmd, Cb, A, a_fmt, B, b_fmt, X, VKLM_GEMM_F32, g)
              : vklm_matmul_gelu_fmt(env->cmd, Cb, VKLM_GEMM_F32, X, act_fmt, A, a_fmt, B, b_fmt, Bias, g),
        dgelu ? "matmul_dgelu_fmt" : "matmul_gelu_fmt");
  vt_run(env);
  uint64_t nxw = act_fmt ? (nc + 1) / 2 : nc;
  float *got = vt_download(env, Cb, nc), *got_x = vt_download(env, X, nxw);
  float *want_act = act_fmt == VKLM_GEMM_F32 ? vt_copy(x, nc) : NULL;
  vklm_gemm_ref(c, ha, a_fmt, hb, b_fmt, g);
  uint64_t ldc = g->ldc ? g->ldc : g->N;
  char *inside = calloc(nc, 1);
  int bad16 = 0, worst16 = 0, off16 = 0, n16 = 0;
  for (uint32_t z = 0; z < batch; z++)
    for (uint32_t m = 0; m < g->M; m++)
      for (uint32_t n = 0; n < g->N; n++) {
        uint64_t ci = g->off_c + z * g->stride_c + m * ldc + n;
        inside[ci] = 1;
        if (with_bias) c[ci] += bias[n];
        if (dgelu) vklm_gelu_backward_ref(&c[ci], &c[ci], &x[ci], 1);
        else if (act_fmt == VKLM_GEMM_F32) vklm_gelu_forward_ref(&want_act[ci], &c[ci], 1);
        else { /* the GPU's own pre-activation through the reference GELU, rounded */
          float ge;
          float v = got[ci];
          vklm_gelu_forward_ref(&ge, &v, 1);
          /* fp32 subnormal GELUs (the far negative tail) may be flushed to 0 by the driver */
          int d = fabsf(ge) < 1e-37f ? 0 : vt_ulps16(vt_half_of((const uint32_t *)got_x, ci), vt_to16(ge, act_fmt));
          if (d > 1 && getenv("VT_DEBUG16"))
            printf("  act %llu: C %.9g gelu %.9g got %.9g\n", (unsigned long long)ci, v, ge,
                   vt_from16(vt_half_of((const uint32_t *)got_x, ci), act_fmt));
          if (d > worst16) worst16 = d;
          bad16 += d > 1;
          off16 += d == 1;
          n16++;
        }
      }
  for (uint64_t i = 0; i < nc; i++)
    if (isnan(c[i]) && isnan(got[i])) c[i] = got[i] = 0;
  char what[200];
  snprintf(what, sizeof what, "[%s] %s a %s b %s: C %s%s %ux%ux%u b%u %s%s", family,
           dgelu ? "dgelu" : "gelu", FMT[a_fmt], FMT[b_fmt], g->trans_a ? "T" : "N",
           g->trans_b ? "T" : "N", g->M, g->N, g->K, batch, label, with_bias ? " +bias" : "");
  vt_compare(env, what, got, c, nc, tol_for(g->K));
  if (dgelu) {
    snprintf(what, sizeof what, "[%s] dgelu a %s b %s: pre unchanged", family, FMT[a_fmt], FMT[b_fmt]);
    vt_compare(env, what, got_x, x, nc, 0.0);
  } else if (act_fmt == VKLM_GEMM_F32) {
    snprintf(what, sizeof what, "[%s] gelu a %s b %s: act f32 %ux%ux%u b%u %s", family,
             FMT[a_fmt], FMT[b_fmt], g->M, g->N, g->K, batch, label);
    vt_compare(env, what, got_x, want_act, nc, tol_for(g->K));
  } else {
    /* and against the reference's own pre-activation, at the 16-bit rounding's tolerance */
    float *ga = malloc(nc * sizeof *ga), *wa = malloc(nc * sizeof *wa);
    uint64_t untouched_bad = 0;
    for (uint64_t i = 0; i < nc; i++) {
      uint16_t gh = vt_half_of((const uint32_t *)got_x, i), was = vt_half_of((const uint32_t *)hx, i);
      ga[i] = vt_from16(gh, act_fmt);
      if (inside[i]) {
        float ge;
        vklm_gelu_forward_ref(&ge, &c[i], 1);
        wa[i] = ge;
      } else {
        wa[i] = ga[i];
        untouched_bad += gh != was;
      }
    }
    snprintf(what, sizeof what, "[%s] gelu a %s b %s: act %s %ux%ux%u b%u %s", family,
             FMT[a_fmt], FMT[b_fmt], FMT[act_fmt], g->M, g->N, g->K, batch, label);
    vt_compare(env, what, ga, wa, nc,
               tol_for(g->K) + (act_fmt == VKLM_GEMM_BF16 ? 8e-3 : 1e-3));
    /* 1 ulp off only where the shader's GELU and the reference's straddle a rounding boundary:
     * rare (truncating instead of rounding would put about half the elements there) */
    vt_expect(env, bad16 == 0 && off16 <= 1 + n16 / 100,
              "%s: %d element(s) more than 1 ulp from round(gelu(C)) (worst %d), %d of %d 1 ulp "
              "off", what, bad16, worst16, off16, n16);
    vt_expect(env, untouched_bad == 0, "%s: %llu half-word(s) outside the matrix changed", what,
              (unsigned long long)untouched_bad);
    free(ga), free(wa);
  }
  if (act_fmt != VKLM_GEMM_F32)
    printf("  %s act: %d of %d elements 1 ulp from round(gelu(C)), %d more\n", FMT[act_fmt], off16,
           n16, bad16);
  free(a), free(b), free(c), free(x), free(bias), free(got), free(got_x), free(want_act);
  free(ha), free(hb), free(hx), free(inside);
  vklm_arena_reset(env->arena);
}

/* Formats by transpose combination t and epilogue e, so that every shape of a (t, e) reuses one
 * pipeline (on lavapipe building them, not running them, is what such a test spends its time
 * on): B fp16 or bf16 by t's low bit; act fp32, fp16 or bf16 by t + e (every act format with
 * both of B's and both transposes of A). */
static int bfmt(int t) { return 1 + (t & 1); }
static int actfmt(int t, int e) { return (t + e) % 3; }

static void test_gemms(vt_env *env) {
  /* N > 32 everywhere: the CPU-type kernel's column block is the same for all of them */
  static const uint32_t shapes[][3] = {{1, 33, 1}, {7, 37, 5}, {65, 33, 17}, {33, 70, 9}};
  int cpu = !strcmp(family, "cpu");
  for (int e = 0; e < 2; e++) {
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int t = 0; t < 4; t++) {
        vklm_gemm g = vklm_gemm_make(shapes[s][0], shapes[s][1], shapes[s][2]);
        g.trans_a = t & 1;
        g.trans_b = t >> 1;
        run(env, e, &g, VKLM_GEMM_F32, bfmt(t), actfmt(t, e), (int)(s + t) & 1, "");
      }
    for (int t = 0; t < 4; t++) {
      /* batch 2, alpha/beta, padded rows, odd offsets (16-bit halves), B shared */
      vklm_gemm h = vt_gemm_awkward(t, 3, t & 1 ? 0.5f : 0.0f);
      run(env, e, &h, VKLM_GEMM_F32, bfmt(t), actfmt(t, e), t >> 1,
          "alpha -1.25, ld/offsets, shared B");
    }
    /* a 16-bit A too (mixed precision's 16-bit saved activations as the input) */
    vklm_gemm g = vklm_gemm_make(37, 45, 29);
    g.trans_b = 1;
    g.off_a = 1;
    g.off_c = 1;
    run(env, e, &g, VKLM_GEMM_F16, VKLM_GEMM_BF16, VKLM_GEMM_BF16, 1, "f16 A, odd offsets");
    /* long K: llvmpipe splits it; the epilogue runs once, on the whole sum */
    vklm_gemm l = vklm_gemm_make(cpu ? 9 : 3, cpu ? 40 : 17, 20001);
    l.trans_b = 1;
    l.beta = 0.5f;
    run(env, e, &l, VKLM_GEMM_F32, bfmt(2), actfmt(2, e), 1, "long K");
  }
}

/* nn.h with a 16-bit weight tensor: vklm_nn_linear_gelu (one dispatch, the GEMM's epilogue) and
 * vklm_nn_linear_backward_gelu (two: dpre through the epilogue, then dW and db). */
static void test_nn(vt_env *env, int wfmt, int with_dw) {
  uint32_t M = 45, K = 24, N = 40;
  vklm_dtype dt = wfmt == VKLM_GEMM_BF16 ? VKLM_DTYPE_BF16 : VKLM_DTYPE_F16;
  float *in = vt_randf((size_t)M * K, seed++, -1, 1), *w = vt_randf((size_t)N * K, seed++, -1, 1);
  float *b = vt_randf(N, seed++, -1, 1), *dout = vt_randf((size_t)M * K, seed++, -1, 1);
  float *pre = vt_zeros((size_t)M * N), *act = vt_zeros((size_t)M * N), *dpre = vt_zeros((size_t)M * N);
  float *dw = vt_zeros((size_t)K * N), *db = vt_zeros(K);
  void *hw;
  vklm_buffer Wb = vt_upload_fmt(env, w, (uint64_t)N * K, wfmt, &hw);
  /* the weight as the GEMMs read it */
  float *wr = malloc((size_t)N * K * sizeof *wr);
  for (size_t i = 0; i < (size_t)N * K; i++) wr[i] = vt_from16(vt_half_of(hw, i), wfmt);
  vklm_tensor In = vklm_tensor_2d(vt_upload(env, in, (size_t)M * K * 4), VKLM_DTYPE_F32, M, K);
  vklm_tensor W = vklm_tensor_2d(Wb, dt, N, K);
  vklm_tensor Bt = vklm_tensor_1d(vt_upload(env, b, N * 4), VKLM_DTYPE_F32, N);
  vklm_tensor Pre = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  vklm_tensor Act = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  vklm_tensor Wp = vklm_tensor_2d(Wb, dt, K, N); /* the same words read as (K,N) */
  vklm_tensor Dout = vklm_tensor_2d(vt_upload(env, dout, (size_t)M * K * 4), VKLM_DTYPE_F32, M, K);
  vklm_tensor Dpre = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  vklm_tensor Dw = with_dw ? vklm_tensor_2d(vt_upload(env, dw, (size_t)K * N * 4), VKLM_DTYPE_F32, K, N)
                           : vklm_tensor_none();
  vklm_tensor Db = vklm_tensor_1d(vt_upload(env, db, K * 4), VKLM_DTYPE_F32, K);
  vt_begin(env);
  vt_ok(env, vklm_nn_linear_gelu(env->cmd, Pre, Act, In, W, Bt), "nn_linear_gelu");
  uint32_t nf = vklm_cmd_dispatch_count(env->cmd);
  vt_ok(env, vklm_nn_linear_backward_gelu(env->cmd, Dpre, Dw, Db, Dout, Act, Wp, Pre),
        "nn_linear_backward_gelu");
  uint32_t nb = vklm_cmd_dispatch_count(env->cmd) - nf;
  vt_run(env);
  int fuses = vklm_matmul_epilogue_fuses(env->ctx, VKLM_GEMM_F32, wfmt);
  vt_expect(env, !fuses || nf == 1u, "[%s] nn_linear_gelu %s weight: %u dispatch(es), want 1",
            family, FMT[wfmt], nf);
  vt_expect(env, !fuses || nb == 2u,
            "[%s] nn_linear_backward_gelu %s weight%s: %u dispatches, want 2", family, FMT[wfmt],
            with_dw ? "" : " (frozen)", nb);
  printf("[%s] nn %s weight%s: forward %u dispatch(es), backward %u\n", family, FMT[wfmt],
         with_dw ? "" : " (frozen)", nf, nb);
  float *g_pre = vt_download(env, Pre.buf, (size_t)M * N), *g_act = vt_download(env, Act.buf, (size_t)M * N);
  float *g_dpre = vt_download(env, Dpre.buf, (size_t)M * N);
  float *g_dw = with_dw ? vt_download(env, Dw.buf, (size_t)K * N) : NULL;
  float *g_db = vt_download(env, Db.buf, K);
  vklm_matmul_forward_gelu_ref(pre, act, in, wr, b, M, K, N);
  vklm_matmul_backward_gelu_ref(dpre, dw, db, dout, g_act, wr, g_pre, M, N, K);
  char what[96];
  snprintf(what, sizeof what, "[%s] nn_linear_gelu %s out", family, FMT[wfmt]);
  vt_compare(env, what, g_pre, pre, (size_t)M * N, tol_for(K));
  snprintf(what, sizeof what, "[%s] nn_linear_gelu %s act", family, FMT[wfmt]);
  vt_compare(env, what, g_act, act, (size_t)M * N, tol_for(K));
  snprintf(what, sizeof what, "[%s] nn_linear_backward_gelu %s dpre", family, FMT[wfmt]);
  vt_compare(env, what, g_dpre, dpre, (size_t)M * N, tol_for(K));
  if (with_dw) {
    snprintf(what, sizeof what, "[%s] nn_linear_backward_gelu %s dw", family, FMT[wfmt]);
    vt_compare(env, what, g_dw, dw, (size_t)K * N, tol_for(M));
  }
  snprintf(what, sizeof what, "[%s] nn_linear_backward_gelu %s db", family, FMT[wfmt]);
  vt_compare(env, what, g_db, db, K, tol_for(M));
  free(in), free(w), free(b), free(dout), free(pre), free(act), free(dpre), free(dw), free(db);
  free(hw), free(wr), free(g_pre), free(g_act), free(g_dpre), free(g_dw), free(g_db);
  vklm_arena_reset(env->arena);
}

/* vklm_matmul_dweight without scratch (one GEMM): dW (M,N) += A^T @ B with A (K,M) fp32 (dout)
 * and B (K,N) 16-bit (the saved input), and the row sums of A^T added into rs (M): the "_dbias"
 * variants with a 16-bit B, against the reference on the values the GPU reads. K = 20001 is
 * split along K on llvmpipe (the row sums add up over the parts). */
static void test_rowsum(vt_env *env, uint32_t M, uint32_t N, uint32_t K, int b_fmt) {
  float *a = vt_randf((size_t)K * M, seed++, -1, 1), *b = vt_randf((size_t)K * N, seed++, -1, 1);
  float *c0 = vt_randf((size_t)M * N, seed++, -1, 1), *rs0 = vt_randf(M, seed++, -1, 1);
  void *bh;
  vklm_buffer A = vt_upload(env, a, (size_t)K * M * 4), B = vt_upload_fmt(env, b, (uint64_t)K * N, b_fmt, &bh);
  vklm_buffer Cb = vt_upload(env, c0, (size_t)M * N * 4), R = vt_upload(env, rs0, M * 4);
  vt_begin(env);
  /* in dweight's terms: K rows, dW (M,N), dout (K,M), in (K,N) */
  vt_ok(env, vklm_matmul_dweight(env->cmd, Cb, R, A, B, b_fmt, (vklm_buffer){0}, K, N, M),
        "matmul_dweight");
  uint32_t nd = vklm_cmd_dispatch_count(env->cmd);
  vt_run(env);
  float *c = vt_download(env, Cb, (size_t)M * N), *rs = vt_download(env, R, M);
  float *cr = vt_copy(c0, (size_t)M * N), *rr = vt_copy(rs0, M);
  for (uint32_t m = 0; m < M; m++) {
    double r = 0;
    for (uint32_t k = 0; k < K; k++) r += a[(size_t)k * M + m];
    rr[m] += (float)r;
    for (uint32_t n = 0; n < N; n++) {
      double acc = 0;
      for (uint32_t k = 0; k < K; k++)
        acc += (double)a[(size_t)k * M + m] * vt_from16(vt_half_of(bh, (uint64_t)k * N + n), b_fmt);
      cr[(size_t)m * N + n] += (float)acc;
    }
  }
  char what[160];
  snprintf(what, sizeof what, "%s rowsum (%u,%u,%u) B %s: dW", family, M, N, K, FMT[b_fmt]);
  vt_compare(env, what, c, cr, (size_t)M * N, tol_for(K));
  snprintf(what, sizeof what, "%s rowsum (%u,%u,%u) B %s: row sums", family, M, N, K, FMT[b_fmt]);
  vt_compare(env, what, rs, rr, M, tol_for(K));
  uint32_t chunk = vklm_matmul_k_chunk(env->ctx);
  if (!chunk || K <= 8192)
    vt_expect(env, nd == 1, "%s rowsum (%u,%u,%u): %u dispatch(es) (want 1)", family, M, N, K, nd);
  free(a), free(b), free(c0), free(rs0), free(bh), free(c), free(rs), free(cr), free(rr);
}

static void test_family(vt_env *env, vklm_kernels k) {
  vklm_context_set_kernels(env->ctx, k);
  family = k == VKLM_KERNELS_CPU ? "cpu" : "gpu";
  test_gemms(env);
  test_rowsum(env, 37, 29, 53, VKLM_GEMM_BF16);
  test_rowsum(env, 5, 130, 300, VKLM_GEMM_F16);
  test_rowsum(env, 64, 64, 20001, VKLM_GEMM_BF16);
  test_nn(env, VKLM_GEMM_BF16, 1);
  test_nn(env, VKLM_GEMM_F16, 1);
  test_nn(env, VKLM_GEMM_BF16, 0);
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_matmul_fused16");
  test_family(&env, VKLM_KERNELS_GPU);
  test_family(&env, VKLM_KERNELS_CPU);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_AUTO);
  return vt_finish(&env);
}

/* Matmul epilogue fusions (VKLM_TEST_GPU): the fp32 GEMM with a GELU epilogue (C and act =
 * gelu(C) from one dispatch) and with a GELU-derivative epilogue (C times gelu'(pre)), against
 * the C references (vklm_gemm_ref + vklm_gelu_*_ref), in both kernel families (the tiled kernel
 * and matmul_cpu_f32), at sizes off every block edge, all four transpose combinations, batches
 * with offsets and padded rows, alpha/beta (beta 0 with NaNs in the old C), a bias, and a K long
 * enough for llvmpipe's split along K (the epilogue must see the whole sum). Then the linear
 * layer's pair (vklm_matmul_forward_gelu / vklm_matmul_backward_gelu, a frozen weight among
 * them), the tensor-level entries (nn.h: one dispatch, the GEMM's epilogue above
 * VKLM_LINEAR_MATVEC_MAX_M rows and the matvec's _gelu variant below), the fused act against the
 * standalone gelu_forward_f32 kernel on the same input (the same formula), and the backward
 * reference by finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/nn.h"
#include "ops/ops.h"
#include "testutil.h"

static uint64_t seed = 7;
static const char *family = "gpu";

static double tol_for(uint32_t K) { return 3e-5 * (1.0 + sqrt((double)K)); }

/* One fused GEMM: dgelu 0: C = v, act = gelu(v) (v with the bias when with_bias); dgelu 1:
 * C = v * gelu'(pre). Entries outside the matrices keep their values (checked: act and C are
 * compared over their whole span). */
static void run_fused(vt_env *env, int dgelu, const vklm_gemm *g, int with_bias,
                      const char *label) {
  uint32_t batch = g->batch ? g->batch : 1;
  if (dgelu) with_bias = 0; /* vklm_matmul_dgelu takes no bias */
  uint64_t na, nb, nc;
  vt_gemm_spans(g, &na, &nb, &nc);
  float *a = vt_randf(na, seed++, -1, 1), *b = vt_randf(nb, seed++, -1, 1);
  float *c = vt_randf(nc, seed++, -1, 1), *x = vt_randf(nc, seed++, -3, 3);
  float *bias = vt_randf(g->N, seed++, -1, 1);
  if (g->beta == 0.0f)
    for (uint64_t i = 0; i < nc; i++) c[i] = NAN;
  vklm_buffer A = vt_upload(env, a, na * 4), B = vt_upload(env, b, nb * 4);
  vklm_buffer Cb = vt_upload(env, c, nc * 4), X = vt_upload(env, x, nc * 4);
  vklm_buffer Bias = with_bias ? vt_upload(env, bias, g->N * 4) : (vklm_buffer){0};
  vt_begin(env);
  vt_ok(env,
        dgelu ? vklm_matmul_dgelu(env->cmd, Cb, A, B, X, g)
              : vklm_matmul_gelu(env->cmd, Cb, X, A, B, Bias, g),
        dgelu ? "matmul_dgelu" : "matmul_gelu");
  vt_run(env);
  float *got = vt_download(env, Cb, nc), *got_x = vt_download(env, X, nc);
  /* reference: the GEMM, the bias, then the epilogue on the matrix's elements only */
  vklm_gemm_ref(c, a, 0, b, 0, g);
  uint64_t ldc = g->ldc ? g->ldc : g->N;
  for (uint32_t z = 0; z < batch; z++)
    for (uint32_t m = 0; m < g->M; m++)
      for (uint32_t n = 0; n < g->N; n++) {
        uint64_t ci = g->off_c + z * g->stride_c + m * ldc + n;
        if (with_bias) c[ci] += bias[n];
        if (dgelu) vklm_gelu_backward_ref(&c[ci], &c[ci], &x[ci], 1);
        else vklm_gelu_forward_ref(&x[ci], &c[ci], 1);
      }
  for (uint64_t i = 0; i < nc; i++)
    if (isnan(c[i]) && isnan(got[i])) c[i] = got[i] = 0;
  char what[160];
  snprintf(what, sizeof what, "[%s] %s %s%s %ux%ux%u b%u %s%s", family,
           dgelu ? "dgelu: C*gelu'(pre)" : "gelu: C", g->trans_a ? "T" : "N",
           g->trans_b ? "T" : "N", g->M, g->N, g->K, batch, label, with_bias ? " +bias" : "");
  vt_compare(env, what, got, c, nc, tol_for(g->K));
  if (!dgelu) {
    snprintf(what, sizeof what, "[%s] gelu: act %s%s %ux%ux%u b%u %s%s", family,
             g->trans_a ? "T" : "N", g->trans_b ? "T" : "N", g->M, g->N, g->K, batch, label,
             with_bias ? " +bias" : "");
    vt_compare(env, what, got_x, x, nc, tol_for(g->K));
  } else {
    snprintf(what, sizeof what, "[%s] dgelu: pre unchanged", family);
    vt_compare(env, what, got_x, x, nc, 0.0);
  }
  free(a), free(b), free(c), free(x), free(bias), free(got), free(got_x);
  vklm_arena_reset(env->arena);
}

static void test_gemms(vt_env *env) {
  static const uint32_t shapes[][3] = {{1, 1, 1},   {7, 13, 5},  {65, 33, 17},
                                       {130, 67, 200}, {33, 65, 9}, {31, 129, 2}};
  for (int e = 0; e < 2; e++) {
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int t = 0; t < 4; t++) {
        vklm_gemm g = vklm_gemm_make(shapes[s][0], shapes[s][1], shapes[s][2]);
        g.trans_a = t & 1;
        g.trans_b = t >> 1;
        run_fused(env, e, &g, (int)(s + t) & 1, "");
      }
    for (int t = 0; t < 4; t++) {
      /* batch 2, alpha/beta, padded rows, offsets, B shared */
      vklm_gemm h = vt_gemm_awkward(t, 2, t & 1 ? 0.5f : 0.0f);
      run_fused(env, e, &h, t >> 1, "alpha -1.25, ld/offsets, shared B");
    }
    /* long K: llvmpipe splits it; the epilogue must run once, on the whole sum */
    for (int t = 0; t < 2; t++) {
      vklm_gemm g = vklm_gemm_make(t ? 3 : 40, t ? 70 : 9, 20001);
      g.trans_a = t;
      g.beta = t ? 0.5f : 0.0f;
      run_fused(env, e, &g, 1, "long K");
    }
  }
}

/* ---- the linear layer's pair ------------------------------------------------------------- */
/* The MLP in small: fc (BT,C) -> (BT,F) with GELU, then a projection (BT,F) -> (BT,OC) whose
 * backward gives dpre (BT,F) through the epilogue. frozen: no dW (the bias gradient's own
 * reduction, with dpre's memory as its scratch). */
static void test_linear(vt_env *env, uint32_t BT, uint32_t C, uint32_t F, uint32_t OC,
                        int with_bias, int frozen) {
  float *inp = vt_randf((size_t)BT * C, seed++, -1, 1);
  float *wfc = vt_randf((size_t)F * C, seed++, -1, 1), *bfc = vt_randf(F, seed++, -1, 1);
  float *wp = vt_randf((size_t)OC * F, seed++, -1, 1);
  float *dout = vt_randf((size_t)BT * OC, seed++, -1, 1);
  float *dpre = vt_randf((size_t)BT * F, seed++, -1, 1); /* overwritten */
  float *dw = vt_randf((size_t)OC * F, seed++, -1, 1);   /* accumulated */
  float *db = vt_randf(OC, seed++, -1, 1);               /* accumulated */
  float *pre = vt_zeros((size_t)BT * F), *act = vt_zeros((size_t)BT * F);
  vklm_buffer Inp = vt_upload(env, inp, (size_t)BT * C * 4);
  vklm_buffer Wfc = vt_upload(env, wfc, (size_t)F * C * 4);
  vklm_buffer Bfc = with_bias ? vt_upload(env, bfc, F * 4) : (vklm_buffer){0};
  vklm_buffer Wp = vt_upload(env, wp, (size_t)OC * F * 4);
  vklm_buffer Pre = vt_alloc(env, (size_t)BT * F * 4), Act = vt_alloc(env, (size_t)BT * F * 4);
  vklm_buffer Dout = vt_upload(env, dout, (size_t)BT * OC * 4);
  vklm_buffer Dpre = vt_upload(env, dpre, (size_t)BT * F * 4);
  vklm_buffer Dw = vt_upload(env, dw, (size_t)OC * F * 4);
  vklm_buffer Db = with_bias ? vt_upload(env, db, OC * 4) : (vklm_buffer){0};
  vt_begin(env);
  vt_ok(env, vklm_matmul_forward_gelu(env->cmd, Pre, Act, Inp, Wfc, Bfc, BT, C, F),
        "forward_gelu");
  vt_ok(env, vklm_matmul_backward_gelu(env->cmd, Dpre, frozen ? (vklm_buffer){0} : Dw, Db, Dout,
                                       Act, Wp, Pre, BT, F, OC),
        "backward_gelu");
  vt_run(env);
  float *g_pre = vt_download(env, Pre, (size_t)BT * F), *g_act = vt_download(env, Act, (size_t)BT * F);
  float *g_dpre = vt_download(env, Dpre, (size_t)BT * F), *g_dw = vt_download(env, Dw, (size_t)OC * F);
  float *g_db = with_bias ? vt_download(env, Db, OC) : NULL;
  vklm_matmul_forward_gelu_ref(pre, act, inp, wfc, with_bias ? bfc : NULL, BT, C, F);
  /* the backward reference from the GPU's forward, so that both sides see the same inputs */
  vklm_matmul_backward_gelu_ref(dpre, dw, with_bias ? db : NULL, dout, g_act, wp, g_pre, BT, F, OC);
  char what[128];
  snprintf(what, sizeof what, "[%s] forward_gelu pre (%u,%u,%u)%s", family, BT, C, F,
           with_bias ? " +bias" : "");
  vt_compare(env, what, g_pre, pre, (size_t)BT * F, tol_for(C));
  snprintf(what, sizeof what, "[%s] forward_gelu act (%u,%u,%u)", family, BT, C, F);
  vt_compare(env, what, g_act, act, (size_t)BT * F, tol_for(C));
  snprintf(what, sizeof what, "[%s] backward_gelu dpre (%u,%u,%u)", family, BT, F, OC);
  vt_compare(env, what, g_dpre, dpre, (size_t)BT * F, tol_for(OC));
  if (!frozen) {
    snprintf(what, sizeof what, "[%s] backward_gelu dweight (%u,%u,%u)", family, BT, F, OC);
    vt_compare(env, what, g_dw, dw, (size_t)OC * F, tol_for(BT));
  }
  if (with_bias) {
    snprintf(what, sizeof what, "[%s] backward_gelu dbias (%u,%u,%u)%s", family, BT, F, OC,
             frozen ? " (frozen weight)" : "");
    vt_compare(env, what, g_db, db, OC, tol_for(BT));
  }
  free(inp), free(wfc), free(bfc), free(wp), free(dout), free(dpre), free(dw), free(db);
  free(pre), free(act), free(g_pre), free(g_act), free(g_dpre), free(g_dw), free(g_db);
  vklm_arena_reset(env->arena);
}

/* The fused act against the standalone gelu_forward_f32 on the fused pre-activation, and the
 * fused dpre against gelu_backward_f32 on the plain GEMM's dact: the same formulas. */
static void test_same_formula(vt_env *env) {
  uint32_t BT = 37, C = 29, F = 53;
  size_t n = (size_t)BT * F;
  float *inp = vt_randf((size_t)BT * C, seed++, -2, 2), *w = vt_randf((size_t)F * C, seed++, -1, 1);
  float *dout = vt_randf((size_t)BT * C, seed++, -1, 1);
  vklm_buffer Inp = vt_upload(env, inp, (size_t)BT * C * 4), W = vt_upload(env, w, (size_t)F * C * 4);
  vklm_buffer Dout = vt_upload(env, dout, (size_t)BT * C * 4);
  vklm_buffer Pre = vt_alloc(env, n * 4), Act = vt_alloc(env, n * 4), Act2 = vt_alloc(env, n * 4);
  vklm_buffer Dact = vt_alloc(env, n * 4), Dpre = vt_alloc(env, n * 4), Dpre2 = vt_alloc(env, n * 4);
  vt_begin(env);
  vt_ok(env, vklm_matmul_forward_gelu(env->cmd, Pre, Act, Inp, W, (vklm_buffer){0}, BT, C, F), "fwd");
  vt_ok(env, vklm_gelu_forward(env->cmd, Act2, Pre, (uint32_t)n), "gelu");
  /* dpre (BT,F) = (dout (BT,C) @ W^T (C,F)) * gelu'(pre), W stored (F,C) */
  vklm_gemm g = vklm_gemm_make(BT, F, C);
  g.trans_b = 1;
  vt_ok(env, vklm_matmul_dgelu(env->cmd, Dpre, Dout, W, Pre, &g), "dgelu");
  vt_ok(env, vklm_matmul(env->cmd, Dact, Dout, W, &g), "plain");
  vt_ok(env, vklm_gelu_backward(env->cmd, Dpre2, Dact, Pre, (uint32_t)n), "gelu_backward");
  vt_run(env);
  float *act = vt_download(env, Act, n), *act2 = vt_download(env, Act2, n);
  float *dpre = vt_download(env, Dpre, n), *dpre2 = vt_download(env, Dpre2, n);
  char what[96];
  snprintf(what, sizeof what, "[%s] fused act vs gelu_forward_f32", family);
  vt_compare(env, what, act, act2, n, 1e-6);
  snprintf(what, sizeof what, "[%s] fused dpre vs matmul + gelu_backward_f32", family);
  vt_compare(env, what, dpre, dpre2, n, 1e-6);
  free(inp), free(w), free(dout), free(act), free(act2), free(dpre), free(dpre2);
  vklm_arena_reset(env->arena);
}

/* nn.h: vklm_nn_linear_gelu / vklm_nn_linear_backward_gelu; one dispatch each when fused. */
static void test_nn(vt_env *env, uint32_t M) {
  uint32_t K = 24, N = 40;
  float *in = vt_randf((size_t)M * K, seed++, -1, 1), *w = vt_randf((size_t)N * K, seed++, -1, 1);
  float *b = vt_randf(N, seed++, -1, 1), *dout = vt_randf((size_t)M * K, seed++, -1, 1);
  float *pre = vt_zeros((size_t)M * N), *act = vt_zeros((size_t)M * N), *dpre = vt_zeros((size_t)M * N);
  float *dw = vt_zeros((size_t)K * N), *db = vt_zeros(K);
  vklm_tensor In = vklm_tensor_2d(vt_upload(env, in, (size_t)M * K * 4), VKLM_DTYPE_F32, M, K);
  vklm_tensor W = vklm_tensor_2d(vt_upload(env, w, (size_t)N * K * 4), VKLM_DTYPE_F32, N, K);
  vklm_tensor Bt = vklm_tensor_1d(vt_upload(env, b, N * 4), VKLM_DTYPE_F32, N);
  vklm_tensor Pre = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  vklm_tensor Act = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  /* the projection back: weight Wp (K,N) = the same numbers as W read as (K,N) */
  vklm_tensor Wp = vklm_tensor_2d(W.buf, VKLM_DTYPE_F32, K, N);
  vklm_tensor Dout = vklm_tensor_2d(vt_upload(env, dout, (size_t)M * K * 4), VKLM_DTYPE_F32, M, K);
  vklm_tensor Dpre = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  vklm_tensor Dw = vklm_tensor_2d(vt_upload(env, dw, (size_t)K * N * 4), VKLM_DTYPE_F32, K, N);
  vklm_tensor Db = vklm_tensor_1d(vt_upload(env, db, K * 4), VKLM_DTYPE_F32, K);
  vt_begin(env);
  vt_ok(env, vklm_nn_linear_gelu(env->cmd, Pre, Act, In, W, Bt), "nn_linear_gelu");
  uint32_t nf = vklm_cmd_dispatch_count(env->cmd);
  vt_ok(env, vklm_nn_linear_backward_gelu(env->cmd, Dpre, Dw, Db, Dout, Act, Wp, Pre),
        "nn_linear_backward_gelu");
  uint32_t nb = vklm_cmd_dispatch_count(env->cmd) - nf;
  vt_run(env);
  vt_expect(env, nf == 1u, "[%s] nn_linear_gelu M=%u: %u dispatch(es), want 1 (%s)", family, M,
            nf, M > VKLM_LINEAR_MATVEC_MAX_M ? "the GEMM's epilogue" : "the matvec's");
  vt_expect(env, nb == 2u, "[%s] nn_linear_backward_gelu M=%u: %u dispatches, want 2 (dpre, dW)",
            family, M, nb);
  printf("[%s] nn M=%u: forward %u dispatch(es), backward %u\n", family, M, nf, nb);
  float *g_pre = vt_download(env, Pre.buf, (size_t)M * N), *g_act = vt_download(env, Act.buf, (size_t)M * N);
  float *g_dpre = vt_download(env, Dpre.buf, (size_t)M * N), *g_dw = vt_download(env, Dw.buf, (size_t)K * N);
  float *g_db = vt_download(env, Db.buf, K);
  vklm_matmul_forward_gelu_ref(pre, act, in, w, b, M, K, N);
  vklm_matmul_backward_gelu_ref(dpre, dw, db, dout, g_act, w, g_pre, M, N, K);
  char what[96];
  snprintf(what, sizeof what, "[%s] nn_linear_gelu M=%u out", family, M);
  vt_compare(env, what, g_pre, pre, (size_t)M * N, tol_for(K));
  snprintf(what, sizeof what, "[%s] nn_linear_gelu M=%u act", family, M);
  vt_compare(env, what, g_act, act, (size_t)M * N, tol_for(K));
  snprintf(what, sizeof what, "[%s] nn_linear_backward_gelu M=%u dpre", family, M);
  vt_compare(env, what, g_dpre, dpre, (size_t)M * N, tol_for(K));
  snprintf(what, sizeof what, "[%s] nn_linear_backward_gelu M=%u dw", family, M);
  vt_compare(env, what, g_dw, dw, (size_t)K * N, tol_for(M));
  snprintf(what, sizeof what, "[%s] nn_linear_backward_gelu M=%u db", family, M);
  vt_compare(env, what, g_db, db, K, tol_for(M));
  free(in), free(w), free(b), free(dout), free(pre), free(act), free(dpre), free(dw), free(db);
  free(g_pre), free(g_act), free(g_dpre), free(g_dw), free(g_db);
  vklm_arena_reset(env->arena);
}

/* Finite differences of the backward reference: loss = sum(proj * (gelu(pre) @ W^T + b)). */
typedef struct fd_state {
  float *pre, *act, *w, *bias, *proj, *out;
  uint32_t BT, F, OC;
} fd_state;

static double fd_loss(void *p) {
  fd_state *s = p;
  vklm_gelu_forward_ref(s->act, s->pre, s->BT * s->F);
  vklm_matmul_forward_ref(s->out, s->act, s->w, s->bias, s->BT, s->F, s->OC);
  double l = 0;
  for (size_t i = 0; i < (size_t)s->BT * s->OC; i++) l += (double)s->out[i] * s->proj[i];
  return l;
}

static void test_fd(vt_env *env) {
  uint32_t BT = 5, F = 7, OC = 6;
  fd_state s = {vt_randf(BT * F, seed++, -2, 2), vt_zeros(BT * F), vt_randf(OC * F, seed++, -1, 1),
                vt_randf(OC, seed++, -1, 1), vt_randf(BT * OC, seed++, -1, 1), vt_zeros(BT * OC),
                BT, F, OC};
  float *dpre = vt_zeros(BT * F), *dw = vt_zeros(OC * F), *db = vt_zeros(OC);
  vklm_gelu_forward_ref(s.act, s.pre, BT * F);
  vklm_matmul_backward_gelu_ref(dpre, dw, db, s.proj, s.act, s.w, s.pre, BT, F, OC);
  vt_fd_check(env, "matmul_backward_gelu_ref dpre", fd_loss, &s, s.pre, BT * F, dpre, 64, 1e-2,
              1e-3);
  vt_fd_check(env, "matmul_backward_gelu_ref dweight", fd_loss, &s, s.w, OC * F, dw, 64, 1e-2,
              1e-3);
  free(s.pre), free(s.act), free(s.w), free(s.bias), free(s.proj), free(s.out);
  free(dpre), free(dw), free(db);
}

static void test_family(vt_env *env, vklm_kernels k) {
  vklm_context_set_kernels(env->ctx, k);
  family = k == VKLM_KERNELS_CPU ? "cpu" : "gpu";
  test_gemms(env);
  test_linear(env, 37, 29, 53, 41, 1, 0);
  test_linear(env, 37, 29, 53, 41, 0, 0);
  test_linear(env, 300, 64, 130, 33, 1, 1); /* frozen: the bias reduction in dpre's memory */
  test_linear(env, 1, 1, 1, 1, 1, 0);
  test_linear(env, 9, 5, 7, 9000, 1, 0); /* dpre reduces over 9000: split on llvmpipe */
  test_same_formula(env);
  test_nn(env, 3);  /* the matrix-vector kernel and gelu_forward_f32 */
  test_nn(env, 45); /* fused */
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_matmul_fused");
  printf("driver %s: K split %u\n", vklm_context_caps(env.ctx)->driver_name,
         vklm_matmul_k_chunk(env.ctx));
  test_family(&env, VKLM_KERNELS_GPU);
  test_family(&env, VKLM_KERNELS_CPU);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_AUTO);
  test_fd(&env);
  return vt_finish(&env);
}

/* Matmul tests (VKLM_TEST_GPU): the batched GEMM (tiled fp32, fp16 storage, fp32 x fp16, naive)
 * against the C reference for all four transpose combinations, batches with per-item and shared
 * (stride 0) operands, alpha/beta, padded rows and element offsets (odd ones for fp16), sizes
 * that are not multiples of the tile; beta = 0 must ignore NaNs already in C. Then the linear
 * layer's forward and backward against their references, and the backward reference against
 * finite differences. Everything runs for both kernel families (vklm_context_set_kernels): the
 * GPU kernels, and the CPU-type ones, where fp32 GEMMs run matmul_cpu_f32; the CPU family adds
 * cases at that kernel's block edges (8/16/32 rows, 8/16/32/64 columns, one below and above). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

static uint64_t seed = 1;
static const char *family = "gpu"; /* the kernel family being tested, for the messages */

/* fp32 accumulation over K terms: the error grows like sqrt(K) (vt_compare's floor is
 * 1e-3 * max|C|, so entries near zero see the absolute error of the large ones). */
static double tol_for(uint32_t K) { return 3e-5 * (1.0 + sqrt((double)K)); }

typedef enum { K_F32, K_F16, K_F16B, K_NAIVE, K_F16A, K_BF16, K_BF16B } kind;
static const char *KIND_NAME[] = {"f32",     "f16",  "f32xf16", "naive",
                                  "f16xf32", "bf16", "f32xbf16"};

/* cfg NULL: the public entry point of kind k; else vklm_matmul_ex with that configuration.
 * out: where to hand the result to the caller (it frees it), or NULL. */
static void run_gemm_out(vt_env *env, kind k, const vklm_gemm *g, const char *label,
                         const vklm_matmul_config *cfg, float **out) {
  uint32_t batch = g->batch ? g->batch : 1;
  int ha = k == K_F16 || k == K_F16A ? VKLM_GEMM_F16 : k == K_BF16 ? VKLM_GEMM_BF16 : 0;
  int hb = k == K_F16 || k == K_F16B ? VKLM_GEMM_F16 : k == K_BF16 || k == K_BF16B ? VKLM_GEMM_BF16 : 0;
  uint64_t na, nb, nc;
  vt_gemm_spans(g, &na, &nb, &nc);
  float *a = vt_randf(na, seed++, -1, 1), *b = vt_randf(nb, seed++, -1, 1);
  float *c = vt_randf(nc, seed++, -1, 1);
  if (g->beta == 0.0f) /* beta = 0 must overwrite: NaNs in the old C must not leak through */
    for (uint64_t i = 0; i < nc; i++) c[i] = NAN;
  void *ha_host, *hb_host;
  vklm_buffer A = vt_upload_fmt(env, a, na, ha, &ha_host);
  vklm_buffer B = vt_upload_fmt(env, b, nb, hb, &hb_host);
  vklm_buffer Cb = vt_upload(env, c, nc * 4);
  vt_begin(env);
  vklm_status st = cfg || k >= K_BF16 ? vklm_matmul_ex(env->cmd, Cb, A, ha, B, hb, g, cfg)
                   : k == K_F32  ? vklm_matmul(env->cmd, Cb, A, B, g)
                   : k == K_F16  ? vklm_matmul_f16(env->cmd, Cb, A, B, g)
                   : k == K_F16B ? vklm_matmul_f16b(env->cmd, Cb, A, B, g)
                                 : vklm_matmul_naive(env->cmd, Cb, A, B, g);
  vt_ok(env, st, "matmul");
  vt_run(env);
  float *got = vt_download(env, Cb, nc);
  vklm_gemm_ref(c, ha_host, ha, hb_host, hb, g);
  /* Entries of C outside the matrices (padding) keep their old values on both sides, except
   * NaN placeholders, which compare as NaN == NaN: set both to 0. */
  for (uint64_t i = 0; i < nc; i++)
    if (isnan(c[i]) && isnan(got[i])) c[i] = got[i] = 0;
  char what[160], cs[48] = "";
  if (cfg)
    snprintf(cs, sizeof cs, " [%ux%ux%u %ux%u%s%s]", cfg->BM, cfg->BN, cfg->BK, cfg->TM, cfg->TN,
             cfg->dbuf ? " dbuf" : "", cfg->novec ? " novec" : "");
  snprintf(what, sizeof what, "[%s] %s %s%s %ux%ux%u b%u %s%s", family, KIND_NAME[k],
           g->trans_a ? "T" : "N", g->trans_b ? "T" : "N", g->M, g->N, g->K, batch, label, cs);
  vt_compare(env, what, got, c, nc, tol_for(g->K));
  if (out) *out = got;
  else free(got);
  free(a), free(b), free(c), free(ha_host), free(hb_host);
  vklm_arena_reset(env->arena);
}

static void run_gemm_cfg(vt_env *env, kind k, const vklm_gemm *g, const char *label,
                         const vklm_matmul_config *cfg) {
  run_gemm_out(env, k, g, label, cfg, NULL);
}

static void run_gemm(vt_env *env, kind k, const vklm_gemm *g, const char *label) {
  run_gemm_cfg(env, k, g, label, NULL);
}

/* Every tile configuration the device can run, whichever the chooser would pick. */
static void test_configs(vt_env *env) {
  vklm_matmul_config cf[16];
  uint32_t n = vklm_matmul_configs(env->ctx, cf, 16);
  for (uint32_t i = 0; i < n; i++)
    for (int t = 0; t < 4; t++) {
      vklm_gemm g = vklm_gemm_make(130, 67, 200);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      run_gemm_cfg(env, K_F32, &g, "", &cf[i]);
      vklm_gemm h = vklm_gemm_make(19, 150, 23);
      h.batch = 2;
      h.trans_a = t & 1;
      h.trans_b = t >> 1;
      h.beta = 0.75f;
      h.off_a = 1;
      h.stride_a = 19 * 23 + 1;
      h.stride_b = 150 * 23;
      h.stride_c = 19 * 150;
      run_gemm_cfg(env, t & 1 ? K_F16A : K_F16, &h, "beta .75", &cf[i]);
    }
}

/* The tiled kernels' vector loads (operands whose layout is a multiple of 4 everywhere): every
 * configuration, transpose and operand format, at sizes that end mid-tile, with padded rows,
 * offsets and batch strides, against the reference and bit for bit against the same
 * configuration's scalar loads (novec; the summation order is the same). */
static void test_vec_loads(vt_env *env) {
  static const kind kinds[] = {K_F32, K_F16, K_BF16, K_F16A};
  vklm_matmul_config cf[16];
  uint32_t n = vklm_matmul_configs(env->ctx, cf, 16);
  for (uint32_t i = 0; i < n; i++)
    for (int t = 0; t < 4; t++) {
      kind k = kinds[(i + t) % 4];
      vklm_gemm g = vklm_gemm_make(36, 20, 44);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      g.batch = 2;
      g.lda = (g.trans_a ? g.M : g.K) + 8;
      g.ldb = (g.trans_b ? g.K : g.N) + 4;
      g.off_a = 4;
      g.off_b = 8;
      g.stride_a = (uint64_t)g.lda * (g.trans_a ? g.K : g.M) + 4;
      g.stride_b = 0; /* a shared B */
      g.stride_c = (uint64_t)g.M * g.N;
      float *vec = NULL, *scalar = NULL;
      uint64_t seed0 = seed;
      run_gemm_out(env, k, &g, "vector loads", &cf[i], &vec);
      vklm_matmul_config s = cf[i];
      s.novec = 1;
      seed = seed0;
      run_gemm_out(env, k, &g, "scalar loads", &s, &scalar);
      uint64_t na, nb, nc;
      vt_gemm_spans(&g, &na, &nb, &nc);
      vt_expect(env, memcmp(vec, scalar, nc * 4) == 0,
                "[%s] %s %c%c %ux%ux%u/%u%s: vector loads equal scalar loads bit for bit", family,
                KIND_NAME[k], g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', cf[i].BM, cf[i].BN,
                cf[i].BK, cf[i].threads, cf[i].dbuf ? " dbuf" : "");
      free(vec), free(scalar);
    }
}

static void test_gemm_shapes(vt_env *env, kind k) {
  static const uint32_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {65, 33, 17}, {130, 67, 200}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int t = 0; t < 4; t++) {
      vklm_gemm g = vklm_gemm_make(shapes[s][0], shapes[s][1], shapes[s][2]);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      run_gemm(env, k, &g, "");
    }
}

static void test_gemm_batched(vt_env *env, kind k) {
  for (int t = 0; t < 4; t++) {
    /* batch 3, alpha/beta, packed items */
    vklm_gemm g = vklm_gemm_make(65, 33, 17);
    g.batch = 3;
    g.trans_a = t & 1;
    g.trans_b = t >> 1;
    g.alpha = 0.5f;
    g.beta = 1.5f;
    g.stride_a = 65 * 17;
    g.stride_b = 33 * 17;
    g.stride_c = 65 * 33;
    run_gemm(env, k, &g, "alpha .5 beta 1.5");
    /* padded rows, element offsets (odd: fp16 halves start mid-word), B shared (stride 0) */
    vklm_gemm h = vt_gemm_awkward(t, 2, 0.0f);
    run_gemm(env, k, &h, "ld/offsets, shared B");
  }
}

/* ---- the linear layer -------------------------------------------------------------------- */

/* with_bias: 0 none, 1 a bias (its gradient from the dW GEMM's row sums), 2 a bias and a frozen
 * weight (no dW: the bias gradient's own two-stage reduction). */
static void test_linear(vt_env *env, uint32_t BT, uint32_t C, uint32_t OC, int with_bias) {
  int frozen = with_bias == 2;
  float *inp = vt_randf((size_t)BT * C, seed++, -1, 1);
  float *w = vt_randf((size_t)OC * C, seed++, -1, 1);
  float *bias = vt_randf(OC, seed++, -1, 1);
  float *dout = vt_randf((size_t)BT * OC, seed++, -1, 1);
  float *dinp = vt_randf((size_t)BT * C, seed++, -1, 1); /* overwritten */
  float *dw = vt_randf((size_t)OC * C, seed++, -1, 1);   /* accumulated */
  float *db = vt_randf(OC, seed++, -1, 1);               /* accumulated */
  float *out = vt_zeros((size_t)BT * OC);
  vklm_buffer Inp = vt_upload(env, inp, (size_t)BT * C * 4);
  vklm_buffer W = vt_upload(env, w, (size_t)OC * C * 4);
  vklm_buffer Bias = with_bias ? vt_upload(env, bias, OC * 4) : (vklm_buffer){0};
  vklm_buffer Out = vt_alloc(env, (size_t)BT * OC * 4);
  vklm_buffer Dout = vt_upload(env, dout, (size_t)BT * OC * 4);
  vklm_buffer Dinp = vt_upload(env, dinp, (size_t)BT * C * 4);
  vklm_buffer Dw = vt_upload(env, dw, (size_t)OC * C * 4);
  vklm_buffer Db = with_bias ? vt_upload(env, db, OC * 4) : (vklm_buffer){0};
  vt_begin(env);
  vt_ok(env, vklm_matmul_forward(env->cmd, Out, Inp, W, Bias, BT, C, OC), "forward");
  vt_ok(env, vklm_matmul_backward(env->cmd, Dinp, frozen ? (vklm_buffer){0} : Dw, Db, Dout, Inp,
                                  W, BT, C, OC),
        "backward");
  vt_run(env);
  float *g_out = vt_download(env, Out, (size_t)BT * OC);
  float *g_dinp = vt_download(env, Dinp, (size_t)BT * C);
  float *g_dw = vt_download(env, Dw, (size_t)OC * C);
  float *g_db = with_bias ? vt_download(env, Db, OC) : NULL;
  vklm_matmul_forward_ref(out, inp, w, with_bias ? bias : NULL, BT, C, OC);
  vklm_matmul_backward_ref(dinp, dw, with_bias ? db : NULL, dout, inp, w, BT, C, OC);
  char what[128];
  snprintf(what, sizeof what, "[%s] matmul_forward (%u,%u,%u)%s", family, BT, C, OC,
           with_bias ? " +bias" : "");
  vt_compare(env, what, g_out, out, (size_t)BT * OC, tol_for(C));
  snprintf(what, sizeof what, "[%s] matmul_backward dinp (%u,%u,%u)", family, BT, C, OC);
  vt_compare(env, what, g_dinp, dinp, (size_t)BT * C, tol_for(OC));
  if (!frozen) {
    snprintf(what, sizeof what, "[%s] matmul_backward dweight (%u,%u,%u)", family, BT, C, OC);
    vt_compare(env, what, g_dw, dw, (size_t)OC * C, tol_for(BT));
  }
  if (with_bias) {
    snprintf(what, sizeof what, "[%s] matmul_backward dbias (%u,%u,%u)%s", family, BT, C, OC,
             frozen ? " (frozen weight: two-stage)" : " (from the dW GEMM)");
    vt_compare(env, what, g_db, db, OC, tol_for(BT));
  }
  free(inp), free(w), free(bias), free(dout), free(dinp), free(dw), free(db), free(out);
  free(g_out), free(g_dinp), free(g_dw), free(g_db);
  vklm_arena_reset(env->arena);
}

/* Finite differences of the backward reference: loss = sum(out * proj). */
typedef struct fd_state {
  float *inp, *w, *bias, *proj, *out;
  uint32_t BT, C, OC;
} fd_state;

static double fd_loss(void *p) {
  fd_state *s = p;
  vklm_matmul_forward_ref(s->out, s->inp, s->w, s->bias, s->BT, s->C, s->OC);
  double l = 0;
  for (size_t i = 0; i < (size_t)s->BT * s->OC; i++) l += (double)s->out[i] * s->proj[i];
  return l;
}

static void test_fd(vt_env *env) {
  uint32_t BT = 5, C = 7, OC = 6;
  fd_state s = {vt_randf(BT * C, seed++, -1, 1), vt_randf(OC * C, seed++, -1, 1),
                vt_randf(OC, seed++, -1, 1), vt_randf(BT * OC, seed++, -1, 1),
                vt_zeros(BT * OC), BT, C, OC};
  float *dinp = vt_zeros(BT * C), *dw = vt_zeros(OC * C), *db = vt_zeros(OC);
  vklm_matmul_backward_ref(dinp, dw, db, s.proj, s.inp, s.w, BT, C, OC);
  vt_fd_check(env, "matmul_backward_ref dinp", fd_loss, &s, s.inp, BT * C, dinp, 64, 1e-2, 1e-3);
  vt_fd_check(env, "matmul_backward_ref dweight", fd_loss, &s, s.w, OC * C, dw, 64, 1e-2, 1e-3);
  vt_fd_check(env, "matmul_backward_ref dbias", fd_loss, &s, s.bias, OC, db, 64, 1e-2, 1e-3);
  free(s.inp), free(s.w), free(s.bias), free(s.proj), free(s.out), free(dinp), free(dw), free(db);
}

/* Long K (the LM head's input gradient reduces over the vocabulary, K = 50257): split into
 * several dispatches along K where the driver needs it (see matmul.c); every tile configuration
 * (with_configs), both layouts of A and B, with beta and a bias on the last part. */
static void test_long_k(vt_env *env, int with_configs) {
  vklm_matmul_config cf[16];
  uint32_t n = with_configs ? vklm_matmul_configs(env->ctx, cf, 16) : 0;
  for (uint32_t i = 0; i < n; i++) {
    vklm_gemm g = vklm_gemm_make(5, 9, 50257);
    g.trans_a = i & 1;
    g.trans_b = (i >> 1) & 1;
    g.beta = 0.5f;
    run_gemm_cfg(env, K_F32, &g, "long K", &cf[i]);
  }
  for (int t = 0; t < 4; t++) { /* the chosen kernel: matmul_cpu_f32 in the CPU family */
    vklm_gemm g = vklm_gemm_make(t & 1 ? 3 : 40, t & 2 ? 70 : 9, 50257);
    g.trans_a = t & 1;
    g.trans_b = t >> 1;
    g.beta = 0.5f;
    run_gemm(env, K_F32, &g, "long K");
  }
  vklm_gemm g = vklm_gemm_make(3, 7, 20001);
  run_gemm(env, K_F16, &g, "long K");
  run_gemm(env, K_NAIVE, &g, "long K");
  test_linear(env, 9, 5, 40000, 1); /* dinp reduces over OC = 40000, with the bias */
}

/* vklm_matmul_bias (the fp32 linear forward of engine/ops/quant.c): C = op(A) @ op(B) + beta C +
 * bias per row, into a padded C at an offset. */
static void test_matmul_bias(vt_env *env, uint32_t M, uint32_t N, uint32_t K, int trans_b) {
  vklm_gemm g = vklm_gemm_make(M, N, K);
  g.trans_b = trans_b;
  g.beta = 0.5f;
  g.ldc = N + 3;
  g.off_c = 5;
  uint64_t nc = vt_span(M, N, g.ldc, g.off_c, 0, 1);
  float *a = vt_randf((uint64_t)M * K, seed++, -1, 1), *b = vt_randf((uint64_t)K * N, seed++, -1, 1);
  float *c = vt_randf(nc, seed++, -1, 1), *bias = vt_randf(N, seed++, -1, 1);
  vklm_buffer A = vt_upload(env, a, (uint64_t)M * K * 4), B = vt_upload(env, b, (uint64_t)K * N * 4);
  vklm_buffer Cb = vt_upload(env, c, nc * 4), Bias = vt_upload(env, bias, N * 4);
  vt_begin(env);
  vt_ok(env, vklm_matmul_bias(env->cmd, Cb, A, B, Bias, &g), "matmul_bias");
  vt_run(env);
  float *got = vt_download(env, Cb, nc);
  vklm_gemm_ref(c, a, 0, b, 0, &g);
  for (uint32_t m = 0; m < M; m++)
    for (uint32_t n = 0; n < N; n++) c[g.off_c + (uint64_t)m * g.ldc + n] += bias[n];
  char what[96];
  snprintf(what, sizeof what, "[%s] matmul_bias N%s %ux%ux%u beta .5, ldc, off_c", family,
           trans_b ? "T" : "N", M, N, K);
  vt_compare(env, what, got, c, nc, tol_for(K));
  free(a), free(b), free(c), free(bias), free(got);
  vklm_arena_reset(env->arena);
}

/* The CPU kernel's blocks (matmul_cpu_f32: 8, 16 or 32 rows by 8 to 64 columns a workgroup, the
 * K loop one step at a time): M and N one below, at and one above each block edge, K of 1 and
 * more, all four transpose combinations, beta 0 (NaNs in C) and 1 (a non-zero C), the bias, and
 * batches with offsets, padded rows and shared operands. Runs in both families (cheap). */
static void test_cpu_blocks(vt_env *env) {
  static const uint32_t ms[] = {1, 7, 9, 15, 17, 31, 32, 33, 63, 64, 65};
  static const uint32_t ns[] = {1, 7, 8, 9, 15, 17, 31, 33, 63, 64, 65, 129};
  static const uint32_t ks[] = {1, 2, 9, 31};
  for (int t = 0; t < 4; t++) {
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
      vklm_gemm g = vklm_gemm_make(ms[i], 65, ks[i % 4]);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      g.beta = (i & 1) ? 1.0f : 0.0f;
      run_gemm(env, K_F32, &g, g.beta != 0 ? "M edge beta 1" : "M edge");
    }
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
      vklm_gemm g = vklm_gemm_make(33, ns[i], ks[(i + t) % 4]);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      g.beta = (i & 1) ? 0.0f : 1.0f;
      g.alpha = 0.75f;
      run_gemm(env, K_F32, &g, g.beta != 0 ? "N edge beta 1" : "N edge");
    }
    vklm_gemm one = vklm_gemm_make(1, 1, 1);
    one.trans_a = t & 1;
    one.trans_b = t >> 1;
    one.beta = 1.0f;
    run_gemm(env, K_F32, &one, "1x1x1 beta 1");
    /* batch 3 at the block edges: offsets, padded rows, per-item A and C, B shared */
    vklm_gemm h = vklm_gemm_make(33, 65, 17);
    h.batch = 3;
    h.trans_a = t & 1;
    h.trans_b = t >> 1;
    h.beta = 1.0f;
    h.lda = (t & 1 ? 33 : 17) + 2;
    h.ldb = (t >> 1 ? 17 : 65) + 1;
    h.ldc = 65 + 3;
    h.off_a = 5;
    h.off_b = 2;
    h.off_c = 1;
    h.stride_a = (t & 1 ? 17 : 33) * (uint64_t)h.lda + 7;
    h.stride_b = 0;
    h.stride_c = 33 * 68 + 4;
    run_gemm(env, K_F32, &h, "batch, ld/offsets, shared B, beta 1");
  }
  test_matmul_bias(env, 33, 65, 17, 1);
  test_matmul_bias(env, 9, 17, 40, 0);
  test_linear(env, 33, 17, 65, 1); /* bias at the edges: 33 rows, 65 columns */
  test_linear(env, 1, 1, 1, 1);
  test_linear(env, 64, 64, 64, 1);
}

/* Every case above, in the family selected on env's context. */
static void test_family(vt_env *env, vklm_kernels k) {
  vklm_context_set_kernels(env->ctx, k);
  family = k == VKLM_KERNELS_CPU ? "cpu" : "gpu";
  test_long_k(env, k == VKLM_KERNELS_GPU);
  if (k == VKLM_KERNELS_GPU) { /* explicit configurations: tiled in any family */
    test_configs(env);
    test_vec_loads(env);
  }
  for (int t = K_F32; t <= K_NAIVE; t++) {
    test_gemm_shapes(env, (kind)t);
    test_gemm_batched(env, (kind)t);
  }
  /* bf16 operands (mixed precision's weight copies): both and weight-only */
  test_gemm_shapes(env, K_BF16);
  test_gemm_batched(env, K_BF16B);
  test_cpu_blocks(env);
  /* GPT-2-like: a QKV projection of 96 tokens, C = 768 (out = inp @ W^T) */
  vklm_gemm g = vklm_gemm_make(96, 2304, 768);
  g.trans_b = 1;
  run_gemm(env, K_F32, &g, "gpt2 qkv");
  run_gemm(env, K_F16, &g, "gpt2 qkv");

  test_linear(env, 37, 29, 53, 1);
  test_linear(env, 37, 29, 53, 0);
  test_linear(env, 300, 64, 130, 1);
  test_linear(env, 8300, 3, 70, 1);  /* the dW GEMM's row sums across llvmpipe's K split */
  test_linear(env, 300, 64, 130, 2); /* frozen weight: the 128-chunk bias reduction */
  test_linear(env, 3, 5, 200, 2);    /* dinp too small for the chunks: one stage */
  test_fd(env);
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_matmul");
  const vklm_caps *caps = vklm_context_caps(env.ctx);
  vklm_gemm big = vklm_gemm_make(8192, 768, 768);
  vklm_matmul_config cf = vklm_matmul_config_choose(env.ctx, &big);
  printf("tile config for 8192x768x768: %ux%ux%u, %ux%u per thread, %u threads\n", cf.BM, cf.BN,
         cf.BK, cf.TM, cf.TN, cf.threads);
  uint32_t chunk = vklm_matmul_k_chunk(env.ctx);
  printf("driver %s: K split %u; CPU fp32 kernel %s\n", caps->driver_name, chunk,
         vklm_matmul_cpu_available(env.ctx) ? "available" : "unavailable (tiled instead)");
  /* llvmpipe ends loops after 65535 iterations: its GEMMs must be split along K. */
  if (strstr(caps->driver_name, "llvmpipe"))
    vt_expect(&env, chunk == 8192, "llvmpipe: K split %u, want 8192", chunk);
  if (caps->type == VKLM_DEVICE_CPU)
    vt_expect(&env, vklm_matmul_cpu_available(env.ctx), "the CPU fp32 kernel should run on %s",
              caps->name);
  test_family(&env, VKLM_KERNELS_GPU);
  test_family(&env, VKLM_KERNELS_CPU);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_AUTO);
  return vt_finish(&env);
}

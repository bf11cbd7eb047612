/* GEMMs writing C in 16 bits and the GELU-derivative epilogue reading a 16-bit pre
 * (VKLM_TEST_GPU): mixed-precision training's saved qkv and fch (matmul.h's vklm_matmul_fmt,
 * vklm_matmul_gelu_fmt, vklm_matmul_dgelu_fmt; spec constant 13 C_FMT and 10 of
 * shaders/matmul_store.glsl). Against the C reference (vklm_gemm_ref on the operands as packed,
 * plus the bias), in every GEMM body the model's linear layers run on this device: the tiled
 * kernels (GPU family), the CPU-type kernels (CPU family) and, on a context of its own with
 * VKLM_COOPMAT=emulate, the cooperative-matrix tiling (fp16 B). Sizes off every block edge, all
 * four transposes, batches with padded rows and odd element offsets (C's 16-bit halves starting
 * mid-word, rows sharing words), K up to the split length.
 * A 16-bit C: every element within one 16-bit ulp of the reference's sum rounded to nearest even
 * (the GPU's fp32 sum may lie across a rounding boundary from the double one: rare, counted),
 * and every half outside the matrix unchanged (C pre-filled with a sentinel). The GELU epilogue's
 * act is the GELU of C as stored (rounded: what the GELU kernel and the backward read), checked
 * the same way. dgelu: fp32 C =
 * (dout @ W) * gelu'(pre) with pre the 16-bit values widened. Then the tensor-level entries (nn.h)
 * with 16-bit outputs and pre. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/nn.h"
#include "ops/ops.h"
#include "testutil.h"

static uint64_t seed = 101;
static const char *family = "gpu";
static const char *const FMT[] = {"f32", "f16", "bf16"};

static double tol_for(uint32_t K) { return 3e-5 * (1.0 + sqrt((double)K)); }

/* The cooperative-matrix GEMM stages an fp32 A in fp16: on its context the tests' fp32 A
 * operands hold fp16 values, so that the reference sees what it multiplies. */
static int coop_round;
static float *operand_a(uint64_t n, uint64_t sd) {
  float *x = vt_randf(n, sd, -1, 1);
  if (coop_round)
    for (uint64_t i = 0; i < n; i++) x[i] = vklm_f16_to_f32_ref(vklm_f32_to_f16_ref(x[i]));
  return x;
}


/* The 16-bit halves in words w (nc elements) against want (fp32, NAN outside the matrix: there
 * the half must still be the sentinel's). */
/* Elements whose sum cancels (|want| far below the matrix's largest) are held to the fp32 sum's
 * own error instead: |got - want| <= tol * max|want| (tol_for(K)). */
static void check16(vt_env *env, const char *what, const uint32_t *w, int fmt, const float *want,
                    uint64_t nc, double tol) {
  int bad = 0, off = 0, n = 0, worst = 0;
  uint64_t outside_bad = 0, at = 0;
  double big = 0;
  for (uint64_t i = 0; i < nc; i++)
    if (!isnan(want[i])) big = fmax(big, fabs(want[i]));
  for (uint64_t i = 0; i < nc; i++) {
    uint16_t h = vt_half_of(w, i);
    if (isnan(want[i])) {
      outside_bad += h != (uint16_t)VT_SENTINEL16;
      continue;
    }
    /* fp32 subnormals (the GELU's far tail) may be flushed by the driver */
    int d = fabsf(want[i]) < 1e-37f ? 0 : vt_ulps16(h, vt_to16(want[i], fmt));
    if (d > 1 && fabs(vt_from16(h, fmt) - want[i]) <= tol * big) d = 1;
    if (d > worst) worst = d, at = i;
    bad += d > 1;
    off += d == 1;
    n++;
  }
  vt_expect(env, bad == 0 && off <= 1 + n / 100,
            "%-58s %d of %d elements 1 ulp from round(ref), %d more (worst %d)", what, off, n, bad,
            worst);
  if (bad) printf("       at %llu: got %.8g want %.8g\n", (unsigned long long)at,
                  vt_from16(vt_half_of(w, at), fmt), want[at]);
  vt_expect(env, outside_bad == 0, "%s: %llu half-word(s) outside the matrix changed", what,
            (unsigned long long)outside_bad);
}

enum { PLAIN, GELU, DGELU };

/* One GEMM of kind k: PLAIN C (c_fmt) = alpha op(A) op(B) + bias; GELU the same and act (act_fmt)
 * = gelu of the fp32 sum; DGELU fp32 C = (alpha op(A) op(B) + beta C) * gelu'(pre (pre_fmt)). */
static void run(vt_env *env, int k, const vklm_gemm *g, int a_fmt, int b_fmt, int c_fmt,
                int x_fmt, int with_bias, const char *label) {
  uint32_t batch = g->batch ? g->batch : 1;
  uint64_t na, nb, nc;
  vt_gemm_spans(g, &na, &nb, &nc);
  float *a = operand_a(na, seed++), *b = vt_randf(nb, seed++, -1, 1);
  float *c = vt_randf(nc, seed++, -1, 1), *x = vt_randf(nc, seed++, -3, 3);
  float *bias = vt_randf(g->N, seed++, -1, 1);
  void *ha, *hb, *hx = NULL;
  vklm_buffer A = vt_upload_fmt(env, a, na, a_fmt, &ha), B = vt_upload_fmt(env, b, nb, b_fmt, &hb);
  vklm_buffer Cb = k == DGELU ? vt_upload(env, c, nc * 4) : vt_alloc16(env, nc);
  vklm_buffer X = {0};
  if (k == GELU) X = x_fmt ? vt_alloc16(env, nc) : vt_alloc(env, nc * 4);
  if (k == DGELU) X = vt_upload_fmt(env, x, nc, x_fmt, &hx);
  vklm_buffer Bias = with_bias ? vt_upload(env, bias, g->N * 4) : (vklm_buffer){0};
  vt_begin(env);
  vklm_status st = k == PLAIN ? vklm_matmul_fmt(env->cmd, Cb, c_fmt, A, a_fmt, B, b_fmt, Bias, g)
                   : k == GELU
                       ? vklm_matmul_gelu_fmt(env->cmd, Cb, c_fmt, X, x_fmt, A, a_fmt, B, b_fmt,
                                                Bias, g)
                       : vklm_matmul_dgelu_fmt(env->cmd, Cb, A, a_fmt, B, b_fmt, X, x_fmt, g);
  vt_ok(env, st, "matmul");
  vt_run(env);
  /* the reference: C's fp32 values inside the matrix, NAN outside */
  float *want = malloc(nc * sizeof *want), *wact = malloc(nc * sizeof *wact);
  float *ref = vt_copy(c, nc);
  vklm_gemm_ref(ref, ha, a_fmt, hb, b_fmt, g);
  uint64_t ldc = g->ldc ? g->ldc : g->N;
  for (uint64_t i = 0; i < nc; i++) want[i] = wact[i] = NAN;
  for (uint32_t z = 0; z < batch; z++)
    for (uint32_t m = 0; m < g->M; m++)
      for (uint32_t n = 0; n < g->N; n++) {
        uint64_t ci = g->off_c + z * g->stride_c + m * ldc + n;
        float v = ref[ci] + (with_bias ? bias[n] : 0.0f);
        if (k == DGELU) {
          float p = x_fmt ? vt_from16(vt_half_of(hx, ci), x_fmt) : x[ci];
          vklm_gelu_backward_ref(&v, &v, &p, 1);
        }
        want[ci] = v;
        if (k == GELU) { /* gelu of C as stored */
          float vr = c_fmt ? vt_from16(vt_to16(v, c_fmt), c_fmt) : v;
          vklm_gelu_forward_ref(&wact[ci], &vr, 1);
        }
      }
  char what[200];
  snprintf(what, sizeof what, "[%s] %s a %s b %s: %s %s%s %ux%ux%u b%u %s%s", family,
           k == PLAIN ? "plain" : k == GELU ? "gelu" : "dgelu", FMT[a_fmt], FMT[b_fmt],
           k == DGELU ? "pre" : "C", FMT[k == DGELU ? x_fmt : c_fmt], g->trans_a ? " AT" : "",
           g->M, g->N, g->K, batch, label, with_bias ? " +bias" : "");
  if (k == DGELU) {
    float *got = vt_download(env, Cb, nc);
    for (uint64_t i = 0; i < nc; i++)
      if (isnan(want[i])) want[i] = c[i]; /* outside: unchanged */
    vt_compare(env, what, got, want, nc, tol_for(g->K));
    free(got);
  } else {
    float *got = vt_download(env, Cb, (nc + 1) / 2);
    check16(env, what, (const uint32_t *)got, c_fmt, want, nc, tol_for(g->K));
    free(got);
    if (k == GELU) {
      snprintf(what, sizeof what, "[%s] gelu act %s (C %s) %ux%ux%u %s", family, FMT[x_fmt],
               FMT[c_fmt], g->M, g->N, g->K, label);
      if (x_fmt) {
        float *ga = vt_download(env, X, (nc + 1) / 2);
        check16(env, what, (const uint32_t *)ga, x_fmt, wact, nc, tol_for(g->K));
        free(ga);
      } else {
        float *ga = vt_download(env, X, nc);
        for (uint64_t i = 0; i < nc; i++)
          if (isnan(wact[i])) wact[i] = ga[i] = 0;
        /* the GPU's and the reference's sums may round to neighbouring 16-bit values of C */
        vt_compare(env, what, ga, wact, nc,
                   tol_for(g->K) + (c_fmt == VKLM_GEMM_BF16 ? 8e-3 : c_fmt ? 1e-3 : 0.0));
        free(ga);
      }
    }
  }
  free(a), free(b), free(c), free(x), free(bias), free(ha), free(hb), free(hx);
  free(want), free(wact), free(ref);
  vklm_arena_reset(env->arena);
}

/* Formats by transpose combination t only, so that every shape of a (t, kind) reuses one
 * pipeline (building pipelines is what such a test spends its time on with lavapipe): B fp16 or
 * bf16 by A's transpose, C (or pre) fp16 or bf16 by whether the transposes differ, act fp32,
 * fp16 or bf16 by t. coop: B fp16 (the cooperative-matrix GEMM's), fewer shapes (emulated). */
static int bfmt(int t, int coop) { return coop ? VKLM_GEMM_F16 : 1 + (t & 1); }
static int cfmt(int t) { return 1 + ((t ^ (t >> 1)) & 1); }

static void test_gemms(vt_env *env, int coop) {
  static const uint32_t shapes[][3] = {{1, 33, 1}, {65, 33, 17}, {7, 37, 5}, {33, 70, 9}};
  for (size_t s = 0; s < (coop ? 2u : sizeof shapes / sizeof shapes[0]); s++)
    for (int t = 0; t < 4; t++) {
      vklm_gemm g = vklm_gemm_make(shapes[s][0], shapes[s][1], shapes[s][2]);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      run(env, PLAIN, &g, VKLM_GEMM_F32, bfmt(t, coop), cfmt(t), 0, (int)(s + t) & 1, "");
      if (!coop) {
        run(env, GELU, &g, VKLM_GEMM_F32, bfmt(t, 0), cfmt(t), t % 3, (int)(s + t + 1) & 1, "");
        run(env, DGELU, &g, VKLM_GEMM_F32, bfmt(t, 0), 0, cfmt(t), 0, "");
      }
    }
  for (int t = 0; t < 4; t++) {
    /* batch 2, alpha -1.25, padded rows, odd offsets (16-bit halves mid-word), B shared; beta 0 */
    vklm_gemm h = vt_gemm_awkward(t, 3, 0.0f);
    run(env, PLAIN, &h, VKLM_GEMM_F32, bfmt(t, coop), cfmt(t), 0, t & 1, "awkward");
    if (!coop) {
      run(env, GELU, &h, VKLM_GEMM_F32, bfmt(t, 0), cfmt(t), t % 3, t >> 1, "awkward");
      vklm_gemm d = vt_gemm_awkward(t, 3, 0.5f); /* the dgelu keeps beta */
      run(env, DGELU, &d, VKLM_GEMM_F32, bfmt(t, 0), 0, cfmt(t), 0, "awkward beta 0.5");
    }
  }
  /* a 16-bit A too (the training graph's case: ln1 / ln2 in, qkv / fch out), odd offsets */
  vklm_gemm g = vklm_gemm_make(37, 45, 29);
  g.trans_b = 1;
  g.off_a = 1;
  g.off_c = 1;
  run(env, PLAIN, &g, VKLM_GEMM_F16, coop ? VKLM_GEMM_F16 : VKLM_GEMM_BF16, VKLM_GEMM_F16, 0, 1,
      "16-bit A, odd offsets");
  if (!coop) {
    run(env, GELU, &g, VKLM_GEMM_BF16, VKLM_GEMM_BF16, VKLM_GEMM_BF16, VKLM_GEMM_BF16, 1,
        "16-bit A, odd offsets");
    /* K at llvmpipe's split length: still one dispatch, no accumulation in 16 bits */
    vklm_gemm l = vklm_gemm_make(3, 40, 8192);
    l.trans_b = 1;
    run(env, GELU, &l, VKLM_GEMM_F32, bfmt(2, 0), cfmt(2), 2, 1, "K 8192");
    vklm_gemm d = vklm_gemm_make(3, 40, 20001); /* the dgelu's parts accumulate in fp32 C */
    run(env, DGELU, &d, VKLM_GEMM_F32, bfmt(0, 0), 0, cfmt(0), 0, "long K");
  }
}

/* nn.h: vklm_nn_linear with a 16-bit out (fp32 and 16-bit in), vklm_nn_linear_gelu with 16-bit
 * out and act (one dispatch where the epilogue fuses), vklm_nn_linear_backward_gelu with a
 * 16-bit pre, vklm_nn_mlp_act reading the 16-bit out. */
static void test_nn(vt_env *env, vklm_dtype ht, vklm_dtype wt) {
  uint32_t M = 45, K = 24, N = 41;
  int hf = ht == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : VKLM_GEMM_F16;
  int wf = wt == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : wt == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : 0;
  float *in = operand_a((size_t)M * K, seed++), *w = vt_randf((size_t)N * K, seed++, -1, 1);
  float *b = vt_randf(N, seed++, -1, 1), *dout = operand_a((size_t)M * K, seed++);
  void *hw, *hin;
  vklm_buffer Wb = vt_upload_fmt(env, w, (uint64_t)N * K, wf, &hw);
  vklm_buffer Inb = vt_upload_fmt(env, in, (uint64_t)M * K, hf, &hin);
  float *wr = malloc((size_t)N * K * sizeof *wr), *ir = malloc((size_t)M * K * sizeof *ir);
  for (size_t i = 0; i < (size_t)N * K; i++) wr[i] = wf ? vt_from16(vt_half_of(hw, i), wf) : w[i];
  for (size_t i = 0; i < (size_t)M * K; i++) ir[i] = vt_from16(vt_half_of(hin, i), hf);
  vklm_tensor In16 = vklm_tensor_2d(Inb, ht, M, K);
  vklm_tensor In32 = vklm_tensor_2d(vt_upload(env, in, (size_t)M * K * 4), VKLM_DTYPE_F32, M, K);
  vklm_tensor W = vklm_tensor_2d(Wb, wt, N, K), Wp = vklm_tensor_2d(Wb, wt, K, N);
  vklm_tensor Bt = vklm_tensor_1d(vt_upload(env, b, N * 4), VKLM_DTYPE_F32, N);
  vklm_tensor Out1 = vklm_tensor_2d(vt_alloc16(env, (size_t)M * N), ht, M, N);
  vklm_tensor Out2 = vklm_tensor_2d(vt_alloc16(env, (size_t)M * N), ht, M, N);
  vklm_tensor Pre = vklm_tensor_2d(vt_alloc16(env, (size_t)M * N), ht, M, N);
  vklm_tensor Act = vklm_tensor_2d(vt_alloc16(env, (size_t)M * N), ht, M, N);
  vklm_tensor Act2 = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  vklm_tensor Dout = vklm_tensor_2d(vt_upload(env, dout, (size_t)M * K * 4), VKLM_DTYPE_F32, M, K);
  vklm_tensor Dpre = vklm_tensor_2d(vt_alloc(env, (size_t)M * N * 4), VKLM_DTYPE_F32, M, N);
  vt_begin(env);
  vt_ok(env, vklm_nn_linear(env->cmd, Out1, In16, W, Bt), "nn_linear 16-bit in/out");
  vt_ok(env, vklm_nn_linear(env->cmd, Out2, In32, W, Bt), "nn_linear 16-bit out");
  uint32_t n0 = vklm_cmd_dispatch_count(env->cmd);
  vt_ok(env, vklm_nn_linear_gelu(env->cmd, Pre, Act, In16, W, Bt), "nn_linear_gelu");
  uint32_t nf = vklm_cmd_dispatch_count(env->cmd) - n0;
  vt_ok(env, vklm_nn_mlp_act(env->cmd, 0, Act2, Pre), "nn_gelu of a 16-bit in");
  vt_ok(env, vklm_nn_linear_backward_gelu(env->cmd, Dpre, vklm_tensor_none(), vklm_tensor_none(),
                                          Dout, Act, Wp, Pre),
        "nn_linear_backward_gelu");
  vt_run(env);
  int fuses = vklm_matmul_epilogue_fuses(env->ctx, hf, wf);
  vt_expect(env, !fuses || nf == 1u, "[%s] nn_linear_gelu 16-bit out: %u dispatch(es), want 1",
            family, nf);
  size_t mn = (size_t)M * N;
  float *o1 = vt_zeros(mn), *o2 = vt_zeros(mn), *act = vt_zeros(mn);
  vklm_matmul_forward_gelu_ref(o1, act, ir, wr, b, M, K, N);
  vklm_matmul_forward_ref(o2, in, wr, b, M, K, N);
  char what[120];
  uint32_t *g;
  snprintf(what, sizeof what, "[%s] nn_linear %s in, %s out, %s w", family,
           vklm_dtype_name(ht), vklm_dtype_name(ht), vklm_dtype_name(wt));
  check16(env, what, g = (uint32_t *)vt_download(env, Out1.buf, (mn + 1) / 2), hf, o1, mn, tol_for(K));
  free(g);
  snprintf(what, sizeof what, "[%s] nn_linear f32 in, %s out", family, vklm_dtype_name(ht));
  check16(env, what, g = (uint32_t *)vt_download(env, Out2.buf, (mn + 1) / 2), hf, o2, mn, tol_for(K));
  free(g);
  snprintf(what, sizeof what, "[%s] nn_linear_gelu %s out", family, vklm_dtype_name(ht));
  float *gp = vt_download(env, Pre.buf, (mn + 1) / 2);
  check16(env, what, (const uint32_t *)gp, hf, o1, mn, tol_for(K));
  /* act: the GELU of out as stored, fused or not */
  float *pw = malloc(mn * sizeof *pw), *a2 = malloc(mn * sizeof *a2);
  for (size_t i = 0; i < mn; i++) pw[i] = vt_from16(vt_half_of((uint32_t *)gp, i), hf);
  vklm_gelu_forward_ref(a2, pw, (uint32_t)mn);
  snprintf(what, sizeof what, "[%s] nn_linear_gelu %s act", family, vklm_dtype_name(ht));
  check16(env, what, g = (uint32_t *)vt_download(env, Act.buf, (mn + 1) / 2), hf, a2, mn,
          tol_for(K));
  free(g);
  snprintf(what, sizeof what, "[%s] nn_gelu of %s pre", family, vklm_dtype_name(ht));
  float *ga2 = vt_download(env, Act2.buf, mn);
  vt_compare(env, what, ga2, a2, mn, 1e-4);
  /* dpre (M,N) = (dout (M,K) @ Wp (K,N), w's words read as (K,N)) * gelu'(pre as stored) */
  float *dp = vt_zeros(mn);
  for (uint32_t m = 0; m < M; m++)
    for (uint32_t n = 0; n < N; n++) {
      double s = 0;
      for (uint32_t k = 0; k < K; k++) s += (double)dout[(size_t)m * K + k] * wr[(size_t)k * N + n];
      float v = (float)s;
      vklm_gelu_backward_ref(&dp[(size_t)m * N + n], &v, &pw[(size_t)m * N + n], 1);
    }
  float *gd = vt_download(env, Dpre.buf, mn);
  snprintf(what, sizeof what, "[%s] nn_linear_backward_gelu %s pre, %s w", family,
           vklm_dtype_name(ht), vklm_dtype_name(wt));
  vt_compare(env, what, gd, dp, mn, tol_for(K));
  free(in), free(w), free(b), free(dout), free(hw), free(hin), free(wr), free(ir), free(o1);
  free(o2), free(act), free(gp), free(pw), free(a2), free(ga2), free(dp), free(gd);
  vklm_arena_reset(env->arena);
}

static void test_family(vt_env *env, vklm_kernels k) {
  vklm_context_set_kernels(env->ctx, k);
  family = k == VKLM_KERNELS_CPU ? "cpu" : "gpu";
  test_gemms(env, 0);
  test_nn(env, VKLM_DTYPE_BF16, VKLM_DTYPE_BF16);
  test_nn(env, VKLM_DTYPE_F16, VKLM_DTYPE_F16);
  test_nn(env, VKLM_DTYPE_BF16, VKLM_DTYPE_F32);
}

/* The cooperative-matrix tiling (emulated where the device has none) on a context of its own. */
static void test_coopmat(vt_env *env) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  if (cfg.coopmat == VKLM_COOPMAT_OFF) return;
  vt_env e;
  if (!vt_env_coopmat(env, vklm_matmul_coopmat_available(env->ctx) ? cfg.coopmat
                                                                    : VKLM_COOPMAT_EMULATE,
                      &e))
    return;
  if (vklm_matmul_coopmat_available(e.ctx)) {
    family = "coopmat";
    vt_expect(&e, !vklm_matmul_epilogue_fuses(e.ctx, VKLM_GEMM_F32, VKLM_GEMM_F16),
              "fp16-B GEMMs go to cooperative matrices");
    coop_round = 1;
    test_gemms(&e, 1);
    test_nn(&e, VKLM_DTYPE_F16, VKLM_DTYPE_F16); /* the linear + separate GELU path */
    coop_round = 0;
  }
  vt_env_end(env, &e);
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_matmul_out16");
  test_family(&env, VKLM_KERNELS_GPU);
  test_family(&env, VKLM_KERNELS_CPU);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_AUTO);
  test_coopmat(&env);
  return vt_finish(&env);
}

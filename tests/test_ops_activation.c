/* Activation op tests (VKLM_TEST_GPU): GELU (tanh form), SiLU, SwiGLU (fused (N,2H) gate|up
 * input) and softmax over the last dimension, forward and backward on the GPU against their C
 * references, for shapes N x C with C = 1, 3, 67, 769, 1000 and N = 1, 5, 130 (none a multiple
 * of a workgroup size), inputs reaching far into the tails (|x| up to 30 for the elementwise
 * ops, large logits for softmax), and every backward reference checked by finite differences of
 * loss = sum(out * proj). Backward outputs are pre-filled with garbage to check they overwrite.
 * GELU and SwiGLU forward with an fp16 or bf16 output (the _fmt calls) against the reference
 * rounded to the format, at odd N*C; and with an fp16 or bf16 input (mixed precision's saved
 * fch), forward (fp32 and 16-bit out) and backward (also in place, GELU), against the references
 * fed the 16-bit values widened. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

/* vt_compare's metric (relative, floored at 1e-3 * max|want|): the worst elements are those near
 * zero, at a few fp32 ulp of exp's result (GLSL's exp is allowed 3 + 2|x| ulp). */
#define TOL 1e-4
/* Softmax backward, out * (dout - sum(dout * out)), is all cancellation where one logit
 * dominates (its gradient is ~0); its error is measured against the scale of the terms:
 * max |got - want| / (max|dout| * max|out|). */
#define TOL_ABS 1e-6

static double compare_abs(vt_env *env, const char *what, const float *got, const float *want,
                          size_t n, double scale, double tol) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]) / scale;
    if (!(d <= worst)) { worst = d; at = i; }
  }
  int ok = worst <= tol;
  vt_expect(env, ok, "%-40s n=%-8zu worst abs err / scale %.3e (tol %.0e)", what, n, worst, tol);
  if (!ok) printf("       at %zu: got %.8g want %.8g\n", at, got[at], want[at]);
  return worst;
}

static double absmax(const float *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

enum { GELU, SILU, SWIGLU, SOFTMAX };
static const char *names[] = {"gelu", "silu", "swiglu", "softmax"};

static vklm_buffer up(vt_env *env, const float *x, size_t n) { return vt_upload(env, x, n * 4); }

/* Sizes of the op's input and output for shape (N, C). */
static size_t in_size(int op, uint32_t N, uint32_t C) { return (size_t)N * C * (op == SWIGLU ? 2 : 1); }

static void ref_forward(int op, float *out, const float *inp, uint32_t N, uint32_t C) {
  switch (op) {
  case GELU: vklm_gelu_forward_ref(out, inp, N * C); break;
  case SILU: vklm_silu_forward_ref(out, inp, N * C); break;
  case SWIGLU: vklm_swiglu_forward_ref(out, inp, N, C); break;
  default: vklm_softmax_forward_ref(out, inp, N, C); break;
  }
}

/* dinp from dout; softmax uses the forward's output `out`. */
static void ref_backward(int op, float *dinp, const float *dout, const float *inp,
                         const float *out, uint32_t N, uint32_t C) {
  switch (op) {
  case GELU: vklm_gelu_backward_ref(dinp, dout, inp, N * C); break;
  case SILU: vklm_silu_backward_ref(dinp, dout, inp, N * C); break;
  case SWIGLU: vklm_swiglu_backward_ref(dinp, dout, inp, N, C); break;
  default: vklm_softmax_backward_ref(dinp, dout, out, N, C); break;
  }
}

static void gpu_forward(vt_env *env, int op, vklm_buffer out, vklm_buffer inp, uint32_t N, uint32_t C) {
  vklm_status st;
  switch (op) {
  case GELU: st = vklm_gelu_forward(env->cmd, out, inp, N * C); break;
  case SILU: st = vklm_silu_forward(env->cmd, out, inp, N * C); break;
  case SWIGLU: st = vklm_swiglu_forward(env->cmd, out, inp, N, C); break;
  default: st = vklm_softmax_forward(env->cmd, out, inp, N, C); break;
  }
  vt_ok(env, st, names[op]);
}

static void gpu_backward(vt_env *env, int op, vklm_buffer dinp, vklm_buffer dout, vklm_buffer inp,
                         vklm_buffer out, uint32_t N, uint32_t C) {
  vklm_status st;
  switch (op) {
  case GELU: st = vklm_gelu_backward(env->cmd, dinp, dout, inp, N * C); break;
  case SILU: st = vklm_silu_backward(env->cmd, dinp, dout, inp, N * C); break;
  case SWIGLU: st = vklm_swiglu_backward(env->cmd, dinp, dout, inp, N, C); break;
  default: st = vklm_softmax_backward(env->cmd, dinp, dout, out, N, C); break;
  }
  vt_ok(env, st, names[op]);
}

/* For softmax, rows r % 3 == 2 get logits 40 above the rest at every 5th column: stability of
 * the forward. (Their gradient is ~0 by cancellation, so the other rows set the scale.) */
static float *inputs(int op, size_t n, uint32_t C, uint64_t seed) {
  float *x = vt_randf(n, seed, -6, 6);
  if (op == SOFTMAX)
    for (size_t i = 0; i < n; i++) x[i] = x[i] * 2 + ((i / C) % 3 == 2 && i % 5 == 0 ? 40.0f : 0.0f);
  else
    for (size_t i = 0; i < n; i += 17) x[i] *= 5; /* tails: |x| up to 30 */
  return x;
}

static void test_op(vt_env *env, int op, uint32_t N, uint32_t C, uint64_t seed) {
  size_t ni = in_size(op, N, C), no = (size_t)N * C;
  float *inp = inputs(op, ni, C, seed), *dout = vt_randf(no, seed + 1, -1, 1);
  float *junk = vt_randf(ni, seed + 2, 100, 200);
  vklm_buffer g_inp = up(env, inp, ni), g_dout = up(env, dout, no), g_dinp = up(env, junk, ni);
  vklm_buffer g_out = vt_alloc(env, no * 4);
  vt_begin(env);
  gpu_forward(env, op, g_out, g_inp, N, C);
  gpu_backward(env, op, g_dinp, g_dout, g_inp, g_out, N, C);
  vt_run(env);
  float *out = vt_zeros(no), *dinp = vt_zeros(ni);
  ref_forward(op, out, inp, N, C);
  /* softmax backward is fed the GPU's own forward output, as it is in training */
  float *gout = vt_download(env, g_out, no);
  ref_backward(op, dinp, dout, inp, gout, N, C);
  char what[96];
  snprintf(what, sizeof what, "%s forward N=%u C=%u", names[op], N, C);
  vt_compare(env, what, gout, out, no, TOL);
  float *gdinp = vt_download(env, g_dinp, ni);
  snprintf(what, sizeof what, "%s backward N=%u C=%u", names[op], N, C);
  if (op == SOFTMAX)
    compare_abs(env, what, gdinp, dinp, ni, absmax(dout, no) * absmax(gout, no), TOL_ABS);
  else
    vt_compare(env, what, gdinp, dinp, ni, TOL);
  free(inp); free(dout); free(junk); free(out); free(dinp); free(gout); free(gdinp);
}

/* ---- finite differences of the references ---------------------------------------------- */
typedef struct fd_state {
  int op;
  uint32_t N, C;
  float *inp, *proj, *out;
} fd_state;

static double fd_loss(void *p) {
  fd_state *s = p;
  ref_forward(s->op, s->out, s->inp, s->N, s->C);
  double l = 0;
  for (size_t i = 0; i < (size_t)s->N * s->C; i++) l += (double)s->out[i] * s->proj[i];
  return l;
}

static void fd_check(vt_env *env, int op, uint32_t N, uint32_t C, uint64_t seed) {
  size_t ni = in_size(op, N, C), no = (size_t)N * C;
  fd_state s = {op, N, C, vt_randf(ni, seed, -4, 4), vt_randf(no, seed + 1, -1, 1), vt_zeros(no)};
  fd_loss(&s);
  float *dinp = vt_zeros(ni);
  ref_backward(op, dinp, s.proj, s.inp, s.out, N, C);
  char what[96];
  snprintf(what, sizeof what, "%s ref backward N=%u C=%u", names[op], N, C);
  vt_fd_check(env, what, fd_loss, &s, s.inp, ni, dinp, 64, 1e-3, 1e-2);
  free(s.inp); free(s.proj); free(s.out); free(dinp);
}

/* Softmax of a row with one huge logit and -inf entries stays finite. */
static void test_softmax_extremes(vt_env *env) {
  float x[6] = {1e4f, 0.0f, -INFINITY, 1e4f - 1.0f, -INFINITY, -1e4f};
  vklm_buffer g_x = up(env, x, 6), g_y = vt_alloc(env, 24);
  vt_begin(env);
  vt_ok(env, vklm_softmax_forward(env->cmd, g_y, g_x, 1, 6), "softmax");
  vt_run(env);
  float *y = vt_download(env, g_y, 6), want[6];
  vklm_softmax_forward_ref(want, x, 1, 6);
  vt_compare(env, "softmax with 1e4 and -inf logits", y, want, 6, TOL);
  free(y);
}

/* The reference GELU (written with sigmoid(2u)) is GPT-2's tanh form. */
static void test_gelu_is_tanh_form(vt_env *env) {
  uint32_t n = 1001;
  float *x = vt_zeros(n), *got = vt_zeros(n), *want = vt_zeros(n);
  for (uint32_t i = 0; i < n; i++) {
    double v = -8.0 + 16.0 * i / (n - 1);
    x[i] = (float)v;
    v = x[i];
    want[i] = (float)(0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))));
  }
  vklm_gelu_forward_ref(got, x, n);
  vt_compare(env, "gelu ref == 0.5x(1+tanh(...)) on [-8,8]", got, want, n, 1e-6);
  free(x); free(got); free(want);
}

/* GELU and SwiGLU with a 16-bit output (fmt 1 fp16, 2 bf16: mixed precision's saved MLP
 * activation, a thread per word): against the reference rounded to the format (vt_compare16:
 * within 1 ulp; for an odd N*C nothing written past the last element). */
static void test_act16(vt_env *env, int op, int fmt, uint32_t N, uint32_t C, uint64_t seed) {
  size_t n = (size_t)N * C, ni = in_size(op, N, C);
  float *inp = inputs(op, ni, C, seed), *want = vt_zeros(n);
  vklm_buffer gi = up(env, inp, ni), go = vt_alloc16(env, n);
  vt_begin(env);
  vt_ok(env, op == SWIGLU ? vklm_swiglu_forward_fmt(env->cmd, go, fmt, gi, 0, N, C)
                          : vklm_gelu_forward_fmt(env->cmd, go, fmt, gi, 0, (uint32_t)n),
        names[op]);
  vt_run(env);
  ref_forward(op, want, inp, N, C);
  char what[96];
  snprintf(what, sizeof what, "%s forward 16-bit out N=%u C=%u", names[op], N, C);
  vt_compare16(env, what, go, fmt, want, n);
  free(inp); free(want);
}

/* GELU and SwiGLU reading a 16-bit input (in_fmt 1 fp16, 2 bf16; element i in word i/2 at
 * any parity: N*C odd): forward into fp32 and into out_fmt, backward into fp32 (GELU also in
 * place, dinp = dout, as nn.c's cooperative-matrix path runs it), against the references of
 * the input rounded to in_fmt. A kernel that read the input as fp32 fails by far. */
static void test_in16(vt_env *env, int op, int in_fmt, int out_fmt, uint32_t N, uint32_t C,
                      uint64_t seed) {
  size_t n = (size_t)N * C, ni = in_size(op, N, C);
  float *inp = inputs(op, ni, C, seed), *dout = vt_randf(n, seed + 1, -1, 1);
  void *host;
  vklm_buffer gi = vt_upload_fmt(env, inp, ni, in_fmt, &host);
  float *x = vt_zeros(ni); /* the values the kernel reads */
  for (size_t i = 0; i < ni; i++) {
    uint16_t h = (uint16_t)(((uint32_t *)host)[i / 2] >> (16 * (i & 1)));
    x[i] = in_fmt == 2 ? vklm_bf16_to_f32_ref(h) : vklm_f16_to_f32_ref(h);
  }
  float *junk = vt_randf(ni, seed + 2, 100, 200);
  vklm_buffer go = vt_alloc(env, n * 4), go16 = vt_alloc16(env, n), gd = up(env, dout, n);
  vklm_buffer gdi = up(env, junk, ni), gdd = up(env, dout, n);
  vt_begin(env);
  if (op == SWIGLU) {
    vt_ok(env, vklm_swiglu_forward_fmt(env->cmd, go, 0, gi, in_fmt, N, C), "swiglu");
    vt_ok(env, vklm_swiglu_forward_fmt(env->cmd, go16, out_fmt, gi, in_fmt, N, C), "swiglu");
    vt_ok(env, vklm_swiglu_backward_fmt(env->cmd, gdi, gd, gi, in_fmt, N, C), "swiglu_backward");
  } else {
    vt_ok(env, vklm_gelu_forward_fmt(env->cmd, go, 0, gi, in_fmt, (uint32_t)n), "gelu");
    vt_ok(env, vklm_gelu_forward_fmt(env->cmd, go16, out_fmt, gi, in_fmt, (uint32_t)n), "gelu");
    vt_ok(env, vklm_gelu_backward_fmt(env->cmd, gdi, gd, gi, in_fmt, (uint32_t)n), "gelu_bwd");
    vt_ok(env, vklm_gelu_backward_fmt(env->cmd, gdd, gdd, gi, in_fmt, (uint32_t)n), "gelu_bwd");
  }
  vt_run(env);
  float *want = vt_zeros(n), *dwant = vt_zeros(ni);
  ref_forward(op, want, x, N, C);
  ref_backward(op, dwant, dout, x, NULL, N, C);
  char what[96];
  const char *fn = in_fmt == 2 ? "bf16" : "f16";
  float *got = vt_download(env, go, n);
  snprintf(what, sizeof what, "%s forward %s in N=%u C=%u", names[op], fn, N, C);
  vt_compare(env, what, got, want, n, TOL);
  snprintf(what, sizeof what, "%s forward %s in, 16-bit out N=%u C=%u", names[op], fn, N, C);
  vt_compare16(env, what, go16, out_fmt, want, n);
  float *dgot = vt_download(env, gdi, ni);
  snprintf(what, sizeof what, "%s backward %s in N=%u C=%u", names[op], fn, N, C);
  vt_compare(env, what, dgot, dwant, ni, TOL);
  free(dgot);
  if (op == GELU) {
    dgot = vt_download(env, gdd, n);
    snprintf(what, sizeof what, "%s backward in place %s in N=%u C=%u", names[op], fn, N, C);
    vt_compare(env, what, dgot, dwant, n, TOL);
    free(dgot);
  }
  free(inp); free(dout); free(host); free(x); free(junk); free(want); free(dwant); free(got);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_activation");
  static const uint32_t Cs[] = {1, 3, 67, 769, 1000}, Ns[] = {1, 5, 130};
  uint64_t seed = 1;
  for (int op = GELU; op <= SOFTMAX; op++)
    for (int i = 0; i < 5; i++)
      for (int j = 0; j < 3; j++) {
        test_op(&env, op, Ns[j], Cs[i], seed += 10);
        vklm_arena_reset(env.arena);
      }
  static const uint32_t hN[] = {1, 5, 130, 3}, hC[] = {1, 67, 768, 1001};
  for (int k = 0; k < 4; k++) {
    test_act16(&env, GELU, 1 + k % 2, hN[k], hC[k], 700 + k);
    test_act16(&env, SWIGLU, 2 - k % 2, hN[k], hC[k], 710 + k);
    test_in16(&env, GELU, 2 - k % 2, 1 + k % 2, hN[k], hC[k], 720 + k);
    test_in16(&env, SWIGLU, 1 + k % 2, 1 + (k / 2) % 2, hN[k], hC[k], 730 + k);
    vklm_arena_reset(env.arena);
  }
  test_softmax_extremes(&env);
  test_gelu_is_tanh_form(&env);
  for (int op = GELU; op <= SOFTMAX; op++) {
    fd_check(&env, op, 1, 3, 300 + op);
    fd_check(&env, op, 5, 67, 400 + op);
    fd_check(&env, op, 2, 1000, 500 + op);
  }
  return vt_finish(&env);
}

/* Norm op tests (VKLM_TEST_GPU): LayerNorm and RMSNorm forward and backward on the GPU against
 * their C references, for row lengths C and row counts N that are not multiples of any
 * workgroup size (C = 1, 3, 67, 769, 1000; N = 1, 5, 130; and N = 70001, more workgroups than
 * one grid dimension holds under baseline limits); input and parameter gradients start
 * non-zero to check that they accumulate; the two-stage parameter-gradient reduction is checked
 * to be bitwise deterministic; and every backward reference is checked by finite differences of
 * loss = sum(out * proj). Every GPU case runs for both kernel families (the GPU kernels and the
 * CPU-type variants, vklm_context_set_kernels), with extra sizes for the latter: rows not a
 * multiple of its 32-row workgroups, C = 45 and 4099, and (257, 768). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

#define TOL 1e-4 /* vt_compare's metric: fp32 rounding of the largest terms, at elements near zero */

/* The kernel family under test (vklm_context_set_kernels): every GPU case runs for both. */
static const char *fam = "gpu";

static vklm_buffer up(vt_env *env, const float *x, size_t n) { return vt_upload(env, x, n * 4); }

/* ---- finite differences of the references ---------------------------------------------- */
typedef struct fd_state {
  uint32_t N, C;
  int rms;
  float *inp, *w, *b, *proj;
  float *out, *mean, *rstd;
} fd_state;

static double fd_loss(void *p) {
  fd_state *s = p;
  if (s->rms)
    vklm_rmsnorm_forward_ref(s->out, s->rstd, s->inp, s->w, s->N, s->C, 1e-5f);
  else
    vklm_layernorm_forward_ref(s->out, s->mean, s->rstd, s->inp, s->w, s->b, s->N, s->C);
  double l = 0;
  for (size_t i = 0; i < (size_t)s->N * s->C; i++) l += (double)s->out[i] * s->proj[i];
  return l;
}

static void fd_check(vt_env *env, int rms, uint32_t N, uint32_t C, uint64_t seed) {
  size_t n = (size_t)N * C;
  fd_state s = {N, C, rms, vt_randf(n, seed, -2, 2), vt_randf(C, seed + 1, 0.5f, 1.5f),
                vt_randf(C, seed + 2, -1, 1), vt_randf(n, seed + 3, -1, 1),
                vt_zeros(n), vt_zeros(N), vt_zeros(N)};
  fd_loss(&s);
  float *dinp = vt_zeros(n), *dw = vt_zeros(C), *db = vt_zeros(C);
  if (rms)
    vklm_rmsnorm_backward_ref(dinp, dw, s.proj, s.inp, s.w, s.rstd, N, C);
  else
    vklm_layernorm_backward_ref(dinp, dw, db, s.proj, s.inp, s.w, s.mean, s.rstd, N, C);
  char what[96];
  const char *op = rms ? "rmsnorm" : "layernorm";
  snprintf(what, sizeof what, "%s ref dinp N=%u C=%u", op, N, C);
  vt_fd_check(env, what, fd_loss, &s, s.inp, n, dinp, 64, 1e-3, 1e-2);
  snprintf(what, sizeof what, "%s ref dweight N=%u C=%u", op, N, C);
  vt_fd_check(env, what, fd_loss, &s, s.w, C, dw, 64, 1e-3, 1e-2);
  if (!rms) {
    snprintf(what, sizeof what, "%s ref dbias N=%u C=%u", op, N, C);
    vt_fd_check(env, what, fd_loss, &s, s.b, C, db, 64, 1e-3, 1e-2);
  }
  free(s.inp); free(s.w); free(s.b); free(s.proj); free(s.out); free(s.mean); free(s.rstd);
  free(dinp); free(dw); free(db);
}

/* ---- GPU against reference -------------------------------------------------------------- */
static void test_layernorm(vt_env *env, uint32_t N, uint32_t C, uint64_t seed) {
  size_t n = (size_t)N * C;
  float *inp = vt_randf(n, seed, -3, 3), *w = vt_randf(C, seed + 1, -1.5f, 1.5f);
  float *b = vt_randf(C, seed + 2, -1, 1), *dout = vt_randf(n, seed + 3, -1, 1);
  float *dinp0 = vt_randf(n, seed + 4, -1, 1), *dw0 = vt_randf(C, seed + 5, -1, 1);
  float *db0 = vt_randf(C, seed + 6, -1, 1);
  for (size_t i = 0; i < n; i++) inp[i] += (float)(i % 7) * 0.5f; /* a non-zero mean */
  vklm_buffer g_inp = up(env, inp, n), g_w = up(env, w, C), g_b = up(env, b, C);
  vklm_buffer g_dout = up(env, dout, n), g_dinp = up(env, dinp0, n);
  vklm_buffer g_dw = up(env, dw0, C), g_db = up(env, db0, C);
  vklm_buffer g_out = vt_alloc(env, n * 4), g_mean = vt_alloc(env, N * 4);
  vklm_buffer g_rstd = vt_alloc(env, N * 4);
  vklm_buffer g_scr = vt_alloc(env, vklm_norm_backward_scratch_bytes(env->ctx, N, C));
  vt_begin(env);
  vt_ok(env, vklm_layernorm_forward(env->cmd, g_out, g_mean, g_rstd, g_inp, g_w, g_b, N, C), "ln fwd");
  vt_ok(env, vklm_layernorm_backward(env->cmd, g_dinp, g_dw, g_db, g_scr, g_dout, g_inp, g_w,
                                     g_mean, g_rstd, N, C), "ln bwd");
  vt_run(env);
  float *out = vt_zeros(n), *mean = vt_zeros(N), *rstd = vt_zeros(N);
  float *dinp = vt_copy(dinp0, n), *dw = vt_copy(dw0, C), *db = vt_copy(db0, C);
  vklm_layernorm_forward_ref(out, mean, rstd, inp, w, b, N, C);
  vklm_layernorm_backward_ref(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  float *x;
  char what[96];
#define CMP(buf, ref, cnt, name)                                               \
  do {                                                                         \
    snprintf(what, sizeof what, "layernorm[%s] %s N=%u C=%u", fam, name, N, C);         \
    x = vt_download(env, buf, cnt);                                            \
    vt_compare(env, what, x, ref, cnt, TOL);                                   \
    free(x);                                                                   \
  } while (0)
  CMP(g_out, out, n, "out");
  CMP(g_mean, mean, N, "mean");
  CMP(g_rstd, rstd, N, "rstd");
  CMP(g_dinp, dinp, n, "dinp (+=)");
  CMP(g_dw, dw, C, "dweight (+=)");
  CMP(g_db, db, C, "dbias (+=)");
#undef CMP
  free(inp); free(w); free(b); free(dout); free(dinp0); free(dw0); free(db0);
  free(out); free(mean); free(rstd); free(dinp); free(dw); free(db);
}

static void test_rmsnorm(vt_env *env, uint32_t N, uint32_t C, uint64_t seed) {
  size_t n = (size_t)N * C;
  float eps = 1e-6f;
  float *inp = vt_randf(n, seed, -3, 3), *w = vt_randf(C, seed + 1, -1.5f, 1.5f);
  float *dout = vt_randf(n, seed + 3, -1, 1);
  float *dinp0 = vt_randf(n, seed + 4, -1, 1), *dw0 = vt_randf(C, seed + 5, -1, 1);
  vklm_buffer g_inp = up(env, inp, n), g_w = up(env, w, C);
  vklm_buffer g_dout = up(env, dout, n), g_dinp = up(env, dinp0, n), g_dw = up(env, dw0, C);
  vklm_buffer g_out = vt_alloc(env, n * 4), g_rstd = vt_alloc(env, N * 4);
  vklm_buffer g_scr = vt_alloc(env, vklm_norm_backward_scratch_bytes(env->ctx, N, C));
  vt_begin(env);
  vt_ok(env, vklm_rmsnorm_forward(env->cmd, g_out, g_rstd, g_inp, g_w, N, C, eps), "rms fwd");
  vt_ok(env, vklm_rmsnorm_backward(env->cmd, g_dinp, g_dw, g_scr, g_dout, g_inp, g_w, g_rstd, N, C),
        "rms bwd");
  vt_run(env);
  float *out = vt_zeros(n), *rstd = vt_zeros(N), *dinp = vt_copy(dinp0, n), *dw = vt_copy(dw0, C);
  vklm_rmsnorm_forward_ref(out, rstd, inp, w, N, C, eps);
  vklm_rmsnorm_backward_ref(dinp, dw, dout, inp, w, rstd, N, C);
  float *x;
  char what[96];
#define CMP(buf, ref, cnt, name)                                               \
  do {                                                                         \
    snprintf(what, sizeof what, "rmsnorm[%s] %s N=%u C=%u", fam, name, N, C);         \
    x = vt_download(env, buf, cnt);                                            \
    vt_compare(env, what, x, ref, cnt, TOL);                                   \
    free(x);                                                                   \
  } while (0)
  CMP(g_out, out, n, "out");
  CMP(g_rstd, rstd, N, "rstd");
  CMP(g_dinp, dinp, n, "dinp (+=)");
  CMP(g_dw, dw, C, "dweight (+=)");
#undef CMP
  free(inp); free(w); free(dout); free(dinp0); free(dw0);
  free(out); free(rstd); free(dinp); free(dw);
}

/* The parameter gradients of the same backward, run twice from the same start, are bitwise equal. */
static void test_determinism(vt_env *env) {
  uint32_t N = 1000, C = 67;
  size_t n = (size_t)N * C;
  float *inp = vt_randf(n, 91, -2, 2), *w = vt_randf(C, 92, -1, 1), *b = vt_randf(C, 93, -1, 1);
  float *dout = vt_randf(n, 94, -1, 1);
  vklm_buffer g_inp = up(env, inp, n), g_w = up(env, w, C), g_b = up(env, b, C);
  vklm_buffer g_dout = up(env, dout, n), g_dinp = vt_alloc(env, n * 4);
  vklm_buffer g_out = vt_alloc(env, n * 4), g_mean = vt_alloc(env, N * 4), g_rstd = vt_alloc(env, N * 4);
  vklm_buffer g_dw = vt_alloc(env, C * 4), g_db = vt_alloc(env, C * 4);
  vklm_buffer g_scr = vt_alloc(env, vklm_norm_backward_scratch_bytes(env->ctx, N, C));
  float *res[2][2];
  for (int k = 0; k < 2; k++) {
    vt_begin(env);
    vt_ok(env, vklm_cmd_fill_words(env->cmd, g_dw, 0), "zero");
    vt_ok(env, vklm_cmd_fill_words(env->cmd, g_db, 0), "zero");
    vt_ok(env, vklm_cmd_fill_words(env->cmd, g_dinp, 0), "zero");
    vt_ok(env, vklm_layernorm_forward(env->cmd, g_out, g_mean, g_rstd, g_inp, g_w, g_b, N, C), "fwd");
    vt_ok(env, vklm_layernorm_backward(env->cmd, g_dinp, g_dw, g_db, g_scr, g_dout, g_inp, g_w,
                                       g_mean, g_rstd, N, C), "bwd");
    vt_run(env);
    res[k][0] = vt_download(env, g_dw, C);
    res[k][1] = vt_download(env, g_db, C);
  }
  vt_expect(env, !memcmp(res[0][0], res[1][0], C * 4) && !memcmp(res[0][1], res[1][1], C * 4),
            "layernorm[%s] dweight/dbias over N=%u rows bitwise equal in two runs", fam, N);
  for (int k = 0; k < 2; k++) { free(res[k][0]); free(res[k][1]); }
  free(inp); free(w); free(b); free(dout);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_norm");
  static const uint32_t Cs[] = {1, 3, 67, 769, 1000}, Ns[] = {1, 5, 130};
  static const vklm_kernels fams[] = {VKLM_KERNELS_GPU, VKLM_KERNELS_CPU};
  for (int f = 0; f < 2; f++) {
    vklm_context_set_kernels(env.ctx, fams[f]);
    fam = fams[f] == VKLM_KERNELS_CPU ? "cpu" : "gpu";
    printf("-- %s kernels\n", fam);
    uint64_t seed = 1;
    for (int i = 0; i < 5; i++)
      for (int j = 0; j < 3; j++) {
        test_layernorm(&env, Ns[j], Cs[i], seed += 10);
        test_rmsnorm(&env, Ns[j], Cs[i], seed += 10);
        vklm_arena_reset(env.arena);
      }
    /* rows that fill no whole workgroup of either family (the CPU variants' 32 rows and the
     * parameter-gradient chunks), long rows, and GPT-2 124M's width */
    test_layernorm(&env, 33, 45, 801);
    test_rmsnorm(&env, 33, 45, 802);
    test_layernorm(&env, 257, 768, 803);
    test_rmsnorm(&env, 257, 768, 804);
    test_layernorm(&env, 2, 4099, 805);
    test_rmsnorm(&env, 2, 4099, 806);
    vklm_arena_reset(env.arena);
    /* more rows than one grid dimension holds under baseline limits (65535 workgroups) */
    test_layernorm(&env, 70001, 13, 7001); /* C = 3 over 70001 rows meets near-constant rows: rstd ~ 300 */
    test_rmsnorm(&env, 70001, 13, 7002);
    vklm_arena_reset(env.arena);
    test_determinism(&env);
    vklm_arena_reset(env.arena);
  }
  static const uint32_t fdN[] = {1, 5, 3}, fdC[] = {3, 67, 1000};
  for (int k = 0; k < 3; k++) {
    fd_check(&env, 0, fdN[k], fdC[k], 500 + k);
    fd_check(&env, 1, fdN[k], fdC[k], 600 + k);
  }
  return vt_finish(&env);
}

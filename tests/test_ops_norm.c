/* Norm op tests (VKLM_TEST_GPU): LayerNorm and RMSNorm forward (plain and fused with the residual
 * add before it) and backward on the GPU against their C references, for row lengths C and row
 * counts N that are not multiples of any workgroup size (C = 1, 3, 67, 769, 1000; N = 1, 5, 130;
 * and N = 70001, more workgroups than one grid dimension holds under baseline limits); input and
 * parameter gradients start non-zero to check that they accumulate; the backward is two
 * dispatches (input gradient with the partial sums, then their reduce); the fused add + norm
 * gives the same bits as the add and the plain norm; one reduce takes several norms of both
 * kinds and a frozen one, their gradients at offsets of shared buffers; the two-stage
 * parameter-gradient reduction is checked to be bitwise deterministic; and every backward
 * reference is checked by finite differences of loss = sum(out * proj). Every GPU case runs for
 * both kernel families (the GPU kernels and the CPU-type variants, vklm_context_set_kernels),
 * with extra sizes for the latter: rows not a multiple of its 32-row workgroups, C = 45 and
 * 4099, and (257, 768). The forward norms with an fp16 or bf16 output (the _fmt calls) are
 * compared with the reference rounded to the format, at odd C and odd N*C. */
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
  vklm_buffer g_part = vt_alloc(env, vklm_norm_partials_bytes(env->ctx, N, C, 0));
  vklm_buffer g_tab = vt_alloc(env, vklm_norm_grads_table_bytes(1));
  vklm_norm_grads pend;
  vt_begin(env);
  vt_ok(env, vklm_layernorm_forward(env->cmd, g_out, g_mean, g_rstd, g_inp, g_w, g_b, N, C), "ln fwd");
  uint32_t d0 = vklm_cmd_dispatch_count(env->cmd);
  vt_ok(env, vklm_layernorm_backward(env->cmd, g_dinp, g_dw, g_db, g_part, g_dout, g_inp, g_w,
                                     g_mean, g_rstd, N, C, &pend), "ln bwd");
  vt_ok(env, vklm_norm_grads_reduce(env->cmd, g_tab, 0, &pend, 1), "ln reduce");
  vt_expect(env, vklm_cmd_dispatch_count(env->cmd) - d0 == 2,
            "layernorm[%s] backward N=%u C=%u: 2 dispatches (%u)", fam, N, C,
            vklm_cmd_dispatch_count(env->cmd) - d0);
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
  vklm_buffer g_part = vt_alloc(env, vklm_norm_partials_bytes(env->ctx, N, C, 1));
  vklm_buffer g_tab = vt_alloc(env, vklm_norm_grads_table_bytes(3));
  vklm_norm_grads pend;
  vt_begin(env);
  vt_ok(env, vklm_rmsnorm_forward(env->cmd, g_out, g_rstd, g_inp, g_w, N, C, eps), "rms fwd");
  uint32_t d0 = vklm_cmd_dispatch_count(env->cmd);
  vt_ok(env, vklm_rmsnorm_backward(env->cmd, g_dinp, g_dw, g_part, g_dout, g_inp, g_w, g_rstd, N,
                                   C, &pend),
        "rms bwd");
  vt_ok(env, vklm_norm_grads_reduce(env->cmd, g_tab, 2, &pend, 1), "rms reduce"); /* entry 2 */
  vt_expect(env, vklm_cmd_dispatch_count(env->cmd) - d0 == 2,
            "rmsnorm[%s] backward N=%u C=%u: 2 dispatches (%u)", fam, N, C,
            vklm_cmd_dispatch_count(env->cmd) - d0);
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
  vklm_buffer g_part = vt_alloc(env, vklm_norm_partials_bytes(env->ctx, N, C, 0));
  vklm_buffer g_tab = vt_alloc(env, vklm_norm_grads_table_bytes(1));
  vklm_norm_grads pend;
  float *res[2][2];
  for (int k = 0; k < 2; k++) {
    vt_begin(env);
    vt_ok(env, vklm_cmd_fill_words(env->cmd, g_dw, 0), "zero");
    vt_ok(env, vklm_cmd_fill_words(env->cmd, g_db, 0), "zero");
    vt_ok(env, vklm_cmd_fill_words(env->cmd, g_dinp, 0), "zero");
    vt_ok(env, vklm_layernorm_forward(env->cmd, g_out, g_mean, g_rstd, g_inp, g_w, g_b, N, C), "fwd");
    vt_ok(env, vklm_layernorm_backward(env->cmd, g_dinp, g_dw, g_db, g_part, g_dout, g_inp, g_w,
                                       g_mean, g_rstd, N, C, &pend), "bwd");
    vt_ok(env, vklm_norm_grads_reduce(env->cmd, g_tab, 0, &pend, 1), "reduce");
    vt_run(env);
    res[k][0] = vt_download(env, g_dw, C);
    res[k][1] = vt_download(env, g_db, C);
  }
  vt_expect(env, !memcmp(res[0][0], res[1][0], C * 4) && !memcmp(res[0][1], res[1][1], C * 4),
            "layernorm[%s] dweight/dbias over N=%u rows bitwise equal in two runs", fam, N);
  for (int k = 0; k < 2; k++) { free(res[k][0]); free(res[k][1]); }
  free(inp); free(w); free(b); free(dout);
}

/* res = a + b and the norm of res in one dispatch: res bitwise a + b, out/mean/rstd against the
 * reference and bitwise equal to the plain forward of the same kernel family over res. */
static void test_add_norm(vt_env *env, int rms, uint32_t N, uint32_t C, uint64_t seed) {
  size_t n = (size_t)N * C;
  float eps = 1e-6f;
  float *a = vt_randf(n, seed, -3, 3), *b = vt_randf(n, seed + 1, -1, 1);
  float *w = vt_randf(C, seed + 2, -1.5f, 1.5f), *bias = vt_randf(C, seed + 3, -1, 1);
  for (size_t i = 0; i < n; i++) a[i] += (float)(i % 5) * 0.5f; /* a non-zero mean */
  vklm_buffer ga = up(env, a, n), gb = up(env, b, n), gw = up(env, w, C), gbias = up(env, bias, C);
  vklm_buffer gres = vt_alloc(env, n * 4), gout = vt_alloc(env, n * 4), gout2 = vt_alloc(env, n * 4);
  vklm_buffer gmean = vt_alloc(env, N * 4), grstd = vt_alloc(env, N * 4);
  vklm_buffer gmean2 = vt_alloc(env, N * 4), grstd2 = vt_alloc(env, N * 4);
  vt_begin(env);
  if (rms) {
    vt_ok(env, vklm_add_rmsnorm_forward(env->cmd, gres, gout, grstd, ga, gb, gw, N, C, eps), "add rms");
    vt_ok(env, vklm_rmsnorm_forward(env->cmd, gout2, grstd2, gres, gw, N, C, eps), "rms");
  } else {
    vt_ok(env, vklm_add_layernorm_forward(env->cmd, gres, gout, gmean, grstd, ga, gb, gw, gbias, N, C),
          "add ln");
    vt_ok(env, vklm_layernorm_forward(env->cmd, gout2, gmean2, grstd2, gres, gw, gbias, N, C), "ln");
  }
  vt_expect(env, vklm_cmd_dispatch_count(env->cmd) == 2, "add+norm is one dispatch");
  vt_run(env);
  float *res = vt_zeros(n), *out = vt_zeros(n), *mean = vt_zeros(N), *rstd = vt_zeros(N);
  if (rms) vklm_add_rmsnorm_forward_ref(res, out, rstd, a, b, w, N, C, eps);
  else vklm_add_layernorm_forward_ref(res, out, mean, rstd, a, b, w, bias, N, C);
  const char *op = rms ? "add_rmsnorm" : "add_layernorm";
  char what[96];
  float *g_res = vt_download(env, gres, n), *g_out = vt_download(env, gout, n);
  float *g_out2 = vt_download(env, gout2, n), *g_rstd = vt_download(env, grstd, N);
  float *g_rstd2 = vt_download(env, grstd2, N);
  vt_expect(env, !memcmp(g_res, res, n * 4), "%s[%s] res = a + b bitwise N=%u C=%u", op, fam, N, C);
  snprintf(what, sizeof what, "%s[%s] out N=%u C=%u", op, fam, N, C);
  vt_compare(env, what, g_out, out, n, TOL);
  snprintf(what, sizeof what, "%s[%s] rstd N=%u C=%u", op, fam, N, C);
  vt_compare(env, what, g_rstd, rstd, N, TOL);
  int same = !memcmp(g_out, g_out2, n * 4) && !memcmp(g_rstd, g_rstd2, N * 4);
  if (!rms) {
    float *g_mean = vt_download(env, gmean, N), *g_mean2 = vt_download(env, gmean2, N);
    snprintf(what, sizeof what, "%s[%s] mean N=%u C=%u", op, fam, N, C);
    vt_compare(env, what, g_mean, mean, N, TOL);
    same = same && !memcmp(g_mean, g_mean2, N * 4);
    free(g_mean);
    free(g_mean2);
  }
  vt_expect(env, same, "%s[%s] N=%u C=%u: the same bits as the add and the plain norm", op, fam, N, C);
  free(a); free(b); free(w); free(bias); free(res); free(out); free(mean); free(rstd);
  free(g_res); free(g_out); free(g_out2); free(g_rstd); free(g_rstd2);
}

/* One reduce over several norms: LayerNorms and RMSNorms of different shapes, a frozen one (no
 * partials, no gradients) between them, their weight and bias gradients at offsets of two shared
 * buffers, their backward kernels of both families (the two partials layouts); the table's
 * entries start at entry 1. One reduce dispatch; every gradient against the reference, the
 * frozen norm's input gradient too. */
#define MULTI 5
static void test_multi_reduce(vt_env *env) {
  static const uint32_t Ns[MULTI] = {130, 33, 7, 5, 257}, Cs[MULTI] = {67, 45, 13, 769, 64};
  static const int rmss[MULTI] = {0, 1, 0, 0, 1}, frozen[MULTI] = {0, 0, 1, 0, 0};
  uint32_t align = vklm_buffer_alignment(env->ctx) / 4, off[MULTI], total = 0;
  for (int k = 0; k < MULTI; k++) {
    off[k] = total;
    total += (Cs[k] + align - 1) / align * align + align; /* a gap of at least one alignment */
  }
  float *dw0 = vt_randf(total, 71, -1, 1), *db0 = vt_randf(total, 72, -1, 1);
  vklm_buffer gdw = up(env, dw0, total), gdb = up(env, db0, total);
  vklm_buffer gtab = vt_alloc(env, vklm_norm_grads_table_bytes(MULTI + 1));
  float *dw = vt_copy(dw0, total), *db = vt_copy(db0, total);
  float *inp[MULTI], *w[MULTI], *dout[MULTI], *dinp[MULTI], *mean[MULTI], *rstd[MULTI];
  vklm_buffer gdinp[MULTI];
  vklm_norm_grads pend[MULTI];
  vklm_kernels cur = strcmp(fam, "cpu") ? VKLM_KERNELS_GPU : VKLM_KERNELS_CPU;
  vklm_kernels other = cur == VKLM_KERNELS_CPU ? VKLM_KERNELS_GPU : VKLM_KERNELS_CPU;
  vt_begin(env);
  for (int k = 0; k < MULTI; k++) {
    vklm_context_set_kernels(env->ctx, k % 2 ? other : cur);
    uint32_t N = Ns[k], C = Cs[k];
    size_t n = (size_t)N * C;
    inp[k] = vt_randf(n, 80 + k, -2, 2);
    w[k] = vt_randf(C, 90 + k, -1, 1);
    dout[k] = vt_randf(n, 100 + k, -1, 1);
    dinp[k] = vt_randf(n, 110 + k, -1, 1);
    mean[k] = vt_zeros(N);
    rstd[k] = vt_zeros(N);
    float *o = vt_zeros(n), *bias = vt_zeros(C);
    if (rmss[k]) vklm_rmsnorm_forward_ref(o, rstd[k], inp[k], w[k], N, C, 1e-5f);
    else vklm_layernorm_forward_ref(o, mean[k], rstd[k], inp[k], w[k], bias, N, C);
    free(o);
    free(bias);
    vklm_buffer gi = up(env, inp[k], n), gw = up(env, w[k], C), gd = up(env, dout[k], n);
    vklm_buffer gm = up(env, mean[k], N), gr = up(env, rstd[k], N);
    gdinp[k] = up(env, dinp[k], n);
    vklm_buffer gpart = frozen[k] ? (vklm_buffer){0}
                                  : vt_alloc(env, vklm_norm_partials_bytes(env->ctx, N, C, rmss[k]));
    vklm_buffer gwk = frozen[k] ? (vklm_buffer){0} : vklm_buffer_slice(gdw, off[k] * 4ull, C * 4ull);
    vklm_buffer gbk = frozen[k] || rmss[k] ? (vklm_buffer){0}
                                           : vklm_buffer_slice(gdb, off[k] * 4ull, C * 4ull);
    if (rmss[k])
      vt_ok(env, vklm_rmsnorm_backward(env->cmd, gdinp[k], gwk, gpart, gd, gi, gw, gr, N, C, &pend[k]),
            "rms bwd");
    else
      vt_ok(env, vklm_layernorm_backward(env->cmd, gdinp[k], gwk, gbk, gpart, gd, gi, gw, gm, gr, N,
                                         C, &pend[k]),
            "ln bwd");
    /* the reference: the frozen norm's gradients go to scratch copies that are not compared */
    float *rw = frozen[k] ? vt_zeros(C) : dw + off[k], *rb = frozen[k] || rmss[k] ? vt_zeros(C) : db + off[k];
    if (rmss[k]) vklm_rmsnorm_backward_ref(dinp[k], rw, dout[k], inp[k], w[k], rstd[k], N, C);
    else vklm_layernorm_backward_ref(dinp[k], rw, rb, dout[k], inp[k], w[k], mean[k], rstd[k], N, C);
    if (frozen[k]) free(rw);
    if (frozen[k] || rmss[k]) free(rb);
  }
  vklm_context_set_kernels(env->ctx, cur);
  uint32_t d0 = vklm_cmd_dispatch_count(env->cmd);
  vt_ok(env, vklm_norm_grads_reduce(env->cmd, gtab, 1, pend, MULTI), "reduce");
  vt_expect(env, vklm_cmd_dispatch_count(env->cmd) - d0 == 1, "norm reduce[%s] of %d norms: one dispatch (%u)",
            fam, MULTI, vklm_cmd_dispatch_count(env->cmd) - d0);
  vt_run(env);
  char what[96];
  for (int k = 0; k < MULTI; k++) {
    float *x = vt_download(env, gdinp[k], (size_t)Ns[k] * Cs[k]);
    snprintf(what, sizeof what, "norm reduce[%s] entry %d dinp (+=)", fam, k);
    vt_compare(env, what, x, dinp[k], (size_t)Ns[k] * Cs[k], TOL);
    free(x);
  }
  /* every weight and bias gradient, and the gaps and frozen slots untouched */
  float *x = vt_download(env, gdw, total), *y = vt_download(env, gdb, total);
  snprintf(what, sizeof what, "norm reduce[%s] dweights (+=)", fam);
  vt_compare(env, what, x, dw, total, TOL);
  snprintf(what, sizeof what, "norm reduce[%s] dbiases (+=)", fam);
  vt_compare(env, what, y, db, total, TOL);
  free(x); free(y);
  for (int k = 0; k < MULTI; k++) {
    free(inp[k]); free(w[k]); free(dout[k]); free(dinp[k]); free(mean[k]); free(rstd[k]);
  }
  free(dw0); free(db0); free(dw); free(db);
}

/* The forward norms with a 16-bit output (fmt 1 fp16, 2 bf16: mixed precision's saved norm
 * outputs): out against the reference rounded to the format (vt_compare16: within 1 ulp, nothing
 * past the end; odd C makes rows start and end mid-word, written by two rows' invocations), the
 * statistics and res (add) as in fp32. kind: 0 layernorm, 1 rmsnorm, 2 add_layernorm,
 * 3 add_rmsnorm. */
static void test_norm16(vt_env *env, int kind, int fmt, uint32_t N, uint32_t C, uint64_t seed) {
  static const char *names[] = {"layernorm", "rmsnorm", "add_layernorm", "add_rmsnorm"};
  size_t n = (size_t)N * C;
  float eps = 1e-6f;
  int rms = kind & 1, add = kind >= 2;
  float *a = vt_randf(n, seed, -3, 3), *b = vt_randf(n, seed + 1, -1, 1);
  float *w = vt_randf(C, seed + 2, -1.5f, 1.5f), *bias = vt_randf(C, seed + 3, -1, 1);
  vklm_buffer ga = up(env, a, n), gb = up(env, b, n), gw = up(env, w, C), gbias = up(env, bias, C);
  vklm_buffer gout = vt_alloc16(env, n), gres = vt_alloc(env, n * 4);
  vklm_buffer gmean = vt_alloc(env, N * 4), grstd = vt_alloc(env, N * 4);
  vt_begin(env);
  vklm_status st;
  if (kind == 0)
    st = vklm_layernorm_forward_fmt(env->cmd, gout, fmt, gmean, grstd, ga, gw, gbias, N, C);
  else if (kind == 1) st = vklm_rmsnorm_forward_fmt(env->cmd, gout, fmt, grstd, ga, gw, N, C, eps);
  else if (kind == 2)
    st = vklm_add_layernorm_forward_fmt(env->cmd, gres, gout, fmt, gmean, grstd, ga, gb, gw, gbias,
                                        N, C);
  else st = vklm_add_rmsnorm_forward_fmt(env->cmd, gres, gout, fmt, grstd, ga, gb, gw, N, C, eps);
  vt_ok(env, st, names[kind]);
  vt_run(env);
  float *res = vt_zeros(n), *out = vt_zeros(n), *mean = vt_zeros(N), *rstd = vt_zeros(N);
  if (kind == 0) vklm_layernorm_forward_ref(out, mean, rstd, a, w, bias, N, C);
  else if (kind == 1) vklm_rmsnorm_forward_ref(out, rstd, a, w, N, C, eps);
  else if (kind == 2) vklm_add_layernorm_forward_ref(res, out, mean, rstd, a, b, w, bias, N, C);
  else vklm_add_rmsnorm_forward_ref(res, out, rstd, a, b, w, N, C, eps);
  char what[96];
  snprintf(what, sizeof what, "%s[%s] 16-bit out N=%u C=%u", names[kind], fam, N, C);
  vt_compare16(env, what, gout, fmt, out, n);
  float *g_rstd = vt_download(env, grstd, N);
  snprintf(what, sizeof what, "%s[%s] rstd (16-bit out) N=%u C=%u", names[kind], fam, N, C);
  vt_compare(env, what, g_rstd, rstd, N, TOL);
  free(g_rstd);
  if (!rms) {
    float *g_mean = vt_download(env, gmean, N);
    snprintf(what, sizeof what, "%s[%s] mean (16-bit out) N=%u C=%u", names[kind], fam, N, C);
    vt_compare(env, what, g_mean, mean, N, TOL);
    free(g_mean);
  }
  if (add) {
    float *g_res = vt_download(env, gres, n);
    vt_expect(env, !memcmp(g_res, res, n * 4), "%s[%s] res = a + b bitwise (16-bit out) N=%u C=%u",
              names[kind], fam, N, C);
    free(g_res);
  }
  free(a); free(b); free(w); free(bias); free(res); free(out); free(mean); free(rstd);
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
    for (int rms = 0; rms < 2; rms++) {
      test_add_norm(&env, rms, 1, 1, 901);
      test_add_norm(&env, rms, 5, 67, 902);
      test_add_norm(&env, rms, 33, 45, 903);
      test_add_norm(&env, rms, 130, 769, 904);
      test_add_norm(&env, rms, 2, 4099, 905);
      vklm_arena_reset(env.arena);
    }
    test_multi_reduce(&env);
    vklm_arena_reset(env.arena);
    /* 16-bit outputs: odd C (rows meeting mid-word), odd N*C (a half word at the end), rows
     * past a 32-row CPU workgroup, GPT-2's width, and a row too long for the CPU variants */
    static const uint32_t hN[] = {1, 5, 33, 130, 3}, hC[] = {1, 67, 45, 768, 4099};
    for (int kind = 0; kind < 4; kind++)
      for (int k = 0; k < 5; k++) {
        test_norm16(&env, kind, 1 + (k + kind) % 2, hN[k], hC[k], 1100 + 10 * k + kind);
        vklm_arena_reset(env.arena);
      }
  }
  static const uint32_t fdN[] = {1, 5, 3}, fdC[] = {3, 67, 1000};
  for (int k = 0; k < 3; k++) {
    fd_check(&env, 0, fdN[k], fdC[k], 500 + k);
    fd_check(&env, 1, fdN[k], fdC[k], 600 + k);
  }
  return vt_finish(&env);
}

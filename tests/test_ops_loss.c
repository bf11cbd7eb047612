/* Loss op tests (VKLM_TEST_GPU): the fused softmax cross-entropy (llm.c's fused classifier)
 * against its C reference: vocabularies V = 1, 3, 67, 769, 1000 and N = 1, 5, 130 rows, with
 * some targets set to the ignore index (and N = 70001 rows for the split grid), in place (dlogits = logits) and out of place; all rows
 * but one ignored, and all ignored; V = 50257 (GPT-2) for a few rows; a recorded step replayed
 * with new targets (the GPU-computed dloss must follow the new count); the losses-only forward;
 * the deterministic mean loss; and the reference gradient of the mean loss checked by finite
 * differences. Every GPU case runs for both kernel families (the GPU kernels and the CPU-type
 * variants, vklm_context_set_kernels), with extra sizes for the latter (N = 1, 17, 33 rows of
 * V = 5, 257, 4099, and 2 rows of 150001, past their loop budget). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

/* vt_compare's metric (relative, floored at 1e-3 * max|want|): fp32 logsumexp and exp. */
#define TOL 1e-4
/* dlogits at a confident target is p - 1, a cancellation: a few ulp of exp (more on GPUs whose
 * exp is approximate) become ~1e-4 of that element under the floored metric (V = 3, 70001 rows
 * reaches 9e-5 on lavapipe). */
#define TOL_GRAD 3e-4
#define IGNORE (-100)

/* The kernel family under test (vklm_context_set_kernels): every GPU case runs for both. */
static const char *fam = "gpu";

static vklm_buffer up(vt_env *env, const void *x, size_t bytes) { return vt_upload(env, x, bytes); }

/* Targets in [0,V), with row r ignored when ignore_every > 0 and r % ignore_every == 1. */
static int32_t *make_targets(uint32_t N, uint32_t V, int ignore_every, uint64_t seed) {
  int *t = vt_randi(N, seed, 0, (int)V);
  for (uint32_t r = 0; r < N; r++)
    if (ignore_every > 0 && r % ignore_every == 1 % ignore_every) t[r] = IGNORE;
  return (int32_t *)t;
}

static uint32_t count_kept(const int32_t *t, uint32_t N) {
  uint32_t c = 0;
  for (uint32_t r = 0; r < N; r++) c += t[r] != IGNORE;
  return c;
}

/* Runs forward_backward (+ mean, + the losses-only forward) on the GPU and checks everything
 * against the reference. */
static void check_ce(vt_env *env, const char *label, const float *logits, const int32_t *tg,
                     uint32_t N, uint32_t V, int in_place, float grad_scale) {
  size_t n = (size_t)N * V;
  vklm_buffer g_logits = up(env, logits, n * 4), g_tg = up(env, tg, N * 4);
  vklm_buffer g_dlogits = in_place ? g_logits : vt_alloc(env, n * 4);
  vklm_buffer g_losses = vt_alloc(env, N * 4), g_dloss = vt_alloc(env, 4);
  vklm_buffer g_mean = vt_alloc(env, 4), g_losses2 = vt_alloc(env, N * 4);
  vt_begin(env);
  /* the losses-only forward reads the logits before the fused kernel may overwrite them */
  vt_ok(env, vklm_crossentropy_forward(env->cmd, g_losses2, g_logits, g_tg, N, V, IGNORE), "ce fwd");
  vt_ok(env, vklm_crossentropy_forward_backward(env->cmd, g_losses, g_dlogits, g_dloss, g_logits,
                                                g_tg, N, V, IGNORE, grad_scale), "ce");
  vt_ok(env, vklm_crossentropy_mean(env->cmd, g_mean, g_losses, g_tg, N, IGNORE), "ce mean");
  vt_run(env);
  float *losses = vt_zeros(N), *dlogits = vt_zeros(n);
  double mean = vklm_crossentropy_forward_backward_ref(losses, dlogits, logits, tg, N, V, IGNORE,
                                                       grad_scale);
  uint32_t kept = count_kept(tg, N);
  float want_dloss = kept ? grad_scale / (float)kept : 0.0f, want_mean = (float)mean;
  char what[128];
  float *x = vt_download(env, g_losses, N);
  snprintf(what, sizeof what, "ce[%s] %s losses N=%u V=%u%s", fam, label, N, V, in_place ? " in-place" : "");
  vt_compare(env, what, x, losses, N, TOL);
  free(x);
  x = vt_download(env, g_losses2, N);
  snprintf(what, sizeof what, "ce[%s] %s fwd-only losses N=%u V=%u", fam, label, N, V);
  vt_compare(env, what, x, losses, N, TOL);
  free(x);
  x = vt_download(env, g_dlogits, n);
  snprintf(what, sizeof what, "ce[%s] %s dlogits N=%u V=%u%s", fam, label, N, V, in_place ? " in-place" : "");
  vt_compare(env, what, x, dlogits, n, TOL_GRAD);
  free(x);
  x = vt_download(env, g_dloss, 1);
  snprintf(what, sizeof what, "ce[%s] %s dloss (%u of %u kept)", fam, label, kept, N);
  vt_compare(env, what, x, &want_dloss, 1, 1e-6);
  free(x);
  x = vt_download(env, g_mean, 1);
  snprintf(what, sizeof what, "ce[%s] %s mean loss N=%u V=%u", fam, label, N, V);
  vt_compare(env, what, x, &want_mean, 1, 1e-5);
  free(x);
  free(losses);
  free(dlogits);
}

static void test_shapes(vt_env *env) {
  static const uint32_t Vs[] = {1, 3, 67, 769, 1000}, Ns[] = {1, 5, 130};
  uint64_t seed = 1;
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 3; j++) {
      uint32_t N = Ns[j], V = Vs[i];
      float *logits = vt_randf((size_t)N * V, seed += 10, -5, 5);
      int32_t *tg = make_targets(N, V, 4, seed + 1); /* N = 1: kept; else rows 1, 5, ... ignored */
      check_ce(env, "some ignored", logits, tg, N, V, 0, 1.0f);
      check_ce(env, "some ignored", logits, tg, N, V, 1, 1.0f);
      free(logits);
      free(tg);
      vklm_arena_reset(env->arena);
    }
}

static void test_ignored(vt_env *env) {
  uint32_t N = 130, V = 67;
  float *logits = vt_randf((size_t)N * V, 77, -5, 5);
  int32_t *tg = make_targets(N, V, 0, 78);
  for (uint32_t r = 0; r < N; r++)
    if (r != 97) tg[r] = IGNORE;
  check_ce(env, "all but one ignored", logits, tg, N, V, 0, 1.0f);
  check_ce(env, "all but one ignored", logits, tg, N, V, 1, 0.25f);
  tg[97] = IGNORE;
  check_ce(env, "all ignored", logits, tg, N, V, 0, 1.0f);
  check_ce(env, "all ignored", logits, tg, N, V, 1, 1.0f);
  free(logits);
  free(tg);
  vklm_arena_reset(env->arena);
}

/* More rows than one grid dimension holds under baseline limits (65535 workgroups). */
static void test_many_rows(vt_env *env) {
  uint32_t N = 70001, V = 3;
  float *logits = vt_randf((size_t)N * V, 55, -5, 5);
  int32_t *tg = make_targets(N, V, 3, 56);
  check_ce(env, "many rows", logits, tg, N, V, 1, 1.0f);
  free(logits);
  free(tg);
  vklm_arena_reset(env->arena);
}

static void test_gpt2_vocab(vt_env *env) {
  uint32_t N = 3, V = 50257;
  float *logits = vt_randf((size_t)N * V, 99, -8, 8);
  int32_t tg[3] = {50256, 0, 12345};
  logits[(size_t)2 * V + 12345] = 20.0f; /* a confident row: softmax at the target near 1 */
  check_ce(env, "gpt2 vocab", logits, tg, N, V, 0, 1.0f);
  check_ce(env, "gpt2 vocab", logits, tg, N, V, 1, 1.0f);
  tg[1] = IGNORE;
  check_ce(env, "gpt2 vocab, row 1 ignored", logits, tg, N, V, 1, 1.0f);
  free(logits);
  vklm_arena_reset(env->arena);
}

/* Record once, replay with new targets uploaded into the same buffer: dloss and the gradient must
 * follow the new targets (and their new count of ignored rows) without re-recording. */
static void test_replay(vt_env *env) {
  uint32_t N = 5, V = 769;
  size_t n = (size_t)N * V;
  float *logits = vt_randf(n, 123, -5, 5);
  int32_t *t1 = make_targets(N, V, 4, 124), *t2 = make_targets(N, V, 2, 125);
  vklm_buffer g_logits = up(env, logits, n * 4), g_tg = up(env, t1, N * 4);
  vklm_buffer g_dlogits = vt_alloc(env, n * 4), g_losses = vt_alloc(env, N * 4);
  vklm_buffer g_dloss = vt_alloc(env, 4), g_mean = vt_alloc(env, 4);
  vt_begin(env);
  vt_ok(env, vklm_crossentropy_forward_backward(env->cmd, g_losses, g_dlogits, g_dloss, g_logits,
                                                g_tg, N, V, IGNORE, 1.0f), "ce");
  vt_ok(env, vklm_crossentropy_mean(env->cmd, g_mean, g_losses, g_tg, N, IGNORE), "mean");
  vt_ok(env, vklm_cmd_end(env->cmd), "end");
  float m1 = 0, m2 = 0;
  for (int k = 0; k < 2; k++) {
    int32_t *tg = k ? t2 : t1;
    vt_ok(env, vklm_buffer_upload(env->ctx, g_tg, 0, tg, N * 4), "targets");
    vt_ok(env, vklm_cmd_run(env->cmd), "replay");
    float *losses = vt_zeros(N), *dlogits = vt_zeros(n);
    float want_mean = (float)vklm_crossentropy_forward_backward_ref(losses, dlogits, logits, tg, N,
                                                                    V, IGNORE, 1.0f);
    char what[96];
    float *x = vt_download(env, g_dlogits, n);
    snprintf(what, sizeof what, "ce[%s] replay %d dlogits (%u of %u kept)", fam, k, count_kept(tg, N), N);
    vt_compare(env, what, x, dlogits, n, TOL_GRAD);
    free(x);
    x = vt_download(env, g_mean, 1);
    snprintf(what, sizeof what, "ce[%s] replay %d mean loss", fam, k);
    vt_compare(env, what, x, &want_mean, 1, 1e-5);
    *(k ? &m2 : &m1) = x[0];
    free(x);
    free(losses);
    free(dlogits);
  }
  /* Replaying the same targets again gives bitwise the same mean. */
  vt_ok(env, vklm_cmd_run(env->cmd), "replay");
  float *x = vt_download(env, g_mean, 1);
  vt_expect(env, x[0] == m2 && m1 != m2, "ce[%s] replay with the same targets: mean %.9g == %.9g (bitwise)",
            fam, x[0], m2);
  free(x);
  free(logits); free(t1); free(t2);
  vklm_arena_reset(env->arena);
}

/* ---- finite differences of the reference: d(mean loss) / d(logits) ----------------------- */
typedef struct fd_state {
  uint32_t N, V;
  float *logits, *losses;
  int32_t *tg;
} fd_state;

static double fd_loss(void *p) {
  fd_state *s = p;
  return vklm_crossentropy_forward_backward_ref(s->losses, NULL, s->logits, s->tg, s->N, s->V,
                                                IGNORE, 1.0f);
}

static void fd_check(vt_env *env, uint32_t N, uint32_t V, int ignore_every, uint64_t seed) {
  size_t n = (size_t)N * V;
  fd_state s = {N, V, vt_randf(n, seed, -3, 3), vt_zeros(N), make_targets(N, V, ignore_every, seed + 1)};
  float *dlogits = vt_zeros(n);
  vklm_crossentropy_forward_backward_ref(s.losses, dlogits, s.logits, s.tg, N, V, IGNORE, 1.0f);
  char what[96];
  snprintf(what, sizeof what, "ce ref d(mean loss)/dlogits N=%u V=%u (%u kept)", N, V, count_kept(s.tg, N));
  vt_fd_check(env, what, fd_loss, &s, s.logits, n, dlogits, 96, 1e-3, 1e-2);
  free(s.logits); free(s.losses); free(s.tg); free(dlogits);
}

/* Per-row scales (vklm_crossentropy_forward_backward_rows): dlogits row r = the reference's
 * gradient at grad_scale 1 times count * scale[r] (the reference divides by the count), and the
 * per-sequence sums of -losses over a mask (vklm_segment_dot) against a plain C sum. */
static void test_rows(vt_env *env, uint32_t B, uint32_t T, uint32_t V) {
  uint32_t N = B * T;
  size_t n = (size_t)N * V;
  float *logits = vt_randf(n, 77 + V, -4, 4), *scale = vt_randf(N, 78, -2, 2);
  int32_t *tg = make_targets(N, V, 4, 79);
  float *mask = vt_zeros(N);
  for (uint32_t r = 0; r < N; r++) mask[r] = (r % T) >= T / 3 ? -1.0f : 0.0f; /* a "completion" */
  vklm_buffer g_logits = up(env, logits, n * 4), g_tg = up(env, tg, N * 4);
  vklm_buffer g_scale = up(env, scale, N * 4), g_mask = up(env, mask, N * 4);
  vklm_buffer g_losses = vt_alloc(env, N * 4), g_seq = vt_alloc(env, B * 4);
  vt_begin(env);
  vt_ok(env, vklm_crossentropy_forward_backward_rows(env->cmd, g_losses, g_logits, g_logits, g_tg,
                                                     g_scale, N, V, IGNORE), "ce rows");
  vt_ok(env, vklm_segment_dot(env->cmd, g_seq, g_losses, g_mask, B, T), "segment dot");
  vt_run(env);
  float *losses = vt_zeros(N), *dlogits = vt_zeros(n), *seq = vt_zeros(B);
  uint32_t kept = count_kept(tg, N);
  vklm_crossentropy_forward_backward_ref(losses, dlogits, logits, tg, N, V, IGNORE, 1.0f);
  for (uint32_t r = 0; r < N; r++)
    for (uint32_t v = 0; v < V; v++) dlogits[(size_t)r * V + v] *= (float)kept * scale[r];
  vklm_segment_dot_ref(seq, losses, mask, B, T);
  char what[128];
  float *x = vt_download(env, g_losses, N);
  snprintf(what, sizeof what, "ce[%s] rows losses N=%u V=%u", fam, N, V);
  vt_compare(env, what, x, losses, N, TOL);
  free(x);
  x = vt_download(env, g_logits, n);
  snprintf(what, sizeof what, "ce[%s] rows dlogits (per-row scales, in place) N=%u V=%u", fam, N, V);
  vt_compare(env, what, x, dlogits, n, TOL_GRAD);
  free(x);
  x = vt_download(env, g_seq, B);
  snprintf(what, sizeof what, "segment sums of -losses over a mask B=%u T=%u", B, T);
  vt_compare(env, what, x, seq, B, TOL);
  double plain = 0;
  for (uint32_t t = 0; t < T; t++) plain += losses[t] * mask[t];
  vt_expect(env, fabs(plain - seq[0]) <= 1e-5 * (fabs(plain) + 1), "segment_dot_ref row 0: %g vs %g",
            seq[0], plain);
  free(x), free(logits), free(scale), free(tg), free(mask), free(losses), free(dlogits), free(seq);
}

/* Awkward sizes for the CPU-type variants (16 rows per workgroup): rows that fill no whole
 * workgroup, a vocabulary that is no multiple of 4 or 8, long rows, and rows past their loop
 * budget (V = 150001: the GPU kernels stand in). */
static void test_cpu_sizes(vt_env *env) {
  static const uint32_t Ns[] = {1, 17, 33, 2}, Vs[] = {5, 257, 4099, 150001};
  for (int i = 0; i < 4; i++) {
    uint32_t N = Ns[i], V = Vs[i];
    float *logits = vt_randf((size_t)N * V, 300 + i, -6, 6);
    int32_t *tg = make_targets(N, V, 3, 310 + i);
    check_ce(env, "odd sizes", logits, tg, N, V, i & 1, 0.5f);
    free(logits);
    free(tg);
    vklm_arena_reset(env->arena);
  }
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_loss");
  static const vklm_kernels fams[] = {VKLM_KERNELS_GPU, VKLM_KERNELS_CPU};
  for (int f = 0; f < 2; f++) {
    vklm_context_set_kernels(env.ctx, fams[f]);
    fam = fams[f] == VKLM_KERNELS_CPU ? "cpu" : "gpu";
    printf("-- %s kernels\n", fam);
    test_rows(&env, 3, 7, 67);
    test_rows(&env, 2, 300, 1000);
    test_shapes(&env);
    test_cpu_sizes(&env);
    test_ignored(&env);
    test_many_rows(&env);
    test_gpt2_vocab(&env);
    test_replay(&env);
  }
  fd_check(&env, 1, 3, 0, 11);
  fd_check(&env, 5, 67, 2, 12);
  fd_check(&env, 3, 1000, 0, 13);
  return vt_finish(&env);
}

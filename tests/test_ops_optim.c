/* Optimizer op tests (VKLM_TEST_GPU): AdamW against the C reference over 10 steps with and
 * without weight decay and with a clip scale read from a buffer; a recorded AdamW step replayed
 * three times with only the step buffer re-uploaded; the global gradient norm over tensors of
 * awkward sizes (0, 1, 1000, 100003, and one large enough to hit the per-tensor partial cap)
 * against a double-precision reference, its clip scale on both sides of max_norm and with
 * max_norm = 0, run-to-run bit-identity, grad_clip, and grad_norm feeding AdamW in one command
 * buffer as a training step does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

static const float LR = 1e-3f, B1 = 0.9f, B2 = 0.999f, EPS = 1e-8f, WD = 0.1f;

/* 10 AdamW steps, each recorded afresh with a new gradient; params, m and v compared after. */
static void test_adamw_steps(vt_env *env, uint32_t n, int apply_wd, float clip, uint64_t seed) {
  char what[128];
  float *p = vt_randf(n, seed, -1, 1), *m = vt_zeros(n), *v = vt_zeros(n);
  vklm_buffer g_p = vt_upload(env, p, n * 4), g_m = vt_upload(env, m, n * 4), g_v = vt_upload(env, v, n * 4);
  vklm_buffer g_g = vt_alloc(env, n * 4), g_step = vt_alloc(env, sizeof(vklm_adamw_step));
  vklm_buffer g_clip = {0};
  if (clip != 1.0f) {
    float nc[2] = {123.0f, clip};
    g_clip = vt_upload(env, nc, sizeof nc);
  }
  for (uint32_t t = 1; t <= 10; t++) {
    float *g = vt_randf(n, seed * 100 + t, -2, 2);
    vklm_adamw_step s;
    vklm_adamw_step_fill(&s, LR, B1, B2, EPS, WD, t);
    vt_ok(env, vklm_buffer_upload(env->ctx, g_step, 0, &s, sizeof s), "upload step");
    vt_ok(env, vklm_buffer_upload(env->ctx, g_g, 0, g, n * 4), "upload grads");
    vt_begin(env);
    vt_ok(env, vklm_adamw(env->cmd, g_p, g_m, g_v, g_g, n, g_step, g_clip, apply_wd), "adamw");
    vt_run(env);
    vklm_adamw_ref(p, m, v, g, n, &s, clip, apply_wd);
    free(g);
  }
  float *gp = vt_download(env, g_p, n), *gm = vt_download(env, g_m, n), *gv = vt_download(env, g_v, n);
  const char *mode = apply_wd ? "wd" : "no wd";
  snprintf(what, sizeof what, "adamw 10 steps n=%u %s clip %.2f: params", n, mode, clip);
  vt_compare(env, what, gp, p, n, 1e-6);
  snprintf(what, sizeof what, "adamw 10 steps n=%u %s clip %.2f: m", n, mode, clip);
  vt_compare(env, what, gm, m, n, 1e-6);
  snprintf(what, sizeof what, "adamw 10 steps n=%u %s clip %.2f: v", n, mode, clip);
  vt_compare(env, what, gv, v, n, 1e-6);
  free(p); free(m); free(v); free(gp); free(gm); free(gv);
}

/* The weight-decay flag must matter: with it off, the weight decay value is ignored. */
static void test_adamw_flag(vt_env *env) {
  uint32_t n = 333;
  float *p = vt_randf(n, 5, -1, 1), *m = vt_zeros(n), *v = vt_zeros(n), *g = vt_randf(n, 6, -1, 1);
  vklm_adamw_step s;
  vklm_adamw_step_fill(&s, 0.01f, B1, B2, EPS, 0.5f, 1);
  vklm_buffer b[2][3];
  for (int k = 0; k < 2; k++) {
    b[k][0] = vt_upload(env, p, n * 4);
    b[k][1] = vt_upload(env, m, n * 4);
    b[k][2] = vt_upload(env, v, n * 4);
  }
  vklm_buffer g_g = vt_upload(env, g, n * 4), g_step = vt_upload(env, &s, sizeof s);
  vt_begin(env);
  vt_ok(env, vklm_adamw(env->cmd, b[0][0], b[0][1], b[0][2], g_g, n, g_step, (vklm_buffer){0}, 1), "adamw");
  vt_ok(env, vklm_adamw(env->cmd, b[1][0], b[1][1], b[1][2], g_g, n, g_step, (vklm_buffer){0}, 0), "adamw");
  vt_run(env);
  float *with = vt_download(env, b[0][0], n), *without = vt_download(env, b[1][0], n);
  double maxd = 0;
  for (uint32_t i = 0; i < n; i++) maxd = fmax(maxd, fabs((double)with[i] - without[i]));
  vt_expect(env, maxd > 1e-3, "apply_wd flag: decayed and undecayed params differ (max %.2e)", maxd);
  free(p); free(m); free(v); free(g); free(with); free(without);
}

/* Record one step, then replay it 3 times re-uploading only the step buffer. */
static void test_adamw_replay(vt_env *env) {
  uint32_t n = 4099;
  float *p = vt_randf(n, 21, -1, 1), *m = vt_randf(n, 22, -0.1f, 0.1f), *v = vt_randf(n, 23, 0, 0.01f);
  float *g = vt_randf(n, 24, -1, 1);
  float nc[2] = {5.0f, 0.6f};
  vklm_buffer g_p = vt_upload(env, p, n * 4), g_m = vt_upload(env, m, n * 4), g_v = vt_upload(env, v, n * 4);
  vklm_buffer g_g = vt_upload(env, g, n * 4), g_clip = vt_upload(env, nc, sizeof nc);
  vklm_buffer g_step = vt_alloc(env, sizeof(vklm_adamw_step));
  vt_begin(env);
  vt_ok(env, vklm_adamw(env->cmd, g_p, g_m, g_v, g_g, n, g_step, g_clip, 1), "adamw");
  vt_ok(env, vklm_cmd_end(env->cmd), "end");
  float lr[3] = {1e-3f, 5e-4f, 2.5e-4f}; /* a schedule: lr changes along with t */
  for (uint32_t t = 4; t <= 6; t++) {
    vklm_adamw_step s;
    vklm_adamw_step_fill(&s, lr[t - 4], B1, B2, EPS, WD, t);
    vt_ok(env, vklm_buffer_upload(env->ctx, g_step, 0, &s, sizeof s), "upload step");
    vt_ok(env, vklm_cmd_run(env->cmd), "replay");
    vklm_adamw_ref(p, m, v, g, n, &s, nc[1], 1);
  }
  float *gp = vt_download(env, g_p, n), *gm = vt_download(env, g_m, n), *gv = vt_download(env, g_v, n);
  vt_compare(env, "adamw replayed 3x (steps 4..6): params", gp, p, n, 1e-6);
  vt_compare(env, "adamw replayed 3x (steps 4..6): m", gm, m, n, 1e-6);
  vt_compare(env, "adamw replayed 3x (steps 4..6): v", gv, v, n, 1e-6);
  free(p); free(m); free(v); free(g); free(gp); free(gm); free(gv);
}

/* ---- gradient norm ---------------------------------------------------------------------------- */
#define NT 6
static const uint32_t COUNTS[NT] = {1, 1000, 0, 100003, 257, 5000011};

static void test_grad_norm(vt_env *env) {
  float *h[NT];
  vklm_buffer g[NT];
  for (int i = 0; i < NT; i++) {
    /* different scales per tensor, so that no tensor dominates trivially */
    float a = 0.1f * (float)(i + 1);
    h[i] = vt_randf(COUNTS[i], 300 + i, -a, a);
    g[i] = COUNTS[i] ? vt_upload(env, h[i], COUNTS[i] * 4) : (vklm_buffer){0};
  }
  uint64_t ss = vklm_grad_norm_scratch_size(env->ctx, COUNTS, NT);
  vklm_buffer scratch = vt_alloc(env, ss), norm_out = vt_alloc(env, 8);
  printf(" grad norm over tensors of 1, 1000, 0, 100003, 257, 5000011 floats (scratch %llu bytes)\n",
         (unsigned long long)ss);

  float ref[2];
  vklm_grad_norm_ref(ref, (const float *const *)h, COUNTS, NT, 0);
  double norm = ref[0];
  const float maxes[3] = {0.0f, (float)(norm * 0.37), (float)(norm * 2.0)};
  const char *names[3] = {"max_norm 0 (no clipping)", "max_norm 0.37 x norm", "max_norm 2 x norm"};
  float first[2] = {0, 0};
  for (int k = 0; k < 3; k++) {
    vt_begin(env);
    vt_ok(env, vklm_grad_norm(env->cmd, norm_out, scratch, g, COUNTS, NT, maxes[k]), "grad norm");
    if (k == 0)
      vt_expect(env, vklm_cmd_barrier_count(env->cmd) == 1,
                "grad norm: %u dispatches, %u barrier (partials go to disjoint slices; want 1)",
                vklm_cmd_dispatch_count(env->cmd), vklm_cmd_barrier_count(env->cmd));
    vt_run(env);
    float got[2];
    vt_ok(env, vklm_buffer_download(env->ctx, norm_out, 0, got, 8), "download");
    vklm_grad_norm_ref(ref, (const float *const *)h, COUNTS, NT, maxes[k]);
    char what[128];
    snprintf(what, sizeof what, "grad norm, %s: norm", names[k]);
    vt_compare(env, what, got, ref, 1, 1e-5);
    snprintf(what, sizeof what, "grad norm, %s: scale %.4f", names[k], got[1]);
    vt_compare(env, what, got + 1, ref + 1, 1, 1e-5);
    if (k == 0) {
      vt_expect(env, got[1] == 1.0f, "  scale exactly 1 with max_norm 0");
      memcpy(first, got, sizeof first);
    }
    if (k == 2) vt_expect(env, got[1] == 1.0f, "  scale exactly 1 when the norm is below max_norm");
    if (k == 1) vt_expect(env, fabs(got[1] * (got[0] + 1e-6) - maxes[1]) < 1e-5 * maxes[1],
                          "  scale * (norm + 1e-6) == max_norm above it");
  }
  /* Bit-identical from run to run. */
  vt_begin(env);
  vt_ok(env, vklm_grad_norm(env->cmd, norm_out, scratch, g, COUNTS, NT, 0), "grad norm");
  vt_run(env);
  float again[2];
  vt_ok(env, vklm_buffer_download(env->ctx, norm_out, 0, again, 8), "download");
  vt_expect(env, !memcmp(again, first, 8), "grad norm run twice: bit-identical (%.9g)", again[0]);

  /* Clip one tensor explicitly by the GPU's scale. */
  vt_begin(env);
  vt_ok(env, vklm_grad_norm(env->cmd, norm_out, scratch, g, COUNTS, NT, maxes[1]), "grad norm");
  vt_ok(env, vklm_grad_clip(env->cmd, g[3], COUNTS[3], norm_out), "grad clip");
  vt_run(env);
  float got[2];
  vt_ok(env, vklm_buffer_download(env->ctx, norm_out, 0, got, 8), "download");
  float *clipped = vt_download(env, g[3], COUNTS[3]);
  vklm_grad_clip_ref(h[3], COUNTS[3], got);
  vt_compare(env, "grad_clip n=100003 by GPU scale", clipped, h[3], COUNTS[3], 0);
  free(clipped);
  for (int i = 0; i < NT; i++) free(h[i]);
}

/* Empty tensor list and tiny tensors: the final pass still writes norm 0 / scale 1. */
static void test_grad_norm_edge(vt_env *env) {
  vklm_buffer norm_out = vt_alloc(env, 8);
  uint32_t zero = 0;
  vklm_buffer none = {0};
  vklm_buffer scratch = vt_alloc(env, vklm_grad_norm_scratch_size(env->ctx, &zero, 1));
  vt_begin(env);
  vt_ok(env, vklm_grad_norm(env->cmd, norm_out, scratch, &none, &zero, 1, 1.0f), "grad norm");
  vt_run(env);
  float got[2];
  vt_ok(env, vklm_buffer_download(env->ctx, norm_out, 0, got, 8), "download");
  vt_expect(env, got[0] == 0 && got[1] == 1, "grad norm of nothing: norm %g scale %g", got[0], got[1]);
  float x[3] = {3, 0, -4};
  vklm_buffer gx = vt_upload(env, x, sizeof x);
  uint32_t c3 = 3;
  scratch = vt_alloc(env, vklm_grad_norm_scratch_size(env->ctx, &c3, 1));
  vt_begin(env);
  vt_ok(env, vklm_grad_norm(env->cmd, norm_out, scratch, &gx, &c3, 1, 1.0f), "grad norm");
  vt_run(env);
  vt_ok(env, vklm_buffer_download(env->ctx, norm_out, 0, got, 8), "download");
  vt_expect(env, got[0] == 5.0f && fabsf(got[1] - 1.0f / (5.0f + 1e-6f)) < 1e-7f,
            "grad norm of (3,0,-4): norm %g, scale %.7f for max_norm 1", got[0], got[1]);
}

/* A training step's tail: grad norm, then AdamW reading the clip scale from its output. */
static void test_norm_into_adamw(vt_env *env) {
  uint32_t counts[3] = {777, 5, 12345};
  float *p[3], *m[3], *v[3], *gh[3];
  vklm_buffer gp[3], gm[3], gv[3], gg[3];
  for (int i = 0; i < 3; i++) {
    p[i] = vt_randf(counts[i], 40 + i, -1, 1);
    m[i] = vt_zeros(counts[i]);
    v[i] = vt_zeros(counts[i]);
    gh[i] = vt_randf(counts[i], 50 + i, -1, 1);
    gp[i] = vt_upload(env, p[i], counts[i] * 4);
    gm[i] = vt_upload(env, m[i], counts[i] * 4);
    gv[i] = vt_upload(env, v[i], counts[i] * 4);
    gg[i] = vt_upload(env, gh[i], counts[i] * 4);
  }
  vklm_buffer scratch = vt_alloc(env, vklm_grad_norm_scratch_size(env->ctx, counts, 3));
  vklm_buffer norm_out = vt_alloc(env, 8), step = vt_alloc(env, sizeof(vklm_adamw_step));
  vklm_adamw_step s;
  vklm_adamw_step_fill(&s, LR, B1, B2, EPS, WD, 1);
  vt_ok(env, vklm_buffer_upload(env->ctx, step, 0, &s, sizeof s), "upload step");
  vt_begin(env);
  vt_ok(env, vklm_grad_norm(env->cmd, norm_out, scratch, gg, counts, 3, 1.0f), "grad norm");
  for (int i = 0; i < 3; i++)
    vt_ok(env, vklm_adamw(env->cmd, gp[i], gm[i], gv[i], gg[i], counts[i], step, norm_out, i != 1), "adamw");
  vt_run(env);
  float ref[2];
  vklm_grad_norm_ref(ref, (const float *const *)gh, counts, 3, 1.0f);
  for (int i = 0; i < 3; i++) {
    vklm_adamw_ref(p[i], m[i], v[i], gh[i], counts[i], &s, ref[1], i != 1);
    float *got = vt_download(env, gp[i], counts[i]), *gotm = vt_download(env, gm[i], counts[i]);
    char what[96];
    snprintf(what, sizeof what, "grad norm -> adamw (scale %.4f) tensor %d: params", ref[1], i);
    vt_compare(env, what, got, p[i], counts[i], 1e-6);
    snprintf(what, sizeof what, "grad norm -> adamw tensor %d: m", i);
    vt_compare(env, what, gotm, m[i], counts[i], 1e-5); /* m carries the scale's own rounding */
    free(got); free(gotm);
    free(p[i]); free(m[i]); free(v[i]); free(gh[i]);
  }
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_optim");
  const uint32_t sizes[3] = {1, 1000, 10007};
  for (int i = 0; i < 3; i++) {
    test_adamw_steps(&env, sizes[i], 1, 1.0f, 1 + i);
    test_adamw_steps(&env, sizes[i], 0, 1.0f, 11 + i);
    test_adamw_steps(&env, sizes[i], 1, 0.37f, 21 + i);
  }
  test_adamw_flag(&env);
  test_adamw_replay(&env);
  test_grad_norm(&env);
  test_grad_norm_edge(&env);
  test_norm_into_adamw(&env);
  return vt_finish(&env);
}

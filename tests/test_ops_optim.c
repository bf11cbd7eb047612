/* Optimizer op tests (VKLM_TEST_GPU): AdamW against the C reference over 10 steps with and
 * without weight decay and with a clip scale read from a buffer; a recorded AdamW step replayed
 * three times with only the step buffer re-uploaded; the global gradient norm over tensors of
 * awkward sizes (0, 1, 1000, 100003, and one large enough to hit the per-tensor partial cap)
 * against a double-precision reference, its clip scale on both sides of max_norm and with
 * max_norm = 0, run-to-run bit-identity, grad_clip, and grad_norm feeding AdamW in one command
 * buffer as a training step does. The multi-tensor forms (one dispatch per block combination):
 * slots of awkward sizes spread over several arena blocks, decay on some, clipping on and off,
 * recorded once and replayed, bit for bit against the per-tensor ops and against the reference,
 * with both kernel families; the gradient zeroing's merged fills. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/elementwise.h"
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

/* ---- multi-tensor forms ------------------------------------------------------------------------ */
/* Slots of awkward sizes around both workgroup sizes (256, and 128 under baseline limits), an empty
 * one, and one past the norm's per-tensor partial cap (1024 workgroups of 16 floats per thread). */
#define MS 14
static const uint32_t MCOUNTS[MS] = {1, 7, 127, 129, 255, 0, 257, 1000, 4097, 100003, 3, 4300001, 65537, 33};

typedef struct mstate {
  vklm_buffer p[MS], m[MS], v[MS], g[MS], scratch, norm, step;
} mstate;

/* The same slots twice (a: the per-tensor ops, b: the multi-tensor ones), spread over two arenas
 * so that the slots' parameters, moments and gradients fall in several block combinations:
 * `small` has 64 KiB blocks (a slot larger than that gets a block of its own). */
static void mstate_make(vt_env *env, vklm_arena *small, mstate *st, float *const *p,
                        float *const *m, float *const *v) {
  for (int i = 0; i < MS; i++) /* the gradients first, one after another (as a model has them) */
    if (MCOUNTS[i])
      vt_ok(env, vklm_arena_alloc(i % 2 ? small : env->arena, MCOUNTS[i] * 4, &st->g[i]), "alloc g");
  for (int i = 0; i < MS; i++) {
    uint64_t bytes = (uint64_t)MCOUNTS[i] * 4;
    if (!bytes) continue; /* an empty slot: its buffers stay {0} */
    vt_ok(env, vklm_arena_alloc(i % 3 == 0 ? small : env->arena, bytes, &st->p[i]), "alloc p");
    vt_ok(env, vklm_arena_alloc(env->arena, bytes, &st->m[i]), "alloc m");
    vt_ok(env, vklm_arena_alloc(i % 4 == 1 ? small : env->arena, bytes, &st->v[i]), "alloc v");
    vt_ok(env, vklm_buffer_upload(env->ctx, st->p[i], 0, p[i], bytes), "upload p");
    vt_ok(env, vklm_buffer_upload(env->ctx, st->m[i], 0, m[i], bytes), "upload m");
    vt_ok(env, vklm_buffer_upload(env->ctx, st->v[i], 0, v[i], bytes), "upload v");
  }
  st->scratch = vt_alloc(env, vklm_grad_norm_scratch_size(env->ctx, MCOUNTS, MS));
  st->norm = vt_alloc(env, 8);
  st->step = vt_alloc(env, sizeof(vklm_adamw_step));
}

static int same_bits(vt_env *env, vklm_buffer a, vklm_buffer b, uint32_t n) {
  if (!n) return 1;
  float *x = vt_download(env, a, n), *y = vt_download(env, b, n);
  int same = !memcmp(x, y, (size_t)n * 4);
  free(x);
  free(y);
  return same;
}

/* Distinct values among n keys of k pointers each. */
static uint32_t distinct(void *const (*keys)[4], uint32_t n, int k) {
  uint32_t d = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t j = 0;
    while (j < i && memcmp(keys[j], keys[i], k * sizeof(void *))) j++;
    d += j == i;
  }
  return d;
}

/* Three training-step tails (norm, AdamW reading its clip scale, gradients zeroed), each recorded
 * once and replayed with new gradients and step values: the multi-tensor path against the
 * per-tensor path (bit for bit) and against the C reference (per slot), with max_norm 0 (no
 * clipping), with clipping, and AdamW without a clip buffer. */
static void test_multi(vt_env *env, vklm_arena *small, const char *family) {
  float *p[MS], *m[MS], *v[MS], *g[MS];
  int wd[MS];
  for (int i = 0; i < MS; i++) {
    p[i] = vt_randf(MCOUNTS[i], 600 + i, -1, 1);
    m[i] = vt_randf(MCOUNTS[i], 620 + i, -0.1f, 0.1f);
    v[i] = vt_randf(MCOUNTS[i], 640 + i, 0, 0.01f);
    wd[i] = i % 2 == 0;
  }
  mstate a = {0}, b = {0};
  mstate_make(env, small, &a, p, m, v);
  mstate_make(env, small, &b, p, m, v);
  vklm_optim_slot sl[MS];
  void *akeys[MS][4], *gkeys[MS][4];
  uint32_t nz = 0;
  for (int i = 0; i < MS; i++) {
    sl[i] = (vklm_optim_slot){b.p[i], b.m[i], b.v[i], b.g[i], MCOUNTS[i], wd[i]};
    if (!MCOUNTS[i]) continue;
    void *k4[4] = {b.p[i].block, b.m[i].block, b.v[i].block, b.g[i].block};
    memcpy(akeys[nz], k4, sizeof k4);
    memcpy(gkeys[nz], k4 + 3, sizeof(void *));
    nz++;
  }
  uint32_t want_adamw = distinct((void *const(*)[4])akeys, nz, 4);
  uint32_t want_norm = distinct((void *const(*)[4])gkeys, nz, 1);
  vklm_cmd *ca, *cb;
  vt_ok(env, vklm_cmd_create(env->ctx, &ca), "cmd");
  vt_ok(env, vklm_cmd_create(env->ctx, &cb), "cmd");

  float norm0[2];
  { /* the norm of the first gradients sets the clip threshold */
    for (int i = 0; i < MS; i++) g[i] = vt_randf(MCOUNTS[i], 700 + i, -0.5f, 0.5f);
    vklm_grad_norm_ref(norm0, (const float *const *)g, MCOUNTS, MS, 0);
    for (int i = 0; i < MS; i++) free(g[i]);
  }
  const float maxes[3] = {0.0f, norm0[0] * 0.37f, 0.0f};
  const char *modes[3] = {"no clipping", "clipped at 0.37 x norm", "no clip buffer"};
  uint32_t t = 0;
  for (int mode = 0; mode < 3; mode++) {
    vklm_buffer clip_a = mode == 2 ? (vklm_buffer){0} : a.norm;
    vklm_buffer clip_b = mode == 2 ? (vklm_buffer){0} : b.norm;
    /* a: per tensor */
    vt_ok(env, vklm_cmd_begin(ca), "begin");
    vt_ok(env, vklm_grad_norm(ca, a.norm, a.scratch, a.g, MCOUNTS, MS, maxes[mode]), "grad norm");
    for (int i = 0; i < MS; i++)
      vt_ok(env, vklm_adamw(ca, a.p[i], a.m[i], a.v[i], a.g[i], MCOUNTS[i], a.step, clip_a, wd[i]),
            "adamw");
    for (int i = 0; i < MS; i++)
      if (MCOUNTS[i]) vt_ok(env, vklm_cmd_fill_words(ca, a.g[i], 0), "fill");
    vt_ok(env, vklm_cmd_end(ca), "end");
    /* b: multi-tensor, counted part by part */
    uint32_t nd, nf;
    vt_ok(env, vklm_cmd_begin(cb), "begin");
    vt_ok(env, vklm_grad_norm_multi(cb, b.norm, b.scratch, b.g, MCOUNTS, MS, maxes[mode]),
          "grad norm multi");
    uint32_t norm_disp = vklm_cmd_dispatch_count(cb);
    vt_ok(env, vklm_adamw_multi(cb, sl, MS, b.scratch, b.step, clip_b, &nd), "adamw multi");
    uint32_t adamw_disp = vklm_cmd_dispatch_count(cb) - norm_disp;
    vt_ok(env, vklm_grad_zero(cb, b.g, MS, &nf), "grad zero");
    vt_ok(env, vklm_cmd_end(cb), "end");
    if (mode == 0) {
      vt_expect(env, norm_disp == want_norm + 1 && adamw_disp == want_adamw && nd == adamw_disp,
                "%s: multi-tensor dispatches: norm %u (want %u gradient blocks + 1), AdamW %u "
                "(want %u block combinations; reported %u), %u fills for %u gradients", family,
                norm_disp, want_norm, adamw_disp, want_adamw, nd, nf, nz);
      vt_expect(env, nf >= want_norm && nf < nz,
                "%s: %u gradient fills (>= %u blocks; < %u slots: adjacent ones merged)", family,
                nf, want_norm, nz);
    }
    for (int rep = 0; rep < 2; rep++) { /* replays: new gradients and step values, no recording */
      t++;
      for (int i = 0; i < MS; i++) {
        g[i] = vt_randf(MCOUNTS[i], 700 + 31 * t + i, -0.5f, 0.5f);
        if (!MCOUNTS[i]) continue;
        vt_ok(env, vklm_buffer_upload(env->ctx, a.g[i], 0, g[i], MCOUNTS[i] * 4), "upload g");
        vt_ok(env, vklm_buffer_upload(env->ctx, b.g[i], 0, g[i], MCOUNTS[i] * 4), "upload g");
      }
      vklm_adamw_step s;
      vklm_adamw_step_fill(&s, LR * (float)t, B1, B2, EPS, WD, t);
      vt_ok(env, vklm_buffer_upload(env->ctx, a.step, 0, &s, sizeof s), "upload step");
      vt_ok(env, vklm_buffer_upload(env->ctx, b.step, 0, &s, sizeof s), "upload step");
      vt_ok(env, vklm_cmd_run(ca), "run a");
      vt_ok(env, vklm_cmd_run(cb), "run b");
      float na[2], nb[2], ref[2];
      vt_ok(env, vklm_buffer_download(env->ctx, a.norm, 0, na, 8), "download");
      vt_ok(env, vklm_buffer_download(env->ctx, b.norm, 0, nb, 8), "download");
      vklm_grad_norm_ref(ref, (const float *const *)g, MCOUNTS, MS, maxes[mode]);
      char what[160];
      snprintf(what, sizeof what, "%s, %s, step %u: multi norm vs ref", family, modes[mode], t);
      vt_compare(env, what, nb, ref, 2, 1e-5);
      vt_expect(env, !memcmp(na, nb, 8), "%s, %s, step %u: norm %.9g scale %.9g bit-identical "
                "to the per-tensor path (%.9g %.9g)", family, modes[mode], t, nb[0], nb[1], na[0], na[1]);
      vklm_adamw_multi_ref(p, m, v, (const float *const *)g, MCOUNTS, wd, MS, &s,
                           mode == 2 ? 1.0f : nb[1]);
      int same = 1, zeroed = 1;
      for (int i = 0; i < MS; i++) {
        same &= same_bits(env, a.p[i], b.p[i], MCOUNTS[i]) && same_bits(env, a.m[i], b.m[i], MCOUNTS[i]) &&
                same_bits(env, a.v[i], b.v[i], MCOUNTS[i]);
        float *gz = vt_download(env, b.g[i], MCOUNTS[i]);
        for (uint32_t j = 0; j < MCOUNTS[i]; j++) zeroed &= gz[j] == 0.0f;
        free(gz);
        free(g[i]);
      }
      vt_expect(env, same, "%s, %s, step %u: params, m, v of %d slots bit-identical to the "
                "per-tensor path", family, modes[mode], t, MS);
      vt_expect(env, zeroed, "%s, %s, step %u: every gradient zeroed", family, modes[mode], t);
    }
    /* against the reference, every slot (the reference took the GPU's scale) */
    size_t total = 0;
    for (int i = 0; i < MS; i++) total += MCOUNTS[i];
    float *got[3], *want[3];
    for (int r = 0; r < 3; r++) got[r] = vt_zeros(total), want[r] = vt_zeros(total);
    for (int i = 0, at = 0; i < MS; at += MCOUNTS[i], i++) {
      vklm_buffer gb[3] = {b.p[i], b.m[i], b.v[i]};
      float *hb[3] = {p[i], m[i], v[i]};
      for (int r = 0; r < 3 && MCOUNTS[i]; r++) {
        float *x = vt_download(env, gb[r], MCOUNTS[i]);
        memcpy(got[r] + at, x, MCOUNTS[i] * 4);
        memcpy(want[r] + at, hb[r], MCOUNTS[i] * 4);
        free(x);
      }
    }
    const char *rn[3] = {"params", "m", "v"};
    for (int r = 0; r < 3; r++) {
      char what[160];
      snprintf(what, sizeof what, "%s, %s: %s of %d slots vs ref", family, modes[mode], rn[r], MS);
      vt_compare(env, what, got[r], want[r], total, 1e-6);
      free(got[r]);
      free(want[r]);
    }
  }
  vklm_cmd_destroy(ca);
  vklm_cmd_destroy(cb);
  for (int i = 0; i < MS; i++) free(p[i]), free(m[i]), free(v[i]);
}

/* 16-bit copies written by the multi-tensor AdamW (mixed precision): slots alternate fp16, bf16
 * and none (copies split over two arenas, odd counts among them); the updated params, m and v
 * must be bit-identical to the run without copies, and each copy equal to the reference
 * conversion of the updated params. Then skip_nonfinite: a NaN or infinite norm leaves every
 * buffer untouched, a finite one updates. */
static void test_multi_copies(vt_env *env, vklm_arena *small, const char *family) {
  float *p[MS], *m[MS], *v[MS], *g[MS];
  int wd[MS];
  for (int i = 0; i < MS; i++) {
    p[i] = vt_randf(MCOUNTS[i], 800 + i, -1, 1);
    m[i] = vt_randf(MCOUNTS[i], 820 + i, -0.1f, 0.1f);
    v[i] = vt_randf(MCOUNTS[i], 840 + i, 0, 0.01f);
    g[i] = vt_randf(MCOUNTS[i], 860 + i, -0.5f, 0.5f);
    wd[i] = i % 2 == 0;
  }
  mstate a = {0}, b = {0};
  mstate_make(env, small, &a, p, m, v);
  mstate_make(env, small, &b, p, m, v);
  vklm_optim_slot sa[MS], sb[MS];
  vklm_buffer h[MS];
  for (int i = 0; i < MS; i++) {
    sa[i] = (vklm_optim_slot){a.p[i], a.m[i], a.v[i], a.g[i], MCOUNTS[i], wd[i]};
    sb[i] = (vklm_optim_slot){b.p[i], b.m[i], b.v[i], b.g[i], MCOUNTS[i], wd[i]};
    h[i] = (vklm_buffer){0};
    if (MCOUNTS[i] && i % 3 != 2) {
      vt_ok(env, vklm_arena_alloc(i % 5 == 0 ? small : env->arena, ((uint64_t)MCOUNTS[i] + 1) / 2 * 4,
                                  &h[i]), "alloc h");
      sb[i].h = h[i];
      sb[i].h_fmt = i % 3 == 0 ? VKLM_OPTIM_F16 : VKLM_OPTIM_BF16;
    }
    if (!MCOUNTS[i]) continue;
    vt_ok(env, vklm_buffer_upload(env->ctx, a.g[i], 0, g[i], MCOUNTS[i] * 4), "upload g");
    vt_ok(env, vklm_buffer_upload(env->ctx, b.g[i], 0, g[i], MCOUNTS[i] * 4), "upload g");
  }
  vklm_adamw_step s;
  vklm_adamw_step_fill(&s, LR, B1, B2, EPS, WD, 1);
  vt_ok(env, vklm_buffer_upload(env->ctx, a.step, 0, &s, sizeof s), "upload step");
  vt_ok(env, vklm_buffer_upload(env->ctx, b.step, 0, &s, sizeof s), "upload step");
  float maxn = 0.5f;
  vt_begin(env);
  vt_ok(env, vklm_grad_norm_multi(env->cmd, a.norm, a.scratch, a.g, MCOUNTS, MS, maxn), "norm");
  vt_ok(env, vklm_grad_norm_multi(env->cmd, b.norm, b.scratch, b.g, MCOUNTS, MS, maxn), "norm");
  vt_ok(env, vklm_adamw_multi(env->cmd, sa, MS, a.scratch, a.step, a.norm, NULL), "adamw");
  vt_ok(env, vklm_adamw_multi_ex(env->cmd, sb, MS, b.scratch, b.step, b.norm, 1, NULL),
        "adamw with copies");
  vt_run(env);
  int same = 1, copies = 1;
  for (int i = 0; i < MS; i++) {
    same &= same_bits(env, a.p[i], b.p[i], MCOUNTS[i]) && same_bits(env, a.m[i], b.m[i], MCOUNTS[i]) &&
            same_bits(env, a.v[i], b.v[i], MCOUNTS[i]);
    if (!h[i].block) continue;
    uint32_t n = MCOUNTS[i], words = (n + 1) / 2;
    float *x = vt_download(env, b.p[i], n);
    uint32_t *want = calloc(words, 4), *got = calloc(words, 4);
    if (sb[i].h_fmt == VKLM_OPTIM_BF16) vklm_convert_f32_to_bf16_ref(want, x, n);
    else vklm_convert_f32_to_f16_ref(want, x, n);
    vt_ok(env, vklm_buffer_download(env->ctx, h[i], 0, got, (uint64_t)words * 4), "download h");
    uint32_t bad = 0;
    for (uint32_t j = 0; j < words; j++) bad += got[j] != want[j];
    if (bad) printf("  slot %d (%u elements, %s): %u of %u words differ\n", i, n,
                    sb[i].h_fmt == VKLM_OPTIM_BF16 ? "bf16" : "f16", bad, words);
    copies &= bad == 0;
    free(x), free(want), free(got);
  }
  vt_expect(env, same, "%s: with 16-bit copies, params, m, v bit-identical to the run without",
            family);
  vt_expect(env, copies, "%s: every fp16 / bf16 copy equals the reference conversion of the "
            "updated params", family);
  /* skipping: a non-finite norm writes nothing */
  float bad_norms[2][2] = {{NAN, NAN}, {INFINITY, 0.0f}};
  for (int k = 0; k < 3; k++) {
    float *before = vt_download(env, b.p[9], MCOUNTS[9]);
    uint32_t hw = (MCOUNTS[9] + 1) / 2, *hb = calloc(hw, 4), *ha = calloc(hw, 4);
    vt_ok(env, vklm_buffer_download(env->ctx, h[9], 0, hb, (uint64_t)hw * 4), "download h");
    float nv[2] = {1.0f, 1.0f};
    if (k < 2) memcpy(nv, bad_norms[k], sizeof nv);
    vt_ok(env, vklm_buffer_upload(env->ctx, b.norm, 0, nv, 8), "upload norm");
    vklm_adamw_step_fill(&s, LR, B1, B2, EPS, WD, 2);
    vt_ok(env, vklm_buffer_upload(env->ctx, b.step, 0, &s, sizeof s), "upload step");
    vt_begin(env);
    vt_ok(env, vklm_adamw_multi_ex(env->cmd, sb, MS, b.scratch, b.step, b.norm, 1, NULL), "adamw");
    vt_run(env);
    float *after = vt_download(env, b.p[9], MCOUNTS[9]);
    vt_ok(env, vklm_buffer_download(env->ctx, h[9], 0, ha, (uint64_t)hw * 4), "download h");
    int unchanged = !memcmp(before, after, MCOUNTS[9] * 4ull) && !memcmp(ha, hb, hw * 4ull);
    vt_expect(env, k < 2 ? unchanged : !unchanged, "%s: norm %g: the step is %s", family,
              (double)nv[0], k < 2 ? "skipped (params and copy unchanged)" : "applied");
    free(before), free(after), free(ha), free(hb);
  }
  /* loss scaling: gradients S times the true ones, 1/S in norm_out[2]: the true norm, the clip
   * scale from it, and scale / S as AdamW's multiplier (S = 2^20) */
  vklm_buffer n3 = vt_alloc(env, 16);
  const float S = 1048576.0f;
  for (int i = 0; i < MS; i++) {
    if (!MCOUNTS[i]) continue;
    float *gs = vt_copy(g[i], MCOUNTS[i]);
    for (uint32_t j = 0; j < MCOUNTS[i]; j++) gs[j] *= S;
    vt_ok(env, vklm_buffer_upload(env->ctx, b.g[i], 0, gs, MCOUNTS[i] * 4ull), "upload g");
    free(gs);
  }
  float ref[2], three[3] = {0, 0, 1.0f / S}, got[3];
  vklm_grad_norm_ref(ref, (const float *const *)g, MCOUNTS, MS, maxn);
  vt_ok(env, vklm_buffer_upload(env->ctx, n3, 0, three, 12), "upload 1/S");
  vt_begin(env);
  vt_ok(env, vklm_grad_norm_multi_ex(env->cmd, n3, b.scratch, b.g, MCOUNTS, MS, maxn, 1), "norm");
  vt_run(env);
  vt_ok(env, vklm_buffer_download(env->ctx, n3, 0, got, 12), "download");
  float want[2] = {ref[0], ref[1] / S}, gv[2] = {got[0], got[1]};
  char what[128];
  snprintf(what, sizeof what, "%s: unscaled norm %g and multiplier %g (S = 2^20)", family,
           (double)got[0], (double)got[1]);
  vt_compare(env, what, gv, want, 2, 1e-5);
  for (int i = 0; i < MS; i++) free(p[i]), free(m[i]), free(v[i]), free(g[i]);
}

/* vklm_grad_zero: adjacent buffers of one block become one fill; a buffer between them that is
 * not in the list breaks the run and keeps its contents; {0} entries are skipped. */
static void test_grad_zero(vt_env *env) {
  vklm_arena *ar;
  vt_ok(env, vklm_arena_create(env->ctx, 1 << 20, &ar), "arena");
  const uint32_t n[5] = {5, 64, 1, 333, 7};
  vklm_buffer b[7], keep;
  float *ones = vt_zeros(400);
  for (int k = 0; k < 400; k++) ones[k] = 1.0f;
  for (int k = 0; k < 5; k++) {
    vt_ok(env, vklm_arena_alloc(ar, n[k] * 4, &b[k]), "alloc");
    if (k == 2) vt_ok(env, vklm_arena_alloc(ar, 40, &keep), "alloc"); /* between 2 and 3 */
  }
  b[5] = (vklm_buffer){0};
  b[6] = b[1]; /* twice */
  for (int k = 0; k < 5; k++) vt_ok(env, vklm_buffer_upload(env->ctx, b[k], 0, ones, n[k] * 4), "up");
  vt_ok(env, vklm_buffer_upload(env->ctx, keep, 0, ones, 40), "up");
  uint32_t fills = 0;
  vt_begin(env);
  vt_ok(env, vklm_grad_zero(env->cmd, b, 7, &fills), "grad zero");
  vt_run(env);
  int zero = 1;
  for (int k = 0; k < 5; k++) {
    float *x = vt_download(env, b[k], n[k]);
    for (uint32_t j = 0; j < n[k]; j++) zero &= x[j] == 0.0f;
    free(x);
  }
  float *kx = vt_download(env, keep, 10);
  int kept = 1;
  for (int j = 0; j < 10; j++) kept &= kx[j] == 1.0f;
  vt_expect(env, zero && kept && fills == 2,
            "grad zero: 5 buffers (one listed twice, one {0}) zeroed in %u fills (want 2: a foreign "
            "buffer splits them), the foreign buffer kept", fills);
  free(kx);
  free(ones);
  vklm_arena_destroy(ar);
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
  test_grad_zero(&env);
  vklm_arena *small;
  vt_ok(&env, vklm_arena_create(env.ctx, 64 << 10, &small), "small arena");
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_GPU);
  test_multi(&env, small, "GPU kernels");
  test_multi_copies(&env, small, "GPU kernels");
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_CPU);
  test_multi(&env, small, "CPU kernels");
  test_multi_copies(&env, small, "CPU kernels");
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_AUTO);
  vklm_arena_destroy(small);
  return vt_finish(&env);
}

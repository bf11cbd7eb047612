/* The model-side pieces of data-parallel training (VKLM_TEST_GPU): vklm_model_set_grads replaces
 * the trainable gradients (a frozen tensor's are left alone); a model created with no_moments
 * holds no AdamW moments (its memory says so, vklm_model_update refuses with a message, the
 * moments read as zeros); and the ZeRO-1 step (engine/train/zero.c, here over a group of one,
 * whose shard is the whole vector) against the model's own AdamW update on the same gradients:
 * parameters, both moments and the gradient norm after two steps, with clipping active; and the
 * training pass in parts that lets data-parallel training reduce gradients during the backward:
 * each part's gradients bit-identical to the whole pass's, mapped and staged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "train/zero.h"

static vklm_model *tiny(vt_env *env, const vklm_model_options *o) {
  vklm_model_config cfg;
  vklm_model_config_preset("gpt2-tiny", &cfg);
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create_ex(env->ctx, &cfg, 2, 16, VKLM_OBJ_CAUSAL, o, &m), "model");
  vt_ok(env, vklm_model_init(m, 7), "init");
  return m;
}

static void batch(int32_t *in, int32_t *tg, int n, uint32_t V, int seed) {
  for (int i = 0; i < n; i++) {
    in[i] = (int32_t)((i * 7 + seed * 13) % (int)V);
    tg[i] = (int32_t)((i * 7 + 5 + seed) % (int)V);
  }
}

static void test_set_grads(vt_env *env) {
  vklm_model_options o = {.freeze = "wpe.weight"};
  vklm_model *m = tiny(env, &o);
  uint64_t n = vklm_model_num_params(m);
  int32_t in[32], tg[32];
  batch(in, tg, 32, vklm_model_get_config(m)->vocab_size, 1);
  float loss;
  vt_ok(env, vklm_model_forward_backward(m, in, tg, 1.0f, &loss), "forward_backward");
  float *g = malloc(n * 4), *back = malloc(n * 4), *want = malloc(n * 4);
  vt_ok(env, vklm_model_get_grads(m, g), "get_grads");
  for (uint64_t i = 0; i < n; i++) want[i] = g[i] = 2.0f * g[i] + 1.0f;
  vt_ok(env, vklm_model_set_grads(m, g), "set_grads");
  vt_ok(env, vklm_model_get_grads(m, back), "get_grads");
  const vklm_param_info *wpe = NULL;
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++)
    if (!strcmp(vklm_model_param(m, i)->name, "wpe.weight")) wpe = vklm_model_param(m, i);
  for (uint64_t i = wpe->offset; i < wpe->offset + wpe->count; i++) want[i] = 0; /* frozen */
  vt_expect(env, !memcmp(back, want, n * 4),
            "set_grads then get_grads: the trainable gradients replaced exactly, the frozen "
            "wpe.weight still reads zeros (%llu floats)", (unsigned long long)n);
  free(g);
  free(back);
  free(want);
  vklm_model_destroy(m);
}

static void test_no_moments(vt_env *env) {
  vklm_model_options with = {0}, without = {.no_moments = 1};
  vklm_model *a = tiny(env, &with), *b = tiny(env, &without);
  vklm_model_memory ma, mb;
  vklm_model_memory_get(a, &ma);
  vklm_model_memory_get(b, &mb);
  uint64_t n = vklm_model_num_params(a);
  vt_expect(env, ma.moments >= 2 * n * 4 && mb.moments < n * 4 && mb.grads == ma.grads,
            "no_moments: moment memory %.1f KiB instead of %.1f KiB, gradients kept (%.1f KiB)",
            mb.moments / 1024.0, ma.moments / 1024.0, mb.grads / 1024.0);
  vklm_optim_config oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f};
  vklm_status st = vklm_model_update(b, &oc, 1, NULL);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(b), "without AdamW moments"),
            "no_moments: update refused: %s", vklm_model_error(b));
  float *m = malloc(n * 4), *v = malloc(n * 4);
  vt_ok(env, vklm_model_get_moments(b, m, v), "get_moments");
  int zeros = 1;
  for (uint64_t i = 0; i < n; i++) zeros &= m[i] == 0 && v[i] == 0;
  vt_expect(env, zeros, "no_moments: the moments read as zeros");
  free(m);
  free(v);
  vklm_model_destroy(a);
  vklm_model_destroy(b);
}

static void test_zero_step(vt_env *env) {
  vklm_model_options with = {0}, without = {.no_moments = 1};
  vklm_model *a = tiny(env, &with), *b = tiny(env, &without);
  uint64_t n = vklm_model_num_params(a);
  uint32_t V = vklm_model_get_config(a)->vocab_size;
  vklm_zero *z = NULL;
  char err[512];
  float *g = malloc(n * 4), *pa = malloc(n * 4), *pb = malloc(n * 4);
  float *ma = malloc(n * 4), *va = malloc(n * 4), *mb = malloc(n * 4), *vb = malloc(n * 4);
  vt_ok(env, vklm_model_get_params(b, g), "params");
  vt_ok(env, vklm_zero_create(b, NULL, &z, err, sizeof err), "zero create");
  vt_ok(env, vklm_zero_load(z, g, NULL, NULL, err, sizeof err), "zero load");
  vklm_optim_config oc = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_clip = 0.5f};
  float na = 0, nb = 0;
  for (uint32_t step = 1; step <= 2; step++) {
    int32_t in[32], tg[32];
    batch(in, tg, 32, V, (int)step);
    float la, lb;
    /* both optimizers get the same gradients: a's (b's forward runs for its gradients' zeroing
     * and to check that b's parameters, which ZeRO-1 wrote, give a's loss) */
    vt_ok(env, vklm_model_forward_backward(a, in, tg, 1.0f, &la), "a forward_backward");
    vt_ok(env, vklm_model_forward_backward(b, in, tg, 1.0f, &lb), "b forward_backward");
    vt_expect(env, fabsf(la - lb) <= 1e-5f * fabsf(la), "step %u: the loss of ZeRO-1's parameters "
              "%.7f, the model's %.7f", step, lb, la);
    vt_ok(env, vklm_model_get_grads(a, g), "a grads");
    vt_ok(env, vklm_model_update(a, &oc, step, &na), "a update");
    vklm_status st = vklm_zero_step(z, g, &oc, step, &nb, err, sizeof err);
    vt_expect(env, st == VKLM_OK, "ZeRO-1 step %u: %s", step, st == VKLM_OK ? "ok" : err);
  }
  vt_expect(env, fabsf(na - nb) <= 1e-5f * na && na > 0.5f,
            "gradient norm: the model's %.6f, ZeRO-1's (shards' squares in double) %.6f; clip 0.5 "
            "active", na, nb);
  vt_ok(env, vklm_model_get_params(a, pa), "a params");
  vt_ok(env, vklm_model_get_params(b, pb), "b params");
  vt_ok(env, vklm_model_get_moments(a, ma, va), "a moments");
  vt_ok(env, vklm_zero_gather_moments(z, mb, vb, err, sizeof err), "zero moments");
  vt_compare(env, "ZeRO-1 vs the model's AdamW, parameters after 2 steps", pb, pa, n, 1e-4);
  vt_compare(env, "ZeRO-1 vs the model's AdamW, m", mb, ma, n, 1e-4);
  vt_compare(env, "ZeRO-1 vs the model's AdamW, v", vb, va, n, 1e-4);
  float *gz = malloc(n * 4);
  vt_ok(env, vklm_model_get_grads(b, gz), "b grads");
  int zero = 1;
  for (uint64_t i = 0; i < n; i++) zero &= gz[i] == 0;
  vt_expect(env, zero, "ZeRO-1 step zeroes the model's gradients");
  free(gz);
  vklm_zero_destroy(z);
  free(g), free(pa), free(pb), free(ma), free(va), free(mb), free(vb);
  vklm_model_destroy(a);
  vklm_model_destroy(b);
}

/* ---- the training pass in parts (vklm_model_forward_backward_parts) ---------------------- */
typedef struct parts_rec {
  const float *want;
  uint64_t prev;
  int calls, bad_order, mismatch, fail_at;
} parts_rec;

static vklm_status on_part(void *user, float *grads, uint64_t lo, uint64_t hi) {
  parts_rec *r = user;
  if (hi != r->prev || lo >= hi) r->bad_order++;
  if (memcmp(grads + lo, r->want + lo, (size_t)(hi - lo) * 4)) r->mismatch++;
  r->prev = lo;
  r->calls++;
  return r->calls == r->fail_at ? VKLM_ERROR_IO : VKLM_OK;
}

static vklm_model *layered(vt_env *env, vklm_context *ctx, const vklm_model_options *o) {
  vklm_model_config cfg;
  vklm_model_config_preset("gpt2-tiny", &cfg);
  cfg.n_layer = 5;
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create_ex(ctx, &cfg, 2, 16, VKLM_OBJ_CAUSAL, o, &m), "model");
  vt_ok(env, vklm_model_init(m, 11), "init");
  return m;
}

/* Two micro-batches: the reference accumulates both with forward_backward; the other runs the
 * second in parts. Every part's range must hold the reference's bits when handed over, the ranges
 * must come in decreasing order and cover [0, n), and the device must be left with the same
 * accumulated gradients. */
static void parts_case(vt_env *env, vklm_context *ctx, const char *label,
                       const vklm_model_options *o, int want_parts) {
  vklm_model *a = layered(env, ctx, o), *b = layered(env, ctx, o);
  uint64_t n = vklm_model_num_params(a);
  uint32_t V = vklm_model_get_config(a)->vocab_size;
  int32_t in[2][32], tg[2][32];
  batch(in[0], tg[0], 32, V, 1);
  batch(in[1], tg[1], 32, V, 2);
  float la, lb, *want = malloc(n * 4), *grads = malloc(n * 4), *back = malloc(n * 4);
  for (uint64_t i = 0; i < n; i++) grads[i] = NAN; /* every float must be written */
  vt_ok(env, vklm_model_forward_backward(a, in[0], tg[0], 0.5f, &la), "a mb 0");
  vt_ok(env, vklm_model_forward_backward(a, in[1], tg[1], 0.5f, &la), "a mb 1");
  vt_ok(env, vklm_model_get_grads(a, want), "a grads");
  vt_ok(env, vklm_model_forward_backward(b, in[0], tg[0], 0.5f, &lb), "b mb 0");
  parts_rec r = {want, n, 0, 0, 0, 0};
  vklm_overlap_stats ov;
  vt_ok(env, vklm_model_forward_backward_parts(b, in[1], tg[1], 0.5f, &lb, grads, on_part, &r, &ov),
        "b mb 1 in parts");
  vt_expect(env, r.calls == want_parts && ov.parts == (uint32_t)want_parts && r.bad_order == 0 &&
                     r.prev == 0,
            "%s: %d parts (want %d), ranges decreasing from n to 0 (%d out of order)", label,
            r.calls, want_parts, r.bad_order);
  vt_expect(env, r.mismatch == 0 && !memcmp(grads, want, n * 4) && la == lb,
            "%s: each part's gradients bit-identical to forward_backward's when handed over "
            "(%d differ), loss %.7f vs %.7f", label, r.mismatch, lb, la);
  vt_ok(env, vklm_model_get_grads(b, back), "b grads");
  vt_expect(env, !memcmp(back, want, n * 4), "%s: the device keeps the accumulated gradients",
            label);
  uint32_t d = 0, bar = 0;
  vklm_model_step_counts(b, &d, &bar);
  vt_expect(env, d > 0 && bar > 0, "%s: the parts' %u dispatches and %u barriers counted", label,
            d, bar);
  /* a failing ready() stops the calls; its status comes back; the model runs on */
  parts_rec f = {want, n, 0, 0, 0, 2};
  vklm_status st = vklm_model_forward_backward_parts(b, in[1], tg[1], 0.5f, &lb, grads, on_part,
                                                     &f, NULL);
  vt_expect(env, st == VKLM_ERROR_IO && f.calls == 2, "%s: ready() failing at part 2: status %s, "
            "%d calls", label, vklm_status_name(st), f.calls);
  vt_ok(env, vklm_model_forward_backward(b, in[0], tg[0], 0.5f, &lb), "b runs after the failure");
  free(want), free(grads), free(back);
  vklm_model_destroy(a);
  vklm_model_destroy(b);
}

static void test_parts(vt_env *env) {
  vklm_model_options all = {0}, top = {.train = "h.[2-4].*,lnf.*"};
  parts_case(env, env->ctx, "5 layers", &all, 5);
  parts_case(env, env->ctx, "layers 2-4 train", &top, 3);
  /* gradients the host cannot map: each part copies its own into host-visible memory */
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  cfg.force_staging = 1;
  vklm_context *ctx = NULL;
  char err[512];
  vt_ok(env, vklm_context_create(&cfg, &ctx, err, sizeof err), "staged context");
  if (ctx) parts_case(env, ctx, "staged (read-back copies)", &all, 5);
  vklm_context_destroy(ctx);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_dist_model");
  test_set_grads(&env);
  test_no_moments(&env);
  test_zero_step(&env);
  test_parts(&env);
  return vt_finish(&env);
}

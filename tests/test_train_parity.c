/* Gradient accumulation with masked targets against PyTorch (VKLM_TEST_GPU,
 * VKLM_TEST_NEEDS_STATES). scripts/reference_model.py's gpt2-causal-masked state holds one batch of
 * B=4 whose targets are partly ignored (-100), with very different counts in the two halves (~90%
 * kept in rows 0-1, 3 targets in rows 2-3), and PyTorch's gradient of the mean loss over ALL the
 * batch's target tokens. vklm runs the batch as 2 micro-batches of B/2 through the training
 * loop's own normalisation (vklm_train_accumulate: grad_scale = count_mb / count_step) and must
 * reproduce that gradient (norm-relative error <= 1e-3, per tensor and overall) and the loss
 * (sum loss_mb * count_mb / count, <= 1e-4 relative). The old scaling (grad_scale = 1 / micro-
 * batches) is run too and must miss the same tolerance by far, which shows the test can fail.
 * llama-mlm (B=2: micro-batches of one sequence; MLM's chosen positions differ per row) gets the
 * same comparison. Then edge cases of vklm_train_accumulate: a micro-batch without targets is
 * skipped (the result equals the other micro-batch alone), a step without any is an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"
#include "train/train.h"

#define OKM(m, call)                                                                             \
  vt_ok(env, (call) == VKLM_OK ? VKLM_OK                                                         \
                               : (printf("%s\n", vklm_model_error(m)), VKLM_ERROR_INVALID),      \
        #call)

/* Worst per-tensor and overall norm-relative error of got against want. */
static double grad_errors(vklm_model *m, const float *got, const float *want, uint64_t n,
                          const char **worst_name, double *overall, int print) {
  double worst = 0;
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++) {
    const vklm_param_info *p = vklm_model_param(m, i);
    double e = vt_rel_norm(got + p->offset, want + p->offset, p->count);
    if (print)
      printf("    grad %-28s n=%-7llu norm-rel err %.3e\n", p->name, (unsigned long long)p->count, e);
    if (!(e <= worst)) worst = e, *worst_name = p->name;
  }
  *overall = vt_rel_norm(got, want, n);
  return worst;
}

static void run_case(vt_env *env, const char *name, int must_differ) {
  char path[1024];
  vt_state s;
  if (!vt_state_path(name, path, sizeof path) || !vt_state_load(path, &s)) {
    vt_expect(env, 0, "%s: load the reference state", name);
    vt_state_free(&s);
    return;
  }
  uint32_t Bh = s.B / 2, T = s.T;
  size_t half = (size_t)Bh * T;
  vklm_model_config cfg = vt_state_config(&s);
  vklm_model *m = NULL;
  if (s.B % 2 || vklm_model_create(env->ctx, &cfg, Bh, T, s.obj ? VKLM_OBJ_MLM : VKLM_OBJ_CAUSAL,
                                   &m) != VKLM_OK) {
    vt_expect(env, 0, "%s: create the model at B/2 = %u (B = %u): %s", name, Bh, s.B,
              vklm_model_error(NULL));
    vt_state_free(&s);
    return;
  }
  int same = vt_state_table_matches(&s, m);
  vt_expect(env, same, "%s: parameter table equals the file's", name);
  if (!same) goto done;
  const int32_t *in[2] = {s.inputs, s.inputs + half}, *tg[2] = {s.targets, s.targets + half};
  uint64_t c0 = vklm_train_count_targets(tg[0], half), c1 = vklm_train_count_targets(tg[1], half);
  printf("%s: B=%u T=%u V=%u as 2 micro-batches of B=%u; target tokens %llu + %llu of %zu each\n",
         name, s.B, T, s.V, Bh, (unsigned long long)c0, (unsigned long long)c1, half);

  /* the training loop's normalisation */
  float *grads = malloc(s.nparams * sizeof *grads);
  float loss = 0;
  uint64_t count = 0;
  char err[512] = "";
  OKM(m, vklm_model_set_params(m, s.params));
  OKM(m, vklm_model_zero_grads(m));
  vklm_status st = vklm_train_accumulate(m, 2, in, tg, &loss, &count, err, sizeof err);
  vt_expect(env, st == VKLM_OK && count == c0 + c1, "%s: vklm_train_accumulate (%s), %llu targets",
            name, st ? err : "ok", (unsigned long long)count);
  OKM(m, vklm_model_get_grads(m, grads));
  const char *wn = "";
  double all, worst = grad_errors(m, grads, s.grads, s.nparams, &wn, &all, 1);
  double el = vt_rel(loss, s.loss);
  vt_expect(env, el <= 1e-4, "%s: step loss %.7f vs PyTorch's full-batch mean %.7f, rel %.3e "
            "(tol 1e-4)", name, loss, s.loss, el);
  vt_expect(env, worst <= 1e-3 && all <= 1e-3, "%s: accumulated gradient vs PyTorch's full batch: "
            "worst tensor %.3e (%s), all %.3e (tol 1e-3)", name, worst, wn, all);

  /* the old scaling: each micro-batch's mean loss weighted 1/2 */
  float l0 = 0, l1 = 0;
  OKM(m, vklm_model_zero_grads(m));
  OKM(m, vklm_model_forward_backward(m, in[0], tg[0], 0.5f, &l0));
  OKM(m, vklm_model_forward_backward(m, in[1], tg[1], 0.5f, &l1));
  OKM(m, vklm_model_get_grads(m, grads));
  const char *wn_old = "";
  double all_old, worst_old = grad_errors(m, grads, s.grads, s.nparams, &wn_old, &all_old, 0);
  double el_old = vt_rel(0.5 * (l0 + l1), s.loss);
  printf("  old 1/GA scaling: loss %.7f (rel %.3e), gradient worst tensor %.3e (%s), all %.3e\n",
         0.5 * (l0 + l1), el_old, worst_old, wn_old, all_old);
  if (must_differ)
    vt_expect(env, all_old > 1e-2 && worst_old > 1e-2, "%s: the old 1/GA scaling misses PyTorch's "
              "gradient by %.3e overall (> 1e-2: it would fail the 1e-3 tolerance)", name, all_old);
  free(grads);
done:
  vklm_model_destroy(m);
  vt_state_free(&s);
}

/* A micro-batch without targets is skipped; a step without any is refused. */
static void edge_cases(vt_env *env) {
  char path[1024];
  vt_state s;
  if (!vt_state_path("gpt2-causal-masked", path, sizeof path) || !vt_state_load(path, &s)) {
    vt_expect(env, 0, "edge cases: load the reference state");
    vt_state_free(&s);
    return;
  }
  uint32_t Bh = s.B / 2;
  size_t half = (size_t)Bh * s.T;
  vklm_model_config cfg = vt_state_config(&s);
  vklm_model *m = NULL;
  OKM(m, vklm_model_create(env->ctx, &cfg, Bh, s.T, VKLM_OBJ_CAUSAL, &m));
  int32_t *none = malloc(half * sizeof *none);
  for (size_t i = 0; i < half; i++) none[i] = VKLM_IGNORE_INDEX;
  float *g1 = malloc(s.nparams * 4), *g2 = malloc(s.nparams * 4);
  const int32_t *in[2] = {s.inputs, s.inputs + half}, *tg[2] = {s.targets, none};
  float la = 0, lb = 0;
  char err[512] = "";
  OKM(m, vklm_model_set_params(m, s.params));
  OKM(m, vklm_model_zero_grads(m));
  vklm_status st = vklm_train_accumulate(m, 2, in, tg, &la, NULL, err, sizeof err);
  OKM(m, vklm_model_get_grads(m, g1));
  OKM(m, vklm_model_zero_grads(m));
  OKM(m, vklm_model_forward_backward(m, in[0], tg[0], 1.0f, &lb));
  OKM(m, vklm_model_get_grads(m, g2));
  double e = vt_rel_norm(g1, g2, s.nparams);
  vt_expect(env, st == VKLM_OK && e <= 1e-6 && vt_rel(la, lb) <= 1e-6,
            "a micro-batch without targets is skipped: loss %.7f vs %.7f, gradient rel %.2e", la,
            lb, e);
  tg[0] = none;
  OKM(m, vklm_model_zero_grads(m));
  st = vklm_train_accumulate(m, 2, in, tg, &la, NULL, err, sizeof err);
  vt_expect(env, st != VKLM_OK && strstr(err, "no target tokens"), "a step without targets: %s",
            err);
  free(none);
  free(g1);
  free(g2);
  vklm_model_destroy(m);
  vt_state_free(&s);
}

/* vklm_train_step (the last micro-batch's pass and the update in one submission, what vklm train
 * runs) against vklm_train_accumulate + vklm_model_update: the same bits after three steps of two
 * micro-batches (the second without targets in step 2, so the update rides on the first), the
 * same losses and norms, and one submission per micro-batch with targets. */
static void step_in_one_submit(vt_env *env) {
  char path[1024];
  vt_state s;
  if (!vt_state_path("gpt2-causal-masked", path, sizeof path) || !vt_state_load(path, &s)) {
    vt_expect(env, 0, "one submit: load the reference state");
    vt_state_free(&s);
    return;
  }
  uint32_t Bh = s.B / 2;
  size_t half = (size_t)Bh * s.T;
  vklm_model_config cfg = vt_state_config(&s);
  vklm_model *a = NULL, *b = NULL;
  OKM(a, vklm_model_create(env->ctx, &cfg, Bh, s.T, VKLM_OBJ_CAUSAL, &a));
  OKM(b, vklm_model_create(env->ctx, &cfg, Bh, s.T, VKLM_OBJ_CAUSAL, &b));
  OKM(a, vklm_model_set_params(a, s.params));
  OKM(b, vklm_model_set_params(b, s.params));
  int32_t *none = malloc(half * sizeof *none);
  for (size_t i = 0; i < half; i++) none[i] = VKLM_IGNORE_INDEX;
  vklm_optim_config oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_clip = 0.5f};
  char err[512] = "";
  int same = 1;
  double subs = 0;
  for (uint32_t step = 1; step <= 3; step++) {
    const int32_t *in[2] = {s.inputs, s.inputs + half};
    const int32_t *tg[2] = {s.targets, step == 2 ? none : s.targets + half};
    float la = 0, lb = 0, na = 0, nb = 0;
    vt_ok(env, vklm_train_accumulate(a, 2, in, tg, &la, NULL, err, sizeof err), "accumulate");
    vt_ok(env, vklm_model_update(a, &oc, step, &na), "update");
    uint64_t s0 = vklm_context_submit_count(env->ctx);
    vt_ok(env, vklm_train_step(b, 2, in, tg, &oc, step, &lb, &nb, err, sizeof err), "train step");
    subs += (double)(vklm_context_submit_count(env->ctx) - s0);
    same &= la == lb && na == nb;
  }
  float *pa = malloc(s.nparams * 4), *pb = malloc(s.nparams * 4);
  OKM(a, vklm_model_get_params(a, pa));
  OKM(b, vklm_model_get_params(b, pb));
  vt_expect(env, same && !memcmp(pa, pb, s.nparams * 4),
            "vklm_train_step == accumulate + update: parameters, losses and norms bit-identical "
            "over 3 steps");
  vt_expect(env, subs == 5, "vklm_train_step: %.0f submissions for 3 steps of 2, 1, 2 micro-batches "
            "with targets (want 5: one per micro-batch, the update riding on the last)", subs);
  free(pa), free(pb), free(none);
  vklm_model_destroy(a);
  vklm_model_destroy(b);
  vt_state_free(&s);
}

/* The pipelined step (vklm_model_train_step_stage / _submit / _wait, what vklm train runs with one
 * process and one micro-batch): step k+1's batch staged while step k runs gives bit-identical
 * losses, norms and parameters to vklm_model_train_step one at a time; a read of the model
 * while a step runs waits for it without losing its results; misuse is refused. */
static void pipelined_steps(vt_env *env) {
  char path[1024];
  vt_state s;
  if (!vt_state_path("gpt2-causal-masked", path, sizeof path) || !vt_state_load(path, &s)) {
    vt_expect(env, 0, "pipelined: load the reference state");
    vt_state_free(&s);
    return;
  }
  size_t n = (size_t)s.B * s.T;
  vklm_model_config cfg = vt_state_config(&s);
  vklm_model *a = NULL, *b = NULL;
  OKM(a, vklm_model_create(env->ctx, &cfg, s.B, s.T, VKLM_OBJ_CAUSAL, &a));
  OKM(b, vklm_model_create(env->ctx, &cfg, s.B, s.T, VKLM_OBJ_CAUSAL, &b));
  OKM(a, vklm_model_set_params(a, s.params));
  OKM(b, vklm_model_set_params(b, s.params));
  vklm_optim_config oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_clip = 0.5f};
  enum { STEPS = 4 };
  int32_t *in = malloc((STEPS + 1) * n * sizeof *in), *tg = malloc((STEPS + 1) * n * sizeof *tg);
  float *pa = malloc(s.nparams * 4), *pb = malloc(s.nparams * 4);
  for (uint32_t k = 0; k <= STEPS; k++) /* a different batch per step: the rows rotated */
    for (size_t i = 0; i < n; i++) {
      in[k * n + i] = s.inputs[(i + k * s.T / 2) % n];
      tg[k * n + i] = s.targets[(i + k * s.T / 2) % n];
    }
  float la[STEPS + 1], lb[STEPS + 1], na[STEPS + 1], nb[STEPS + 1];
  for (uint32_t k = 1; k <= STEPS; k++)
    OKM(a, vklm_model_train_step(a, in + k * n, tg + k * n, 1.0f, &oc, k, &la[k], &na[k]));
  /* refusals before anything is staged or submitted */
  vt_expect(env, vklm_model_train_step_submit(b, &oc, 1) == VKLM_ERROR_INVALID,
            "pipelined: a submit with nothing staged is refused");
  vt_expect(env, vklm_model_train_step_wait(b, NULL, NULL) == VKLM_ERROR_INVALID,
            "pipelined: a wait with nothing submitted is refused");
  OKM(b, vklm_model_train_step_stage(b, in + n, tg + n, 1.0f));
  OKM(b, vklm_model_train_step_submit(b, &oc, 1));
  int same_flight = 1, refused = 1, bad_kept = 1;
  for (uint32_t k = 1; k <= STEPS; k++) {
    if (k == 2) { /* a bad batch staged while step 2 runs: refused, step 2 unharmed */
      int32_t keep = in[3 * n + 5];
      in[3 * n + 5] = (int32_t)cfg.vocab_size;
      bad_kept &= vklm_model_train_step_stage(b, in + 3 * n, tg + 3 * n, 1.0f) ==
                  VKLM_ERROR_INVALID;
      in[3 * n + 5] = keep;
    }
    if (k < STEPS) OKM(b, vklm_model_train_step_stage(b, in + (k + 1) * n, tg + (k + 1) * n, 1.0f));
    if (k == 3) { /* reading the parameters while step 3 runs waits for it ... */
      OKM(b, vklm_model_get_params(b, pb));
      /* ... and a second submit before step 3's results are taken is refused */
      refused &= vklm_model_train_step_submit(b, &oc, 4) == VKLM_ERROR_INVALID;
    }
    OKM(b, vklm_model_train_step_wait(b, &lb[k], &nb[k]));
    if (k < STEPS) OKM(b, vklm_model_train_step_submit(b, &oc, k + 1));
    same_flight &= la[k] == lb[k] && na[k] == nb[k];
  }
  OKM(a, vklm_model_get_params(a, pa));
  OKM(b, vklm_model_get_params(b, pb));
  vt_expect(env, same_flight && !memcmp(pa, pb, s.nparams * 4),
            "pipelined steps == one at a time: losses, norms and parameters bit-identical over "
            "%d steps", STEPS);
  vt_expect(env, refused, "pipelined: a submit before the last step's results are taken is refused");
  vt_expect(env, bad_kept, "pipelined: a bad token staged while a step runs is refused");
  vt_expect(env, vklm_model_train_step_wait(b, NULL, NULL) == VKLM_ERROR_INVALID,
            "pipelined: a second wait for the same step is refused");
  free(in), free(tg), free(pa), free(pb);
  vklm_model_destroy(a);
  vklm_model_destroy(b);
  vt_state_free(&s);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_train_parity");
  char probe[1024];
  if (!vt_state_path("gpt2-causal-masked", probe, sizeof probe)) {
    vt_finish(&env);
    return 1;
  }
  run_case(&env, "gpt2-causal-masked", 1);
  run_case(&env, "llama-mlm", 0);
  edge_cases(&env);
  step_in_one_submit(&env);
  pipelined_steps(&env);
  return vt_finish(&env);
}

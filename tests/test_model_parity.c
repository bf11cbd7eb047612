/* Model parity with PyTorch (VKLM_TEST_GPU, VKLM_TEST_NEEDS_STATES): for every state file that
 * scripts/reference_model.py wrote into $VKLM_STATE_DIR (gpt2-causal, gpt2-mlm, llama-causal,
 * llama-mlm), the vklm model built from the file's config and initial parameters must reproduce
 * the reference's logits (norm-relative error <= 1e-4) and mean loss (<= 1e-4 relative), the
 * gradient of every parameter tensor (norm-relative error <= 1e-3 per tensor, each printed by its
 * name from the parameter table), and the losses of 10 AdamW steps on the same batch
 * (<= 1e-4 relative). The file's tensor directory must equal vklm's table (names, shapes,
 * offsets, decay flags). Each case runs twice: as created, and with the vocabulary matrices (wte,
 * lm_head) forced into 3 row chunks, the last one shorter (vklm_model_options.max_tensor_bytes),
 * which must meet the same tolerances and match the first run (logits, loss, gradients to 1e-6;
 * the 10 step losses to 1e-5). The file format is
 * documented in scripts/reference_model.py and docs/formats.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"

/* What a run produced, to compare the split run with the unsplit one. */
typedef struct run_result {
  float *logits, loss, *grads, *step_losses;
} run_result;

/* split: force the vocabulary matrices into 3 row chunks. */
static void run_case(vt_env *env, const char *dir, const char *name0, int split,
                     run_result *res) {
  char path[1024], name[96];
  snprintf(name, sizeof name, "%s%s", name0, split ? " (vocabulary in 3 chunks)" : "");
  const char *base = name0;
  snprintf(path, sizeof path, "%s/%s.state", dir, base);
  vt_state s;
  if (!vt_state_load(path, &s)) {
    vt_expect(env, 0, "%s: load state file %s", name, path);
    vt_state_free(&s);
    return;
  }
  printf("%s: B=%u T=%u V=%u L=%u C=%u NH=%u NKV=%u F=%u tie=%u, %llu params\n", name, s.B, s.T,
         s.V, s.L, s.C, s.NH, s.NKV, s.F, s.tie, (unsigned long long)s.nparams);
  vklm_model_config cfg = vt_state_config(&s);
  vklm_model *m = NULL;
  /* V/3+1 rows per chunk: 3 chunks, the last one shorter */
  vklm_model_options opt = {0, split ? (uint64_t)(s.V / 3 + 1) * s.C * 4 : 0};
  vklm_status st = vklm_model_create_ex(env->ctx, &cfg, s.B, s.T,
                                        s.obj ? VKLM_OBJ_MLM : VKLM_OBJ_CAUSAL, &opt, &m);
  if (st != VKLM_OK) {
    vt_expect(env, 0, "%s: create: %s", name, vklm_model_error(NULL));
    vt_state_free(&s);
    return;
  }
#define OK(call) vt_ok(env, (call) == VKLM_OK ? VKLM_OK : (printf("%s\n", vklm_model_error(m)), VKLM_ERROR_INVALID), #call)
  /* the table */
  int same = vt_state_table_matches(&s, m);
  vt_expect(env, same, "%s: parameter table (%u tensors, %llu floats) equals the file's", name,
            s.ntensors, (unsigned long long)s.nparams);
  if (!same) goto done;

  /* forward */
  size_t BT = (size_t)s.B * s.T;
  OK(vklm_model_set_params(m, s.params));
  float loss = 0;
  OK(vklm_model_forward(m, s.inputs, s.targets, &loss));
  float *logits = malloc(BT * s.V * sizeof *logits);
  OK(vklm_model_get_logits(m, logits));
  double e = vt_rel_norm(logits, s.logits, BT * s.V);
  vt_expect(env, e <= 1e-4, "%s: logits (B,T,V) norm-relative error %.3e (tol 1e-4)", name, e);
  double el = vt_rel(loss, s.loss);
  vt_expect(env, el <= 1e-4, "%s: loss %.7f vs %.7f, rel error %.3e (tol 1e-4)", name, loss,
            s.loss, el);
  res->logits = logits;
  res->loss = loss;

  /* backward */
  float *grads = malloc(s.nparams * sizeof *grads);
  float loss2 = 0;
  OK(vklm_model_forward_backward(m, s.inputs, s.targets, 1.0f, &loss2));
  OK(vklm_model_get_grads(m, grads));
  vt_expect(env, vt_rel(loss2, s.loss) <= 1e-4, "%s: forward_backward loss %.7f (rel %.3e)", name,
            loss2, vt_rel(loss2, s.loss));
  double worst = 0;
  const char *worst_name = "";
  for (uint32_t i = 0; i < s.ntensors; i++) {
    const vklm_param_info *p = vklm_model_param(m, i);
    double eg = vt_rel_norm(grads + p->offset, s.grads + p->offset, p->count);
    printf("    grad %-28s n=%-7llu norm-rel err %.3e\n", p->name, (unsigned long long)p->count,
           eg);
    if (!(eg <= worst)) worst = eg, worst_name = p->name;
  }
  vt_expect(env, worst <= 1e-3, "%s: every parameter gradient, worst %.3e (%s) (tol 1e-3)", name,
            worst, worst_name);
  res->grads = grads;
  res->step_losses = calloc(s.nsteps ? s.nsteps : 1, sizeof *res->step_losses);

  /* 10 AdamW steps on the same batch */
  OK(vklm_model_zero_grads(m));
  OK(vklm_model_set_params(m, s.params));
  vklm_optim_config oc = {s.lr, s.beta1, s.beta2, s.eps, s.wd, s.clip};
  double worst_l = 0, worst_n = 0;
  for (uint32_t k = 0; k < s.nsteps; k++) {
    float lk = 0, nk = 0;
    OK(vklm_model_forward_backward(m, s.inputs, s.targets, 1.0f, &lk));
    OK(vklm_model_update(m, &oc, k + 1, &nk));
    double a = vt_rel(lk, s.step_losses[k]), b = vt_rel(nk, s.step_norms[k]);
    res->step_losses[k] = lk;
    printf("    step %2u loss %.6f (ref %.6f, rel %.2e) grad norm %.5f (ref %.5f, rel %.2e)\n",
           k + 1, lk, s.step_losses[k], a, nk, s.step_norms[k], b);
    worst_l = fmax(worst_l, isnan(a) ? INFINITY : a);
    worst_n = fmax(worst_n, isnan(b) ? INFINITY : b);
  }
  vt_expect(env, worst_l <= 1e-4, "%s: %u AdamW-step losses, worst rel error %.3e (tol 1e-4)",
            name, s.nsteps, worst_l);
  vt_expect(env, worst_n <= 1e-3, "%s: %u gradient norms, worst rel error %.3e (tol 1e-3)", name,
            s.nsteps, worst_n);
  if (split && res[-1].logits && res[-1].grads) { /* res[-1]: the unsplit run of this case */
    size_t nl = BT * s.V;
    double ed = vt_rel_norm(res->logits, res[-1].logits, nl),
           eg = vt_rel_norm(res->grads, res[-1].grads, s.nparams), es = 0;
    for (uint32_t k = 0; k < s.nsteps; k++)
      es = fmax(es, vt_rel(res->step_losses[k], res[-1].step_losses[k]));
    double eq = vt_rel(res->loss, res[-1].loss);
    /* the lm head's input gradient sums the chunks in another order (~1e-7); AdamW's
     * normalised steps let that grow a little over 10 steps */
    vt_expect(env, ed <= 1e-6 && eq <= 1e-6 && eg <= 1e-6 && es <= 1e-5,
              "%s == unsplit run: logits %.2e, loss %.2e, gradients %.2e (tol 1e-6), "
              "10-step losses %.2e (tol 1e-5)", name, ed, eq, eg, es);
  }
done:
  vklm_model_destroy(m);
  vt_state_free(&s);
#undef OK
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_model_parity");
  const char *dir = getenv("VKLM_STATE_DIR");
  if (!dir || !*dir) {
    fprintf(stderr, "test_model_parity: VKLM_STATE_DIR is not set (ctest's reference_states "
                    "fixture sets it)\n");
    vt_finish(&env);
    return 1;
  }
  const char *cases[] = {"gpt2-causal", "gpt2-mlm", "llama-causal", "llama-mlm"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_result r[2];
    memset(r, 0, sizeof r);
    run_case(&env, dir, cases[i], 0, &r[0]);
    run_case(&env, dir, cases[i], 1, &r[1]);
    for (int k = 0; k < 2; k++) free(r[k].logits), free(r[k].grads), free(r[k].step_losses);
  }
  return vt_finish(&env);
}

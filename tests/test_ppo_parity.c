/* The PPO update against PyTorch (VKLM_TEST_GPU, VKLM_TEST_NEEDS_STATES): for the reference
 * files ppo-gpt2.json and ppo-llama.json (scripts/reference_ppo.py), a fixed rollout batch of 6
 * rows with a policy and a separate value model built by vklm_align_model from the reference
 * weights:
 *   the rows laid out by vklm_align_row equal the reference's inputs, targets and mask;
 *   the policy's token log-probs and the value model's values equal the saved ones;
 *   vklm_ppo_advantages (on the GPU, from the batch uploaded with vklm_ppo_dev_upload):
 *        per-token rewards, whitened advantages and returns (k1), and the
 *        advantages and returns with k3 and reward whitening;
 *   vklm_ppo_minibatch on the first minibatch: the clipped policy and value losses and every
 *        gradient of both models (the value model's scaled by vf_coef);
 *   vklm_ppo_update: 4 epochs over the reference's permutations in minibatches of 4 and 2 rows
 *        (8 AdamW steps of each model): every minibatch's two losses, and each tensor's change
 *        of both models after the 4 epochs; some ratios were clipped (the clip is exercised);
 *   vklm_ppo_check refuses an empty prompt set, a reward model without a head or with another
 *        vocabulary, a reference of another architecture, a prompt that leaves no room. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "align/align.h"
#include "testutil.h"

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k); }
static double num(const cJSON *o, const char *k) { return get(o, k)->valuedouble; }

/* got (the model's flat vector) vs want (the full table's), by name over the model's tensors:
 * ||got - want|| / max(||want||, 1e-4 * the largest ||want||); with base (full-table values
 * before), the changes got - base vs want - base. Frozen tensors must equal zero (grads) or base. */
static void compare(vt_env *env, const char *what, vklm_model *m, const vklm_ckpt *ck,
                    const float *got, const float *want, const float *base, double tol) {
  double worst = 0, big = 0;
  const char *worst_name = "";
  int ntrain = 0, frozen_ok = 1;
  uint64_t n = ck->nparams;
  float *w = malloc(n * sizeof *w);
  for (uint64_t i = 0; i < n; i++) w[i] = base ? want[i] - base[i] : want[i];
  for (uint32_t j = 0; j < ck->ntensors; j++)
    big = fmax(big, vt_norm(w + ck->table[j].offset, ck->table[j].count));
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++) {
    const vklm_param_info *pi = vklm_model_param(m, i);
    const vklm_param_info *t = NULL;
    for (uint32_t j = 0; j < ck->ntensors; j++)
      if (!strcmp(ck->table[j].name, pi->name)) t = &ck->table[j];
    if (!t) continue;
    if (!vklm_model_param_trainable(m, i)) {
      for (uint64_t k = 0; k < pi->count; k++)
        frozen_ok &= got[pi->offset + k] == (base ? base[t->offset + k] : 0.0f);
      continue;
    }
    double d = 0;
    for (uint64_t k = 0; k < pi->count; k++) {
      double g = (double)got[pi->offset + k] - (base ? base[t->offset + k] : 0.0);
      d += (g - w[t->offset + k]) * (g - w[t->offset + k]);
    }
    double e = sqrt(d) / fmax(vt_norm(w + t->offset, t->count), 1e-4 * big);
    if (e > worst) worst = e, worst_name = pi->name;
    ntrain++;
  }
  vt_expect(env, worst < tol && frozen_ok && ntrain > 0,
            "%s: worst tensor norm-rel %.2e (%s) over %d trainable tensors (tolerance %.0e)%s",
            what, worst, worst_name, ntrain, tol, frozen_ok ? "" : "; a FROZEN tensor changed");
  free(w);
}

static void compare_list(vt_env *env, const char *what, const double *got, const cJSON *want,
                         double floor) {
  double worst = 0;
  char list[512] = "";
  for (int i = 0; i < cJSON_GetArraySize(want); i++) {
    double w = cJSON_GetArrayItem(want, i)->valuedouble;
    worst = fmax(worst, fabs(got[i] - w) / fmax(fabs(w), floor));
    snprintf(list + strlen(list), sizeof list - strlen(list), " %.5f/%.5f", got[i], w);
  }
  vt_expect(env, worst < 2e-4, "%s (vklm/torch):%s, worst rel %.2e", what, list, worst);
}

static void run_case(vt_env *env, const char *name) {
  cJSON *doc = vt_json_load(env, name);
  if (!doc) return;
  const cJSON *c = get(doc, "config"), *hj = get(doc, "hp"), *o = get(doc, "optim");
  vklm_ckpt pol = {0}, val = {0};
  vklm_model_config *m = &pol.st.model;
  m->arch = !strcmp(get(c, "arch")->valuestring, "gpt2") ? VKLM_ARCH_GPT2 : VKLM_ARCH_LLAMA;
  m->vocab_size = (uint32_t)num(c, "V"), m->max_seq = (uint32_t)num(c, "maxT");
  m->n_layer = (uint32_t)num(c, "L"), m->n_head = (uint32_t)num(c, "NH");
  m->n_kv_head = (uint32_t)num(c, "NKV"), m->n_embd = (uint32_t)num(c, "C");
  m->ffn_hidden = (uint32_t)num(c, "F"), m->tie_embeddings = (int)num(c, "tie");
  m->norm_eps = 1e-5f, m->rope_theta = 10000.0f, m->scalar_head = 1;
  vklm_model *full = NULL;
  vklm_model_options fo = {.frozen = 1};
  vt_ok(env, vklm_model_create_ex(env->ctx, m, 0, 0, VKLM_OBJ_CAUSAL, &fo, &full), "table model");
  pol.ntensors = vklm_model_param_count(full);
  pol.table = malloc(pol.ntensors * sizeof *pol.table);
  const cJSON *names = get(doc, "table");
  int same = cJSON_GetArraySize(names) == (int)pol.ntensors;
  for (uint32_t i = 0; i < pol.ntensors; i++) {
    pol.table[i] = *vklm_model_param(full, i);
    same = same && !strcmp(cJSON_GetArrayItem(names, (int)i)->valuestring, pol.table[i].name);
  }
  vklm_model_destroy(full);
  vt_expect(env, same, "%s: the reference's tensor table is vklm's", name);
  size_t n;
  pol.params = vt_json_floats(get(doc, "policy"), &n);
  pol.nparams = n;
  val = pol;
  val.params = vt_json_floats(get(doc, "value"), &n);
  vklm_optim_config oc = {.lr = (float)num(o, "lr"), .beta1 = (float)num(o, "beta1"),
                          .beta2 = (float)num(o, "beta2"), .eps = (float)num(o, "eps"),
                          .weight_decay = (float)num(o, "wd"), .grad_clip = (float)num(o, "clip")};
  vklm_ppo_hparams h;
  vklm_ppo_hparams_default(&h);
  h.beta = (float)num(hj, "beta"), h.gamma = (float)num(hj, "gamma"), h.lam = (float)num(hj, "lam");
  h.clip = (float)num(hj, "clip"), h.vclip = (float)num(hj, "vclip");
  h.vf_coef = (float)num(hj, "vf_coef"), h.epochs = (uint32_t)num(hj, "epochs");
  h.minibatch = (uint32_t)num(hj, "minibatch");
  uint32_t N = (uint32_t)num(doc, "N"), T = (uint32_t)num(doc, "T"), mb = h.minibatch;
  char what[128], err[512];

  /* the batch: rows from prompt + response, and the saved rollout figures */
  vklm_ppo_batch b;
  vt_ok(env, vklm_ppo_batch_alloc(&b, N, T), "batch");
  int rows_ok = 1;
  for (uint32_t r = 0; r < N; r++) {
    size_t np, nr;
    int32_t *p = vt_json_ints(cJSON_GetArrayItem(get(doc, "prompts"), (int)r), &np);
    int32_t *s = vt_json_ints(cJSON_GetArrayItem(get(doc, "responses"), (int)r), &nr);
    rows_ok &= vklm_align_row(p, (uint32_t)np, s, (uint32_t)nr, T, b.inputs + (size_t)r * T,
                              b.targets + (size_t)r * T, b.mask + (size_t)r * T, NULL) == VKLM_OK;
    free(p), free(s);
  }
  int32_t *win = vt_json_ints(get(doc, "inputs"), &n), *wtg = vt_json_ints(get(doc, "targets"), &n);
  float *wmask = vt_json_floats(get(doc, "mask"), &n);
  vt_expect(env, rows_ok && !memcmp(b.inputs, win, (size_t)N * T * 4) &&
                     !memcmp(b.targets, wtg, (size_t)N * T * 4) &&
                     !memcmp(b.mask, wmask, (size_t)N * T * 4),
            "%s: rollout rows (vklm_align_row) equal the reference's inputs, targets and mask", name);
  float *f;
  f = vt_json_floats(get(doc, "old_logp"), &n), memcpy(b.old_logp, f, n * 4), free(f);
  f = vt_json_floats(get(doc, "ref_logp"), &n), memcpy(b.ref_logp, f, n * 4), free(f);
  f = vt_json_floats(get(doc, "values"), &n), memcpy(b.values, f, n * 4), free(f);
  f = vt_json_floats(get(doc, "score"), &n), memcpy(b.score, f, n * 4), free(f);

  vklm_model_options vo = {.freeze = m->tie_embeddings ? NULL : "lm_head.weight"};
  vklm_model *pm = NULL, *vm = NULL;
  vt_ok(env, vklm_align_model(env->ctx, &pol, 0, mb, T, NULL, 0, &pm, err, sizeof err), "policy");
  vt_ok(env, vklm_align_model(env->ctx, &val, 1, mb, T, &vo, 0, &vm, err, sizeof err), "value");

  /* the models reproduce the saved old log-probs and values (first mb rows) */
  float *lp = malloc((size_t)mb * T * 4), *vv = malloc((size_t)mb * T * 4);
  vklm_model_io pio = {.inputs = b.inputs, .targets = b.targets, .token_logp = lp};
  vklm_model_io vio = {.inputs = b.inputs, .values = vv};
  vt_ok(env, vklm_model_run(pm, &pio), "policy run");
  vt_ok(env, vklm_model_run(vm, &vio), "value run");
  for (size_t i = 0; i < (size_t)mb * T; i++) vv[i] *= b.mask[i];
  snprintf(what, sizeof what, "%s: the policy's token log-probs vs the saved old log-probs", name);
  vt_compare(env, what, lp, b.old_logp, (size_t)mb * T, 1e-4);
  snprintf(what, sizeof what, "%s: the value model's values vs the saved values", name);
  vt_compare(env, what, vv, b.values, (size_t)mb * T, 1e-4);

  /* advantages, on the GPU from the device copy of the batch */
  vklm_ppo_dev *d = NULL;
  vt_ok(env, vklm_ppo_dev_create(env->ctx, N, T, h.epochs, mb, &d, err, sizeof err), "device batch");
  vt_ok(env, vklm_ppo_dev_upload(d, &b, err, sizeof err), "upload the batch");
  vt_ok(env, vklm_ppo_advantages(d, &h, &b, NULL, err, sizeof err), "advantages");
  float *wr = vt_json_floats(get(doc, "rewards"), &n), *wa = vt_json_floats(get(doc, "adv"), &n), *wt = vt_json_floats(get(doc, "ret"), &n);
  snprintf(what, sizeof what, "%s: per-token rewards (k1 penalty + score at the end)", name);
  vt_compare(env, what, b.rewards, wr, n, 1e-5);
  snprintf(what, sizeof what, "%s: GAE advantages, whitened", name);
  vt_compare(env, what, b.adv, wa, n, 1e-5);
  snprintf(what, sizeof what, "%s: returns", name);
  vt_compare(env, what, b.ret, wt, n, 1e-5);
  vklm_ppo_batch b3 = b;
  vklm_ppo_batch tmp;
  vt_ok(env, vklm_ppo_batch_alloc(&tmp, N, T), "batch");
  b3.rewards = tmp.rewards, b3.adv = tmp.adv, b3.ret = tmp.ret;
  vklm_ppo_hparams h3 = h;
  h3.kl = VKLM_PPO_KL_K3, h3.whiten_rewards = 1;
  vt_ok(env, vklm_ppo_advantages(d, &h3, &b3, NULL, err, sizeof err), "advantages k3");
  float *wa3 = vt_json_floats(get(doc, "adv_k3_whiten"), &n), *wt3 = vt_json_floats(get(doc, "ret_k3_whiten"), &n);
  snprintf(what, sizeof what, "%s: advantages with k3 and whitened rewards", name);
  vt_compare(env, what, b3.adv, wa3, n, 1e-5);
  snprintf(what, sizeof what, "%s: returns with k3 and whitened rewards", name);
  vt_compare(env, what, b3.ret, wt3, n, 1e-5);
  vklm_ppo_batch_free(&tmp);

  /* the first minibatch: losses and gradients */
  uint32_t *order = malloc((size_t)h.epochs * N * sizeof *order);
  for (uint32_t e = 0; e < h.epochs; e++)
    for (uint32_t q = 0; q < N; q++)
      order[(size_t)e * N + q] = (uint32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(get(doc, "orders"), (int)e), (int)q)->valuedouble;
  /* the k1 advantages again: the minibatch and the update use them */
  vt_ok(env, vklm_ppo_advantages(d, &h, NULL, NULL, err, sizeof err), "advantages");
  double pg, vf;
  vklm_ppo_stats s1;
  vt_ok(env, vklm_ppo_dev_begin(d, order, h.epochs * N, err, sizeof err), "begin");
  vt_ok(env, vklm_ppo_minibatch(pm, vm, &b, d, 0, mb, &h, 0, err, sizeof err), "minibatch");
  vt_ok(env, vklm_ppo_dev_stats(d, 1, &s1, &pg, &vf, err, sizeof err), "minibatch statistics");
  double wpg = num(get(doc, "first"), "pg"), wvf = num(get(doc, "first"), "vf");
  vt_expect(env, fabs(pg - wpg) <= 1e-5 * fmax(fabs(wpg), 0.1) && fabs(vf - wvf) <= 1e-5 * fmax(fabs(wvf), 0.1),
            "%s: first minibatch policy loss %.6f vs PyTorch %.6f, value loss %.6f vs %.6f", name,
            pg, wpg, vf, wvf);
  uint64_t npp = vklm_model_num_params(pm), nvp = vklm_model_num_params(vm);
  float *g = malloc(npp * 4 + 4), *gv = malloc(nvp * 4 + 4);
  vt_ok(env, vklm_model_get_grads(pm, g), "policy grads");
  vt_ok(env, vklm_model_get_grads(vm, gv), "value grads");
  float *wgp = vt_json_floats(get(doc, "policy_grads"), &n), *wgv = vt_json_floats(get(doc, "value_grads"), &n);
  snprintf(what, sizeof what, "%s: policy gradients of the clipped policy loss vs autograd", name);
  compare(env, what, pm, &pol, g, wgp, NULL, 1e-4);
  snprintf(what, sizeof what, "%s: value gradients of vf_coef x the clipped value loss vs autograd", name);
  compare(env, what, vm, &val, gv, wgv, NULL, 1e-4);
  vklm_model_destroy(pm), vklm_model_destroy(vm);

  /* the update: 4 epochs from fresh models */
  vt_ok(env, vklm_align_model(env->ctx, &pol, 0, mb, T, NULL, 0, &pm, err, sizeof err), "policy");
  vt_ok(env, vklm_align_model(env->ctx, &val, 1, mb, T, &vo, 0, &vm, err, sizeof err), "value");
  uint32_t nmb = (N + mb - 1) / mb, step = 1;
  double *pgh = calloc(h.epochs * nmb, sizeof *pgh), *vfh = calloc(h.epochs * nmb, sizeof *vfh);
  vklm_ppo_stats s;
  vt_ok(env, vklm_ppo_update(pm, vm, &b, d, &h, order, &oc, &oc, &step, pgh, vfh, &s, err, sizeof err),
        "update");
  vt_expect(env, s.updates == h.epochs * nmb && step == s.updates + 1,
            "%s: %u minibatch updates (%u epochs x %u minibatches)", name, s.updates, h.epochs, nmb);
  snprintf(what, sizeof what, "%s: policy loss of each of the %u minibatches", name, s.updates);
  compare_list(env, what, pgh, get(doc, "pg_hist"), 0.1);
  snprintf(what, sizeof what, "%s: value loss of each minibatch", name);
  compare_list(env, what, vfh, get(doc, "vf_hist"), 0.1);
  printf("  %s: clip fraction %.3f, value clip fraction %.3f, approx KL %.2e, mean ratio %.4f\n",
         name, s.clipfrac, s.vf_clipfrac, s.approx_kl, s.ratio);
  vt_expect(env, s.clipfrac > 0 && s.clipfrac < 1, "%s: some ratios left [1-clip, 1+clip] (clip "
            "fraction %.3f): the clipped branch is exercised", name, s.clipfrac);
  float *pa = malloc(npp * 4 + 4), *va = malloc(nvp * 4 + 4);
  vt_ok(env, vklm_model_get_params(pm, pa), "policy params");
  vt_ok(env, vklm_model_get_params(vm, va), "value params");
  float *wpa = vt_json_floats(get(doc, "policy_after"), &n), *wva = vt_json_floats(get(doc, "value_after"), &n);
  snprintf(what, sizeof what, "%s: policy parameter changes after %u epochs", name, h.epochs);
  compare(env, what, pm, &pol, pa, wpa, pol.params, 2e-3);
  snprintf(what, sizeof what, "%s: value parameter changes after %u epochs", name, h.epochs);
  compare(env, what, vm, &val, va, wva, val.params, 2e-3);

  vklm_model_destroy(pm), vklm_model_destroy(vm);
  vklm_ppo_dev_destroy(d);
  vklm_ppo_batch_free(&b);
  free(win), free(wtg), free(wmask), free(lp), free(vv), free(wr), free(wa), free(wt), free(wa3);
  free(wt3), free(order), free(g), free(gv), free(wgp), free(wgv), free(pgh), free(vfh), free(pa);
  free(va), free(wpa), free(wva), free(pol.table), free(pol.params), free(val.params);
  cJSON_Delete(doc);
}

/* The configuration checks (host only). */
static void refused(vt_env *env, const vklm_ckpt *pol, const vklm_ppo_options *o,
                    const vklm_pref_set *p, const char *what, const char *needle) {
  char err[512] = "";
  vklm_status st = vklm_ppo_check(pol, o, p, err, sizeof err);
  vt_expect(env, needle ? st != VKLM_OK && strstr(err, needle) != NULL : st == VKLM_OK,
            "vklm_ppo_check: %s %s (%s)", what, needle ? "refused" : "accepted", err);
}

static void checks(vt_env *env) {
  vklm_ckpt pol = {0}, rw = {0}, ref = {0};
  vt_ok(env, vklm_model_config_preset("gpt2-tiny", &pol.st.model), "preset");
  rw.st.model = pol.st.model, ref.st.model = pol.st.model;
  rw.st.model.scalar_head = 1;
  int32_t ids[4] = {1, 2, 3, 4};
  vklm_pref_item it = {.prompt_ids = ids, .np = 4, .line = 7};
  vklm_pref_set one = {.items = &it, .n = 1}, none = {0};
  vklm_ppo_options o;
  vklm_ppo_options_default(&o);
  o.T = 16, o.reward = &rw, o.ref = &ref;
  refused(env, &pol, &o, &one, "good input", NULL);
  refused(env, &pol, &o, &none, "an empty prompt set", "empty");
  rw.st.model.vocab_size++;
  refused(env, &pol, &o, &one, "a reward model with another vocabulary", "vocabulary");
  rw.st.model.vocab_size--, rw.st.model.scalar_head = 0;
  refused(env, &pol, &o, &one, "a reward model without a scalar head", "not a reward model");
  rw.st.model.scalar_head = 1, ref.st.model.n_layer++;
  refused(env, &pol, &o, &one, "a reference with another architecture", "architecture differs");
  ref.st.model.n_layer--, o.T = 4;
  refused(env, &pol, &o, &one, "a prompt that fills T", "line 7");
  o.T = 16, o.reward = NULL;
  refused(env, &pol, &o, &one, "no reward model", "no reward model");
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ppo_parity");
  checks(&env);
  run_case(&env, "ppo-gpt2");
  run_case(&env, "ppo-llama");
  return vt_finish(&env);
}

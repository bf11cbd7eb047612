/* Alignment losses against PyTorch (VKLM_TEST_GPU, VKLM_TEST_NEEDS_STATES): for the reference
 * files align-gpt2.json and align-llama.json (scripts/reference_align.py), with models built by
 * vklm_align_model from the reference weights:
 *   SFT: examples laid out by engine/train's example batches (inputs and targets equal the
 *        reference's), the mean loss over completion tokens, every gradient, 3 AdamW steps;
 *   reward: the ranking loss of K = 3 and K = 2 responses through the scalar head at each
 *        sequence's last token (vklm_reward_step), every gradient, 3 AdamW steps;
 *   DPO: reference and policy sequence log-probs over the response tokens, the sigmoid loss, IPO
 *        and hinge values, the policy's gradients, 3 AdamW steps; the reference's weights are
 *        unchanged and every trainable tensor of the policy changed. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "align/align.h"
#include "testutil.h"

typedef struct ref {
  cJSON *doc;
  vklm_ckpt ck;           /* the reference weights with the full table (score.* included) */
  vklm_optim_config oc;
} ref;

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

static int load(vt_env *env, const char *name, ref *r) {
  memset(r, 0, sizeof *r);
  if (!(r->doc = vt_json_load(env, name))) return 0;
  const cJSON *c = cJSON_GetObjectItem(r->doc, "config");
  vklm_model_config *m = &r->ck.st.model;
  m->arch = !strcmp(cJSON_GetObjectItem(c, "arch")->valuestring, "gpt2") ? VKLM_ARCH_GPT2
                                                                          : VKLM_ARCH_LLAMA;
  m->vocab_size = (uint32_t)num(c, "V"), m->max_seq = (uint32_t)num(c, "maxT");
  m->n_layer = (uint32_t)num(c, "L"), m->n_head = (uint32_t)num(c, "NH");
  m->n_kv_head = (uint32_t)num(c, "NKV"), m->n_embd = (uint32_t)num(c, "C");
  m->ffn_hidden = (uint32_t)num(c, "F"), m->tie_embeddings = (int)num(c, "tie");
  m->norm_eps = 1e-5f, m->rope_theta = 10000.0f, m->scalar_head = 1;
  /* the full table (with score.*) from a weights-only model of that config */
  vklm_model *full = NULL;
  vklm_model_options fo = {.frozen = 1};
  vt_ok(env, vklm_model_create_ex(env->ctx, m, 0, 0, VKLM_OBJ_CAUSAL, &fo, &full), "table model");
  r->ck.ntensors = vklm_model_param_count(full);
  r->ck.table = malloc(r->ck.ntensors * sizeof *r->ck.table);
  const cJSON *names = cJSON_GetObjectItem(r->doc, "table");
  int same = cJSON_GetArraySize(names) == (int)r->ck.ntensors;
  for (uint32_t i = 0; i < r->ck.ntensors; i++) {
    r->ck.table[i] = *vklm_model_param(full, i);
    same = same && !strcmp(cJSON_GetArrayItem(names, (int)i)->valuestring, r->ck.table[i].name);
  }
  vklm_model_destroy(full);
  vt_expect(env, same, "%s: the reference's tensor table is vklm's", name);
  size_t n;
  r->ck.params = vt_json_floats(cJSON_GetObjectItem(r->doc, "params"), &n);
  r->ck.nparams = n;
  const cJSON *o = cJSON_GetObjectItem(r->doc, "optim");
  r->oc = (vklm_optim_config){.lr = (float)num(o, "lr"), .beta1 = (float)num(o, "beta1"),
                              .beta2 = (float)num(o, "beta2"), .eps = (float)num(o, "eps"),
                              .weight_decay = (float)num(o, "wd"), .grad_clip = (float)num(o, "clip")};
  return same;
}

static void unload(ref *r) {
  cJSON_Delete(r->doc);
  free(r->ck.table);
  free(r->ck.params);
}

/* The model's gradients against the reference's (full-table) gradients, by name, over the
 * trainable tensors (frozen ones must be zero): ||got - want|| / max(||want||, 1e-4 * the
 * largest tensor's ||want||) — a tensor whose true gradient is zero (a reward bias under a
 * pairwise loss: the pair's terms cancel) is held to the others' scale, not to its own noise. */
static void compare_grads(vt_env *env, const char *what, vklm_model *m, const ref *r,
                          const float *want) {
  uint64_t n = vklm_model_num_params(m);
  float *g = malloc(n * sizeof *g + 4);
  vt_ok(env, vklm_model_get_grads(m, g), "get grads");
  double worst = 0, big = 0;
  const char *worst_name = "";
  int ntrain = 0, frozen_zero = 1;
  for (uint32_t j = 0; j < r->ck.ntensors; j++)
    big = fmax(big, vt_norm(want + r->ck.table[j].offset, r->ck.table[j].count));
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++) {
    const vklm_param_info *pi = vklm_model_param(m, i);
    if (!vklm_model_param_trainable(m, i)) {
      for (uint64_t k = 0; k < pi->count; k++) frozen_zero &= g[pi->offset + k] == 0.0f;
      continue;
    }
    for (uint32_t j = 0; j < r->ck.ntensors; j++)
      if (!strcmp(r->ck.table[j].name, pi->name)) {
        const float *w = want + r->ck.table[j].offset;
        double d = 0;
        for (uint64_t k = 0; k < pi->count; k++)
          d += ((double)g[pi->offset + k] - w[k]) * ((double)g[pi->offset + k] - w[k]);
        double e = sqrt(d) / fmax(vt_norm(w, pi->count), 1e-4 * big);
        if (e > worst) worst = e, worst_name = pi->name;
        ntrain++;
      }
  }
  vt_expect(env, worst < 1e-4 && frozen_zero && ntrain > 0,
            "%s: gradients vs PyTorch autograd: worst tensor norm-rel %.2e (%s) over %d "
            "trainable tensors", what, worst, worst_name, ntrain);
  free(g);
}

static void compare_steps(vt_env *env, const char *what, const double *got, const cJSON *want) {
  double worst = 0;
  char list[256] = "";
  for (int i = 0; i < cJSON_GetArraySize(want); i++) {
    double w = cJSON_GetArrayItem(want, i)->valuedouble;
    double e = fabs(got[i] - w) / fmax(fabs(w), 1e-6);
    worst = fmax(worst, e);
    snprintf(list + strlen(list), sizeof list - strlen(list), " %.5f/%.5f", got[i], w);
  }
  vt_expect(env, worst < 2e-4, "%s: 3 AdamW steps' losses vs PyTorch (vklm/torch):%s, worst "
            "rel %.2e", what, list, worst);
}

static void sft(vt_env *env, const char *name, ref *r) {
  const cJSON *s = cJSON_GetObjectItem(r->doc, "sft");
  uint32_t B = (uint32_t)num(s, "B"), T = (uint32_t)num(s, "T");
  const cJSON *ex = cJSON_GetObjectItem(s, "examples"), *tg = cJSON_GetObjectItem(s, "target");
  uint64_t off[8] = {0};
  int32_t ids[512];
  uint8_t tgt[512];
  for (uint32_t e = 0; e < B; e++) {
    size_t n;
    int32_t *v = vt_json_ints(cJSON_GetArrayItem(ex, (int)e), &n), *t = vt_json_ints(cJSON_GetArrayItem(tg, (int)e), &n);
    for (size_t j = 0; j < n; j++) ids[off[e] + j] = v[j], tgt[off[e] + j] = (uint8_t)t[j];
    off[e + 1] = off[e] + n;
    free(v), free(t);
  }
  vklm_tokens *tok = NULL;
  vt_ok(env, vklm_tokens_from_examples(ids, tgt, off, B, r->ck.st.model.vocab_size, &tok), "examples");
  vklm_batcher b;
  char err[512];
  vt_ok(env, vklm_batcher_init(&b, tok, B, T, err, sizeof err), "batcher");
  int32_t *in = malloc(B * T * 4), *tt = malloc(B * T * 4), buf[1];
  vt_ok(env, vklm_batcher_next(&b, r->ck.st.model.vocab_size, buf, in, tt, err, sizeof err), "batch");
  size_t n;
  int32_t *win = vt_json_ints(cJSON_GetObjectItem(s, "inputs"), &n), *wtg = vt_json_ints(cJSON_GetObjectItem(s, "targets"), &n);
  vt_expect(env, !memcmp(in, win, B * T * 4) && !memcmp(tt, wtg, B * T * 4),
            "%s sft: example batches (right-padded, prompt targets ignored) equal the reference's",
            name);
  vklm_model *m = NULL;
  vt_ok(env, vklm_align_model(env->ctx, &r->ck, 0, B, T, NULL, 0, &m, err, sizeof err), "model");
  float loss = 0;
  const int32_t *ip[1] = {in}, *tp[1] = {tt};
  vt_ok(env, vklm_train_accumulate(m, 1, ip, tp, &loss, NULL, err, sizeof err), "accumulate");
  double want = num(s, "loss");
  vt_expect(env, fabs(loss - want) / want < 1e-5, "%s sft: loss %.6f vs PyTorch %.6f", name, loss,
            want);
  float *wg = vt_json_floats(cJSON_GetObjectItem(s, "grads"), &n);
  char what[64];
  snprintf(what, sizeof what, "%s sft", name);
  compare_grads(env, what, m, r, wg);
  vklm_model_destroy(m);
  vt_ok(env, vklm_align_model(env->ctx, &r->ck, 0, B, T, NULL, 0, &m, err, sizeof err), "model");
  double steps[3];
  for (uint32_t k = 0; k < 3; k++) {
    vt_ok(env, vklm_train_accumulate(m, 1, ip, tp, &loss, NULL, err, sizeof err), "step");
    steps[k] = loss;
    vt_ok(env, vklm_model_update(m, &r->oc, k + 1, NULL), "update");
  }
  compare_steps(env, what, steps, cJSON_GetObjectItem(s, "step_losses"));
  vklm_model_destroy(m);
  vklm_tokens_destroy(tok);
  free(in), free(tt), free(win), free(wtg), free(wg);
}

static void reward(vt_env *env, const char *name, ref *r) {
  const cJSON *s = cJSON_GetObjectItem(r->doc, "reward");
  uint32_t B = (uint32_t)num(s, "B"), T = (uint32_t)num(s, "T");
  const cJSON *items = cJSON_GetObjectItem(s, "items");
  vklm_pref_set set = {.items = calloc(2, sizeof *set.items), .n = 2};
  for (int i = 0; i < 2; i++) {
    const cJSON *it = cJSON_GetArrayItem(items, i);
    vklm_pref_item *p = &set.items[i];
    size_t n;
    p->prompt_ids = vt_json_ints(cJSON_GetObjectItem(it, "prompt"), &n);
    p->np = (uint32_t)n;
    const cJSON *rs = cJSON_GetObjectItem(it, "responses");
    p->k = (uint32_t)cJSON_GetArraySize(rs);
    p->resp_ids = calloc(p->k, sizeof *p->resp_ids);
    p->nr = calloc(p->k, sizeof *p->nr);
    p->response = calloc(p->k, sizeof *p->response);
    for (uint32_t j = 0; j < p->k; j++) {
      p->resp_ids[j] = vt_json_ints(cJSON_GetArrayItem(rs, (int)j), &n);
      p->nr[j] = (uint32_t)n;
    }
    p->group = vt_json_ints(cJSON_GetObjectItem(it, "group"), &n);
  }
  char err[512], what[64];
  snprintf(what, sizeof what, "%s reward", name);
  vklm_model_options mo = {.freeze = r->ck.st.model.tie_embeddings ? NULL : "lm_head.weight"};
  vklm_model *m = NULL;
  vt_ok(env, vklm_align_model(env->ctx, &r->ck, 1, B, T, &mo, 0, &m, err, sizeof err), "model");
  uint64_t idx[2] = {0, 1};
  double loss;
  uint32_t pairs, correct;
  vt_ok(env, vklm_reward_step(m, &set, idx, 2, 0, 1, &loss, &pairs, &correct, err, sizeof err),
        "reward step");
  double want = num(s, "loss");
  vt_expect(env, fabs(loss - want) / want < 1e-5 && pairs == 4,
            "%s: ranking loss %.6f vs PyTorch %.6f over %u pairs", what, loss, want, pairs);
  size_t n;
  float *wg = vt_json_floats(cJSON_GetObjectItem(s, "grads"), &n);
  compare_grads(env, what, m, r, wg);
  vklm_model_destroy(m);
  vt_ok(env, vklm_align_model(env->ctx, &r->ck, 1, B, T, &mo, 0, &m, err, sizeof err), "model");
  double steps[3];
  for (uint32_t k = 0; k < 3; k++) {
    vt_ok(env, vklm_reward_step(m, &set, idx, 2, 0, 1, &steps[k], &pairs, &correct, err,
                                sizeof err), "step");
    vt_ok(env, vklm_model_update(m, &r->oc, k + 1, NULL), "update");
  }
  compare_steps(env, what, steps, cJSON_GetObjectItem(s, "step_losses"));
  vklm_model_destroy(m);
  vklm_pref_free(&set);
  free(wg);
}

static void dpo(vt_env *env, const char *name, ref *r) {
  const cJSON *s = cJSON_GetObjectItem(r->doc, "dpo");
  uint32_t B = (uint32_t)num(s, "B"), T = (uint32_t)num(s, "T");
  float beta = (float)num(s, "beta");
  const cJSON *pairs = cJSON_GetObjectItem(s, "pairs");
  int32_t *in = malloc(B * T * 4), *tg = malloc(B * T * 4);
  float *mask = malloc(B * T * 4);
  for (uint32_t row = 0; row < B; row++) {
    const cJSON *p = cJSON_GetArrayItem(pairs, (int)row / 2);
    size_t np, nr;
    int32_t *pr = vt_json_ints(cJSON_GetObjectItem(p, "prompt"), &np);
    int32_t *rs = vt_json_ints(cJSON_GetObjectItem(p, row % 2 ? "rejected" : "chosen"), &nr);
    vt_ok(env, vklm_align_row(pr, (uint32_t)np, rs, (uint32_t)nr, T, in + row * T, tg + row * T,
                              mask + row * T, NULL), "row");
    free(pr), free(rs);
  }
  char err[512], what[64];
  snprintf(what, sizeof what, "%s dpo", name);
  vklm_ckpt pol = r->ck;
  size_t n;
  pol.params = vt_json_floats(cJSON_GetObjectItem(s, "policy"), &n);
  vklm_model_options fo = {.frozen = 1};
  vklm_model *m = NULL, *rm = NULL;
  vt_ok(env, vklm_align_model(env->ctx, &pol, 0, B, T, NULL, 0, &m, err, sizeof err), "policy");
  vt_ok(env, vklm_align_model(env->ctx, &r->ck, 0, B, T, &fo, 0, &rm, err, sizeof err), "ref");
  float lp[8], lr[8];
  vklm_model_io io = {.inputs = in, .targets = tg, .mask = mask, .seq_logp = lp};
  vt_ok(env, vklm_model_run(m, &io), "policy logp");
  io.seq_logp = lr;
  vt_ok(env, vklm_model_run(rm, &io), "ref logp");
  float *wp = vt_json_floats(cJSON_GetObjectItem(s, "policy_logp"), &n), *wr = vt_json_floats(cJSON_GetObjectItem(s, "ref_logp"), &n);
  vt_compare(env, "dpo: policy sequence log-probs over the response tokens vs PyTorch", lp, wp, B, 1e-5);
  vt_compare(env, "dpo: reference sequence log-probs vs PyTorch", lr, wr, B, 1e-5);
  double ipo = 0, hinge = 0, dc, dr;
  for (uint32_t i = 0; i < B / 2; i++) {
    ipo += vklm_dpo_loss(VKLM_DPO_IPO, beta, lp[2 * i], lp[2 * i + 1], lr[2 * i], lr[2 * i + 1], &dc, &dr) / (B / 2);
    hinge += vklm_dpo_loss(VKLM_DPO_HINGE, beta, lp[2 * i], lp[2 * i + 1], lr[2 * i], lr[2 * i + 1], &dc, &dr) / (B / 2);
  }
  vt_expect(env, fabs(ipo - num(s, "ipo")) / num(s, "ipo") < 1e-4 &&
                     fabs(hinge - num(s, "hinge")) / num(s, "hinge") < 1e-4,
            "%s: IPO %.6f vs %.6f, hinge %.6f vs %.6f", what, ipo, num(s, "ipo"), hinge, num(s, "hinge"));
  vklm_dpo_stats st;
  vt_ok(env, vklm_dpo_step(m, rm, in, tg, mask, B / 2, beta, VKLM_DPO_SIGMOID, 1.0f / (B / 2), 1,
                           &st, err, sizeof err), "dpo step");
  double want = num(s, "loss");
  vt_expect(env, fabs(st.loss - want) / want < 1e-5, "%s: sigmoid loss %.6f vs PyTorch %.6f", what,
            st.loss, want);
  float *wg = vt_json_floats(cJSON_GetObjectItem(s, "grads"), &n);
  compare_grads(env, what, m, r, wg);
  vklm_model_destroy(m);
  vt_ok(env, vklm_align_model(env->ctx, &pol, 0, B, T, NULL, 0, &m, err, sizeof err), "policy");
  uint64_t np = vklm_model_num_params(m), nr = vklm_model_num_params(rm);
  float *p0 = malloc(np * 4), *p1 = malloc(np * 4), *r0 = malloc(nr * 4), *r1 = malloc(nr * 4);
  vt_ok(env, vklm_model_get_params(m, p0), "params");
  vt_ok(env, vklm_model_get_params(rm, r0), "ref params");
  double steps[3];
  for (uint32_t k = 0; k < 3; k++) {
    vt_ok(env, vklm_dpo_step(m, rm, in, tg, mask, B / 2, beta, VKLM_DPO_SIGMOID, 1.0f / (B / 2),
                             1, &st, err, sizeof err), "step");
    steps[k] = st.loss;
    vt_ok(env, vklm_model_update(m, &r->oc, k + 1, NULL), "update");
  }
  compare_steps(env, what, steps, cJSON_GetObjectItem(s, "step_losses"));
  vt_ok(env, vklm_model_get_params(m, p1), "params");
  vt_ok(env, vklm_model_get_params(rm, r1), "ref params");
  vt_expect(env, !memcmp(r0, r1, nr * 4), "%s: the reference model's weights are unchanged", what);
  int all_changed = 1;
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++) {
    const vklm_param_info *pi = vklm_model_param(m, i);
    int changed = 0;
    for (uint64_t k = 0; k < pi->count && !changed; k++) changed = p0[pi->offset + k] != p1[pi->offset + k];
    if (!changed) printf("  unchanged: %s\n", pi->name);
    all_changed &= changed;
  }
  vt_expect(env, all_changed, "%s: every trainable tensor of the policy changed", what);
  vklm_model_destroy(m);
  vklm_model_destroy(rm);
  free(in), free(tg), free(mask), free(pol.params), free(wp), free(wr), free(wg);
  free(p0), free(p1), free(r0), free(r1);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_align_parity");
  const char *cases[] = {"align-gpt2", "align-llama"};
  for (int i = 0; i < 2; i++) {
    ref r;
    if (load(&env, cases[i], &r)) {
      sft(&env, cases[i], &r);
      reward(&env, cases[i], &r);
      dpo(&env, cases[i], &r);
    }
    unload(&r);
  }
  return vt_finish(&env);
}

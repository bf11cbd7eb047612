/* Heads against PyTorch (VKLM_TEST_GPU, VKLM_TEST_NEEDS_STATES): for the reference states
 * gpt2-heads and llama-heads (scripts/reference_model.py: a model with a scalar head, right-
 * padded sequences of different lengths, a masked prompt), vklm_model_run's per-token log-probs,
 * per-sequence sums over the mask and scalar values equal PyTorch's, and the gradient of
 * sum_b coef_b seq_logp_b + sum value_w * values (vklm_model_backward with per-token weights
 * coef_b * mask) equals torch's autograd, with the whole model trainable and, through a freeze
 * pattern, with only the last layer, the final norm and the scalar head training; also with the
 * lm head computed in several row chunks. A logit scale (sampling temperature) gives the log-probs
 * and gradients of the model whose lm_head is scaled by it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"

#define OK(m, call)                                                                                \
  vt_ok(env, (call) == VKLM_OK ? VKLM_OK : (printf("  %s\n", vklm_model_error(m)), VKLM_ERROR_INVALID), #call)

typedef struct heads {
  float *mask, *coef, *value_w, *token_logp, *seq_logp, *values, L, *grads;
} heads;

static int read_f(FILE *f, float **p, size_t n) {
  *p = malloc(n * sizeof(float) + 4);
  return *p && fread(*p, sizeof(float), n, f) == n;
}

static int load_heads(const char *path, const vt_state *s, heads *h) {
  FILE *f = fopen(path, "rb");
  char magic[8];
  size_t BT = (size_t)s->B * s->T;
  int ok = f && fread(magic, 1, 8, f) == 8 && !memcmp(magic, "VKLMHEAD", 8) &&
           read_f(f, &h->mask, BT) && read_f(f, &h->coef, s->B) && read_f(f, &h->value_w, BT) &&
           read_f(f, &h->token_logp, BT) && read_f(f, &h->seq_logp, s->B) &&
           read_f(f, &h->values, BT) && fread(&h->L, 4, 1, f) == 1 &&
           read_f(f, &h->grads, s->nparams) && fgetc(f) == EOF;
  if (f) fclose(f);
  if (!ok) fprintf(stderr, "test_model_heads: %s is missing or malformed\n", path);
  return ok;
}

static void free_heads(heads *h) {
  free(h->mask), free(h->coef), free(h->value_w), free(h->token_logp), free(h->seq_logp);
  free(h->values), free(h->grads);
}

static void run_case(vt_env *env, const char *name, const char *train, uint32_t logits_rows) {
  char path[4096], hpath[4096];
  vt_state s;
  heads h;
  memset(&h, 0, sizeof h);
  if (!vt_state_path(name, path, sizeof path) || !vt_state_load(path, &s)) {
    vt_expect(env, 0, "%s: reference state", name);
    return;
  }
  snprintf(hpath, sizeof hpath, "%.*s.heads", (int)(strlen(path) - 6), path);
  if (!load_heads(hpath, &s, &h)) {
    vt_expect(env, 0, "%s: heads file", name);
    vt_state_free(&s);
    return;
  }
  vklm_model_config cfg = vt_state_config(&s);
  cfg.scalar_head = 1;
  uint32_t B = s.B, T = s.T, BT = B * T;
  vklm_model *m = NULL;
  vklm_model_options o = {.train = train, .logits_rows = logits_rows};
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &o, &m));
  vt_expect(env, vt_state_table_matches(&s, m), "%s: the table (with score.*) matches", name);
  OK(m, vklm_model_set_params(m, s.params));
  float *tok = malloc(BT * 4), *seq = malloc(B * 4), *val = malloc(BT * 4), *tw = malloc(BT * 4);
  float *g = malloc(s.nparams * 4);
  vklm_model_io io = {.inputs = s.inputs, .targets = s.targets, .mask = h.mask,
                      .token_logp = tok, .seq_logp = seq, .values = val};
  OK(m, vklm_model_run(m, &io));
  char what[200], tag[96];
  snprintf(tag, sizeof tag, "%s%s%s%s", name, train ? " train=" : "", train ? train : "",
           logits_rows ? " (lm head in row chunks)" : "");
  snprintf(what, sizeof what, "%s: per-token log-probs vs PyTorch", tag);
  vt_compare(env, what, tok, h.token_logp, BT, 1e-5);
  snprintf(what, sizeof what, "%s: per-sequence log-probs over the mask vs PyTorch", tag);
  vt_compare(env, what, seq, h.seq_logp, B, 1e-5);
  snprintf(what, sizeof what, "%s: scalar head values vs PyTorch", tag);
  vt_compare(env, what, val, h.values, BT, 5e-5);
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t t = 0; t < T; t++) tw[b * T + t] = h.coef[b] * h.mask[b * T + t];
  OK(m, vklm_model_backward(m, tw, h.value_w));
  OK(m, vklm_model_get_grads(m, g));
  /* frozen tensors: zero here, and PyTorch's gradient is compared on the trainable ones only */
  double worst = 0;
  int frozen_zero = 1, ntrain = 0;
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++) {
    const vklm_param_info *pi = vklm_model_param(m, i);
    if (!vklm_model_param_trainable(m, i)) {
      for (uint64_t k = 0; k < pi->count; k++) frozen_zero &= g[pi->offset + k] == 0.0f;
      continue;
    }
    ntrain++;
    double e = vt_rel_norm(g + pi->offset, h.grads + pi->offset, pi->count);
    if (e > worst) worst = e;
  }
  vt_expect(env, worst < 1e-4 && frozen_zero,
            "%s: gradient of sum coef*seq_logp + sum value_w*values vs PyTorch autograd: worst "
            "tensor norm-rel %.2e over %d trainable tensors (frozen ones zero)", tag, worst,
            ntrain);
  free(tok), free(seq), free(val), free(tw), free(g);
  vklm_model_destroy(m);
  free_heads(&h);
  vt_state_free(&s);
}

/* The logit scale (temperature): with scale s, an untied model's log-probs are those of the same
 * model whose lm_head is multiplied by s (s * h W^T = h (sW)^T), and its gradients equal that
 * model's, the lm_head's multiplied by s (the chain rule through W' = sW). */
/* One model of the state's config with logit scale s and params p: its per-token log-probs and
 * the gradient of sum tw * logp (the model is destroyed before the next is made). */
static void scaled_run(vt_env *env, const vt_state *st, float s, uint32_t rows, const float *p,
                       const float *tw, float *logp, float *g) {
  vklm_model_config cfg = vt_state_config(st);
  vklm_model *m = NULL;
  vklm_model_options o = {.logit_scale = s, .logits_rows = rows};
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, st->B, st->T, VKLM_OBJ_CAUSAL, &o, &m));
  OK(m, vklm_model_set_params(m, p));
  vklm_model_io io = {.inputs = st->inputs, .targets = st->targets, .token_logp = logp};
  OK(m, vklm_model_run(m, &io));
  OK(m, vklm_model_backward(m, tw, NULL));
  OK(m, vklm_model_get_grads(m, g));
  vklm_model_destroy(m);
}

/* The logit scale (temperature): with scale s, an untied model's log-probs are those of the same
 * model whose lm_head is multiplied by s (s * h W^T = h (sW)^T), and its gradients equal that
 * model's, the lm_head's multiplied by s (the chain rule through W' = sW). */
static void logit_scale_case(vt_env *env, const char *name, float s, uint32_t rows) {
  char path[4096];
  vt_state st;
  if (!vt_state_path(name, path, sizeof path) || !vt_state_load(path, &st)) {
    vt_expect(env, 0, "%s: reference state", name);
    return;
  }
  vklm_model_config cfg = vt_state_config(&st);
  uint32_t BT = st.B * st.T;
  uint64_t head_off = 0, head_n = 0;
  uint32_t nt = 0;
  vklm_param_info *tab = NULL;
  { /* the table, from a weights-only model */
    vklm_model *t = NULL;
    vklm_model_options fo = {.frozen = 1};
    OK(NULL, vklm_model_create_ex(env->ctx, &cfg, 0, 0, VKLM_OBJ_CAUSAL, &fo, &t));
    nt = vklm_model_param_count(t);
    tab = malloc(nt * sizeof *tab);
    for (uint32_t i = 0; i < nt; i++) {
      tab[i] = *vklm_model_param(t, i);
      if (!strcmp(tab[i].name, "lm_head.weight")) head_off = tab[i].offset, head_n = tab[i].count;
    }
    vklm_model_destroy(t);
  }
  vt_expect(env, head_n > 0, "%s: an untied lm_head", name);
  float *pb = vt_copy(st.params, st.nparams), *tw = malloc(BT * 4);
  for (uint64_t k = 0; k < head_n; k++) pb[head_off + k] *= s;
  for (uint32_t i = 0; i < BT; i++) tw[i] = 0.01f * (float)((i * 7) % 5) - 0.02f;
  float *la = malloc(BT * 4), *lb = malloc(BT * 4), *lc = malloc(BT * 4);
  float *ga = malloc(st.nparams * 4), *gb = malloc(st.nparams * 4), *gc = malloc(st.nparams * 4);
  scaled_run(env, &st, s, rows, st.params, tw, la, ga);
  scaled_run(env, &st, 1.0f, rows, pb, tw, lb, gb);
  scaled_run(env, &st, 1.0f, rows, st.params, tw, lc, gc);
  for (uint64_t k = 0; k < head_n; k++) gb[head_off + k] *= s;
  char what[160];
  snprintf(what, sizeof what, "%s: log-probs with logit scale %g (rows %u) = lm_head scaled by it",
           name, s, rows);
  vt_compare(env, what, la, lb, BT, 1e-5);
  double worst = 0;
  const char *wn = "";
  for (uint32_t i = 0; i < nt; i++) {
    double e = vt_rel_norm(ga + tab[i].offset, gb + tab[i].offset, tab[i].count);
    if (e > worst) worst = e, wn = tab[i].name;
  }
  vt_expect(env, worst < 1e-5, "%s: gradients with logit scale %g = the scaled model's (lm_head's "
            "times %g): worst tensor norm-rel %.2e (%s)", name, s, s, worst, wn);
  double diff = 0;
  for (uint32_t i = 0; i < BT; i++) diff = fmax(diff, fabs(lc[i] - la[i]));
  vt_expect(env, diff > 1e-3, "%s: the scale changes the log-probs (max difference %.3g)", name,
            diff);
  free(la), free(lb), free(lc), free(tw), free(ga), free(gb), free(gc), free(pb), free(tab);
  vt_state_free(&st);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_model_heads");
  run_case(&env, "gpt2-heads", NULL, 0);
  run_case(&env, "llama-heads", NULL, 0);
  run_case(&env, "gpt2-heads", "h.1.*,lnf.*,score.*", 0);
  run_case(&env, "llama-heads", "h.1.*,lnf.*,score.*", 0);
  run_case(&env, "gpt2-heads", NULL, 64);
  logit_scale_case(&env, "llama-heads", 1.0f / 0.7f, 0);
  logit_scale_case(&env, "llama-heads", 0.5f, 16);
  return vt_finish(&env);
}

/* RLHF with PPO: the loop. Each iteration samples responses to a batch of prompts from the policy
 * (vklm_rollout: a generation session borrowing the policy's device weights), scores them with
 * the frozen reward model, takes the policy's, the frozen reference's and the value model's
 * per-token figures in forward passes, computes advantages (ppo_loss.c) and runs the PPO update;
 * then adapts the KL coefficient and logs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "align/align_internal.h"
#include "io/file.h"
#include "ops/ops.h"

void vklm_ppo_options_default(vklm_ppo_options *o) {
  memset(o, 0, sizeof *o);
  vklm_ppo_hparams_default(&o->hp);
  o->T = 64;
  o->prompts = 8;
  o->k = 1;
  o->iters = 20;
  o->max_tokens = 24;
  o->temp = 1.0f;
  o->eos = -1;
  o->horizon = 10000.0f;
  o->lr = 1e-5f;
  o->value_lr = 1e-5f;
  o->grad_clip = 1.0f;
  o->seed = 1337;
  o->out_dir = "out-ppo";
  o->progress = 1;
}

static int same_arch(const vklm_model_config *a, const vklm_model_config *b) {
  return a->arch == b->arch && a->vocab_size == b->vocab_size && a->max_seq == b->max_seq &&
         a->n_layer == b->n_layer && a->n_head == b->n_head && a->n_kv_head == b->n_kv_head &&
         a->n_embd == b->n_embd && a->ffn_hidden == b->ffn_hidden &&
         a->tie_embeddings == b->tie_embeddings && a->norm_eps == b->norm_eps &&
         (a->arch != VKLM_ARCH_LLAMA || a->rope_theta == b->rope_theta);
}

vklm_status vklm_ppo_check(const vklm_ckpt *init, const vklm_ppo_options *o,
                           const vklm_pref_set *prompts, char *err, size_t errlen) {
  const vklm_model_config *p = &init->st.model;
  if (!prompts || prompts->n == 0) {
    snprintf(err, errlen, "the prompt set is empty: PPO needs prompts to answer");
    return VKLM_ERROR_INVALID;
  }
  if (!o->reward) {
    snprintf(err, errlen, "no reward model (train one with `vklm reward train`)");
    return VKLM_ERROR_INVALID;
  }
  const vklm_model_config *r = &o->reward->st.model;
  if (r->vocab_size != p->vocab_size) {
    snprintf(err, errlen, "the reward model's vocabulary (%u tokens) differs from the policy's "
             "(%u): it cannot read the policy's responses", r->vocab_size, p->vocab_size);
    return VKLM_ERROR_INVALID;
  }
  if (!r->scalar_head) {
    snprintf(err, errlen, "the reward model has no scalar head: not a reward model (train one "
             "with `vklm reward train`)");
    return VKLM_ERROR_INVALID;
  }
  if (o->value && o->value->st.model.vocab_size != p->vocab_size) {
    snprintf(err, errlen, "the value model's vocabulary (%u tokens) differs from the policy's (%u)",
             o->value->st.model.vocab_size, p->vocab_size);
    return VKLM_ERROR_INVALID;
  }
  if (o->ref && !same_arch(&o->ref->st.model, p)) {
    const vklm_model_config *q = &o->ref->st.model;
    snprintf(err, errlen, "the reference model's architecture differs from the policy's "
             "(%s L=%u NH=%u NKV=%u C=%u F=%u V=%u maxT=%u vs %s L=%u NH=%u NKV=%u C=%u F=%u V=%u "
             "maxT=%u): the reference must be the policy's starting point",
             q->arch == VKLM_ARCH_LLAMA ? "llama" : "gpt2", q->n_layer, q->n_head, q->n_kv_head,
             q->n_embd, q->ffn_hidden, q->vocab_size, q->max_seq,
             p->arch == VKLM_ARCH_LLAMA ? "llama" : "gpt2", p->n_layer, p->n_head, p->n_kv_head,
             p->n_embd, p->ffn_hidden, p->vocab_size, p->max_seq);
    return VKLM_ERROR_INVALID;
  }
  const vklm_ckpt *models[3] = {init, o->reward, o->value};
  for (int i = 0; i < 3; i++)
    if (models[i] && o->T > models[i]->st.model.max_seq) {
      snprintf(err, errlen, "T=%u is longer than the %s model's context (%u)", o->T,
               i == 0 ? "policy" : i == 1 ? "reward" : "value", models[i]->st.model.max_seq);
      return VKLM_ERROR_INVALID;
    }
  for (uint64_t i = 0; i < prompts->n; i++) {
    const vklm_pref_item *it = &prompts->items[i];
    if (it->np == 0 || it->np + 1 > o->T) {
      snprintf(err, errlen, "line %u: the prompt (%u tokens) leaves no room for a response in "
               "T=%u", it->line, it->np, o->T);
      return VKLM_ERROR_INVALID;
    }
  }
  if (o->prompts == 0 || o->k == 0 || o->max_tokens == 0 || o->hp.epochs == 0 ||
      o->hp.minibatch == 0) {
    snprintf(err, errlen, "prompts per batch, responses per prompt, max tokens, epochs and the "
             "minibatch must be at least 1");
    return VKLM_ERROR_INVALID;
  }
  return VKLM_OK;
}

/* Rows of the rollout into b, and the reward model's inputs (the whole sequence) into rin/last;
 * ended[n]: the response stopped at eos. */
static void layout(const vklm_pref_set *s, uint32_t k, vklm_ppo_batch *b, int32_t *rin,
                   uint32_t *last, uint8_t *ended, int32_t eos, double *resp_tokens) {
  uint32_t T = b->T;
  *resp_tokens = 0;
  for (uint64_t i = 0; i < s->n; i++)
    for (uint32_t j = 0; j < k; j++) {
      const vklm_pref_item *it = &s->items[i];
      size_t n = i * k + j;
      /* fits by construction: np + max_tokens <= T */
      vklm_align_row(it->prompt_ids, it->np, it->resp_ids[j], it->nr[j], T, b->inputs + n * T,
                     b->targets + n * T, b->mask + n * T, NULL);
      vklm_align_row(it->prompt_ids, it->np, it->resp_ids[j], it->nr[j], T, rin + n * T, NULL,
                     NULL, &last[n]);
      ended[n] = it->nr[j] > 0 && eos >= 0 && it->resp_ids[j][it->nr[j] - 1] == eos;
      *resp_tokens += it->nr[j];
    }
}

/* Old and reference log-probs, values and the reward model's values of every row into the device
 * batch, B rows per pass: each model's per-row results are copied on the device (no host copy);
 * then the log-probs are turned from the models' -logp into logp, and each row's score is found
 * at last[r] (the whole sequence's final token) with the no-EOS penalty as its bonus. */
static vklm_status collect(vklm_model *pol, vklm_model *ref, vklm_model *rm, vklm_model *val,
                           const vklm_ppo_batch *b, vklm_ppo_dev *d, const int32_t *rin,
                           const uint32_t *last, const uint8_t *ended, float penalty, char *err,
                           size_t errlen) {
  uint32_t B = vklm_model_batch(pol), T = b->T;
  size_t bt = (size_t)B * T;
  int32_t *in = malloc(bt * sizeof *in), *tg = malloc(bt * sizeof *tg);
  int32_t *ri = malloc(bt * sizeof *ri);
  uint32_t *at_last = malloc((size_t)b->N * sizeof *at_last);
  float *bonus = malloc((size_t)b->N * sizeof *bonus);
  vklm_status st = in && tg && ri && at_last && bonus ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st != VKLM_OK) snprintf(err, errlen, "out of host memory");
  vklm_model_rows pr, rr, vr, sr;
  vklm_model_rows_get(pol, &pr), vklm_model_rows_get(ref, &rr);
  vklm_model_rows_get(val, &vr), vklm_model_rows_get(rm, &sr);
  for (uint32_t at = 0; st == VKLM_OK && at < b->N; at += B) {
    uint32_t n = b->N - at < B ? b->N - at : B;
    for (uint32_t r = 0; r < B; r++) {
      size_t dd = (size_t)r * T, s = (size_t)(at + r) * T;
      if (r < n) {
        memcpy(in + dd, b->inputs + s, T * sizeof *in);
        memcpy(tg + dd, b->targets + s, T * sizeof *tg);
        memcpy(ri + dd, rin + s, T * sizeof *ri);
      } else {
        for (uint32_t t = 0; t < T; t++) in[dd + t] = ri[dd + t] = 0, tg[dd + t] = VKLM_IGNORE_INDEX;
      }
    }
    vklm_model_io pio = {.inputs = in, .targets = tg}, rio = {.inputs = in, .targets = tg};
    vklm_model_io vio = {.inputs = in}, sio = {.inputs = ri};
    const char *what = "policy";
    vklm_model *m = pol;
    if ((st = vklm_model_run(pol, &pio)) == VKLM_OK &&
        (what = "reference", m = ref, st = vklm_model_run(ref, &rio)) == VKLM_OK &&
        (what = "value", m = val, st = vklm_model_run(val, &vio)) == VKLM_OK)
      what = "reward", m = rm, st = vklm_model_run(rm, &sio);
    if (st != VKLM_OK) {
      snprintf(err, errlen, "%s forward: %s", what, vklm_model_error(m));
      break;
    }
    uint64_t off = (uint64_t)at * T * 4, bytes = (uint64_t)n * T * 4;
    vklm_cmd *c = d->cmd;
    if ((st = vklm_cmd_begin(c)) != VKLM_OK ||
        (st = vklm_cmd_copy_at(c, pr.neg_logp, 0, d->old_logp, off, bytes)) != VKLM_OK ||
        (st = vklm_cmd_copy_at(c, rr.neg_logp, 0, d->ref_logp, off, bytes)) != VKLM_OK ||
        (st = vklm_cmd_copy_at(c, vr.values, 0, d->values, off, bytes)) != VKLM_OK ||
        (st = vklm_cmd_copy_at(c, sr.values, 0, d->rm_values, off, bytes)) != VKLM_OK ||
        (at + n == b->N && /* the last pass: -logp to logp */
         ((st = vklm_scale(c, d->old_logp, -1.0f, b->N * T)) != VKLM_OK ||
          (st = vklm_scale(c, d->ref_logp, -1.0f, b->N * T)) != VKLM_OK)) ||
        (st = vklm_cmd_end(c)) != VKLM_OK || (st = vklm_cmd_run(c)) != VKLM_OK)
      snprintf(err, errlen, "PPO: collecting the rollout's figures: %s",
               vklm_context_error(d->ctx));
  }
  for (uint32_t r = 0; st == VKLM_OK && r < b->N; r++)
    at_last[r] = r * T + last[r], bonus[r] = ended[r] ? 0.0f : penalty;
  uint64_t n4 = (uint64_t)b->N * 4;
  if (st == VKLM_OK && ((st = vklm_buffer_upload(d->ctx, d->mask, 0, b->mask, n4 * T)) != VKLM_OK ||
                        (st = vklm_buffer_upload(d->ctx, d->last, 0, at_last, n4)) != VKLM_OK ||
                        (st = vklm_buffer_upload(d->ctx, d->bonus, 0, bonus, n4)) != VKLM_OK))
    snprintf(err, errlen, "PPO: uploading the rollout's mask: %s", vklm_context_error(d->ctx));
  d->score_src = d->rm_values;
  free(in), free(tg), free(ri), free(at_last), free(bonus);
  return st;
}

/* The prompts of iteration it (1-based): o->prompts of them, a seeded permutation per pass. */
static vklm_status pick_prompts(const vklm_pref_set *all, const vklm_ppo_options *o, uint32_t it,
                                vklm_pref_set *s) {
  memset(s, 0, sizeof *s);
  s->items = calloc(o->prompts, sizeof *s->items);
  if (!s->items) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  s->n = o->prompts;
  for (uint32_t j = 0; j < o->prompts; j++) {
    uint64_t q = (uint64_t)(it - 1) * o->prompts + j, P = all->n;
    const vklm_pref_item *src = &all->items[vklm_data_permute(q % P, P, o->seed, q / P)];
    vklm_pref_item *d = &s->items[j];
    d->prompt = strdup(src->prompt ? src->prompt : "");
    d->prompt_ids = malloc(src->np * sizeof(int32_t));
    if (!d->prompt || !d->prompt_ids) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    memcpy(d->prompt_ids, src->prompt_ids, src->np * sizeof(int32_t));
    d->np = src->np, d->line = src->line;
  }
  return VKLM_OK;
}

/* The rollout's responses and scores as JSON lines (the first and last iterations' samples). */
static void write_samples(FILE *f, uint32_t it, const vklm_pref_set *s, uint32_t k,
                          const float *score) {
  for (uint64_t i = 0; f && i < s->n; i++)
    for (uint32_t j = 0; j < k; j++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "iter", it);
      cJSON_AddStringToObject(o, "prompt", s->items[i].prompt ? s->items[i].prompt : "");
      const char *resp = s->items[i].response[j];
      cJSON_AddStringToObject(o, "response", resp ? resp : "");
      cJSON_AddNumberToObject(o, "score", score[i * k + j]);
      char *line = cJSON_PrintUnformatted(o);
      if (line) fprintf(f, "%s\n", line);
      free(line);
      cJSON_Delete(o);
    }
}

static void log_json(FILE *f, const vklm_ppo_iter *r) {
  fprintf(f, "{\"iter\": %u, \"reward_mean\": %.6f, \"reward_std\": %.6f, \"kl\": %.6f, "
          "\"beta\": %.6g, \"pg_loss\": %.6f, \"vf_loss\": %.6f, \"clipfrac\": %.6f, "
          "\"vf_clipfrac\": %.6f, \"approx_kl\": %.6g, \"entropy\": %.6f, \"ratio\": %.6f, "
          "\"resp_len\": %.3f, \"ended\": %.4f, \"tokens_per_s\": %.2f, \"seconds\": %.3f}",
          r->iter, r->reward_mean, r->reward_std, r->kl, r->beta, r->st.pg_loss, r->st.vf_loss,
          r->st.clipfrac, r->st.vf_clipfrac, r->st.approx_kl, r->st.entropy, r->st.ratio,
          r->resp_len, r->ended, r->tokens_per_s, r->seconds);
}

/* ---- checkpoints and resume ----------------------------------------------------------------
 * ppo_state.json (written last, atomically) names the iteration that checkpoint.bin and
 * value.bin (weights and AdamW moments) hold, the AdamW step, beta, and what the iteration
 * stream depends on (seed, rows, T, minibatch): prompts, rollout seeds and permutations are
 * functions of (seed, iteration), so a resumed run continues exactly. */
static vklm_status save_state(const vklm_ppo_options *o, vklm_model *pol, vklm_model *val,
                              const vklm_optim_config *ocp, const vklm_optim_config *ocv,
                              uint32_t it, uint32_t step, float beta, uint32_t N, uint32_t mb,
                              char *err, size_t errlen) {
  char path[4096], tmp[4200];
  vklm_status st;
  snprintf(path, sizeof path, "%s/checkpoint.bin", o->out_dir);
  if ((st = vklm_align_save(path, pol, step - 1, ocp, err, errlen)) != VKLM_OK) return st;
  snprintf(path, sizeof path, "%s/value.bin", o->out_dir);
  if (val != pol && (st = vklm_align_save(path, val, step - 1, ocv, err, errlen)) != VKLM_OK)
    return st;
  snprintf(path, sizeof path, "%s/ppo_state.json", o->out_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write %s", tmp);
    return VKLM_ERROR_INVALID;
  }
  fprintf(f, "{\"iter\": %u, \"step\": %u, \"beta\": %.9g, \"seed\": %llu, \"rows\": %u, "
          "\"T\": %u, \"minibatch\": %u}\n", it, step, beta, (unsigned long long)o->seed, N,
          o->T, mb);
  int bad = fflush(f) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s", path);
    return VKLM_ERROR_INVALID;
  }
  return VKLM_OK;
}


static vklm_status load_model_state(const char *path, vklm_model *m, char *err, size_t errlen) {
  vklm_ckpt *c = NULL;
  char e2[1024];
  vklm_status st = vklm_ckpt_read(path, 1, &c, e2, sizeof e2);
  if (st == VKLM_OK) st = vklm_ckpt_load_model(c, m, e2, sizeof e2);
  if (st != VKLM_OK) snprintf(err, errlen, "resume: %s: %s", path, e2);
  vklm_ckpt_free(c);
  return st;
}

/* Restores the models, the step, beta and the logs (rows past the checkpoint dropped). */
static vklm_status resume(const vklm_ppo_options *o, vklm_model *pol, vklm_model *val, uint32_t N,
                          uint32_t mb, uint32_t *start, uint32_t *step, float *beta,
                          vklm_metrics *hist, vklm_ppo_result *res, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/ppo_state.json", o->out_dir);
  char *text = NULL, why[512];
  vklm_file_read(path, VKLM_FILE_MAX_CONFIG, 0, &text, NULL, why, sizeof why);
  cJSON *j = text ? cJSON_Parse(text) : NULL;
  free(text);
  const char *keys[7] = {"iter", "step", "beta", "seed", "rows", "T", "minibatch"};
  double v[7];
  for (int i = 0; i < 7; i++) {
    cJSON *x = cJSON_GetObjectItem(j, keys[i]);
    if (!cJSON_IsNumber(x)) {
      snprintf(err, errlen, "resume: %s is missing or has no \"%s\" (nothing to resume)", path,
               keys[i]);
      cJSON_Delete(j);
      return VKLM_ERROR_INVALID;
    }
    v[i] = x->valuedouble;
  }
  cJSON_Delete(j);
  if ((uint64_t)v[3] != o->seed || (uint32_t)v[4] != N || (uint32_t)v[5] != o->T ||
      (uint32_t)v[6] != mb) {
    snprintf(err, errlen, "resume: the run was started with seed %.0f, %.0f rows, T=%.0f, "
             "minibatch %.0f; this one asks for seed %llu, %u rows, T=%u, minibatch %u (a "
             "resumed run must continue the same stream)", v[3], v[4], v[5], v[6],
             (unsigned long long)o->seed, N, o->T, mb);
    return VKLM_ERROR_INVALID;
  }
  uint32_t done = (uint32_t)v[0];
  if (done >= o->iters) {
    snprintf(err, errlen, "resume: the run already holds %u iterations (raise --iters)", done);
    return VKLM_ERROR_INVALID;
  }
  vklm_status st;
  snprintf(path, sizeof path, "%s/checkpoint.bin", o->out_dir);
  if ((st = load_model_state(path, pol, err, errlen)) != VKLM_OK) return st;
  snprintf(path, sizeof path, "%s/value.bin", o->out_dir);
  if (val != pol && (st = load_model_state(path, val, err, errlen)) != VKLM_OK) return st;
  *start = done + 1, *step = (uint32_t)v[1], *beta = (float)v[2];
  /* the metrics log up to the checkpoint, rewritten without the rows after it */
  snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
  text = NULL;
  struct stat sb; /* no log: a new one; one that cannot be read: an error, not a lost log */
  if (stat(path, &sb) == 0 &&
      vklm_file_read(path, VKLM_FILE_MAX_TEXT, 0, &text, NULL, err, errlen) != VKLM_OK)
    return VKLM_ERROR_IO;
  FILE *f = fopen(path, "w");
  for (char *line = text ? strtok(text, "\n") : NULL; f && line; line = strtok(NULL, "\n")) {
    cJSON *r = cJSON_Parse(line);
    cJSON *it = cJSON_GetObjectItem(r, "iter"), *rw = cJSON_GetObjectItem(r, "reward_mean"),
          *kl = cJSON_GetObjectItem(r, "kl");
    if (cJSON_IsNumber(it) && cJSON_IsNumber(rw) && cJSON_IsNumber(kl) && it->valuedouble <= done) {
      fprintf(f, "%s\n", line);
      vklm_metric m = {.step = (uint32_t)it->valuedouble, .train_loss = (float)rw->valuedouble,
                       .val_loss = (float)kl->valuedouble, .lr = o->lr, .grad_norm = NAN};
      vklm_metrics_add(hist, &m);
      if (m.step == 1)
        res->first.iter = 1, res->first.reward_mean = rw->valuedouble,
        res->first.kl = kl->valuedouble;
    }
    cJSON_Delete(r);
  }
  free(text);
  if (!f) {
    snprintf(err, errlen, "cannot write %s", path);
    return VKLM_ERROR_INVALID;
  }
  fclose(f);
  if (o->progress)
    fprintf(stderr, "vklm ppo: resuming after iteration %u (step %u, beta %.6g)\n", done, *step - 1,
            *beta);
  return VKLM_OK;
}

vklm_status vklm_ppo_train(vklm_context *ctx, const vklm_ckpt *init, const vklm_pref_set *prompts,
                           const vklm_ppo_options *o, vklm_ppo_result *res, char *err,
                           size_t errlen) {
  memset(res, 0, sizeof *res);
  vklm_status st = vklm_ppo_check(init, o, prompts, err, errlen);
  if (st != VKLM_OK) return st;
  vklm_ppo_hparams hp = o->hp;
  uint32_t T = o->T, N = o->prompts * o->k, mb = hp.minibatch < N ? hp.minibatch : N;
  hp.minibatch = mb;
  uint32_t longest = 0;
  for (uint64_t i = 0; i < prompts->n; i++)
    longest = prompts->items[i].np > longest ? prompts->items[i].np : longest;
  vklm_rollout_options ro = {.k = o->k, .max_tokens = o->max_tokens, .temp = o->temp,
                             .top_p = 1.0f, .eos = o->eos, .slots = N};
  if (longest + ro.max_tokens > T) ro.max_tokens = T - longest; /* >= 1: checked */
  vklm_model *pol = NULL, *ref = NULL, *rm = NULL, *val = NULL;
  vklm_ppo_batch b = {0};
  vklm_ppo_dev *dev = NULL;
  vklm_metrics hist = {0};
  vklm_pref_set s = {0};
  int32_t *rin = malloc((size_t)N * T * sizeof *rin);
  uint32_t *last = malloc(N * sizeof *last), *order = malloc((size_t)hp.epochs * N * sizeof *order);
  uint8_t *ended = malloc(N);
  float *rows = malloc((size_t)N * 4 * sizeof *rows);
  FILE *log = NULL, *samples = NULL;
  if (!rin || !last || !order || !ended || !rows || vklm_ppo_batch_alloc(&b, N, T) != VKLM_OK) {
    snprintf(err, errlen, "out of host memory");
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    goto done;
  }
  /* the policy trains; the reference and reward model are frozen (weights only); the value
   * model trains its scalar head and body (an untied LM head is unused, so frozen) */
  /* the policy's and the reference's log-probs are those of sampling at o->temp: logits / temp */
  float ls = o->temp > 0 ? 1.0f / o->temp : 1.0f;
  vklm_model_options po = {.logit_scale = ls}, fo = {.frozen = 1, .logit_scale = ls},
                     rmo = {.frozen = 1};
  const vklm_ckpt *vsrc = o->value ? o->value : o->reward;
  vklm_model_options vo = {.freeze = vsrc->st.model.tie_embeddings ? NULL : "lm_head.weight"};
  if ((st = vklm_align_model(ctx, init, o->value_head, mb, T, &po, o->seed, &pol, err, errlen)) !=
          VKLM_OK ||
      (st = vklm_align_model(ctx, o->ref ? o->ref : init, 0, mb, T, &fo, o->seed, &ref, err,
                             errlen)) != VKLM_OK ||
      (st = vklm_align_model(ctx, o->reward, 1, mb, T, &rmo, o->seed, &rm, err, errlen)) !=
          VKLM_OK ||
      (!o->value_head &&
       (st = vklm_align_model(ctx, vsrc, 1, mb, T, &vo, o->seed, &val, err, errlen)) != VKLM_OK))
    goto done;
  if (o->value_head) val = pol; /* the value head on the policy: one model, one update */
  if ((st = vklm_ppo_dev_create(ctx, N, T, hp.epochs, mb, &dev, err, errlen)) != VKLM_OK)
    goto done;
  vklm_model *ms[4] = {pol, ref, rm, val};
  for (int i = 0; i < 4; i++) vklm_model_memory_get(ms[i], &res->mem[i]);
  vklm_optim_config ocp = {.lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .weight_decay = o->weight_decay, .grad_clip = o->grad_clip};
  vklm_optim_config ocv = ocp;
  ocv.lr = o->value_lr;
  uint32_t step = 1, start = 1;
  if (o->resume && (st = resume(o, pol, val, N, mb, &start, &step, &hp.beta, &hist, res, err,
                                errlen)) != VKLM_OK)
    goto done;
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
  if (!(log = fopen(path, o->resume ? "a" : "w"))) {
    snprintf(err, errlen, "cannot write %s", path);
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  snprintf(path, sizeof path, "%s/samples.jsonl", o->out_dir);
  samples = fopen(path, o->resume ? "a" : "w"); /* optional: a failure only loses samples */
  double t0 = vklm_train_now_s();
  for (uint32_t it = start; it <= o->iters; it++) {
    double ti = vklm_train_now_s(), resp_tokens;
    vklm_pref_free(&s);
    if ((st = pick_prompts(prompts, o, it, &s)) != VKLM_OK) {
      snprintf(err, errlen, "out of host memory");
      goto done;
    }
    ro.seed = o->seed * 1000003ull + it;
    if ((st = vklm_rollout(pol, o->tk, &s, &ro, err, errlen)) != VKLM_OK) goto done;
    double rollout_s = vklm_train_now_s() - ti;
    layout(&s, o->k, &b, rin, last, ended, o->eos, &resp_tokens);
    if ((st = collect(pol, ref, rm, val, &b, dev, rin, last, ended, o->no_eos_penalty, err,
                      errlen)) != VKLM_OK ||
        (st = vklm_ppo_advantages(dev, &hp, NULL, rows, err, errlen)) != VKLM_OK)
      goto done;
    /* the iteration's figures from the row figures: KL, response tokens, -logp, score */
    vklm_ppo_iter r = {.iter = it, .beta = hp.beta};
    double ent = 0, ntok = 0;
    for (uint32_t n = 0; n < N; n++) {
      b.score[n] = rows[n * 4 + 3];
      r.reward_mean += b.score[n] / N;
      r.kl += rows[n * 4] / N;
      r.ended += ended[n] / (double)N;
      ntok += rows[n * 4 + 1], ent += rows[n * 4 + 2];
    }
    for (uint32_t n = 0; n < N; n++)
      r.reward_std += (b.score[n] - r.reward_mean) * (b.score[n] - r.reward_mean);
    r.reward_std = N > 1 ? sqrt(r.reward_std / (N - 1)) : 0;
    r.resp_len = resp_tokens / N;
    for (uint32_t e = 0; e < hp.epochs; e++)
      for (uint32_t q = 0; q < N; q++)
        order[(size_t)e * N + q] =
            (uint32_t)vklm_data_permute(q, N, o->seed ^ 0x9907, (uint64_t)it * hp.epochs + e);
    if ((st = vklm_ppo_update(pol, val, &b, dev, &hp, order, &ocp, &ocv, &step, NULL, NULL, &r.st, err,
                              errlen)) != VKLM_OK)
      goto done;
    r.st.entropy = ntok > 0 ? ent / ntok : 0;
    /* KL control (Ziegler et al.): beta moves toward the target KL per response */
    if (o->target_kl > 0) {
      double e = r.kl / o->target_kl - 1;
      e = e < -0.2 ? -0.2 : e > 0.2 ? 0.2 : e;
      hp.beta = (float)(hp.beta * (1 + e * N / o->horizon));
    }
    r.seconds = vklm_train_now_s() - ti;
    r.tokens_per_s = rollout_s > 0 ? resp_tokens / rollout_s : 0;
    if (it == 1 || it == o->iters) write_samples(samples, it, &s, o->k, b.score);
    if (it == 1) res->first = r;
    res->last = r;
    res->iters = it;
    log_json(log, &r);
    fputc('\n', log);
    fflush(log);
    vklm_metric m = {.step = it, .train_loss = (float)r.reward_mean, .val_loss = (float)r.kl,
                     .lr = o->lr, .grad_norm = NAN, .tokens_per_s = r.tokens_per_s,
                     .elapsed_s = vklm_train_now_s() - t0};
    vklm_metrics_add(&hist, &m);
    if (o->ckpt_every && it % o->ckpt_every == 0 && it < o->iters &&
        (st = save_state(o, pol, val, &ocp, &ocv, it, step, hp.beta, N, mb, err, errlen)) !=
            VKLM_OK)
      goto done;
    if (o->progress)
      fprintf(stderr, "iter %u/%u | reward %+.4f (std %.3f) | KL %.4f beta %.4g | pg %+.4f vf "
              "%.4f clip %.3f approx-KL %.2e | len %.1f ended %.2f | rollout %.0f tok/s | %.1f s\n",
              it, o->iters, r.reward_mean, r.reward_std, r.kl, r.beta, r.st.pg_loss, r.st.vf_loss,
              r.st.clipfrac, r.st.approx_kl, r.resp_len, r.ended, r.tokens_per_s, r.seconds);
  }
  res->seconds = vklm_train_now_s() - t0;
  if ((st = save_state(o, pol, val, &ocp, &ocv, o->iters, step, hp.beta, N, mb, err, errlen)) !=
      VKLM_OK)
    goto done;
  snprintf(path, sizeof path, "%s/ppo.png", o->out_dir);
  st = vklm_plot_curves(&hist, "PPO: mean reward and KL to the reference per iteration", "value",
                        "reward (mean)", "KL (per response)", path, 900, 500, err, errlen);
done:
  if (log) fclose(log);
  if (samples) fclose(samples);
  vklm_pref_free(&s);
  vklm_ppo_batch_free(&b);
  vklm_metrics_free(&hist);
  free(rin), free(last), free(order), free(ended), free(rows);
  vklm_ppo_dev_destroy(dev);
  vklm_model_destroy(ref);
  vklm_model_destroy(rm);
  if (val != pol) vklm_model_destroy(val);
  vklm_model_destroy(pol);
  return st;
}

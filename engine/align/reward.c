/* The reward model: the LM with a scalar head read at the last token of prompt+response, trained
 * on rankings with the InstructGPT loss (every pair of one prompt's K responses, in one batch),
 * scored in batches, and normalised by folding a gain and bias into its head. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "align/align.h"

void vklm_reward_options_default(vklm_reward_options *o) {
  memset(o, 0, sizeof *o);
  o->B = 8;
  o->T = 64;
  o->epochs = 1;
  o->lr = 5e-5f;
  o->min_lr = 5e-6f;
  o->weight_decay = 0.0f;
  o->grad_clip = 1.0f;
  o->seed = 1337;
  o->val_fraction = 0.1;
  o->out_dir = "out-reward";
  o->progress = 1;
}

/* Items idx[from..) packed into one batch of at most B rows (an item's K responses together);
 * returns how many items were taken (0 when the first does not fit). Rows and each item's first
 * row go to rows_of. */
static uint32_t pack(const vklm_pref_set *d, const uint64_t *idx, uint64_t from, uint64_t n,
                     uint32_t B, uint32_t T, int32_t *inputs, uint32_t *last, uint32_t *first_row) {
  uint32_t rows = 0, items = 0;
  for (uint64_t i = from; i < n; i++) {
    const vklm_pref_item *it = &d->items[idx[i]];
    if (rows + it->k > B) break;
    first_row[items++] = rows;
    for (uint32_t j = 0; j < it->k; j++, rows++)
      if (vklm_align_row(it->prompt_ids, it->np, it->resp_ids[j], it->nr[j], T,
                         inputs + (size_t)rows * T, NULL, NULL, &last[rows]) != VKLM_OK)
        return 0;
  }
  for (uint32_t r = rows; r < B; r++) { /* unused rows: padding */
    memset(inputs + (size_t)r * T, 0, T * sizeof(int32_t));
    last[r] = 0;
  }
  return items;
}

/* Rewards of items idx[0..n) into r (item by item, K each). */
static vklm_status score_idx(vklm_model *m, const vklm_pref_set *d, const uint64_t *idx,
                             uint64_t n, float *r, char *err, size_t errlen) {
  uint32_t B = vklm_model_batch(m), T = vklm_model_seq(m);
  int32_t *in = malloc((size_t)B * T * sizeof *in);
  float *val = malloc((size_t)B * T * sizeof *val);
  uint32_t *last = malloc(B * sizeof *last), *first = malloc(B * sizeof *first);
  vklm_status st = in && val && last && first ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st != VKLM_OK) snprintf(err, errlen, "out of host memory");
  size_t w = 0;
  for (uint64_t i = 0; i < n && st == VKLM_OK;) {
    uint32_t got = pack(d, idx, i, n, B, T, in, last, first);
    if (!got) {
      snprintf(err, errlen, "line %u: %u responses do not fit a batch of %u rows of %u tokens",
               d->items[idx[i]].line, d->items[idx[i]].k, B, T);
      st = VKLM_ERROR_INVALID;
      break;
    }
    vklm_model_io io = {.inputs = in, .values = val};
    if ((st = vklm_model_run(m, &io)) != VKLM_OK) {
      snprintf(err, errlen, "reward forward: %s", vklm_model_error(m));
      break;
    }
    for (uint32_t t = 0; t < got; t++) {
      const vklm_pref_item *it = &d->items[idx[i + t]];
      for (uint32_t j = 0; j < it->k; j++) {
        uint32_t row = first[t] + j;
        r[w++] = val[(size_t)row * T + last[row]];
      }
    }
    i += got;
  }
  free(in), free(val), free(last), free(first);
  return st;
}

vklm_status vklm_reward_score(vklm_model *m, const vklm_pref_set *data, float *r, char *err,
                              size_t errlen) {
  uint64_t *idx = malloc((data->n ? data->n : 1) * sizeof *idx);
  if (!idx) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint64_t i = 0; i < data->n; i++) idx[i] = i;
  vklm_status st = score_idx(m, data, idx, data->n, r, err, errlen);
  free(idx);
  return st;
}

/* Mean ranking loss and pairwise accuracy over items idx[0..n). */
static vklm_status evaluate(vklm_model *m, const vklm_pref_set *d, const uint64_t *idx, uint64_t n,
                            float margin, double *loss, double *acc, uint64_t *npairs, char *err,
                            size_t errlen) {
  *loss = NAN, *acc = NAN, *npairs = 0;
  size_t total = 0;
  for (uint64_t i = 0; i < n; i++) total += d->items[idx[i]].k;
  float *r = malloc((total ? total : 1) * sizeof *r), *dr = malloc((total ? total : 1) * sizeof *dr);
  vklm_status st = r && dr ? score_idx(m, d, idx, n, r, err, errlen) : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st == VKLM_OK) {
    double ls = 0;
    uint64_t pairs = 0, correct = 0, items = 0;
    size_t w = 0;
    for (uint64_t i = 0; i < n; i++) {
      const vklm_pref_item *it = &d->items[idx[i]];
      uint32_t p = 0, c = 0;
      double l = vklm_rank_loss(r + w, it->group, it->k, margin, 0, dr + w, &p, &c);
      if (p) ls += l, items++;
      pairs += p, correct += c;
      w += it->k;
    }
    if (items) *loss = ls / items;
    if (pairs) *acc = (double)correct / pairs;
    *npairs = pairs;
  }
  free(r), free(dr);
  return st;
}

vklm_status vklm_reward_step(vklm_model *m, const vklm_pref_set *d, const uint64_t *idx,
                              uint32_t n, float margin, int backward, double *loss,
                              uint32_t *pairs, uint32_t *correct, char *err, size_t errlen) {
  uint32_t B = vklm_model_batch(m), T = vklm_model_seq(m);
  int32_t *in = malloc((size_t)B * T * sizeof *in);
  float *val = malloc((size_t)B * T * sizeof *val), *vw = calloc((size_t)B * T, sizeof *vw);
  float *r = malloc(B * sizeof *r), *dr = malloc(B * sizeof *dr);
  uint32_t *last = malloc(B * sizeof *last), *first = malloc(B * sizeof *first);
  vklm_status st = in && val && vw && r && dr && last && first ? VKLM_OK
                                                               : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  *loss = 0, *pairs = 0, *correct = 0;
  if (st != VKLM_OK) snprintf(err, errlen, "out of host memory");
  else if (n == 0 || pack(d, idx, 0, n, B, T, in, last, first) != n) {
    snprintf(err, errlen, "the %u items' responses do not fit one batch of %u rows of %u tokens",
             n, B, T);
    st = VKLM_ERROR_INVALID;
  } else {
    vklm_model_io io = {.inputs = in, .values = val};
    if ((st = vklm_model_run(m, &io)) != VKLM_OK)
      snprintf(err, errlen, "reward forward: %s", vklm_model_error(m));
  }
  for (uint32_t t = 0; st == VKLM_OK && t < n; t++) {
    const vklm_pref_item *it = &d->items[idx[t]];
    uint32_t p, c;
    for (uint32_t j = 0; j < it->k; j++) {
      uint32_t row = first[t] + j;
      r[j] = val[(size_t)row * T + last[row]];
      dr[j] = 0;
    }
    *loss += vklm_rank_loss(r, it->group, it->k, margin, 1.0f / n, dr, &p, &c) / n;
    *pairs += p, *correct += c;
    for (uint32_t j = 0; j < it->k; j++) {
      uint32_t row = first[t] + j;
      vw[(size_t)row * T + last[row]] = dr[j];
    }
  }
  if (st == VKLM_OK && backward && (st = vklm_model_backward(m, NULL, vw)) != VKLM_OK)
    snprintf(err, errlen, "reward backward: %s", vklm_model_error(m));
  free(in), free(val), free(vw), free(r), free(dr), free(last), free(first);
  return st;
}

vklm_status vklm_reward_normalize(vklm_model *m, double mean, double std, char *err,
                                  size_t errlen) {
  if (!(std > 0) || !isfinite(mean)) {
    snprintf(err, errlen, "cannot normalise rewards: mean %g, standard deviation %g", mean, std);
    return VKLM_ERROR_INVALID;
  }
  uint64_t n = vklm_model_num_params(m);
  float *p = malloc(n * sizeof(float) + 4);
  if (!p) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  vklm_status st = vklm_model_get_params(m, p);
  int found = 0;
  for (uint32_t i = 0; st == VKLM_OK && i < vklm_model_param_count(m); i++) {
    const vklm_param_info *pi = vklm_model_param(m, i);
    if (!strcmp(pi->name, "score.weight"))
      for (uint64_t k = 0; k < pi->count; k++) p[pi->offset + k] = (float)(p[pi->offset + k] / std);
    else if (!strcmp(pi->name, "score.bias"))
      p[pi->offset] = (float)((p[pi->offset] - mean) / std), found = 1;
  }
  if (st == VKLM_OK && !found) {
    snprintf(err, errlen, "the model has no scalar head");
    st = VKLM_ERROR_INVALID;
  } else if (st == VKLM_OK) st = vklm_model_set_params(m, p);
  else snprintf(err, errlen, "cannot read the model's weights");
  free(p);
  return st;
}

/* Normalisation: responses sampled from the reference model (o->calib_ref) to the training
 * prompts, scored by m; the head is rescaled so that they score mean 0, deviation 1. */
static vklm_status calibrate(vklm_context *ctx, vklm_model *m, const vklm_pref_set *data,
                             const uint64_t *idx, uint64_t n, const vklm_reward_options *o,
                             vklm_reward_result *res, char *err, size_t errlen) {
  uint64_t np = n < o->calib_prompts ? n : o->calib_prompts;
  vklm_pref_set s = {.items = calloc(np ? np : 1, sizeof *s.items), .n = np};
  vklm_model *ref = NULL;
  float *r = NULL;
  vklm_status st = s.items ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint64_t i = 0; i < np && st == VKLM_OK; i++) { /* the prompts alone */
    const vklm_pref_item *it = &data->items[idx[i]];
    s.items[i].prompt = strdup(it->prompt);
    s.items[i].prompt_ids = malloc((it->np ? it->np : 1) * sizeof(int32_t));
    if (!s.items[i].prompt || !s.items[i].prompt_ids) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    else memcpy(s.items[i].prompt_ids, it->prompt_ids, it->np * sizeof(int32_t));
    s.items[i].np = it->np;
    s.items[i].line = it->line;
  }
  if (st != VKLM_OK) snprintf(err, errlen, "out of host memory");
  vklm_model_options fo = {.frozen = 1};
  if (st == VKLM_OK)
    st = vklm_align_model(ctx, o->calib_ref, 0, 0, 0, &fo, 0, &ref, err, errlen);
  vklm_rollout_options ro = o->calib;
  if (ro.max_tokens + 0 == 0) ro.max_tokens = 32;
  uint32_t longest = 0;
  for (uint64_t i = 0; i < np; i++) longest = s.items[i].np > longest ? s.items[i].np : longest;
  if (longest + ro.max_tokens > o->T) ro.max_tokens = o->T > longest ? o->T - longest : 0;
  if (st == VKLM_OK && ro.max_tokens == 0) {
    snprintf(err, errlen, "the prompts leave no room for a response in T=%u", o->T);
    st = VKLM_ERROR_INVALID;
  }
  if (st == VKLM_OK) st = vklm_rollout(ref, o->calib_tk, &s, &ro, err, errlen);
  if (st == VKLM_OK && !(r = malloc((np * ro.k + 1) * sizeof *r))) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st == VKLM_OK) st = vklm_reward_score(m, &s, r, err, errlen);
  if (st == VKLM_OK) {
    double sum = 0, sq = 0;
    uint64_t cnt = np * ro.k;
    for (uint64_t i = 0; i < cnt; i++) sum += r[i];
    double mean = sum / cnt;
    for (uint64_t i = 0; i < cnt; i++) sq += (r[i] - mean) * (r[i] - mean);
    double sd = cnt > 1 ? sqrt(sq / (cnt - 1)) : 0;
    if (!(sd > 1e-6)) sd = 1; /* all equal: shift only */
    res->norm_mean = mean, res->norm_std = sd, res->norm_samples = cnt;
    st = vklm_reward_normalize(m, mean, sd, err, errlen);
  }
  free(r);
  vklm_model_destroy(ref);
  vklm_pref_free(&s);
  return st;
}

vklm_status vklm_reward_train(vklm_context *ctx, const vklm_ckpt *init, const vklm_pref_set *data,
                              const vklm_reward_options *o, vklm_reward_result *res, char *err,
                              size_t errlen) {
  memset(res, 0, sizeof *res);
  res->train_acc = res->val_acc = NAN;
  uint64_t n = data->n, nval = (uint64_t)(n * o->val_fraction), ntr = n - nval;
  if (ntr == 0) {
    snprintf(err, errlen, "no training items (%llu items, validation fraction %g)",
             (unsigned long long)n, o->val_fraction);
    return VKLM_ERROR_INVALID;
  }
  for (uint64_t i = 0; i < n; i++)
    if (data->items[i].k > o->B || data->items[i].k < 2) {
      snprintf(err, errlen, "line %u: %u responses: a reward batch holds one prompt's responses "
               "together, 2 to B=%u of them (raise -b)", data->items[i].line, data->items[i].k, o->B);
      return VKLM_ERROR_INVALID;
    }
  uint64_t any_pairs = 0;
  uint32_t pb[VKLM_PREF_MAX_K * VKLM_PREF_MAX_K], pw[VKLM_PREF_MAX_K * VKLM_PREF_MAX_K];
  for (uint64_t i = 0; i < n && !any_pairs; i++)
    any_pairs += vklm_pref_pairs(&data->items[i], pb, pw, VKLM_PREF_MAX_K * VKLM_PREF_MAX_K);
  if (!any_pairs) {
    snprintf(err, errlen, "no preference in the data: every ranking is one tie (%llu items), so "
             "there is no pair to learn from", (unsigned long long)n);
    return VKLM_ERROR_INVALID;
  }
  /* a fixed split: a seeded permutation of the items, the last nval held out */
  uint64_t *perm = malloc(n * sizeof *perm), *order = malloc(n * sizeof *order);
  uint32_t *last = malloc(o->B * sizeof *last), *first = malloc(o->B * sizeof *first);
  int32_t *in = malloc((size_t)o->B * o->T * sizeof *in);
  vklm_model *m = NULL;
  vklm_metrics hist = {0};
  vklm_status st = VKLM_OK;
  if (!perm || !order || !last || !first || !in) {
    snprintf(err, errlen, "out of host memory");
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    goto done;
  }
  for (uint64_t i = 0; i < n; i++) perm[i] = vklm_data_permute(i, n, o->seed, 0xE7A1);
  char freeze[512];
  snprintf(freeze, sizeof freeze, "%s%s%s", o->freeze ? o->freeze : "",
           o->freeze && !init->st.model.tie_embeddings ? "," : "",
           init->st.model.tie_embeddings ? "" : "lm_head.weight"); /* the LM head is unused */
  vklm_model_options mo = {.freeze = freeze[0] ? freeze : NULL};
  if ((st = vklm_align_model(ctx, init, 1, o->B, o->T, &mo, o->seed, &m, err, errlen)) != VKLM_OK)
    goto done;
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
  if ((st = vklm_metrics_save(&hist, path, err, errlen)) != VKLM_OK) goto done;
  /* steps: one per packed batch, epochs over the training items (or o->steps batches) */
  uint64_t per_epoch = 0;
  for (uint64_t i = 0; i < ntr;) {
    uint32_t got = pack(data, perm, i, ntr, o->B, o->T, in, last, first);
    if (!got) {
      snprintf(err, errlen, "line %u: a sequence is longer than T=%u",
               data->items[perm[i]].line, o->T);
      st = VKLM_ERROR_INVALID;
      goto done;
    }
    i += got, per_epoch++;
  }
  uint32_t total = o->steps ? o->steps : (uint32_t)(per_epoch * (o->epochs ? o->epochs : 1));
  double vloss, vacc, tloss, tacc;
  uint64_t vpairs = 0, tpairs;
  if (nval) {
    if ((st = evaluate(m, data, perm + ntr, nval, o->margin, &vloss, &vacc, &vpairs, err, errlen)))
      goto done;
    vklm_metric r0 = {.step = 0, .train_loss = NAN, .val_loss = (float)vloss, .grad_norm = NAN};
    vklm_metrics_add(&hist, &r0);
    vklm_metrics_append(&r0, path, err, errlen);
    if (o->progress)
      fprintf(stderr, "vklm reward: before training: held-out loss %.4f, pairwise accuracy %.3f "
              "(%llu pairs)\n", vloss, vacc, (unsigned long long)vpairs);
  }
  vklm_optim_config oc = {.lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                          .weight_decay = o->weight_decay, .grad_clip = o->grad_clip};
  double t0 = vklm_train_now_s();
  uint64_t at = ntr, epoch = 0; /* at == ntr: a new epoch's order first */
  for (uint32_t step = 1; step <= total; step++) {
    if (at >= ntr) {
      for (uint64_t i = 0; i < ntr; i++) order[i] = perm[vklm_data_permute(i, ntr, o->seed, ++epoch)];
      at = 0;
    }
    uint32_t got = 0, rows = 0;
    while (at + got < ntr && rows + data->items[order[at + got]].k <= o->B)
      rows += data->items[order[at + got++]].k;
    double loss = 0;
    uint32_t pairs = 0, correct = 0;
    if ((st = vklm_reward_step(m, data, order + at, got, o->margin, 1, &loss, &pairs, &correct,
                               err, errlen)) != VKLM_OK)
      goto done;
    at += got;
    oc.lr = vklm_train_lr(step, o->warmup, total, o->lr, o->min_lr);
    float gn = 0;
    if ((st = vklm_model_update(m, &oc, step, &gn)) != VKLM_OK) {
      snprintf(err, errlen, "step %u update: %s", step, vklm_model_error(m));
      goto done;
    }
    if (!isfinite(loss) || !isfinite(gn)) {
      snprintf(err, errlen, "the loss or gradient norm is not finite at step %u", step);
      st = VKLM_ERROR_INVALID;
      goto done;
    }
    if (step == 1) res->first_loss = loss;
    res->last_loss = loss;
    res->steps = step;
    vklm_metric rm = {.step = step, .train_loss = (float)loss, .val_loss = NAN, .lr = oc.lr,
                      .grad_norm = gn, .elapsed_s = vklm_train_now_s() - t0};
    if (nval && (step == total || (total >= 5 && step % (total / 5) == 0))) {
      if ((st = evaluate(m, data, perm + ntr, nval, o->margin, &vloss, &vacc, &vpairs, err, errlen)))
        goto done;
      rm.val_loss = (float)vloss;
    }
    vklm_metrics_add(&hist, &rm);
    vklm_metrics_append(&rm, path, err, errlen);
    if (o->progress && (step == 1 || step % 10 == 0 || step == total)) {
      double per = (vklm_train_now_s() - t0) / step;
      fprintf(stderr, "step %u/%u | loss %.4f | pairs %u acc %.2f%s | lr %.2e | ETA %.0fs\n", step,
              total, loss, pairs, pairs ? (double)correct / pairs : 0.0,
              isnan(rm.val_loss) ? "" : " | held-out", oc.lr, per * (total - step));
    }
  }
  res->seconds = vklm_train_now_s() - t0;
  if ((st = evaluate(m, data, perm, ntr, o->margin, &tloss, &tacc, &tpairs, err, errlen))) goto done;
  res->train_acc = tacc;
  res->train_items = ntr;
  res->val_items = nval;
  if (nval) res->val_acc = vacc, res->val_pairs = vpairs;
  if (o->calib_ref && (st = calibrate(ctx, m, data, perm, ntr, o, res, err, errlen)) != VKLM_OK)
    goto done;
  snprintf(path, sizeof path, "%s/checkpoint.bin", o->out_dir);
  if ((st = vklm_align_save(path, m, res->steps, &oc, err, errlen)) != VKLM_OK) goto done;
  snprintf(path, sizeof path, "%s/loss.png", o->out_dir);
  st = vklm_plot_loss(&hist, "reward model: ranking loss (train) and held-out loss", path, 800,
                      500, err, errlen);
done:
  free(perm), free(order), free(last), free(first), free(in);
  vklm_metrics_free(&hist);
  vklm_model_destroy(m);
  return st;
}

/* Direct preference optimisation: the policy's and a frozen reference's sequence log-probs of
 * the chosen and rejected responses (summed over the response tokens), the sigmoid / IPO /
 * hinge loss on their log-ratios, and its gradient through vklm_model_backward_seq. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "align/align.h"

void vklm_dpo_options_default(vklm_dpo_options *o) {
  memset(o, 0, sizeof *o);
  o->pairs = 4;
  o->T = 64;
  o->epochs = 1;
  o->lr = 5e-6f;
  o->min_lr = 5e-7f;
  o->grad_clip = 1.0f;
  o->beta = 0.1f;
  o->kind = VKLM_DPO_SIGMOID;
  o->seed = 1337;
  o->val_fraction = 0.1;
  o->out_dir = "out-dpo";
  o->progress = 1;
}

vklm_status vklm_dpo_step(vklm_model *policy, vklm_model *ref, const int32_t *inputs,
                          const int32_t *targets, const float *mask, uint32_t n, float beta,
                          vklm_dpo_kind kind, float scale, int backward, vklm_dpo_stats *s,
                          char *err, size_t errlen) {
  uint32_t B = vklm_model_batch(policy);
  memset(s, 0, sizeof *s);
  if (2 * n > B || vklm_model_batch(ref) != B || vklm_model_seq(ref) != vklm_model_seq(policy)) {
    snprintf(err, errlen, "DPO step: %u pairs need %u rows of the same (B,T) in both models", n,
             2 * n);
    return VKLM_ERROR_INVALID;
  }
  float *lp = malloc(B * sizeof *lp), *lr = malloc(B * sizeof *lr), *coef = calloc(B, sizeof *coef);
  vklm_status st = lp && lr && coef ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  vklm_model_io ri = {.inputs = inputs, .targets = targets, .mask = mask, .seq_logp = lr};
  vklm_model_io pi = {.inputs = inputs, .targets = targets, .mask = mask, .seq_logp = lp};
  if (st == VKLM_OK && (st = vklm_model_run(ref, &ri)) != VKLM_OK)
    snprintf(err, errlen, "reference forward: %s", vklm_model_error(ref));
  else if (st == VKLM_OK && (st = vklm_model_run(policy, &pi)) != VKLM_OK)
    snprintf(err, errlen, "policy forward: %s", vklm_model_error(policy));
  if (st == VKLM_OK) {
    for (uint32_t i = 0; i < n; i++) {
      double dc, dr;
      double pc = lp[2 * i], pr = lp[2 * i + 1], rc = lr[2 * i], rr = lr[2 * i + 1];
      s->loss += vklm_dpo_loss(kind, beta, pc, pr, rc, rr, &dc, &dr);
      coef[2 * i] = (float)(dc * scale);
      coef[2 * i + 1] = (float)(dr * scale);
      double ch = beta * (pc - rc), rj = beta * (pr - rr);
      s->chosen += ch, s->rejected += rj, s->margin += ch - rj, s->acc += ch > rj;
      s->kl += 0.5 * ((pc - rc) + (pr - rr));
    }
    s->pairs = n;
    if (n) {
      s->loss /= n, s->chosen /= n, s->rejected /= n, s->margin /= n, s->acc /= n, s->kl /= n;
    }
    if (backward && (st = vklm_model_backward_seq(policy, coef, mask)) != VKLM_OK)
      snprintf(err, errlen, "policy backward: %s", vklm_model_error(policy));
  }
  free(lp), free(lr), free(coef);
  return st;
}

typedef struct pair {
  uint64_t item;
  uint32_t c, r;
} pair;

/* Rows of pairs ps[0..n) into the batch (padding rows masked). */
static vklm_status fill(const vklm_pref_set *d, const pair *ps, uint32_t n, uint32_t B, uint32_t T,
                        int32_t *in, int32_t *tg, float *mask, char *err, size_t errlen) {
  for (uint32_t i = 0; i < B; i++) {
    if (i < 2 * n) {
      const pair *p = &ps[i / 2];
      const vklm_pref_item *it = &d->items[p->item];
      uint32_t j = i % 2 ? p->r : p->c;
      if (vklm_align_row(it->prompt_ids, it->np, it->resp_ids[j], it->nr[j], T, in + (size_t)i * T,
                         tg + (size_t)i * T, mask + (size_t)i * T, NULL) != VKLM_OK) {
        snprintf(err, errlen, "line %u: prompt and response (%u tokens) do not fit T=%u",
                 it->line, it->np + it->nr[j], T);
        return VKLM_ERROR_INVALID;
      }
    } else {
      for (uint32_t t = 0; t < T; t++)
        in[(size_t)i * T + t] = 0, tg[(size_t)i * T + t] = VKLM_IGNORE_INDEX,
        mask[(size_t)i * T + t] = 0;
    }
  }
  return VKLM_OK;
}

/* Statistics over pairs ps[0..n) (no gradient). */
static vklm_status evaluate(vklm_model *pol, vklm_model *ref, const vklm_pref_set *d,
                            const pair *ps, uint64_t n, const vklm_dpo_options *o, int32_t *in,
                            int32_t *tg, float *mask, vklm_dpo_stats *out, char *err,
                            size_t errlen) {
  memset(out, 0, sizeof *out);
  uint32_t B = vklm_model_batch(pol), per = B / 2;
  vklm_status st = VKLM_OK;
  for (uint64_t i = 0; i < n && st == VKLM_OK; i += per) {
    uint32_t k = n - i < per ? (uint32_t)(n - i) : per;
    vklm_dpo_stats s;
    if ((st = fill(d, ps + i, k, B, o->T, in, tg, mask, err, errlen)) != VKLM_OK) break;
    if ((st = vklm_dpo_step(pol, ref, in, tg, mask, k, o->beta, o->kind, 0, 0, &s, err, errlen)))
      break;
    out->loss += s.loss * k, out->acc += s.acc * k, out->chosen += s.chosen * k;
    out->rejected += s.rejected * k, out->margin += s.margin * k, out->kl += s.kl * k;
  }
  if (n) {
    out->loss /= n, out->acc /= n, out->chosen /= n, out->rejected /= n, out->margin /= n;
    out->kl /= n;
  }
  out->pairs = n;
  return st;
}

/* KL(policy || reference) per response, estimated on samples of the policy: responses sampled
 * (temperature 1) to the held-out prompts, the mean over them of the summed log-ratio
 * log p(y) - log p_ref(y) over the response tokens (the k1 estimator; it is >= 0 in expectation). */
static vklm_status sampled_kl(vklm_model *pol, vklm_model *ref, const vklm_pref_set *d,
                              const pair *ps, uint64_t n, const vklm_dpo_options *o, int32_t *in,
                              int32_t *tg, float *mask, double *kl, uint64_t *samples, char *err,
                              size_t errlen) {
  *kl = NAN, *samples = 0;
  uint32_t B = vklm_model_batch(pol), T = vklm_model_seq(pol);
  vklm_pref_set s = {.items = calloc(n ? n : 1, sizeof *s.items)};
  vklm_status st = s.items ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  uint32_t longest = 0;
  for (uint64_t i = 0; i < n && st == VKLM_OK; i++) { /* distinct prompts of the pairs */
    const vklm_pref_item *it = &d->items[ps[i].item];
    int seen = 0;
    for (uint64_t q = 0; q < s.n; q++) seen |= s.items[q].line == it->line;
    if (seen) continue;
    vklm_pref_item *c = &s.items[s.n++];
    c->prompt = strdup(it->prompt);
    c->prompt_ids = malloc((it->np + 1) * sizeof(int32_t));
    if (!c->prompt || !c->prompt_ids) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    else memcpy(c->prompt_ids, it->prompt_ids, it->np * sizeof(int32_t));
    c->np = it->np, c->line = it->line;
    if (it->np > longest) longest = it->np;
  }
  vklm_rollout_options ro = {.k = 2, .max_tokens = T + 1 > longest + 1 ? T - longest : 0,
                             .temp = 1.0f, .top_p = 1.0f, .seed = o->seed ^ 0x4B4C, .eos = o->eos};
  if (ro.max_tokens > 32) ro.max_tokens = 32;
  if (st == VKLM_OK && s.n && ro.max_tokens) st = vklm_rollout(pol, o->tk, &s, &ro, err, errlen);
  double sum = 0;
  uint64_t cnt = 0;
  float *lp = malloc(B * sizeof *lp), *lr = malloc(B * sizeof *lr);
  if (!lp || !lr) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint64_t q = 0; st == VKLM_OK && ro.max_tokens && q < s.n * ro.k; q += B) {
    uint32_t rows = 0;
    for (uint64_t j = q; j < s.n * ro.k && rows < B; j++, rows++) {
      const vklm_pref_item *it = &s.items[j / ro.k];
      uint32_t r = (uint32_t)(j % ro.k);
      if (vklm_align_row(it->prompt_ids, it->np, it->resp_ids[r], it->nr[r], T, in + (size_t)rows * T,
                         tg + (size_t)rows * T, mask + (size_t)rows * T, NULL) != VKLM_OK) {
        snprintf(err, errlen, "a sampled response does not fit T=%u", T);
        st = VKLM_ERROR_INVALID;
        break;
      }
    }
    for (uint32_t r = rows; r < B; r++)
      for (uint32_t t = 0; t < T; t++)
        in[(size_t)r * T + t] = 0, tg[(size_t)r * T + t] = VKLM_IGNORE_INDEX, mask[(size_t)r * T + t] = 0;
    vklm_model_io pi = {.inputs = in, .targets = tg, .mask = mask, .seq_logp = lp};
    vklm_model_io ri = {.inputs = in, .targets = tg, .mask = mask, .seq_logp = lr};
    if (st == VKLM_OK && ((st = vklm_model_run(pol, &pi)) != VKLM_OK ||
                          (st = vklm_model_run(ref, &ri)) != VKLM_OK))
      snprintf(err, errlen, "KL forward: %s", vklm_model_error(pol));
    for (uint32_t r = 0; st == VKLM_OK && r < rows; r++) sum += (double)lp[r] - lr[r], cnt++;
  }
  if (st == VKLM_OK && cnt) *kl = sum / cnt, *samples = cnt;
  free(lp), free(lr);
  vklm_pref_free(&s);
  return st;
}

vklm_status vklm_dpo_train(vklm_context *ctx, const vklm_ckpt *init, const vklm_pref_set *data,
                           const vklm_dpo_options *o, vklm_dpo_result *res, char *err,
                           size_t errlen) {
  memset(res, 0, sizeof *res);
  uint64_t n = data->n, nval = (uint64_t)(n * o->val_fraction), ntr = n - nval;
  uint32_t B = 2 * o->pairs, T = o->T;
  /* pairs of the training and held-out items (a seeded split of the items) */
  uint64_t cap = 0;
  for (uint64_t i = 0; i < n; i++) cap += (uint64_t)data->items[i].k * data->items[i].k;
  pair *ps = malloc((cap ? cap : 1) * sizeof *ps);
  uint32_t *bw = malloc(2 * 4096 * sizeof *bw);
  int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
  float *mask = malloc((size_t)B * T * sizeof *mask);
  pair *batch = malloc(o->pairs * sizeof *batch);
  vklm_model *pol = NULL, *ref = NULL;
  vklm_metrics hist = {0};
  vklm_status st = VKLM_OK;
  if (!ps || !bw || !in || !tg || !mask || !batch) {
    snprintf(err, errlen, "out of host memory");
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    goto done;
  }
  uint64_t npt = 0, npv = 0;
  for (int pass = 0; pass < 2; pass++)
    for (uint64_t q = 0; q < n; q++) {
      uint64_t i = vklm_data_permute(q, n, o->seed, 0xD70);
      if ((q >= ntr) != pass) continue;
      uint32_t k = vklm_pref_pairs(&data->items[i], bw, bw + 4096, 4096);
      for (uint32_t j = 0; j < k; j++) ps[npt + npv++] = (pair){i, bw[j], bw[4096 + j]};
      if (!pass) npt += npv, npv = 0;
    }
  if (npt == 0) {
    snprintf(err, errlen, "no training pairs (%llu items, %llu held out): every ranking of the "
             "training items is one tie", (unsigned long long)n, (unsigned long long)nval);
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  vklm_model_options po = {.freeze = o->freeze}, ro = {.frozen = 1};
  if ((st = vklm_align_model(ctx, init, 0, B, T, &po, o->seed, &pol, err, errlen)) != VKLM_OK ||
      (st = vklm_align_model(ctx, o->ref ? o->ref : init, 0, B, T, &ro, o->seed, &ref, err,
                                errlen)) != VKLM_OK)
    goto done;
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
  if ((st = vklm_metrics_save(&hist, path, err, errlen)) != VKLM_OK) goto done;
  pair *val = ps + npt;
  if (npv && (st = evaluate(pol, ref, data, val, npv, o, in, tg, mask, &res->val_before, err,
                            errlen)) != VKLM_OK)
    goto done;
  if (npv && o->progress)
    fprintf(stderr, "vklm dpo: %llu training pairs, %llu held out: before training loss %.4f, "
            "margin %.4f, accuracy %.3f\n", (unsigned long long)npt, (unsigned long long)npv,
            res->val_before.loss, res->val_before.margin, res->val_before.acc);
  uint64_t per_epoch = (npt + o->pairs - 1) / o->pairs;
  uint32_t total = o->steps ? o->steps : (uint32_t)(per_epoch * (o->epochs ? o->epochs : 1));
  vklm_optim_config oc = {.lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                          .weight_decay = o->weight_decay, .grad_clip = o->grad_clip};
  double t0 = vklm_train_now_s();
  uint64_t at = npt, epoch = 0;
  for (uint32_t step = 1; step <= total; step++) {
    uint32_t k = 0;
    while (k < o->pairs) {
      if (at >= npt) at = 0, epoch++;
      batch[k++] = ps[vklm_data_permute(at++, npt, o->seed, epoch)];
      if (at >= npt && npt < o->pairs) break; /* fewer pairs than a batch: one pass */
    }
    vklm_dpo_stats s;
    if ((st = fill(data, batch, k, B, T, in, tg, mask, err, errlen)) != VKLM_OK ||
        (st = vklm_dpo_step(pol, ref, in, tg, mask, k, o->beta, o->kind, 1.0f / k, 1, &s, err,
                            errlen)) != VKLM_OK)
      goto done;
    oc.lr = vklm_train_lr(step, o->warmup, total, o->lr, o->min_lr);
    float gn = 0;
    if ((st = vklm_model_update(pol, &oc, step, &gn)) != VKLM_OK) {
      snprintf(err, errlen, "step %u update: %s", step, vklm_model_error(pol));
      goto done;
    }
    if (!isfinite(s.loss) || !isfinite(gn)) {
      snprintf(err, errlen, "the loss or gradient norm is not finite at step %u", step);
      st = VKLM_ERROR_INVALID;
      goto done;
    }
    if (step == 1) res->first = s;
    res->last = s;
    res->steps = step;
    vklm_metric rm = {.step = step, .train_loss = (float)s.loss, .val_loss = NAN, .lr = oc.lr,
                      .grad_norm = gn, .elapsed_s = vklm_train_now_s() - t0};
    if (npv && (step == total || (total >= 5 && step % (total / 5) == 0))) {
      if ((st = evaluate(pol, ref, data, val, npv, o, in, tg, mask, &res->val_after, err, errlen)))
        goto done;
      rm.val_loss = (float)res->val_after.loss;
    }
    vklm_metrics_add(&hist, &rm);
    vklm_metrics_append(&rm, path, err, errlen);
    if (o->progress && (step == 1 || step % 10 == 0 || step == total)) {
      double per = (vklm_train_now_s() - t0) / step;
      fprintf(stderr, "step %u/%u | loss %.4f | acc %.2f | chosen %+.4f rejected %+.4f margin "
              "%+.4f | lr %.2e | ETA %.0fs\n", step, total, s.loss, s.acc, s.chosen, s.rejected,
              s.margin, oc.lr, per * (total - step));
    }
  }
  res->seconds = vklm_train_now_s() - t0;
  res->kl = NAN;
  if (o->tk && npv &&
      (st = sampled_kl(pol, ref, data, val, npv, o, in, tg, mask, &res->kl, &res->kl_samples, err,
                       errlen)) != VKLM_OK)
    goto done;
  snprintf(path, sizeof path, "%s/checkpoint.bin", o->out_dir);
  if ((st = vklm_align_save(path, pol, res->steps, &oc, err, errlen)) != VKLM_OK) goto done;
  snprintf(path, sizeof path, "%s/loss.png", o->out_dir);
  char title[96];
  snprintf(title, sizeof title, "DPO (%s, beta %g): loss (train) and held-out loss",
           vklm_dpo_kind_name(o->kind), o->beta);
  st = vklm_plot_loss(&hist, title, path, 800, 500, err, errlen);
done:
  free(ps), free(bw), free(in), free(tg), free(mask), free(batch);
  vklm_metrics_free(&hist);
  vklm_model_destroy(pol);
  vklm_model_destroy(ref);
  return st;
}

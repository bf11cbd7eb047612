/* PPO's arithmetic on one rollout batch, on the GPU: the batch's device copy (vklm_ppo_dev),
 * per-token KL-penalised rewards, GAE advantages and returns, whitening (vklm_rl_advantages), the
 * clipped policy and value losses with their derivatives written straight into the models'
 * backward weights (vklm_rl_ppo_loss), and the update (epochs of minibatches, each a forward and
 * backward of the policy and the value model and one AdamW step of each). Formulas:
 * docs/alignment.md ("vklm ppo"); checked against PyTorch by tests/test_ppo_parity.c and the ops
 * against their C references by tests/test_ops_rl.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "align/align_internal.h"
#include "ops/ops.h"

void vklm_ppo_hparams_default(vklm_ppo_hparams *h) {
  memset(h, 0, sizeof *h);
  h->beta = 0.05f;
  h->kl = VKLM_PPO_KL_K1;
  h->gamma = 1.0f;
  h->lam = 0.95f;
  h->clip = 0.2f;
  h->vclip = 0.2f;
  h->vf_coef = 0.1f;
  h->epochs = 4;
  h->minibatch = 8;
}

vklm_status vklm_ppo_batch_alloc(vklm_ppo_batch *b, uint32_t N, uint32_t T) {
  memset(b, 0, sizeof *b);
  size_t n = (size_t)N * T;
  b->N = N, b->T = T;
  b->inputs = calloc(n, sizeof *b->inputs);
  b->targets = calloc(n, sizeof *b->targets);
  b->mask = calloc(n, sizeof(float));
  b->old_logp = calloc(n, sizeof(float));
  b->ref_logp = calloc(n, sizeof(float));
  b->values = calloc(n, sizeof(float));
  b->rewards = calloc(n, sizeof(float));
  b->adv = calloc(n, sizeof(float));
  b->ret = calloc(n, sizeof(float));
  b->score = calloc(N ? N : 1, sizeof(float));
  if (!b->inputs || !b->targets || !b->mask || !b->old_logp || !b->ref_logp || !b->values ||
      !b->rewards || !b->adv || !b->ret || !b->score) {
    vklm_ppo_batch_free(b);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  return VKLM_OK;
}

void vklm_ppo_batch_free(vklm_ppo_batch *b) {
  free(b->inputs), free(b->targets), free(b->mask), free(b->old_logp), free(b->ref_logp);
  free(b->values), free(b->rewards), free(b->adv), free(b->ret), free(b->score);
  memset(b, 0, sizeof *b);
}

/* ---- the device batch ------------------------------------------------------------------------ */

static vklm_status dev_fail(vklm_ppo_dev *d, vklm_status st, const char *what, char *err,
                            size_t errlen) {
  snprintf(err, errlen, "PPO on the device: %s: %s", what, vklm_context_error(d->ctx));
  return st;
}

vklm_status vklm_ppo_dev_create(vklm_context *ctx, uint32_t N, uint32_t T, uint32_t epochs,
                                uint32_t minibatch, vklm_ppo_dev **out, char *err,
                                size_t errlen) {
  *out = NULL;
  if (!N || !T || !epochs || !minibatch) {
    snprintf(err, errlen, "PPO: an empty rollout batch (N=%u, T=%u, %u epochs, minibatch %u)", N,
             T, epochs, minibatch);
    return VKLM_ERROR_INVALID;
  }
  vklm_ppo_dev *d = calloc(1, sizeof *d);
  if (!d) {
    snprintf(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  d->ctx = ctx, d->N = N, d->T = T;
  d->updates = epochs * ((N + minibatch - 1) / minibatch);
  d->order_cap = epochs * N;
  uint64_t al = vklm_buffer_alignment(ctx), nt = (uint64_t)N * T * 4;
#define PAD(x) (((uint64_t)(x) + al - 1) / al * al)
  uint64_t total = 8 * PAD(nt) + 3 * PAD((uint64_t)N * 4) + PAD((uint64_t)N * 16) +
                   PAD((uint64_t)d->order_cap * 4) + PAD(VKLM_RL_STATS_FLOATS(d->updates) * 4);
  vklm_status st = VKLM_OK;
  const char *what = "allocating the rollout batch";
  d->order_host = calloc(d->order_cap, sizeof *d->order_host);
  if (!d->order_host) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st == VKLM_OK) st = vklm_arena_create(ctx, total, &d->arena);
  vklm_buffer *nts[9] = {&d->mask, &d->old_logp, &d->ref_logp, &d->values, &d->rm_values,
                         &d->rewards, &d->adv, &d->ret, NULL};
  for (int i = 0; st == VKLM_OK && nts[i]; i++) st = vklm_arena_alloc(d->arena, nt, nts[i]);
  if (st == VKLM_OK) st = vklm_arena_alloc(d->arena, (uint64_t)N * 4, &d->scores);
  if (st == VKLM_OK) st = vklm_arena_alloc(d->arena, (uint64_t)N * 4, &d->last);
  if (st == VKLM_OK) st = vklm_arena_alloc(d->arena, (uint64_t)N * 4, &d->bonus);
  if (st == VKLM_OK) st = vklm_arena_alloc(d->arena, (uint64_t)N * 16, &d->rowstats);
  if (st == VKLM_OK) st = vklm_arena_alloc(d->arena, (uint64_t)d->order_cap * 4, &d->order);
  if (st == VKLM_OK)
    st = vklm_arena_alloc(d->arena, VKLM_RL_STATS_FLOATS(d->updates) * 4, &d->stats);
  if (st == VKLM_OK) what = "a command buffer", st = vklm_cmd_create(ctx, &d->cmd);
#undef PAD
  if (st != VKLM_OK) {
    if (st == VKLM_ERROR_OUT_OF_HOST_MEMORY) snprintf(err, errlen, "out of host memory");
    else dev_fail(d, st, what, err, errlen);
    vklm_ppo_dev_destroy(d);
    return st;
  }
  d->score_src = d->scores;
  *out = d;
  return VKLM_OK;
}

void vklm_ppo_dev_destroy(vklm_ppo_dev *d) {
  if (!d) return;
  vklm_cmd_destroy(d->cmd);
  vklm_arena_destroy(d->arena);
  free(d->order_host);
  free(d);
}

vklm_status vklm_ppo_dev_upload(vklm_ppo_dev *d, const vklm_ppo_batch *b, char *err,
                                size_t errlen) {
  if (b->N != d->N || b->T != d->T) {
    snprintf(err, errlen, "PPO: a batch of (%u,%u) does not fit the device batch (%u,%u)", b->N,
             b->T, d->N, d->T);
    return VKLM_ERROR_INVALID;
  }
  uint64_t nt = (uint64_t)d->N * d->T * 4, n4 = (uint64_t)d->N * 4;
  uint32_t *last = malloc(n4);
  float *zero = calloc(d->N, sizeof *zero);
  vklm_status st = last && zero ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint32_t r = 0; last && r < d->N; r++) last[r] = r;
  if (st == VKLM_OK &&
      ((st = vklm_buffer_upload(d->ctx, d->mask, 0, b->mask, nt)) != VKLM_OK ||
       (st = vklm_buffer_upload(d->ctx, d->old_logp, 0, b->old_logp, nt)) != VKLM_OK ||
       (st = vklm_buffer_upload(d->ctx, d->ref_logp, 0, b->ref_logp, nt)) != VKLM_OK ||
       (st = vklm_buffer_upload(d->ctx, d->values, 0, b->values, nt)) != VKLM_OK ||
       (st = vklm_buffer_upload(d->ctx, d->scores, 0, b->score, n4)) != VKLM_OK ||
       (st = vklm_buffer_upload(d->ctx, d->last, 0, last, n4)) != VKLM_OK ||
       (st = vklm_buffer_upload(d->ctx, d->bonus, 0, zero, n4)) != VKLM_OK))
    dev_fail(d, st, "uploading the rollout batch", err, errlen);
  else if (st != VKLM_OK)
    snprintf(err, errlen, "out of host memory");
  d->score_src = d->scores;
  free(last), free(zero);
  return st;
}

vklm_status vklm_ppo_advantages(vklm_ppo_dev *d, const vklm_ppo_hparams *h, vklm_ppo_batch *b,
                                float *rows, char *err, size_t errlen) {
  vklm_rl_adv_params p = {.N = d->N, .T = d->T, .k3 = h->kl == VKLM_PPO_KL_K3,
                          .whiten_rewards = h->whiten_rewards != 0, .beta = h->beta,
                          .gamma = h->gamma, .lam = h->lam};
  vklm_status st;
  if ((st = vklm_cmd_begin(d->cmd)) != VKLM_OK ||
      (st = vklm_rl_advantages(d->cmd, d->rewards, d->adv, d->ret, d->rowstats, d->old_logp,
                               d->ref_logp, d->values, d->mask, d->score_src, d->last, d->bonus,
                               &p)) != VKLM_OK ||
      (st = vklm_cmd_end(d->cmd)) != VKLM_OK || (st = vklm_cmd_run(d->cmd)) != VKLM_OK)
    return dev_fail(d, st, "the advantages", err, errlen);
  uint64_t nt = (uint64_t)d->N * d->T * 4;
  if (b && ((st = vklm_buffer_download(d->ctx, d->rewards, 0, b->rewards, nt)) != VKLM_OK ||
            (st = vklm_buffer_download(d->ctx, d->adv, 0, b->adv, nt)) != VKLM_OK ||
            (st = vklm_buffer_download(d->ctx, d->ret, 0, b->ret, nt)) != VKLM_OK))
    return dev_fail(d, st, "reading the advantages", err, errlen);
  if (rows && (st = vklm_buffer_download(d->ctx, d->rowstats, 0, rows, (uint64_t)d->N * 16)))
    return dev_fail(d, st, "reading the row figures", err, errlen);
  return VKLM_OK;
}

/* ---- the update ------------------------------------------------------------------------------ */

vklm_status vklm_ppo_dev_begin(vklm_ppo_dev *d, const uint32_t *order, uint32_t count, char *err,
                               size_t errlen) {
  if (count > d->order_cap) {
    snprintf(err, errlen, "PPO: an order of %u rows exceeds the device batch's %u", count,
             d->order_cap);
    return VKLM_ERROR_INVALID;
  }
  for (uint32_t i = 0; i < count; i++)
    if (order[i] >= d->N) {
      snprintf(err, errlen, "PPO: row order entry %u is %u, past the batch's %u rows", i,
               order[i], d->N);
      return VKLM_ERROR_INVALID;
    }
  memcpy(d->order_host, order, (size_t)count * sizeof *order);
  vklm_status st;
  if ((st = vklm_buffer_upload(d->ctx, d->order, 0, order, (uint64_t)count * 4)) != VKLM_OK ||
      (st = vklm_cmd_begin(d->cmd)) != VKLM_OK ||
      (st = vklm_cmd_fill_words(d->cmd, d->stats, 0)) != VKLM_OK ||
      (st = vklm_cmd_end(d->cmd)) != VKLM_OK || (st = vklm_cmd_run(d->cmd)) != VKLM_OK)
    return dev_fail(d, st, "starting the update", err, errlen);
  return VKLM_OK;
}

vklm_status vklm_ppo_minibatch(vklm_model *policy, vklm_model *value, const vklm_ppo_batch *b,
                               vklm_ppo_dev *d, uint32_t row0, uint32_t n,
                               const vklm_ppo_hparams *h, uint32_t slot, char *err,
                               size_t errlen) {
  uint32_t B = vklm_model_batch(policy), T = b->T;
  if (n > B || vklm_model_batch(value) != B || vklm_model_seq(policy) != T ||
      vklm_model_seq(value) != T || T != d->T || b->N != d->N) {
    snprintf(err, errlen, "PPO minibatch: %u rows of %u tokens need both models at (B >= %u, T = "
             "%u) and a batch of the device batch's shape", n, T, n, T);
    return VKLM_ERROR_INVALID;
  }
  if (row0 > d->order_cap || n > d->order_cap - row0 || slot >= d->updates) {
    snprintf(err, errlen, "PPO minibatch: rows %u..%u or update %u outside the update's order",
             row0, row0 + n, slot);
    return VKLM_ERROR_INVALID;
  }
  size_t bt = (size_t)B * T;
  int32_t *in = malloc(bt * sizeof *in), *tg = malloc(bt * sizeof *tg);
  vklm_status st = in && tg ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st != VKLM_OK) snprintf(err, errlen, "out of host memory");
  for (uint32_t r = 0; st == VKLM_OK && r < B; r++) {
    if (r < n) {
      size_t q = (size_t)d->order_host[row0 + r] * T;
      memcpy(in + (size_t)r * T, b->inputs + q, T * sizeof *in);
      memcpy(tg + (size_t)r * T, b->targets + q, T * sizeof *tg);
    } else { /* padding: no targets, no weight */
      for (uint32_t t = 0; t < T; t++)
        in[(size_t)r * T + t] = 0, tg[(size_t)r * T + t] = VKLM_IGNORE_INDEX;
    }
  }
  /* value == policy: the value head on the policy, one forward giving both */
  int shared = value == policy;
  vklm_model_io pio = {.inputs = in, .targets = tg}, vio = {.inputs = in};
  if (st == VKLM_OK && (st = vklm_model_run(policy, &pio)) != VKLM_OK)
    snprintf(err, errlen, "policy forward: %s", vklm_model_error(policy));
  else if (st == VKLM_OK && !shared && (st = vklm_model_run(value, &vio)) != VKLM_OK)
    snprintf(err, errlen, "value forward: %s", vklm_model_error(value));
  free(in), free(tg);
  if (st != VKLM_OK) return st;
  vklm_model_rows pr, vr;
  vklm_model_rows_get(policy, &pr);
  vklm_model_rows_get(value, &vr);
  vklm_rl_loss_params p = {.B = B, .T = T, .n = n, .row0 = row0, .slot = slot, .clip = h->clip,
                           .vclip = h->vclip, .vf_coef = h->vf_coef};
  if ((st = vklm_cmd_begin(d->cmd)) != VKLM_OK ||
      (st = vklm_rl_ppo_loss(d->cmd, pr.neg_token_w, vr.value_w, d->stats, pr.neg_logp, vr.values,
                             d->adv, d->ret, d->old_logp, d->values, d->mask, d->order, &p)) !=
          VKLM_OK ||
      (st = vklm_cmd_end(d->cmd)) != VKLM_OK || (st = vklm_cmd_run(d->cmd)) != VKLM_OK)
    return dev_fail(d, st, "the minibatch losses", err, errlen);
  if ((st = vklm_model_backward_rows(policy, 1, shared)) != VKLM_OK)
    snprintf(err, errlen, "policy backward: %s", vklm_model_error(policy));
  else if (!shared && (st = vklm_model_backward_rows(value, 0, 1)) != VKLM_OK)
    snprintf(err, errlen, "value backward: %s", vklm_model_error(value));
  return st;
}

vklm_status vklm_ppo_dev_stats(vklm_ppo_dev *d, uint32_t updates, vklm_ppo_stats *s,
                               double *pg_hist, double *vf_hist, char *err, size_t errlen) {
  if (updates > d->updates) {
    snprintf(err, errlen, "PPO: %u updates exceed the device batch's %u", updates, d->updates);
    return VKLM_ERROR_INVALID;
  }
  float *f = malloc(VKLM_RL_STATS_FLOATS(updates) * sizeof *f);
  if (!f) {
    snprintf(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  vklm_status st =
      vklm_buffer_download(d->ctx, d->stats, 0, f, VKLM_RL_STATS_FLOATS(updates) * 4);
  if (st != VKLM_OK) {
    free(f);
    return dev_fail(d, st, "reading the update's statistics", err, errlen);
  }
  memset(s, 0, sizeof *s);
  s->updates = updates;
  for (uint32_t u = 0; u < updates; u++) {
    double pg = f[8 + 2 * u], vf = f[9 + 2 * u];
    if (!isfinite(pg) || !isfinite(vf)) {
      snprintf(err, errlen, "PPO update %u: the policy or value loss is not finite", u + 1);
      free(f);
      return VKLM_ERROR_INVALID;
    }
    if (pg_hist) pg_hist[u] = pg;
    if (vf_hist) vf_hist[u] = vf;
    s->pg_loss += pg / updates, s->vf_loss += vf / updates;
  }
  double tokens = f[4];
  if (tokens > 0)
    s->clipfrac = f[0] / tokens, s->vf_clipfrac = f[1] / tokens, s->approx_kl = f[2] / tokens,
    s->ratio = f[3] / tokens;
  free(f);
  return VKLM_OK;
}

vklm_status vklm_ppo_update(vklm_model *policy, vklm_model *value, const vklm_ppo_batch *b,
                            vklm_ppo_dev *d, const vklm_ppo_hparams *h, const uint32_t *order,
                            const vklm_optim_config *oc_pol, const vklm_optim_config *oc_val,
                            uint32_t *step, double *pg_hist, double *vf_hist, vklm_ppo_stats *s,
                            char *err, size_t errlen) {
  uint32_t N = b->N, mb = h->minibatch ? h->minibatch : N;
  if (mb > vklm_model_batch(policy)) mb = vklm_model_batch(policy);
  uint32_t count = h->epochs * N;
  uint32_t *idx = malloc((count ? count : 1) * sizeof *idx);
  if (!idx) {
    snprintf(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  for (uint32_t e = 0; e < h->epochs; e++)
    for (uint32_t i = 0; i < N; i++) idx[e * N + i] = order ? order[(size_t)e * N + i] : i;
  vklm_status st = vklm_ppo_dev_begin(d, idx, count, err, errlen);
  free(idx);
  uint32_t u = 0;
  for (uint32_t e = 0; e < h->epochs && st == VKLM_OK; e++) {
    for (uint32_t at = 0; at < N && st == VKLM_OK; at += mb, u++) {
      uint32_t n = N - at < mb ? N - at : mb;
      if ((st = vklm_ppo_minibatch(policy, value, b, d, e * N + at, n, h, u, err, errlen)) !=
          VKLM_OK)
        break;
      if ((st = vklm_model_update(policy, oc_pol, *step, NULL)) != VKLM_OK)
        snprintf(err, errlen, "policy update: %s", vklm_model_error(policy));
      else if (value != policy && (st = vklm_model_update(value, oc_val, *step, NULL)) != VKLM_OK)
        snprintf(err, errlen, "value update: %s", vklm_model_error(value));
      ++*step;
    }
  }
  if (st == VKLM_OK) st = vklm_ppo_dev_stats(d, u, s, pg_hist, vf_hist, err, errlen);
  return st;
}

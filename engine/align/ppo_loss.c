/* PPO's arithmetic on one rollout batch: per-token KL-penalised rewards, GAE advantages and
 * returns, whitening, the clipped policy and value losses with their derivatives, and the update
 * (epochs of minibatches, each a forward and backward of the policy and the value model on the
 * GPU and one AdamW step of each). Formulas: docs/alignment.md ("vklm ppo"); checked against
 * PyTorch by tests/test_ppo_parity.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "align/align.h"

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

/* Mean and unbiased variance of x over the mask. */
static void masked_moments(const float *x, const float *mask, size_t n, double *mean, double *var) {
  double s = 0, c = 0, q = 0;
  for (size_t i = 0; i < n; i++)
    if (mask[i] != 0) s += x[i], c++;
  *mean = c ? s / c : 0;
  for (size_t i = 0; i < n; i++)
    if (mask[i] != 0) q += (x[i] - *mean) * (x[i] - *mean);
  *var = c > 1 ? q / (c - 1) : 0;
}

static double token_kl(vklm_ppo_kl kind, double lp, double lr) {
  if (kind == VKLM_PPO_KL_K3) {
    double d = lr - lp;
    return exp(d) - 1 - d;
  }
  return lp - lr;
}

void vklm_ppo_advantages(vklm_ppo_batch *b, const vklm_ppo_hparams *h) {
  uint32_t N = b->N, T = b->T;
  size_t n = (size_t)N * T;
  for (uint32_t r = 0; r < N; r++) {
    int32_t last = -1;
    for (uint32_t t = 0; t < T; t++) {
      size_t i = (size_t)r * T + t;
      b->rewards[i] = 0;
      if (b->mask[i] == 0) continue;
      b->rewards[i] = (float)(-(double)h->beta * token_kl(h->kl, b->old_logp[i], b->ref_logp[i]));
      last = (int32_t)t;
    }
    if (last >= 0) b->rewards[(size_t)r * T + (uint32_t)last] += b->score[r];
  }
  if (h->whiten_rewards) { /* scale only: the mean stays */
    double mean, var;
    masked_moments(b->rewards, b->mask, n, &mean, &var);
    double inv = 1.0 / sqrt(var + 1e-8);
    for (size_t i = 0; i < n; i++)
      if (b->mask[i] != 0) b->rewards[i] = (float)((b->rewards[i] - mean) * inv + mean);
  }
  for (uint32_t r = 0; r < N; r++) {
    double gae = 0, next_v = 0;
    for (uint32_t t = T; t-- > 0;) {
      size_t i = (size_t)r * T + t;
      b->adv[i] = b->ret[i] = 0;
      if (b->mask[i] == 0) continue;
      double v = b->values[i];
      double delta = b->rewards[i] + h->gamma * next_v - v;
      gae = delta + (double)h->gamma * h->lam * gae;
      b->adv[i] = (float)gae;
      b->ret[i] = (float)(gae + v);
      next_v = v;
    }
  }
  double mean, var;
  masked_moments(b->adv, b->mask, n, &mean, &var);
  double inv = 1.0 / sqrt(var + 1e-8);
  for (size_t i = 0; i < n; i++)
    if (b->mask[i] != 0) b->adv[i] = (float)((b->adv[i] - mean) * inv);
}

double vklm_ppo_row_kl(const vklm_ppo_batch *b, uint32_t n) {
  double s = 0;
  for (uint32_t t = 0; t < b->T; t++) {
    size_t i = (size_t)n * b->T + t;
    if (b->mask[i] != 0) s += (double)b->old_logp[i] - b->ref_logp[i];
  }
  return s;
}

vklm_status vklm_ppo_minibatch(vklm_model *policy, vklm_model *value, const vklm_ppo_batch *b,
                               const uint32_t *rows, uint32_t n, const vklm_ppo_hparams *h,
                               double *pg, double *vf, vklm_ppo_stats *s, double *tokens,
                               char *err, size_t errlen) {
  uint32_t B = vklm_model_batch(policy), T = b->T;
  *pg = *vf = 0;
  if (n > B || vklm_model_batch(value) != B || vklm_model_seq(policy) != T ||
      vklm_model_seq(value) != T) {
    snprintf(err, errlen, "PPO minibatch: %u rows of %u tokens need both models at (B >= %u, T = "
             "%u)", n, T, n, T);
    return VKLM_ERROR_INVALID;
  }
  size_t bt = (size_t)B * T;
  int32_t *in = malloc(bt * sizeof *in), *tg = malloc(bt * sizeof *tg);
  float *lp = malloc(bt * sizeof *lp), *v = malloc(bt * sizeof *v);
  float *tw = calloc(bt, sizeof *tw), *vw = calloc(bt, sizeof *vw);
  vklm_status st = in && tg && lp && v && tw && vw ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st != VKLM_OK) snprintf(err, errlen, "out of host memory");
  for (uint32_t r = 0; st == VKLM_OK && r < B; r++) {
    if (r < n) {
      memcpy(in + (size_t)r * T, b->inputs + (size_t)rows[r] * T, T * sizeof *in);
      memcpy(tg + (size_t)r * T, b->targets + (size_t)rows[r] * T, T * sizeof *tg);
    } else { /* padding: no targets, no weight */
      for (uint32_t t = 0; t < T; t++)
        in[(size_t)r * T + t] = 0, tg[(size_t)r * T + t] = VKLM_IGNORE_INDEX;
    }
  }
  /* value == policy: the value head on the policy, one forward giving both */
  int shared = value == policy;
  vklm_model_io pio = {.inputs = in, .targets = tg, .token_logp = lp, .values = shared ? v : NULL};
  vklm_model_io vio = {.inputs = in, .values = v};
  if (st == VKLM_OK && (st = vklm_model_run(policy, &pio)) != VKLM_OK)
    snprintf(err, errlen, "policy forward: %s", vklm_model_error(policy));
  else if (st == VKLM_OK && !shared && (st = vklm_model_run(value, &vio)) != VKLM_OK)
    snprintf(err, errlen, "value forward: %s", vklm_model_error(value));
  double M = 0;
  for (uint32_t r = 0; r < n; r++)
    for (uint32_t t = 0; t < T; t++) M += b->mask[(size_t)rows[r] * T + t] != 0;
  if (st == VKLM_OK && M > 0) {
    double pgs = 0, vfs = 0, clipped = 0, vclipped = 0, akl = 0, ratios = 0;
    double lo = 1.0 - h->clip, hi = 1.0 + h->clip;
    for (uint32_t r = 0; r < n; r++)
      for (uint32_t t = 0; t < T; t++) {
        size_t i = (size_t)rows[r] * T + t, j = (size_t)r * T + t;
        if (b->mask[i] == 0) continue;
        double A = b->adv[i], d = (double)lp[j] - b->old_logp[i], ratio = exp(d);
        double cr = ratio < lo ? lo : ratio > hi ? hi : ratio;
        double l1 = -A * ratio, l2 = -A * cr;
        pgs += l1 > l2 ? l1 : l2;
        clipped += l2 > l1;
        /* d/dlogp of max(l1, l2): l1's when it is the larger (equal: the ratio is inside the
         * range and both are the same function) */
        tw[j] = (float)((l1 >= l2 ? -A * ratio : 0.0) / M);
        akl += 0.5 * d * d, ratios += ratio;
        double R = b->ret[i], ov = b->values[i], vv = v[j], dv = vv - ov;
        double cv = ov + (dv < -h->vclip ? -h->vclip : dv > h->vclip ? h->vclip : dv);
        double e1 = (vv - R) * (vv - R), e2 = (cv - R) * (cv - R);
        vfs += 0.5 * (e1 > e2 ? e1 : e2);
        vclipped += e2 > e1;
        double g = e1 >= e2 ? vv - R : (fabs(dv) < h->vclip ? cv - R : 0.0);
        vw[j] = (float)(h->vf_coef * g / M);
      }
    *pg = pgs / M, *vf = vfs / M;
    if (s)
      s->clipfrac += clipped, s->vf_clipfrac += vclipped, s->approx_kl += akl,
      s->ratio += ratios;
  }
  if (tokens) *tokens += M;
  if (st == VKLM_OK && (st = vklm_model_backward(policy, tw, shared ? vw : NULL)) != VKLM_OK)
    snprintf(err, errlen, "policy backward: %s", vklm_model_error(policy));
  else if (st == VKLM_OK && !shared && (st = vklm_model_backward(value, NULL, vw)) != VKLM_OK)
    snprintf(err, errlen, "value backward: %s", vklm_model_error(value));
  free(in), free(tg), free(lp), free(v), free(tw), free(vw);
  return st;
}

vklm_status vklm_ppo_update(vklm_model *policy, vklm_model *value, const vklm_ppo_batch *b,
                            const vklm_ppo_hparams *h, const uint32_t *order,
                            const vklm_optim_config *oc_pol, const vklm_optim_config *oc_val,
                            uint32_t *step, double *pg_hist, double *vf_hist, vklm_ppo_stats *s,
                            char *err, size_t errlen) {
  uint32_t N = b->N, mb = h->minibatch ? h->minibatch : N;
  memset(s, 0, sizeof *s);
  if (mb > vklm_model_batch(policy)) mb = vklm_model_batch(policy);
  uint32_t *idx = malloc((N ? N : 1) * sizeof *idx);
  if (!idx) {
    snprintf(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  vklm_status st = VKLM_OK;
  double tokens = 0;
  uint32_t u = 0;
  for (uint32_t e = 0; e < h->epochs && st == VKLM_OK; e++) {
    for (uint32_t i = 0; i < N; i++) idx[i] = order ? order[(size_t)e * N + i] : i;
    for (uint32_t at = 0; at < N && st == VKLM_OK; at += mb, u++) {
      uint32_t n = N - at < mb ? N - at : mb;
      double pg, vf;
      if ((st = vklm_ppo_minibatch(policy, value, b, idx + at, n, h, &pg, &vf, s, &tokens, err,
                                   errlen)) != VKLM_OK)
        break;
      if (!isfinite(pg) || !isfinite(vf)) {
        snprintf(err, errlen, "PPO update %u: the policy or value loss is not finite", u + 1);
        st = VKLM_ERROR_INVALID;
        break;
      }
      if (pg_hist) pg_hist[u] = pg;
      if (vf_hist) vf_hist[u] = vf;
      s->pg_loss += pg, s->vf_loss += vf;
      if ((st = vklm_model_update(policy, oc_pol, *step, NULL)) != VKLM_OK)
        snprintf(err, errlen, "policy update: %s", vklm_model_error(policy));
      else if (value != policy && (st = vklm_model_update(value, oc_val, *step, NULL)) != VKLM_OK)
        snprintf(err, errlen, "value update: %s", vklm_model_error(value));
      ++*step;
    }
  }
  s->updates = u;
  if (u) s->pg_loss /= u, s->vf_loss /= u;
  if (tokens > 0) {
    s->clipfrac /= tokens, s->vf_clipfrac /= tokens, s->approx_kl /= tokens, s->ratio /= tokens;
  }
  free(idx);
  return st;
}

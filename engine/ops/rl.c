/* PPO's advantages and clipped losses on the GPU, and their C references. See rl.h. */
#include "rl.h"

#include <math.h>

#include "op_util.h"

typedef struct adv_push {
  uint32_t N, T, k3, whiten_rewards;
  float beta, gamma, lam;
} adv_push;
_Static_assert(sizeof(adv_push) == 28, "ppo_advantages_f32.comp push constants");

typedef struct loss_push {
  uint32_t B, T, n, row0, slot;
  float clip, vclip, vf_coef;
} loss_push;
_Static_assert(sizeof(loss_push) == 32, "ppo_loss_f32.comp push constants");

/* One workgroup as wide as the device allows (reduce.glsl: 8 bytes of shared memory a thread). */
static uint32_t one_group(vklm_cmd *cmd) {
  return vklm_op_wg_fit(vklm_cmd_context(cmd), 256, 8);
}

vklm_status vklm_rl_advantages(vklm_cmd *cmd, vklm_buffer rewards, vklm_buffer adv,
                               vklm_buffer ret, vklm_buffer rowstats, vklm_buffer old_logp,
                               vklm_buffer ref_logp, vklm_buffer values, vklm_buffer mask,
                               vklm_buffer score_src, vklm_buffer last, vklm_buffer bonus,
                               const vklm_rl_adv_params *p) {
  uint64_t nt = (uint64_t)p->N * p->T * 4;
  VKLM_ASSERT(rewards.size >= nt && adv.size >= nt && ret.size >= nt && old_logp.size >= nt &&
                  ref_logp.size >= nt && values.size >= nt && mask.size >= nt,
              "rl advantages: a (N,T) = (%u,%u) buffer is too small", p->N, p->T);
  VKLM_ASSERT(rowstats.size >= (uint64_t)p->N * 16 && last.size >= (uint64_t)p->N * 4 &&
                  bonus.size >= (uint64_t)p->N * 4,
              "rl advantages: a per-row buffer of N=%u is too small", p->N);
  adv_push pc = {p->N, p->T, p->k3, p->whiten_rewards, p->beta, p->gamma, p->lam};
  vklm_buffer b[11] = {rewards, adv, ret, rowstats, old_logp, ref_logp, values, mask, score_src,
                       last, bonus};
  uint32_t wg = one_group(cmd);
  return vklm_op_dispatch(cmd, "ppo_advantages_f32", &wg, 1, b, 11, &pc, sizeof pc, 1, 1, 1);
}

/* Mean and unbiased variance of x over the mask. */
static void moments(const float *x, const float *mask, size_t n, double *mean, double *var) {
  double s = 0, c = 0, q = 0;
  for (size_t i = 0; i < n; i++)
    if (mask[i] != 0) s += x[i], c++;
  *mean = c ? s / c : 0;
  for (size_t i = 0; i < n; i++)
    if (mask[i] != 0) q += (x[i] - *mean) * (x[i] - *mean);
  *var = c > 1 ? q / (c - 1) : 0;
}

void vklm_rl_advantages_ref(float *rewards, float *adv, float *ret, float *rowstats,
                            const float *old_logp, const float *ref_logp, const float *values,
                            const float *mask, const float *score_src, const uint32_t *last,
                            const float *bonus, const vklm_rl_adv_params *p) {
  uint32_t N = p->N, T = p->T;
  size_t n = (size_t)N * T;
  for (uint32_t r = 0; r < N; r++) {
    double score = (double)score_src[last[r]] + bonus[r], kl = 0, cnt = 0, nlp = 0;
    int64_t lt = -1;
    for (uint32_t t = 0; t < T; t++) {
      size_t i = (size_t)r * T + t;
      rewards[i] = 0;
      if (mask[i] == 0) continue;
      double lp = old_logp[i], lr = ref_logp[i], d = lr - lp;
      double k = p->k3 ? exp(d) - 1 - d : lp - lr;
      rewards[i] = (float)(-(double)p->beta * k);
      kl += lp - lr, cnt++, nlp -= lp;
      lt = t;
    }
    if (lt >= 0) rewards[(size_t)r * T + (size_t)lt] += (float)score;
    rowstats[r * 4] = (float)kl, rowstats[r * 4 + 1] = (float)cnt, rowstats[r * 4 + 2] = (float)nlp;
    rowstats[r * 4 + 3] = (float)score;
  }
  double mean, var;
  if (p->whiten_rewards) { /* scale only: the mean stays */
    moments(rewards, mask, n, &mean, &var);
    double inv = 1.0 / sqrt(var + 1e-8);
    for (size_t i = 0; i < n; i++)
      if (mask[i] != 0) rewards[i] = (float)((rewards[i] - mean) * inv + mean);
  }
  for (uint32_t r = 0; r < N; r++) {
    double gae = 0, next_v = 0;
    for (uint32_t t = T; t-- > 0;) {
      size_t i = (size_t)r * T + t;
      adv[i] = ret[i] = 0;
      if (mask[i] == 0) continue;
      double v = values[i], delta = rewards[i] + p->gamma * next_v - v;
      gae = delta + (double)p->gamma * p->lam * gae;
      adv[i] = (float)gae, ret[i] = (float)(gae + v);
      next_v = v;
    }
  }
  moments(adv, mask, n, &mean, &var);
  double inv = 1.0 / sqrt(var + 1e-8);
  for (size_t i = 0; i < n; i++)
    if (mask[i] != 0) adv[i] = (float)((adv[i] - mean) * inv);
}

vklm_status vklm_rl_ppo_loss(vklm_cmd *cmd, vklm_buffer neg_tok_w, vklm_buffer value_w,
                             vklm_buffer stats, vklm_buffer neg_logp, vklm_buffer v,
                             vklm_buffer adv, vklm_buffer ret, vklm_buffer old_logp,
                             vklm_buffer old_v, vklm_buffer mask, vklm_buffer order,
                             const vklm_rl_loss_params *p) {
  uint64_t bt = (uint64_t)p->B * p->T * 4;
  VKLM_ASSERT(p->n <= p->B, "rl ppo loss: %u minibatch rows > B=%u", p->n, p->B);
  VKLM_ASSERT(neg_tok_w.size >= bt && value_w.size >= bt && neg_logp.size >= bt && v.size >= bt,
              "rl ppo loss: a (B,T) = (%u,%u) buffer is too small", p->B, p->T);
  VKLM_ASSERT(order.size >= (uint64_t)(p->row0 + p->n) * 4, "rl ppo loss: order too short");
  VKLM_ASSERT(stats.size >= (uint64_t)VKLM_RL_STATS_FLOATS(p->slot + 1) * 4,
              "rl ppo loss: stats too short for update slot %u", p->slot);
  loss_push pc = {p->B, p->T, p->n, p->row0, p->slot, p->clip, p->vclip, p->vf_coef};
  vklm_buffer b[11] = {neg_tok_w, value_w, stats, neg_logp, v, adv, ret, old_logp, old_v, mask,
                       order};
  uint32_t wg = one_group(cmd);
  return vklm_op_dispatch(cmd, "ppo_loss_f32", &wg, 1, b, 11, &pc, sizeof pc, 1, 1, 1);
}

void vklm_rl_ppo_loss_ref(float *neg_tok_w, float *value_w, float *stats, const float *neg_logp,
                          const float *v, const float *adv, const float *ret,
                          const float *old_logp, const float *old_v, const float *mask,
                          const uint32_t *order, const vklm_rl_loss_params *p) {
  uint32_t T = p->T;
  double M = 0, pg = 0, vf = 0, clipped = 0, vclipped = 0, akl = 0, ratios = 0;
  for (uint32_t r = 0; r < p->n; r++)
    for (uint32_t t = 0; t < T; t++) M += mask[(size_t)order[p->row0 + r] * T + t] != 0;
  double invM = M > 0 ? 1.0 / M : 0, lo = 1.0 - p->clip, hi = 1.0 + p->clip;
  for (uint32_t r = 0; r < p->B; r++)
    for (uint32_t t = 0; t < T; t++) {
      size_t j = (size_t)r * T + t;
      double tw = 0, vw = 0;
      size_t i = r < p->n ? (size_t)order[p->row0 + r] * T + t : 0;
      if (r < p->n && mask[i] != 0) {
        double A = adv[i], d = -(double)neg_logp[j] - old_logp[i], ratio = exp(d);
        double cr = ratio < lo ? lo : ratio > hi ? hi : ratio, l1 = -A * ratio, l2 = -A * cr;
        pg += l1 > l2 ? l1 : l2;
        clipped += l2 > l1;
        tw = l1 >= l2 ? -A * ratio * invM : 0;
        akl += 0.5 * d * d, ratios += ratio;
        double R = ret[i], ov = old_v[i], vv = v[j], dv = vv - ov;
        double cv = ov + (dv < -p->vclip ? -p->vclip : dv > p->vclip ? p->vclip : dv);
        double e1 = (vv - R) * (vv - R), e2 = (cv - R) * (cv - R);
        vf += 0.5 * (e1 > e2 ? e1 : e2);
        vclipped += e2 > e1;
        double g = e1 >= e2 ? vv - R : (fabs(dv) < p->vclip ? cv - R : 0.0);
        vw = p->vf_coef * g * invM;
      }
      neg_tok_w[j] = (float)-tw + 0.0f, value_w[j] = (float)vw;
    }
  stats[0] += (float)clipped, stats[1] += (float)vclipped, stats[2] += (float)akl;
  stats[3] += (float)ratios, stats[4] += (float)M;
  stats[8 + 2 * p->slot] = (float)(pg * invM), stats[9 + 2 * p->slot] = (float)(vf * invM);
}

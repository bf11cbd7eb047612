/* Reinforcement-learning ops: PPO's advantages (per-token KL-penalised rewards, GAE, whitening)
 * and its clipped policy and value losses with their derivatives (shaders/ppo_advantages_f32.comp,
 * ppo_loss_f32.comp). Each runs as ONE workgroup over a whole rollout batch or minibatch: the
 * phases need batch-wide moments, and the work is small next to the forward passes around it.
 * Formulas: docs/alignment.md ("vklm ppo"); the plain C references below are the same formulas
 * in double precision. */
#ifndef VKLM_OPS_RL_H
#define VKLM_OPS_RL_H

#include <stdint.h>

#include "vklm_runtime.h"

typedef struct vklm_rl_adv_params {
  uint32_t N, T;          /* rollout rows and tokens per row */
  uint32_t k3;            /* KL estimator: 0 k1 (logp - logp_ref), 1 k3 (exp(d) - 1 - d) */
  uint32_t whiten_rewards;
  float beta, gamma, lam; /* KL coefficient, GAE discount and lambda */
} vklm_rl_adv_params;

/* rewards, adv, ret (N,T): per-token rewards -beta * kl on the mask plus score[r] at the row's
 * last masked token (whitened over the mask, mean kept, when whiten_rewards), GAE advantages
 * whitened over the mask, returns = advantages before whitening + values; 0 off the mask.
 * rowstats (N,4): per row, sum of (logp - logp_ref), masked tokens, sum of -logp, and the score
 * used: score[r] = score_src[last[r]] + bonus[r] (score_src any length; last (N) u32).
 * Inputs old_logp, ref_logp, values, mask (N,T); mask holds 0 or 1. */
vklm_status vklm_rl_advantages(vklm_cmd *cmd, vklm_buffer rewards, vklm_buffer adv,
                               vklm_buffer ret, vklm_buffer rowstats, vklm_buffer old_logp,
                               vklm_buffer ref_logp, vklm_buffer values, vklm_buffer mask,
                               vklm_buffer score_src, vklm_buffer last, vklm_buffer bonus,
                               const vklm_rl_adv_params *p);
void vklm_rl_advantages_ref(float *rewards, float *adv, float *ret, float *rowstats,
                            const float *old_logp, const float *ref_logp, const float *values,
                            const float *mask, const float *score_src, const uint32_t *last,
                            const float *bonus, const vklm_rl_adv_params *p);

typedef struct vklm_rl_loss_params {
  uint32_t B, T;    /* the models' rows and tokens per row */
  uint32_t n;       /* minibatch rows (<= B); rows n..B-1 are padding */
  uint32_t row0;    /* minibatch row r is rollout row order[row0 + r] */
  uint32_t slot;    /* this update's index in the per-update losses of stats */
  float clip, vclip, vf_coef;
} vklm_rl_loss_params;
/* Floats of a stats buffer for `updates` minibatch updates: 5 running sums (clipped tokens,
 * value-clipped tokens, sum of (logp - old_logp)^2 / 2, sum of ratios, tokens), 3 spare, then
 * (pg loss, vf loss) per update. The sums ACCUMULATE (zero them before the first update). */
#define VKLM_RL_STATS_FLOATS(updates) (8u + 2u * (updates))

/* One minibatch: from the policy's neg_logp (B,T) (= -logp) and the value model's v (B,T) of the
 * minibatch, and the rollout's adv, ret, old_logp, old_v, mask (N,T), writes (OVERWRITES)
 * neg_tok_w (B,T) = -dL/dlogp and value_w (B,T) = dL/dv for
 *   L = mean over the M masked tokens of [max(-A r, -A clamp(r, 1-clip, 1+clip))
 *       + vf_coef * 0.5 * max((v-R)^2, (old_v + clamp(v-old_v, -vclip, vclip) - R)^2)],
 * r = exp(logp - old_logp), and accumulates the statistics into stats (see above). */
vklm_status vklm_rl_ppo_loss(vklm_cmd *cmd, vklm_buffer neg_tok_w, vklm_buffer value_w,
                             vklm_buffer stats, vklm_buffer neg_logp, vklm_buffer v,
                             vklm_buffer adv, vklm_buffer ret, vklm_buffer old_logp,
                             vklm_buffer old_v, vklm_buffer mask, vklm_buffer order,
                             const vklm_rl_loss_params *p);
void vklm_rl_ppo_loss_ref(float *neg_tok_w, float *value_w, float *stats, const float *neg_logp,
                          const float *v, const float *adv, const float *ret,
                          const float *old_logp, const float *old_v, const float *mask,
                          const uint32_t *order, const vklm_rl_loss_params *p);

#endif

#version 450
// ppo_advantages_f32: PPO's per-token rewards, GAE advantages and returns for a rollout batch of
// N rows of T tokens, in ONE workgroup (the phases need the whole batch's moments; the batch is
// small next to the forward passes that produced it). Phases, each ended by a barrier:
//  1. per row (one invocation a row): score[r] = score_src[last[r]] + bonus[r]; on the mask,
//     rewards = -beta * kl(old_logp, ref_logp) with kl = logp - logp_ref (k1) or
//     exp(d) - 1 - d, d = logp_ref - logp (k3); the score added at the row's last masked token;
//     rowstats[r] = (sum of logp - logp_ref, masked tokens, sum of -logp, score).
//  2. when whiten_rewards: rewards = (rewards - mean) / sqrt(var + 1e-8) + mean over the mask
//     (unbiased variance; the mean is kept).
//  3. per row, backwards: delta = rewards + gamma * V(next masked token, 0 past the last) - V,
//     gae = delta + gamma * lam * gae; adv = gae, ret = gae + V (0 off the mask).
//  4. adv = (adv - mean) / sqrt(var + 1e-8) over the mask.
// Sums run in a fixed order (each invocation over its strided elements, then reduce.glsl's tree),
// so the result is deterministic for a given workgroup size.
// Bindings: 0 rewards (N*T) f32 out; 1 adv (N*T) f32 out; 2 ret (N*T) f32 out;
// 3 rowstats (N*4) f32 out; 4 old_logp (N*T) f32; 5 ref_logp (N*T) f32; 6 values (N*T) f32;
// 7 mask (N*T) f32 (0 or 1); 8 score_src (any) f32; 9 last (N) u32, indices into score_src;
// 10 bonus (N) f32.
// Push constants: uint N, T, k3, whiten_rewards; float beta, gamma, lam.
// Dispatch: one workgroup; local_size_x = spec constant 0, a power of two.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) coherent buffer Rewards { float rewards[]; };
layout(std430, binding = 1) coherent buffer Adv { float adv[]; };
layout(std430, binding = 2) writeonly buffer Ret { float ret[]; };
layout(std430, binding = 3) writeonly buffer RowStats { float rowstats[]; };
layout(std430, binding = 4) readonly buffer OldLogp { float old_logp[]; };
layout(std430, binding = 5) readonly buffer RefLogp { float ref_logp[]; };
layout(std430, binding = 6) readonly buffer Values { float values[]; };
layout(std430, binding = 7) readonly buffer Mask { float mask[]; };
layout(std430, binding = 8) readonly buffer ScoreSrc { float score_src[]; };
layout(std430, binding = 9) readonly buffer Last { uint last[]; };
layout(std430, binding = 10) readonly buffer Bonus { float bonus[]; };
layout(push_constant) uniform Push {
  uint N; uint T; uint k3; uint whiten_rewards; float beta; float gamma; float lam;
} pc;

void sync_buffers() {
  memoryBarrierBuffer();
  barrier();
}

// Mean and unbiased variance of x over the mask (binding 0 when which == 0, else binding 1).
vec2 masked_moments(uint which) {
  uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x, n = pc.N * pc.T;
  vec2 sc = vec2(0.0);
  for (uint i = lid; i < n; i += wg)
    if (mask[i] != 0.0) sc += vec2(which == 0u ? rewards[i] : adv[i], 1.0);
  sc = vklm_wg_sum2(sc);
  float mean = sc.y > 0.0 ? sc.x / sc.y : 0.0, q = 0.0;
  for (uint i = lid; i < n; i += wg)
    if (mask[i] != 0.0) {
      float d = (which == 0u ? rewards[i] : adv[i]) - mean;
      q += d * d;
    }
  q = vklm_wg_sum(q);
  return vec2(mean, sc.y > 1.0 ? q / (sc.y - 1.0) : 0.0);
}

void main() {
  uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x, T = pc.T, n = pc.N * pc.T;
  // 1. rewards and row figures
  for (uint r = lid; r < pc.N; r += wg) {
    float score = score_src[last[r]] + bonus[r], kl = 0.0, cnt = 0.0, nlp = 0.0;
    int lastt = -1;
    for (uint t = 0u; t < T; t++) {
      uint i = r * T + t;
      float rw = 0.0;
      if (mask[i] != 0.0) {
        float lp = old_logp[i], lr = ref_logp[i];
        float k = lp - lr;
        if (pc.k3 != 0u) {
          float d = lr - lp;
          k = exp(d) - 1.0 - d;
        }
        rw = -pc.beta * k;
        kl += lp - lr, cnt += 1.0, nlp -= lp;
        lastt = int(t);
      }
      rewards[i] = rw;
    }
    if (lastt >= 0) rewards[r * T + uint(lastt)] += score;
    rowstats[r * 4u] = kl, rowstats[r * 4u + 1u] = cnt, rowstats[r * 4u + 2u] = nlp;
    rowstats[r * 4u + 3u] = score;
  }
  sync_buffers();
  // 2. optional reward whitening (scale only)
  if (pc.whiten_rewards != 0u) {
    vec2 mv = masked_moments(0u);
    float inv = inversesqrt(mv.y + 1e-8);
    for (uint i = lid; i < n; i += wg)
      if (mask[i] != 0.0) rewards[i] = (rewards[i] - mv.x) * inv + mv.x;
    sync_buffers();
  }
  // 3. GAE, one row an invocation, backwards
  for (uint r = lid; r < pc.N; r += wg) {
    float gae = 0.0, next_v = 0.0;
    for (uint t = T; t-- > 0u;) {
      uint i = r * T + t;
      if (mask[i] == 0.0) {
        adv[i] = 0.0, ret[i] = 0.0;
        continue;
      }
      float v = values[i];
      float delta = rewards[i] + pc.gamma * next_v - v;
      gae = delta + pc.gamma * pc.lam * gae;
      adv[i] = gae, ret[i] = gae + v;
      next_v = v;
    }
  }
  sync_buffers();
  // 4. advantage whitening
  vec2 mv = masked_moments(1u);
  float inv = inversesqrt(mv.y + 1e-8);
  for (uint i = lid; i < n; i += wg)
    if (mask[i] != 0.0) adv[i] = (adv[i] - mv.x) * inv;
}

#version 450
// ppo_loss_f32: PPO's clipped policy and value losses on one minibatch, their derivatives as the
// models' backward weights, and the running statistics, in ONE workgroup. Minibatch row r < n
// (of the models' B rows) holds rollout row q = order[row0 + r]; rows r >= n are padding.
// With M the masked tokens of the minibatch, for each masked token of row r, time t
// (i = q*T + t in the rollout, j = r*T + t in the models' rows):
//   ratio = exp(logp - old_logp), A = adv[i]; pg = max(-A*ratio, -A*clamp(ratio, 1-clip, 1+clip))
//   vc = old_v + clamp(v - old_v, -vclip, vclip); vf = 0.5 * max((v-R)^2, (vc-R)^2), R = ret[i]
//   neg_tok_w[j] = -d(pg)/dlogp / M   (the policy's per-row loss scales: -token weight)
//   value_w[j]   = vf_coef * d(vf)/dv / M
// and 0 elsewhere (the derivative of max() is that of the larger branch; at a tie the ratio is
// inside the range and both branches agree). stats accumulates (thread 0, after fixed-order
// sums): [0] clipped tokens, [1] value-clipped tokens, [2] sum of (logp - old_logp)^2 / 2,
// [3] sum of ratios, [4] tokens; stats[8 + 2*slot] = pg / M and [9 + 2*slot] = vf / M.
// Bindings: 0 neg_tok_w (B*T) f32 out; 1 value_w (B*T) f32 out; 2 stats (8 + 2*slots) f32
// in/out; 3 neg_logp (B*T) f32: the policy's -logp of this minibatch; 4 v (B*T) f32: the value
// model's values; 5 adv, 6 ret, 7 old_logp, 8 old_v, 9 mask: (N*T) f32 of the rollout;
// 10 order (any) u32.
// Push constants: uint B, T, n, row0, slot; float clip, vclip, vf_coef.
// Dispatch: one workgroup; local_size_x = spec constant 0, a power of two.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer NegTokW { float neg_tok_w[]; };
layout(std430, binding = 1) writeonly buffer ValueW { float value_w[]; };
layout(std430, binding = 2) buffer Stats { float stats[]; };
layout(std430, binding = 3) readonly buffer NegLogp { float neg_logp[]; };
layout(std430, binding = 4) readonly buffer V { float v[]; };
layout(std430, binding = 5) readonly buffer Adv { float adv[]; };
layout(std430, binding = 6) readonly buffer Ret { float ret[]; };
layout(std430, binding = 7) readonly buffer OldLogp { float old_logp[]; };
layout(std430, binding = 8) readonly buffer OldV { float old_v[]; };
layout(std430, binding = 9) readonly buffer Mask { float mask[]; };
layout(std430, binding = 10) readonly buffer Order { uint order[]; };
layout(push_constant) uniform Push {
  uint B; uint T; uint n; uint row0; uint slot; float clip; float vclip; float vf_coef;
} pc;

void main() {
  uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x, T = pc.T, nt = pc.n * T;
  float cnt = 0.0;
  for (uint j = lid; j < nt; j += wg)
    if (mask[order[pc.row0 + j / T] * T + j % T] != 0.0) cnt += 1.0;
  float M = vklm_wg_sum(cnt);
  float invM = M > 0.0 ? 1.0 / M : 0.0;
  vec4 acc = vec4(0.0); // pg, vf, clipped, vclipped
  vec2 acc2 = vec2(0.0); // approx-kl, ratios
  float lo = 1.0 - pc.clip, hi = 1.0 + pc.clip;
  for (uint j = lid; j < pc.B * T; j += wg) {
    float tw = 0.0, vw = 0.0;
    if (j < nt) {
      uint i = order[pc.row0 + j / T] * T + j % T;
      if (mask[i] != 0.0) {
        float A = adv[i], d = -neg_logp[j] - old_logp[i], ratio = exp(d);
        float cr = clamp(ratio, lo, hi);
        float l1 = -A * ratio, l2 = -A * cr;
        acc.x += max(l1, l2);
        acc.z += l2 > l1 ? 1.0 : 0.0;
        tw = l1 >= l2 ? -A * ratio * invM : 0.0;
        acc2 += vec2(0.5 * d * d, ratio);
        float R = ret[i], ov = old_v[i], vv = v[j], dv = vv - ov;
        float cv = ov + clamp(dv, -pc.vclip, pc.vclip);
        float e1 = (vv - R) * (vv - R), e2 = (cv - R) * (cv - R);
        acc.y += 0.5 * max(e1, e2);
        acc.w += e2 > e1 ? 1.0 : 0.0;
        float g = e1 >= e2 ? vv - R : (abs(dv) < pc.vclip ? cv - R : 0.0);
        vw = pc.vf_coef * g * invM;
      }
    }
    neg_tok_w[j] = -tw;
    value_w[j] = vw;
  }
  vec2 s01 = vklm_wg_sum2(acc.xy), s23 = vklm_wg_sum2(acc.zw), s45 = vklm_wg_sum2(acc2);
  if (lid == 0u) {
    stats[0] += s23.x, stats[1] += s23.y, stats[2] += s45.x, stats[3] += s45.y, stats[4] += M;
    stats[8u + 2u * pc.slot] = s01.x * invM;
    stats[9u + 2u * pc.slot] = s01.y * invM;
  }
}

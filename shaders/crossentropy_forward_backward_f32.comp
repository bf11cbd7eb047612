#version 450
// crossentropy_forward_backward_f32: llm.c's fused classifier. Per row r with target
// t = targets[r], from logits x = logits[r,:] (V of them):
//   losses[r] = logsumexp(x) - x[t];  dlogits[r,v] = (softmax(x)[v] - (v == t)) * dloss[0]
// and for t == ignore_index: losses[r] = 0, dlogits[r,:] = 0. dloss comes from
// crossentropy_dloss_f32 (a buffer, so a recorded step replays with new targets); with per_row
// set, each row has its own scale dloss[r] (a weighted sum of log-likelihoods: DPO, PPO, or a
// mean normalised across micro-batches by the host).
// dlogits MAY ALIAS logits (in place): each invocation reads the elements v = tid (mod
// local_size_x) of its row in the first pass and writes exactly those in the second, so every
// write follows, in the same invocation, the reads of its address (no cross-invocation hazard).
// A target outside [0,V) other than ignore_index is the caller's error: nothing is read or
// written out of bounds, the row's loss is logsumexp(x) and its gradient softmax(x) * dloss.
// Bindings: 0 losses (N) write-only; 1 dlogits (N,V) write-only; 2 logits (N,V); 3 targets (N)
//           int32; 4 dloss (1, or N with per_row).
// Push constants: uint N, V; int ignore_index; uint per_row.
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Losses { float losses[]; };
layout(std430, binding = 1) writeonly buffer Dlogits { float dlogits[]; };
layout(std430, binding = 2) readonly buffer Logits { float logits[]; };
layout(std430, binding = 3) readonly buffer Targets { int targets[]; };
layout(std430, binding = 4) readonly buffer Dloss { float dloss[]; };
layout(push_constant) uniform Push { uint N; uint V; int ignore_index; uint per_row; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.V;
  int tg = targets[row];
  if (tg == pc.ignore_index) { // uniform over the workgroup
    for (uint v = t; v < pc.V; v += W) dlogits[base + v] = 0.0;
    if (t == 0) losses[row] = 0.0;
    return;
  }
  uint ut = uint(tg); // a negative target wraps past V: never matched
  vec2 ms = vec2(VKLM_NEG_INF, 0.0);
  float xt = 0.0;
  for (uint v = t; v < pc.V; v += W) {
    float x = logits[base + v];
    ms = vklm_softmax_add(ms, x);
    if (v == ut) xt = x;
  }
  ms = vklm_wg_softmax_stats(ms);
  xt = vklm_wg_sum(xt);
  // exp(x - max) / sum rather than exp(x - logsumexp): no rounding of a large logsumexp.
  if (t == 0) losses[row] = (ms.x - xt) + log(ms.y);
  float d = dloss[pc.per_row != 0u ? row : 0u], inv = 1.0 / ms.y;
  for (uint v = t; v < pc.V; v += W) {
    float p = exp(logits[base + v] - ms.x) * inv;
    dlogits[base + v] = (p - (v == ut ? 1.0 : 0.0)) * d;
  }
}

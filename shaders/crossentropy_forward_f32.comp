#version 450
// crossentropy_forward_f32: the losses alone (evaluation), per row r with t = targets[r]:
//   losses[r] = logsumexp(logits[r,:]) - logits[r,t], or 0 when t == ignore_index.
// A target outside [0,V) other than ignore_index is the caller's error (loss = logsumexp).
// Bindings: 0 losses (N) write-only; 1 logits (N,V); 2 targets (N) int32.
// Push constants: uint N, V; int ignore_index.
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Losses { float losses[]; };
layout(std430, binding = 1) readonly buffer Logits { float logits[]; };
layout(std430, binding = 2) readonly buffer Targets { int targets[]; };
layout(push_constant) uniform Push { uint N; uint V; int ignore_index; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.V;
  int tg = targets[row];
  if (tg == pc.ignore_index) { // uniform over the workgroup
    if (t == 0) losses[row] = 0.0;
    return;
  }
  uint ut = uint(tg);
  vec2 ms = vec2(VKLM_NEG_INF, 0.0);
  float xt = 0.0;
  for (uint v = t; v < pc.V; v += W) {
    float x = logits[base + v];
    ms = vklm_softmax_add(ms, x);
    if (v == ut) xt = x;
  }
  ms = vklm_wg_softmax_stats(ms);
  xt = vklm_wg_sum(xt);
  if (t == 0) losses[row] = (ms.x - xt) + log(ms.y);
}

#version 450
// softmax_forward_f32: out[r,:] = softmax(inp[r,:]) over the last dimension, stable (the row's
// max is subtracted): one pass for the online (max, sum of exp) statistics, one to write.
// Bindings: 0 out (N,V) write-only; 1 inp (N,V).
// Push constants: uint N, V.
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };
layout(std430, binding = 1) readonly buffer Inp { float inp[]; };
layout(push_constant) uniform Push { uint N; uint V; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.V;
  vec2 ms = vec2(VKLM_NEG_INF, 0.0);
  for (uint v = t; v < pc.V; v += W) ms = vklm_softmax_add(ms, inp[base + v]);
  ms = vklm_wg_softmax_stats(ms);
  float inv = 1.0 / ms.y;
  for (uint v = t; v < pc.V; v += W) out_[base + v] = exp(inp[base + v] - ms.x) * inv;
}

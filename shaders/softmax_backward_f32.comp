#version 450
// softmax_backward_f32: the gradient of softmax_forward_f32 from its output, overwriting dinp:
//   dinp[r,v] = out[r,v] * (dout[r,v] - sum_u dout[r,u] * out[r,u])
// Bindings: 0 dinp (N,V) write-only; 1 dout (N,V); 2 out (N,V).
// Push constants: uint N, V.
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Dinp { float dinp[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Out { float out_[]; };
layout(push_constant) uniform Push { uint N; uint V; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.V;
  float s = 0.0;
  for (uint v = t; v < pc.V; v += W) s += dout[base + v] * out_[base + v];
  s = vklm_wg_sum(s);
  for (uint v = t; v < pc.V; v += W) dinp[base + v] = out_[base + v] * (dout[base + v] - s);
}

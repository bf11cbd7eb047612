#version 450
// segment_dot_f32: per segment b < B of T consecutive elements, a weighted sum in a fixed order:
//   out[b] = sum_{t<T} x[b*T + t] * w[b*T + t]
// (per-sequence sums of per-token values over a mask: log-probs of a batch of sequences).
// Bindings: 0 out (B) f32 write-only; 1 x (B*T) f32; 2 w (B*T) f32.
// Push constants: uint B, T.
// Dispatch: one workgroup per segment (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Out { float outp[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(push_constant) uniform Push { uint B; uint T; } pc;
void main() {
  uint b = vklm_group_linear();
  if (b >= pc.B) return;
  float acc = 0.0;
  for (uint t = gl_LocalInvocationID.x; t < pc.T; t += gl_WorkGroupSize.x)
    acc += x[b * pc.T + t] * w[b * pc.T + t];
  acc = vklm_wg_sum(acc);
  if (gl_LocalInvocationID.x == 0) outp[b] = acc;
}

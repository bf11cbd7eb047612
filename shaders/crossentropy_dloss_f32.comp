#version 450
// crossentropy_dloss_f32: the loss gradient scale of the mean cross-entropy, on the GPU so that
// a recorded training step can be replayed with new targets:
//   count = #{r < N : targets[r] != ignore_index};  dloss[0] = count > 0 ? grad_scale / count : 0
// The count is summed as floats in a fixed order: exact for N < 2^24.
// Bindings: 0 dloss (1) write-only; 1 targets (N) int32.
// Push constants: uint N; int ignore_index; float grad_scale.
// Dispatch: ONE workgroup; local_size_x = spec constant 0, a power of two; 8 bytes of shared
// memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Dloss { float dloss[]; };
layout(std430, binding = 1) readonly buffer Targets { int targets[]; };
layout(push_constant) uniform Push { uint N; int ignore_index; float grad_scale; } pc;
void main() {
  float cnt = 0.0;
  for (uint r = gl_LocalInvocationID.x; r < pc.N; r += gl_WorkGroupSize.x)
    if (targets[r] != pc.ignore_index) cnt += 1.0;
  cnt = vklm_wg_sum(cnt);
  if (gl_LocalInvocationID.x == 0) dloss[0] = cnt > 0.0 ? pc.grad_scale / cnt : 0.0;
}

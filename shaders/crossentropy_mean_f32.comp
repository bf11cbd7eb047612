#version 450
// crossentropy_mean_f32: the mean loss over the rows whose target is not ignore_index, summed in
// a fixed order (deterministic), so that a training loop reads back 4 bytes:
//   mean[0] = sum_{r: targets[r] != ignore} losses[r] / count  (0 when count == 0)
// Bindings: 0 mean (1) write-only; 1 losses (N); 2 targets (N) int32.
// Push constants: uint N; int ignore_index.
// Dispatch: ONE workgroup; local_size_x = spec constant 0, a power of two; 8 bytes of shared
// memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Mean { float mean_[]; };
layout(std430, binding = 1) readonly buffer Losses { float losses[]; };
layout(std430, binding = 2) readonly buffer Targets { int targets[]; };
layout(push_constant) uniform Push { uint N; int ignore_index; } pc;
void main() {
  vec2 acc = vec2(0.0);
  for (uint r = gl_LocalInvocationID.x; r < pc.N; r += gl_WorkGroupSize.x)
    if (targets[r] != pc.ignore_index) acc += vec2(losses[r], 1.0);
  acc = vklm_wg_sum2(acc);
  if (gl_LocalInvocationID.x == 0) mean_[0] = acc.y > 0.0 ? acc.x / acc.y : 0.0;
}

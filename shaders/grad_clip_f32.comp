#version 450
// grad_clip_f32: g[i] *= norm[1] for i < n (in place; norm is vklm_grad_norm's output).
// Bindings: 0 g (n) f32, read-write; 1 norm (2) f32, read-only ([1] is the clip scale).
// Push constants: uint n.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer Norm { float norm[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  g[i] *= norm[1];
}

#version 450
// residual_forward_f32: out[i] = a[i] + b[i] for i < n.
// Bindings: 0 out (n) f32 write-only; 1 a (n) f32; 2 b (n) f32.
// Push constants: uint n.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 2) readonly buffer B { float b_[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  out_[i] = a_[i] + b_[i];
}

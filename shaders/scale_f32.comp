#version 450
// scale_f32: x[i] *= s for i < n (in place).
// Bindings: 0 x (n) f32, read-write.
// Push constants: uint n; float s.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer X { float x[]; };
layout(push_constant) uniform Push { uint n; float s; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  x[i] *= pc.s;
}

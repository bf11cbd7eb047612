#version 450
// fill_f32: out[i] = value for i < n.
// Bindings: 0 out (n) f32, write-only.
// Push constants: uint n; float value.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };
layout(push_constant) uniform Push { uint n; float value; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  out_[i] = pc.value;
}

#version 450
// residual_backward_f32: da[i] += dout[i]; db[i] += dout[i] for i < n (both ACCUMULATE: they are
// residual-stream gradients).
// Bindings: 0 da (n) f32 read-write; 1 db (n) f32 read-write; 2 dout (n) f32.
// Push constants: uint n.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer Da { float da[]; };
layout(std430, binding = 1) buffer Db { float db[]; };
layout(std430, binding = 2) readonly buffer Dout { float dout[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  float d = dout[i];
  da[i] += d;
  db[i] += d;
}

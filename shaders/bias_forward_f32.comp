#version 450
// bias_forward_f32: x[r*C + c] += bias[c] for r < N, c < C (in place).
// Bindings: 0 x (N,C) f32 read-write; 1 bias (C) f32.
// Push constants: uint n (= N*C), C.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Bias { float bias_[]; };
layout(push_constant) uniform Push { uint n; uint C; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  x[i] += bias_[i % pc.C];
}

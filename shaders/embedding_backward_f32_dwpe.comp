#version 450
// embedding_backward_f32_dwpe: dwpe[t, c] += sum over b = 0..B-1 (in order) of dout[b, t, c].
// Bindings: 0 dwpe (T, C) f32, read-write (accumulates); 1 dout (B, T, C) f32, read-only.
// Push constants: uint B, TC (= T*C).
// Dispatch: one thread per (t, c) element (T*C); local_size_x = spec constant 0; grid over x,y
// by vklm_groups_1d (threads past the end return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer Dwpe { float dwpe[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(push_constant) uniform Push { uint B; uint TC; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.TC) return;
  float acc = dwpe[i];
  for (uint b = 0u; b < pc.B; b++) acc += dout[b * pc.TC + i];
  dwpe[i] = acc;
}

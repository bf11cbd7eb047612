#version 450
// swiglu_forward_f32: out[r,j] = silu(gu[r,j]) * gu[r,H+j] for r < N, j < H: each row of the
// fused (N,2H) input holds the gate (columns 0..H-1) then up (columns H..2H-1).
// Bindings: 0 out (N,H) write-only; 1 gu (N,2H).
// Push constants: uint N, H (one thread per element of out, N*H of them).
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past the end return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "activation.glsl"
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };
layout(std430, binding = 1) readonly buffer Gu { float gu[]; };
layout(push_constant) uniform Push { uint N; uint H; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.N * pc.H) return;
  uint r = i / pc.H, j = i - r * pc.H, g = r * 2 * pc.H + j;
  out_[i] = vklm_silu(gu[g]) * gu[g + pc.H];
}

#version 450
// gelu_backward_f32: dinp[i] = dout[i] * gelu'(inp[i]) for i < n (overwrites dinp).
// Bindings: 0 dinp (n) write-only; 1 dout (n); 2 inp (n).
// Push constants: uint n.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past the end return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "activation.glsl"
layout(std430, binding = 0) writeonly buffer Dinp { float dinp[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  dinp[i] = dout[i] * vklm_gelu_grad(inp[i]);
}

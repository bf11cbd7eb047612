#version 450
// gelu_backward_f32: dinp[i] = dout[i] * gelu'(inp[i]) for i < n (overwrites dinp).
// Bindings: 0 dinp (n) write-only; 1 dout (n); 2 inp (n) (IN_FMT).
// Spec constant 1 IN_FMT (load16.glsl): inp in fp32 (0), fp16 (1) or bf16 (2) words (mixed
//   precision's saved fch).
// Push constants: uint n.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past the end return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "activation.glsl"
layout(std430, binding = 0) writeonly buffer Dinp { float dinp[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
#include "load16.glsl"
layout(constant_id = 1) const uint IN_FMT = 0;
layout(std430, binding = 2) readonly buffer Inp { uint inp_[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  dinp[i] = dout[i] * vklm_gelu_grad(VKLM_LOAD_FMT(inp_, i, IN_FMT));
}

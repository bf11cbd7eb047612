#version 450
// swiglu_backward_f32: the gradient of swiglu_forward_f32, overwriting dgu (N,2H):
//   dgu[r,j] = dout[r,j] * up * silu'(gate);  dgu[r,H+j] = dout[r,j] * silu(gate)
// Bindings: 0 dgu (N,2H) write-only; 1 dout (N,H); 2 gu (N,2H) (IN_FMT).
// Spec constant 1 IN_FMT (load16.glsl): gu in fp32 (0), fp16 (1) or bf16 (2) words (mixed
//   precision's saved fch).
// Push constants: uint N, H (one thread per element of dout, N*H of them).
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past the end return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "activation.glsl"
layout(std430, binding = 0) writeonly buffer Dgu { float dgu[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
#include "load16.glsl"
layout(constant_id = 1) const uint IN_FMT = 0;
layout(std430, binding = 2) readonly buffer Gu { uint gu_[]; };
layout(push_constant) uniform Push { uint N; uint H; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.N * pc.H) return;
  uint r = i / pc.H, j = i - r * pc.H, g = r * 2 * pc.H + j;
  float gate = VKLM_LOAD_FMT(gu_, g, IN_FMT), up = VKLM_LOAD_FMT(gu_, g + pc.H, IN_FMT);
  float d = dout[i];
  dgu[g] = d * up * vklm_silu_grad(gate);
  dgu[g + pc.H] = d * vklm_silu(gate);
}

#version 450
// swiglu_forward_f32: out[r,j] = silu(gu[r,j]) * gu[r,H+j] for r < N, j < H: each row of the
// fused (N,2H) input holds the gate (columns 0..H-1) then up (columns H..2H-1).
// Bindings: 0 out (N,H) (OUT_FMT); 1 gu (N,2H) (IN_FMT).
// Push constants: uint N, H (one thread per element of out, N*H of them).
// Spec constant 1 OUT_FMT (store16.glsl): out in fp32 (0), or in fp16 (1) / bf16 (2) words,
//   element i in word i/2, low half first, one thread per word (two elements; for an odd N*H
//   the last element alone, its word's high half left as it was).
// Spec constant 2 IN_FMT (load16.glsl): gu in fp32 (0), fp16 (1) or bf16 (2) words (mixed
//   precision's saved fch).
// Dispatch: one thread per element (16-bit: per word); local_size_x = spec constant 0; grid over
// x,y by vklm_groups_1d (threads past the end return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "activation.glsl"
layout(constant_id = 1) const uint OUT_FMT = 0;
layout(std430, binding = 0) buffer Out { uint out_[]; };
#include "store16.glsl"
#include "load16.glsl"
layout(constant_id = 2) const uint IN_FMT = 0;
layout(std430, binding = 1) readonly buffer Gu { uint gu_[]; };
#define gu(i) VKLM_LOAD_FMT(gu_, i, IN_FMT)
layout(push_constant) uniform Push { uint N; uint H; } pc;
float swiglu(uint i) {
  uint r = i / pc.H, j = i - r * pc.H, g = r * 2 * pc.H + j;
  return vklm_silu(gu(g)) * gu(g + pc.H);
}
void main() {
  uint i = vklm_global_linear(), n = pc.N * pc.H;
  if (OUT_FMT == 0u) {
    if (i < n) out_[i] = floatBitsToUint(swiglu(i));
    return;
  }
  if (2u * i >= n) return;
  if (2u * i + 1u < n) out_[i] = vklm_pack16(swiglu(2u * i), swiglu(2u * i + 1u));
  else vklm_store_half(2u * i, swiglu(2u * i));
}

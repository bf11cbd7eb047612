#version 450
// gelu_forward_f32: out[i] = gelu(inp[i]) (tanh form) for i < n.
// Bindings: 0 out (n) (OUT_FMT); 1 inp (n) (IN_FMT).
// Push constants: uint n.
// Spec constant 1 OUT_FMT (store16.glsl): out in fp32 (0), or in fp16 (1) / bf16 (2) words,
//   element i in word i/2, low half first, one thread per word (for an odd n the last element
//   alone, its word's high half left as it was).
// Spec constant 2 IN_FMT (load16.glsl): inp in fp32 (0), fp16 (1) or bf16 (2) words (mixed
//   precision's saved fch, the coopmat path's separate GELU).
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
layout(std430, binding = 1) readonly buffer Inp { uint inp_[]; };
#define inp(i) VKLM_LOAD_FMT(inp_, i, IN_FMT)
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = vklm_global_linear();
  if (OUT_FMT == 0u) {
    if (i < pc.n) out_[i] = floatBitsToUint(vklm_gelu(inp(i)));
    return;
  }
  if (2u * i >= pc.n) return;
  if (2u * i + 1u < pc.n)
    out_[i] = vklm_pack16(vklm_gelu(inp(2u * i)), vklm_gelu(inp(2u * i + 1u)));
  else vklm_store_half(2u * i, vklm_gelu(inp(2u * i)));
}

#version 450
// convert_f32_to_f16: packs n floats into fp16 storage with packHalf2x16 (round to nearest even
// on the drivers we know; the GLSL spec leaves the rounding to the implementation):
//   out[w] = half(inp[2w]) | half(inp[2w+1]) << 16 for w < ceil(n/2); the high half of the last
//   word is 0 when n is odd.
// Bindings: 0 out (ceil(n/2)) uint write-only; 1 inp (n) f32.
// Push constants: uint n.
// Dispatch: one thread per output word; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past ceil(n/2) return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Out { uint out_[]; };
layout(std430, binding = 1) readonly buffer Inp { float inp[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint w = vklm_global_linear();
  uint i = 2u * w;
  if (i >= pc.n) return;
  vec2 v = vec2(inp[i], 0.0);
  if (i + 1u < pc.n) v.y = inp[i + 1u];
  out_[w] = packHalf2x16(v);
}

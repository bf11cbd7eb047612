#version 450
// convert_f16_to_f32: unpacks n halves from fp16 storage (element i in word i/2, low half first)
// into floats (exact): out[i] = float(half i of inp).
// Bindings: 0 out (n) f32 write-only; 1 inp (ceil(n/2)) uint.
// Push constants: uint n.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };
layout(std430, binding = 1) readonly buffer Inp { uint inp[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  out_[i] = unpackHalf2x16(inp[i >> 1])[i & 1u];
}

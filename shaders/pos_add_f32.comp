#version 450
// pos_add_f32: learned position embeddings for rows at positions read from a buffer:
// x[i, c] += wpe[pos_i, c] (GPT-2's embedding after a token-only lookup).
// Bindings: 0 x (n, C) f32 read-write; 1 wpe (maxT, C) f32 readonly; 2 rows (n) uvec2
//           readonly: rows[i].x = pos_i.
// Push constants: uint total (= n*C), C, maxT.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
//   vklm_groups_1d (threads past total, or positions past maxT, return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float wpe[]; };
layout(std430, binding = 2) readonly buffer Rows { uvec2 rows[]; };
layout(push_constant) uniform Push { uint total; uint C; uint maxT; } pc;

void main() {
  uint idx = vklm_global_linear();
  if (idx >= pc.total) return;
  uint i = idx / pc.C, c = idx % pc.C;
  uint pos = rows[i].x;
  if (pos >= pc.maxT) return;
  x[idx] += wpe[pos * pc.C + c];
}

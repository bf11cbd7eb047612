#version 450
// bias_backward_f32_reduce: dbias[c] += sum over r < rows, in order, of x[r*C + c] (column sums,
// ACCUMULATED). Stage 2 of the two-stage bias gradient (x = the chunk partials, rows = chunks),
// or the whole single-stage gradient (x = dout, rows = N) when the caller gives no scratch.
// Bindings: 0 dbias (C) f32 read-write; 1 x (rows,C) f32.
// Push constants: uint rows, C.
// Dispatch: one thread per column; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past C return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer Dbias { float dbias[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform Push { uint rows; uint C; } pc;
void main() {
  uint c = vklm_global_linear();
  if (c >= pc.C) return;
  float s = 0.0;
  for (uint r = 0; r < pc.rows; r++) s += x[r * pc.C + c];
  dbias[c] += s;
}

#version 450
// norm_backward_f32_reduce: stage 2 of the deterministic norm weight/bias gradients: sums the
// chunks' partial sums of norm_backward_f32_partials in chunk order and ACCUMULATES them:
//   dweight[c] += sum_k part[k*C + c];  dbias[c] += sum_k part[(chunks+k)*C + c] (nparams = 2)
// Bindings: 0 dweight (C) read-write; 1 dbias (C) read-write (untouched when nparams = 1: bind
//           any buffer); 2 part (nparams*chunks*C).
// Push constants: uint C, chunks, nparams.
// Dispatch: one thread per channel; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past C return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer Dweight { float dweight[]; };
layout(std430, binding = 1) buffer Dbias { float dbias[]; };
layout(std430, binding = 2) readonly buffer Part { float part[]; };
layout(push_constant) uniform Push { uint C; uint chunks; uint nparams; } pc;
void main() {
  uint c = vklm_global_linear();
  if (c >= pc.C) return;
  float s = 0.0;
  for (uint k = 0; k < pc.chunks; k++) s += part[k * pc.C + c];
  dweight[c] += s;
  if (pc.nparams > 1) {
    s = 0.0;
    for (uint k = 0; k < pc.chunks; k++) s += part[(pc.chunks + k) * pc.C + c];
    dbias[c] += s;
  }
}

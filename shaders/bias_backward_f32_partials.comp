#version 450
// bias_backward_f32_partials: stage 1 of the deterministic column sums of dout (N,C). Rows are
// split into `chunks` chunks of rows_per_chunk rows; for chunk k and column c:
//   part[k*C + c] = sum over the chunk's rows r, in order, of dout[r*C + c]
// bias_backward_f32_reduce (with rows = chunks) then adds the chunks in order into dbias.
// Bindings: 0 part (chunks,C) f32 write-only; 1 dout (N,C) f32.
// Push constants: uint N, C, rows_per_chunk.
// Dispatch: (ceil(C / local_size_x), chunks, 1); local_size_x = spec constant 0. One thread per
// (chunk, column): each row's reads are coalesced across the workgroup.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Part { float part[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(push_constant) uniform Push { uint N; uint C; uint rows_per_chunk; } pc;
void main() {
  uint c = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (c >= pc.C) return;
  uint k = gl_WorkGroupID.y;
  uint r0 = k * pc.rows_per_chunk, r1 = min(pc.N, r0 + pc.rows_per_chunk);
  float s = 0.0;
  for (uint r = r0; r < r1; r++) s += dout[r * pc.C + c];
  part[k * pc.C + c] = s;
}

#version 450
// norm_backward_f32_partials: stage 1 of the deterministic weight/bias gradients of layernorm
// (rms = 0) and rmsnorm (rms = 1). Rows are split into `chunks` chunks of rows_per_chunk rows;
// for chunk k and channel c, summed over the chunk's rows r in order:
//   part[k*C + c]          = sum_r dout[r,c] * n[r,c]   (n = (x - mean) * rstd, or x * rstd)
//   part[(chunks+k)*C + c] = sum_r dout[r,c]            (layernorm only: the bias gradient)
// norm_backward_f32_reduce then sums the chunks in order.
// Bindings: 0 part (nparams*chunks*C) write-only; 1 dout (N,C); 2 inp (N,C); 3 mean (N) (ignored
//           when rms = 1: bind any buffer); 4 rstd (N).
// Push constants: uint N, C, rows_per_chunk, chunks, rms.
// Dispatch: (ceil(C / local_size_x), chunks, 1); local_size_x = spec constant 0. One thread per
// (chunk, channel): reads of a row are coalesced across the workgroup.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Part { float part[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };
layout(std430, binding = 3) readonly buffer Mean { float mean_[]; };
layout(std430, binding = 4) readonly buffer Rstd { float rstd_[]; };
layout(push_constant) uniform Push { uint N; uint C; uint rows_per_chunk; uint chunks; uint rms; } pc;
void main() {
  uint c = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (c >= pc.C) return;
  uint k = gl_WorkGroupID.y;
  uint r0 = k * pc.rows_per_chunk, r1 = min(pc.N, r0 + pc.rows_per_chunk);
  float dw = 0.0, db = 0.0;
  for (uint r = r0; r < r1; r++) {
    float d = dout[r * pc.C + c];
    float x = inp[r * pc.C + c];
    float n = pc.rms != 0 ? x * rstd_[r] : (x - mean_[r]) * rstd_[r];
    dw += d * n;
    db += d;
  }
  part[k * pc.C + c] = dw;
  if (pc.rms == 0) part[(pc.chunks + k) * pc.C + c] = db;
}

#version 450
// rmsnorm_backward_f32: the input gradient of rmsnorm_forward_f32, ACCUMULATED (the input is the
// residual stream), and the partial sums of the weight gradient over a chunk of rows. Per row r,
// with g = dout * weight:
//   dinp[r,c] += rstd[r] * (g[c] - x[r,c] * rstd[r]^2 * mean_c(g * x))
// Workgroup k owns rows r0 = k*rows_per_chunk .. min(N, r0 + rows_per_chunk) - 1 and, with
// params = 1, writes their partial sums (rows in order; each column by one thread):
//   part[k*C + c] = sum_r dout[r,c] * x[r,c] * rstd[r]
// which norm_backward_f32_reduce then sums over the chunks in order into dweight.
// Bindings: 0 dinp (N,C) read-write; 1 part (chunks*C) read-write (untouched when params = 0:
//           bind any buffer); 2 dout (N,C); 3 inp (N,C); 4 weight (C); 5 rstd (N).
// Push constants: uint N, C, rows_per_chunk, chunks (= ceil(N / rows_per_chunk)), params.
// Dispatch: one workgroup per chunk (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) buffer Dinp { float dinp[]; };
layout(std430, binding = 1) buffer Part { float part[]; };
layout(std430, binding = 2) readonly buffer Dout { float dout[]; };
layout(std430, binding = 3) readonly buffer Inp { float inp[]; };
layout(std430, binding = 4) readonly buffer Weight { float weight[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd_[]; };
layout(push_constant) uniform Push { uint N; uint C; uint rows_per_chunk; uint chunks; uint params; } pc;
void main() {
  uint k = vklm_group_linear();
  if (k >= pc.chunks) return; // uniform per workgroup
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
  uint r0 = k * pc.rows_per_chunk, r1 = min(pc.N, r0 + pc.rows_per_chunk);
  uint pw = k * pc.C;
  for (uint row = r0; row < r1; row++) {
    uint base = row * pc.C;
    float rs = rstd_[row];
    float acc = 0.0;
    for (uint c = t; c < pc.C; c += W) acc += dout[base + c] * weight[c] * inp[base + c];
    float kk = vklm_wg_sum(acc) / float(pc.C) * rs * rs;
    for (uint c = t; c < pc.C; c += W) {
      float d = dout[base + c], x = inp[base + c];
      dinp[base + c] += rs * (d * weight[c] - x * kk);
      if (pc.params != 0u) {
        float dw = d * (x * rs);
        if (row != r0) dw += part[pw + c];
        part[pw + c] = dw;
      }
    }
  }
}

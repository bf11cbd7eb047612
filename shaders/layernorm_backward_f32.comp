#version 450
// layernorm_backward_f32: the input gradient of layernorm_forward_f32, ACCUMULATED (the input is
// the residual stream), and the partial sums of the weight and bias gradients over a chunk of
// rows. Per row r, with n = (x - mean) * rstd and g = dout * weight:
//   dinp[r,c] += (g[c] - mean_c(g) - n[c] * mean_c(g * n)) * rstd[r]
// Workgroup k owns rows r0 = k*rows_per_chunk .. min(N, r0 + rows_per_chunk) - 1 and, with
// params = 1, writes their partial sums (rows in order; each column by one thread):
//   part[k*C + c] = sum_r dout[r,c] * n[r,c];  part[(chunks+k)*C + c] = sum_r dout[r,c]
// which norm_backward_f32_reduce then sums over the chunks in order into dweight and dbias.
// Bindings: 0 dinp (N,C) read-write; 1 part (2*chunks*C) read-write (untouched when params = 0:
//           bind any buffer); 2 dout (N,C); 3 inp (N,C); 4 weight (C); 5 mean (N); 6 rstd (N).
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
layout(std430, binding = 5) readonly buffer Mean { float mean_[]; };
layout(std430, binding = 6) readonly buffer Rstd { float rstd_[]; };
layout(push_constant) uniform Push { uint N; uint C; uint rows_per_chunk; uint chunks; uint params; } pc;
void main() {
  uint k = vklm_group_linear();
  if (k >= pc.chunks) return; // uniform per workgroup
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
  uint r0 = k * pc.rows_per_chunk, r1 = min(pc.N, r0 + pc.rows_per_chunk);
  uint pw = k * pc.C, pb = (pc.chunks + k) * pc.C;
  for (uint row = r0; row < r1; row++) {
    uint base = row * pc.C;
    float m = mean_[row], rs = rstd_[row];
    vec2 acc = vec2(0.0);
    for (uint c = t; c < pc.C; c += W) {
      float g = dout[base + c] * weight[c];
      acc += vec2(g, g * (inp[base + c] - m) * rs);
    }
    vec2 sums = vklm_wg_sum2(acc) / float(pc.C);
    for (uint c = t; c < pc.C; c += W) {
      float d = dout[base + c];
      float g = d * weight[c];
      float n = (inp[base + c] - m) * rs;
      dinp[base + c] += (g - sums.x - n * sums.y) * rs;
      if (pc.params != 0u) {
        float dw = d * n;
        if (row != r0) {
          dw += part[pw + c];
          d += part[pb + c];
        }
        part[pw + c] = dw;
        part[pb + c] = d;
      }
    }
  }
}

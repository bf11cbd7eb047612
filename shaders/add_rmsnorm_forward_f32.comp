#version 450
// add_rmsnorm_forward_f32: a residual add and rmsnorm_forward_f32 in one dispatch: per row r,
//   res[r,c] = a[r,c] + b[r,c];  rstd[r] = 1 / sqrt(sum_c res^2 / C + eps)
//   out[r,c] = res[r,c] * rstd[r] * weight[c]
// (the same results as add_f32 followed by rmsnorm_forward_f32). Each thread reads back only
// the elements of res it wrote itself.
// Bindings: 0 res (N,C) read-write; 1 out (N,C) write-only; 2 rstd (N) write-only; 3 a (N,C);
//           4 b (N,C); 5 weight (C).
// Push constants: uint N, C; float eps.
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) buffer Res { float res[]; };
layout(std430, binding = 1) writeonly buffer Out { float out_[]; };
layout(std430, binding = 2) writeonly buffer Rstd { float rstd_[]; };
layout(std430, binding = 3) readonly buffer A { float a_[]; };
layout(std430, binding = 4) readonly buffer B { float b_[]; };
layout(std430, binding = 5) readonly buffer Weight { float weight[]; };
layout(push_constant) uniform Push { uint N; uint C; float eps; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.C;
  float s = 0.0;
  for (uint c = t; c < pc.C; c += W) {
    float x = a_[base + c] + b_[base + c];
    res[base + c] = x;
    s += x * x;
  }
  float rs = 1.0 / sqrt(vklm_wg_sum(s) / float(pc.C) + pc.eps);
  for (uint c = t; c < pc.C; c += W) out_[base + c] = res[base + c] * rs * weight[c];
  if (t == 0) rstd_[row] = rs;
}

#version 450
// rmsnorm_forward_f32: per row r of inp (N,C):
//   rstd[r] = 1 / sqrt(sum_c x^2 / C + eps);  out[r,c] = x[r,c] * rstd[r] * weight[c]
// Bindings: 0 out (N,C) write-only; 1 rstd (N) write-only; 2 inp (N,C); 3 weight (C).
// Push constants: uint N, C; float eps.
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };
layout(std430, binding = 1) writeonly buffer Rstd { float rstd_[]; };
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };
layout(std430, binding = 3) readonly buffer Weight { float weight[]; };
layout(push_constant) uniform Push { uint N; uint C; float eps; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.C;
  float s = 0.0;
  for (uint c = t; c < pc.C; c += W) {
    float x = inp[base + c];
    s += x * x;
  }
  float rs = 1.0 / sqrt(vklm_wg_sum(s) / float(pc.C) + pc.eps);
  for (uint c = t; c < pc.C; c += W) out_[base + c] = inp[base + c] * rs * weight[c];
  if (t == 0) rstd_[row] = rs;
}

#version 450
// rmsnorm_backward_f32: the input gradient of rmsnorm_forward_f32, ACCUMULATED (the input is the
// residual stream). Per row r, with g = dout * weight:
//   dinp[r,c] += rstd[r] * (g[c] - x[r,c] * rstd[r]^2 * mean_c(g * x))
// The weight gradient is norm_backward_f32_partials + norm_backward_f32_reduce.
// Bindings: 0 dinp (N,C) read-write; 1 dout (N,C); 2 inp (N,C); 3 weight (C); 4 rstd (N).
// Push constants: uint N, C.
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) buffer Dinp { float dinp[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };
layout(std430, binding = 3) readonly buffer Weight { float weight[]; };
layout(std430, binding = 4) readonly buffer Rstd { float rstd_[]; };
layout(push_constant) uniform Push { uint N; uint C; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.C;
  float rs = rstd_[row];
  float acc = 0.0;
  for (uint c = t; c < pc.C; c += W) acc += dout[base + c] * weight[c] * inp[base + c];
  float k = vklm_wg_sum(acc) / float(pc.C) * rs * rs;
  for (uint c = t; c < pc.C; c += W)
    dinp[base + c] += rs * (dout[base + c] * weight[c] - inp[base + c] * k);
}

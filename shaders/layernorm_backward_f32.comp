#version 450
// layernorm_backward_f32: the input gradient of layernorm_forward_f32, ACCUMULATED (the input is
// the residual stream). Per row r, with n = (x - mean) * rstd and g = dout * weight:
//   dinp[r,c] += (g[c] - mean_c(g) - n[c] * mean_c(g * n)) * rstd[r]
// The weight and bias gradients are norm_backward_f32_partials + norm_backward_f32_reduce.
// Bindings: 0 dinp (N,C) read-write; 1 dout (N,C); 2 inp (N,C); 3 weight (C); 4 mean (N);
//           5 rstd (N).
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
layout(std430, binding = 4) readonly buffer Mean { float mean_[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd_[]; };
layout(push_constant) uniform Push { uint N; uint C; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.C;
  float m = mean_[row], rs = rstd_[row];
  vec2 acc = vec2(0.0);
  for (uint c = t; c < pc.C; c += W) {
    float g = dout[base + c] * weight[c];
    acc += vec2(g, g * (inp[base + c] - m) * rs);
  }
  vec2 sums = vklm_wg_sum2(acc) / float(pc.C);
  for (uint c = t; c < pc.C; c += W) {
    float g = dout[base + c] * weight[c];
    float n = (inp[base + c] - m) * rs;
    dinp[base + c] += (g - sums.x - n * sums.y) * rs;
  }
}

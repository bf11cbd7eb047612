#version 450
// layernorm_forward_f32: per row r of inp (N,C):
//   mean[r] = sum_c x / C;  rstd[r] = 1 / sqrt(sum_c (x - mean)^2 / C + eps)
//   out[r,c] = (x[r,c] - mean[r]) * rstd[r] * weight[c] + bias[c]
// Bindings: 0 out (N,C) (OUT_FMT); 1 mean (N) write-only; 2 rstd (N) write-only;
//           3 inp (N,C); 4 weight (C); 5 bias (C).
// Push constants: uint N, C; float eps.
// Spec constant 1 OUT_FMT: out in fp32 (0), fp16 (1) or bf16 (2), rounded and packed as
// store16.glsl says (16-bit out: uint words; the other bindings stay fp32).
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(constant_id = 1) const uint OUT_FMT = 0; // store16.glsl: 0 f32, 1 f16, 2 bf16
layout(std430, binding = 0) buffer Out { uint out_[]; };
#include "store16.glsl"
layout(std430, binding = 1) writeonly buffer Mean { float mean_[]; };
layout(std430, binding = 2) writeonly buffer Rstd { float rstd_[]; };
layout(std430, binding = 3) readonly buffer Inp { float inp[]; };
layout(std430, binding = 4) readonly buffer Weight { float weight[]; };
layout(std430, binding = 5) readonly buffer Bias { float bias[]; };
layout(push_constant) uniform Push { uint N; uint C; float eps; } pc;
void main() {
  uint row = vklm_group_linear();
  if (row >= pc.N) return;
  uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = row * pc.C;
  float s = 0.0;
  for (uint c = t; c < pc.C; c += W) s += inp[base + c];
  float m = vklm_wg_sum(s) / float(pc.C);
  float v = 0.0;
  for (uint c = t; c < pc.C; c += W) {
    float d = inp[base + c] - m;
    v += d * d;
  }
  float rs = 1.0 / sqrt(vklm_wg_sum(v) / float(pc.C) + pc.eps);
  if (OUT_FMT == 0u) {
    for (uint c = t; c < pc.C; c += W)
      out_[base + c] = floatBitsToUint((inp[base + c] - m) * rs * weight[c] + bias[c]);
  } else { // 16-bit out: whole words per thread
#define Y(c) ((inp[base + (c)] - m) * rs * weight[c] + bias[c])
    VKLM_STORE16_ROW_STRIDED(base, pc.C, t, W, Y)
  }
  if (t == 0) {
    mean_[row] = m;
    rstd_[row] = rs;
  }
}

#version 450
// add_rmsnorm_forward_f32: a residual add and rmsnorm_forward_f32 in one dispatch: per row r,
//   res[r,c] = a[r,c] + b[r,c];  rstd[r] = 1 / sqrt(sum_c res^2 / C + eps)
//   out[r,c] = res[r,c] * rstd[r] * weight[c]
// (the same results as add_f32 followed by rmsnorm_forward_f32). Each thread reads back only
// the elements of res it wrote itself.
// Bindings: 0 res (N,C) read-write; 1 out (N,C) (OUT_FMT); 2 rstd (N) write-only; 3 a (N,C);
//           4 b (N,C); 5 weight (C).
// Push constants: uint N, C; float eps.
// Spec constant 1 OUT_FMT: out in fp32 (0), fp16 (1) or bf16 (2), rounded and packed as
// store16.glsl says (16-bit out: uint words; the other bindings stay fp32).
// Dispatch: one workgroup per row (grid over x,y by vklm_groups_1d); local_size_x = spec
// constant 0, a power of two; 8 bytes of shared memory per invocation.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) buffer Res { float res[]; };
layout(constant_id = 1) const uint OUT_FMT = 0; // store16.glsl: 0 f32, 1 f16, 2 bf16
layout(std430, binding = 1) buffer Out { uint out_[]; };
#include "store16.glsl"
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
  if (OUT_FMT == 0u) {
    for (uint c = t; c < pc.C; c += W)
      out_[base + c] = floatBitsToUint(res[base + c] * rs * weight[c]);
  } else {
    // 16-bit out: whole words per thread; a + b recomputed (the same bits as res) rather
    // than read back from res, which other threads of the group wrote
#define Y(c) ((a_[base + (c)] + b_[base + (c)]) * rs * weight[c])
    VKLM_STORE16_ROW_STRIDED(base, pc.C, t, W, Y)
  }
  if (t == 0) rstd_[row] = rs;
}

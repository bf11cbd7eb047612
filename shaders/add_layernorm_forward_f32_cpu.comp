#version 450
// add_layernorm_forward_f32_cpu: add_layernorm_forward_f32 (same results and semantics) for
// CPU-type Vulkan devices: each invocation owns one row and walks it serially (loops of
// rows_cpu.glsl; no shared memory, no barrier): per row r,
//   res[r,c] = a[r,c] + b[r,c];  mean[r] = sum_c res / C;
//   rstd[r] = 1 / sqrt(sum_c (res - mean)^2 / C + eps)
//   out[r,c] = (res[r,c] - mean[r]) * rstd[r] * weight[c] + bias[c]
// The first pass writes res as it sums; the later ones read it back (the invocation's own
// writes). Control flow stays uniform (invocations past N work on row N-1 and store nothing).
// Bindings: 0 res (N,C) read-write; 1 out (N,C) (OUT_FMT); 2 mean (N) write-only; 3 rstd (N)
//           write-only; 4 a (N,C); 5 b (N,C); 6 weight (C); 7 bias (C).
// Push constants: uint N, C; float eps.
// Spec constant 1 OUT_FMT: out in fp32 (0), fp16 (1) or bf16 (2), rounded and packed as
// store16.glsl says (16-bit out: uint words; the other bindings stay fp32).
// Dispatch: one invocation per row, local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (ceil(N / local_size_x) workgroups).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "rows_cpu.glsl"
layout(std430, binding = 0) buffer Res { float res[]; };
layout(constant_id = 1) const uint OUT_FMT = 0; // store16.glsl: 0 f32, 1 f16, 2 bf16
layout(std430, binding = 1) buffer Out { uint out_[]; };
#include "store16.glsl"
layout(std430, binding = 2) writeonly buffer Mean { float mean_[]; };
layout(std430, binding = 3) writeonly buffer Rstd { float rstd_[]; };
layout(std430, binding = 4) readonly buffer A { float a_[]; };
layout(std430, binding = 5) readonly buffer B { float b_[]; };
layout(std430, binding = 6) readonly buffer Weight { float weight[]; };
layout(std430, binding = 7) readonly buffer Bias { float bias[]; };
layout(push_constant) uniform Push { uint N; uint C; float eps; } pc;
bool live;
uint base;
// a + b at column c, stored into res (live rows); the sum's terms
float add_store(uint c) {
  float x = a_[base + c] + b_[base + c];
  if (live) res[base + c] = x;
  return x;
}
void main() {
  uint r = vklm_global_linear();
  live = r < pc.N;
  base = min(r, pc.N - 1u) * pc.C;
  float s, v;
#define ADD(c) add_store(c)
  VKLM_ROW_SUM(s, pc.C, ADD)
  float m = s / float(pc.C);
  // (an invocation past N reads row N-1's res while its owner writes it: what it computes
  // from it is never stored)
#define X(c) res[base + (c)]
#define SQ(c) ((X(c) - m) * (X(c) - m))
  VKLM_ROW_SUM(v, pc.C, SQ)
  float rs = 1.0 / sqrt(v / float(pc.C) + pc.eps);
#define Y(c) ((X(c) - m) * rs * weight[c] + bias[c])
  if (OUT_FMT == 0u) {
#define OUT(c) if (live) out_[base + (c)] = floatBitsToUint(Y(c))
    VKLM_ROW_FOR(pc.C, OUT)
  } else {
    VKLM_STORE16_ROW(base, pc.C, live, Y)
  }
  if (live) {
    mean_[r] = m;
    rstd_[r] = rs;
  }
}

#version 450
// add_rmsnorm_forward_f32_cpu: add_rmsnorm_forward_f32 (same results and semantics) for
// CPU-type Vulkan devices: each invocation owns one row and walks it serially (loops of
// rows_cpu.glsl; no shared memory, no barrier): per row r,
//   res[r,c] = a[r,c] + b[r,c];  rstd[r] = 1 / sqrt(sum_c res^2 / C + eps)
//   out[r,c] = res[r,c] * rstd[r] * weight[c]
// The first pass writes res as it sums; the second reads it back (the invocation's own writes).
// Control flow stays uniform (invocations past N work on row N-1 and store nothing).
// Bindings: 0 res (N,C) read-write; 1 out (N,C) (OUT_FMT); 2 rstd (N) write-only; 3 a (N,C);
//           4 b (N,C); 5 weight (C).
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
layout(std430, binding = 2) writeonly buffer Rstd { float rstd_[]; };
layout(std430, binding = 3) readonly buffer A { float a_[]; };
layout(std430, binding = 4) readonly buffer B { float b_[]; };
layout(std430, binding = 5) readonly buffer Weight { float weight[]; };
layout(push_constant) uniform Push { uint N; uint C; float eps; } pc;
bool live;
uint base;
// (a + b)^2 at column c, a + b stored into res (live rows)
float add_store_sq(uint c) {
  float x = a_[base + c] + b_[base + c];
  if (live) res[base + c] = x;
  return x * x;
}
void main() {
  uint r = vklm_global_linear();
  live = r < pc.N;
  base = min(r, pc.N - 1u) * pc.C;
  float s;
#define SQ(c) add_store_sq(c)
  VKLM_ROW_SUM(s, pc.C, SQ)
  float rs = 1.0 / sqrt(s / float(pc.C) + pc.eps);
#define Y(c) (res[base + (c)] * rs * weight[c])
  if (OUT_FMT == 0u) {
#define OUT(c) if (live) out_[base + (c)] = floatBitsToUint(Y(c))
    VKLM_ROW_FOR(pc.C, OUT)
  } else {
    VKLM_STORE16_ROW(base, pc.C, live, Y)
  }
  if (live) rstd_[r] = rs;
}

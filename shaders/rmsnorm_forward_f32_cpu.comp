#version 450
// rmsnorm_forward_f32_cpu: rmsnorm_forward_f32 (same results and semantics) for CPU-type Vulkan
// devices: each invocation owns one row and walks it serially (loops of rows_cpu.glsl), no
// shared memory, no barrier.
// Per row r of inp (N,C):
//   rstd[r] = 1 / sqrt(sum_c x^2 / C + eps);  out[r,c] = x[r,c] * rstd[r] * weight[c]
// Control flow stays uniform (invocations past N work on row N-1 and store nothing): weight[c]
// is one scalar load per SIMD vector.
// Bindings: 0 out (N,C) (OUT_FMT); 1 rstd (N) write-only; 2 inp (N,C); 3 weight (C).
// Push constants: uint N, C; float eps.
// Spec constant 1 OUT_FMT: out in fp32 (0), fp16 (1) or bf16 (2), rounded and packed as
// store16.glsl says (16-bit out: uint words; the other bindings stay fp32).
// Dispatch: one invocation per row, local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (ceil(N / local_size_x) workgroups).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "rows_cpu.glsl"
layout(constant_id = 1) const uint OUT_FMT = 0; // store16.glsl: 0 f32, 1 f16, 2 bf16
layout(std430, binding = 0) buffer Out { uint out_[]; };
#include "store16.glsl"
layout(std430, binding = 1) writeonly buffer Rstd { float rstd_[]; };
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };
layout(std430, binding = 3) readonly buffer Weight { float weight[]; };
layout(push_constant) uniform Push { uint N; uint C; float eps; } pc;
void main() {
  uint r = vklm_global_linear();
  bool live = r < pc.N;
  uint base = min(r, pc.N - 1u) * pc.C;
  float s;
#define X(c) inp[base + (c)]
#define SQ(c) (X(c) * X(c))
  VKLM_ROW_SUM(s, pc.C, SQ)
  float rs = 1.0 / sqrt(s / float(pc.C) + pc.eps);
#define Y(c) (X(c) * rs * weight[c])
  if (OUT_FMT == 0u) {
#define OUT(c) if (live) out_[base + (c)] = floatBitsToUint(Y(c))
    VKLM_ROW_FOR(pc.C, OUT)
  } else {
    VKLM_STORE16_ROW(base, pc.C, live, Y)
  }
  if (live) rstd_[r] = rs;
}

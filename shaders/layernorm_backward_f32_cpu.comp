#version 450
// layernorm_backward_f32_cpu: layernorm_backward_f32 (the input gradient, ACCUMULATED; same
// results and semantics) for CPU-type Vulkan devices: each invocation owns one row and walks it
// serially (loops of rows_cpu.glsl), no shared memory, no barrier. Per row r, with
// n = (x - mean) * rstd, g = dout * weight:
//   dinp[r,c] += (g[c] - mean_c(g) - n[c] * mean_c(g * n)) * rstd[r]
// Control flow stays uniform (invocations past N work on row N-1 and store nothing): weight[c]
// is one scalar load per SIMD vector. The weight and bias gradients are
// norm_backward_f32_partials + norm_backward_f32_reduce.
// Bindings: 0 dinp (N,C) read-write; 1 dout (N,C); 2 inp (N,C); 3 weight (C); 4 mean (N);
//           5 rstd (N).
// Push constants: uint N, C.
// Dispatch: one invocation per row, local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (ceil(N / local_size_x) workgroups).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "rows_cpu.glsl"
layout(std430, binding = 0) buffer Dinp { float dinp[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };
layout(std430, binding = 3) readonly buffer Weight { float weight[]; };
layout(std430, binding = 4) readonly buffer Mean { float mean_[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd_[]; };
layout(push_constant) uniform Push { uint N; uint C; } pc;
void main() {
  uint r = vklm_global_linear();
  bool live = r < pc.N;
  uint rr = min(r, pc.N - 1u), base = rr * pc.C;
  float m = mean_[rr], rs = rstd_[rr];
  float a, b;
#define G(c) (dout[base + (c)] * weight[c])
#define N(c) ((inp[base + (c)] - m) * rs)
#define GN(c) (G(c) * N(c))
  VKLM_ROW_SUM(a, pc.C, G)
  VKLM_ROW_SUM(b, pc.C, GN)
  a /= float(pc.C);
  b /= float(pc.C);
#define DINP(c) if (live) dinp[base + (c)] += (G(c) - a - N(c) * b) * rs
  VKLM_ROW_FOR(pc.C, DINP)
}

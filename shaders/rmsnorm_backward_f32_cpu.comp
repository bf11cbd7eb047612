#version 450
// rmsnorm_backward_f32_cpu: rmsnorm_backward_f32 (the input gradient, ACCUMULATED, and the
// weight gradient's partial sums per chunk of rows; same results and semantics) for CPU-type
// Vulkan devices: each invocation owns one chunk of rows and walks them serially, row by row
// (loops of rows_cpu.glsl), no shared memory, no barrier. Per row r, with g = dout * weight:
//   dinp[r,c] += rstd[r] * (g[c] - x[r,c] * rstd[r]^2 * mean_c(g * x))
// Invocation k owns rows r0 = k*rows_per_chunk .. min(N, r0 + rows_per_chunk) - 1 and, with
// params = 1, writes their partial sums (rows in order), channel-major (the chunks side by side,
// so that the invocations of a workgroup touch neighbouring floats):
//   part[c*chunks + k] = sum_r dout[r,c] * x[r,c] * rstd[r]
// which norm_backward_f32_reduce then sums over the chunks in order into dweight.
// Control flow stays uniform (every invocation walks rows_per_chunk rows; rows past N and
// invocations past the last chunk work on row N-1 and store nothing): weight[c] is one scalar
// load per SIMD vector.
// Bindings: 0 dinp (N,C) read-write; 1 part (chunks*C) read-write (untouched when params = 0:
//           bind any buffer); 2 dout (N,C); 3 inp (N,C); 4 weight (C); 5 rstd (N).
// Push constants: uint N, C, rows_per_chunk, chunks (= ceil(N / rows_per_chunk)), params.
// Dispatch: one invocation per chunk, local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (ceil(chunks / local_size_x) workgroups).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "rows_cpu.glsl"
layout(std430, binding = 0) buffer Dinp { float dinp[]; };
layout(std430, binding = 1) buffer Part { float part[]; };
layout(std430, binding = 2) readonly buffer Dout { float dout[]; };
layout(std430, binding = 3) readonly buffer Inp { float inp[]; };
layout(std430, binding = 4) readonly buffer Weight { float weight[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd_[]; };
layout(push_constant) uniform Push { uint N; uint C; uint rows_per_chunk; uint chunks; uint params; } pc;
void main() {
  uint k = vklm_global_linear();
  bool live_k = k < pc.chunks;
  uint r0 = min(k, pc.chunks - 1u) * pc.rows_per_chunk;
  uint pw = k;
  bool params = pc.params != 0u;
  for (uint j = 0u; j < pc.rows_per_chunk; j++) {
    bool live = live_k && r0 + j < pc.N, first = j == 0u;
    uint rr = min(r0 + j, pc.N - 1u), base = rr * pc.C;
    float rs = rstd_[rr];
    float acc;
#define GX(c) (dout[base + (c)] * weight[c] * inp[base + (c)])
    VKLM_ROW_SUM(acc, pc.C, GX)
    float kk = acc / float(pc.C) * rs * rs;
#define DINP(c)                                                                               \
  if (live) {                                                                                 \
    float d_ = dout[base + (c)], x_ = inp[base + (c)];                                        \
    dinp[base + (c)] += rs * (d_ * weight[c] - x_ * kk);                                      \
    if (params) {                                                                             \
      float w_ = d_ * (x_ * rs);                                                              \
      uint o_ = pw + (c) * pc.chunks;                                                         \
      if (!first) w_ += part[o_];                                                             \
      part[o_] = w_;                                                                          \
    }                                                                                         \
  }
    VKLM_ROW_FOR(pc.C, DINP)
  }
}

#version 450
// matvec_forward_q8_0: y (NM,N) = x (NM,K) @ W^T (+ bias) on rows m0..m0+NM-1 of x and y,
// W (N,K) in ggml Q8_0 blocks (the matrix-vector product of decoding; fp32 accumulation).
// Bindings: 0 y (M,N) f32 write-only; 1 x (M,K) f32; 2 W uint (ggml Q8_0: K/32 blocks of 34
//           bytes a row; K % 32 == 0);
//           3 bias (N) f32 (any buffer when has_bias = 0).
// Push constants: uint N, K, m0, has_bias, ldy, off_y (24 bytes).
// Spec constants: 0 local_size_x (WG); 1 TPR threads per row of W (a power of two <= WG);
//           2 NM rows of x (1..8). Shared memory: 4*NM*WG bytes.
// Dispatch: ceil(N / (WG/TPR)) workgroups over x,y (vklm_groups_1d). See matvec.glsl.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x_[]; };  // K % 4 == 0
#define X_VEC4
layout(std430, binding = 2) readonly buffer W { uint w_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#include "quant.glsl"
// Unit u of row n: quarter u%4 of block u/4, 8 int8 quants (columns 8u..8u+7); returns d.
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 8u * u;
  kb = ka + 4u;
  uint off = (n * (K >> 5) + (u >> 2)) * 34u;
  uint q = off + 2u + 8u * (u & 3u);
  uint a = wq_word(q), b = wq_word(q + 4u);
  for (uint j = 0; j < 4u; j++) {
    wa[j] = float(wq_s8(a, j));
    wb[j] = float(wq_s8(b, j));
  }
  return wq_half(off);
}
#include "matvec.glsl"


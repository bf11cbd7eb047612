#version 450
// matvec_forward_q4_0: y (NM,N) = x (NM,K) @ W^T (+ bias) on rows m0..m0+NM-1 of x and y,
// W (N,K) in ggml Q4_0 blocks (the matrix-vector product of decoding; fp32 accumulation).
// Bindings: 0 y (M,N) f32 write-only; 1 x (M,K) f32; 2 W uint (ggml Q4_0: K/32 blocks of 18
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
// Unit u of row n: bytes 4(u%4)..4(u%4)+3 of block u/4, whose low nibbles are columns ka..ka+3
// and high nibbles kb..kb+3 = ka+16..ka+19 (ka = 32(u/4) + 4(u%4)); returns d.
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 32u * (u >> 2) + 4u * (u & 3u);
  kb = ka + 16u;
  uint off = (n * (K >> 5) + (u >> 2)) * 18u;
  uint a = wq_word(off + 2u + 4u * (u & 3u));
  for (uint j = 0; j < 4u; j++) {
    wa[j] = float((a >> (8u * j)) & 15u) - 8.0;
    wb[j] = float((a >> (8u * j + 4u)) & 15u) - 8.0;
  }
  return wq_half(off);
}
#include "matvec.glsl"


#version 450
// matvec_forward_f16: y (NM,N) = x (NM,K) @ W^T (+ bias) on rows m0..m0+NM-1 of x and y,
// W (N,K) in fp16 storage (the matrix-vector product of decoding; fp32 accumulation).
// Bindings: 0 y (M,N) f32 write-only; 1 x (M,K) f32; 2 W uint (packed halves: element i in
//           word i/2, low half first);
//           3 bias (N) f32 (any buffer when has_bias = 0).
// Push constants: uint N, K, m0, has_bias, ldy, off_y (24 bytes).
// Spec constants: 0 local_size_x (WG); 1 TPR threads per row of W (a power of two <= WG);
//           2 NM rows of x (1..8). Shared memory: 4*NM*WG bytes.
// Dispatch: ceil(N / (WG/TPR)) workgroups over x,y (vklm_groups_1d). See matvec.glsl.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { float x_[]; };
layout(std430, binding = 2) readonly buffer W { uint w_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
// Unit u of row n: columns 8u..8u+7 (zero past K); whole words when the unit is full and starts
// on a word (K even), halves one by one otherwise.
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 8u * u;
  kb = ka + 4u;
  uint e = n * K + ka;
  if ((e & 1u) == 0u && ka + 8u <= K) {
    uint i = e >> 1;
    wa = vec4(unpackHalf2x16(w_[i]), unpackHalf2x16(w_[i + 1u]));
    wb = vec4(unpackHalf2x16(w_[i + 2u]), unpackHalf2x16(w_[i + 3u]));
  } else {
    for (uint j = 0; j < 4u; j++) {
      wa[j] = ka + j < K ? unpackHalf2x16(w_[(e + j) >> 1])[(e + j) & 1u] : 0.0;
      wb[j] = kb + j < K ? unpackHalf2x16(w_[(e + 4u + j) >> 1])[(e + 4u + j) & 1u] : 0.0;
    }
  }
  return 1.0;
}
#include "matvec.glsl"


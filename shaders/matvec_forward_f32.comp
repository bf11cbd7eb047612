#version 450
// matvec_forward_f32: y (NM,N) = x (NM,K) @ W^T (+ bias) on rows m0..m0+NM-1 of x and y,
// W (N,K) in fp32 (the matrix-vector product of decoding; fp32 accumulation).
// Bindings: 0 y (M,N) f32 write-only; 1 x (M,K) f32; 2 W uint (N*K floats);
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
// Unit u of row n: columns 8u..8u+7 (zero past K).
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 8u * u;
  kb = ka + 4u;
  uint e = n * K + ka;
  for (uint j = 0; j < 4u; j++) {
    wa[j] = ka + j < K ? uintBitsToFloat(w_[e + j]) : 0.0;
    wb[j] = kb + j < K ? uintBitsToFloat(w_[e + 4u + j]) : 0.0;
  }
  return 1.0;
}
#include "matvec.glsl"

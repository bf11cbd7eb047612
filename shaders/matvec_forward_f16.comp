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
#include "matvec_f16.glsl"

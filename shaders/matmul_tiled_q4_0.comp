#version 450
// matmul_tiled_q4_0: the GEMM of matmul_tiled_f32 with a Q4_0 weight as B, dequantized while the
// B tiles are loaded into shared memory (quant.glsl); fp32 A, accumulation and C:
//   C (M,N) = alpha * A (M,K) @ W^T + beta * C (+ bias broadcast over rows when has_bias)
// with W (N,K) row-major in ggml's Q4_0 blocks (K a multiple of 32).
// Bindings: 0 C (M,N) f32 read-write; 1 A (M,K) f32; 2 W uint (N*K/32 blocks of 18 bytes);
//           3 bias (N) f32 (any buffer when has_bias = 0).
// Push constants: as matmul_tiled_f32 (60 bytes); ldb = K, off_b = 0, batch 1.
// Spec constants: as matmul_tiled_f32, with TRANS_A = 0 and TRANS_B = 1.
// Dispatch: (ceil(N/BN), ceil(M/BM), 1). The tiling is described in matmul.glsl.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 2) readonly buffer W { uint w_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#include "quant.glsl"
#define LOAD_A(i) a_[i]
#define LOAD_B(i) dq_q4_0(i)
#include "matmul.glsl"

#version 450
// matmul_tiled_f32: batched GEMM, row-major, fp32:
//   C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias broadcast over rows when has_bias)
// with op(A) (M,K): A (M,K) or, when TRANS_A, A (K,M); op(B) (K,N): B (K,N) or, when TRANS_B,
// B (N,K). beta == 0 overwrites C without reading it. Element (r,c) of a matrix X of batch item z
// is X[off_x + z*stride_x + r*ldx + c]; stride 0 reuses one matrix for every batch item.
// Bindings: 0 C (batch,M,N) f32 read-write; 1 A f32; 2 B f32; 3 bias (N) f32 (any buffer when
//           has_bias = 0).
// Push constants: uint M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, off_a, off_b, off_c;
//           float alpha, beta; uint has_bias (60 bytes).
// Spec constants: 0 local_size_x = (BM/TM)*(BN/TN); 1 BM; 2 BN; 3 BK; 4 TM; 5 TN; 6 TRANS_A;
//           7 TRANS_B; 11 DBUF (1: double-buffered tiles, matmul.glsl). Shared memory:
//           4*BK*(BM+BN+2) bytes, twice that with DBUF.
// Dispatch: (ceil(N/BN), ceil(M/BM), batch). The tiling is described in matmul.glsl.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 2) readonly buffer B { float b_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#define LOAD_A(i) a_[i]
#define LOAD_B(i) b_[i]
#include "matmul.glsl"

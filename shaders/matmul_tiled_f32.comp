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
//           7 TRANS_B; 11 DBUF (1: double-buffered tiles, matmul.glsl); 14 VEC (vector loads
//           of A (bit 0) / B (bit 1), matmul.glsl). Shared memory:
//           4*BK*(BM+BN+2) bytes, twice that with DBUF.
// Dispatch: (ceil(N/BN), ceil(M/BM), batch). The tiling is described in matmul.glsl.
#extension GL_GOOGLE_include_directive : require
#include "matmul_tiled_f32.glsl"

#version 450
// matmul_tiled_f16: the GEMM of matmul_tiled_f32 with fp16 STORAGE for A and/or B and fp32
// accumulation and output:
//   C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias broadcast over rows when has_bias)
// A and B are uint buffers; an operand whose HALF_x spec constant is 1 holds packed halves, 2
// packed bfloat16 (element i in word i/2, low half first; any element offset, odd ones
// included), 0 fp32 bit patterns (so one shader serves f16 x f16, f32 x f16 and bf16 mixes). Shapes,
// strides, offsets and beta semantics as in matmul_tiled_f32.comp (counted in elements).
// Bindings: 0 C (batch,M,N) f32 read-write; 1 A uint; 2 B uint; 3 bias (N) f32 (any buffer when
//           has_bias = 0).
// Push constants: as matmul_tiled_f32 (60 bytes).
// Spec constants: 0..7, 11 (DBUF) and 14 (VEC) as matmul_tiled_f32; 8 HALF_A; 9 HALF_B (0 fp32, 1 fp16,
//           2 bf16).
// Dispatch: (ceil(N/BN), ceil(M/BM), batch).
// The bindings and loaders are in matmul_tiled_f16.glsl, shared with the epilogue variants
// matmul_tiled_f16_gelu.comp and matmul_tiled_f16_dgelu.comp.
#extension GL_GOOGLE_include_directive : require
#include "matmul_tiled_f16.glsl"

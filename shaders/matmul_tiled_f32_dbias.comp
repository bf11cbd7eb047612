#version 450
// matmul_tiled_f32_dbias: matmul_tiled_f32 (see it for what it computes, its push constants,
// spec constants and dispatch) that also adds the row sums of op(A) into binding 4:
//   rs[m] += sum over k < K, in order, of op(A)[m][k]      (batch 1)
// A linear layer's weight and bias gradients in one pass: dW (OC,C) += dout^T @ inp with
// A = dout (BT,OC) transposed, and dbias (OC) += the row sums of dout^T (matmul.glsl, ROWSUM).
// Bindings: 0 C; 1 A; 2 B; 3 bias (unused: has_bias = 0); 4 rs (M) f32 read-write.
#extension GL_GOOGLE_include_directive : require
layout(std430, binding = 4) buffer RowSum { float rs_[]; };
#define ROWSUM
#include "matmul_tiled_f32.glsl"

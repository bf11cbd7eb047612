#version 450
// matmul_tiled_f32_dbias: matmul_tiled_f32 (see it for what it computes, its push constants,
// spec constants and dispatch) that also adds the row sums of op(A) into binding 4:
//   rs[m] += sum over k < K, in order, of op(A)[m][k]      (batch 1)
// A linear layer's weight and bias gradients in one pass: dW (OC,C) += dout^T @ inp with
// A = dout (BT,OC) transposed, and dbias (OC) += the row sums of dout^T (matmul.glsl, ROWSUM).
// Bindings: 0 C; 1 A; 2 B; 3 bias (unused: has_bias = 0); 4 rs (M) f32 read-write.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 2) readonly buffer B { float b_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
layout(std430, binding = 4) buffer RowSum { float rs_[]; };
#define LOAD_A(i) a_[i]
#define LOAD_B(i) b_[i]
#define ROWSUM
#include "matmul.glsl"

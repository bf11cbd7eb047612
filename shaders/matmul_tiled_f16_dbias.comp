#version 450
// matmul_tiled_f16_dbias: matmul_tiled_f16 (see it for what it computes, its bindings 0-3, push
// constants, spec constants and dispatch) that also adds the row sums of op(A) into binding 4, as
// matmul_tiled_f32_dbias: rs[m] += sum over k < K, in order, of op(A)[m][k] (batch 1). Mixed
// precision's linear backward with a 16-bit saved input: dW += dout^T @ inp (inp 16-bit) and
// dbias += the row sums of dout^T in one pass.
// Binding 4: rs (M) f32, read-write.
#extension GL_GOOGLE_include_directive : require
layout(std430, binding = 4) buffer RowSum { float rs_[]; };
#define ROWSUM
#include "matmul_tiled_f16.glsl"

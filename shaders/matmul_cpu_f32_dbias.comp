#version 450
// matmul_cpu_f32_dbias: matmul_cpu_f32 (see it) that also adds the row sums of op(A) into
// binding 4: rs[m] += sum over k < K, in order, of op(A)[m][k] (batch 1): a linear layer's weight
// and bias gradients in one pass (dW += dout^T @ inp, dbias += the row sums of dout^T).
// Bindings: 0 C; 1 A; 2 B; 3 bias (unused: has_bias = 0); 4 rs (M) f32 read-write.
#define ROWSUM
#extension GL_GOOGLE_include_directive : require
#include "matmul_cpu.glsl"

#version 450
// matmul_cpu_f16b_dbias: matmul_cpu_f16b (fp32 A, 16-bit B; see it and matmul_cpu_f32) that also
// adds the row sums of op(A) into binding 4, as matmul_cpu_f32_dbias: rs[m] += sum over k < K, in
// order, of op(A)[m][k] (batch 1). Mixed precision's linear backward with a 16-bit saved input:
// dW += dout^T @ inp (inp 16-bit) and dbias += the row sums of dout^T in one pass.
// Bindings: 0 C; 1 A; 2 B uint (16-bit pairs); 3 bias (unused: has_bias = 0); 4 rs (M) f32
//           read-write.
#define ROWSUM
#define HALF_B_OPERAND
#extension GL_GOOGLE_include_directive : require
#include "matmul_cpu.glsl"

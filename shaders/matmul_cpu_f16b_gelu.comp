#version 450
// matmul_cpu_f16b_gelu: matmul_cpu_f16b (fp32 A, 16-bit B; see it and matmul_cpu_f32) with the
// GELU epilogue of matmul_cpu_f32_gelu: C = v = alpha * op(A) @ op(B) + beta * C (+ bias) and
// act = gelu(v), act in C's layout (ldc, off_c, stride_c).
// Bindings: 0 C; 1 A f32; 2 B uint (16-bit pairs); 3 bias (N) (any buffer when has_bias = 0);
//           4 act, uint words: fp32, or fp16 / bf16 pairs by spec constant 10 ACT_FMT
//           (matmul_store.glsl).
// Spec constants: as matmul_cpu_f16b, and 10 ACT_FMT.
#extension GL_GOOGLE_include_directive : require
#define HALF_B_OPERAND
#define EPI_GELU
#include "matmul_cpu.glsl"

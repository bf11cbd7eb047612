#version 450
// matmul_cpu_f16b_dgelu: matmul_cpu_f16b (fp32 A, 16-bit B; see it and matmul_cpu_f32) with the
// epilogue of matmul_cpu_f32_dgelu: C = (alpha * op(A) @ op(B) + beta * C (+ bias)) * gelu'(pre),
// pre in C's layout: fp32, or fp16 / bf16 words by spec constant 10 (PRE_FMT, matmul_store.glsl).
// Bindings: 0 C; 1 A f32; 2 B uint (16-bit pairs); 3 bias (N) (any buffer when has_bias = 0);
//           4 pre read-only (PRE_FMT).
#extension GL_GOOGLE_include_directive : require
#define HALF_B_OPERAND
#define EPI_DGELU
#include "matmul_cpu.glsl"

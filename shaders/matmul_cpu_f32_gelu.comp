#version 450
// matmul_cpu_f32_gelu: matmul_cpu_f32 (see it) with the GELU epilogue of
// matmul_tiled_f32_gelu: C = v = alpha * op(A) @ op(B) + beta * C (+ bias) and act = gelu(v),
// act in C's layout (ldc, off_c, stride_c).
// Bindings: 0 C; 1 A; 2 B; 3 bias (N) (any buffer when has_bias = 0); 4 act (uint words: fp32,
//           or 16-bit by spec constant 10 ACT_FMT: matmul_store.glsl).
#define EPI_GELU
#extension GL_GOOGLE_include_directive : require
#include "matmul_cpu.glsl"

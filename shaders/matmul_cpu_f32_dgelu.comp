#version 450
// matmul_cpu_f32_dgelu: matmul_cpu_f32 (see it) with the epilogue of matmul_tiled_f32_dgelu:
// C = (alpha * op(A) @ op(B) + beta * C (+ bias)) * gelu'(pre), pre in C's layout.
// Bindings: 0 C; 1 A; 2 B; 3 bias (N) (any buffer when has_bias = 0); 4 pre f32 read-only.
#define EPI_DGELU
#extension GL_GOOGLE_include_directive : require
#include "matmul_cpu.glsl"

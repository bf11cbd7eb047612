#version 450
// matmul_tiled_f32_gelu: matmul_tiled_f32 (see it for what it computes, its push constants, spec
// constants and dispatch) with a GELU epilogue (matmul.glsl, EPI_GELU):
//   C[z] = v = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias)   (as matmul_tiled_f32)
//   act[z] = gelu(v)   (tanh form, activation.glsl's vklm_gelu, as gelu_forward_f32)
// act has C's layout (ldc, off_c, stride_c). A GPT-2 MLP's fch = ln2 @ Wfc^T + b and its
// activation in one dispatch. With the host's split along K, only the last part runs this.
// Bindings: 0 C; 1 A; 2 B; 3 bias (N) (any buffer when has_bias = 0); 4 act (uint words:
//           fp32, or 16-bit by spec constant 10 ACT_FMT: matmul_store.glsl).
#extension GL_GOOGLE_include_directive : require
#define EPI_GELU
#include "matmul_tiled_f32.glsl"

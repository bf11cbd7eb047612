#version 450
// matmul_tiled_f32_dgelu: matmul_tiled_f32 (see it for what it computes, its push constants,
// spec constants and dispatch) with a GELU-derivative epilogue (matmul.glsl, EPI_DGELU):
//   C[z] = (alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias)) * gelu'(pre[z])
// pre has C's layout (ldc, off_c, stride_c); gelu' is activation.glsl's vklm_gelu_grad, as
// gelu_backward_f32. A GPT-2 MLP's backward dfch = (dres @ Wproj) * gelu'(fch) in one dispatch.
// With the host's split along K, the earlier parts are plain GEMMs into C and only the last
// (beta 1) runs this, so the derivative multiplies the whole sum.
// Bindings: 0 C; 1 A; 2 B; 3 bias (N) (any buffer when has_bias = 0); 4 pre f32 read-only.
#extension GL_GOOGLE_include_directive : require
#define EPI_DGELU
#include "matmul_tiled_f32.glsl"

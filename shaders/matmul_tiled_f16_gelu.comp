#version 450
// matmul_tiled_f16_gelu: matmul_tiled_f16 (see it for what it computes, its bindings 0-3, push
// constants, spec constants 0-9 and dispatch) with the GELU epilogue of matmul_tiled_f32_gelu:
//   C[z] = v = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias),  act[z] = gelu(v)
// act laid out as C (ldc, off_c, stride_c). A mixed-precision GPT-2 MLP's fc layer (its 16-bit
// weight copy as B) and its activation in one dispatch. With the host's split along K, only the
// last part runs this.
// Binding 4: act, uint words: fp32, or fp16 / bf16 packed in pairs by spec constant 10 ACT_FMT
//            (matmul_store.glsl).
#extension GL_GOOGLE_include_directive : require
#define EPI_GELU
#include "matmul_tiled_f16.glsl"

#version 450
// matmul_tiled_f16_dgelu: matmul_tiled_f16 (see it for what it computes, its bindings 0-3, push
// constants, spec constants and dispatch) with the GELU-derivative epilogue of
// matmul_tiled_f32_dgelu:
//   C[z] = (alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias)) * gelu'(pre[z])
// pre laid out as C (fp32, or 16-bit by spec constant 10 PRE_FMT: matmul_store.glsl). A mixed-precision GPT-2 MLP's dfch = (dres @ Wproj) * gelu'(fch) with
// Wproj's 16-bit copy as B, in one dispatch. With the host's split along K, only the last part
// runs this.
// Binding 4: pre read-only (uint words: fp32 bits, or fp16 / bf16 pairs by PRE_FMT).
#extension GL_GOOGLE_include_directive : require
#define EPI_DGELU
#include "matmul_tiled_f16.glsl"

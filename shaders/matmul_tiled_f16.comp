#version 450
// matmul_tiled_f16: the GEMM of matmul_tiled_f32 with fp16 STORAGE for A and/or B and fp32
// accumulation and output:
//   C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias broadcast over rows when has_bias)
// A and B are uint buffers; an operand whose HALF_x spec constant is 1 holds packed halves, 2
// packed bfloat16 (element i in word i/2, low half first; any element offset, odd ones
// included), 0 fp32 bit patterns (so one shader serves f16 x f16, f32 x f16 and bf16 mixes). Shapes,
// strides, offsets and beta semantics as in matmul_tiled_f32.comp (counted in elements).
// Bindings: 0 C (batch,M,N) f32 read-write; 1 A uint; 2 B uint; 3 bias (N) f32 (any buffer when
//           has_bias = 0).
// Push constants: as matmul_tiled_f32 (60 bytes).
// Spec constants: 0..7 as matmul_tiled_f32; 8 HALF_A; 9 HALF_B (0 fp32, 1 fp16, 2 bf16).
// Dispatch: (ceil(N/BN), ceil(M/BM), batch).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(constant_id = 8) const uint HALF_A = 1;
layout(constant_id = 9) const uint HALF_B = 1;
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { uint a_[]; };
layout(std430, binding = 2) readonly buffer B { uint b_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
// bf16 (format 2): the 16-bit word is the high half of an fp32.
float load16(uint w, uint i, uint fmt) {
  return fmt == 2u ? uintBitsToFloat((i & 1u) != 0u ? w & 0xffff0000u : w << 16)
                   : unpackHalf2x16(w)[i & 1u];
}
float load_a(uint i) { return HALF_A != 0 ? load16(a_[i >> 1], i, HALF_A) : uintBitsToFloat(a_[i]); }
float load_b(uint i) { return HALF_B != 0 ? load16(b_[i >> 1], i, HALF_B) : uintBitsToFloat(b_[i]); }
#define LOAD_A(i) load_a(i)
#define LOAD_B(i) load_b(i)
#include "matmul.glsl"

#version 450
// matmul_cpu_f16b: matmul_cpu_f32 (see there: semantics, bindings, push constants, blocking,
// dispatch) with B in 16-bit storage, converted to fp32 as it is loaded: fp32 A, fp32 C and
// accumulation. The CPU-type kernel for 16-bit weights (mixed precision's copies, fp16 model
// weights), as matmul_tiled_f16 is the GPU one.
// Binding 2: B uint, packed pairs (element i in word i/2, low half first; any element offset).
// Spec constants: as matmul_cpu_f32, and 9 HALF_B (1 fp16, 2 bf16), 8 HALF_A (0 fp32 A, else
// A 16-bit as B is: mixed precision's saved activations as the input).
#extension GL_GOOGLE_include_directive : require
#define HALF_B_OPERAND
#include "matmul_cpu.glsl"

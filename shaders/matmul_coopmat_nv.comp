#version 450
// matmul_coopmat_nv: the batched GEMM of matmul_tiled_f32 on cooperative matrices
// (GL_NV_cooperative_matrix: NVIDIA's tensor cores through VK_NV_cooperative_matrix):
//   C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias broadcast over rows when has_bias)
// with fp16 products and fp32 accumulation: A and B are converted to fp16 as they are staged
// (an fp32 or bf16 operand loses range and precision to fp16), C is fp32. Shapes, strides,
// offsets and beta semantics as matmul_tiled_f32.comp (counted in elements); tiling in
// matmul_coopmat.glsl.
// Bindings: 0 C (batch,M,N) f32 read-write; 1 A uint; 2 B uint (each in the format its FMT_x
//           spec constant gives: 0 fp32 bit patterns, 1 packed halves, 2 packed bf16 (the high
//           16 bits of an fp32); packed: element i in word i/2, low half first); 3 bias (N) f32
//           (any buffer when has_bias = 0).
// Push constants: as matmul_tiled_f32 (shaders/matmul_push.glsl, 60 bytes).
// Spec constants: 0 workgroup size (WM*WN subgroups); 1-3 the shape CM, CN, CK (one the device
//           reports for fp16 A/B and fp32 C, subgroup scope); 4-5 WM, WN subgroups; 6-7 SM, SN
//           accumulators per subgroup; 8 KS CK-steps per stage; 9-10 TRANS_A, TRANS_B; 11-12
//           FMT_A, FMT_B.
// Dispatch: (ceil(N/BN), ceil(M/BM), batch), BM = WM*SM*CM, BN = WN*SN*CN.
// Needs: VK_NV_cooperative_matrix and shaderFloat16 enabled (engine/ops/matmul_coopmat.c checks).
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define COOP_A fcoopmatNV<16, gl_ScopeSubgroup, CM, CK>
#define COOP_B fcoopmatNV<16, gl_ScopeSubgroup, CK, CN>
#define COOP_C fcoopmatNV<32, gl_ScopeSubgroup, CM, CN>
#define COOP_ELEM float16_t
#define COOP_TO_ELEM(v) float16_t(v)
#define COOP_FILL0(m) m = COOP_C(0.0)
#define COOP_LOAD_A(m, arr, i, ld) coopMatLoadNV(m, arr, i, ld, false)
#define COOP_LOAD_B(m, arr, i, ld) coopMatLoadNV(m, arr, i, ld, false)
#define COOP_STORE(m, arr, i, ld) coopMatStoreNV(m, arr, i, ld, false)
#define COOP_MAD(c, a, b) c = coopMatMulAddNV(a, b, c)
#include "matmul_coopmat.glsl"

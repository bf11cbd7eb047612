// matmul_tiled_f16.glsl: the bindings and loaders of matmul_tiled_f16.comp and its epilogue
// variants (matmul_tiled_f16_gelu.comp, matmul_tiled_f16_dgelu.comp: EPI_GELU / EPI_DGELU
// defined before including this, binding 4 as matmul_store.glsl declares it); see
// matmul_tiled_f16.comp for what they compute.
#ifndef VKLM_MATMUL_TILED_F16_GLSL
#define VKLM_MATMUL_TILED_F16_GLSL
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(constant_id = 8) const uint HALF_A = 1;
layout(constant_id = 9) const uint HALF_B = 1;
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { uint a_[]; };
layout(std430, binding = 2) readonly buffer B { uint b_[]; };
// the same words as uvec2 / uvec4 arrays, for matmul.glsl's vector loads (4 elements from element
// i, i a multiple of 4: two words of 16-bit elements, four of fp32)
layout(std430, binding = 1) readonly buffer A2 { uvec2 a2_[]; };
layout(std430, binding = 1) readonly buffer A4 { uvec4 a4_[]; };
layout(std430, binding = 2) readonly buffer B2 { uvec2 b2_[]; };
layout(std430, binding = 2) readonly buffer B4 { uvec4 b4_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#include "load16.glsl"
float load_a(uint i) { return VKLM_LOAD_FMT(a_, i, HALF_A); }
float load_b(uint i) { return VKLM_LOAD_FMT(b_, i, HALF_B); }
vec4 load16x4(uvec2 w, uint fmt) {
  return fmt == 2u ? uintBitsToFloat(uvec4(w.x << 16, w.x & 0xffff0000u, w.y << 16,
                                           w.y & 0xffff0000u))
                   : vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
}
vec4 load_a4(uint i) {
  return HALF_A != 0 ? load16x4(a2_[i >> 2], HALF_A) : uintBitsToFloat(a4_[i >> 2]);
}
vec4 load_b4(uint i) {
  return HALF_B != 0 ? load16x4(b2_[i >> 2], HALF_B) : uintBitsToFloat(b4_[i >> 2]);
}
#define LOAD_A(i) load_a(i)
#define LOAD_B(i) load_b(i)
#define LOAD_A4(i) load_a4(i)
#define LOAD_B4(i) load_b4(i)
#include "matmul.glsl"
#endif

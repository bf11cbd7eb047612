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
#endif

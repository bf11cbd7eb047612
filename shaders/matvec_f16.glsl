// matvec_f16.glsl: the bindings and weight loads of matvec_forward_f16.comp (see there for
// what it computes), then matvec.glsl; included by it and by matvec_forward_f16_gelu.comp.
#ifndef VKLM_MATVEC_F16_GLSL
#define VKLM_MATVEC_F16_GLSL
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { float x_[]; };
layout(std430, binding = 2) readonly buffer W { uint w_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
// Unit u of row n: columns 8u..8u+7 (zero past K); whole words when the unit is full and starts
// on a word (K even), halves one by one otherwise.
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 8u * u;
  kb = ka + 4u;
  uint e = n * K + ka;
  if ((e & 1u) == 0u && ka + 8u <= K) {
    uint i = e >> 1;
    wa = vec4(unpackHalf2x16(w_[i]), unpackHalf2x16(w_[i + 1u]));
    wb = vec4(unpackHalf2x16(w_[i + 2u]), unpackHalf2x16(w_[i + 3u]));
  } else {
    for (uint j = 0; j < 4u; j++) {
      wa[j] = ka + j < K ? unpackHalf2x16(w_[(e + j) >> 1])[(e + j) & 1u] : 0.0;
      wb[j] = kb + j < K ? unpackHalf2x16(w_[(e + 4u + j) >> 1])[(e + 4u + j) & 1u] : 0.0;
    }
  }
  return 1.0;
}
#include "matvec.glsl"
#endif

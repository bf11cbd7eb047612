// matvec_f32.glsl: the bindings and weight loads of matvec_forward_f32.comp (see there for
// what it computes), then matvec.glsl; included by it and by matvec_forward_f32_gelu.comp.
#ifndef VKLM_MATVEC_F32_GLSL
#define VKLM_MATVEC_F32_GLSL
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { float x_[]; };
layout(std430, binding = 2) readonly buffer W { uint w_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
// Unit u of row n: columns 8u..8u+7 (zero past K).
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 8u * u;
  kb = ka + 4u;
  uint e = n * K + ka;
  for (uint j = 0; j < 4u; j++) {
    wa[j] = ka + j < K ? uintBitsToFloat(w_[e + j]) : 0.0;
    wb[j] = kb + j < K ? uintBitsToFloat(w_[e + 4u + j]) : 0.0;
  }
  return 1.0;
}
#include "matvec.glsl"
#endif

// matvec_q8_0.glsl: the bindings and weight loads of matvec_forward_q8_0.comp (see there for
// what it computes), then matvec.glsl; included by it and by matvec_forward_q8_0_gelu.comp.
#ifndef VKLM_MATVEC_Q8_0_GLSL
#define VKLM_MATVEC_Q8_0_GLSL
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x_[]; };  // K % 4 == 0
#define X_VEC4
layout(std430, binding = 2) readonly buffer W { uint w_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#include "quant.glsl"
// Unit u of row n: quarter u%4 of block u/4, 8 int8 quants (columns 8u..8u+7); returns d.
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 8u * u;
  kb = ka + 4u;
  uint off = (n * (K >> 5) + (u >> 2)) * 34u;
  uint q = off + 2u + 8u * (u & 3u);
  uint a = wq_word(q), b = wq_word(q + 4u);
  for (uint j = 0; j < 4u; j++) {
    wa[j] = float(wq_s8(a, j));
    wb[j] = float(wq_s8(b, j));
  }
  return wq_half(off);
}
#include "matvec.glsl"
#endif

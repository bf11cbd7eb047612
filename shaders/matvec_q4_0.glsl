// matvec_q4_0.glsl: the bindings and weight loads of matvec_forward_q4_0.comp (see there for
// what it computes), then matvec.glsl; included by it and by matvec_forward_q4_0_gelu.comp.
#ifndef VKLM_MATVEC_Q4_0_GLSL
#define VKLM_MATVEC_Q4_0_GLSL
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x_[]; };  // K % 4 == 0
#define X_VEC4
layout(std430, binding = 2) readonly buffer W { uint w_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#include "quant.glsl"
// Unit u of row n: bytes 4(u%4)..4(u%4)+3 of block u/4, whose low nibbles are columns ka..ka+3
// and high nibbles kb..kb+3 = ka+16..ka+19 (ka = 32(u/4) + 4(u%4)); returns d.
float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb) {
  ka = 32u * (u >> 2) + 4u * (u & 3u);
  kb = ka + 16u;
  uint off = (n * (K >> 5) + (u >> 2)) * 18u;
  uint a = wq_word(off + 2u + 4u * (u & 3u));
  for (uint j = 0; j < 4u; j++) {
    wa[j] = float((a >> (8u * j)) & 15u) - 8.0;
    wb[j] = float((a >> (8u * j + 4u)) & 15u) - 8.0;
  }
  return wq_half(off);
}
#include "matvec.glsl"
#endif

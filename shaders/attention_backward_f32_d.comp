#version 450
// attention_backward_f32_d: the first step of the attention backward,
//   D[b,h,t] = sum_d dout[b,t,h,d] * out[b,t,h,d]   (= rowsum(dP * P) of the softmax backward).
// Bindings: 0 D (B,NH,T) f32, write-only; 1 dout (B,T,NH*HS) f32, read-only;
//           2 out (B,T,NH*HS) f32, read-only.
// Push constants: uint n (= B*T*NH rows), T, NH, HS.
// Dispatch: one thread per (b,t,h) row, row index (b*T + t)*NH + h; local_size_x = spec
// constant 0; grid over x,y by vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer D { float D_[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Out { float out_[]; };
layout(push_constant) uniform Push { uint n; uint T; uint NH; uint HS; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  uint h = i % pc.NH, bt = i / pc.NH, t = bt % pc.T, b = bt / pc.T;
  uint o = i * pc.HS;
  float s = 0.0;
  for (uint d = 0; d < pc.HS; d++) s += dout[o + d] * out_[o + d];
  D_[(b * pc.NH + h) * pc.T + t] = s;
}

#version 450
// attention_merge_f32: the second stage of split-K decode attention: combines the S slice
// results of attention_decode_f32_split.comp, in slice order (deterministic):
// M = max_s m_s, out[i, h*HS + d] = sum_s exp(m_s - M) acc_s[d] / sum_s exp(m_s - M) l_s
// (empty slices have l_s = 0 and contribute nothing).
// Bindings: 0 out (n, NH*HS) f32 writeonly; 1 part (n, NH, S, HS+2) f32 readonly.
// Push constants: uint total (= n*NH*HS), HS, S.
// Dispatch: one thread per output element; local_size_x = spec constant 0; grid over x,y by
//   vklm_groups_1d (threads past total return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Out { float outp[]; };
layout(std430, binding = 1) readonly buffer Part { float part[]; };
layout(push_constant) uniform Push { uint total; uint HS; uint S; } pc;

void main() {
  uint idx = vklm_global_linear();
  if (idx >= pc.total) return;
  uint d = idx % pc.HS, ih = idx / pc.HS; // ih = i*NH + h
  uint stride = pc.HS + 2u, base = ih * pc.S * stride;
  float M = -1.0e30;
  for (uint s = 0u; s < pc.S; s++) {
    uint b = base + s * stride;
    if (part[b + pc.HS + 1u] > 0.0) M = max(M, part[b + pc.HS]);
  }
  float num = 0.0, den = 0.0;
  for (uint s = 0u; s < pc.S; s++) {
    uint b = base + s * stride;
    float l = part[b + pc.HS + 1u];
    if (l > 0.0) {
      float w = exp(part[b + pc.HS] - M);
      num += w * part[b + d];
      den += w * l;
    }
  }
  outp[idx] = num / den;
}

#version 450
// embedding_forward_f32: out[b,t,c] = wte[tokens[b,t], c] + (has_wpe ? wpe[t, c] : 0), for the
// positions whose token lies in this call's vocabulary range [v0, v1); other positions are left
// untouched (a vocabulary split into row chunks takes one call per chunk; each position is
// written by exactly one). A token outside [0,V) gives a NaN row, written by the call whose range
// ends at V (never an out-of-bounds read); the host validates ids.
// Two consecutive chunks of a split table can be read in one call: rows v0..vs-1 from binding 2
// and vs..v1-1 from binding 4 (vs = v1: binding 2 holds the whole range, 4 is not read).
// Bindings: 0 out (B*T, C) f32, write-only; 1 tokens (B*T) int32, read-only;
//           2 wte (vs-v0, C) f32, read-only: rows v0..vs-1 of the (V, C) table;
//           3 wpe (T, C) f32, read-only (any buffer when !has_wpe);
//           4 wte2 (v1-vs, C) f32, read-only: rows vs..v1-1 (any buffer when vs = v1).
// Push constants: uint BT, T, C, V, has_wpe, v0, v1, vs.
// Dispatch: one thread per output element (B*T*C); local_size_x = spec constant 0; grid over x,y
// by vklm_groups_1d (threads past the end return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };
layout(std430, binding = 1) readonly buffer Tokens { int tokens[]; };
layout(std430, binding = 2) readonly buffer Wte { float wte[]; };
layout(std430, binding = 3) readonly buffer Wpe { float wpe[]; };
layout(std430, binding = 4) readonly buffer Wte2 { float wte2[]; };
layout(push_constant) uniform Push {
  uint BT; uint T; uint C; uint V; uint has_wpe; uint v0; uint v1; uint vs;
} pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.BT * pc.C) return;
  uint bt = i / pc.C, c = i - bt * pc.C;
  uint tok = uint(tokens[bt]);
  if (tok >= pc.V) {
    if (pc.v1 == pc.V) out_[i] = uintBitsToFloat(0x7fc00000u); // NaN
    return;
  }
  if (tok < pc.v0 || tok >= pc.v1) return; // another chunk's token
  float v = tok < pc.vs ? wte[(tok - pc.v0) * pc.C + c] : wte2[(tok - pc.vs) * pc.C + c];
  if (pc.has_wpe != 0u) v += wpe[(bt % pc.T) * pc.C + c];
  out_[i] = v;
}

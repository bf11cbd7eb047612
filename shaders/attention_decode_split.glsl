// Body of attention_decode_f32_split.comp / attention_decode_f16_split.comp (the includer
// defines KV_T and KV(x) as for attention_decode_one.glsl): the first stage of split-K decode
// attention: query row i (at position pos_i of sequence slot_i) of head h against slice s of its
// keys [0, L), L = pos_i+1, the slices being S contiguous ranges of ceil(L/S) keys (the last
// ones may be empty). Writes the slice's partial result:
// part[((i*NH + h)*S + s)*(HS+2) + d] = sum_j exp(sc_j - m) v_j[d] (unnormalised, d < HS),
// then m (the slice's max scaled score; -1e30 when empty) and l = sum_j exp(sc_j - m).
// attention_merge_f32.comp combines the S slices in a fixed order.
// Bindings: 0 part (n, NH, S, HS+2) f32 writeonly; 1 q (n, QS) f32 readonly; 2 kc, 3 vc
//           (S_seq*maxT, NKV, HS) KV_T readonly; 4 rows (n) uvec2 (position, slot) readonly.
// Push constants: uint n, NH, NKV, HS, QS; float scale; uint maxT, S.
// Dispatch: (NH/G, n, S) workgroups; local_size_x = spec constant 0 (WG >= 64, HS <= 4*WG), G =
//   spec constant 1 (query heads of one KV head per workgroup); the slice is walked as in
//   attention_decode_one.glsl (attention_decode.glsl).
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Part { float part[]; };
layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KC { KV_T kc[]; };
layout(std430, binding = 3) readonly buffer VC { KV_T vc[]; };
layout(std430, binding = 4) readonly buffer Rows { uvec2 rows[]; };
layout(push_constant) uniform Push {
  uint n; uint NH; uint NKV; uint HS; uint QS; float scale; uint maxT; uint S;
} pc;
#include "attention_decode.glsl"
void main() {
  uint h0 = gl_WorkGroupID.x * G, i = gl_WorkGroupID.y, s = gl_WorkGroupID.z;
  uint tid = gl_LocalInvocationID.x;
  uvec2 r = rows[i];
  uint L = r.x + 1u, chunk = (L + pc.S - 1u) / pc.S;
  uint jb = min(L, s * chunk), je = min(L, jb + chunk);
  float acc[MAXG * 4u], m[MAXG], l[MAXG];
  attend(h0, i, r.y * pc.maxT, jb, je, acc, m, l);
  for (uint g = 0u; g < G; g++) {
    uint base = ((i * pc.NH + h0 + g) * pc.S + s) * (pc.HS + 2u);
    for (uint c = 0u; c < 4u; c++) {
      uint d = tid + c * WG;
      if (d < pc.HS) part[base + d] = acc[g * 4u + c];
    }
    if (tid == 0u) {
      part[base + pc.HS] = m[g];
      part[base + pc.HS + 1u] = l[g];
    }
  }
}

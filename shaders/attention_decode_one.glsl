// Body of attention_decode_f32.comp / attention_decode_f16.comp (the includer defines KV_T, the
// cache's element type, and KV(x), its conversion to float): causal attention of n query rows,
// row i being at position pos_i of sequence slot_i (rows[i] = (pos_i, slot_i)), against that
// sequence's cache rows [0, pos_i] (grouped-query heads: query head h reads cache head
// h / (NH/NKV)): out[i, h*HS + d] = sum_j p_j v[j, d], p = softmax(q . k_j / sqrt(HS)).
// Bindings: 0 out (n, NH*HS) f32 writeonly;
//           1 q (n, QS) f32 readonly: query head h of row i at q[i*QS + h*HS] (the packed qkv);
//           2 kc (S*maxT, NKV, HS) KV_T readonly, 3 vc (S*maxT, NKV, HS) KV_T readonly (the
//             cache: sequence s at rows s*maxT ..);
//           4 rows (n) uvec2 readonly: (position, sequence slot) of each query row (a buffer, so
//             a recorded decode step replays for any positions without re-recording).
// Push constants: uint n, NH, NKV, HS, QS; float scale (1/sqrt(HS)); uint maxT.
// Dispatch: one workgroup per (G heads of one KV head, row): (NH/G, n, 1); local_size_x = spec
//   constant 0 (WG, >= 64, HS <= 4*WG); G = spec constant 1 (divides NH/NKV, <= 8). Keys are
//   walked in tiles of WG (one key per thread, scored for the G heads: a shared-memory tree max
//   and sum per head: an online softmax), then each thread accumulates its HS/WG output channels
//   of the G heads over the tile's probabilities held in shared memory, each cached key and value
//   read once for the G heads (attention_decode.glsl). Fixed order
//   throughout: deterministic. For few rows and long caches, attention_decode_*_split.comp +
//   attention_merge_f32.comp spread the keys over more workgroups.
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Out { float outp[]; };
layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KC { KV_T kc[]; };
layout(std430, binding = 3) readonly buffer VC { KV_T vc[]; };
layout(std430, binding = 4) readonly buffer Rows { uvec2 rows[]; };
layout(push_constant) uniform Push {
  uint n; uint NH; uint NKV; uint HS; uint QS; float scale; uint maxT;
} pc;
#include "attention_decode.glsl"
void main() {
  uint h0 = gl_WorkGroupID.x * G, i = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
  float acc[MAXG * 4u], m[MAXG], l[MAXG];
  uvec2 r = rows[i];
  attend(h0, i, r.y * pc.maxT, 0u, r.x + 1u, acc, m, l);
  for (uint g = 0u; g < G; g++)
    for (uint c = 0u; c < 4u; c++) {
      uint d = tid + c * WG;
      if (d < pc.HS) outp[i * pc.NH * pc.HS + (h0 + g) * pc.HS + d] = acc[g * 4u + c] / l[g];
    }
}

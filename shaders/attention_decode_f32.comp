#version 450
// attention_decode_f32: causal attention of n new query rows, at positions pos0+i (i < n), against
// the key/value cache rows [0, pos0+i] (grouped-query heads: query head h reads cache head
// h / (NH/NKV)). out[i, h*HS + d] = sum_j p_j v[j, d], p = softmax(q . k_j / sqrt(HS)).
// Bindings: 0 out (n, NH*HS) f32, writeonly;
//           1 q (n, QS) f32 readonly: query head h of row i at q[i*QS + h*HS] (the packed qkv);
//           2 kc (maxT, NKV, HS) f32 readonly, 3 vc (maxT, NKV, HS) f32 readonly (the cache);
//           4 info (uint) readonly: info[0] = pos0 (so a recorded decode step replays for any
//             position without re-recording).
// Push constants: uint n, NH, NKV, HS, QS; float scale (1/sqrt(HS)).
// Dispatch: one workgroup per (head, row): (NH, n, 1); local_size_x = spec constant 0 (WG, >= 64,
//   HS <= 4*WG). Keys are walked in tiles of WG (one key per thread: score; a shared-memory tree
//   max and sum: an online softmax), then each thread accumulates its HS/WG output channels over
//   the tile's probabilities held in shared memory (attention_decode.glsl). Fixed order
//   throughout: deterministic. For few rows and long caches, attention_decode_f32_split.comp +
//   attention_merge_f32.comp spread the keys over more workgroups.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Out { float outp[]; };
layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KC { float kc[]; };
layout(std430, binding = 3) readonly buffer VC { float vc[]; };
layout(std430, binding = 4) readonly buffer Info { uint info[]; };
layout(push_constant) uniform Push { uint n; uint NH; uint NKV; uint HS; uint QS; float scale; } pc;

#include "attention_decode.glsl"

void main() {
  uint h = gl_WorkGroupID.x, i = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
  float acc[4], m, l;
  attend(h, i, 0u, info[0] + i + 1u, acc, m, l);
  for (uint c = 0u; c < 4u; c++) {
    uint d = tid + c * WG;
    if (d < pc.HS) outp[i * pc.NH * pc.HS + h * pc.HS + d] = acc[c] / l;
  }
}

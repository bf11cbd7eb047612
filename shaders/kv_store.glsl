// Body of kv_store_f32.comp / kv_store_f16.comp (the includer defines KV_T, the cache's element
// type, and TO_KV(x), the conversion from float): stores the key and value heads of n new rows of
// a packed qkv buffer into the KV cache, row i at position pos_i of sequence slot_i:
// kc[slot_i*maxT + pos_i, g, d] = qkv[i, (NH+g)*HS + d], vc[...] = qkv[i, (NH+NKV+g)*HS + d].
// Bindings: 0 kc (S*maxT, NKV, HS) KV_T, 1 vc (S*maxT, NKV, HS) KV_T (written at the new rows
//           only, so read-write); 2 qkv (n, (NH+2*NKV)*HS) f32 readonly; 3 rows (n) uvec2
//           (position, slot) readonly.
// Push constants: uint total (= n*NKV*HS), NH, NKV, HS, maxT, S.
// Dispatch: one thread per (i, g, d) of the new rows; local_size_x = spec constant 0; grid over
//   x,y by vklm_groups_1d (threads past total, or rows past maxT or S, return).
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer KC { KV_T kc[]; };
layout(std430, binding = 1) buffer VC { KV_T vc[]; };
layout(std430, binding = 2) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 3) readonly buffer Rows { uvec2 rows[]; };
layout(push_constant) uniform Push { uint total; uint NH; uint NKV; uint HS; uint maxT; uint S; } pc;
void main() {
  uint idx = vklm_global_linear();
  if (idx >= pc.total) return;
  uint row = pc.NKV * pc.HS;
  uint i = idx / row, r = idx % row;
  uvec2 ps = rows[i];
  if (ps.x >= pc.maxT || ps.y >= pc.S) return;
  uint dst = (ps.y * pc.maxT + ps.x) * row + r;
  uint src = i * (pc.NH + 2u * pc.NKV) * pc.HS + pc.NH * pc.HS + r;
  kc[dst] = TO_KV(qkv[src]);
  vc[dst] = TO_KV(qkv[src + row]);
}

#version 450
// kv_store_f32: appends the key and value heads of n new rows of a packed qkv buffer to the KV
// cache at rows pos0..pos0+n-1: kc[pos0+i, g, d] = qkv[i, (NH+g)*HS + d],
// vc[pos0+i, g, d] = qkv[i, (NH+NKV+g)*HS + d].
// Bindings: 0 kc (maxT, NKV, HS) f32, 1 vc (maxT, NKV, HS) f32 (written at the new rows only,
//           so read-write); 2 qkv (n, (NH+2*NKV)*HS) f32 readonly; 3 info (uint) readonly:
//           info[0] = pos0.
// Push constants: uint total (= n*NKV*HS), NH, NKV, HS, maxT.
// Dispatch: one thread per (i, g, d) of the new rows; local_size_x = spec constant 0; grid over
//   x,y by vklm_groups_1d (threads past total, or rows past maxT, return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) buffer KC { float kc[]; };
layout(std430, binding = 1) buffer VC { float vc[]; };
layout(std430, binding = 2) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 3) readonly buffer Info { uint info[]; };
layout(push_constant) uniform Push { uint total; uint NH; uint NKV; uint HS; uint maxT; } pc;

void main() {
  uint idx = vklm_global_linear();
  if (idx >= pc.total) return;
  uint row = pc.NKV * pc.HS;
  uint i = idx / row, r = idx % row;
  uint pos = info[0] + i;
  if (pos >= pc.maxT) return;
  uint src = i * (pc.NH + 2u * pc.NKV) * pc.HS + pc.NH * pc.HS + r;
  kc[pos * row + r] = qkv[src];
  vc[pos * row + r] = qkv[src + row];
}

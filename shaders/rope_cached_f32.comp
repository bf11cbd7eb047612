#version 450
// rope_cached_f32: RoPE (rope.h's rotate_half convention) on the query and key heads of n packed
// qkv rows, row i at position pos_i read from a buffer, and the angles' cosines and sines
// taken from a table that the rope op itself computed (so the angles are rope.h's, bit for bit):
//   x[i] <- x[i] cos - x[i+HS/2] sin, x[i+HS/2] <- x[i+HS/2] cos + x[i] sin.
// Bindings: 0 x (n, (NH+2*NKV)*HS) f32, read-write in place; 1 tab (maxT, HS) f32 readonly:
//           row p = cos of the HS/2 angles of position p, then their sines; 2 rows (n) uvec2
//           readonly: rows[i].x = pos_i (.y, the sequence, is not used here).
// Push constants: uint total (= n*(NH+NKV)*HS/2 pairs), NH, NKV, HS, maxT.
// Dispatch: one thread per pair ((i*(NH+NKV) + head)*(HS/2) + k); local_size_x = spec constant
//   0; grid over x,y by vklm_groups_1d (threads past total, or positions past maxT, return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Tab { float tab[]; };
layout(std430, binding = 2) readonly buffer Rows { uvec2 rows[]; };
layout(push_constant) uniform Push { uint total; uint NH; uint NKV; uint HS; uint maxT; } pc;

void main() {
  uint idx = vklm_global_linear();
  if (idx >= pc.total) return;
  uint half_ = pc.HS / 2u;
  uint k = idx % half_, rest = idx / half_;
  uint hd = rest % (pc.NH + pc.NKV), i = rest / (pc.NH + pc.NKV);
  uint pos = rows[i].x;
  if (pos >= pc.maxT) return;
  float cs = tab[pos * pc.HS + k], sn = tab[pos * pc.HS + half_ + k];
  uint o = i * (pc.NH + 2u * pc.NKV) * pc.HS + hd * pc.HS + k;
  float x1 = x[o], x2 = x[o + half_];
  x[o] = x1 * cs - x2 * sn;
  x[o + half_] = x2 * cs + x1 * sn;
}

#version 450
// grad_norm_partial_multi_f32: grad_norm_partial_f32 over many tensors in one dispatch. Table
// entry e (first .. first+count-1) owns workgroups tab[e].first .. + tab[e].groups - 1; its local
// workgroup w (= the workgroup index of grad_norm_partial_f32's dispatch for that tensor alone)
// writes partial[part + w] = sum of g[goff + i]^2 over i = w*WG + lid + k*groups*WG (each thread
// in order, then the same fixed shared-memory tree), so every partial is bit-identical to the
// per-tensor kernel's; local workgroup 0 also zeroes partial[part + groups .. part + slots).
// Bindings: 0 g f32, read-only (the range of one block that spans the tensors);
//           1 partial f32, write-only (the range spanning their partial slices);
//           2 table (entries of 8 uint: goff, n, groups, slots, part, first, pad, pad), read-only.
// Push constants: uint first, count (this dispatch's entries), groups (its workgroups).
// Dispatch: `groups` workgroups over x,y by vklm_groups_1d; local_size_x = spec constant 0,
// a power of two.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) writeonly buffer Partial { float partial[]; };
struct Entry { uint goff, n, groups, slots, part, first, pad0, pad1; };
layout(std430, binding = 2) readonly buffer Table { Entry tab[]; };
layout(push_constant) uniform Push { uint first; uint count; uint groups; } pc;
shared float red[gl_WorkGroupSize.x];
void main() {
  uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x, gi = vklm_group_linear();
  if (gi >= pc.groups) return; // uniform per workgroup: no thread of it reaches a barrier
  uint lo = pc.first, hi = pc.first + pc.count - 1u; // the last entry whose first <= gi
  while (lo < hi) {
    uint mid = (lo + hi + 1u) >> 1;
    if (tab[mid].first <= gi) lo = mid; else hi = mid - 1u;
  }
  Entry e = tab[lo];
  uint grp = gi - e.first;
  if (grp == 0u)
    for (uint k = e.groups + lid; k < e.slots; k += wg) partial[e.part + k] = 0.0;
  float acc = 0.0;
  for (uint i = grp * wg + lid; i < e.n; i += e.groups * wg) {
    float x = g[e.goff + i];
    acc += x * x;
  }
  red[lid] = acc;
  memoryBarrierShared();
  barrier();
  for (uint s = wg / 2u; s > 0u; s >>= 1u) {
    if (lid < s) red[lid] += red[lid + s];
    memoryBarrierShared();
    barrier();
  }
  if (lid == 0u) partial[e.part + grp] = red[0];
}

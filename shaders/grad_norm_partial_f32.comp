#version 450
// grad_norm_partial_f32: stage 1 of the global gradient norm. Workgroup w writes
// partial[w] = sum of g[i]^2 over i = w*WG + lid + k*groups*WG (each thread in order, then a
// fixed shared-memory tree), so the result is deterministic for a given workgroup size.
// Workgroup 0 also zeroes partial[groups .. slots) (the padding up to the next aligned slice).
// Bindings: 0 g (n) f32, read-only; 1 partial (slots) f32, write-only.
// Push constants: uint n, groups, slots.
// Dispatch: `groups` workgroups (over x,y by vklm_groups_1d); local_size_x = spec constant 0,
// a power of two.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) writeonly buffer Partial { float partial[]; };
layout(push_constant) uniform Push { uint n; uint groups; uint slots; } pc;
shared float red[gl_WorkGroupSize.x];
void main() {
  uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x, grp = vklm_group_linear();
  if (grp >= pc.groups) return; // uniform per workgroup: no thread of it reaches a barrier
  if (grp == 0u)
    for (uint k = pc.groups + lid; k < pc.slots; k += wg) partial[k] = 0.0;
  float acc = 0.0;
  for (uint i = grp * wg + lid; i < pc.n; i += pc.groups * wg) {
    float x = g[i];
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
  if (lid == 0u) partial[grp] = red[0];
}

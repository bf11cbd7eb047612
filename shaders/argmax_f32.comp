#version 450
// argmax_f32: greedy sampling on the GPU, per row r < n: out[r] = the smallest index of the
// largest of x[r*V .. r*V+V) (NaN never wins; 0 for a row of NaNs).
// Bindings: 0 out (n) uint writeonly; 1 x (n,V) f32 readonly.
// Push constants: uint V.
// Dispatch: one workgroup per row (n, 1, 1); local_size_x = spec constant 0 (a power of two).
//   Each thread scans a strided slice, then a shared-memory tree keeps (value, index) with ties to the lower
//   index: deterministic.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Out { uint outp[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform Push { uint V; } pc;

const uint WG = gl_WorkGroupSize.x;
shared float bv[WG];
shared uint bi[WG];

void main() {
  uint tid = gl_LocalInvocationID.x, row = gl_WorkGroupID.x, base = row * pc.V;
  float best = -1.0 / 0.0;
  uint bidx = 0xffffffffu;
  for (uint j = tid; j < pc.V; j += WG) {
    float v = x[base + j];
    if (v > best || (bidx == 0xffffffffu && !isnan(v))) { best = v; bidx = j; }
  }
  bv[tid] = best;
  bi[tid] = bidx;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      float ov = bv[tid + s];
      uint oi = bi[tid + s];
      if (oi != 0xffffffffu && (bi[tid] == 0xffffffffu || ov > bv[tid] ||
                                (ov == bv[tid] && oi < bi[tid]))) {
        bv[tid] = ov;
        bi[tid] = oi;
      }
    }
    barrier();
  }
  if (tid == 0u) outp[row] = bi[0] == 0xffffffffu ? 0u : bi[0];
}

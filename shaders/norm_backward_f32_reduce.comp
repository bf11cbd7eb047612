#version 450
// norm_backward_f32_reduce: the second stage of the deterministic norm weight/bias gradients,
// over many norms in one dispatch: entry e of the table (first .. first+count-1) describes the
// partial sums one layernorm/rmsnorm backward wrote (layernorm_backward_f32, rmsnorm_backward_f32
// and their _cpu variants: chunks chunks of C channels, nparams = 2 for LayerNorm, 1 for RMSNorm,
// 0 for a frozen norm: nothing to do) and ACCUMULATES their sums, chunk by chunk in order: with
// P(p,k,c) = part[e.part + p*chunks*C + k*kstride + c*cstride] (kstride C, cstride 1 from the
// GPU kernels; 1 and chunks from the CPU variants),
//   dw[e.dw + c] += sum_k P(0,k,c);  dw2[e.db + c] += sum_k P(1,k,c)
// each sum in the fixed order of rows_cpu.glsl's VKLM_ROW_SUM (8 lanes over blocks of 64 chunks):
// several loads in flight per thread, and rounding like a sum of about 8 + chunks/64 terms.
// Offsets are in floats from the start of each binding.
// Bindings: 0 dw (weight gradients) read-write; 1 dw2 (bias gradients; may alias binding 0, every
//           float is written by at most one thread) read-write; 2 part, read-only; 3 table
//           (entries of 8 uint: dw, db, part, C, chunks, nparams, kstride, cstride), read-only.
// Push constants: uint first, count.
// Dispatch: (ceil(max nparams*C / local_size_x), count, 1); local_size_x = spec constant 0:
// thread x of row y serves entry first + y, parameter x / C, channel x % C.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "rows_cpu.glsl"
layout(std430, binding = 0) buffer Dw { float dw[]; };
layout(std430, binding = 1) buffer Db { float db[]; };
layout(std430, binding = 2) readonly buffer Part { float part[]; };
struct Entry { uint dw, db, part, C, chunks, nparams, kstride, cstride; };
layout(std430, binding = 3) readonly buffer Table { Entry tab[]; };
layout(push_constant) uniform Push { uint first; uint count; } pc;
void main() {
  uint i = gl_GlobalInvocationID.x, y = gl_WorkGroupID.y;
  if (y >= pc.count) return;
  Entry e = tab[pc.first + y];
  if (i >= e.nparams * e.C) return;
  uint p = i / e.C, c = i % e.C;
  uint at = e.part + p * e.chunks * e.C + c * e.cstride;
  float s;
#define P(k) part[at + (k) * e.kstride]
  VKLM_ROW_SUM(s, e.chunks, P)
  if (p == 0u) dw[e.dw + c] += s;
  else db[e.db + c] += s;
}

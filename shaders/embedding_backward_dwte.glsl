// embedding_backward_dwte.glsl: the body of embedding_backward_f32_dwte.comp and, with WITH_DWPE
// defined, embedding_backward_f32_dwte_dwpe.comp (which also does dwpe in the same dispatch).
// dwte[tok, c] += sum of dout[p, c] over the positions p holding token tok, added one by one in
// increasing p (the order of the plain C loop), so the result is deterministic and equals the
// reference bit for bit. Only tokens in this call's vocabulary range [v0, v1) are handled (one
// call per row chunk of a split table; dwte holds its rows).
// WITH_DWPE: workgroups x >= slots do the position table instead: workgroup slots + t adds
// dwpe[t, c] += sum over b = 0..B-1 (in order) of dout[b, t, c] (embedding_backward_f32_dwpe's
// sum, bit for bit), so the backward of a learned-position embedding is one dispatch.
// Bindings: 0 dwte (v1-v0, C) f32, read-write (accumulates): rows v0..v1-1 of the (V, C)
//             gradient; 1 dout (B*T, C) f32, read-only;
//           2 plan int32, read-only: the bucket plan of engine/ops/embedding.h
//             ([0] U, [1] BT, ORDER at 2, START at 2+BT, TOKEN at 3+2BT);
//           3 (WITH_DWPE) dwpe (T, C) f32, read-write (accumulates).
// Push constants: uint BT, C, V, v0, v1, slots, B.
// Dispatch: x = slots, a fixed number of token slots (<= BT; workgroup x < slots handles distinct
// tokens x, x + slots, ... < U, so the geometry does not depend on the tokens and a recorded step
// replays with a new plan), plus T = BT/B with WITH_DWPE; y = ceil(C / local_size_x), one thread
// per channel. local_size_x = spec constant 0.
#ifndef VKLM_EMBEDDING_BACKWARD_DWTE_GLSL
#define VKLM_EMBEDDING_BACKWARD_DWTE_GLSL
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer Dwte { float dwte[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Plan { int plan[]; };
#ifdef WITH_DWPE
layout(std430, binding = 3) buffer Dwpe { float dwpe[]; };
#endif
layout(push_constant) uniform Push { uint BT; uint C; uint V; uint v0; uint v1; uint slots; uint B; } pc;
void main() {
  uint c = gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (c >= pc.C) return;
#ifdef WITH_DWPE
  if (gl_WorkGroupID.x >= pc.slots) {
    uint t = gl_WorkGroupID.x - pc.slots, TC = (pc.BT / pc.B) * pc.C, i = t * pc.C + c;
    float acc = dwpe[i];
    for (uint b = 0u; b < pc.B; b++) acc += dout[b * TC + i];
    dwpe[i] = acc;
    return;
  }
#endif
  uint U = min(uint(plan[0]), pc.BT);
  uint ord = 2u, start = 2u + pc.BT, token = 3u + 2u * pc.BT;
  for (uint u = gl_WorkGroupID.x; u < U; u += pc.slots) {
    uint tok = uint(plan[token + u]);
    if (tok >= pc.V) continue; // a corrupt plan: skip rather than write out of bounds
    if (tok >= pc.v1) break;   // TOKEN ascends: the rest belong to later chunks
    if (tok < pc.v0) continue; // an earlier chunk's token
    uint k0 = min(uint(plan[start + u]), pc.BT), k1 = min(uint(plan[start + u + 1u]), pc.BT);
    uint at = (tok - pc.v0) * pc.C + c;
    float acc = dwte[at];
    for (uint k = k0; k < k1; k++) {
      uint p = uint(plan[ord + k]);
      if (p < pc.BT) acc += dout[p * pc.C + c];
    }
    dwte[at] = acc;
  }
}
#endif

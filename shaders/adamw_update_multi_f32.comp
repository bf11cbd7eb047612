#version 450
// adamw_update_multi_f32: adamw_update_f32 over many tensors ("slots") in one dispatch, each
// element updated by exactly the same fp32 formulas (so the results are bit-identical):
//   g = grad * (use_clip ? clip[1] : 1);  p *= decay (when the slot's apply_wd)
//   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
//   p -= step_size * (m / (sqrt(v) / bc2_sqrt + eps))
// Slot e (table entries first .. first+count-1) owns workgroups tab[e].first .. (the next
// entry's first) - 1; its workgroup w covers units (w - tab[e].first)*items*WG + k*WG + lid,
// k < items, a unit being one element, or with PAIRS the elements 2u and 2u+1, at element
// offsets tab[e].p, .m, .v, .g of the bindings below. A workgroup finds its slot by binary
// search over the entries' first workgroups.
// 16-bit copies (PAIRS): a slot whose flags (bits 1-2) name a format (1 fp16, 2 bf16) gets word
// tab[e].h + u of binding 7 = the pair's updated values, rounded to nearest even, low half first
// (the high half 0 past the end).
// use_clip 2: when clip[0] (the gradient norm) is not finite, nothing is written (a skipped step).
// Bindings: 0 params f32, read-write; 1 m f32, read-write; 2 v f32, read-write;
//           3 grads f32, read-only (each the range of one block that spans the slots);
//           4 step (one vklm_adamw_step, 48 bytes), read-only;
//           5 clip (2 f32: [0] norm, [1] scale; any buffer when !use_clip), read-only;
//           6 table (entries of 8 uint: p, m, v, g, n, flags (bit 0 apply_wd), first, h);
//           7 the 16-bit copies, uint (any buffer without PAIRS).
// Push constants: uint first, count (this dispatch's entries), groups (its workgroups), items
// (units per thread), use_clip (0, 1, 2).
// Spec constants: 0 local_size_x; 1 PAIRS.
// Dispatch: `groups` workgroups over x,y by vklm_groups_1d.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint PAIRS = 0;
#include "common.glsl"
layout(std430, binding = 0) buffer Params { float params[]; };
layout(std430, binding = 1) buffer M { float m[]; };
layout(std430, binding = 2) buffer V { float v[]; };
layout(std430, binding = 3) readonly buffer Grads { float grads[]; };
layout(std430, binding = 4) readonly buffer Step {
  float lr, beta1, beta2, eps, weight_decay, decay, one_m_beta1, one_m_beta2, step_size, bc2_sqrt;
  uint t, pad;
} st;
layout(std430, binding = 5) readonly buffer Clip { float clip[]; };
struct Entry { uint p, m, v, g, n, flags, first, h; };
layout(std430, binding = 6) readonly buffer Table { Entry tab[]; };
layout(std430, binding = 7) buffer Half { uint half_[]; };
layout(push_constant) uniform Push { uint first; uint count; uint groups; uint items; uint use_clip; } pc;
void main() {
  uint grp = vklm_group_linear(), wg = gl_WorkGroupSize.x;
  if (grp >= pc.groups) return;
  uint lo = pc.first, hi = pc.first + pc.count - 1u; // the last entry whose first <= grp
  while (lo < hi) {
    uint mid = (lo + hi + 1u) >> 1;
    if (tab[mid].first <= grp) lo = mid; else hi = mid - 1u;
  }
  Entry e = tab[lo];
  if (pc.use_clip == 2u && (isnan(clip[0]) || isinf(clip[0]))) return;
  float scale = pc.use_clip != 0u ? clip[1] : 1.0;
  uint base = (grp - e.first) * pc.items * wg + gl_LocalInvocationID.x;
  uint fmt = (e.flags >> 1) & 3u;
  for (uint k = 0u; k < pc.items; k++) {
    uint u = base + k * wg;
    uint i0 = PAIRS != 0u ? 2u * u : u;
    if (i0 >= e.n) break;
    vec2 out_p = vec2(0.0);
    for (uint q = 0u; q <= PAIRS; q++) {
      uint i = i0 + q;
      if (i >= e.n) break;
      float g = grads[e.g + i];
      if (pc.use_clip != 0u) g *= scale;
      float p = params[e.p + i];
      if ((e.flags & 1u) != 0u) p *= st.decay;
      float mm = st.beta1 * m[e.m + i] + st.one_m_beta1 * g;
      float vv = st.beta2 * v[e.v + i] + st.one_m_beta2 * g * g;
      float denom = sqrt(vv) / st.bc2_sqrt + st.eps;
      m[e.m + i] = mm;
      v[e.v + i] = vv;
      p = p - st.step_size * (mm / denom);
      params[e.p + i] = p;
      out_p[q] = p;
    }
    if (PAIRS != 0u && fmt != 0u) {
      half_[e.h + u] = fmt == 1u ? packHalf2x16(out_p)
                                 : vklm_bf16_bits(out_p.x) | (vklm_bf16_bits(out_p.y) << 16);
    }
  }
}

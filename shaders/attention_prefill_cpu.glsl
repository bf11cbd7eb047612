// Body of attention_prefill_f32_cpu.comp / attention_prefill_f16_cpu.comp (the includer defines
// KV_T, the cache's element type, and KV(x), its conversion to float): attention_prefill.glsl's
// result (causal attention of n query rows against the KV cache, each row at its own (position,
// slot), GQA heads) for CPU-type Vulkan devices (lavapipe), where a workgroup runs on one CPU
// thread a SIMD vector at a time and barriers and shared memory are slow; the structure of
// attention_forward_f32_cpu.comp. An invocation owns R (row, head) pairs, holding their scaled
// queries, output accumulators and running max and sum (online softmax over blocks of BK keys)
// in registers: no shared memory, no barrier. The workgroup's W*R pairs are RQ = W*R/GH
// consecutive query rows i0 .. times GH consecutive heads h0 .. of one KV head (pair p = i*W +
// local id is row i0 + p/GH, head h0 + p%GH), so every load of k_j and v_j has one address for
// the whole SIMD vector and feeds R pairs. Rows of several sequences: every invocation scans the
// workgroup's rows for the next slot (in increasing order) and the end of its keys, the same
// scan for all (uniform control flow), and the pass masks pairs of other slots and keys past each
// row's position. Positions are clamped to maxT-1; rows of a slot >= S get zeros.
// Bindings: 0 out (n, NH*HS) f32 writeonly; 1 q (n, QS) f32 readonly; 2 kc, 3 vc (S*maxT, NKV,
//           HS) KV_T readonly; 4 rows (n) uvec2 (position, slot) readonly.
// Push constants: uint n, NH, NKV, QS; float scale (1/sqrt(HS)); uint maxT, S.
// Spec constants: 0 workgroup size W, 1 HS head size, 2 BK keys per softmax block, 3 R pairs per
//   invocation, 4 GH heads per workgroup (divides NH/NKV and W*R).
// Dispatch: (ceil(n/RQ), NH/GH, 1).
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(constant_id = 1) const uint HS = 64;
layout(constant_id = 2) const uint BK = 16;
layout(constant_id = 3) const uint R = 4;
layout(constant_id = 4) const uint GH = 1;
const float MASKED = -3.0e38;
const uint NONE = 0xffffffffu;
// STMT(d) for d in [0, HS), fully unrolled (HS is a specialization constant): the arrays indexed
// by d then live in registers, and llvmpipe counts no iterations for this loop against its limit.
#define DLOOP(STMT) [[unroll]] for (uint d_ = 0u; d_ < HS; d_++) { STMT(d_); }

#include "attention_prefill_io.glsl"

void main() {
  const uint W = gl_WorkGroupSize.x, RQ = W * R / GH;
  const uint i0 = gl_WorkGroupID.x * RQ, h0 = gl_WorkGroupID.y * GH;
  const uint lid = gl_LocalInvocationID.x;
  const uint rowstride = pc.NKV * HS, kvoff = (h0 / (pc.NH / pc.NKV)) * HS;
  const uint iend = min(pc.n, i0 + RQ);

  // pairs p_k = k*W + lid (k < R): rows clamped to n-1 for loading
  uint rpos[R], rslot[R];
  float q[R * HS], acc[R * HS], m[R], l[R];
  [[unroll]] for (uint k = 0u; k < R; k++) {
    const uint p = k * W + lid, i = i0 + p / GH;
    const uvec2 rw = rows[min(i, pc.n - 1u)];
    rpos[k] = min(rw.x, pc.maxT - 1u);
    rslot[k] = i < pc.n ? rw.y : NONE;
    const uint qb = min(i, pc.n - 1u) * pc.QS + (h0 + p % GH) * HS;
#define INIT(d) q[k * HS + (d)] = q_[qb + (d)] * pc.scale, acc[k * HS + (d)] = 0.0
    DLOOP(INIT)
    m[k] = MASKED;
    l[k] = 0.0;
  }

  uint prev = NONE; // the last slot served (NONE: none yet)
  for (;;) {
    // the next slot: the smallest above prev among the workgroup's rows, and its last key
    uint cur = NONE, last = 0u;
    for (uint i = i0; i < iend; i++) {
      uvec2 rw = rows[i];
      if (rw.y >= pc.S || (prev != NONE && rw.y <= prev) || rw.y > cur) continue;
      uint p = min(rw.x, pc.maxT - 1u);
      last = rw.y < cur ? p : max(last, p);
      cur = rw.y;
    }
    if (cur == NONE) break;
    prev = cur;
    const uint base = cur * pc.maxT, kend = last + 1u;
    for (uint k0 = 0; k0 < kend; k0 += BK) {
      const uint nk = min(BK, kend - k0);
      float s[R * BK], mnew[R];
      [[unroll]] for (uint k = 0u; k < R; k++) mnew[k] = m[k];
      for (uint j = 0; j < nk; j++) {
        const uint kb = (base + k0 + j) * rowstride + kvoff;
        float dot[R];
        [[unroll]] for (uint k = 0u; k < R; k++) dot[k] = 0.0;
        // one load of k_j[d] feeds R pairs
#define DOT(d)                                                                                \
  {                                                                                           \
    float kd_ = KV(kc[kb + (d)]);                                                             \
    [[unroll]] for (uint k = 0u; k < R; k++) dot[k] += q[k * HS + (d)] * kd_;                 \
  }
        DLOOP(DOT)
        [[unroll]] for (uint k = 0u; k < R; k++) {
          bool ok = rslot[k] == cur && k0 + j <= rpos[k];
          s[k * BK + j] = ok ? dot[k] : MASKED;
          mnew[k] = max(mnew[k], s[k * BK + j]);
        }
      }
      [[unroll]] for (uint k = 0u; k < R; k++) {
        float corr = exp(m[k] - mnew[k]);
        l[k] *= corr;
#define CORR(d) acc[k * HS + (d)] *= corr
        DLOOP(CORR)
        m[k] = mnew[k];
      }
      for (uint j = 0; j < nk; j++) {
        const uint vb = (base + k0 + j) * rowstride + kvoff;
        float p[R];
        [[unroll]] for (uint k = 0u; k < R; k++) {
          p[k] = s[k * BK + j] == MASKED ? 0.0 : exp(s[k * BK + j] - m[k]);
          l[k] += p[k];
        }
#define ACC(d)                                                                                \
  {                                                                                           \
    float vd_ = KV(vc[vb + (d)]);                                                             \
    [[unroll]] for (uint k = 0u; k < R; k++) acc[k * HS + (d)] += p[k] * vd_;                 \
  }
        DLOOP(ACC)
      }
    }
  }
  [[unroll]] for (uint k = 0u; k < R; k++) {
    const uint p = k * W + lid, i = i0 + p / GH;
    if (i < pc.n) {
      float inv = l[k] > 0.0 ? 1.0 / l[k] : 0.0;
      uint o = i * pc.NH * HS + (h0 + p % GH) * HS;
#define OUT(d) outp[o + (d)] = acc[k * HS + (d)] * inv
      DLOOP(OUT)
    }
  }
}

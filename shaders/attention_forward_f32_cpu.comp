#version 450
// attention_forward_f32_cpu: attention_forward_f32 (same results and semantics: grouped-query
// heads, causal or not, out and lse) for CPU-type Vulkan devices (lavapipe), where a workgroup
// runs on one CPU thread a SIMD vector at a time and barriers and shared memory are slow. For
// query head h of batch b, row t:
//   s_j = (q_t . k_j) / sqrt(HS) for keys j (j <= t when causal), p_j = softmax_j(s),
//   out[b,t,h,:] = sum_j p_j v_j,  lse[b,h,t] = log(sum_j exp(s_j)).
// Key/value head g = h / (NH/NKV). Each invocation owns one query row, holding q, the output
// accumulator and the running max and sum (online softmax over blocks of BK keys) in registers:
// no shared memory, no barrier. The invocations of a workgroup are consecutive rows t of one
// (b, h) and walk the same keys in the same order, so every load of k_j and v_j has one address
// for the whole SIMD vector. Control flow stays uniform: the key loop runs to the workgroup's
// last row (causal) with the mask applied per row, and rows past T work on row T-1 and store
// nothing.
// Bindings: 0 out (B,T,NH*HS) (OUT_FMT); 1 lse (B,NH,T) f32, write-only;
//           2 qkv (B,T,(NH+2*NKV)*HS) in QKV_FMT (spec constant 6), read-only (NH query
//           heads, NKV key, NKV value).
// Push constants: uint T, NH, NKV, causal; float scale (1/sqrt(HS)).
// Spec constants: 0 workgroup size W, 1 HS head size, 2 BK keys per softmax block, 3 R query
//   rows per invocation (rows q0 + i*W + local id, i < R, of the workgroup's block of W*R rows
//   starting at q0): each load of k_j and v_j feeds R rows. 4 OUT_FMT: out in fp32 (0), or
//   fp16 (1) / bf16 (2) words (store16.glsl; HS even: each row whole words).
// Dispatch: (ceil(T/(W*R)), NH, B).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(constant_id = 1) const uint HS = 64;
layout(constant_id = 2) const uint BK = 16;
layout(constant_id = 3) const uint R = 4;
const float MASKED = -3.0e38;
// STMT(d) for d in [0, HS), fully unrolled (HS is a specialization constant): the arrays
// indexed by d then live in registers, and llvmpipe counts no iterations for this loop against
// its limit of 65535 per invocation (see rows_cpu.glsl).
#define DLOOP(STMT) [[unroll]] for (uint d_ = 0u; d_ < HS; d_++) { STMT(d_); }

layout(constant_id = 4) const uint OUT_FMT = 0; // store16.glsl: 0 f32, 1 f16, 2 bf16
layout(std430, binding = 0) buffer Out { uint out_[]; };
#include "store16.glsl"
layout(std430, binding = 1) writeonly buffer Lse { float lse[]; };
#include "load16.glsl"
// qkv's format, spec constant 6 QKV_FMT (load16.glsl): 0 f32, 1 f16, 2 bf16 (mixed precision's
// saved qkv; HS even); everything is computed in fp32 from the widened values.
layout(constant_id = 6) const uint QKV_FMT = 0;
layout(std430, binding = 2) readonly buffer Qkv { uint qkv_[]; };
#define QKV(i) VKLM_LOAD_FMT(qkv_, i, QKV_FMT)
layout(push_constant) uniform Push { uint T; uint NH; uint NKV; uint causal; float scale; } pc;

void main() {
  const uint W = gl_WorkGroupSize.x, QB = W * R;
  const uint T = pc.T, q0 = gl_WorkGroupID.x * QB, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint lid = gl_LocalInvocationID.x;
  const uint C3 = (pc.NH + 2u * pc.NKV) * HS;
  const uint g = h / (pc.NH / pc.NKV);
  const uint base = b * T * C3;
  const uint kcol = (pc.NH + g) * HS, vcol = (pc.NH + pc.NKV + g) * HS;
  const bool causal = pc.causal != 0u;

  // rows t_i = q0 + i*W + lid (i < R), clamped to T-1 for loading
  uint tt[R];
  float q[R * HS], acc[R * HS], m[R], l[R];
  [[unroll]] for (uint i = 0u; i < R; i++) {
    tt[i] = min(q0 + i * W + lid, T - 1u);
    const uint qb = base + tt[i] * C3 + h * HS;
#define INIT(d) q[i * HS + (d)] = QKV(qb + (d)) * pc.scale, acc[i * HS + (d)] = 0.0
    DLOOP(INIT)
    m[i] = MASKED;
    l[i] = 0.0;
  }
  const uint kend = causal ? min(T, q0 + QB) : T;
  for (uint k0 = 0; k0 < kend; k0 += BK) {
    const uint nk = min(BK, kend - k0);
    float s[R * BK], mnew[R];
    [[unroll]] for (uint i = 0u; i < R; i++) mnew[i] = m[i];
    for (uint j = 0; j < nk; j++) {
      const uint kb = base + (k0 + j) * C3 + kcol;
      float dot[R];
      [[unroll]] for (uint i = 0u; i < R; i++) dot[i] = 0.0;
      // one load of k_j[d] feeds R rows
#define DOT(d)                                                                                \
  {                                                                                           \
    float kd_ = QKV(kb + (d));                                                                \
    [[unroll]] for (uint i = 0u; i < R; i++) dot[i] += q[i * HS + (d)] * kd_;                 \
  }
      DLOOP(DOT)
      [[unroll]] for (uint i = 0u; i < R; i++) {
        bool ok = !causal || k0 + j <= tt[i];
        s[i * BK + j] = ok ? dot[i] : MASKED;
        mnew[i] = max(mnew[i], s[i * BK + j]);
      }
    }
    [[unroll]] for (uint i = 0u; i < R; i++) {
      float corr = exp(m[i] - mnew[i]);
      l[i] *= corr;
#define CORR(d) acc[i * HS + (d)] *= corr
      DLOOP(CORR)
      m[i] = mnew[i];
    }
    for (uint j = 0; j < nk; j++) {
      const uint vb = base + (k0 + j) * C3 + vcol;
      float p[R];
      [[unroll]] for (uint i = 0u; i < R; i++) {
        p[i] = s[i * BK + j] == MASKED ? 0.0 : exp(s[i * BK + j] - m[i]);
        l[i] += p[i];
      }
#define ACC(d)                                                                                \
  {                                                                                           \
    float vd_ = QKV(vb + (d));                                                                \
    [[unroll]] for (uint i = 0u; i < R; i++) acc[i * HS + (d)] += p[i] * vd_;                 \
  }
      DLOOP(ACC)
    }
  }
  [[unroll]] for (uint i = 0u; i < R; i++) {
    const uint t = q0 + i * W + lid;
    if (t < T) {
      float inv = 1.0 / l[i];
      uint o = (b * T + t) * pc.NH * HS + h * HS;
      if (OUT_FMT == 0u) {
#define OUT(d) out_[o + (d)] = floatBitsToUint(acc[i * HS + (d)] * inv)
        DLOOP(OUT)
      } else { // 16-bit (HS even): whole words, the row's own
#define OUT16(w) \
  out_[(o >> 1) + (w)] = vklm_pack16(acc[i * HS + 2u * (w)] * inv, acc[i * HS + 2u * (w) + 1u] * inv)
        [[unroll]] for (uint w_ = 0u; w_ < HS / 2u; w_++) { OUT16(w_); }
      }
      lse[(b * pc.NH + h) * T + t] = m[i] + log(l[i]);
    }
  }
}

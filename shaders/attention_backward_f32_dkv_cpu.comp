#version 450
// attention_backward_f32_dkv_cpu: attention_backward_f32_dkv (same results and semantics) for
// CPU-type Vulkan devices (lavapipe). For key/value head g of batch b and key row j, summing
// over every query head h of g's group (h = g*G .. g*G+G-1, G = NH/NKV) and every query row t
// that sees j, with p = exp(s_tj - lse[b,h,t]) recomputed from qkv, dp = dout[b,t,h,:] . v_j
// and ds = p (dp - D[b,h,t]):
//   dv_j = sum_{h,t} p dout[b,t,h,:],   dk_j = scale * sum_{h,t} ds q_t.
// Each invocation owns one key row, holding k_j, v_j and both accumulators in registers, and
// sums in a fixed order (heads, then query rows): deterministic, no atomics, no shared memory,
// no barrier. The invocations of a workgroup are consecutive keys of one (b, g) and walk the
// same query rows in the same order, so every load of q_t, dout_t, lse and D has one address
// for the whole SIMD vector. Control flow stays uniform: the query loop starts at the
// workgroup's first key (causal) with the mask applied per key, and keys past T work on key
// T-1 and store nothing.
// Bindings: 0 dqkv (B,T,(NH+2*NKV)*HS) f32, write-only (only the key and value heads are written
//           here); 1 dout (B,T,NH*HS) f32; 2 lse (B,NH,T) f32; 3 D (B,NH,T) f32 (from
//           attention_backward_f32_dq); 4 qkv (B,T,(NH+2*NKV)*HS) (QKV_FMT); 1..4 read-only.
// Push constants: uint T, NH, NKV, causal; float scale (1/sqrt(HS)).
// Spec constants: 0 workgroup size W, 1 HS head size, 2 R key rows per invocation (keys
//   k0 + i*W + local id, i < R, of the workgroup's block of W*R keys starting at k0): each load
//   of q_t and dout_t feeds R keys.
// Dispatch: (ceil(T/(W*R)), NKV, B).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(constant_id = 1) const uint HS = 64;
layout(constant_id = 2) const uint R = 4;
// STMT(d) for d in [0, HS), fully unrolled (HS is a specialization constant): the arrays
// indexed by d then live in registers, and llvmpipe counts no iterations for this loop against
// its limit of 65535 per invocation (see rows_cpu.glsl).
#define DLOOP(STMT) [[unroll]] for (uint d_ = 0u; d_ < HS; d_++) { STMT(d_); }

layout(std430, binding = 0) writeonly buffer Dqkv { float dqkv[]; };
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };
layout(std430, binding = 2) readonly buffer Lse { float lse[]; };
layout(std430, binding = 3) readonly buffer D { float D_[]; };
#include "load16.glsl"
// qkv's format, spec constant 6 QKV_FMT (load16.glsl): 0 f32, 1 f16, 2 bf16 (mixed precision's
// saved qkv; HS even); everything is computed in fp32 from the widened values.
layout(constant_id = 6) const uint QKV_FMT = 0;
layout(std430, binding = 4) readonly buffer Qkv { uint qkv_[]; };
#define QKV(i) VKLM_LOAD_FMT(qkv_, i, QKV_FMT)
layout(push_constant) uniform Push { uint T; uint NH; uint NKV; uint causal; float scale; } pc;

void main() {
  const uint W = gl_WorkGroupSize.x, KB = W * R;
  const uint T = pc.T, k0 = gl_WorkGroupID.x * KB, g = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint lid = gl_LocalInvocationID.x;
  const uint C3 = (pc.NH + 2u * pc.NKV) * HS;
  const uint G = pc.NH / pc.NKV;
  const uint base = b * T * C3;
  const uint kcol = (pc.NH + g) * HS, vcol = (pc.NH + pc.NKV + g) * HS;
  const bool causal = pc.causal != 0u;

  // keys j_i = k0 + i*W + lid (i < R), clamped to T-1 for loading
  uint jj[R];
  float k[R * HS], v[R * HS], dk[R * HS], dv[R * HS];
  [[unroll]] for (uint i = 0u; i < R; i++) {
    jj[i] = min(k0 + i * W + lid, T - 1u);
    const uint kb = base + jj[i] * C3;
#define INIT(d)                                                                               \
  k[i * HS + (d)] = QKV(kb + kcol + (d)) * pc.scale, v[i * HS + (d)] = QKV(kb + vcol + (d)),  \
  dk[i * HS + (d)] = 0.0, dv[i * HS + (d)] = 0.0
    DLOOP(INIT)
  }
  const uint qstart = causal ? k0 : 0u;
  for (uint hh = 0; hh < G; hh++) {
    const uint h = g * G + hh;
    for (uint t = qstart; t < T; t++) {
      const uint qb = base + t * C3 + h * HS, ob = (b * T + t) * pc.NH * HS + h * HS;
      float s[R], dp[R];
      [[unroll]] for (uint i = 0u; i < R; i++) s[i] = dp[i] = 0.0;
      // one load of q_t[d] and dout_t[d] feeds R keys
#define DOT(d)                                                                                \
  {                                                                                           \
    float qd_ = QKV(qb + (d)), od_ = dout[ob + (d)];                                          \
    [[unroll]] for (uint i = 0u; i < R; i++) {                                                \
      s[i] += k[i * HS + (d)] * qd_;                                                          \
      dp[i] += v[i * HS + (d)] * od_;                                                         \
    }                                                                                         \
  }
      DLOOP(DOT)
      const float Lt = lse[(b * pc.NH + h) * T + t], Dt = D_[(b * pc.NH + h) * T + t];
      float p[R], ds[R];
      [[unroll]] for (uint i = 0u; i < R; i++) {
        p[i] = (!causal || jj[i] <= t) ? exp(s[i] - Lt) : 0.0;
        ds[i] = p[i] * (dp[i] - Dt);
      }
#define ACC(d)                                                                                \
  {                                                                                           \
    float qd_ = QKV(qb + (d)), od_ = dout[ob + (d)];                                          \
    [[unroll]] for (uint i = 0u; i < R; i++) {                                                \
      dv[i * HS + (d)] += p[i] * od_;                                                         \
      dk[i * HS + (d)] += ds[i] * qd_;                                                        \
    }                                                                                         \
  }
      DLOOP(ACC)
    }
  }
  [[unroll]] for (uint i = 0u; i < R; i++) {
    const uint j = k0 + i * W + lid;
    if (j < T) {
      const uint kb = base + j * C3;
#define OUT(d) dqkv[kb + kcol + (d)] = dk[i * HS + (d)] * pc.scale, dqkv[kb + vcol + (d)] = dv[i * HS + (d)]
      DLOOP(OUT)
    }
  }
}

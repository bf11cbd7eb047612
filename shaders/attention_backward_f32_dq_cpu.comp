#version 450
// attention_backward_f32_dq_cpu: attention_backward_f32_dq (same results and semantics) for
// CPU-type Vulkan devices (lavapipe). For query head h of batch b, row t, with
// p_j = exp(s_j - lse[b,h,t]) recomputed from qkv and dp_j = dout[b,t,h,:] . v_j, in one sweep
// over the keys j (in order): D = sum_j p_j dp_j, A = sum_j p_j dp_j k_j, P = sum_j p_j k_j,
//   dq[b,t,h,:] = scale * (A - D P)   (= scale * sum_j p_j (dp_j - D) k_j: the query part of
//   dqkv), and D[b,h,t] = D for the dK/dV kernel that runs next. The forward's output is not
// read (attention_backward_f32_dq says why).
// Each invocation owns its query rows, holding q, its dout row and the A and P accumulators in
// registers: no shared memory, no barrier. The invocations of a workgroup are consecutive rows
// of one (b, h) and walk the same keys in the same order, so every load of k_j and v_j has one
// address for the whole SIMD vector. Control flow stays uniform: the key loop runs to the
// workgroup's last row (causal) with the mask applied per row, and rows past T work on row T-1
// and store nothing.
// Bindings: 0 dqkv (B,T,(NH+2*NKV)*HS) f32, write-only (only the query heads are written here);
//           1 dout (B,T,NH*HS) f32; 2 lse (B,NH,T) f32; 3 D (B,NH,T) f32, write-only (the
//           invocation's rows t < T); 4 qkv (B,T,(NH+2*NKV)*HS) (QKV_FMT); 1, 2, 4 read-only.
// Push constants: uint T, NH, NKV, causal; float scale (1/sqrt(HS)).
// Spec constants: 0 workgroup size W, 1 HS head size, 2 R query rows per invocation (rows
//   q0 + i*W + local id, i < R, of the workgroup's block of W*R rows starting at q0): each load of
//   k_j and v_j feeds R rows.
// Dispatch: (ceil(T/(W*R)), NH, B).
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
layout(std430, binding = 3) writeonly buffer D { float D_[]; };
#include "load16.glsl"
// qkv's format, spec constant 6 QKV_FMT (load16.glsl): 0 f32, 1 f16, 2 bf16 (mixed precision's
// saved qkv; HS even); everything is computed in fp32 from the widened values.
layout(constant_id = 6) const uint QKV_FMT = 0;
layout(std430, binding = 4) readonly buffer Qkv { uint qkv_[]; };
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
  float q[R * HS], o[R * HS], acc[R * HS], accp[R * HS], L[R], Dr[R];
  [[unroll]] for (uint i = 0u; i < R; i++) {
    tt[i] = min(q0 + i * W + lid, T - 1u);
    const uint qb = base + tt[i] * C3 + h * HS, ob = (b * T + tt[i]) * pc.NH * HS + h * HS;
#define INIT(d)                                                                               \
  q[i * HS + (d)] = QKV(qb + (d)), o[i * HS + (d)] = dout[ob + (d)], acc[i * HS + (d)] = 0.0,  \
  accp[i * HS + (d)] = 0.0
    DLOOP(INIT)
    L[i] = lse[(b * pc.NH + h) * T + tt[i]];
    Dr[i] = 0.0;
  }
  const uint kend = causal ? min(T, q0 + QB) : T;
  for (uint j = 0; j < kend; j++) {
    const uint kb = base + j * C3;
    float s[R], dp[R];
    [[unroll]] for (uint i = 0u; i < R; i++) s[i] = dp[i] = 0.0;
    // one load of k_j[d] and v_j[d] feeds R rows
#define DOT(d)                                                                                \
  {                                                                                           \
    float kd_ = QKV(kb + kcol + (d)), vd_ = QKV(kb + vcol + (d));                             \
    [[unroll]] for (uint i = 0u; i < R; i++) {                                                \
      s[i] += q[i * HS + (d)] * kd_;                                                          \
      dp[i] += o[i * HS + (d)] * vd_;                                                         \
    }                                                                                         \
  }
    DLOOP(DOT)
    float pd[R], pp[R];
    [[unroll]] for (uint i = 0u; i < R; i++) {
      pp[i] = (!causal || j <= tt[i]) ? exp(s[i] * pc.scale - L[i]) : 0.0;
      pd[i] = pp[i] * dp[i];
      Dr[i] += pd[i];
    }
#define ACC(d)                                                                                \
  {                                                                                           \
    float kd_ = QKV(kb + kcol + (d));                                                         \
    [[unroll]] for (uint i = 0u; i < R; i++) {                                                \
      acc[i * HS + (d)] += pd[i] * kd_;                                                       \
      accp[i * HS + (d)] += pp[i] * kd_;                                                      \
    }                                                                                         \
  }
    DLOOP(ACC)
  }
  [[unroll]] for (uint i = 0u; i < R; i++) {
    const uint t = q0 + i * W + lid;
    if (t < T) {
      const uint qb = base + t * C3 + h * HS;
#define OUT(d) dqkv[qb + (d)] = (acc[i * HS + (d)] - Dr[i] * accp[i * HS + (d)]) * pc.scale
      DLOOP(OUT)
      D_[(b * pc.NH + h) * T + t] = Dr[i];
    }
  }
}

#version 450
// attention_backward_f32_dq: the query gradient of fused attention (see attention_forward_f32).
// For query head h of batch b, row t, with p_j = exp(s_j - lse[b,h,t]) recomputed from qkv and
// dp_j = dout[b,t,h,:] . v_j, in ONE sweep over the keys j (in order):
//   D = sum_j p_j dp_j,  A = sum_j p_j dp_j k_j,  P = sum_j p_j k_j,
//   dq[b,t,h,:] = scale * (A - D P)   (= scale * sum_j p_j (dp_j - D) k_j, written into the
//   query part of dqkv), and D[b,h,t] = D for attention_backward_f32_dkv, which runs next.
// D is taken from P and dP themselves, not as rowsum(dout * out) from the forward's saved
// output: the forward's output is not read at all (it may be stored rounded to 16 bits), and
// sum_j ds_j = 0 holds to the rounding of fp32 whatever out's format (the key biases' gradient,
// exactly zero in exact arithmetic, stays at fp32 noise).
// Key/value tiles of BK rows pass through shared memory; no TxT matrix is stored.
// Bindings: 0 dqkv (B,T,(NH+2*NKV)*HS) f32, write-only (only the query heads are written here);
//           1 dout (B,T,NH*HS) f32; 2 lse (B,NH,T) f32; 3 D (B,NH,T) f32, write-only (rows
//           t < T of the workgroup's query block); 4 qkv (B,T,(NH+2*NKV)*HS) (QKV_FMT);
//           1, 2, 4 read-only.
// Push constants: uint T, NH, NKV, causal; float scale (1/sqrt(HS)).
// Spec constants: 0 workgroup size NT, 1 BQ query rows per workgroup, 2 BK keys per tile, 3 HS,
//   4 RM query rows per thread. Thread (g, c), c < TPR = NT/(BQ/RM), computes ds of rows
//   g*RM .. g*RM+RM-1 against keys c, c+TPR, ... of the tile and accumulates dims c, c+TPR, ...
//   of their A and P (register tiles of RM x KPT and 2 x RM x DPT); each thread sums D of its
//   rows over the whole tile (the same sums, in the same order, in every thread of a row).
// Shared memory: (2*BQ + 2*BK) * (HS+1) + 2*BQ*(BK+1) floats (the p*dp and p tiles).
// Dispatch: (ceil(T/BQ), NH, B).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(constant_id = 1) const uint BQ = 64;
layout(constant_id = 2) const uint BK = 32;
layout(constant_id = 3) const uint HS = 64;
layout(constant_id = 4) const uint RM = 4;
const uint NT = gl_WorkGroupSize.x;
const uint TPR = NT / (BQ / RM);
const uint KPT = (BK + TPR - 1) / TPR;
const uint DPT = (HS + TPR - 1) / TPR;
const uint LD = HS + 1, SLD = BK + 1;

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

shared float sQ[BQ * LD];
shared float sO[BQ * LD]; // dout rows
shared float sK[BK * LD];
shared float sV[BK * LD];
shared float sS[BQ * SLD]; // p * dp
shared float sP[BQ * SLD]; // p

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint r0 = (tid / TPR) * RM, c = tid % TPR;
  const uint T = pc.T, q0 = gl_WorkGroupID.x * BQ, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint C3 = (pc.NH + 2u * pc.NKV) * HS;
  const uint g = h / (pc.NH / pc.NKV);
  const uint base = b * T * C3;
  const uint kcol = (pc.NH + g) * HS, vcol = (pc.NH + pc.NKV + g) * HS;
  const bool causal = pc.causal != 0u;

  for (uint i = tid; i < BQ * HS; i += NT) {
    uint rr = i / HS, d = i % HS, t = q0 + rr;
    bool in_ = t < T;
    sQ[rr * LD + d] = in_ ? QKV(base + t * C3 + h * HS + d) : 0.0;
    sO[rr * LD + d] = in_ ? dout[(b * T + t) * pc.NH * HS + h * HS + d] : 0.0;
  }
  float L[RM], Dr[RM], acc[RM * DPT], accp[RM * DPT];
  for (uint i = 0; i < RM; i++) {
    uint t = q0 + r0 + i;
    L[i] = t < T ? lse[(b * pc.NH + h) * T + t] : 0.0;
    Dr[i] = 0.0;
  }
  for (uint i = 0; i < RM * DPT; i++) acc[i] = accp[i] = 0.0;

  const uint kend = causal ? min(T, q0 + BQ) : T;
  for (uint k0 = 0; k0 < kend; k0 += BK) {
    barrier();
    for (uint i = tid; i < BK * HS; i += NT) {
      uint kk = i / HS, d = i % HS, t = k0 + kk;
      bool in_ = t < T;
      sK[kk * LD + d] = in_ ? QKV(base + t * C3 + kcol + d) : 0.0;
      sV[kk * LD + d] = in_ ? QKV(base + t * C3 + vcol + d) : 0.0;
    }
    barrier();
    float s[RM * KPT], dp[RM * KPT];
    for (uint i = 0; i < RM * KPT; i++) {
      s[i] = 0.0;
      dp[i] = 0.0;
    }
    for (uint d = 0; d < HS; d++) {
      float a[RM], o[RM];
      for (uint i = 0; i < RM; i++) {
        a[i] = sQ[(r0 + i) * LD + d];
        o[i] = sO[(r0 + i) * LD + d];
      }
      for (uint j = 0; j < KPT; j++) {
        uint k = min(c + j * TPR, BK - 1u);
        float kv = sK[k * LD + d], vv = sV[k * LD + d];
        for (uint i = 0; i < RM; i++) {
          s[i * KPT + j] += a[i] * kv;
          dp[i * KPT + j] += o[i] * vv;
        }
      }
    }
    for (uint j = 0; j < KPT; j++) {
      uint k = c + j * TPR, key = k0 + k;
      if (k < BK)
        for (uint i = 0; i < RM; i++) {
          uint t = q0 + r0 + i;
          float p = 0.0;
          if (t < T && key < T && (!causal || key <= t)) p = exp(s[i * KPT + j] * pc.scale - L[i]);
          sS[(r0 + i) * SLD + k] = p * dp[i * KPT + j];
          sP[(r0 + i) * SLD + k] = p;
        }
    }
    barrier();
    for (uint k = 0; k < BK; k++) {
      float pd[RM], pp[RM];
      for (uint i = 0; i < RM; i++) {
        pd[i] = sS[(r0 + i) * SLD + k];
        pp[i] = sP[(r0 + i) * SLD + k];
        Dr[i] += pd[i];
      }
      for (uint j = 0; j < DPT; j++) {
        float kv = sK[k * LD + min(c + j * TPR, HS - 1u)];
        for (uint i = 0; i < RM; i++) {
          acc[i * DPT + j] += pd[i] * kv;
          accp[i * DPT + j] += pp[i] * kv;
        }
      }
    }
  }

  for (uint i = 0; i < RM; i++) {
    uint t = q0 + r0 + i;
    if (t < T) {
      uint o = base + t * C3 + h * HS;
      for (uint j = 0; j < DPT; j++) {
        uint d = c + j * TPR;
        if (d < HS) dqkv[o + d] = (acc[i * DPT + j] - Dr[i] * accp[i * DPT + j]) * pc.scale;
      }
      if (c == 0u) D_[(b * pc.NH + h) * T + t] = Dr[i];
    }
  }
}

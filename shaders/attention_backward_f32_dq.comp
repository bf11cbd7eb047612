#version 450
// attention_backward_f32_dq: the query gradient of fused attention (see attention_forward_f32).
// For query head h of batch b, row t, first D[b,h,t] = sum_d dout[b,t,h,d] * out[b,t,h,d]
// (= rowsum(dP * P), summed over d in order; written to D for attention_backward_f32_dkv, which
// runs next), then, with p_j = exp(s_j - lse[b,h,t]) recomputed from qkv:
//   dp_j = dout[b,t,h,:] . v_j,  ds_j = p_j (dp_j - D[b,h,t]),
//   dq[b,t,h,:] = scale * sum_j ds_j k_j        (written into the query part of dqkv).
// Key/value tiles of BK rows pass through shared memory; no TxT matrix is stored.
// Bindings: 0 dqkv (B,T,(NH+2*NKV)*HS) f32, write-only (only the query heads are written here);
//           1 dout (B,T,NH*HS) f32; 2 lse (B,NH,T) f32; 3 D (B,NH,T) f32, write-only (rows
//           t < T of the workgroup's query block); 4 qkv (B,T,(NH+2*NKV)*HS) f32;
//           5 out (B,T,NH*HS) (the forward's output, OUT_FMT); 1, 2, 4, 5 read-only.
// Push constants: uint T, NH, NKV, causal; float scale (1/sqrt(HS)).
// Spec constants: 0 workgroup size NT, 1 BQ query rows per workgroup, 2 BK keys per tile, 3 HS,
//   4 RM query rows per thread. Thread (g, c), c < TPR = NT/(BQ/RM), computes ds of rows
//   g*RM .. g*RM+RM-1 against keys c, c+TPR, ... of the tile and accumulates dims c, c+TPR, ...
//   of their dq (register tiles of RM x KPT and RM x DPT). 5 OUT_FMT: out in fp32 (0), or
//   fp16 (1) / bf16 (2) words (mixed precision's saved attention output).
// Shared memory: (2*BQ + 2*BK) * (HS+1) + BQ*(BK+1) floats (the ds tile first passes the rows'
// D to the threads).
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
layout(std430, binding = 4) readonly buffer Qkv { float qkv[]; };
layout(constant_id = 5) const uint OUT_FMT = 0; // out: 0 f32, 1 f16, 2 bf16 (HS even)
layout(std430, binding = 5) readonly buffer Out { uint out_[]; };
float out_at(uint i) {
  if (OUT_FMT == 0u) return uintBitsToFloat(out_[i]);
  uint w = out_[i >> 1];
  if (OUT_FMT == 2u) return uintBitsToFloat((i & 1u) != 0u ? w & 0xffff0000u : w << 16);
  return unpackHalf2x16(w)[i & 1u];
}
layout(push_constant) uniform Push { uint T; uint NH; uint NKV; uint causal; float scale; } pc;

shared float sQ[BQ * LD];
shared float sO[BQ * LD]; // dout rows
shared float sK[BK * LD];
shared float sV[BK * LD];
shared float sS[BQ * SLD]; // ds

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
    sQ[rr * LD + d] = in_ ? qkv[base + t * C3 + h * HS + d] : 0.0;
    sO[rr * LD + d] = in_ ? dout[(b * T + t) * pc.NH * HS + h * HS + d] : 0.0;
  }
  barrier();
  // D of the block's rows, each by one thread from its dout row in shared memory, through the
  // ds tile (free until the key loop's second barrier) to the threads that use it
  for (uint rr = tid; rr < BQ; rr += NT) {
    uint t = q0 + rr;
    float s = 0.0;
    if (t < T) {
      uint o = (b * T + t) * pc.NH * HS + h * HS;
      for (uint d = 0; d < HS; d++) s += sO[rr * LD + d] * out_at(o + d);
      D_[(b * pc.NH + h) * T + t] = s;
    }
    sS[rr * SLD] = s;
  }
  barrier();
  float L[RM], Dr[RM], acc[RM * DPT];
  for (uint i = 0; i < RM; i++) {
    uint t = q0 + r0 + i;
    L[i] = t < T ? lse[(b * pc.NH + h) * T + t] : 0.0;
    Dr[i] = sS[(r0 + i) * SLD];
  }
  for (uint i = 0; i < RM * DPT; i++) acc[i] = 0.0;

  const uint kend = causal ? min(T, q0 + BQ) : T;
  for (uint k0 = 0; k0 < kend; k0 += BK) {
    barrier();
    for (uint i = tid; i < BK * HS; i += NT) {
      uint kk = i / HS, d = i % HS, t = k0 + kk;
      bool in_ = t < T;
      sK[kk * LD + d] = in_ ? qkv[base + t * C3 + kcol + d] : 0.0;
      sV[kk * LD + d] = in_ ? qkv[base + t * C3 + vcol + d] : 0.0;
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
          float ds = 0.0;
          if (t < T && key < T && (!causal || key <= t)) {
            float p = exp(s[i * KPT + j] * pc.scale - L[i]);
            ds = p * (dp[i * KPT + j] - Dr[i]);
          }
          sS[(r0 + i) * SLD + k] = ds;
        }
    }
    barrier();
    for (uint k = 0; k < BK; k++) {
      float ds[RM];
      for (uint i = 0; i < RM; i++) ds[i] = sS[(r0 + i) * SLD + k];
      for (uint j = 0; j < DPT; j++) {
        float kv = sK[k * LD + min(c + j * TPR, HS - 1u)];
        for (uint i = 0; i < RM; i++) acc[i * DPT + j] += ds[i] * kv;
      }
    }
  }

  for (uint i = 0; i < RM; i++) {
    uint t = q0 + r0 + i;
    if (t < T) {
      uint o = base + t * C3 + h * HS;
      for (uint j = 0; j < DPT; j++) {
        uint d = c + j * TPR;
        if (d < HS) dqkv[o + d] = acc[i * DPT + j] * pc.scale;
      }
    }
  }
}

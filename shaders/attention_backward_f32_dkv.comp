#version 450
// attention_backward_f32_dkv: the key and value gradients of fused attention (see
// attention_forward_f32). For key/value head g of batch b and key row j, summing over every
// query head h of g's group (h = g*G .. g*G+G-1, G = NH/NKV) and every query row t that sees j,
// with p = exp(s_tj - lse[b,h,t]) recomputed from qkv, dp = dout[b,t,h,:] . v_j and
// ds = p (dp - D[b,h,t]):
//   dv_j = sum_{h,t} p dout[b,t,h,:],   dk_j = scale * sum_{h,t} ds q_t.
// Each workgroup owns BKV key rows of one (b, g): the sum runs in a fixed order (heads, then
// query tiles of BQ rows through shared memory), so the result is deterministic without atomics.
// Bindings: 0 dqkv (B,T,(NH+2*NKV)*HS) f32, write-only (only the key and value heads are written
//           here); 1 dout (B,T,NH*HS) f32; 2 lse (B,NH,T) f32; 3 D (B,NH,T) f32 (from
//           attention_backward_f32_dq); 4 qkv (B,T,(NH+2*NKV)*HS) (QKV_FMT); 1..4 read-only.
// Push constants: uint T, NH, NKV, causal; float scale (1/sqrt(HS)).
// Spec constants: 0 workgroup size NT, 1 BKV key rows per workgroup, 2 BQ query rows per tile,
//   3 HS, 4 RM key rows per thread. Thread (g, c), c < TPR = NT/(BKV/RM), computes p and ds of
//   keys g*RM .. g*RM+RM-1 against query rows c, c+TPR, ... of the tile and accumulates dims
//   c, c+TPR, ... of their dk and dv.
// Shared memory: (2*BKV + 2*BQ) * (HS+1) + 2*BKV*(BQ+1) + 2*BQ floats.
// Dispatch: (ceil(T/BKV), NKV, B).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(constant_id = 1) const uint BKV = 32;
layout(constant_id = 2) const uint BQ = 32;
layout(constant_id = 3) const uint HS = 64;
layout(constant_id = 4) const uint RM = 2;
const uint NT = gl_WorkGroupSize.x;
const uint TPR = NT / (BKV / RM);
const uint QPT = (BQ + TPR - 1) / TPR; // query rows per thread in the score tile
const uint DPT = (HS + TPR - 1) / TPR;
const uint LD = HS + 1, SLD = BQ + 1;

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

shared float sK[BKV * LD];
shared float sV[BKV * LD];
shared float sQ[BQ * LD];
shared float sO[BQ * LD]; // dout rows
shared float sP[BKV * SLD];
shared float sS[BKV * SLD]; // ds
shared float sL[BQ];
shared float sD[BQ];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint r0 = (tid / TPR) * RM, c = tid % TPR;
  const uint T = pc.T, k0 = gl_WorkGroupID.x * BKV, g = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint C3 = (pc.NH + 2u * pc.NKV) * HS;
  const uint G = pc.NH / pc.NKV;
  const uint base = b * T * C3;
  const uint kcol = (pc.NH + g) * HS, vcol = (pc.NH + pc.NKV + g) * HS;
  const bool causal = pc.causal != 0u;

  for (uint i = tid; i < BKV * HS; i += NT) {
    uint kk = i / HS, d = i % HS, t = k0 + kk;
    bool in_ = t < T;
    sK[kk * LD + d] = in_ ? QKV(base + t * C3 + kcol + d) : 0.0;
    sV[kk * LD + d] = in_ ? QKV(base + t * C3 + vcol + d) : 0.0;
  }

  float dk[RM * DPT], dv[RM * DPT];
  for (uint i = 0; i < RM * DPT; i++) {
    dk[i] = 0.0;
    dv[i] = 0.0;
  }

  // With a causal mask, query rows before k0 see none of this block's keys.
  const uint qstart = causal ? (k0 / BQ) * BQ : 0u;
  for (uint hh = 0; hh < G; hh++) {
    const uint h = g * G + hh;
    for (uint q0 = qstart; q0 < T; q0 += BQ) {
      barrier(); // the previous tile is consumed (and sK, sV are written before the first)
      for (uint i = tid; i < BQ * HS; i += NT) {
        uint qq = i / HS, d = i % HS, t = q0 + qq;
        bool in_ = t < T;
        sQ[qq * LD + d] = in_ ? QKV(base + t * C3 + h * HS + d) : 0.0;
        sO[qq * LD + d] = in_ ? dout[(b * T + t) * pc.NH * HS + h * HS + d] : 0.0;
      }
      for (uint qq = tid; qq < BQ; qq += NT) {
        uint t = q0 + qq;
        sL[qq] = t < T ? lse[(b * pc.NH + h) * T + t] : 0.0;
        sD[qq] = t < T ? D_[(b * pc.NH + h) * T + t] : 0.0;
      }
      barrier();
      float s[RM * QPT], dp[RM * QPT];
      for (uint i = 0; i < RM * QPT; i++) {
        s[i] = 0.0;
        dp[i] = 0.0;
      }
      for (uint d = 0; d < HS; d++) {
        float a[RM], w[RM];
        for (uint i = 0; i < RM; i++) {
          a[i] = sK[(r0 + i) * LD + d];
          w[i] = sV[(r0 + i) * LD + d];
        }
        for (uint j = 0; j < QPT; j++) {
          uint q = min(c + j * TPR, BQ - 1u);
          float qv = sQ[q * LD + d], ov = sO[q * LD + d];
          for (uint i = 0; i < RM; i++) {
            s[i * QPT + j] += a[i] * qv;
            dp[i * QPT + j] += w[i] * ov;
          }
        }
      }
      for (uint j = 0; j < QPT; j++) {
        uint q = c + j * TPR, t = q0 + q;
        if (q < BQ)
          for (uint i = 0; i < RM; i++) {
            uint key = k0 + r0 + i;
            float p = 0.0, ds = 0.0;
            if (t < T && key < T && (!causal || key <= t)) {
              p = exp(s[i * QPT + j] * pc.scale - sL[q]);
              ds = p * (dp[i * QPT + j] - sD[q]);
            }
            sP[(r0 + i) * SLD + q] = p;
            sS[(r0 + i) * SLD + q] = ds;
          }
      }
      barrier();
      for (uint q = 0; q < BQ; q++) {
        float p[RM], ds[RM];
        for (uint i = 0; i < RM; i++) {
          p[i] = sP[(r0 + i) * SLD + q];
          ds[i] = sS[(r0 + i) * SLD + q];
        }
        for (uint j = 0; j < DPT; j++) {
          uint d = min(c + j * TPR, HS - 1u);
          float ov = sO[q * LD + d], qv = sQ[q * LD + d];
          for (uint i = 0; i < RM; i++) {
            dv[i * DPT + j] += p[i] * ov;
            dk[i * DPT + j] += ds[i] * qv;
          }
        }
      }
    }
  }

  for (uint i = 0; i < RM; i++) {
    uint key = k0 + r0 + i;
    if (key < T) {
      uint o = base + key * C3;
      for (uint j = 0; j < DPT; j++) {
        uint d = c + j * TPR;
        if (d < HS) {
          dqkv[o + kcol + d] = dk[i * DPT + j] * pc.scale;
          dqkv[o + vcol + d] = dv[i * DPT + j];
        }
      }
    }
  }
}

#version 450
// attention_forward_f32: fused multi-head attention forward (flash-attention style) with
// grouped-query heads, causal or not. For query head h of batch b, row t:
//   s_j = (q_t . k_j) / sqrt(HS) for keys j (j <= t when causal), p_j = softmax_j(s),
//   out[b,t,h,:] = sum_j p_j v_j,  lse[b,h,t] = log(sum_j exp(s_j)).
// Key/value head g = h / (NH/NKV). Nothing of size TxT is stored: key and value tiles of BK
// rows pass through shared memory and each query row keeps a running max m, sum l and output
// accumulator (online softmax).
// Bindings: 0 out (B,T,NH*HS) (OUT_FMT); 1 lse (B,NH,T) f32, write-only;
//           2 qkv (B,T,(NH+2*NKV)*HS) in QKV_FMT (spec constant 6), read-only (NH query
//           heads, NKV key, NKV value).
// Push constants: uint T, NH, NKV, causal; float scale (1/sqrt(HS)).
// Spec constants: 0 workgroup size NT, 1 BQ query rows per workgroup, 2 BK keys per tile,
//   3 HS head size, 4 RM query rows per thread (BQ/RM row groups; NT a multiple of BQ/RM).
//   Thread (g, c), c < TPR = NT/(BQ/RM), owns rows g*RM .. g*RM+RM-1 of the block: it computes
//   their scores against keys c, c+TPR, ... of the tile (an RM x KPT register tile) and
//   accumulates their output dims c, c+TPR, ... (an RM x DPT register tile).
//   5 OUT_FMT: out in fp32 (0), or fp16 (1) / bf16 (2) words (store16.glsl; HS even): the
//   block's rows are staged in shared memory and stored a word per thread.
// Shared memory: (BQ + 2*BK) * (HS+1) + BQ*(BK+1) floats (rows padded against bank conflicts).
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
const uint KPT = (BK + TPR - 1) / TPR; // keys per thread in the score tile
const uint DPT = (HS + TPR - 1) / TPR; // output dims per thread
const uint LD = HS + 1, SLD = BK + 1;
const float MASKED = -3.0e38;

layout(constant_id = 5) const uint OUT_FMT = 0; // store16.glsl: 0 f32, 1 f16, 2 bf16
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

shared float sQ[BQ * LD];
shared float sK[BK * LD];
shared float sV[BK * LD];
shared float sS[BQ * SLD];

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
    sQ[rr * LD + d] = t < T ? QKV(base + t * C3 + h * HS + d) : 0.0;
  }

  float m[RM], l[RM], acc[RM * DPT];
  for (uint i = 0; i < RM; i++) {
    m[i] = MASKED;
    l[i] = 0.0;
  }
  for (uint i = 0; i < RM * DPT; i++) acc[i] = 0.0;

  const uint kend = causal ? min(T, q0 + BQ) : T;
  for (uint k0 = 0; k0 < kend; k0 += BK) {
    barrier(); // the previous tile is consumed (and sQ is written before the first)
    for (uint i = tid; i < BK * HS; i += NT) {
      uint kk = i / HS, d = i % HS, t = k0 + kk;
      bool in_ = t < T;
      sK[kk * LD + d] = in_ ? QKV(base + t * C3 + kcol + d) : 0.0;
      sV[kk * LD + d] = in_ ? QKV(base + t * C3 + vcol + d) : 0.0;
    }
    barrier();
    // scores of rows r0.. against keys c + j*TPR (indices past BK read a valid row, unused)
    float s[RM * KPT];
    for (uint i = 0; i < RM * KPT; i++) s[i] = 0.0;
    for (uint d = 0; d < HS; d++) {
      float a[RM];
      for (uint i = 0; i < RM; i++) a[i] = sQ[(r0 + i) * LD + d];
      for (uint j = 0; j < KPT; j++) {
        float kv = sK[min(c + j * TPR, BK - 1u) * LD + d];
        for (uint i = 0; i < RM; i++) s[i * KPT + j] += a[i] * kv;
      }
    }
    for (uint j = 0; j < KPT; j++) {
      uint k = c + j * TPR, key = k0 + k;
      if (k < BK)
        for (uint i = 0; i < RM; i++) {
          bool ok = key < T && (!causal || key <= q0 + r0 + i);
          sS[(r0 + i) * SLD + k] = ok ? s[i * KPT + j] * pc.scale : MASKED;
        }
    }
    barrier();
    // online softmax update of rows r0.. and their output dims c + j*TPR
    for (uint i = 0; i < RM; i++) {
      float mnew = m[i];
      for (uint k = 0; k < BK; k++) mnew = max(mnew, sS[(r0 + i) * SLD + k]);
      float corr = exp(m[i] - mnew);
      l[i] *= corr;
      for (uint j = 0; j < DPT; j++) acc[i * DPT + j] *= corr;
      m[i] = mnew;
    }
    for (uint k = 0; k < BK; k++) {
      float p[RM];
      for (uint i = 0; i < RM; i++) {
        float sv = sS[(r0 + i) * SLD + k];
        p[i] = sv == MASKED ? 0.0 : exp(sv - m[i]);
        l[i] += p[i];
      }
      for (uint j = 0; j < DPT; j++) {
        float v = sV[k * LD + min(c + j * TPR, HS - 1u)];
        for (uint i = 0; i < RM; i++) acc[i * DPT + j] += p[i] * v;
      }
    }
  }

  if (OUT_FMT == 0u) {
    for (uint i = 0; i < RM; i++) {
      uint t = q0 + r0 + i;
      if (t < T) {
        float inv = 1.0 / l[i];
        uint o = (b * T + t) * pc.NH * HS + h * HS;
        for (uint j = 0; j < DPT; j++) {
          uint d = c + j * TPR;
          if (d < HS) out_[o + d] = floatBitsToUint(acc[i * DPT + j] * inv);
        }
        if (c == 0u) lse[(b * pc.NH + h) * T + t] = m[i] + log(l[i]);
      }
    }
    return;
  }
  // 16-bit out (HS even): the block's output rows through sQ (free: the last tile's scores are
  // done), then each thread packs whole words of them
  barrier();
  for (uint i = 0; i < RM; i++) {
    uint t = q0 + r0 + i;
    float inv = t < T ? 1.0 / l[i] : 0.0;
    for (uint j = 0; j < DPT; j++) {
      uint d = c + j * TPR;
      if (d < HS) sQ[(r0 + i) * LD + d] = acc[i * DPT + j] * inv;
    }
    if (t < T && c == 0u) lse[(b * pc.NH + h) * T + t] = m[i] + log(l[i]);
  }
  barrier();
  const uint HW = HS / 2u;
  for (uint w = tid; w < BQ * HW; w += NT) {
    uint rr = w / HW, d = 2u * (w % HW), t = q0 + rr;
    if (t < T)
      out_[((b * T + t) * pc.NH * HS + h * HS + d) >> 1] =
          vklm_pack16(sQ[rr * LD + d], sQ[rr * LD + d + 1u]);
  }
}

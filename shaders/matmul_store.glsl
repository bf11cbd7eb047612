// matmul_store.glsl: the epilogue every GEMM body (matmul.glsl, matmul_cpu.glsl,
// matmul_coopmat.glsl) applies to one element of C (matmul_store) or to two neighbouring ones
// of a row (matmul_store_pair: the tiled and cooperative-matrix bodies, whose invocations hold
// column pairs): element ci of C, column n, acc the product's sum:
//   v = alpha*acc + beta*C[ci] (beta == 0 never reads the old C) + bias[n] (has_bias), then
//   EPI_GELU: act_[ci] = gelu(v); EPI_DGELU: v *= gelu'(pre_[ci]); C[ci] = v.
// Include after the bindings (c_, bias_) and matmul_push.glsl. With EPI_GELU or EPI_DGELU defined
// it declares binding 4 itself (laid out as C: element ci of C pairs with element ci of it):
//   EPI_GELU:  Act, uint words, written. Spec constant 10 ACT_FMT: 0 fp32 (act_[ci] = the float's
//              bits), 1 fp16 or 2 bf16 (element ci in the low (ci even) or high half of word
//              ci/2, as the GEMM's 16-bit operands are packed; fp16 by packHalf2x16, round to
//              nearest even on the drivers we know, as convert_f32_to_f16; bf16 round to nearest
//              even in integer arithmetic, NaN kept NaN). A 16-bit element whose word's other
//              half is another invocation's is stored with an atomicAnd clearing its half and an
//              atomicOr setting it: that half is never touched, whatever the order.
//   EPI_DGELU: Pre, read-only, in the format of the same spec constant 10 (named PRE_FMT there):
//              0 fp32, 1 fp16 or 2 bf16 (packed as act above; mixed precision's 16-bit fch).
// C's own format: spec constant 13 C_FMT, 0 fp32 (c_, as always), 1 fp16 or 2 bf16 (element ci
// of C in half ci & 1 of word ci/2 of binding 0, seen through the alias c16_ declared here;
// rounded and stored as act above, two atomics on its own half: neighbouring columns are other
// invocations'). 16 bits only for outputs written once (beta 0: the host asserts it; C is never
// read back then), i.e. mixed-precision training's saved pre-activations (qkv, fch). With a
// 16-bit C the GELU epilogue takes the rounded value, gelu(C as stored), as the GELU kernel,
// the dGELU epilogue and a recomputation in the backward see it (bit for bit the same act).
// A pair that fills one 16-bit word (ci even) is packed and stored with one plain store: no
// other invocation writes that word, so only the words shared with a neighbour's column (odd
// ci, a row's odd edges) need the atomics.
#ifndef VKLM_MATMUL_STORE_GLSL
#define VKLM_MATMUL_STORE_GLSL
#include "common.glsl"
#include "load16.glsl"
layout(constant_id = 13) const uint C_FMT = 0;
layout(std430, binding = 0) buffer C16 { uint c16_[]; };
uint matmul_half_bits(float g, uint fmt) {
  return fmt == 1u ? packHalf2x16(vec2(g, 0.0)) & 0xffffu : vklm_bf16_bits(g);
}
uint matmul_pack16(float lo, float hi, uint fmt) {
  return fmt == 1u ? packHalf2x16(vec2(lo, hi))
                   : matmul_half_bits(lo, 2u) | (matmul_half_bits(hi, 2u) << 16);
}
// Rounds g to fmt (1 fp16, 2 bf16) and stores it as element ci of the packed words w[], its
// word's other half untouched.
#define MATMUL_STORE_HALF(w, ci, g, fmt)                                                        \
  {                                                                                             \
    uint sh_ = ((ci) & 1u) * 16u;                                                               \
    atomicAnd(w[(ci) >> 1], ~(0xffffu << sh_));                                                 \
    atomicOr(w[(ci) >> 1], matmul_half_bits(g, fmt) << sh_);                                    \
  }
// Elements ci and ci + 1 of the packed words w[]: one store where they fill a word.
#define MATMUL_STORE_HALF2(w, ci, g0, g1, fmt)                                                  \
  {                                                                                             \
    if (((ci) & 1u) == 0u) {                                                                    \
      w[(ci) >> 1] = matmul_pack16(g0, g1, fmt);                                                \
    } else {                                                                                    \
      MATMUL_STORE_HALF(w, ci, g0, fmt);                                                        \
      MATMUL_STORE_HALF(w, (ci) + 1u, g1, fmt);                                                 \
    }                                                                                           \
  }
#if defined(EPI_GELU)
#include "activation.glsl"
layout(constant_id = 10) const uint ACT_FMT = 0;
layout(std430, binding = 4) buffer Act { uint act_[]; };
// act's value for C's v: gelu of C as stored
float matmul_act(float v) {
  return vklm_gelu(C_FMT == 0u   ? v
                   : C_FMT == 1u ? unpackHalf2x16(packHalf2x16(vec2(v, 0.0))).x
                                 : uintBitsToFloat(vklm_bf16_bits(v) << 16));
}
#elif defined(EPI_DGELU)
#include "activation.glsl"
layout(constant_id = 10) const uint PRE_FMT = 0;
layout(std430, binding = 4) readonly buffer Pre { uint pre_[]; };
#endif
// v of element ci (column n) before it is stored
float matmul_value(uint ci, uint n, float acc) {
  float v = pc.alpha * acc;
  if (C_FMT == 0u && pc.beta != 0.0) v += pc.beta * c_[ci];
  if (pc.has_bias != 0) v += bias_[n];
#if defined(EPI_DGELU)
  v *= vklm_gelu_grad(VKLM_LOAD_FMT(pre_, ci, PRE_FMT));
#endif
  return v;
}
void matmul_put(uint ci, float v) {
#if defined(EPI_GELU)
  float g = matmul_act(v);
  if (ACT_FMT == 0u) act_[ci] = floatBitsToUint(g);
  else MATMUL_STORE_HALF(act_, ci, g, ACT_FMT);
#endif
  if (C_FMT == 0u) c_[ci] = v;
  else MATMUL_STORE_HALF(c16_, ci, v, C_FMT);
}
void matmul_store(uint ci, uint n, float acc) { matmul_put(ci, matmul_value(ci, n, acc)); }
// Elements ci and ci + 1 (columns n and n + 1 of one row; the second only when `two`).
void matmul_store_pair(uint ci, uint n, float acc0, float acc1, bool two) {
  float v0 = matmul_value(ci, n, acc0);
  if (!two) {
    matmul_put(ci, v0);
    return;
  }
  float v1 = matmul_value(ci + 1u, n + 1u, acc1);
#if defined(EPI_GELU)
  float g0 = matmul_act(v0), g1 = matmul_act(v1);
  if (ACT_FMT == 0u) {
    act_[ci] = floatBitsToUint(g0);
    act_[ci + 1u] = floatBitsToUint(g1);
  } else MATMUL_STORE_HALF2(act_, ci, g0, g1, ACT_FMT);
#endif
  if (C_FMT == 0u) {
    c_[ci] = v0;
    c_[ci + 1u] = v1;
  } else MATMUL_STORE_HALF2(c16_, ci, v0, v1, C_FMT);
}
#endif

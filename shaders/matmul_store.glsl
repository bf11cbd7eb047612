// matmul_store.glsl: the epilogue every GEMM body (matmul.glsl, matmul_cpu.glsl,
// matmul_coopmat.glsl) applies to one element of C: element ci of C, column n, acc the product's sum:
//   v = alpha*acc + beta*C[ci] (beta == 0 never reads the old C) + bias[n] (has_bias), then
//   EPI_GELU: act_[ci] = gelu(v); EPI_DGELU: v *= gelu'(pre_[ci]); C[ci] = v.
// Include after the bindings (c_, bias_) and matmul_push.glsl. With EPI_GELU or EPI_DGELU defined
// it declares binding 4 itself (laid out as C: element ci of C pairs with element ci of it):
//   EPI_GELU:  Act, uint words, written. Spec constant 10 ACT_FMT: 0 fp32 (act_[ci] = the float's
//              bits), 1 fp16 or 2 bf16 (element ci in the low (ci even) or high half of word
//              ci/2, as the GEMM's 16-bit operands are packed; fp16 by packHalf2x16, round to
//              nearest even on the drivers we know, as convert_f32_to_f16; bf16 round to nearest
//              even in integer arithmetic, NaN kept NaN). Neighbouring columns belong to other
//              invocations, so a 16-bit element is stored with an atomicAnd clearing its half and
//              an atomicOr setting it: the word's other half is never touched, whatever the order.
//   EPI_DGELU: Pre, fp32, read-only.
#ifndef VKLM_MATMUL_STORE_GLSL
#define VKLM_MATMUL_STORE_GLSL
#if defined(EPI_GELU)
#include "activation.glsl"
layout(constant_id = 10) const uint ACT_FMT = 0;
layout(std430, binding = 4) buffer Act { uint act_[]; };
void matmul_act_store(uint ci, float g) {
  if (ACT_FMT == 0u) {
    act_[ci] = floatBitsToUint(g);
    return;
  }
  uint h = ACT_FMT == 1u ? packHalf2x16(vec2(g, 0.0)) & 0xffffu : vklm_bf16_bits(g);
  uint sh = (ci & 1u) * 16u;
  atomicAnd(act_[ci >> 1], ~(0xffffu << sh));
  atomicOr(act_[ci >> 1], h << sh);
}
#elif defined(EPI_DGELU)
#include "activation.glsl"
layout(std430, binding = 4) readonly buffer Pre { float pre_[]; };
#endif
void matmul_store(uint ci, uint n, float acc) {
  float v = pc.alpha * acc;
  if (pc.beta != 0.0) v += pc.beta * c_[ci];
  if (pc.has_bias != 0) v += bias_[n];
#if defined(EPI_GELU)
  matmul_act_store(ci, vklm_gelu(v));
#elif defined(EPI_DGELU)
  v *= vklm_gelu_grad(pre_[ci]);
#endif
  c_[ci] = v;
}
#endif

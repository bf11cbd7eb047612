// Stores of an output held in fp32 or in 16 bits (the training precision of mixed-precision
// activations), chosen by the spec constant OUT_FMT that the including shader declares: 0 fp32,
// 1 fp16, 2 bf16 (matmul.h's VKLM_GEMM_* numbering). The output binding is declared as
// `uint out_[]` (not writeonly: edge stores are atomic): fp32 elements as their bits, 16-bit ones
// packed two to a word, element i in word i/2, low half first (matmul.h, tensor.h).
// fp32 -> fp16 is packHalf2x16 (round to nearest even on the drivers we know; the GLSL spec
// leaves it to the implementation), fp32 -> bf16 rounds to nearest even and keeps NaN a NaN
// (as vklm_f32_to_bf16_ref).
// Two invocations must never write the two halves of one word with plain stores: a row of odd
// length starts or ends mid-word, so the row-store macros below give each invocation whole words
// and write a word shared with a neighbouring row through two atomics on its own half only.
#ifndef VKLM_STORE16_GLSL
#define VKLM_STORE16_GLSL

uint vklm_half_bits(float v) {
  return OUT_FMT == 1u ? packHalf2x16(vec2(v, 0.0)) & 0xffffu : vklm_bf16_bits(v);
}
uint vklm_pack16(float lo, float hi) {
  if (OUT_FMT == 1u) return packHalf2x16(vec2(lo, hi));
  return vklm_half_bits(lo) | (vklm_half_bits(hi) << 16);
}
// Element i alone (its word's other half belongs to someone else and is left as it is).
void vklm_store_half(uint i, float v) {
  uint w = i >> 1, sh = (i & 1u) * 16u;
  atomicAnd(out_[w], ~(0xffffu << sh));
  atomicOr(out_[w], vklm_half_bits(v) << sh);
}

// Elements [base, base+n) of a 16-bit out_, n >= 1, VAL(c) the value of element base+c,
// by the invocations t, t+W, ... of a group that shares the row (the GPU kernels): each takes
// words.
#define VKLM_STORE16_ROW_STRIDED(base, n, t, W, VAL)                                          \
  {                                                                                           \
    uint e_ = (base) + (n);                                                                   \
    for (uint w_ = ((base) >> 1) + (t); w_ < ((e_ + 1u) >> 1); w_ += (W)) {                   \
      uint i_ = 2u * w_;                                                                      \
      bool lo_ = i_ >= (base), hi_ = i_ + 1u < e_;                                            \
      if (lo_ && hi_) out_[w_] = vklm_pack16(VAL(i_ - (base)), VAL(i_ + 1u - (base)));        \
      else if (lo_) vklm_store_half(i_, VAL(i_ - (base)));                                    \
      else vklm_store_half(i_ + 1u, VAL(i_ + 1u - (base)));                                   \
    }                                                                                         \
  }

// The same by one invocation that owns the row (the CPU-type kernels: rows_cpu.glsl's style,
// unrolled by 4 words so llvmpipe's loop budget sees n/8 iterations), storing only when live.
#define VKLM_STORE16_PAIR_(p, s, bw, VAL) \
  out_[(bw) + (p)] = vklm_pack16(VAL((s) + 2u * (p)), VAL((s) + 2u * (p) + 1u))
#define VKLM_STORE16_ROW(base, n, live, VAL)                                                  \
  {                                                                                           \
    uint s_ = (base) & 1u, bw_ = ((base) + s_) >> 1;                                          \
    uint np_ = (n) > s_ ? ((n) - s_) >> 1 : 0u, np4_ = np_ & ~3u;                             \
    if (live) {                                                                               \
      if (s_ != 0u) vklm_store_half((base), VAL(0u));                                         \
      for (uint p_ = 0u; p_ < np4_; p_ += 4u) {                                               \
        VKLM_STORE16_PAIR_(p_, s_, bw_, VAL);                                                 \
        VKLM_STORE16_PAIR_(p_ + 1u, s_, bw_, VAL);                                            \
        VKLM_STORE16_PAIR_(p_ + 2u, s_, bw_, VAL);                                            \
        VKLM_STORE16_PAIR_(p_ + 3u, s_, bw_, VAL);                                            \
      }                                                                                       \
      for (uint p_ = np4_; p_ < np_; p_++) VKLM_STORE16_PAIR_(p_, s_, bw_, VAL);              \
      if ((n) > s_ && (((n) - s_) & 1u) != 0u) vklm_store_half((base) + (n) - 1u, VAL((n) - 1u)); \
    }                                                                                         \
  }

#endif

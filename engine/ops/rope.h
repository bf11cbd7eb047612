/* RoPE, rotary position embedding, in the Hugging Face Llama convention ("rotate_half"): within
 * each head of HS floats, element i < HS/2 pairs with element i + HS/2, and the pair is rotated by
 * the angle pos * theta^(-2i/HS):
 *   y[i]      = x[i] cos a - x[i+HS/2] sin a
 *   y[i+HS/2] = x[i+HS/2] cos a + x[i] sin a.
 * Applied in place to the NH query heads and NKV key heads of the packed qkv buffer
 * (B,T,(NH+2*NKV)*HS) (the NKV value heads are untouched), at positions pos0 + t (pos0 > 0 when
 * decoding after a KV cache of pos0 tokens). The rotation covers the whole head (HS even).
 *
 * Precision: the angle is the fp32 product float(pos) * inv_freq, as Hugging Face forms it;
 * inv_freq is computed by a fixed sequence of exactly rounded fp32 operations, so the angle has
 * the same bits on every GPU and in the C reference. Its sine and cosine are computed with an
 * explicit range reduction and polynomials (about 1e-7 absolute), not with GLSL sin/cos, whose
 * precision Vulkan leaves loose. Positions up to about 1e5 keep this accuracy; the fp32 angle
 * itself is off the exact pos * theta^(-2i/HS) by up to an ulp (0.004 rad at pos 32768), as in
 * Hugging Face's fp32 computation.
 *
 * Gradients: the backward is the inverse rotation of the query and key parts of dqkv, in place
 * (dqkv is an activation gradient; its value part passes through untouched). */
#ifndef VKLM_OPS_ROPE_H
#define VKLM_OPS_ROPE_H

#include <stdint.h>
#include "vklm_runtime.h"

/* qkv (B,T,(NH+2*NKV)*HS), in place. */
vklm_status vklm_rope_forward(vklm_cmd *cmd, vklm_buffer qkv, uint32_t B, uint32_t T, uint32_t NH,
                              uint32_t NKV, uint32_t HS, uint32_t pos0, float theta);
/* The same with qkv held in fmt: 0 fp32, 1 fp16, 2 bf16 (matmul.h's VKLM_GEMM_* numbering:
 * packed 16-bit words, element i in word i/2, low half first): mixed-precision training's saved
 * qkv, each rotated element computed in fp32 from the stored values and rounded to nearest even
 * (store16.glsl's rule). The reference: the forward reference on the widened values, rounded. */
vklm_status vklm_rope_forward_fmt(vklm_cmd *cmd, vklm_buffer qkv, int fmt, uint32_t B, uint32_t T,
                                  uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t pos0,
                                  float theta);
/* dqkv (B,T,(NH+2*NKV)*HS), in place: the gradient w.r.t. the rotation's input. */
vklm_status vklm_rope_backward(vklm_cmd *cmd, vklm_buffer dqkv, uint32_t B, uint32_t T,
                               uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t pos0, float theta);

/* Plain C references (same in-place contract; angles as the GPU forms them, sin/cos in double). */
void vklm_rope_forward_ref(float *qkv, uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV,
                           uint32_t HS, uint32_t pos0, float theta);
void vklm_rope_backward_ref(float *dqkv, uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV,
                            uint32_t HS, uint32_t pos0, float theta);

#endif

/* Elementwise ops: bias add, residual add, and conversion between fp32 and fp16 storage.
 *
 * - Bias add works IN PLACE: x (N,C) += bias (C). (A linear layer fuses its bias into the GEMM,
 *   see matmul.h; this op is for the places that do not.) Its backward ACCUMULATES dbias
 *   (a parameter gradient) through a deterministic reduction over the N rows: two stages
 *   (per-chunk partial sums into scratch, then a fixed-order sum) when given scratch, one stage
 *   (a thread per column walks all rows) when scratch is a zero-size buffer.
 * - Segment dot: per-segment weighted sums (a sequence's log-prob over its mask).
 * - Residual add: out = a + b. Its backward ACCUMULATES both da and db: they are residual-stream
 *   gradients (ops.h).
 * - fp16 storage: halves packed two to a 32-bit word, element i in word i/2, low half first
 *   (what packHalf2x16 writes). fp32 -> fp16 rounds to nearest even on the drivers we know
 *   (packHalf2x16's rounding is implementation-defined: the tests allow 1 ulp of fp16), overflows
 *   to infinity, keeps NaN. fp16 -> fp32 is exact.
 * Everything else is fp32; element counts must be < 2^32. */
#ifndef VKLM_OPS_ELEMENTWISE_H
#define VKLM_OPS_ELEMENTWISE_H

#include <stdint.h>
#include "vklm_runtime.h"

/* x (N,C) += bias (C) */
vklm_status vklm_bias_forward(vklm_cmd *cmd, vklm_buffer x /* (N,C) */,
                              vklm_buffer bias /* (C) */, uint32_t N, uint32_t C);
/* Bytes of scratch for the two-stage vklm_bias_backward (contents overwritten, need not be
 * zeroed). */
uint64_t vklm_bias_backward_scratch_bytes(uint32_t N, uint32_t C);
/* dbias (C) += column sums of dout (N,C). scratch: vklm_bias_backward_scratch_bytes bytes for
 * the full two-stage split (up to 128 chunks of rows); a smaller one gives fewer chunks, a
 * zero-size one (or room for < 2 chunks) the one-stage path. Results are deterministic for a
 * given (N, C, scratch size). */
vklm_status vklm_bias_backward(vklm_cmd *cmd, vklm_buffer dbias /* (C) */, vklm_buffer scratch,
                               vklm_buffer dout /* (N,C) */, uint32_t N, uint32_t C);

/* out (n) = a (n) + b (n) */
vklm_status vklm_residual_forward(vklm_cmd *cmd, vklm_buffer out /* (n) */,
                                  vklm_buffer a /* (n) */, vklm_buffer b /* (n) */, uint32_t n);
/* da (n) += dout; db (n) += dout */
vklm_status vklm_residual_backward(vklm_cmd *cmd, vklm_buffer da /* (n) */,
                                   vklm_buffer db /* (n) */, vklm_buffer dout /* (n) */,
                                   uint32_t n);

/* out (B) = per segment b of T elements, sum_t x[b,t] * w[b,t] in a fixed order (deterministic):
 * per-sequence sums of per-token values over a mask. */
vklm_status vklm_segment_dot(vklm_cmd *cmd, vklm_buffer out /* (B) */, vklm_buffer x /* (B,T) */,
                             vklm_buffer w /* (B,T) */, uint32_t B, uint32_t T);

/* out (ceil(n/2) words of packed halves) = fp16(inp (n)); the last high half is 0 for odd n. */
vklm_status vklm_convert_f32_to_f16(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp /* (n) */,
                                    uint32_t n);
/* out (n) = fp32(inp (ceil(n/2) words of packed halves)) */
vklm_status vklm_convert_f16_to_f32(vklm_cmd *cmd, vklm_buffer out /* (n) */, vklm_buffer inp,
                                    uint32_t n);

/* Plain C references, same shapes and gradient rules. */
void vklm_bias_forward_ref(float *x, const float *bias, uint32_t N, uint32_t C);
void vklm_bias_backward_ref(float *dbias, const float *dout, uint32_t N, uint32_t C);
void vklm_residual_forward_ref(float *out, const float *a, const float *b, uint32_t n);
void vklm_residual_backward_ref(float *da, float *db, const float *dout, uint32_t n);
void vklm_segment_dot_ref(float *out, const float *x, const float *w, uint32_t B, uint32_t T);
/* One value: fp32 -> fp16 bits, round to nearest even (overflow to inf, NaN kept, subnormals
 * exact); fp16 bits -> fp32 (exact). */
uint16_t vklm_f32_to_f16_ref(float f);
float vklm_f16_to_f32_ref(uint16_t h);
/* n values, packed as the GPU packs them (out: ceil(n/2) words). */
void vklm_convert_f32_to_f16_ref(uint32_t *out, const float *inp, uint32_t n);
void vklm_convert_f16_to_f32_ref(float *out, const uint32_t *inp, uint32_t n);
/* bfloat16 (the high 16 bits of an fp32): round to nearest even (overflow to inf, NaN kept
 * NaN), exact back; n values packed as vklm_convert_f32_to_f16_ref packs halves. */
uint16_t vklm_f32_to_bf16_ref(float f);
float vklm_bf16_to_f32_ref(uint16_t h);
void vklm_convert_f32_to_bf16_ref(uint32_t *out, const float *inp, uint32_t n);

#endif

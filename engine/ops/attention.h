/* Multi-head attention, fused (flash-attention style): forward and backward, causal or not
 * (non-causal for masked-language-model training), with grouped-query heads.
 *
 * Layout. qkv (B,T,(NH+2*NKV)*HS) holds, per token, NH query heads, then NKV key heads, then NKV
 * value heads, HS floats each: what one fused QKV matmul produces. Query head h uses key/value
 * head h / (NH/NKV); NKV must divide NH (NKV == NH is plain multi-head attention, NKV == 1
 * multi-query attention). out (B,T,NH*HS) is the per-head output, heads side by side. Scores are
 * scaled by 1/sqrt(HS); with `causal` set, query t sees keys 0..t only.
 *
 * Saved for backward: lse (B,NH,T), the natural log of the softmax denominator of each query row,
 * lse = log(sum_j exp(s_j)) with s_j the scaled scores (so softmax p_j = exp(s_j - lse)).
 *
 * The GPU kernels never hold a TxT matrix: the forward streams key/value tiles through shared
 * memory with an online softmax; the backward recomputes probabilities from lse: dQ per query
 * block, which also takes its rows' D = sum_j P_ij dP_ij from P and dP in the same sweep over the
 * keys (dQ_i = sum_j P_ij dP_ij k_j - D_i sum_j P_ij k_j) and leaves D in a scratch buffer (two
 * dispatches in all; the forward's output is not read, so sum_j dS_ij = 0 holds to fp32
 * rounding whatever format it was saved in), then dK/dV per key block of
 * each key/value head (summing over every query head of its group in a fixed order: deterministic,
 * no atomics). Tile and workgroup sizes come from the device's limits. HS may be any size from 1
 * to 256 (tested: 16, 32, 64, 80, 128); T need not be a multiple of any tile.
 *
 * CPU-type devices (vklm_context_cpu_kernels; lavapipe) get variants without shared memory or
 * barriers (shaders/attention_*_cpu.comp): an invocation per few query rows (forward, dQ) or key
 * rows (dK/dV), same results and determinism, for HS <= 64 and while their loops fit llvmpipe's
 * per-invocation limit; otherwise the kernels above run there too.
 *
 * Gradients: dqkv is an activation gradient and is OVERWRITTEN (every element, the key and value
 * parts included). */
#ifndef VKLM_OPS_ATTENTION_H
#define VKLM_OPS_ATTENTION_H

#include <stdint.h>
#include "vklm_runtime.h"

/* out (B,T,NH*HS), lse (B,NH,T) <- qkv (B,T,(NH+2*NKV)*HS). */
vklm_status vklm_attention_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer lse,
                                   vklm_buffer qkv, uint32_t B, uint32_t T, uint32_t NH,
                                   uint32_t NKV, uint32_t HS, int causal);

/* dqkv (B,T,(NH+2*NKV)*HS), overwritten <- dout (B,T,NH*HS), with lse (B,NH,T) saved by the
 * forward, and its input qkv (B,T,(NH+2*NKV)*HS); the forward's output is not needed.
 * scratch (B,NH,T) receives D = sum_j P_ij dP_ij (= rowsum(dout * out) in exact arithmetic);
 * its contents are not needed afterwards. */
vklm_status vklm_attention_backward(vklm_cmd *cmd, vklm_buffer dqkv, vklm_buffer scratch,
                                    vklm_buffer dout, vklm_buffer lse, vklm_buffer qkv,
                                    uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS,
                                    int causal);

/* The forward with out held in out_fmt: 0 fp32 (the calls above), 1 fp16 or 2 bf16 (matmul.h's
 * VKLM_GEMM_* numbering: packed 16-bit words, element i in word i/2, low half first, rounded to
 * nearest even as shaders/store16.glsl says; HS must be even): mixed-precision training's saved
 * attention output, the input of the projection GEMM. The backward does not read out, so its
 * results do not depend on out's rounding. The forward reference gives the fp32 out; the 16-bit
 * one is its rounding (elementwise.h's converters).
 * Both with qkv in qkv_fmt (HS even): mixed-precision training's saved qkv (the qkv GEMM's 16-bit
 * output), read by both kernel families and widened; every product, the softmax, lse, D and
 * dqkv stay fp32. The references then take qkv's widened values. */
vklm_status vklm_attention_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt,
                                       vklm_buffer lse, vklm_buffer qkv, int qkv_fmt, uint32_t B,
                                       uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS,
                                       int causal);
vklm_status vklm_attention_backward_fmt(vklm_cmd *cmd, vklm_buffer dqkv, vklm_buffer scratch,
                                        vklm_buffer dout, vklm_buffer lse, vklm_buffer qkv,
                                        int qkv_fmt, uint32_t B, uint32_t T, uint32_t NH,
                                        uint32_t NKV, uint32_t HS, int causal);

/* Plain C references with the full TxT softmax materialised (accumulating in double).
 * forward: out (B,T,NH*HS), lse (B,NH,T) <- qkv. backward: dqkv (overwritten) <- dout, qkv; it
 * recomputes the softmax from qkv and needs neither out nor lse. */
void vklm_attention_forward_ref(float *out, float *lse, const float *qkv, uint32_t B, uint32_t T,
                                uint32_t NH, uint32_t NKV, uint32_t HS, int causal);
void vklm_attention_backward_ref(float *dqkv, const float *dout, const float *qkv, uint32_t B,
                                 uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS, int causal);

#endif

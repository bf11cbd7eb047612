/* Normalization ops: LayerNorm (GPT-2, llm.c semantics, eps 1e-5) and RMSNorm (Llama).
 *
 * Forward: one workgroup per row with a shared-memory reduction (deterministic). Backward:
 * - dinp ACCUMULATES (+=): the normalized input is the residual stream.
 * - dweight, dbias ACCUMULATE (parameter gradients; {0} for a frozen norm: dinp only), through a deterministic two-stage
 *   reduction over the N rows: per-chunk partial sums into `scratch`, then a fixed-order sum.
 *   scratch must hold vklm_norm_backward_scratch_bytes(ctx, N, C) bytes; its contents are
 *   overwritten (it need not be zeroed, and can be shared with any other temporary).
 * Everything is fp32; N*C must be < 2^32. Any C >= 1.
 * CPU-type devices (vklm_context_cpu_kernels; lavapipe): the forward and the input gradient run
 * variants with one invocation per row and no shared memory or barrier (*_cpu.comp; the GPU
 * kernels where a row is too long for llvmpipe's loop limit), and the parameter gradients use
 * fewer row chunks; results agree with the GPU kernels to fp32 rounding. */
#ifndef VKLM_OPS_NORM_H
#define VKLM_OPS_NORM_H

#include <stdint.h>
#include "vklm_runtime.h"

#define VKLM_LAYERNORM_EPS 1e-5f

/* Bytes of scratch that vklm_layernorm_backward / vklm_rmsnorm_backward need for (N, C). */
uint64_t vklm_norm_backward_scratch_bytes(const vklm_context *ctx, uint32_t N, uint32_t C);

/* out (N,C) = (inp - mean) * rstd * weight + bias; saves mean (N) and rstd (N). */
vklm_status vklm_layernorm_forward(vklm_cmd *cmd, vklm_buffer out /* (N,C) */,
                                   vklm_buffer mean /* (N) */, vklm_buffer rstd /* (N) */,
                                   vklm_buffer inp /* (N,C) */, vklm_buffer weight /* (C) */,
                                   vklm_buffer bias /* (C) */, uint32_t N, uint32_t C);
/* dinp (N,C) +=, dweight (C) +=, dbias (C) += ; scratch: see above. */
vklm_status vklm_layernorm_backward(vklm_cmd *cmd, vklm_buffer dinp /* (N,C) */,
                                    vklm_buffer dweight /* (C) */, vklm_buffer dbias /* (C) */,
                                    vklm_buffer scratch, vklm_buffer dout /* (N,C) */,
                                    vklm_buffer inp /* (N,C) */, vklm_buffer weight /* (C) */,
                                    vklm_buffer mean /* (N) */, vklm_buffer rstd /* (N) */,
                                    uint32_t N, uint32_t C);

/* out (N,C) = inp * rstd * weight with rstd = 1 / sqrt(mean(inp^2) + eps); saves rstd (N). */
vklm_status vklm_rmsnorm_forward(vklm_cmd *cmd, vklm_buffer out /* (N,C) */,
                                 vklm_buffer rstd /* (N) */, vklm_buffer inp /* (N,C) */,
                                 vklm_buffer weight /* (C) */, uint32_t N, uint32_t C, float eps);
/* dinp (N,C) +=, dweight (C) += ; scratch: see above. */
vklm_status vklm_rmsnorm_backward(vklm_cmd *cmd, vklm_buffer dinp /* (N,C) */,
                                  vklm_buffer dweight /* (C) */, vklm_buffer scratch,
                                  vklm_buffer dout /* (N,C) */, vklm_buffer inp /* (N,C) */,
                                  vklm_buffer weight /* (C) */, vklm_buffer rstd /* (N) */,
                                  uint32_t N, uint32_t C);

/* Plain C references (double accumulation), same shapes and gradient rules. */
void vklm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, uint32_t N, uint32_t C);
void vklm_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, uint32_t N, uint32_t C);
void vklm_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
                              uint32_t N, uint32_t C, float eps);
void vklm_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const float *rstd, uint32_t N, uint32_t C);

#endif

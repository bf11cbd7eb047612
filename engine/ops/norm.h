/* Normalization ops: LayerNorm (GPT-2, llm.c semantics, eps 1e-5) and RMSNorm (Llama).
 *
 * Forward: one workgroup per row with a shared-memory reduction (deterministic); the fused
 * residual form (vklm_add_*norm_forward) first writes res = a + b and normalizes res, in the same
 * dispatch, with the same results (bit for bit) as vklm_residual_forward (elementwise.h) then
 * the plain forward. Backward:
 * - dinp ACCUMULATES (+=): the normalized input is the residual stream.
 * - dweight, dbias ACCUMULATE (parameter gradients; {0} for a frozen norm: dinp only), through a
 *   deterministic two-stage reduction over the N rows: the input-gradient kernel itself writes
 *   the partial sums of each chunk of rows into `part` (vklm_norm_partials_bytes), then
 *   vklm_norm_grads_reduce sums the chunks in a fixed order, for many norms in one dispatch: a
 *   backward leaves a vklm_norm_grads describing what is still to add, and the parameter
 *   gradients are final only after the reduce that takes it. Two dispatches per norm at most;
 *   one reduce per group of norms (a model: per backward part).
 * Everything is fp32 (but the forward's out in the _fmt calls); N*C must be < 2^32. Any C >= 1.
 * CPU-type devices (vklm_context_cpu_kernels; lavapipe): the forward and the backward run
 * variants with one invocation per row (forward) or per chunk of rows (backward) and no shared
 * memory or barrier (*_cpu.comp; the GPU kernels where a row is too long for llvmpipe's loop
 * limit), and the backward uses fewer row chunks; results agree with the GPU kernels to fp32
 * rounding. */
#ifndef VKLM_OPS_NORM_H
#define VKLM_OPS_NORM_H

#include <stdint.h>
#include "vklm_runtime.h"

#define VKLM_LAYERNORM_EPS 1e-5f

/* What one backward left for vklm_norm_grads_reduce: its parameter gradients (ACCUMULATED by
 * the reduce; dbias {0} for RMSNorm) and the partial sums it wrote (nparams * chunks * C floats
 * in part, the sum of chunk k for channel c of parameter p at float
 * p*chunks*C + k*kstride + c*cstride: chunk-major on GPUs, channel-major in the CPU variants;
 * nparams 0: a frozen norm, nothing to add). */
typedef struct vklm_norm_grads {
  vklm_buffer dweight, dbias, part;
  uint32_t C, chunks, nparams, kstride, cstride;
} vklm_norm_grads;

/* Bytes of `part` that a backward of (N, C) needs (rms: RMSNorm, one parameter), in either
 * kernel family. */
uint64_t vklm_norm_partials_bytes(const vklm_context *ctx, uint32_t N, uint32_t C, int rms);

/* Bytes of a reduce table of n entries. */
uint64_t vklm_norm_grads_table_bytes(uint32_t n);

/* Adds the pending parameter gradients g[0..n) (in order; each its chunks in order) in one
 * dispatch per run of entries whose dweight, dbias and part lie in the same blocks (one for a
 * model's norms). table: entries first .. first+n-1 are written at record time (a blocking
 * upload: record while no submission uses them); an entry's bytes depend only on g[j], so
 * command buffers that reduce the same norms may share a table. Entries with nparams 0 are
 * skipped. */
vklm_status vklm_norm_grads_reduce(vklm_cmd *cmd, vklm_buffer table, uint32_t first,
                                   const vklm_norm_grads *g, uint32_t n);

/* out (N,C) = (inp - mean) * rstd * weight + bias; saves mean (N) and rstd (N). */
vklm_status vklm_layernorm_forward(vklm_cmd *cmd, vklm_buffer out /* (N,C) */,
                                   vklm_buffer mean /* (N) */, vklm_buffer rstd /* (N) */,
                                   vklm_buffer inp /* (N,C) */, vklm_buffer weight /* (C) */,
                                   vklm_buffer bias /* (C) */, uint32_t N, uint32_t C);
/* res (N,C) = a + b; out, mean, rstd = vklm_layernorm_forward of res. */
vklm_status vklm_add_layernorm_forward(vklm_cmd *cmd, vklm_buffer res /* (N,C) */,
                                       vklm_buffer out /* (N,C) */, vklm_buffer mean /* (N) */,
                                       vklm_buffer rstd /* (N) */, vklm_buffer a /* (N,C) */,
                                       vklm_buffer b /* (N,C) */, vklm_buffer weight /* (C) */,
                                       vklm_buffer bias /* (C) */, uint32_t N, uint32_t C);
/* dinp (N,C) +=; with dweight and dbias (both or neither: {0} for a frozen norm), the partial
 * sums of their gradients into part (vklm_norm_partials_bytes) and *pending filled for
 * vklm_norm_grads_reduce (pending may be NULL for a frozen norm; filled with nparams 0). */
vklm_status vklm_layernorm_backward(vklm_cmd *cmd, vklm_buffer dinp /* (N,C) */,
                                    vklm_buffer dweight /* (C) */, vklm_buffer dbias /* (C) */,
                                    vklm_buffer part, vklm_buffer dout /* (N,C) */,
                                    vklm_buffer inp /* (N,C) */, vklm_buffer weight /* (C) */,
                                    vklm_buffer mean /* (N) */, vklm_buffer rstd /* (N) */,
                                    uint32_t N, uint32_t C, vklm_norm_grads *pending);

/* out (N,C) = inp * rstd * weight with rstd = 1 / sqrt(mean(inp^2) + eps); saves rstd (N). */
vklm_status vklm_rmsnorm_forward(vklm_cmd *cmd, vklm_buffer out /* (N,C) */,
                                 vklm_buffer rstd /* (N) */, vklm_buffer inp /* (N,C) */,
                                 vklm_buffer weight /* (C) */, uint32_t N, uint32_t C, float eps);
/* res (N,C) = a + b; out, rstd = vklm_rmsnorm_forward of res. */
vklm_status vklm_add_rmsnorm_forward(vklm_cmd *cmd, vklm_buffer res /* (N,C) */,
                                     vklm_buffer out /* (N,C) */, vklm_buffer rstd /* (N) */,
                                     vklm_buffer a /* (N,C) */, vklm_buffer b /* (N,C) */,
                                     vklm_buffer weight /* (C) */, uint32_t N, uint32_t C,
                                     float eps);
/* dinp (N,C) +=; with dweight ({0}: a frozen norm) the partials and *pending as
 * vklm_layernorm_backward's. */
vklm_status vklm_rmsnorm_backward(vklm_cmd *cmd, vklm_buffer dinp /* (N,C) */,
                                  vklm_buffer dweight /* (C) */, vklm_buffer part,
                                  vklm_buffer dout /* (N,C) */, vklm_buffer inp /* (N,C) */,
                                  vklm_buffer weight /* (C) */, vklm_buffer rstd /* (N) */,
                                  uint32_t N, uint32_t C, vklm_norm_grads *pending);

/* The forward ops with out held in out_fmt: 0 fp32 (the calls above), 1 fp16 or 2 bf16
 * (matmul.h's VKLM_GEMM_* numbering: packed 16-bit words, element i in word i/2, low half first,
 * ceil(N*C/2) words; the fp32 value rounded to nearest even, as shaders/store16.glsl says):
 * mixed-precision training's saved norm outputs, the inputs of the next GEMMs. Statistics and
 * res stay fp32. The references below give the fp32 values; the 16-bit result is their rounding
 * (elementwise.h's converters). */
vklm_status vklm_layernorm_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt,
                                       vklm_buffer mean, vklm_buffer rstd, vklm_buffer inp,
                                       vklm_buffer weight, vklm_buffer bias, uint32_t N,
                                       uint32_t C);
vklm_status vklm_add_layernorm_forward_fmt(vklm_cmd *cmd, vklm_buffer res, vklm_buffer out,
                                           int out_fmt, vklm_buffer mean, vklm_buffer rstd,
                                           vklm_buffer a, vklm_buffer b, vklm_buffer weight,
                                           vklm_buffer bias, uint32_t N, uint32_t C);
vklm_status vklm_rmsnorm_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt,
                                     vklm_buffer rstd, vklm_buffer inp, vklm_buffer weight,
                                     uint32_t N, uint32_t C, float eps);
vklm_status vklm_add_rmsnorm_forward_fmt(vklm_cmd *cmd, vklm_buffer res, vklm_buffer out,
                                         int out_fmt, vklm_buffer rstd, vklm_buffer a,
                                         vklm_buffer b, vklm_buffer weight, uint32_t N,
                                         uint32_t C, float eps);

/* Plain C references (double accumulation), same shapes and gradient rules. */
void vklm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, uint32_t N, uint32_t C);
void vklm_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, uint32_t N, uint32_t C);
void vklm_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
                              uint32_t N, uint32_t C, float eps);
/* res = a + b (fp32), then the forward reference over res. */
void vklm_add_layernorm_forward_ref(float *res, float *out, float *mean, float *rstd,
                                    const float *a, const float *b, const float *weight,
                                    const float *bias, uint32_t N, uint32_t C);
void vklm_add_rmsnorm_forward_ref(float *res, float *out, float *rstd, const float *a,
                                  const float *b, const float *weight, uint32_t N, uint32_t C,
                                  float eps);
void vklm_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const float *rstd, uint32_t N, uint32_t C);

#endif

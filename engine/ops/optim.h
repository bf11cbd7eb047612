/* Optimizer ops: the AdamW step, the global gradient norm with its clip scale, and in-place
 * gradient clipping. fp32 buffers.
 *
 * Replay: everything that changes from step to step (learning rate, step number, bias
 * corrections) lives in a small GPU buffer holding a struct vklm_adamw_step, and the clip scale
 * is read from the grad-norm op's output buffer. A training step is recorded once and replayed
 * with only the step buffer re-uploaded (vklm_adamw_step_fill + vklm_buffer_upload).
 *
 * Determinism: the gradient norm is a two-stage fixed-order reduction (per-workgroup partial sums
 * of squares for each tensor into a scratch buffer, then one workgroup sums all partials in a
 * fixed order); its result is bit-identical from run to run on a given device and workgroup size.
 * No atomics anywhere. */
#ifndef VKLM_OPS_OPTIM_H
#define VKLM_OPS_OPTIM_H

#include <stdint.h>

#include "vklm_runtime.h"

/* ---- AdamW ---------------------------------------------------------------------------------
 * torch.optim.AdamW (amsgrad=False, maximize=False), for step t = 1, 2, ...:
 *   g = grad * clip                     (clip = clip_buf[1], or 1 without a clip buffer)
 *   p = p * (1 - lr*wd)                 (only when the call's apply_wd is set)
 *   m = beta1*m + (1-beta1)*g
 *   v = beta2*v + (1-beta2)*g*g
 *   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
 *       with step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t)
 * which is p -= lr * mhat / (sqrt(vhat) + eps) arranged as PyTorch computes it. The derived
 * scalars are computed on the host in double (as PyTorch does in Python) and stored as float.
 *
 * The GPU reads this struct from a buffer (std430, 48 bytes, every field 4 bytes); fill it with
 * vklm_adamw_step_fill. Fields the shader does not need are kept for logging and checkpoints. */
typedef struct vklm_adamw_step {
  float lr;
  float beta1, beta2, eps;
  float weight_decay;
  float decay;          /* 1 - lr*weight_decay: the multiplier applied to p when apply_wd */
  float one_m_beta1;    /* 1 - beta1 */
  float one_m_beta2;    /* 1 - beta2 */
  float step_size;      /* lr / (1 - beta1^t) */
  float bc2_sqrt;       /* sqrt(1 - beta2^t) */
  uint32_t t;           /* the step number, from 1 */
  uint32_t pad;
} vklm_adamw_step;
_Static_assert(sizeof(vklm_adamw_step) == 48, "vklm_adamw_step is mirrored in adamw_update_f32.comp");

/* Fills s for step t >= 1. */
void vklm_adamw_step_fill(vklm_adamw_step *s, float lr, float beta1, float beta2, float eps,
                          float weight_decay, uint32_t t);

/* params (n), m (n), v (n) updated in place by one AdamW step (see above).
 * grads (n) read only. step_buf: a buffer holding one vklm_adamw_step (>= 48 bytes).
 * clip_buf: the 2-float output of vklm_grad_norm (the scale is clip_buf[1]), or {0} for scale 1.
 * apply_wd: 1 for matrices, 0 for biases, norms, embeddings... (the caller decides). */
vklm_status vklm_adamw(vklm_cmd *cmd, vklm_buffer params, vklm_buffer m, vklm_buffer v,
                       vklm_buffer grads, uint32_t n, vklm_buffer step_buf, vklm_buffer clip_buf,
                       int apply_wd);

/* The reference: the same step on host arrays; clip is the scale (1 for none). */
void vklm_adamw_ref(float *params, float *m, float *v, const float *grads, uint32_t n,
                    const vklm_adamw_step *s, float clip, int apply_wd);

/* ---- global gradient norm and clipping ----------------------------------------------------
 * norm_out (2 floats): [0] = sqrt(sum over every tensor and element of g^2),
 *                      [1] = clip scale = min(1, max_norm / (norm + 1e-6)), or 1 when
 *                            max_norm <= 0 (as torch.nn.utils.clip_grad_norm_; a +inf norm
 *                            gives scale 0 and a NaN norm a NaN scale: check norm_out[0]).
 * scratch: vklm_grad_norm_scratch_size(ctx, counts, ntensors) bytes of partial sums (the layout
 *          depends on the device's workgroup size and buffer alignment: size it on this context).
 * grads[i] (counts[i]) for i < ntensors; a tensor with count 0 may be {0}. Overwrites norm_out. */
uint64_t vklm_grad_norm_scratch_size(const vklm_context *ctx, const uint32_t *counts,
                                     uint32_t ntensors);
vklm_status vklm_grad_norm(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                           const vklm_buffer *grads, const uint32_t *counts, uint32_t ntensors,
                           float max_norm);

/* grads (n) *= norm_out[1], in place (for callers that clip explicitly rather than in AdamW). */
vklm_status vklm_grad_clip(vklm_cmd *cmd, vklm_buffer grads, uint32_t n, vklm_buffer norm_out);

/* References: the norm in double precision, and the in-place scaling. */
void vklm_grad_norm_ref(float norm_out[2], const float *const *grads, const uint32_t *counts,
                        uint32_t ntensors, float max_norm);
void vklm_grad_clip_ref(float *grads, uint32_t n, const float norm_out[2]);

#endif

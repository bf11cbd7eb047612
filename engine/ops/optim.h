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
 * The order, for workgroup size WG: tensor i gets G_i = min(1024, ceil(n_i / (16*WG))) partials;
 * thread t of its workgroup w adds g[j]^2 for j = w*WG + t + k*G_i*WG (k = 0, 1, ...) in turn,
 * then the workgroup sums its WG values by a halving tree (t += t + WG/2, ...); the partials lie
 * tensor after tensor (each slice zero-padded to the buffer alignment) and the final pass sums them
 * the same way (thread t: partials t, t + WG, ... in turn, then the tree). No atomics anywhere.
 *
 * Multi-tensor forms (vklm_grad_norm_multi, vklm_adamw_multi, vklm_grad_zero): the same
 * arithmetic over every tensor of a model in one dispatch per distinct combination of arena
 * blocks (usually one), driven by a small table of per-tensor offsets and counts that is written
 * into the scratch buffer when the command is recorded. Their results are bit-identical to the
 * per-tensor forms (same fp32 formulas, same partial-sum layout and summation order). */
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
 * scratch: vklm_grad_norm_scratch_size(ctx, counts, ntensors) bytes: the partial sums (the layout
 *          depends on the device's workgroup size and buffer alignment: size it on this context),
 *          then room for the multi-tensor forms' tables (below).
 * grads[i] (counts[i]) for i < ntensors; a tensor with count 0 may be {0}. Overwrites norm_out. */
uint64_t vklm_grad_norm_scratch_size(const vklm_context *ctx, const uint32_t *counts,
                                     uint32_t ntensors);
vklm_status vklm_grad_norm(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                           const vklm_buffer *grads, const uint32_t *counts, uint32_t ntensors,
                           float max_norm);

/* ---- multi-tensor forms --------------------------------------------------------------------
 * One entry per tensor ("slot"). The buffers of several slots may share an arena block: each
 * dispatch binds, per role (params, m, v, grads), the range of one block that spans its slots,
 * and the table gives every slot's element offsets within those ranges. Slots whose blocks differ
 * go to separate dispatches (one per distinct block combination, in order of first appearance).
 *
 * scratch: vklm_grad_norm_scratch_size(ctx, counts, n) bytes for the n slots (it includes, after
 * the partial sums, room for one table of each multi-tensor op). The table is uploaded while the
 * command is recorded (a blocking upload), so record while no submission uses the scratch; replays
 * need nothing re-uploaded. Both ops may share one scratch in one command buffer when they are
 * given the same slots in the same order, as a training step does. */
typedef struct vklm_optim_slot {
  vklm_buffer p, m, v; /* count floats each, updated in place (vklm_adamw_multi only) */
  vklm_buffer g;       /* count floats, read only */
  uint32_t count;      /* elements; a slot with 0 is skipped (its buffers may be {0}) */
  int apply_wd;        /* as vklm_adamw's apply_wd */
  /* vklm_adamw_multi only: a 16-bit copy of the updated p (mixed precision: what the GEMMs
   * read), h_fmt VKLM_OPTIM_F16 or _BF16 (round to nearest even; bf16 as
   * vklm_f32_to_bf16_ref), ceil(count/2) words packed as vklm_convert_f32_to_f16_ref packs
   * (the last high half 0 for an odd count); h {0}: none. */
  vklm_buffer h;
  int h_fmt;
} vklm_optim_slot;
#define VKLM_OPTIM_F16 1
#define VKLM_OPTIM_BF16 2

/* The same result as vklm_grad_norm over the same grads and counts, bit for bit: the partial sums
 * of every tensor are computed in one dispatch per distinct gradient block (workgroup w of tensor
 * i writes the same partial, in the same scratch place, as vklm_grad_norm's dispatch for i), then
 * one final dispatch sums them all. */
vklm_status vklm_grad_norm_multi(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                                 const vklm_buffer *grads, const uint32_t *counts,
                                 uint32_t ntensors, float max_norm);
/* With unscale (loss scaling: the gradients are S times the true ones), norm_out holds 3 floats
 * and the caller writes 1/S into norm_out[2] before the command runs: norm_out[0] is then the
 * true norm (the sum's root times 1/S), the clip scale is computed from it, and norm_out[1] is
 * that scale times 1/S: AdamW's gradient multiplier. With 1/S = 1 the bits are those without. */
vklm_status vklm_grad_norm_multi_ex(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                                    const vklm_buffer *grads, const uint32_t *counts,
                                    uint32_t ntensors, float max_norm, int unscale);

/* vklm_adamw on every slot (its own apply_wd), in one dispatch per distinct block combination;
 * step_buf and clip_buf as vklm_adamw's (clip_buf {0}: scale 1). Bit-identical to vklm_adamw
 * called slot by slot. Slots with a 16-bit copy (h) get it written from the updated values in
 * the same pass (no dispatch of its own; such dispatches give each thread pairs of elements).
 * With skip_nonfinite (a clip buffer needed), nothing is written when the gradient norm
 * clip_buf[0] is not finite: the step is skipped (mixed precision's dynamic loss scaling).
 * *dispatches (may be NULL) receives the number recorded. */
vklm_status vklm_adamw_multi(vklm_cmd *cmd, const vklm_optim_slot *slots, uint32_t nslots,
                             vklm_buffer scratch, vklm_buffer step_buf, vklm_buffer clip_buf,
                             uint32_t *dispatches);
vklm_status vklm_adamw_multi_ex(vklm_cmd *cmd, const vklm_optim_slot *slots, uint32_t nslots,
                                vklm_buffer scratch, vklm_buffer step_buf, vklm_buffer clip_buf,
                                int skip_nonfinite, uint32_t *dispatches);

/* Zeroes the buffers bufs[0..n) ({0} entries skipped) with as few fills as possible: buffers of
 * one block that follow each other with only allocation padding between them (a gap smaller than
 * vklm_buffer_alignment) become one fill, which zeroes that padding too. *fills (may be NULL)
 * receives the number of fills recorded. */
vklm_status vklm_grad_zero(vklm_cmd *cmd, const vklm_buffer *bufs, uint32_t n, uint32_t *fills);

/* References for the multi-tensor forms: vklm_adamw_ref slot by slot (p, m, v, g of slot i at
 * params[i], ...), and vklm_grad_norm_ref. */
void vklm_adamw_multi_ref(float *const *params, float *const *m, float *const *v,
                          const float *const *grads, const uint32_t *counts, const int *apply_wd,
                          uint32_t nslots, const vklm_adamw_step *s, float clip);

/* grads (n) *= norm_out[1], in place (for callers that clip explicitly rather than in AdamW). */
vklm_status vklm_grad_clip(vklm_cmd *cmd, vklm_buffer grads, uint32_t n, vklm_buffer norm_out);

/* References: the norm in double precision, and the in-place scaling. */
void vklm_grad_norm_ref(float norm_out[2], const float *const *grads, const uint32_t *counts,
                        uint32_t ntensors, float max_norm);
void vklm_grad_clip_ref(float *grads, uint32_t n, const float norm_out[2]);

#endif

/* zero: ZeRO-1 for data-parallel training (vklm train --zero1, docs/distributed.md). The AdamW
 * moments and the fp32 master weights are sharded over the ranks: rank r keeps, on its device,
 * those of its shard [lo, hi) of the flat parameter vector (vklm_dist_shard), so each rank holds
 * 1/N of the optimizer state; the model itself is created without moments (no_moments).
 *
 * A step: the ranks' gradients are reduce-scattered by the caller (each rank gets the rank-order
 * sum of its shard; vklm train does it part by part during the backward), the global gradient norm is the rank-order sum of the shards' sums of squares, each
 * rank runs the AdamW op (engine/ops/optim.h, the same shader as the unsharded update, with the
 * clip scale computed on the host) over the trainable pieces of its shard, and the parameters
 * are all-gathered into every rank's model.
 *
 * Owns: the shard's device buffers (per trainable piece: weights, gradient, m, v), a recorded
 * command buffer, and a host copy of the shard's parameters. Borrows the model and the group.
 *
 * Does not: write checkpoints (vklm_zero_gather_moments gives rank 0 the whole moments). */
#ifndef VKLM_TRAIN_ZERO_H
#define VKLM_TRAIN_ZERO_H

#include "dist/dist.h"
#include "model/model.h"
#include "train/train.h"

typedef struct vklm_zero vklm_zero;

vklm_status vklm_zero_create(vklm_model *m, vklm_dist *d, vklm_zero **out, char *err,
                             size_t errlen);
void vklm_zero_destroy(vklm_zero *z); /* accepts NULL */
/* The shard's master weights from params (the whole flat vector), its moments from m and v
 * (whole vectors, a checkpoint's) or zeros when NULL. */
vklm_status vklm_zero_load(vklm_zero *z, const float *params, const float *m, const float *v,
                           char *err, size_t errlen);
/* One optimizer step. g: the whole flat gradient vector, already reduce-scattered over the ranks
 * (vklm_dist_reduce_scatter_f32, or range by range as the backward finished them): this rank's
 * shard holds the sum. Overwritten: on return g holds the new parameters, which are also in the
 * model. Zeroes the model's gradients.
 * *grad_norm: the global norm before clipping. */
vklm_status vklm_zero_step(vklm_zero *z, float *g, const vklm_optim_config *oc, uint32_t step,
                           float *grad_norm, char *err, size_t errlen);
/* The whole moments (every rank's shard) into m and v, on every rank. */
vklm_status vklm_zero_gather_moments(vklm_zero *z, float *m, float *v, char *err, size_t errlen);
/* The checkpoint of a ZeRO-1 run: every rank calls it (the moments are gathered); rank 0 writes
 * path (vklm_ckpt_write: atomic) with the model's parameters, the moments and state st. */
vklm_status vklm_zero_save(vklm_zero *z, const char *path, const vklm_ckpt_state *st, char *err,
                           size_t errlen);

#endif

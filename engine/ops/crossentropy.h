/* Softmax cross-entropy over a vocabulary (llm.c's fused classifier), with an ignore index.
 *
 * The training loss is the MEAN over the rows whose target is not ignore_index. Its gradient
 * scale dloss = grad_scale / (number of such rows) is computed ON THE GPU into a 1-float buffer
 * (crossentropy_dloss_f32), so a recorded training step replays correctly with new targets.
 * grad_scale is 1 for a plain step; e.g. 1/grad_accum_steps to average over micro-batches.
 *
 * dlogits OVERWRITES (an activation gradient) and MAY ALIAS logits: pass the same buffer for
 * both to compute the gradient in place and save the (N,V) buffer.
 *
 * Targets are int32. A target outside [0,V) other than ignore_index is the CALLER's error: the
 * wrapper cannot see GPU data and the shaders do not clamp; nothing is accessed out of bounds,
 * but that row's loss and gradient are meaningless (loss = logsumexp, gradient = softmax * dloss).
 * N*V must be < 2^32 and N < 2^24 (the count is summed in fp32). fp32 throughout.
 * CPU-type devices (vklm_context_cpu_kernels; lavapipe) run variants with one invocation per
 * row and no shared memory or barrier (crossentropy_*_f32_cpu.comp; the GPU kernels where V is
 * too long for llvmpipe's loop limit). */
#ifndef VKLM_OPS_CROSSENTROPY_H
#define VKLM_OPS_CROSSENTROPY_H

#include <stdint.h>
#include "vklm_runtime.h"

/* Records two dispatches: dloss (1) = grad_scale / count(targets != ignore_index) (0 when none),
 * then per row r:
 *   losses[r] = -log softmax(logits[r,:])[targets[r]]            (0 for ignored rows)
 *   dlogits[r,:] = (softmax(logits[r,:]) - onehot(targets[r])) * dloss   (0 for ignored rows) */
vklm_status vklm_crossentropy_forward_backward(vklm_cmd *cmd, vklm_buffer losses /* (N) */,
                                               vklm_buffer dlogits /* (N,V), may be logits */,
                                               vklm_buffer dloss /* (1) */,
                                               vklm_buffer logits /* (N,V) */,
                                               vklm_buffer targets /* (N) int32 */, uint32_t N,
                                               uint32_t V, int32_t ignore_index,
                                               float grad_scale);

/* The same with a scale per row and no dloss kernel: losses as above,
 *   dlogits[r,:] = (softmax(logits[r,:]) - onehot(targets[r])) * scale[r]   (0 for ignored rows)
 * i.e. the gradient of sum_r scale[r] * losses[r]: a mean whose count the host knows (across
 * micro-batches), or -(the log-likelihood's coefficient) per token for DPO/PPO. scale (N) is a
 * buffer, so a recorded step replays with new scales. dlogits may alias logits. */
vklm_status vklm_crossentropy_forward_backward_rows(vklm_cmd *cmd, vklm_buffer losses /* (N) */,
                                                    vklm_buffer dlogits /* (N,V) */,
                                                    vklm_buffer logits /* (N,V) */,
                                                    vklm_buffer targets /* (N) int32 */,
                                                    vklm_buffer scale /* (N) */, uint32_t N,
                                                    uint32_t V, int32_t ignore_index);

/* The losses alone (evaluation): losses (N) as above. */
vklm_status vklm_crossentropy_forward(vklm_cmd *cmd, vklm_buffer losses /* (N) */,
                                      vklm_buffer logits /* (N,V) */,
                                      vklm_buffer targets /* (N) int32 */, uint32_t N, uint32_t V,
                                      int32_t ignore_index);

/* mean (1) = sum of losses over non-ignored rows / their count (0 when none), in a fixed order:
 * deterministic, and the training loop reads back 4 bytes. */
vklm_status vklm_crossentropy_mean(vklm_cmd *cmd, vklm_buffer mean /* (1) */,
                                   vklm_buffer losses /* (N) */,
                                   vklm_buffer targets /* (N) int32 */, uint32_t N,
                                   int32_t ignore_index);

/* C references (double arithmetic). dlogits may alias logits here too; dlogits may be NULL
 * (losses only). Returns the mean loss over non-ignored rows (0 when none). Targets must be in
 * [0,V) or ignore_index. */
double vklm_crossentropy_forward_backward_ref(float *losses, float *dlogits, const float *logits,
                                              const int32_t *targets, uint32_t N, uint32_t V,
                                              int32_t ignore_index, float grad_scale);

#endif

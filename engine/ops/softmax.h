/* Softmax over the last dimension, numerically stable (the row's max is subtracted), fp32.
 * One workgroup per row with a deterministic shared-memory reduction; any V >= 1.
 * The backward OVERWRITES dinp and needs only the forward's output. N*V must be < 2^32. */
#ifndef VKLM_OPS_SOFTMAX_H
#define VKLM_OPS_SOFTMAX_H

#include <stdint.h>
#include "vklm_runtime.h"

/* out (N,V) = softmax(inp (N,V)) per row */
vklm_status vklm_softmax_forward(vklm_cmd *cmd, vklm_buffer out /* (N,V) */,
                                 vklm_buffer inp /* (N,V) */, uint32_t N, uint32_t V);
/* dinp (N,V) = out * (dout - sum_v(dout * out)) per row — overwrites */
vklm_status vklm_softmax_backward(vklm_cmd *cmd, vklm_buffer dinp /* (N,V) */,
                                  vklm_buffer dout /* (N,V) */, vklm_buffer out /* (N,V) */,
                                  uint32_t N, uint32_t V);

void vklm_softmax_forward_ref(float *out, const float *inp, uint32_t N, uint32_t V);
void vklm_softmax_backward_ref(float *dinp, const float *dout, const float *out, uint32_t N,
                               uint32_t V);

#endif

/* Fill and scale: the simplest ops, on fp32 buffers of n elements (in place for scale). */
#ifndef VKLM_OPS_FILL_H
#define VKLM_OPS_FILL_H

#include <stdint.h>
#include "vklm_runtime.h"

/* out (n) = value */
vklm_status vklm_fill(vklm_cmd *cmd, vklm_buffer out, float value, uint32_t n);
/* x (n) *= s */
vklm_status vklm_scale(vklm_cmd *cmd, vklm_buffer x, float s, uint32_t n);

void vklm_fill_ref(float *out, float value, uint32_t n);
void vklm_scale_ref(float *x, float s, uint32_t n);

#endif

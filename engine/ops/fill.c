/* Fill and scale (shaders/fill_f32.comp, shaders/scale_f32.comp). */
#include "fill.h"

#include "op_util.h"

typedef struct fill_push {
  uint32_t n;
  float value;
} fill_push;
_Static_assert(sizeof(fill_push) == 8, "fill_f32.comp push constants");

vklm_status vklm_fill(vklm_cmd *cmd, vklm_buffer out, float value, uint32_t n) {
  VKLM_ASSERT(out.size >= (uint64_t)n * 4, "fill: buffer of %llu bytes < %u floats",
              (unsigned long long)out.size, n);
  fill_push pc = {n, value};
  return vklm_op_dispatch_1d(cmd, "fill_f32", &out, 1, &pc, sizeof pc, n);
}

vklm_status vklm_scale(vklm_cmd *cmd, vklm_buffer x, float s, uint32_t n) {
  VKLM_ASSERT(x.size >= (uint64_t)n * 4, "scale: buffer of %llu bytes < %u floats",
              (unsigned long long)x.size, n);
  fill_push pc = {n, s};
  return vklm_op_dispatch_1d(cmd, "scale_f32", &x, 1, &pc, sizeof pc, n);
}

void vklm_fill_ref(float *out, float value, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) out[i] = value;
}

void vklm_scale_ref(float *x, float s, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) x[i] *= s;
}

/* AdamW, global gradient norm and clipping (shaders/adamw_update_f32.comp,
 * grad_norm_partial_f32.comp, grad_norm_final_f32.comp, grad_clip_f32.comp). See optim.h. */
#include "optim.h"

#include <math.h>

#include "op_util.h"

typedef struct adamw_push {
  uint32_t n, apply_wd, use_clip;
} adamw_push;
_Static_assert(sizeof(adamw_push) == 12, "adamw_update_f32.comp push constants");

typedef struct norm_partial_push {
  uint32_t n;      /* elements of this tensor */
  uint32_t groups; /* workgroups = partial sums written */
  uint32_t slots;  /* floats of this tensor's scratch slice (groups rounded up; the rest zeroed) */
} norm_partial_push;
_Static_assert(sizeof(norm_partial_push) == 12, "grad_norm_partial_f32.comp push constants");

typedef struct norm_final_push {
  uint32_t P; /* partial sums in the scratch buffer */
  float max_norm;
} norm_final_push;
_Static_assert(sizeof(norm_final_push) == 8, "grad_norm_final_f32.comp push constants");

typedef struct clip_push {
  uint32_t n;
} clip_push;
_Static_assert(sizeof(clip_push) == 4, "grad_clip_f32.comp push constants");

/* ---- AdamW ----------------------------------------------------------------------------------- */

void vklm_adamw_step_fill(vklm_adamw_step *s, float lr, float beta1, float beta2, float eps,
                          float weight_decay, uint32_t t) {
  VKLM_ASSERT(t >= 1, "adamw: step numbers start at 1 (got %u)", t);
  double bc1 = 1.0 - pow((double)beta1, (double)t), bc2 = 1.0 - pow((double)beta2, (double)t);
  *s = (vklm_adamw_step){
      .lr = lr,
      .beta1 = beta1,
      .beta2 = beta2,
      .eps = eps,
      .weight_decay = weight_decay,
      .decay = (float)(1.0 - (double)lr * (double)weight_decay),
      .one_m_beta1 = (float)(1.0 - (double)beta1),
      .one_m_beta2 = (float)(1.0 - (double)beta2),
      .step_size = (float)((double)lr / bc1),
      .bc2_sqrt = (float)sqrt(bc2),
      .t = t,
  };
}

vklm_status vklm_adamw(vklm_cmd *cmd, vklm_buffer params, vklm_buffer m, vklm_buffer v,
                       vklm_buffer grads, uint32_t n, vklm_buffer step_buf, vklm_buffer clip_buf,
                       int apply_wd) {
  uint64_t bytes = (uint64_t)n * 4;
  VKLM_ASSERT(params.size >= bytes && m.size >= bytes && v.size >= bytes && grads.size >= bytes,
              "adamw: a buffer holds fewer than n = %u floats", n);
  VKLM_ASSERT(step_buf.size >= sizeof(vklm_adamw_step), "adamw: step buffer of %llu bytes < %zu",
              (unsigned long long)step_buf.size, sizeof(vklm_adamw_step));
  int use_clip = clip_buf.size > 0;
  VKLM_ASSERT(!use_clip || clip_buf.size >= 8, "adamw: clip buffer of %llu bytes < 2 floats",
              (unsigned long long)clip_buf.size);
  if (n == 0) return VKLM_OK;
  adamw_push pc = {n, apply_wd ? 1u : 0u, (uint32_t)use_clip};
  /* Without a clip buffer the step buffer stands in at binding 5 (read-only, never read). */
  vklm_buffer bufs[6] = {params, m, v, grads, step_buf, use_clip ? clip_buf : step_buf};
  return vklm_op_dispatch_1d(cmd, "adamw_update_f32", bufs, 6, &pc, sizeof pc, n);
}

void vklm_adamw_ref(float *params, float *m, float *v, const float *grads, uint32_t n,
                    const vklm_adamw_step *s, float clip, int apply_wd) {
  for (uint32_t i = 0; i < n; i++) {
    float g = grads[i] * clip;
    float p = params[i];
    if (apply_wd) p *= s->decay;
    float mm = s->beta1 * m[i] + s->one_m_beta1 * g;
    float vv = s->beta2 * v[i] + s->one_m_beta2 * g * g;
    float denom = sqrtf(vv) / s->bc2_sqrt + s->eps;
    m[i] = mm;
    v[i] = vv;
    params[i] = p - s->step_size * (mm / denom);
  }
}

/* ---- gradient norm --------------------------------------------------------------------------- */

/* Each workgroup of the partial pass covers at least ITEMS elements per thread, and a tensor gets
 * at most MAX_GROUPS partial sums (enough to fill a large GPU; per-thread runs stay short, which
 * keeps the fp32 sums accurate). */
enum { NORM_ITEMS = 16, NORM_MAX_GROUPS = 1024 };

static uint32_t norm_groups(uint32_t n, uint32_t wg) {
  uint64_t g = ((uint64_t)n + (uint64_t)wg * NORM_ITEMS - 1) / ((uint64_t)wg * NORM_ITEMS);
  return (uint32_t)(g < NORM_MAX_GROUPS ? g : NORM_MAX_GROUPS);
}

/* Each tensor's partials start at an aligned offset, so every partial dispatch binds its own
 * disjoint slice (no barriers between them) and the final pass sums the whole prefix. */
static uint32_t norm_slots(const vklm_context *ctx, uint32_t groups) {
  uint32_t a = vklm_buffer_alignment(ctx) / 4;
  if (a == 0) a = 1;
  return (groups + a - 1) / a * a;
}

uint64_t vklm_grad_norm_scratch_size(const vklm_context *ctx, const uint32_t *counts,
                                     uint32_t ntensors) {
  uint32_t wg = vklm_op_wg1d(ctx);
  uint64_t total = 0;
  for (uint32_t i = 0; i < ntensors; i++) total += norm_slots(ctx, norm_groups(counts[i], wg));
  return total ? total * 4 : 4;
}

vklm_status vklm_grad_norm(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                           const vklm_buffer *grads, const uint32_t *counts, uint32_t ntensors,
                           float max_norm) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t wg = vklm_op_wg1d(ctx);
  VKLM_ASSERT((wg & (wg - 1)) == 0, "grad norm: workgroup size %u is not a power of two", wg);
  VKLM_ASSERT(norm_out.size >= 8, "grad norm: norm_out of %llu bytes < 2 floats",
              (unsigned long long)norm_out.size);
  uint64_t need = vklm_grad_norm_scratch_size(ctx, counts, ntensors);
  VKLM_ASSERT(scratch.size >= need, "grad norm: scratch of %llu bytes < %llu (vklm_grad_norm_scratch_size)",
              (unsigned long long)scratch.size, (unsigned long long)need);
  vklm_status st;
  uint64_t at = 0; /* floats of scratch used so far */
  for (uint32_t i = 0; i < ntensors; i++) {
    uint32_t n = counts[i];
    if (n == 0) continue;
    VKLM_ASSERT(grads[i].size >= (uint64_t)n * 4, "grad norm: tensor %u has %llu bytes < %u floats", i,
                (unsigned long long)grads[i].size, n);
    uint32_t groups = norm_groups(n, wg), slots = norm_slots(ctx, groups), gx, gy;
    norm_partial_push pc = {n, groups, slots};
    vklm_buffer bufs[2] = {grads[i], vklm_buffer_slice(scratch, at * 4, (uint64_t)slots * 4)};
    vklm_groups_1d(ctx, groups, &gx, &gy);
    st = vklm_op_dispatch(cmd, "grad_norm_partial_f32", &wg, 1, bufs, 2, &pc, sizeof pc, gx, gy, 1);
    if (st != VKLM_OK) return st;
    at += slots;
  }
  norm_final_push pf = {(uint32_t)at, max_norm};
  vklm_buffer bufs[2] = {norm_out, vklm_buffer_slice(scratch, 0, at ? at * 4 : 4)};
  return vklm_op_dispatch(cmd, "grad_norm_final_f32", &wg, 1, bufs, 2, &pf, sizeof pf, 1, 1, 1);
}

vklm_status vklm_grad_clip(vklm_cmd *cmd, vklm_buffer grads, uint32_t n, vklm_buffer norm_out) {
  VKLM_ASSERT(grads.size >= (uint64_t)n * 4, "grad clip: buffer of %llu bytes < %u floats",
              (unsigned long long)grads.size, n);
  VKLM_ASSERT(norm_out.size >= 8, "grad clip: norm_out of %llu bytes < 2 floats",
              (unsigned long long)norm_out.size);
  if (n == 0) return VKLM_OK;
  clip_push pc = {n};
  vklm_buffer bufs[2] = {grads, norm_out};
  return vklm_op_dispatch_1d(cmd, "grad_clip_f32", bufs, 2, &pc, sizeof pc, n);
}

void vklm_grad_norm_ref(float norm_out[2], const float *const *grads, const uint32_t *counts,
                        uint32_t ntensors, float max_norm) {
  double ss = 0;
  for (uint32_t i = 0; i < ntensors; i++)
    for (uint32_t j = 0; j < counts[i]; j++) ss += (double)grads[i][j] * grads[i][j];
  double norm = sqrt(ss), scale = 1;
  if (max_norm > 0) {
    double coef = (double)max_norm / (norm + 1e-6);
    scale = coef >= 1 ? 1 : coef; /* a NaN norm gives a NaN scale, as PyTorch */
  }
  norm_out[0] = (float)norm;
  norm_out[1] = (float)scale;
}

void vklm_grad_clip_ref(float *grads, uint32_t n, const float norm_out[2]) {
  for (uint32_t i = 0; i < n; i++) grads[i] *= norm_out[1];
}

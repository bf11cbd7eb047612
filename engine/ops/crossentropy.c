/* Fused softmax cross-entropy (shaders/crossentropy_*_f32.comp) and its C reference. */
#include "crossentropy.h"

#include <math.h>
#include <stdio.h>

#include "op_util.h"

typedef struct dloss_push {
  uint32_t N;
  int32_t ignore_index;
  float grad_scale;
} dloss_push;
_Static_assert(sizeof(dloss_push) == 12, "crossentropy_dloss_f32.comp push constants");

typedef struct rows_push {
  uint32_t N, V;
  int32_t ignore_index;
} rows_push;
_Static_assert(sizeof(rows_push) == 12, "crossentropy_forward(_backward)_f32.comp push constants");

typedef struct fb_push {
  uint32_t N, V;
  int32_t ignore_index;
  uint32_t per_row;
} fb_push;
_Static_assert(sizeof(fb_push) == 16, "crossentropy_forward_backward_f32.comp push constants");

typedef struct mean_push {
  uint32_t N;
  int32_t ignore_index;
} mean_push;
_Static_assert(sizeof(mean_push) == 8, "crossentropy_mean_f32.comp push constants");

static void check(const char *op, vklm_buffer b, uint64_t n, const char *what) {
  VKLM_ASSERT(b.block && b.size >= n * 4, "%s: %s holds %llu bytes, needs %llu words", op, what,
              (unsigned long long)b.size, (unsigned long long)n);
}

static void check_shape(const char *op, uint32_t N, uint32_t V) {
  VKLM_ASSERT((uint64_t)N * V < (1ull << 32), "%s: N*V = %llu exceeds 2^32", op,
              (unsigned long long)N * V);
  VKLM_ASSERT(N < (1u << 24), "%s: N = %u rows exceed 2^24", op, N);
}

/* Rows per workgroup of the CPU-type variants (one invocation per row). */
#define CE_CPU_WG 16u

/* A per-row kernel (vklm_op_dispatch_rows): GPU workgroups of up to 512 threads per row, CPU-type
 * variants CE_CPU_WG rows per workgroup. */
static vklm_status dispatch_rows(vklm_cmd *cmd, const char *name, const vklm_buffer *b,
                                 uint32_t nb, const void *pc, uint32_t pc_size, uint32_t N,
                                 uint32_t len) {
  return vklm_op_dispatch_rows(cmd, name, b, nb, pc, pc_size, N, len, 512, CE_CPU_WG);
}

vklm_status vklm_crossentropy_forward_backward(vklm_cmd *cmd, vklm_buffer losses,
                                               vklm_buffer dlogits, vklm_buffer dloss,
                                               vklm_buffer logits, vklm_buffer targets,
                                               uint32_t N, uint32_t V, int32_t ignore_index,
                                               float grad_scale) {
  const char *op = "crossentropy_forward_backward";
  check_shape(op, N, V);
  check(op, losses, N, "losses");
  check(op, dlogits, (uint64_t)N * V, "dlogits");
  check(op, dloss, 1, "dloss");
  check(op, logits, (uint64_t)N * V, "logits");
  check(op, targets, N, "targets");
  if (N == 0) return VKLM_OK;
  VKLM_ASSERT(V > 0, "%s: V = 0", op);
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t wg = vklm_op_wg_fit(ctx, 256, 8);
  dloss_push dp = {N, ignore_index, grad_scale};
  vklm_buffer b1[2] = {dloss, targets};
  vklm_status st = vklm_op_dispatch(cmd, "crossentropy_dloss_f32", &wg, 1, b1, 2, &dp, sizeof dp, 1, 1, 1);
  if (st != VKLM_OK) return st;
  fb_push fp = {N, V, ignore_index, 0};
  vklm_buffer b2[5] = {losses, dlogits, logits, targets, dloss};
  return dispatch_rows(cmd, "crossentropy_forward_backward_f32", b2, 5, &fp, sizeof fp, N, V);
}

vklm_status vklm_crossentropy_forward_backward_rows(vklm_cmd *cmd, vklm_buffer losses,
                                                    vklm_buffer dlogits, vklm_buffer logits,
                                                    vklm_buffer targets, vklm_buffer scale,
                                                    uint32_t N, uint32_t V,
                                                    int32_t ignore_index) {
  const char *op = "crossentropy_forward_backward_rows";
  check_shape(op, N, V);
  check(op, losses, N, "losses");
  check(op, dlogits, (uint64_t)N * V, "dlogits");
  check(op, logits, (uint64_t)N * V, "logits");
  check(op, targets, N, "targets");
  check(op, scale, N, "scale");
  if (N == 0) return VKLM_OK;
  VKLM_ASSERT(V > 0, "%s: V = 0", op);
  fb_push fp = {N, V, ignore_index, 1};
  vklm_buffer b[5] = {losses, dlogits, logits, targets, scale};
  return dispatch_rows(cmd, "crossentropy_forward_backward_f32", b, 5, &fp, sizeof fp, N, V);
}

vklm_status vklm_crossentropy_forward(vklm_cmd *cmd, vklm_buffer losses, vklm_buffer logits,
                                      vklm_buffer targets, uint32_t N, uint32_t V,
                                      int32_t ignore_index) {
  const char *op = "crossentropy_forward";
  check_shape(op, N, V);
  check(op, losses, N, "losses");
  check(op, logits, (uint64_t)N * V, "logits");
  check(op, targets, N, "targets");
  if (N == 0) return VKLM_OK;
  VKLM_ASSERT(V > 0, "%s: V = 0", op);
  rows_push rp = {N, V, ignore_index};
  vklm_buffer b[3] = {losses, logits, targets};
  return dispatch_rows(cmd, "crossentropy_forward_f32", b, 3, &rp, sizeof rp, N, V);
}

vklm_status vklm_crossentropy_mean(vklm_cmd *cmd, vklm_buffer mean, vklm_buffer losses,
                                   vklm_buffer targets, uint32_t N, int32_t ignore_index) {
  const char *op = "crossentropy_mean";
  check_shape(op, N, 1);
  check(op, mean, 1, "mean");
  check(op, losses, N ? N : 1, "losses");
  check(op, targets, N ? N : 1, "targets");
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t wg = vklm_op_wg_fit(ctx, 256, 8);
  mean_push mp = {N, ignore_index};
  vklm_buffer b[3] = {mean, losses, targets};
  return vklm_op_dispatch(cmd, "crossentropy_mean_f32", &wg, 1, b, 3, &mp, sizeof mp, 1, 1, 1);
}

double vklm_crossentropy_forward_backward_ref(float *losses, float *dlogits, const float *logits,
                                              const int32_t *targets, uint32_t N, uint32_t V,
                                              int32_t ignore_index, float grad_scale) {
  uint32_t count = 0;
  for (uint32_t r = 0; r < N; r++) count += targets[r] != ignore_index;
  double dloss = count ? (double)grad_scale / count : 0.0, sum = 0;
  for (uint32_t r = 0; r < N; r++) {
    const float *x = logits + (size_t)r * V;
    float *d = dlogits ? dlogits + (size_t)r * V : NULL;
    int32_t t = targets[r];
    if (t == ignore_index) {
      losses[r] = 0;
      if (d)
        for (uint32_t v = 0; v < V; v++) d[v] = 0;
      continue;
    }
    double m = -INFINITY, s = 0;
    for (uint32_t v = 0; v < V; v++) m = fmax(m, x[v]);
    for (uint32_t v = 0; v < V; v++) s += exp(x[v] - m);
    double lse = m + log(s), loss = lse - x[t];
    losses[r] = (float)loss;
    sum += loss;
    if (d)
      for (uint32_t v = 0; v < V; v++) /* reads x[v] before writing d[v]: in place is fine */
        d[v] = (float)((exp(x[v] - lse) - (v == (uint32_t)t ? 1.0 : 0.0)) * dloss);
  }
  return count ? sum / count : 0.0;
}

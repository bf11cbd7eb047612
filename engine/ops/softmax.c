/* Softmax forward and backward (shaders/softmax_*_f32.comp) and their C references. */
#include "softmax.h"

#include <math.h>

#include "op_util.h"

typedef struct softmax_push {
  uint32_t N, V;
} softmax_push;
_Static_assert(sizeof(softmax_push) == 8, "softmax_*_f32.comp push constants");

static void check(const char *op, vklm_buffer b, uint64_t n, const char *what) {
  VKLM_ASSERT(b.block && b.size >= n * 4, "%s: %s holds %llu bytes, needs %llu floats", op, what,
              (unsigned long long)b.size, (unsigned long long)n);
}

static vklm_status rows(vklm_cmd *cmd, const char *name, const vklm_buffer *b, uint32_t nb,
                        uint32_t N, uint32_t V) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t wg = vklm_op_wg_fit(ctx, 256, 8), gx, gy;
  vklm_groups_1d(ctx, N, &gx, &gy);
  softmax_push pc = {N, V};
  return vklm_op_dispatch(cmd, name, &wg, 1, b, nb, &pc, sizeof pc, gx, gy, 1);
}

vklm_status vklm_softmax_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp, uint32_t N,
                                 uint32_t V) {
  VKLM_ASSERT((uint64_t)N * V < (1ull << 32), "softmax: N*V exceeds 2^32");
  check("softmax_forward", out, (uint64_t)N * V, "out");
  check("softmax_forward", inp, (uint64_t)N * V, "inp");
  if (N == 0 || V == 0) return VKLM_OK;
  vklm_buffer b[2] = {out, inp};
  return rows(cmd, "softmax_forward_f32", b, 2, N, V);
}

vklm_status vklm_softmax_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dout,
                                  vklm_buffer out, uint32_t N, uint32_t V) {
  VKLM_ASSERT((uint64_t)N * V < (1ull << 32), "softmax: N*V exceeds 2^32");
  check("softmax_backward", dinp, (uint64_t)N * V, "dinp");
  check("softmax_backward", dout, (uint64_t)N * V, "dout");
  check("softmax_backward", out, (uint64_t)N * V, "out");
  if (N == 0 || V == 0) return VKLM_OK;
  vklm_buffer b[3] = {dinp, dout, out};
  return rows(cmd, "softmax_backward_f32", b, 3, N, V);
}

void vklm_softmax_forward_ref(float *out, const float *inp, uint32_t N, uint32_t V) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * V;
    double m = -INFINITY, s = 0;
    for (uint32_t v = 0; v < V; v++) m = fmax(m, x[v]);
    for (uint32_t v = 0; v < V; v++) s += exp(x[v] - m);
    for (uint32_t v = 0; v < V; v++) out[(size_t)r * V + v] = (float)(exp(x[v] - m) / s);
  }
}

void vklm_softmax_backward_ref(float *dinp, const float *dout, const float *out, uint32_t N,
                               uint32_t V) {
  for (uint32_t r = 0; r < N; r++) {
    const float *d = dout + (size_t)r * V, *y = out + (size_t)r * V;
    double s = 0;
    for (uint32_t v = 0; v < V; v++) s += (double)d[v] * y[v];
    for (uint32_t v = 0; v < V; v++) dinp[(size_t)r * V + v] = (float)(y[v] * (d[v] - s));
  }
}

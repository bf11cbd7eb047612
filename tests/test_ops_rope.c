/* RoPE op tests (VKLM_TEST_GPU): the GPU forward and backward against the C references (query and
 * key heads rotated, value heads untouched), with and without a position offset, grouped-query
 * shapes, sizes not a multiple of the workgroup; the backward reference checked by finite
 * differences; rope_backward(rope_forward(x)) == x on the GPU; a hand-computed check of the
 * Hugging Face rotate_half convention; and long positions against a double-precision angle.
 * The forward on a 16-bit qkv (fp16 / bf16 words: mixed precision's saved qkv), in place, at head
 * sizes whose half is odd (pairs sharing words with other threads' pairs), against the reference
 * on the widened values rounded to the format (within 1 ulp), value heads unchanged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

typedef struct shape {
  uint32_t B, T, NH, NKV, HS, pos0;
} shape;

static const float THETA = 10000.0f;

static void test_gpu(vt_env *env, shape s) {
  size_t n = (size_t)s.B * s.T * (s.NH + 2 * s.NKV) * s.HS;
  float *x = vt_randf(n, s.T * 31 + s.HS + s.pos0, -1, 1);
  float *want = vt_copy(x, n), *wantb = vt_copy(x, n);
  vklm_rope_forward_ref(want, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA);
  vklm_rope_backward_ref(wantb, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA);
  vklm_buffer a = vt_upload(env, x, n * 4), b = vt_upload(env, x, n * 4);
  vklm_buffer c = vt_upload(env, x, n * 4);
  vt_begin(env);
  vt_ok(env, vklm_rope_forward(env->cmd, a, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA), "fwd");
  vt_ok(env, vklm_rope_backward(env->cmd, b, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA), "bwd");
  vt_ok(env, vklm_rope_forward(env->cmd, c, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA), "fwd");
  vt_ok(env, vklm_rope_backward(env->cmd, c, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA), "bwd");
  vt_run(env);
  float *ga = vt_download(env, a, n), *gb = vt_download(env, b, n), *gc = vt_download(env, c, n);
  char what[96];
  snprintf(what, sizeof what, "rope fwd B%u T%u NH%u NKV%u HS%u pos0 %u", s.B, s.T, s.NH, s.NKV,
           s.HS, s.pos0);
  vt_compare(env, what, ga, want, n, 1e-4);
  snprintf(what, sizeof what, "rope bwd B%u T%u NH%u NKV%u HS%u pos0 %u", s.B, s.T, s.NH, s.NKV,
           s.HS, s.pos0);
  vt_compare(env, what, gb, wantb, n, 1e-4);
  snprintf(what, sizeof what, "rope bwd(fwd(x)) == x, HS%u pos0 %u", s.HS, s.pos0);
  vt_compare(env, what, gc, x, n, 1e-4);
  /* Value heads untouched, bit for bit. */
  size_t C3 = (size_t)(s.NH + 2 * s.NKV) * s.HS, v0 = (size_t)(s.NH + s.NKV) * s.HS;
  int same = 1;
  for (size_t bt = 0; bt < (size_t)s.B * s.T; bt++)
    same &= !memcmp(ga + bt * C3 + v0, x + bt * C3 + v0, s.NKV * s.HS * 4) &&
            !memcmp(gb + bt * C3 + v0, x + bt * C3 + v0, s.NKV * s.HS * 4);
  vt_expect(env, same, "rope leaves the value heads untouched");
  free(x); free(want); free(wantb); free(ga); free(gb); free(gc);
}

/* The convention by hand: HS=4, one query head at position p: pairs (0,2) and (1,3), angles p and
 * p * theta^(-1/2). */
static void test_convention(vt_env *env) {
  uint32_t p = 3;
  float x[12] = {1, 2, 3, 4, /* k */ 5, 6, 7, 8, /* v */ 9, 10, 11, 12};
  float y[12];
  memcpy(y, x, sizeof x);
  vklm_rope_forward_ref(y, 1, 1, 1, 1, 4, p, THETA);
  double a0 = p, a1 = p / sqrt(THETA);
  double want[4] = {1 * cos(a0) - 3 * sin(a0), 2 * cos(a1) - 4 * sin(a1),
                    3 * cos(a0) + 1 * sin(a0), 4 * cos(a1) + 2 * sin(a1)};
  double err = 0;
  for (int i = 0; i < 4; i++) err = fmax(err, fabs(y[i] - want[i]));
  vt_expect(env, err < 1e-5 && y[8] == 9 && y[11] == 12,
            "rope ref follows rotate_half (pairs i, i+HS/2; freq theta^(-2i/HS)): err %.2e", err);
}

/* Long positions: the GPU against the rotation by the exact angle pos * theta^(-2i/HS) in double;
 * the error is dominated by the fp32 angle (an ulp of 2^15 is 0.004). */
static void test_long_positions(vt_env *env) {
  uint32_t HS = 64, T = 3, pos0 = 32765;
  size_t n = (size_t)T * 3 * HS;
  float *x = vt_randf(n, 99, -1, 1);
  vklm_buffer a = vt_upload(env, x, n * 4);
  vt_begin(env);
  vt_ok(env, vklm_rope_forward(env->cmd, a, 1, T, 1, 1, HS, pos0, THETA), "fwd");
  vt_run(env);
  float *g = vt_download(env, a, n);
  double worst = 0;
  for (uint32_t t = 0; t < T; t++)
    for (uint32_t i = 0; i < HS / 2; i++) {
      double ang = (pos0 + t) * pow(THETA, -2.0 * i / HS);
      const float *v = x + (size_t)t * 3 * HS;
      double y1 = v[i] * cos(ang) - v[i + HS / 2] * sin(ang);
      worst = fmax(worst, fabs(g[(size_t)t * 3 * HS + i] - y1));
    }
  vt_expect(env, worst < 1e-2, "rope at positions %u..%u vs exact angles: max abs err %.2e", pos0,
            pos0 + T - 1, worst);
  free(x);
  free(g);
}

typedef struct fd_state {
  shape s;
  float *x;
  const float *proj;
  float *y;
  size_t n;
} fd_state;

static double fd_loss(void *p) {
  fd_state *st = p;
  memcpy(st->y, st->x, st->n * 4);
  vklm_rope_forward_ref(st->y, st->s.B, st->s.T, st->s.NH, st->s.NKV, st->s.HS, st->s.pos0, THETA);
  double l = 0;
  for (size_t i = 0; i < st->n; i++) l += (double)st->y[i] * st->proj[i];
  return l;
}

static void test_fd(vt_env *env, shape s) {
  size_t n = (size_t)s.B * s.T * (s.NH + 2 * s.NKV) * s.HS;
  float *x = vt_randf(n, 5, -1, 1), *proj = vt_randf(n, 6, -1, 1);
  float *grad = vt_copy(proj, n);
  vklm_rope_backward_ref(grad, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA);
  fd_state st = {s, x, proj, vt_zeros(n), n};
  char what[96];
  snprintf(what, sizeof what, "rope bwd ref B%u T%u NH%u NKV%u HS%u pos0 %u", s.B, s.T, s.NH,
           s.NKV, s.HS, s.pos0);
  vt_fd_check(env, what, fd_loss, &st, x, n, grad, 300, 1e-2, 1e-3);
  free(x); free(proj); free(grad); free(st.y);
}

static void test_16(vt_env *env, shape s, int fmt) {
  size_t n = (size_t)s.B * s.T * (s.NH + 2 * s.NKV) * s.HS;
  float *x = vt_randf(n, s.T * 37 + s.HS + s.pos0, -2, 2);
  void *host;
  vklm_buffer a = vt_upload_fmt(env, x, n, fmt, &host);
  float *want = vt_zeros(n);
  for (size_t i = 0; i < n; i++) {
    uint16_t h = (uint16_t)(((uint32_t *)host)[i / 2] >> (16 * (i & 1)));
    want[i] = fmt == 2 ? vklm_bf16_to_f32_ref(h) : vklm_f16_to_f32_ref(h);
  }
  vklm_rope_forward_ref(want, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA);
  vt_begin(env);
  vt_ok(env, vklm_rope_forward_fmt(env->cmd, a, fmt, s.B, s.T, s.NH, s.NKV, s.HS, s.pos0, THETA),
        "fwd16");
  vt_run(env);
  char what[96];
  snprintf(what, sizeof what, "rope fwd %s B%u T%u NH%u NKV%u HS%u pos0 %u",
           fmt == 2 ? "bf16" : "f16", s.B, s.T, s.NH, s.NKV, s.HS, s.pos0);
  vt_compare16(env, what, a, fmt, want, n);
  uint32_t *got = (uint32_t *)vt_download(env, a, n / 2);
  size_t C3 = (size_t)(s.NH + 2 * s.NKV) * s.HS, v0 = (size_t)(s.NH + s.NKV) * s.HS;
  int same = 1; /* C3 and v0 are even (HS even): the value heads are whole words */
  for (size_t bt = 0; bt < (size_t)s.B * s.T; bt++)
    same &= !memcmp(got + (bt * C3 + v0) / 2, (uint32_t *)host + (bt * C3 + v0) / 2,
                    s.NKV * s.HS * 2);
  vt_expect(env, same, "rope %s leaves the value heads untouched", fmt == 2 ? "bf16" : "f16");
  free(x); free(host); free(want); free(got);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_rope");
  test_convention(&env);
  const shape shapes[] = {
      {1, 1, 1, 1, 2, 0},   {2, 7, 4, 4, 16, 0},  {1, 37, 4, 2, 32, 5},
      {2, 19, 6, 1, 64, 0}, {1, 65, 2, 2, 128, 0}, {3, 13, 3, 1, 80, 17},
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) test_gpu(&env, shapes[i]);
  test_fd(&env, (shape){2, 5, 2, 1, 8, 3});
  const shape s16[] = {{1, 3, 1, 1, 2, 0}, {2, 7, 4, 2, 6, 1}, {1, 37, 4, 2, 32, 5},
                       {3, 13, 3, 1, 80, 17}};
  for (size_t i = 0; i < sizeof s16 / sizeof s16[0]; i++) test_16(&env, s16[i], 1 + (int)(i & 1));
  test_16(&env, s16[1], 2);
  test_16(&env, s16[2], 1);
  test_long_positions(&env);
  return vt_finish(&env);
}

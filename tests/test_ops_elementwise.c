/* Elementwise op tests (VKLM_TEST_GPU): bias add forward and backward (two-stage with full and
 * small scratch, one-stage without), residual add forward and backward, fp32 <-> fp16
 * conversion, each against its C reference at sizes that are not multiples of the workgroup;
 * the backward references against finite differences; the C fp16 converter against known
 * values. fp32 -> fp16 on the GPU may differ from round-to-nearest-even by 1 ulp of fp16
 * (packHalf2x16's rounding is implementation-defined) and may flush fp16 subnormals to zero: both
 * are counted and printed, anything else fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

static uint64_t seed = 100;

/* ---- bias -------------------------------------------------------------------------------- */

static void test_bias(vt_env *env, uint32_t N, uint32_t C) {
  size_t n = (size_t)N * C;
  float *x = vt_randf(n, seed++, -1, 1), *bias = vt_randf(C, seed++, -1, 1);
  float *dout = vt_randf(n, seed++, -1, 1), *db0 = vt_randf(C, seed++, -1, 1);
  vklm_buffer X = vt_upload(env, x, n * 4), B = vt_upload(env, bias, C * 4);
  vklm_buffer D = vt_upload(env, dout, n * 4);
  /* three dbias copies: full scratch (two stages), a scratch for 3 chunks, none (one stage) */
  vklm_buffer DB[3], S[3];
  uint64_t full = vklm_bias_backward_scratch_bytes(N, C);
  S[0] = vt_alloc(env, full);
  S[1] = vt_alloc(env, (uint64_t)C * 4 * 3);
  S[2] = (vklm_buffer){0};
  for (int i = 0; i < 3; i++) DB[i] = vt_upload(env, db0, C * 4);
  vt_begin(env);
  vt_ok(env, vklm_bias_forward(env->cmd, X, B, N, C), "bias_forward");
  for (int i = 0; i < 3; i++) vt_ok(env, vklm_bias_backward(env->cmd, DB[i], S[i], D, N, C), "bias_backward");
  vt_run(env);
  float *gx = vt_download(env, X, n);
  vklm_bias_forward_ref(x, bias, N, C);
  vklm_bias_backward_ref(db0, dout, N, C);
  char what[96];
  snprintf(what, sizeof what, "bias_forward (%u,%u)", N, C);
  vt_compare(env, what, gx, x, n, 1e-6);
  static const char *how[3] = {"two-stage", "3 chunks", "one-stage"};
  for (int i = 0; i < 3; i++) {
    float *g = vt_download(env, DB[i], C);
    snprintf(what, sizeof what, "bias_backward %s (%u,%u)", how[i], N, C);
    vt_compare(env, what, g, db0, C, 1e-5 * (1 + sqrt((double)N)));
    free(g);
  }
  free(x), free(bias), free(dout), free(db0), free(gx);
  vklm_arena_reset(env->arena);
}

/* loss = sum((x + bias) * proj) */
typedef struct bias_fd {
  const float *x, *proj;
  float *bias, *tmp;
  uint32_t N, C;
} bias_fd;

static double bias_loss(void *p) {
  bias_fd *s = p;
  size_t n = (size_t)s->N * s->C;
  memcpy(s->tmp, s->x, n * 4);
  vklm_bias_forward_ref(s->tmp, s->bias, s->N, s->C);
  double l = 0;
  for (size_t i = 0; i < n; i++) l += (double)s->tmp[i] * s->proj[i];
  return l;
}

/* loss = sum((a + b) * proj) */
typedef struct res_fd {
  float *a, *b, *proj, *tmp;
  uint32_t n;
} res_fd;

static double res_loss(void *p) {
  res_fd *s = p;
  vklm_residual_forward_ref(s->tmp, s->a, s->b, s->n);
  double l = 0;
  for (uint32_t i = 0; i < s->n; i++) l += (double)s->tmp[i] * s->proj[i];
  return l;
}

static void test_fd(vt_env *env) {
  uint32_t N = 6, C = 5;
  bias_fd s = {vt_randf(N * C, seed++, -1, 1), vt_randf(N * C, seed++, -1, 1),
               vt_randf(C, seed++, -1, 1), vt_zeros(N * C), N, C};
  float *db = vt_zeros(C);
  vklm_bias_backward_ref(db, s.proj, N, C);
  vt_fd_check(env, "bias_backward_ref dbias", bias_loss, &s, s.bias, C, db, 64, 1e-2, 1e-3);
  free((void *)s.x), free((void *)s.proj), free(s.bias), free(s.tmp), free(db);

  uint32_t n = 23;
  res_fd r = {vt_randf(n, seed++, -1, 1), vt_randf(n, seed++, -1, 1), vt_randf(n, seed++, -1, 1),
              vt_zeros(n), n};
  float *da = vt_zeros(n), *dbb = vt_zeros(n);
  vklm_residual_backward_ref(da, dbb, r.proj, n);
  vt_fd_check(env, "residual_backward_ref da", res_loss, &r, r.a, n, da, 64, 1e-2, 1e-3);
  vt_fd_check(env, "residual_backward_ref db", res_loss, &r, r.b, n, dbb, 64, 1e-2, 1e-3);
  free(r.a), free(r.b), free(r.proj), free(r.tmp), free(da), free(dbb);
}

/* ---- residual ---------------------------------------------------------------------------- */

static void test_residual(vt_env *env, uint32_t n) {
  float *a = vt_randf(n, seed++, -1, 1), *b = vt_randf(n, seed++, -1, 1);
  float *d = vt_randf(n, seed++, -1, 1), *da = vt_randf(n, seed++, -1, 1);
  float *db = vt_randf(n, seed++, -1, 1), *out = vt_zeros(n);
  vklm_buffer A = vt_upload(env, a, n * 4), B = vt_upload(env, b, n * 4);
  vklm_buffer D = vt_upload(env, d, n * 4), DA = vt_upload(env, da, n * 4);
  vklm_buffer DB = vt_upload(env, db, n * 4), O = vt_alloc(env, n * 4);
  vt_begin(env);
  vt_ok(env, vklm_residual_forward(env->cmd, O, A, B, n), "residual_forward");
  vt_ok(env, vklm_residual_backward(env->cmd, DA, DB, D, n), "residual_backward");
  vt_run(env);
  float *go = vt_download(env, O, n), *gda = vt_download(env, DA, n), *gdb = vt_download(env, DB, n);
  vklm_residual_forward_ref(out, a, b, n);
  vklm_residual_backward_ref(da, db, d, n);
  char what[96];
  snprintf(what, sizeof what, "residual_forward (%u)", n);
  vt_compare(env, what, go, out, n, 1e-6);
  snprintf(what, sizeof what, "residual_backward da (%u)", n);
  vt_compare(env, what, gda, da, n, 1e-6);
  snprintf(what, sizeof what, "residual_backward db (%u)", n);
  vt_compare(env, what, gdb, db, n, 1e-6);
  free(a), free(b), free(d), free(da), free(db), free(out), free(go), free(gda), free(gdb);
  vklm_arena_reset(env->arena);
}

/* ---- fp16 conversion --------------------------------------------------------------------- */

static void test_f16_ref(vt_env *env) {
  static const struct {
    float f;
    uint16_t h;
  } known[] = {
      {0.0f, 0x0000},         {-0.0f, 0x8000},          {1.0f, 0x3c00},
      {-2.0f, 0xc000},        {65504.0f, 0x7bff},       {65519.996f, 0x7bff},
      {65520.0f, 0x7c00},     {1e10f, 0x7c00},          {0.33325195f, 0x3555},
      {5.9604645e-08f, 0x0001}, /* 2^-24 */             {2.9802322e-08f, 0x0000}, /* 2^-25: tie to 0 */
      {2.9802326e-08f, 0x0001}, {6.1035156e-05f, 0x0400}, /* 2^-14 */
      {1.00048828f, 0x3c00},  /* 1 + 2^-11: a tie, to even (down) */
      {1.00146484f, 0x3c02},  /* 1 + 3*2^-11: a tie, to even (up) */
      {1.00024414f, 0x3c00},  {1.00073242f, 0x3c01}, /* 1 + 2^-12, 1 + 3*2^-12 */
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    uint16_t h = vklm_f32_to_f16_ref(known[i].f);
    if (h != known[i].h) {
      printf("       f32_to_f16_ref(%.9g) = 0x%04x, want 0x%04x\n", known[i].f, h, known[i].h);
      bad++;
    }
  }
  uint16_t inf = vklm_f32_to_f16_ref(INFINITY), nan_h = vklm_f32_to_f16_ref(NAN);
  bad += inf != 0x7c00 || (nan_h & 0x7c00) != 0x7c00 || !(nan_h & 0x3ff);
  /* every half survives the round trip through the reference converters */
  int rt = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = vklm_f16_to_f32_ref((uint16_t)h);
    if (isnan(f) ? !((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) : vklm_f32_to_f16_ref(f) != h) rt++;
  }
  vt_expect(env, bad == 0 && rt == 0, "fp16 C reference: %zu known values and inf/nan: %d wrong; all 65536 halves round-trip: %d wrong",
            sizeof known / sizeof known[0], bad, rt);
}

/* Ordered distance in fp16 ulps between two finite halves. */
static int half_ulps(uint16_t a, uint16_t b) {
  int ia = a & 0x8000 ? -(int)(a & 0x7fff) : (int)a;
  int ib = b & 0x8000 ? -(int)(b & 0x7fff) : (int)b;
  return abs(ia - ib);
}

static void test_convert(vt_env *env, uint32_t n) {
  /* values over the whole fp16 range and beyond: random magnitudes 2^-28 .. 2^17 and signs,
   * exact ties between neighbouring halves, and the special values */
  float *x = malloc(n * sizeof *x);
  float *r = vt_randf(n, seed++, 0, 1), *e = vt_randf(n, seed++, -28, 17);
  for (uint32_t i = 0; i < n; i++) {
    x[i] = ldexpf(1.0f + r[i], (int)floorf(e[i])) * (i & 1 ? -1.0f : 1.0f);
    if (i % 7 == 3) { /* a tie: halfway between two halves */
      float lo = vklm_f16_to_f32_ref((uint16_t)(i % 0x7bff)), hi = vklm_f16_to_f32_ref((uint16_t)(i % 0x7bff + 1));
      x[i] = (float)(((double)lo + hi) / 2);
    }
  }
  static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65520.0f, -65519.0f, 1e-8f};
  for (uint32_t i = 0; i < sizeof special / sizeof special[0] && i < n; i++) x[i] = special[i];
  uint32_t words = (n + 1) / 2;
  uint32_t *want = calloc(words, 4);
  vklm_convert_f32_to_f16_ref(want, x, n);
  vklm_buffer X = vt_upload(env, x, (size_t)n * 4), H = vt_alloc(env, (size_t)words * 4);
  vklm_buffer Hin = vt_upload(env, want, (size_t)words * 4), F = vt_alloc(env, (size_t)n * 4);
  vt_begin(env);
  vt_ok(env, vklm_convert_f32_to_f16(env->cmd, H, X, n), "f32_to_f16");
  vt_ok(env, vklm_convert_f16_to_f32(env->cmd, F, Hin, n), "f16_to_f32");
  vt_run(env);
  uint32_t *got = malloc((size_t)words * 4);
  vt_ok(env, vklm_buffer_download(env->ctx, H, 0, got, (size_t)words * 4), "download");
  float *gf = vt_download(env, F, n);
  int exact = 0, one_ulp = 0, flushed = 0, wrong = 0;
  for (uint32_t i = 0; i < 2 * words; i++) {
    uint16_t g = (uint16_t)(got[i / 2] >> (16 * (i & 1))), w = (uint16_t)(want[i / 2] >> (16 * (i & 1)));
    int w_nan = (w & 0x7c00) == 0x7c00 && (w & 0x3ff), g_nan = (g & 0x7c00) == 0x7c00 && (g & 0x3ff);
    if (g == w || (w_nan && g_nan)) exact++;
    else if (w_nan || g_nan) wrong++;
    else if ((w & 0x7c00) == 0 && (g & 0x7fff) == 0 && (g & 0x8000) == (w & 0x8000)) flushed++;
    else if (half_ulps(g, w) == 1) one_ulp++;
    else {
      if (wrong++ < 5) printf("       f32_to_f16 at %u: %.9g -> 0x%04x, want 0x%04x\n", i, i < n ? x[i] : 0.0f, g, w);
    }
  }
  vt_expect(env, wrong == 0, "convert_f32_to_f16 (%-6u) %d exact, %d off by 1 ulp, %d subnormals flushed, %d wrong",
            n, exact, one_ulp, flushed, wrong);
  /* fp16 -> fp32 is exact (bitwise; NaN as NaN) */
  float *wf = malloc((size_t)n * 4);
  vklm_convert_f16_to_f32_ref(wf, want, n);
  int diff = 0, sub_flushed = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (isnan(wf[i]) && isnan(gf[i])) continue;
    if (memcmp(&wf[i], &gf[i], 4) == 0) continue;
    if (gf[i] == 0.0f && fabsf(wf[i]) < 6.1035156e-05f) sub_flushed++;
    else diff++;
  }
  vt_expect(env, diff == 0, "convert_f16_to_f32 (%-6u) %d differ, %d subnormals flushed", n, diff, sub_flushed);
  free(x), free(r), free(e), free(want), free(got), free(gf), free(wf);
  vklm_arena_reset(env->arena);
}

/* Every one of the 65536 halves through the GPU's fp16 -> fp32, and back. */
static void test_all_halves(vt_env *env) {
  uint32_t n = 65536;
  uint32_t *h = malloc(n / 2 * 4);
  for (uint32_t i = 0; i < n; i += 2) h[i / 2] = i | (i + 1) << 16;
  vklm_buffer H = vt_upload(env, h, n / 2 * 4), F = vt_alloc(env, n * 4), H2 = vt_alloc(env, n / 2 * 4);
  vt_begin(env);
  vt_ok(env, vklm_convert_f16_to_f32(env->cmd, F, H, n), "f16_to_f32");
  vt_ok(env, vklm_convert_f32_to_f16(env->cmd, H2, F, n), "f32_to_f16");
  vt_run(env);
  float *f = vt_download(env, F, n);
  uint32_t *h2 = malloc(n / 2 * 4);
  vt_ok(env, vklm_buffer_download(env->ctx, H2, 0, h2, n / 2 * 4), "download");
  int diff = 0, rt = 0;
  for (uint32_t i = 0; i < n; i++) {
    float w = vklm_f16_to_f32_ref((uint16_t)i);
    int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
    if (nan ? !isnan(f[i]) : memcmp(&w, &f[i], 4) != 0) diff++;
    uint16_t back = (uint16_t)(h2[i / 2] >> (16 * (i & 1)));
    if (nan ? !((back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != i) rt++;
  }
  vt_expect(env, diff == 0 && rt == 0, "all 65536 halves: f16->f32 %d differ from the reference, f32->f16 round trip %d differ",
            diff, rt);
  free(h), free(f), free(h2);
  vklm_arena_reset(env->arena);
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_elementwise");
  test_bias(&env, 1, 1);
  test_bias(&env, 37, 300);
  test_bias(&env, 1000, 77);
  test_residual(&env, 1);
  test_residual(&env, 1000);
  test_residual(&env, 70001);
  test_fd(&env);
  test_f16_ref(&env);
  test_convert(&env, 1);
  test_convert(&env, 9);
  test_convert(&env, 100003);
  test_all_halves(&env);
  return vt_finish(&env);
}

/* Attention op tests (VKLM_TEST_GPU): the fused GPU forward (out, lse) and backward (dqkv) against
 * the materialised-softmax C references, causal and non-causal, for multi-head, grouped-query and
 * multi-query shapes with T not a multiple of any tile and HS of 16, 32, 64, 80, 128 and 256; the
 * backward reference checked by finite differences of loss = sum(out * proj); and repeatability
 * of the backward (no atomics: two runs give identical bits). Every GPU case runs for both kernel
 * families (the GPU kernels and the CPU-type variants, vklm_context_set_kernels), with extra
 * shapes for the latter: T = 1, HS = 1 and 3, T = 17, 18, 301 and 700 (with HS = 64: more loop
 * iterations than llvmpipe allows unless the head-dimension loops are unrolled), and T = 480
 * with 64 query heads per key head (past their loop budget: the GPU dK/dV kernel stands in).
 * The forward with an fp16 / bf16 out and the backward reading it (the _fmt calls: mixed
 * precision's saved attention output) run in both families too (test_attn16), and with qkv in
 * fp16 / bf16 (mixed precision's saved qkv: test_qkv16) against the references on the widened
 * values at the fp32 tolerances. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"
#include "testutil.h"

/* The kernel family under test (vklm_context_set_kernels): every GPU case runs for both. */

/* D (B,NH,T) = rowsum(dout * out) per (row, head), in double: what the dQ kernel leaves in scratch
 * for dK/dV, against the GPU's own out. */
static float *d_ref(const float *dout, const float *o, uint32_t B, uint32_t T, uint32_t NH,
                    uint32_t HS) {
  float *dref = vt_zeros((size_t)B * NH * T);
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t t = 0; t < T; t++)
      for (uint32_t h = 0; h < NH; h++) {
        size_t at = (((size_t)b * T + t) * NH + h) * HS;
        double sum = 0;
        for (uint32_t e = 0; e < HS; e++) sum += (double)dout[at + e] * o[at + e];
        dref[((size_t)b * NH + h) * T + t] = (float)sum;
      }
  return dref;
}
static const char *fam = "gpu";

typedef struct shape {
  uint32_t B, T, NH, NKV, HS;
} shape;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Two views of one comparison: vt_compare's elementwise relative error (its floor of
 * 1e-3 * max|want| makes a one-ulp fp32 error on a near-zero element read as ~1e-4, so its
 * tolerance is loose and only catches gross, local errors), and the normwise
 * ||got - want|| / ||want||, held to the tolerance that fp32 accumulation should meet (1e-5
 * forward, 1e-4 backward). */
static void check(vt_env *env, const char *what, const float *got, const float *want, size_t n,
                  double elem_tol, double norm_tol) {
  vt_compare(env, what, got, want, n, elem_tol);
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    num += d * d;
    den += (double)want[i] * want[i];
  }
  double rel = sqrt(num) / (sqrt(den) + 1e-30);
  vt_expect(env, rel <= norm_tol, "%-40s normwise rel err %.3e (tol %.0e)", what, rel, norm_tol);
}

static void test_gpu(vt_env *env, shape s, int causal, int timing) {
  uint32_t B = s.B, T = s.T, NH = s.NH, NKV = s.NKV, HS = s.HS;
  size_t nqkv = (size_t)B * T * (NH + 2 * NKV) * HS, nout = (size_t)B * T * NH * HS,
         nrow = (size_t)B * NH * T;
  uint64_t seed = B * 1000003u + T * 1009u + NH * 101u + NKV * 11u + HS + causal;
  float *qkv = vt_randf(nqkv, seed, -2, 2);
  float *dout = vt_randf(nout, seed + 1, -1, 1);
  float *out = vt_zeros(nout), *lse = vt_zeros(nrow), *dqkv = vt_zeros(nqkv);
  double t0 = now_ms();
  vklm_attention_forward_ref(out, lse, qkv, B, T, NH, NKV, HS, causal);
  double t1 = now_ms();
  vklm_attention_backward_ref(dqkv, dout, qkv, B, T, NH, NKV, HS, causal);
  double t2 = now_ms();

  vklm_buffer gqkv = vt_upload(env, qkv, nqkv * 4), gdout = vt_upload(env, dout, nout * 4);
  vklm_buffer gout = vt_alloc(env, nout * 4), glse = vt_alloc(env, nrow * 4);
  vklm_buffer gdqkv = vt_alloc(env, nqkv * 4), gscr = vt_alloc(env, nrow * 4);
  /* dqkv is overwritten: start it with garbage */
  vt_begin(env);
  vt_ok(env, vklm_fill(env->cmd, gdqkv, 12345.0f, (uint32_t)nqkv), "fill");
  vt_ok(env, vklm_attention_forward(env->cmd, gout, glse, gqkv, B, T, NH, NKV, HS, causal), "fwd");
  vt_ok(env, vklm_attention_backward(env->cmd, gdqkv, gscr, gdout, glse, gqkv, B, T, NH, NKV, HS,
                                     causal),
        "bwd");
  vt_run(env);
  float *o = vt_download(env, gout, nout), *l = vt_download(env, glse, nrow);
  float *d = vt_download(env, gdqkv, nqkv);
  char what[96];
  snprintf(what, sizeof what, "attn[%s] fwd out  B%u T%u NH%u NKV%u HS%u %s", fam, B, T, NH, NKV, HS,
           causal ? "causal" : "full");
  check(env, what, o, out, nout, 5e-3, 1e-5);
  snprintf(what, sizeof what, "attn[%s] fwd lse  B%u T%u NH%u NKV%u HS%u %s", fam, B, T, NH, NKV, HS,
           causal ? "causal" : "full");
  check(env, what, l, lse, nrow, 1e-4, 1e-5);
  snprintf(what, sizeof what, "attn[%s] bwd dqkv B%u T%u NH%u NKV%u HS%u %s", fam, B, T, NH, NKV, HS,
           causal ? "causal" : "full");
  check(env, what, d, dqkv, nqkv, 5e-3, 1e-4);
  /* D = sum_j p_j dp_j, which the dQ kernel leaves in scratch for dK/dV: against
   * rowsum(dout * out) in double over the reference's out (equal in exact arithmetic); an fp32
   * sum over up to T keys, so elementwise within 1e-3 (a wrong D is off by its own size) */
  float *dd = vt_download(env, gscr, nrow), *dref = d_ref(dout, out, B, T, NH, HS);
  snprintf(what, sizeof what, "attn[%s] bwd D    B%u T%u NH%u NKV%u HS%u %s", fam, B, T, NH, NKV, HS,
           causal ? "causal" : "full");
  check(env, what, dd, dref, nrow, 1e-3, 1e-5);
  free(dd);
  free(dref);

  /* Determinism: the backward again gives identical bits; it is two dispatches (dQ with D,
   * then dK/dV) */
  vt_begin(env);
  vt_ok(env, vklm_attention_backward(env->cmd, gdqkv, gscr, gdout, glse, gqkv, B, T, NH, NKV, HS,
                                     causal),
        "bwd");
  vt_expect(env, vklm_cmd_dispatch_count(env->cmd) == 2,
            "attn[%s] bwd records 2 dispatches (%u)", fam, vklm_cmd_dispatch_count(env->cmd));
  vt_run(env);
  float *d2 = vt_download(env, gdqkv, nqkv);
  vt_expect(env, !memcmp(d, d2, nqkv * 4), "attn[%s] bwd repeat gives identical bits", fam);

  if (timing) {
    /* Rough timings (lavapipe timings are CPU timings: for information only). */
    int reps = 3;
    vt_begin(env);
    for (int r = 0; r < reps; r++)
      vt_ok(env, vklm_attention_forward(env->cmd, gout, glse, gqkv, B, T, NH, NKV, HS, causal),
            "fwd");
    vt_ok(env, vklm_cmd_end(env->cmd), "end");
    double g0 = now_ms();
    vt_ok(env, vklm_cmd_run(env->cmd), "run");
    double g1 = now_ms();
    vt_begin(env);
    for (int r = 0; r < reps; r++)
      vt_ok(env, vklm_attention_backward(env->cmd, gdqkv, gscr, gdout, glse, gqkv, B, T, NH, NKV,
                                         HS, causal),
            "bwd");
    vt_ok(env, vklm_cmd_end(env->cmd), "end");
    double g2 = now_ms();
    vt_ok(env, vklm_cmd_run(env->cmd), "run");
    double g3 = now_ms();
    printf("       timing[%s]: fwd ref %.2f ms, gpu %.2f ms; bwd ref %.2f ms, gpu %.2f ms\n", fam, t1 - t0,
           (g1 - g0) / reps, t2 - t1, (g3 - g2) / reps);
  }
  free(qkv); free(dout); free(out); free(lse); free(dqkv); free(o); free(l); free(d); free(d2);
}

typedef struct fd_state {
  shape s;
  int causal;
  const float *qkv, *proj;
  float *out, *lse;
} fd_state;

static double fd_loss(void *p) {
  fd_state *st = p;
  shape s = st->s;
  vklm_attention_forward_ref(st->out, st->lse, st->qkv, s.B, s.T, s.NH, s.NKV, s.HS, st->causal);
  size_t n = (size_t)s.B * s.T * s.NH * s.HS;
  double l = 0;
  for (size_t i = 0; i < n; i++) l += (double)st->out[i] * st->proj[i];
  return l;
}

static void test_fd(vt_env *env, shape s, int causal) {
  size_t nqkv = (size_t)s.B * s.T * (s.NH + 2 * s.NKV) * s.HS;
  size_t nout = (size_t)s.B * s.T * s.NH * s.HS;
  float *qkv = vt_randf(nqkv, 7 + s.T + causal, -1, 1), *proj = vt_randf(nout, 8 + s.T, -1, 1);
  float *dqkv = vt_zeros(nqkv);
  vklm_attention_backward_ref(dqkv, proj, qkv, s.B, s.T, s.NH, s.NKV, s.HS, causal);
  fd_state st = {s, causal, qkv, proj, vt_zeros(nout), vt_zeros((size_t)s.B * s.NH * s.T)};
  char what[96];
  snprintf(what, sizeof what, "attn bwd ref B%u T%u NH%u NKV%u HS%u %s", s.B, s.T, s.NH, s.NKV,
           s.HS, causal ? "causal" : "full");
  vt_fd_check(env, what, fd_loss, &st, qkv, nqkv, dqkv, 400, 1e-2, 1e-2);
  free(qkv); free(proj); free(dqkv); free(st.out); free(st.lse);
}

/* Forward and backward with the attention output in 16 bits (fmt 1 fp16, 2 bf16: mixed
 * precision's saved attention output; HS even): out against the reference rounded to the format
 * (vt_compare16), lse as in fp32; the backward does not read out (D = sum_j p_j dp_j from P and
 * dP), so D matches rowsum(dout * out) of the fp32 reference's out and dqkv the fp32 reference at
 * the fp32 tolerances (when D came from the rounded out, dqkv was off by up to 1.8e-3 bf16,
 * 2.8e-4 f16 normwise: a backward that read the rounded out fails here). */
static void test_attn16(vt_env *env, shape s, int causal, int fmt) {
  uint32_t B = s.B, T = s.T, NH = s.NH, NKV = s.NKV, HS = s.HS;
  size_t nqkv = (size_t)B * T * (NH + 2 * NKV) * HS, nout = (size_t)B * T * NH * HS,
         nrow = (size_t)B * NH * T;
  uint64_t seed = 77 + B * 1000003u + T * 1009u + NH * 101u + NKV * 11u + HS + causal;
  float *qkv = vt_randf(nqkv, seed, -2, 2), *dout = vt_randf(nout, seed + 1, -1, 1);
  float *out = vt_zeros(nout), *lse = vt_zeros(nrow), *dqkv = vt_zeros(nqkv);
  vklm_attention_forward_ref(out, lse, qkv, B, T, NH, NKV, HS, causal);
  vklm_attention_backward_ref(dqkv, dout, qkv, B, T, NH, NKV, HS, causal);
  vklm_buffer gqkv = vt_upload(env, qkv, nqkv * 4), gdout = vt_upload(env, dout, nout * 4);
  vklm_buffer gout = vt_alloc16(env, nout), glse = vt_alloc(env, nrow * 4);
  vklm_buffer gdqkv = vt_alloc(env, nqkv * 4), gscr = vt_alloc(env, nrow * 4);
  vt_begin(env);
  vt_ok(env, vklm_attention_forward_fmt(env->cmd, gout, fmt, glse, gqkv, 0, B, T, NH, NKV, HS,
                                        causal),
        "fwd16");
  vt_ok(env, vklm_attention_backward_fmt(env->cmd, gdqkv, gscr, gdout, glse, gqkv, 0, B, T, NH,
                                         NKV, HS, causal),
        "bwd16");
  vt_run(env);
  char what[96];
  const char *fn = fmt == 2 ? "bf16" : "f16";
  snprintf(what, sizeof what, "attn[%s] %s out B%u T%u NH%u NKV%u HS%u %s", fam, fn, B, T, NH, NKV,
           HS, causal ? "causal" : "full");
  vt_compare16(env, what, gout, fmt, out, nout);
  float *l = vt_download(env, glse, nrow), *d = vt_download(env, gdqkv, nqkv);
  snprintf(what, sizeof what, "attn[%s] %s lse B%u T%u NH%u NKV%u HS%u", fam, fn, B, T, NH, NKV, HS);
  check(env, what, l, lse, nrow, 1e-4, 1e-5);
  float *dd = vt_download(env, gscr, nrow), *dref = d_ref(dout, out, B, T, NH, HS);
  snprintf(what, sizeof what, "attn[%s] %s D (16-bit out) B%u T%u NH%u HS%u", fam, fn, B, T, NH, HS);
  check(env, what, dd, dref, nrow, 1e-3, 1e-5);
  snprintf(what, sizeof what, "attn[%s] %s dqkv B%u T%u NH%u NKV%u HS%u %s", fam, fn, B, T, NH, NKV,
           HS, causal ? "causal" : "full");
  check(env, what, d, dqkv, nqkv, 5e-3, 1e-4);
  free(qkv), free(dout), free(out), free(lse), free(dqkv), free(l), free(d);
  free(dd), free(dref);
}

/* qkv in fmt (1 fp16, 2 bf16; HS even), out fp32 or out_fmt: out, lse and dqkv against the
 * references on qkv's widened values, at test_gpu's tolerances (a kernel that read the words as
 * fp32, or a wrong half, fails by far); dqkv overwritten (pre-filled with garbage). */
static void test_qkv16(vt_env *env, shape s, int causal, int fmt, int out_fmt) {
  uint32_t B = s.B, T = s.T, NH = s.NH, NKV = s.NKV, HS = s.HS;
  size_t nqkv = (size_t)B * T * (NH + 2 * NKV) * HS, nout = (size_t)B * T * NH * HS,
         nrow = (size_t)B * NH * T;
  uint64_t seed = 91 + B * 1000003u + T * 1009u + NH * 101u + NKV * 11u + HS + causal;
  float *qkv = vt_randf(nqkv, seed, -2, 2), *dout = vt_randf(nout, seed + 1, -1, 1);
  void *host;
  vklm_buffer gqkv = vt_upload_fmt(env, qkv, nqkv, fmt, &host);
  for (size_t i = 0; i < nqkv; i++) { /* the values the kernels read */
    uint16_t h = (uint16_t)(((uint32_t *)host)[i / 2] >> (16 * (i & 1)));
    qkv[i] = fmt == 2 ? vklm_bf16_to_f32_ref(h) : vklm_f16_to_f32_ref(h);
  }
  float *out = vt_zeros(nout), *lse = vt_zeros(nrow), *dqkv = vt_zeros(nqkv);
  vklm_attention_forward_ref(out, lse, qkv, B, T, NH, NKV, HS, causal);
  vklm_attention_backward_ref(dqkv, dout, qkv, B, T, NH, NKV, HS, causal);
  vklm_buffer gdout = vt_upload(env, dout, nout * 4);
  vklm_buffer gout = out_fmt ? vt_alloc16(env, nout) : vt_alloc(env, nout * 4);
  vklm_buffer glse = vt_alloc(env, nrow * 4), gdqkv = vt_alloc(env, nqkv * 4);
  vklm_buffer gscr = vt_alloc(env, nrow * 4);
  vt_begin(env);
  vt_ok(env, vklm_fill(env->cmd, gdqkv, 12345.0f, (uint32_t)nqkv), "fill");
  vt_ok(env, vklm_attention_forward_fmt(env->cmd, gout, out_fmt, glse, gqkv, fmt, B, T, NH, NKV,
                                        HS, causal),
        "fwd qkv16");
  vt_ok(env, vklm_attention_backward_fmt(env->cmd, gdqkv, gscr, gdout, glse, gqkv, fmt, B, T, NH,
                                         NKV, HS, causal),
        "bwd qkv16");
  vt_run(env);
  char what[112];
  const char *fn = fmt == 2 ? "bf16" : "f16";
  snprintf(what, sizeof what, "attn[%s] qkv %s out%s B%u T%u NH%u NKV%u HS%u %s", fam, fn,
           out_fmt ? " 16" : "", B, T, NH, NKV, HS, causal ? "causal" : "full");
  if (out_fmt) {
    vt_compare16(env, what, gout, out_fmt, out, nout);
  } else {
    float *o = vt_download(env, gout, nout);
    check(env, what, o, out, nout, 5e-3, 1e-5);
    free(o);
  }
  float *l = vt_download(env, glse, nrow), *d = vt_download(env, gdqkv, nqkv);
  snprintf(what, sizeof what, "attn[%s] qkv %s lse B%u T%u NH%u NKV%u HS%u", fam, fn, B, T, NH,
           NKV, HS);
  check(env, what, l, lse, nrow, 1e-4, 1e-5);
  snprintf(what, sizeof what, "attn[%s] qkv %s dqkv B%u T%u NH%u NKV%u HS%u %s", fam, fn, B, T,
           NH, NKV, HS, causal ? "causal" : "full");
  check(env, what, d, dqkv, nqkv, 5e-3, 1e-4); /* out's format does not reach the backward */
  free(qkv), free(dout), free(host), free(out), free(lse), free(dqkv), free(l), free(d);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_attention");
  const shape shapes[] = {
      {1, 1, 1, 1, 16},  {2, 7, 4, 4, 16},   {1, 37, 4, 2, 32},
      {2, 19, 6, 1, 64}, {1, 65, 2, 2, 128}, {1, 23, 3, 1, 80},
      {1, 100, 2, 1, 32}, {1, 33, 2, 1, 256},
      /* for the CPU-type variants (16 rows per workgroup): T = 1 with GQA, HS = 1 and 3, and a
       * long T that fills no whole workgroup */
      {3, 1, 4, 2, 8},   {2, 17, 2, 2, 1},   {1, 18, 4, 1, 3},   {1, 301, 2, 1, 16},
      /* HS = 64 and T = 700: llvmpipe's loop limit would cut the CPU variants short unless
       * their head-dimension loops are unrolled, as their loop budget assumes (HS = 80, 128 and
       * 256 above are past their largest head size: the GPU kernels stand in) */
      {1, 700, 1, 1, 64},
      /* past the CPU variants' loop budget for dK/dV (64 query heads per key head): the CPU
       * family records the CPU dQ with the GPU dK/dV kernel */
      {1, 480, 64, 1, 1},
  };
  static const vklm_kernels fams[] = {VKLM_KERNELS_GPU, VKLM_KERNELS_CPU};
  for (int f = 0; f < 2; f++) {
    vklm_context_set_kernels(env.ctx, fams[f]);
    fam = fams[f] == VKLM_KERNELS_CPU ? "cpu" : "gpu";
    printf("-- %s kernels\n", fam);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
      for (int causal = 1; causal >= 0; causal--) test_gpu(&env, shapes[i], causal, 0);
    test_gpu(&env, (shape){2, 128, 4, 2, 64}, 1, 1);
    vklm_arena_reset(env.arena);
    /* a 16-bit out: odd T and rows, GQA, the GPU kernels' partial blocks, HS past the CPU
     * variants' (the GPU kernels stand in) */
    const shape h16[] = {{1, 1, 1, 1, 2}, {2, 7, 4, 2, 16}, {1, 37, 4, 2, 32},
                         {2, 19, 6, 1, 64}, {1, 65, 2, 2, 128}};
    for (size_t i = 0; i < sizeof h16 / sizeof h16[0]; i++) {
      test_attn16(&env, h16[i], (int)(i % 2), 1 + (int)(i % 2));
      test_attn16(&env, h16[i], (int)((i + 1) % 2), 2 - (int)(i % 2));
      test_qkv16(&env, h16[i], (int)(i % 2), 2 - (int)(i % 2), 0);
      test_qkv16(&env, h16[i], (int)((i + 1) % 2), 1 + (int)(i % 2), 1 + (int)(i % 2));
      vklm_arena_reset(env.arena);
    }
    /* qkv16 where the CPU variants' loops are long (T 301) */
    test_qkv16(&env, (shape){1, 301, 2, 1, 16}, 1, 2, 0);
    vklm_arena_reset(env.arena);
  }
  const shape fds[] = {{1, 5, 2, 1, 8}, {2, 4, 2, 2, 4}, {1, 6, 3, 3, 6}};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    for (int causal = 1; causal >= 0; causal--) test_fd(&env, fds[i], causal);
  return vt_finish(&env);
}

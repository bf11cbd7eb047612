/* Cooperative-matrix GEMM tests (VKLM_TEST_GPU; engine/ops/matmul_coopmat.c).
 * Everywhere: the coopmat SPIR-V modules are in the shader table with the bindings and push
 * constants matmul.c binds (KHR where the build compiled it: VKLM_COOPMAT_KHR_BUILT), the
 * selection agrees with the capability record (nothing under baseline limits or without an
 * enabled extension), a forced coopmat GEMM where it is unavailable is refused with a status and
 * a message, VKLM_COOPMAT=0 (vklm_config.coopmat) turns the automatic choice off, and an
 * fp16-B GEMM through vklm_matmul_ex gives the reference's result in both kernel families.
 * Everywhere as well, on a context with VKLM_COOPMAT=emulate: the cases below through
 * matmul_coopmat_emu, the coopmat kernels' tiling, staging, formats, subgroup passes and
 * epilogue with plain arithmetic in place of the cooperative-matrix operations.
 * Where the device has cooperative matrices (a GPU; lavapipe has none), the coopmat kernel itself,
 * forced and chosen, against vklm_gemm_ref at sizes that are not multiples of the tile, all four
 * transposes, batches with shared operands, padded rows and odd element offsets, alpha, beta 0
 * (NaNs in C ignored) and 1, bias, fp16 and fp32 A, with tolerances for fp16 products. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

#ifndef VKLM_COOPMAT_KHR_BUILT
#define VKLM_COOPMAT_KHR_BUILT 0
#endif

static uint64_t seed = 7;

typedef enum { VIA_AUTO, VIA_FORCED, VIA_BIAS } via;
static const char *VIA_NAME[] = {"auto", "forced", "auto+bias"};

static const char *FMT_NAME[] = {"f32", "f16", "bf16"};

/* The operand's values (host, in format fmt) rounded to fp16 as the coopmat kernel stages them,
 * packed as halves (malloc'd). */
static uint32_t *as_f16(const void *host, int fmt, uint64_t n) {
  float *v = malloc((n ? n : 1) * sizeof *v);
  for (uint64_t i = 0; i < n; i++) {
    if (fmt == VKLM_GEMM_F32) {
      v[i] = ((const float *)host)[i];
    } else {
      uint32_t w = ((const uint32_t *)host)[i / 2], h = (w >> (16 * (i & 1))) & 0xffffu;
      if (fmt == VKLM_GEMM_F16) v[i] = vklm_f16_to_f32_ref((uint16_t)h);
      else {
        uint32_t bits = h << 16;
        memcpy(&v[i], &bits, 4);
      }
    }
  }
  uint32_t *p = calloc((n + 1) / 2 + 1, 4);
  vklm_convert_f32_to_f16_ref(p, v, (uint32_t)n);
  free(v);
  return p;
}

/* Runs g with A and B in formats fa and fb through `how` and compares with the reference; tol_k:
 * the tolerance's factor per sqrt(K), tol0 its floor. coop: the coopmat kernel runs, which
 * multiplies the operands rounded to fp16: the reference reads them so rounded. Returns the
 * worst relative error. */
static double run(vt_env *env, const char *tag, via how, int fa, int fb, const vklm_gemm *g,
                  double tol0, double tol_k, int coop) {
  uint32_t batch = g->batch ? g->batch : 1;
  uint64_t na, nb, nc;
  vt_gemm_spans(g, &na, &nb, &nc);
  float *a = vt_randf(na, seed++, -1, 1), *b = vt_randf(nb, seed++, -1, 1);
  float *c = vt_randf(nc, seed++, -1, 1), *bias = vt_randf(g->N, seed++, -1, 1);
  if (g->beta == 0.0f) /* beta = 0 must overwrite: NaNs in the old C must not leak through */
    for (uint64_t i = 0; i < nc; i++) c[i] = NAN;
  void *ha, *hb;
  vklm_buffer A = vt_upload_fmt(env, a, na, fa, &ha);
  vklm_buffer B = vt_upload_fmt(env, b, nb, fb, &hb);
  vklm_buffer Cb = vt_upload(env, c, nc * 4), Bias = vt_upload(env, bias, g->N * 4);
  vt_begin(env);
  vklm_status st = how == VIA_BIAS ? vklm_matmul_fmt(env->cmd, Cb, VKLM_GEMM_F32, A, fa, B, fb, Bias, g)
                                   : vklm_matmul_ex(env->cmd, Cb, A, fa, B, fb, g,
                                                    how == VIA_FORCED ? &vklm_matmul_config_coopmat
                                                                      : NULL);
  vt_ok(env, st, "matmul");
  vt_run(env);
  float *got = vt_download(env, Cb, nc);
  if (coop) { /* what the kernel multiplies: the operands rounded to fp16 */
    uint32_t *a16 = as_f16(ha, fa, na), *b16 = as_f16(hb, fb, nb);
    vklm_gemm_ref(c, a16, VKLM_GEMM_F16, b16, VKLM_GEMM_F16, g);
    free(a16), free(b16);
  } else
    vklm_gemm_ref(c, ha, fa, hb, fb, g);
  if (how == VIA_BIAS) /* the reference has no bias: add it to every row of every item */
    for (uint32_t z = 0; z < batch; z++)
      for (uint32_t m = 0; m < g->M; m++)
        for (uint32_t n = 0; n < g->N; n++)
          c[g->off_c + z * g->stride_c + (uint64_t)m * (g->ldc ? g->ldc : g->N) + n] += bias[n];
  for (uint64_t i = 0; i < nc; i++) /* padding keeps its NaN placeholders on both sides */
    if (isnan(c[i]) && isnan(got[i])) c[i] = got[i] = 0;
  char what[200];
  snprintf(what, sizeof what, "%s %s %s x %s %s%s %ux%ux%u b%u alpha %g beta %g", tag,
           VIA_NAME[how], FMT_NAME[fa], FMT_NAME[fb], g->trans_a ? "T" : "N",
           g->trans_b ? "T" : "N", g->M, g->N, g->K, batch, g->alpha, g->beta);
  double worst = vt_compare(env, what, got, c, nc, tol0 + tol_k * sqrt((double)g->K));
  free(a), free(b), free(c), free(bias), free(got), free(ha), free(hb);
  vklm_arena_reset(env->arena);
  return worst;
}

/* The modules the build embedded: 4 storage buffers (C written, A, B and bias read only) and the
 * 60-byte push constants of every matmul shader. */
static void test_shader_table(vt_env *env) {
  const char *names[] = {"matmul_coopmat_nv", "matmul_coopmat_khr"};
  for (int i = 0; i < 2; i++) {
    vklm_pipeline_info info;
    int want = i == 0 || VKLM_COOPMAT_KHR_BUILT;
    int found = vklm_shader_find(names[i], &info);
    vt_expect(env, found == want, "shader table: %s %s (expected %s)", names[i],
              found ? "present" : "absent", want ? "present" : "absent");
    if (!found) continue;
    vt_expect(env, info.binding_count == 4 && info.push_size == 60 && !info.readonly[0] &&
                       info.readonly[1] && info.readonly[2] && info.readonly[3],
              "%s: %u bindings (read-only %d%d%d%d), %u push-constant bytes", names[i],
              info.binding_count, info.readonly[0], info.readonly[1], info.readonly[2],
              info.readonly[3], info.push_size);
  }
  vt_expect(env, !vklm_shader_find("matmul_coopmat_none", NULL), "shader table: a made-up name");
}

/* What the capability record and the selection say, and a forced GEMM where it cannot run. */
static int test_selection(vt_env *env) {
  const vklm_caps *caps = vklm_context_caps(env->ctx);
  int avail = vklm_matmul_coopmat_available(env->ctx);
  char desc[200];
  vklm_matmul_coopmat_describe(env->ctx, desc, sizeof desc);
  printf("device %s: coopmat KHR %d NV %d, %d shapes; coopmat GEMM %s%s\n", caps->name,
         caps->coopmat_khr, caps->coopmat_nv, caps->coopmat_count,
         avail ? "available: " : "unavailable", desc);
  vt_expect(env, !avail || caps->coopmat_khr || caps->coopmat_nv,
            "available only with an enabled extension");
  if (caps->baseline)
    vt_expect(env, !avail && !caps->coopmat_khr && !caps->coopmat_nv,
              "no cooperative matrices under baseline limits");
  if (caps->type == VKLM_DEVICE_CPU)
    vt_expect(env, !avail, "a CPU device (lavapipe) has no cooperative matrices");
  /* the automatic choice: fp16 B with fp32 or fp16 A, no configuration */
  vt_expect(env, vklm__matmul_coopmat_pick(env->ctx, VKLM_GEMM_F32, VKLM_GEMM_F16, NULL) == avail,
            "f32 x f16 picks coopmat iff available");
  vt_expect(env, vklm__matmul_coopmat_pick(env->ctx, VKLM_GEMM_F16, VKLM_GEMM_F16, NULL) == avail,
            "f16 x f16 picks coopmat iff available");
  vt_expect(env, !vklm__matmul_coopmat_pick(env->ctx, VKLM_GEMM_F32, VKLM_GEMM_F32, NULL),
            "f32 x f32 keeps its exact kernels");
  vt_expect(env, !vklm__matmul_coopmat_pick(env->ctx, VKLM_GEMM_F16, VKLM_GEMM_BF16, NULL),
            "bf16 B keeps the tiled kernel");
  vklm_matmul_config cf = vklm_matmul_config_choose(env->ctx, &(vklm_gemm){.M = 64, .N = 64, .K = 64});
  vt_expect(env, !vklm__matmul_coopmat_pick(env->ctx, VKLM_GEMM_F16, VKLM_GEMM_F16, &cf),
            "an explicit tile configuration keeps the tiled kernel");
  if (!avail) { /* forced where it cannot run: a status and a message, nothing recorded */
    vklm_buffer c = vt_alloc(env, 64), x = vt_alloc(env, 64);
    vklm_gemm g = vklm_gemm_make(2, 2, 2);
    vt_begin(env);
    vklm_status st = vklm_matmul_ex(env->cmd, c, x, VKLM_GEMM_F16, x, VKLM_GEMM_F16, &g,
                                    &vklm_matmul_config_coopmat);
    vt_run(env);
    const char *msg = vklm_context_error(env->ctx);
    vt_expect(env, st == VKLM_ERROR_UNSUPPORTED && strstr(msg, "matmul_coopmat"),
              "forced coopmat where unavailable: %s (%s)", vklm_status_name(st), msg);
    vklm_arena_reset(env->arena);
  }
  return avail;
}

/* VKLM_COOPMAT=0: a context whose configuration turns the automatic choice off. */
static void test_coopmat_off(vt_env *env) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  if (!cfg.validate) cfg.validate = 1;
  cfg.coopmat = VKLM_COOPMAT_OFF;
  vklm_context *ctx = NULL;
  char err[512];
  vklm_status st = vklm_context_create(&cfg, &ctx, err, sizeof err);
  vt_expect(env, st == VKLM_OK, "context with VKLM_COOPMAT=0: %s", st == VKLM_OK ? "ok" : err);
  if (st != VKLM_OK) return;
  vt_expect(env, !vklm__matmul_coopmat_pick(ctx, VKLM_GEMM_F32, VKLM_GEMM_F16, NULL) &&
                     !vklm__matmul_coopmat_pick(ctx, VKLM_GEMM_F16, VKLM_GEMM_F16, NULL),
            "VKLM_COOPMAT=0: no automatic coopmat");
  vt_expect(env, vklm__matmul_coopmat_pick(ctx, VKLM_GEMM_F16, VKLM_GEMM_F16,
                                           &vklm_matmul_config_coopmat),
            "VKLM_COOPMAT=0: still forced on request");
  vklm_context_destroy(ctx);
}

/* GEMMs with fp16 B through the automatic choice (coopmat where available, else the tiled
 * kernel) and, where available, forced. */
static void test_gemms(vt_env *env, const char *family, int avail) {
  /* coopmat: fp16 products exact in fp32, fp32 sums (an fp32 A is rounded to fp16 on both
   * sides); the tiled kernels: fp32 throughout */
  double t0 = avail ? 1e-4 : 3e-5, tk = avail ? 2e-5 : 3e-5;
  char tag[64];
  snprintf(tag, sizeof tag, "[%s]", family);
  static const uint32_t shapes[][3] = {{1, 1, 1}, {37, 53, 71}, {130, 70, 200}, {17, 150, 33}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int t = 0; t < 4; t++) {
      vklm_gemm g = vklm_gemm_make(shapes[s][0], shapes[s][1], shapes[s][2]);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      int fa = (s + t) & 1 ? VKLM_GEMM_F32 : VKLM_GEMM_F16;
      run(env, tag, VIA_AUTO, fa, VKLM_GEMM_F16, &g, t0, tk, avail);
      if (avail) run(env, tag, VIA_FORCED, fa, VKLM_GEMM_F16, &g, t0, tk, 1);
    }
  /* batch 3: per-item A, a shared B (stride 0), padded C rows, odd offsets, alpha and beta 1 */
  for (int t = 0; t < 4; t++) {
    vklm_gemm g = vklm_gemm_make(45, 29, 67);
    g.batch = 3;
    g.trans_a = t & 1;
    g.trans_b = t >> 1;
    g.alpha = 0.5f;
    g.beta = 1.0f;
    g.off_a = 3;
    g.off_b = 1;
    g.stride_a = 45 * 67 + 5;
    g.stride_b = 0;
    g.ldc = 31;
    g.off_c = 2;
    g.stride_c = 45 * 31 + 7;
    run(env, tag, VIA_AUTO, VKLM_GEMM_F16, VKLM_GEMM_F16, &g, t0, tk, avail);
    if (avail) /* forced: any formats, staged as fp16 (bf16 and fp32 B included) */
      run(env, tag, VIA_FORCED, t & 1 ? VKLM_GEMM_BF16 : VKLM_GEMM_F32,
          t >> 1 ? VKLM_GEMM_F32 : VKLM_GEMM_BF16, &g, t0, tk, 1);
    /* the linear layer's entry with a bias, fp32 activations and fp16 weights (N,K) */
    vklm_gemm h = vklm_gemm_make(50, 41, 96);
    h.trans_b = 1;
    h.beta = t & 1 ? 1.0f : 0.0f;
    run(env, tag, VIA_BIAS, VKLM_GEMM_F32, VKLM_GEMM_F16, &h, t0, tk, avail);
  }
  if (avail) { /* a grid of >= 128 large tiles (the large plan) with ragged edges */
    vklm_gemm g = vklm_gemm_make(1537, 1531, 72);
    g.trans_b = 1;
    run(env, tag, VIA_AUTO, VKLM_GEMM_F16, VKLM_GEMM_F16, &g, t0, tk, avail);
  }
}

/* The emulation (VKLM_COOPMAT=emulate) on a context of its own. */
static void test_emulated(vt_env *env) {
  vt_env e;
  char desc[200];
  if (!vt_env_coopmat(env, VKLM_COOPMAT_EMULATE, &e)) return;
  int avail = vklm_matmul_coopmat_available(e.ctx);
  vklm_matmul_coopmat_describe(e.ctx, desc, sizeof desc);
  vt_expect(&e, avail && strstr(desc, "matmul_coopmat_emu"), "emulation available: %s", desc);
  if (avail) test_gemms(&e, "emulated", 1);
  vt_env_end(env, &e);
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_coopmat");
  test_shader_table(&env);
  int avail = test_selection(&env);
  test_coopmat_off(&env);
  if (!avail)
    printf("no cooperative matrices on this device: the coopmat arithmetic is not exercised here; "
           "fp16-B GEMMs are checked on the kernels that run instead\n");
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_GPU);
  test_gemms(&env, "gpu", avail);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_CPU);
  test_gemms(&env, "cpu", avail);
  test_emulated(&env);
  return vt_finish(&env);
}

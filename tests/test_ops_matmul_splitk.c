/* Split-K GEMM (VKLM_TEST_GPU): vklm_matmul_splitk against the C reference (vklm_gemm_ref) in
 * both kernel families, at sizes off every block edge, all four transposes, alpha/beta (beta 0
 * with NaNs in the old C), a padded C at an offset, slice counts that do not divide K (and more
 * slices than K allows: fewer are used), K long enough for llvmpipe's split along K inside a
 * slice; the full slices one batched dispatch, a shorter last one another, then the reduction,
 * with no barrier before it; bitwise the same result when run again; vklm_matmul_splitk_choose's
 * answers; vklm_matmul_dweight, the linear layers' weight gradient through it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

static uint64_t seed = 23;
static const char *family = "gpu";

static double tol_for(uint32_t K) { return 3e-5 * (1.0 + sqrt((double)K)); }

static void run(vt_env *env, const vklm_gemm *g, uint32_t splits, const char *label) {
  uint64_t na, nb, nc;
  vt_gemm_spans(g, &na, &nb, &nc);
  float *a = vt_randf(na ? na : 1, seed++, -1, 1), *b = vt_randf(nb ? nb : 1, seed++, -1, 1);
  float *c = vt_randf(nc, seed++, -1, 1);
  if (g->beta == 0.0f)
    for (uint64_t i = 0; i < nc; i++) c[i] = NAN;
  vklm_buffer A = vt_upload(env, a, (na ? na : 1) * 4), B = vt_upload(env, b, (nb ? nb : 1) * 4);
  vklm_buffer C1 = vt_upload(env, c, nc * 4), C2 = vt_upload(env, c, nc * 4);
  uint64_t sb = vklm_matmul_splitk_scratch_bytes(env->ctx, g, splits);
  vklm_buffer S = vt_alloc(env, sb ? sb : 4);
  vt_begin(env);
  uint32_t b0 = vklm_cmd_barrier_count(env->cmd), d0 = vklm_cmd_dispatch_count(env->cmd);
  vt_ok(env, vklm_matmul_splitk(env->cmd, C1, A, B, g, splits, S), "matmul_splitk");
  uint32_t nd = vklm_cmd_dispatch_count(env->cmd) - d0, nbar = vklm_cmd_barrier_count(env->cmd) - b0;
  vt_ok(env, vklm_matmul_splitk(env->cmd, C2, A, B, g, splits, S), "matmul_splitk again");
  vt_run(env);
  float *got = vt_download(env, C1, nc), *got2 = vt_download(env, C2, nc);
  vklm_gemm_ref(c, a, 0, b, 0, g);
  for (uint64_t i = 0; i < nc; i++) {
    if (isnan(c[i]) && isnan(got[i])) c[i] = got[i] = 0;
    if (isnan(got2[i])) got2[i] = 0;
  }
  char what[160];
  snprintf(what, sizeof what, "[%s] splitk %u %s%s %ux%ux%u %s (%u dispatches)", family, splits,
           g->trans_a ? "T" : "N", g->trans_b ? "T" : "N", g->M, g->N, g->K, label, nd);
  vt_compare(env, what, got, c, nc, tol_for(g->K));
  vt_expect(env, !memcmp(got, got2, nc * 4), "%s: the same bits when run again", what);
  /* slices: ceil(K / ceil(K/splits)): the full ones one batched GEMM, a shorter last one a GEMM
   * of its own, then the reduction; barriers: the reduction's only */
  uint32_t kper = splits > 1 && g->K ? (g->K + splits - 1) / splits : g->K;
  uint32_t used = kper ? (g->K + kper - 1) / kper : 1;
  if (used > 1) {
    uint32_t gemms = g->K % kper ? 2 : 1, chunk = vklm_matmul_k_chunk(env->ctx);
    /* llvmpipe's split along K may cut a long slice (the CPU-type kernel's at 32768, the tiled
     * one's at 8192) */
    int whole = chunk == 0 || kper <= chunk;
    vt_expect(env, whole ? nd == gemms + 1 : nd >= gemms + 1,
              "%s: %u dispatches for %u slices (want %u GEMMs and the reduction)", what, nd, used,
              gemms);
    vt_expect(env, !whole || nbar <= 1, "%s: %u barriers, want at most 1 (before the reduction)",
              what, nbar);
  }
  free(a), free(b), free(c), free(got), free(got2);
  vklm_arena_reset(env->arena);
}

static void test_family(vt_env *env, vklm_kernels k) {
  vklm_context_set_kernels(env->ctx, k);
  family = k == VKLM_KERNELS_CPU ? "cpu" : "gpu";
  static const uint32_t shapes[][4] = {/* M, N, K, splits */
                                       {19, 33, 1000, 3}, {64, 64, 1024, 4}, {7, 65, 301, 7},
                                       {1, 1, 5, 2},      {33, 9, 10, 64}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int t = 0; t < 4; t++) {
      vklm_gemm g = vklm_gemm_make(shapes[s][0], shapes[s][1], shapes[s][2]);
      g.trans_a = t & 1;
      g.trans_b = t >> 1;
      g.beta = t & 1 ? 0.5f : 0.0f;
      run(env, &g, shapes[s][3], t & 1 ? "beta .5" : "beta 0");
    }
  /* alpha, padded rows, offsets; one slice (the plain GEMM) */
  vklm_gemm h = vklm_gemm_make(21, 30, 700);
  h.trans_a = 1;
  h.alpha = -1.25f;
  h.beta = 0.75f;
  h.lda = 21 + 3;
  h.ldb = 30 + 1;
  h.ldc = 30 + 5;
  h.off_a = 5;
  h.off_b = 3;
  h.off_c = 7;
  run(env, &h, 5, "alpha -1.25, ld/offsets");
  run(env, &h, 1, "alpha -1.25, ld/offsets");
  /* a long slice: llvmpipe splits it along K as well */
  vklm_gemm l = vklm_gemm_make(5, 9, 20001);
  l.trans_a = 1;
  run(env, &l, 2, "long slices");
}

/* vklm_matmul_dweight, the linear layers' weight gradient: dw += dout^T @ in (in fp32, fp16 or
 * bf16) with and without the bias gradient, against the reference, with a scratch large enough
 * for split-K (the GPU family splits where vklm_matmul_splitk_choose says so; the CPU-type
 * kernels never do), a scratch too small for it and none (one GEMM, the bias in its row sums). */
static void test_dweight(vt_env *env, uint32_t M, uint32_t K, uint32_t N) {
  uint64_t need = vklm_matmul_dweight_scratch_bytes(env->ctx, M, K, N);
  int cpu = vklm_context_cpu_kernels(env->ctx);
  for (int fmt = VKLM_GEMM_F32; fmt <= VKLM_GEMM_BF16; fmt++)
    for (int room = 0; room < 3; room++) { /* scratch: none, too small, enough */
      int with_db = room != 1 || fmt != VKLM_GEMM_F32;
      float *dout = vt_randf((uint64_t)M * N, seed++, -1, 1);
      float *in = vt_randf((uint64_t)M * K, seed++, -1, 1);
      float *dw = vt_randf((uint64_t)N * K, seed++, -1, 1), *db = vt_randf(N, seed++, -1, 1);
      void *in_host;
      vklm_buffer Dout = vt_upload(env, dout, (uint64_t)M * N * 4);
      vklm_buffer In = vt_upload_fmt(env, in, (uint64_t)M * K, fmt, &in_host);
      vklm_buffer Dw = vt_upload(env, dw, (uint64_t)N * K * 4), Db = vt_upload(env, db, N * 4);
      uint64_t sb = room == 2 ? need : room == 1 ? need / 2 : 0;
      vklm_buffer S = sb ? vt_alloc(env, sb) : (vklm_buffer){0};
      vt_begin(env);
      uint32_t d0 = vklm_cmd_dispatch_count(env->cmd);
      vt_ok(env, vklm_matmul_dweight(env->cmd, Dw, with_db ? Db : (vklm_buffer){0}, Dout, In, fmt,
                                     S, M, K, N),
            "matmul_dweight");
      uint32_t nd = vklm_cmd_dispatch_count(env->cmd) - d0;
      vt_run(env);
      float *got = vt_download(env, Dw, (uint64_t)N * K), *gotb = vt_download(env, Db, N);
      vklm_gemm g = vklm_gemm_make(N, K, M);
      g.trans_a = 1;
      g.beta = 1.0f;
      vklm_gemm_ref(dw, dout, 0, in_host, fmt, &g);
      for (uint32_t n = 0; n < N; n++)
        for (uint32_t m = 0; m < M; m++) db[n] += dout[(uint64_t)m * N + n];
      char what[128];
      snprintf(what, sizeof what, "[%s] dweight %ux%ux%u in %s, scratch %s%s (%u dispatches)",
               family, M, K, N, fmt == 0 ? "f32" : fmt == 1 ? "f16" : "bf16",
               room == 2 ? "enough" : room ? "too small" : "none", with_db ? ", bias" : "", nd);
      vt_compare(env, what, got, dw, (uint64_t)N * K, tol_for(M));
      if (with_db) vt_compare(env, what, gotb, db, N, tol_for(M));
      /* split-K: the slices' GEMMs, the reduction (and the bias's two stages); one GEMM else
       * (llvmpipe may cut it along K) */
      int split = room == 2 && need > 0 && !cpu;
      vt_expect(env, split ? nd >= 2u + (with_db ? 2u : 0u) : nd <= (M + 8191) / 8192 + 2,
                "%s: %s", what, split ? "split along K" : "not split");
      free(dout), free(in), free(dw), free(db), free(got), free(gotb), free(in_host);
      vklm_arena_reset(env->arena);
    }
}

int main(void) {
  vt_env env;
  vt_init(&env, "ops_matmul_splitk");
  /* a narrow layer's weight gradient over many rows: split-K on this device's GPU family */
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_GPU);
  vt_expect(&env, vklm_matmul_dweight_scratch_bytes(env.ctx, 3000, 24, 40) > 0,
            "dweight 3000 rows into 40 x 24 splits on %s", vklm_context_caps(env.ctx)->name);
  test_dweight(&env, 3000, 24, 40);
  test_dweight(&env, 1001, 7, 13);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_CPU);
  test_dweight(&env, 1001, 7, 13);
  test_family(&env, VKLM_KERNELS_GPU);
  test_family(&env, VKLM_KERNELS_CPU);
  vklm_context_set_kernels(env.ctx, VKLM_KERNELS_AUTO);
  /* the heuristic: a small output over a long K splits, a large one or a short K does not */
  vklm_gemm dw = vklm_gemm_make(64, 64, 65536), big = vklm_gemm_make(4096, 4096, 65536);
  vklm_gemm shortk = vklm_gemm_make(64, 64, 300);
  uint32_t s1 = vklm_matmul_splitk_choose(env.ctx, &dw), s2 = vklm_matmul_splitk_choose(env.ctx, &big);
  uint32_t s3 = vklm_matmul_splitk_choose(env.ctx, &shortk);
  printf("splitk_choose: 64x64x65536 -> %u, 4096x4096x65536 -> %u, 64x64x300 -> %u\n", s1, s2, s3);
  vt_expect(&env, s1 >= 2 && s1 <= 64, "64x64x65536 splits (%u)", s1);
  vt_expect(&env, s2 == 1, "4096x4096 does not split (%u)", s2);
  vt_expect(&env, s3 == 1, "K 300 does not split (%u)", s3);
  return vt_finish(&env);
}

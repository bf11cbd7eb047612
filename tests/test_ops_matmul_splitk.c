/* Split-K GEMM (VKLM_TEST_GPU): vklm_matmul_splitk against the C reference (vklm_gemm_ref) in
 * both kernel families, at sizes off every block edge, all four transposes, alpha/beta (beta 0
 * with NaNs in the old C), a padded C at an offset, slice counts that do not divide K (and more
 * slices than K allows: fewer are used), K long enough for llvmpipe's split along K inside a
 * slice; the full slices one batched dispatch, a shorter last one another, then the reduction,
 * with no barrier before it; bitwise the same result when run again; vklm_matmul_splitk_choose's
 * answers. */
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

int main(void) {
  vt_env env;
  vt_init(&env, "ops_matmul_splitk");
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

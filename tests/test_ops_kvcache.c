/* KV-cache attention kernels (VKLM_TEST_GPU) against vklm_attention_decode_ref: the tiled prefill
 * kernel and its CPU-type variant (attention_prefill_*[_cpu].comp) and the one-row decode kernel
 * with shared-memory and with subgroup reductions (attention_decode_*[_sg].comp), each forced
 * through vklm_attention_decode_ex wherever vklm_attention_decode_fits, on passes of rows from 1
 * to 3 sequences mixed in any order, prefill chunks after a cached prefix, row counts that are
 * not multiples of a tile, GQA groups of 1, 2, 3, 4 and 8, HS 16 to 256, fp32 and fp16 caches,
 * split-K and not, a cache too long for the tiled kernels on llvmpipe. Also: which kernels fit,
 * and that what vklm_attention_decode chooses (AUTO) equals, bit for bit, the kernel its rule
 * names, with the context recording GPU and then CPU-type kernels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

typedef struct seq {
  uint32_t slot, pos0, count; /* rows pos0 .. pos0+count-1 of the sequence in cache slot `slot` */
} seq;

enum { BLOCKED, ROUND_ROBIN, SHUFFLED };

/* The rows of a pass: each sequence's rows in increasing position order, the sequences blocked
 * one after another, interleaved row by row, or interleaved at random (a fixed seed). */
static uint32_t make_rows(uint32_t *rows, const seq *sq, uint32_t nsq, int order) {
  uint32_t next[4] = {0}, n = 0, total = 0;
  for (uint32_t s = 0; s < nsq; s++) total += sq[s].count;
  uint64_t rng = 12345;
  for (uint32_t s = 0; n < total;) {
    if (order == BLOCKED) {
      while (next[s] == sq[s].count) s++;
    } else if (order == ROUND_ROBIN) {
      s = (s + 1) % nsq;
      if (next[s] == sq[s].count) continue;
    } else {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      s = (uint32_t)(rng >> 33) % nsq;
      if (next[s] == sq[s].count) continue;
    }
    rows[2 * n] = sq[s].pos0 + next[s]++;
    rows[2 * n + 1] = sq[s].slot;
    n++;
  }
  return n;
}

static const char *kname(vklm_kv_attention_kernel k) {
  return k == VKLM_KV_ATTENTION_PREFILL         ? "prefill"
         : k == VKLM_KV_ATTENTION_PREFILL_CPU  ? "prefill-cpu"
         : k == VKLM_KV_ATTENTION_ROW_SUBGROUP ? "row-subgroup"
         : k == VKLM_KV_ATTENTION_ROW_SHARED   ? "row-shared"
                                               : "auto";
}

/* Runs one kernel on one pass; returns the output (n, NH*HS), or NULL when it did not run. */
static float *run(vt_env *env, vklm_kv_attention_kernel kern, vklm_buffer bk, vklm_buffer bv,
                  vklm_buffer bq, vklm_buffer bi, int f16, uint32_t n, uint32_t NH, uint32_t NKV,
                  uint32_t HS, uint32_t QS, uint32_t S, uint32_t maxT, uint32_t splits) {
  vklm_buffer bo = vt_alloc(env, (size_t)n * NH * HS * 4);
  uint64_t sb = vklm_attention_decode_scratch_bytes(n, NH, HS, splits);
  vklm_buffer bs = sb ? vt_alloc(env, sb) : (vklm_buffer){0};
  vt_begin(env);
  vt_ok(env, vklm_attention_decode_ex(env->cmd, bo, bs, bq, bk, bv,
                                      f16 ? VKLM_DTYPE_F16 : VKLM_DTYPE_F32, bi, n, NH, NKV, HS,
                                      QS, S, maxT, splits, kern),
        "attention_decode_ex");
  vt_run(env);
  return vt_download(env, bo, (size_t)n * NH * HS);
}

static int all = 1; /* force every kernel that fits (else only the one AUTO should choose) */

static void test_case(vt_env *env, uint32_t NH, uint32_t NKV, uint32_t HS, const seq *sq,
                      uint32_t nsq, int order, int f16, uint32_t splits) {
  uint32_t S = 0, maxT = 0, total = 0;
  for (uint32_t s = 0; s < nsq; s++) {
    if (sq[s].slot + 1 > S) S = sq[s].slot + 1;
    if (sq[s].pos0 + sq[s].count + 2 > maxT) maxT = sq[s].pos0 + sq[s].count + 2;
    total += sq[s].count;
  }
  uint32_t QS = (NH + 2 * NKV) * HS; /* the packed qkv rows */
  size_t kvn = (size_t)S * maxT * NKV * HS;
  float *q = vt_randf((size_t)total * QS, 7 + HS + total, -1, 1);
  float *kc = vt_randf(kvn, 8 + NH, -1, 1);
  float *vc = vt_randf(kvn, 9 + NKV, -0.5f, 1.5f); /* mean 0.5: outputs without cancellation */
  uint32_t *rows = malloc(sizeof(uint32_t) * 2 * total);
  uint32_t n = make_rows(rows, sq, nsq, order);
  vklm_buffer bk = vt_upload_cache(env, kc, kvn, f16), bv = vt_upload_cache(env, vc, kvn, f16);
  float *want = vt_zeros((size_t)n * NH * HS);
  vklm_attention_decode_ref(want, q, kc, vc, rows, n, NH, NKV, HS, QS, maxT);
  vklm_buffer bq = vt_upload(env, q, (size_t)n * QS * 4), bi = vt_upload(env, rows, n * 8);
  const vklm_caps *caps = vklm_context_caps(env->ctx);
  uint32_t sg = VKLM_SUBGROUP_BASIC | VKLM_SUBGROUP_ARITHMETIC;
  int has_sg = (caps->subgroup_ops & sg) == sg;
  vklm_kv_attention_kernel ks[4] = {VKLM_KV_ATTENTION_PREFILL, VKLM_KV_ATTENTION_PREFILL_CPU,
                                    VKLM_KV_ATTENTION_ROW_SHARED, VKLM_KV_ATTENTION_ROW_SUBGROUP};
  int fit[4];
  for (int k = 0; k < 4; k++)
    fit[k] = vklm_attention_decode_fits(env->ctx, ks[k], n, NH, NKV, HS, S, maxT, splits);
  /* the tiled kernels wherever there are no splits, except where llvmpipe's loop limit or the
   * CPU variant's head-size bound rules them out; the subgroup kernel wherever the device has
   * subgroup arithmetic (lavapipe has) */
  int cpu_hs = HS <= 64, llvmpipe = vklm_matmul_k_chunk(env->ctx) != 0;
  vt_expect(env, fit[0] == (splits <= 1 && (!llvmpipe || maxT < 2000)) &&
                     fit[1] == (splits <= 1 && cpu_hs) && fit[2] && fit[3] == has_sg,
            "kernels that fit NH=%u HS=%u maxT=%u splits=%u: tiled %d, cpu %d, rows %d %d", NH,
            HS, maxT, splits, fit[0], fit[1], fit[2], fit[3]);
  /* the kernel the rule names */
  int many = splits == 1 && n >= VKLM_ATTENTION_PREFILL_ROWS;
  int cpu = vklm_context_cpu_kernels(env->ctx);
  int rule = many && cpu && fit[1] ? 1 : many && fit[0] ? 0 : has_sg && !cpu ? 3 : 2;
  /* every kernel that fits against the reference (the kernels are the same in both families:
   * with `all` off only the rule's) */
  float *got[4] = {0};
  for (int k = 0; k < 4; k++) {
    if (!fit[k] || (!all && k != rule)) continue;
    got[k] = run(env, ks[k], bk, bv, bq, bi, f16, n, NH, NKV, HS, QS, S, maxT, splits);
    char what[200];
    snprintf(what, sizeof what, "%s %s NH=%u NKV=%u HS=%u n=%u seqs=%u order=%d splits=%u",
             kname(ks[k]), f16 ? "f16" : "f32", NH, NKV, HS, n, nsq, order, splits);
    vt_compare(env, what, got[k], want, (size_t)n * NH * HS, 1e-4);
  }
  /* the automatic choice is the rule's kernel, bit for bit */
  float *aut = run(env, VKLM_KV_ATTENTION_AUTO, bk, bv, bq, bi, f16, n, NH, NKV, HS, QS, S, maxT,
                   splits);
  vklm_kv_attention_kernel ch =
      vklm_attention_decode_choose(env->ctx, n, NH, NKV, HS, S, maxT, splits);
  vt_expect(env, ch == ks[rule] && !memcmp(aut, got[rule], (size_t)n * NH * HS * 4),
            "auto choice (%s kernels) NH=%u HS=%u n=%u maxT=%u splits=%u is the %s kernel "
            "(chose %s)", cpu ? "CPU-type" : "GPU", NH, HS, n, maxT, splits, kname(ks[rule]),
            kname(ch));
  for (int k = 0; k < 4; k++) free(got[k]);
  free(aut), free(q), free(kc), free(vc), free(want), free(rows);
}

static void all_cases(vt_env *env, int f16) {
  /* one sequence from position 0, n not a multiple of any tile (GQA 1 and 2) */
  seq a[] = {{0, 0, 37}};
  test_case(env, 4, 4, 16, a, 1, BLOCKED, f16, 1);
  test_case(env, 4, 2, 64, a, 1, BLOCKED, f16, 1);
  test_case(env, 4, 2, 64, a, 1, BLOCKED, f16, 0); /* splits 0: the one-row kernel for any n */
  /* a prefill chunk after a cached prefix, in a later slot, GQA 4 */
  seq b[] = {{2, 45, 21}};
  test_case(env, 8, 2, 80, b, 1, BLOCKED, f16, 1);
  /* few rows (below the tiled kernel's rule), forced through every kernel, split and not */
  seq c[] = {{1, 30, 5}};
  test_case(env, 6, 2, 32, c, 1, BLOCKED, f16, 1);
  test_case(env, 6, 2, 32, c, 1, BLOCKED, f16, 3);
  /* rows of three sequences mixed in one pass: a prefill chunk, a decode row, a prompt from 0 */
  seq d[] = {{2, 10, 20}, {1, 33, 1}, {0, 0, 7}};
  test_case(env, 8, 2, 16, d, 3, SHUFFLED, f16, 1);
  test_case(env, 4, 1, 128, d, 3, ROUND_ROBIN, f16, 1);
  test_case(env, 6, 3, 80, d, 3, BLOCKED, f16, 1);
  /* two sequences, the later slot first, GQA 3 (one head per tile workgroup) and 8 */
  seq e[] = {{1, 3, 9}, {0, 17, 12}};
  test_case(env, 6, 2, 16, e, 2, BLOCKED, f16, 1);
  test_case(env, 8, 1, 32, e, 2, SHUFFLED, f16, 1);
  test_case(env, 8, 1, 32, e, 2, SHUFFLED, f16, 4);
  /* HS 256, a longer chunk after a prefix */
  seq f[] = {{0, 70, 40}};
  test_case(env, 2, 1, 256, f, 1, BLOCKED, f16, 1);
  /* a long cache: on llvmpipe past the tiled kernel's loop budget (the one-row kernel runs) */
  seq g[] = {{0, 6000, 17}};
  test_case(env, 2, 1, 128, g, 1, BLOCKED, f16, 1);
}

int main(void) {
  vt_env e, *env = &e;
  vt_init(env, "test_ops_kvcache");
  int f16 = vklm_context_caps(env->ctx)->storage_16bit;
  vklm_kernels fam[2] = {VKLM_KERNELS_GPU, VKLM_KERNELS_CPU};
  for (int k = 0; k < 2; k++) {
    vklm_context_set_kernels(env->ctx, fam[k]);
    all = k == 0;
    for (int h = 0; h <= f16; h++) all_cases(env, h);
  }
  vklm_context_set_kernels(env->ctx, VKLM_KERNELS_AUTO);
  return vt_finish(env);
}

/* RL op tests (VKLM_TEST_GPU): PPO's advantages and clipped losses (engine/ops/rl.h) against
 * their C references at awkward sizes — one row, one token, more rows than a workgroup has
 * threads, empty rows, k1 and k3, with and without reward whitening, scores gathered from a
 * (N,T) source as the rollout does — and each loss derivative of the reference checked by finite
 * differences. The minibatch loss runs twice into the same statistics to check that they
 * accumulate, with padding rows and a permuted row order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

/* A right-padded mask: row r has a prompt of p tokens (0) then a response of l tokens (1);
 * every 5th row has an empty response. */
static float *make_mask(uint32_t N, uint32_t T, uint64_t seed) {
  float *m = vt_zeros((size_t)N * T);
  int *pl = vt_randi(2 * (size_t)N, seed, 0, 1 << 20);
  for (uint32_t r = 0; r < N; r++) {
    uint32_t p = (uint32_t)pl[2 * r] % (T / 2 + 1), l = (uint32_t)pl[2 * r + 1] % (T - p + 1);
    if (r % 5 == 4) l = 0;
    for (uint32_t t = p; t < p + l; t++) m[(size_t)r * T + t] = 1;
  }
  free(pl);
  return m;
}

static void test_advantages(vt_env *env, uint32_t N, uint32_t T, uint32_t k3, uint32_t whiten,
                            int gather, uint64_t seed) {
  size_t n = (size_t)N * T;
  float *old = vt_randf(n, seed, -6, -0.01f), *noise = vt_randf(n, seed + 1, -0.7f, 0.7f);
  float *ref = vt_copy(old, n), *val = vt_randf(n, seed + 2, -1, 1), *mask = make_mask(N, T, seed + 3);
  for (size_t i = 0; i < n; i++) ref[i] += noise[i];
  /* scores: N floats read at last[r] = r, or an (N,T) source read at the row's chosen token */
  size_t ns = gather ? n : N;
  float *src = vt_randf(ns, seed + 4, -2, 2), *bonus = vt_randf(N, seed + 5, -1, 0);
  uint32_t *last = malloc(N * sizeof *last);
  int *lt = vt_randi(N, seed + 6, 0, (int)T);
  for (uint32_t r = 0; r < N; r++) last[r] = gather ? r * T + (uint32_t)lt[r] : r;
  vklm_rl_adv_params p = {.N = N, .T = T, .k3 = k3, .whiten_rewards = whiten, .beta = 0.07f,
                          .gamma = 0.99f, .lam = 0.95f};
  float *rw = vt_zeros(n), *adv = vt_zeros(n), *ret = vt_zeros(n), *rs = vt_zeros((size_t)N * 4);
  vklm_rl_advantages_ref(rw, adv, ret, rs, old, ref, val, mask, src, last, bonus, &p);
  vklm_buffer g_rw = vt_alloc(env, n * 4), g_adv = vt_alloc(env, n * 4), g_ret = vt_alloc(env, n * 4);
  vklm_buffer g_rs = vt_alloc(env, (size_t)N * 16);
  vklm_buffer g_old = vt_upload(env, old, n * 4), g_ref = vt_upload(env, ref, n * 4);
  vklm_buffer g_val = vt_upload(env, val, n * 4), g_mask = vt_upload(env, mask, n * 4);
  vklm_buffer g_src = vt_upload(env, src, ns * 4), g_last = vt_upload(env, last, N * 4);
  vklm_buffer g_bonus = vt_upload(env, bonus, N * 4);
  vt_begin(env);
  vt_ok(env, vklm_rl_advantages(env->cmd, g_rw, g_adv, g_ret, g_rs, g_old, g_ref, g_val, g_mask,
                                g_src, g_last, g_bonus, &p), "rl advantages");
  vt_run(env);
  float *grw = vt_download(env, g_rw, n), *gadv = vt_download(env, g_adv, n);
  float *gret = vt_download(env, g_ret, n), *grs = vt_download(env, g_rs, (size_t)N * 4);
  char what[160];
  const char *kind = k3 ? "k3" : "k1";
  snprintf(what, sizeof what, "advantages N=%u T=%u %s whiten %u%s: rewards", N, T, kind, whiten,
           gather ? " gathered" : "");
  vt_compare(env, what, grw, rw, n, 2e-5);
  snprintf(what, sizeof what, "advantages N=%u T=%u %s whiten %u: advantages", N, T, kind, whiten);
  vt_compare(env, what, gadv, adv, n, 2e-4);
  snprintf(what, sizeof what, "advantages N=%u T=%u %s whiten %u: returns", N, T, kind, whiten);
  vt_compare(env, what, gret, ret, n, 2e-4);
  snprintf(what, sizeof what, "advantages N=%u T=%u %s whiten %u: row figures", N, T, kind, whiten);
  vt_compare(env, what, grs, rs, (size_t)N * 4, 2e-5);
  /* the reference is not trivially zero: some advantage is non-zero where the mask is */
  double s = 0;
  for (size_t i = 0; i < n; i++) s += fabs(adv[i]) * (mask[i] != 0);
  vt_expect(env, N * T < 4 || s > 0, "advantages N=%u T=%u: non-trivial (sum |adv| %.3g)", N, T, s);
  free(old), free(noise), free(ref), free(val), free(mask), free(src), free(bonus), free(last);
  free(lt), free(rw), free(adv), free(ret), free(rs), free(grw), free(gadv), free(gret), free(grs);
}

typedef struct loss_case {
  vklm_rl_loss_params p;
  float *neg_logp, *v, *adv, *ret, *old, *oldv, *mask;
  uint32_t *order;
  float *tw, *vw, stats[64];
} loss_case;

/* The loss the reference's weights are the derivatives of: pg + vf_coef * vf (both means). */
static double loss_of(loss_case *c) {
  memset(c->stats, 0, sizeof c->stats);
  vklm_rl_ppo_loss_ref(c->tw, c->vw, c->stats, c->neg_logp, c->v, c->adv, c->ret, c->old, c->oldv,
                       c->mask, c->order, &c->p);
  return c->stats[8 + 2 * c->p.slot] + (double)c->p.vf_coef * c->stats[9 + 2 * c->p.slot];
}
static double loss_by_neg_logp(void *s) { return loss_of(s); }

static void test_loss(vt_env *env, uint32_t N, uint32_t B, uint32_t n, uint32_t T, uint64_t seed) {
  size_t nt = (size_t)N * T, bt = (size_t)B * T;
  loss_case c = {.p = {.B = B, .T = T, .n = n, .row0 = 1, .slot = 3, .clip = 0.2f, .vclip = 0.2f,
                       .vf_coef = 0.1f}};
  c.old = vt_randf(nt, seed, -5, -0.1f), c.oldv = vt_randf(nt, seed + 1, -1, 1);
  c.adv = vt_randf(nt, seed + 2, -2, 2), c.ret = vt_randf(nt, seed + 3, -1.5f, 1.5f);
  c.mask = make_mask(N, T, seed + 4);
  /* order: a permutation of the rollout rows, read from row0 = 1 */
  c.order = malloc((N + 1) * sizeof *c.order);
  c.order[0] = 12345;
  for (uint32_t r = 0; r < N; r++) c.order[1 + r] = (r * 7 + 3) % N;
  VKLM_ASSERT(N % 7 != 0, "test: the order must be a permutation");
  /* the policy's -logp and the values near the old ones, some beyond the clip ranges */
  float *d = vt_randf(bt, seed + 5, -0.5f, 0.5f), *dv = vt_randf(bt, seed + 6, -0.5f, 0.5f);
  c.neg_logp = vt_zeros(bt), c.v = vt_zeros(bt);
  for (uint32_t r = 0; r < B; r++)
    for (uint32_t t = 0; t < T; t++) {
      size_t j = (size_t)r * T + t, i = r < n ? (size_t)c.order[1 + r] * T + t : 0;
      c.neg_logp[j] = -(c.old[i] + d[j]), c.v[j] = c.oldv[i] + dv[j];
    }
  c.tw = vt_zeros(bt), c.vw = vt_zeros(bt);
  /* GPU: two calls into the same statistics (slots 3 and then 0) */
  float st0[64];
  for (int i = 0; i < 64; i++) st0[i] = (float)i * 0.25f;
  float want_stats[64];
  memcpy(want_stats, st0, sizeof st0);
  vklm_rl_ppo_loss_ref(c.tw, c.vw, want_stats, c.neg_logp, c.v, c.adv, c.ret, c.old, c.oldv,
                       c.mask, c.order, &c.p);
  vklm_rl_loss_params p0 = c.p;
  p0.slot = 0;
  float *tw0 = vt_zeros(bt), *vw0 = vt_zeros(bt);
  vklm_rl_ppo_loss_ref(tw0, vw0, want_stats, c.neg_logp, c.v, c.adv, c.ret, c.old, c.oldv,
                       c.mask, c.order, &p0);
  vklm_buffer g_tw = vt_alloc(env, bt * 4), g_vw = vt_alloc(env, bt * 4);
  vklm_buffer g_st = vt_upload(env, st0, sizeof st0), g_nl = vt_upload(env, c.neg_logp, bt * 4);
  vklm_buffer g_v = vt_upload(env, c.v, bt * 4), g_adv = vt_upload(env, c.adv, nt * 4);
  vklm_buffer g_ret = vt_upload(env, c.ret, nt * 4), g_old = vt_upload(env, c.old, nt * 4);
  vklm_buffer g_oldv = vt_upload(env, c.oldv, nt * 4), g_mask = vt_upload(env, c.mask, nt * 4);
  vklm_buffer g_order = vt_upload(env, c.order, (N + 1) * 4);
  vt_begin(env);
  vt_ok(env, vklm_rl_ppo_loss(env->cmd, g_tw, g_vw, g_st, g_nl, g_v, g_adv, g_ret, g_old, g_oldv,
                              g_mask, g_order, &c.p), "rl ppo loss");
  vt_ok(env, vklm_rl_ppo_loss(env->cmd, g_tw, g_vw, g_st, g_nl, g_v, g_adv, g_ret, g_old, g_oldv,
                              g_mask, g_order, &p0), "rl ppo loss again");
  vt_run(env);
  float *gtw = vt_download(env, g_tw, bt), *gvw = vt_download(env, g_vw, bt);
  float *gst = vt_download(env, g_st, 64);
  char what[160];
  snprintf(what, sizeof what, "ppo loss N=%u B=%u n=%u T=%u: policy weights", N, B, n, T);
  vt_compare(env, what, gtw, tw0, bt, 1e-5);
  snprintf(what, sizeof what, "ppo loss N=%u B=%u n=%u T=%u: value weights", N, B, n, T);
  vt_compare(env, what, gvw, vw0, bt, 1e-5);
  snprintf(what, sizeof what, "ppo loss N=%u B=%u n=%u T=%u: statistics", N, B, n, T);
  vt_compare(env, what, gst, want_stats, 64, 2e-5);
  /* the clipping branches were exercised */
  vt_expect(env, want_stats[0] - st0[0] > 0 && want_stats[1] - st0[1] > 0,
            "ppo loss: some tokens clipped (%g policy, %g value)", want_stats[0] - st0[0],
            want_stats[1] - st0[1]);
  /* finite differences of the reference: d loss / d(-logp) = neg_tok_w, d loss / dv = value_w */
  loss_of(&c);
  float *gneg = vt_copy(c.tw, bt), *gv = vt_copy(c.vw, bt);
  snprintf(what, sizeof what, "ppo loss reference: d/d(-logp) by finite differences");
  vt_fd_check(env, what, loss_by_neg_logp, &c, c.neg_logp, bt, gneg, 64, 1e-3, 2e-2);
  snprintf(what, sizeof what, "ppo loss reference: d/dv by finite differences");
  vt_fd_check(env, what, loss_by_neg_logp, &c, c.v, bt, gv, 64, 1e-3, 2e-2);
  free(c.old), free(c.oldv), free(c.adv), free(c.ret), free(c.mask), free(c.order), free(d);
  free(dv), free(c.neg_logp), free(c.v), free(c.tw), free(c.vw), free(tw0), free(vw0), free(gtw);
  free(gvw), free(gst), free(gneg), free(gv);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_rl");
  test_advantages(&env, 1, 1, 0, 0, 0, 1);
  test_advantages(&env, 3, 17, 0, 1, 0, 2);
  test_advantages(&env, 37, 65, 1, 0, 1, 3);
  test_advantages(&env, 300, 9, 1, 1, 1, 4);
  test_loss(&env, 9, 4, 3, 13, 10);
  test_loss(&env, 300, 8, 8, 33, 11);
  return vt_finish(&env);
}

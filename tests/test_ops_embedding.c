/* Embedding op tests (VKLM_TEST_GPU): token + position embedding forward and its deterministic
 * backward (bucket plan) against the C reference, with many repeated tokens, V and C that are
 * not multiples of anything (C = 1, 13, 300, 768), with and without a position table, and more
 * distinct tokens than a dispatch has workgroups along x; the
 * backward run twice must be bit-identical, and a recorded backward replayed with a new batch's
 * tokens and plan must still be right; the backward reference is checked by finite differences;
 * bad token ids are rejected by the plan and give NaN rows (no out-of-bounds read) on the GPU;
 * the vocabulary-range variants over a table split into uneven row chunks (one call per chunk)
 * equal the whole-table reference bit for bit, forward and backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

typedef struct ecase {
  uint32_t B, T, C, V;
  int tok_hi; /* tokens drawn from [0, tok_hi): small means many repeats */
  int with_wpe;
} ecase;

static int32_t *make_tokens(const ecase *k, uint64_t seed) {
  uint32_t BT = k->B * k->T;
  int32_t *tok = (int32_t *)vt_randi(BT, seed, 0, k->tok_hi);
  tok[BT / 2] = (int32_t)k->V - 1; /* the last row of the table is used too */
  return tok;
}

static vklm_buffer upload_plan(vt_env *env, vklm_buffer *into, const int32_t *tok, uint32_t BT,
                               uint32_t V, uint32_t *U) {
  size_t np = vklm_embedding_plan_size(BT);
  int32_t *plan = malloc(np * sizeof *plan);
  char err[256];
  vt_ok(env, vklm_embedding_plan(plan, U, tok, BT, V, err, sizeof err), "plan");
  vklm_buffer b = into ? *into : vt_alloc(env, np * 4);
  vt_ok(env, vklm_buffer_upload(env->ctx, b, 0, plan, np * 4), "upload plan");
  free(plan);
  return b;
}

static void test_case(vt_env *env, const ecase *k, uint64_t seed) {
  uint32_t B = k->B, T = k->T, C = k->C, V = k->V, BT = B * T;
  size_t n = (size_t)BT * C, nte = (size_t)V * C, npe = (size_t)T * C;
  char what[128];
  printf(" B=%u T=%u C=%u V=%u tokens in [0,%d)%s\n", B, T, C, V, k->tok_hi,
         k->with_wpe ? "" : ", no position table");
  int32_t *tok = make_tokens(k, seed);
  float *wte = vt_randf(nte, seed + 1, -1, 1);
  float *wpe = vt_randf(npe + 3 * C, seed + 2, -1, 1); /* a table longer than T is fine */
  float *dout = vt_randf(n, seed + 3, -1, 1);
  float *dwte0 = vt_randf(nte, seed + 4, -0.5f, 0.5f), *dwpe0 = vt_randf(npe, seed + 5, -0.5f, 0.5f);

  vklm_buffer g_tok = vt_upload(env, tok, BT * 4), g_wte = vt_upload(env, wte, nte * 4);
  vklm_buffer g_wpe = k->with_wpe ? vt_upload(env, wpe, (npe + 3 * C) * 4) : (vklm_buffer){0};
  vklm_buffer g_out = vt_alloc(env, n * 4), g_dout = vt_upload(env, dout, n * 4);
  vklm_buffer g_dwte = vt_upload(env, dwte0, nte * 4);
  vklm_buffer g_dwpe = k->with_wpe ? vt_upload(env, dwpe0, npe * 4) : (vklm_buffer){0};
  uint32_t U;
  vklm_buffer g_plan = upload_plan(env, NULL, tok, BT, V, &U);

  /* forward */
  vt_begin(env);
  vt_ok(env, vklm_embedding_forward(env->cmd, g_out, g_tok, g_wte, g_wpe, B, T, C, V), "forward");
  vt_run(env);
  float *out = vt_download(env, g_out, n), *ref = vt_zeros(n);
  vklm_embedding_forward_ref(ref, tok, wte, k->with_wpe ? wpe : NULL, B, T, C);
  snprintf(what, sizeof what, "forward C=%u", C);
  vt_compare(env, what, out, ref, n, 0);

  /* backward (recorded once; run, reset, run again, then replayed with a new batch) */
  vt_begin(env);
  vt_ok(env, vklm_embedding_backward(env->cmd, g_dwte, g_dwpe, g_plan, g_dout, B, T, C, V), "backward");
  /* the position table's gradient rides in the token table's dispatch where the grid has room
   * for T more workgroups (else a dispatch of its own: the T = 140001 case) */
  uint32_t want_nd = k->with_wpe && T >= vklm_context_caps(env->ctx)->max_workgroup_count[0] ? 2 : 1;
  vt_expect(env, vklm_cmd_dispatch_count(env->cmd) == want_nd,
            "  backward: %u dispatch(es) (want %u)", vklm_cmd_dispatch_count(env->cmd), want_nd);
  vt_run(env);
  float *dwte = vt_download(env, g_dwte, nte), *dwpe = k->with_wpe ? vt_download(env, g_dwpe, npe) : NULL;
  float *rdwte = vt_copy(dwte0, nte), *rdwpe = vt_copy(dwpe0, npe);
  vklm_embedding_backward_ref(rdwte, k->with_wpe ? rdwpe : NULL, dout, tok, B, T, C);
  snprintf(what, sizeof what, "backward dwte C=%u (%u distinct tokens)", C, U);
  vt_compare(env, what, dwte, rdwte, nte, 1e-6);
  vt_expect(env, !memcmp(dwte, rdwte, nte * 4), "  dwte bit-identical to the reference's in-order sum");
  if (k->with_wpe) {
    snprintf(what, sizeof what, "backward dwpe C=%u", C);
    vt_compare(env, what, dwpe, rdwpe, npe, 1e-6);
  }
  vt_ok(env, vklm_buffer_upload(env->ctx, g_dwte, 0, dwte0, nte * 4), "reset");
  if (k->with_wpe) vt_ok(env, vklm_buffer_upload(env->ctx, g_dwpe, 0, dwpe0, npe * 4), "reset");
  vt_ok(env, vklm_cmd_run(env->cmd), "second run");
  float *dwte2 = vt_download(env, g_dwte, nte), *dwpe2 = k->with_wpe ? vt_download(env, g_dwpe, npe) : NULL;
  vt_expect(env, !memcmp(dwte, dwte2, nte * 4) && (!k->with_wpe || !memcmp(dwpe, dwpe2, npe * 4)),
            "  backward run twice: bit-identical dwte%s", k->with_wpe ? " and dwpe" : "");

  /* Replay with a different batch: only tokens, plan and dout re-uploaded; accumulates on top. */
  ecase k2 = *k;
  k2.tok_hi = (int)V; /* a different repetition pattern, so U differs */
  int32_t *tok2 = make_tokens(&k2, seed + 100);
  float *dout2 = vt_randf(n, seed + 101, -1, 1);
  uint32_t U2;
  upload_plan(env, &g_plan, tok2, BT, V, &U2);
  vt_ok(env, vklm_buffer_upload(env->ctx, g_dout, 0, dout2, n * 4), "upload");
  vt_ok(env, vklm_cmd_run(env->cmd), "replay");
  free(dwte);
  dwte = vt_download(env, g_dwte, nte);
  vklm_embedding_backward_ref(rdwte, k->with_wpe ? rdwpe : NULL, dout2, tok2, B, T, C);
  snprintf(what, sizeof what, "replayed backward, new batch (U %u->%u)", U, U2);
  vt_compare(env, what, dwte, rdwte, nte, 1e-6);
  if (k->with_wpe) {
    free(dwpe);
    dwpe = vt_download(env, g_dwpe, npe);
    vt_compare(env, "replayed backward dwpe", dwpe, rdwpe, npe, 1e-6);
  }

  free(tok); free(tok2); free(wte); free(wpe); free(dout); free(dout2); free(dwte0); free(dwpe0);
  free(out); free(ref); free(dwte); free(dwpe); free(rdwte); free(rdwpe); free(dwte2); free(dwpe2);
}

/* ---- finite differences of the backward reference -------------------------------------------- */
typedef struct fd_state {
  uint32_t B, T, C;
  const int32_t *tok;
  float *wte, *wpe, *out;
  const float *proj;
} fd_state;

static double fd_loss(void *p) {
  fd_state *s = p;
  size_t n = (size_t)s->B * s->T * s->C;
  vklm_embedding_forward_ref(s->out, s->tok, s->wte, s->wpe, s->B, s->T, s->C);
  double l = 0;
  for (size_t i = 0; i < n; i++) l += (double)s->out[i] * s->proj[i];
  return l;
}

static void test_fd(vt_env *env) {
  uint32_t B = 3, T = 5, C = 13, V = 7;
  size_t n = (size_t)B * T * C;
  int32_t *tok = (int32_t *)vt_randi(B * T, 77, 0, 4); /* repeats; tokens 4..6 unused */
  float *wte = vt_randf((size_t)V * C, 78, -1, 1), *wpe = vt_randf((size_t)T * C, 79, -1, 1);
  float *proj = vt_randf(n, 80, -1, 1), *out = vt_zeros(n);
  float *dwte = vt_zeros((size_t)V * C), *dwpe = vt_zeros((size_t)T * C);
  vklm_embedding_backward_ref(dwte, dwpe, proj, tok, B, T, C); /* dloss/dout = proj */
  fd_state s = {B, T, C, tok, wte, wpe, out, proj};
  vt_fd_check(env, "fd: backward ref dwte", fd_loss, &s, wte, (size_t)V * C, dwte, 91, 1e-2, 1e-3);
  vt_fd_check(env, "fd: backward ref dwpe", fd_loss, &s, wpe, (size_t)T * C, dwpe, 65, 1e-2, 1e-3);
  free(tok); free(wte); free(wpe); free(proj); free(out); free(dwte); free(dwpe);
}

/* ---- bad token ids ----------------------------------------------------------------------------- */
static void test_bad_tokens(vt_env *env) {
  uint32_t B = 2, T = 6, C = 5, V = 9, BT = B * T;
  int32_t tok[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2};
  int32_t *plan = malloc(vklm_embedding_plan_size(BT) * sizeof *plan);
  char err[256] = "";
  uint32_t U;
  vklm_status st = vklm_embedding_plan(plan, &U, tok, BT, V, err, sizeof err);
  vt_expect(env, st == VKLM_OK && U == 9, "valid tokens: plan with %u distinct tokens", U);
  tok[7] = (int32_t)V;
  st = vklm_embedding_plan(plan, &U, tok, BT, V, err, sizeof err);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(err, "position 7"), "token id V rejected: %s", err);
  tok[7] = -1;
  st = vklm_embedding_plan(plan, &U, tok, BT, V, err, sizeof err);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(err, "-1"), "token id -1 rejected: %s", err);
  st = vklm_embedding_check_tokens(tok, BT, V, NULL, 0);
  vt_expect(env, st == VKLM_ERROR_INVALID, "check_tokens rejects it too (NULL err is fine)");

  /* The GPU forward never reads out of bounds: a bad id gives a NaN row, the rest are right. */
  tok[3] = 1 << 30;
  float *wte = vt_randf((size_t)V * C, 5, -1, 1), *wpe = vt_randf((size_t)T * C, 6, -1, 1);
  vklm_buffer g_tok = vt_upload(env, tok, BT * 4), g_wte = vt_upload(env, wte, (size_t)V * C * 4);
  vklm_buffer g_wpe = vt_upload(env, wpe, (size_t)T * C * 4), g_out = vt_alloc(env, (size_t)BT * C * 4);
  vt_begin(env);
  vt_ok(env, vklm_embedding_forward(env->cmd, g_out, g_tok, g_wte, g_wpe, B, T, C, V), "forward");
  vt_run(env);
  float *out = vt_download(env, g_out, (size_t)BT * C);
  int nan_rows = 0, good = 1;
  for (uint32_t bt = 0; bt < BT; bt++) {
    int bad = tok[bt] < 0 || (uint32_t)tok[bt] >= V, all_nan = 1;
    for (uint32_t c = 0; c < C; c++) {
      float o = out[bt * C + c];
      all_nan &= isnan(o);
      if (!bad && o != wte[tok[bt] * C + c] + wpe[(bt % T) * C + c]) good = 0;
    }
    if (bad) nan_rows += all_nan;
  }
  vt_expect(env, nan_rows == 2 && good, "GPU forward with ids -1 and 2^30: %d NaN rows (want 2), other rows %s",
            nan_rows, good ? "exact" : "WRONG");
  free(plan); free(wte); free(wpe); free(out);
}

/* A (V,C) table stored as row chunks of `rows` rows (the last one shorter), one buffer each:
 * forward_range per chunk writes every position once; backward_range per chunk (dwpe with the
 * first) accumulates each chunk's tokens. Both must equal the whole-table reference exactly. */
static void test_range(vt_env *env, uint32_t B, uint32_t T, uint32_t C, uint32_t V,
                       uint32_t rows, int with_wpe, uint64_t seed) {
  uint32_t BT = B * T, nch = (V + rows - 1) / rows;
  size_t n = (size_t)BT * C, nte = (size_t)V * C, npe = (size_t)T * C;
  int32_t *tok = (int32_t *)vt_randi(BT, seed, 0, (int)V);
  tok[0] = 0, tok[BT - 1] = (int32_t)V - 1, tok[BT / 2] = (int32_t)(rows < V ? rows : 0); /* edges */
  float *wte = vt_randf(nte, seed + 1, -1, 1), *wpe = vt_randf(npe, seed + 2, -1, 1);
  float *dout = vt_randf(n, seed + 3, -1, 1), *dwte0 = vt_randf(nte, seed + 4, -0.5f, 0.5f);
  float *dwpe0 = vt_randf(npe, seed + 5, -0.5f, 0.5f);
  vklm_buffer g_tok = vt_upload(env, tok, BT * 4), g_out = vt_alloc(env, n * 4);
  vklm_buffer g_wpe = with_wpe ? vt_upload(env, wpe, npe * 4) : (vklm_buffer){0};
  vklm_buffer g_dwpe = with_wpe ? vt_upload(env, dwpe0, npe * 4) : (vklm_buffer){0};
  vklm_buffer g_dout = vt_upload(env, dout, n * 4), *g_wte = calloc(nch, sizeof *g_wte),
              *g_dwte = calloc(nch, sizeof *g_dwte);
  uint32_t U;
  vklm_buffer g_plan = upload_plan(env, NULL, tok, BT, V, &U);
  for (uint32_t k = 0; k < nch; k++) {
    size_t r0 = (size_t)k * rows, r1 = r0 + rows < V ? r0 + rows : V;
    g_wte[k] = vt_upload(env, wte + r0 * C, (r1 - r0) * C * 4);
    g_dwte[k] = vt_upload(env, dwte0 + r0 * C, (r1 - r0) * C * 4);
  }
  vt_begin(env);
  /* the forward as the model records it: two chunks per dispatch (forward_range2), an odd last
   * one alone (forward_range) */
  for (uint32_t k = 0; k < nch; k += 2) {
    uint32_t v0 = k * rows, vs = v0 + rows < V ? v0 + rows : V, v1 = vs + rows < V ? vs + rows : V;
    if (k + 1 < nch)
      vt_ok(env, vklm_embedding_forward_range2(env->cmd, g_out, g_tok, g_wte[k], g_wte[k + 1],
                                               g_wpe, B, T, C, V, v0, vs, v1), "forward_range2");
    else
      vt_ok(env, vklm_embedding_forward_range(env->cmd, g_out, g_tok, g_wte[k], g_wpe, B, T, C, V,
                                              v0, vs), "forward_range");
  }
  uint32_t nfwd = vklm_cmd_dispatch_count(env->cmd);
  vt_expect(env, nfwd == (nch + 1) / 2, "  range forward: %u dispatches for %u chunks (want %u)",
            nfwd, nch, (nch + 1) / 2);
  for (uint32_t k = 0; k < nch; k++) {
    uint32_t v0 = k * rows, v1 = v0 + rows < V ? v0 + rows : V;
    vt_ok(env, vklm_embedding_backward_range(env->cmd, g_dwte[k], k ? (vklm_buffer){0} : g_dwpe,
                                             g_plan, g_dout, B, T, C, V, v0, v1),
          "backward_range");
  }
  vt_run(env);
  float *out = vt_download(env, g_out, n), *ref = vt_zeros(n), *dwte = vt_zeros(nte);
  for (uint32_t k = 0; k < nch; k++) {
    size_t r0 = (size_t)k * rows, r1 = r0 + rows < V ? r0 + rows : V;
    float *part = vt_download(env, g_dwte[k], (r1 - r0) * C);
    memcpy(dwte + r0 * C, part, (r1 - r0) * C * 4);
    free(part);
  }
  vklm_embedding_forward_ref(ref, tok, wte, with_wpe ? wpe : NULL, B, T, C);
  float *rdwte = vt_copy(dwte0, nte), *rdwpe = vt_copy(dwpe0, npe);
  vklm_embedding_backward_ref(rdwte, with_wpe ? rdwpe : NULL, dout, tok, B, T, C);
  char what[128];
  snprintf(what, sizeof what, "range forward, V=%u in %u chunks of %u rows, C=%u", V, nch, rows, C);
  vt_compare(env, what, out, ref, n, 0);
  snprintf(what, sizeof what, "range backward dwte (%u distinct tokens)", U);
  vt_compare(env, what, dwte, rdwte, nte, 0);
  vt_expect(env, !memcmp(out, ref, n * 4) && !memcmp(dwte, rdwte, nte * 4),
            "  chunked forward and dwte bit-identical to the whole-table reference");
  if (with_wpe) {
    float *dwpe = vt_download(env, g_dwpe, npe);
    vt_compare(env, "range backward dwpe (first chunk only)", dwpe, rdwpe, npe, 0);
    free(dwpe);
  }
  free(tok), free(wte), free(wpe), free(dout), free(dwte0), free(dwpe0), free(g_wte), free(g_dwte);
  free(out), free(ref), free(dwte), free(rdwte), free(rdwpe);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_embedding");
  const ecase cases[] = {
      {2, 7, 1, 11, 3, 1},       /* C = 1, heavy repeats */
      {3, 17, 13, 37, 37, 1},    /* C = 13 */
      {1, 1, 13, 1, 1, 1},       /* tiny: one position, one token */
      {5, 29, 300, 97, 6, 0},    /* C over one workgroup, not a multiple; no wpe */
      {4, 33, 768, 1001, 5, 1},  /* GPT-2 width, ~26 repeats per token */
      {2, 50, 768, 1001, 1001, 0},
      /* more distinct tokens (~137k) than the device's 65535 workgroups along x: slots loop */
      {1, 140001, 1, 1u << 22, 1 << 22, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_case(&env, &cases[i], 10 + 7 * i);
  test_range(&env, 3, 17, 13, 37, 10, 1, 500);   /* 10,10,10,7 */
  test_range(&env, 2, 29, 300, 97, 33, 0, 600);  /* 33,33,31; no position table */
  test_range(&env, 1, 5, 7, 11, 11, 1, 700);     /* one chunk: the whole-table op */
  test_fd(&env);
  test_bad_tokens(&env);
  return vt_finish(&env);
}

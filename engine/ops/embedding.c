/* Token and position embedding (shaders/embedding_forward_f32.comp,
 * embedding_backward_f32_dwte.comp, embedding_backward_f32_dwpe.comp) and the host-side bucket
 * plan that makes the dwte scatter-add deterministic. See embedding.h. */
#include "embedding.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

typedef struct embed_fwd_push {
  uint32_t BT, T, C, V;
  uint32_t has_wpe, v0, v1, vs;
} embed_fwd_push;
_Static_assert(sizeof(embed_fwd_push) == 32, "embedding_forward_f32.comp push constants");

typedef struct embed_dwte_push {
  uint32_t BT, C, V, v0, v1, slots, B;
} embed_dwte_push;
_Static_assert(sizeof(embed_dwte_push) == 28, "embedding_backward_dwte.glsl push constants");

typedef struct embed_dwpe_push {
  uint32_t B, TC;
} embed_dwpe_push;
_Static_assert(sizeof(embed_dwpe_push) == 8, "embedding_backward_f32_dwpe.comp push constants");

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- plan ------------------------------------------------------------------------------------ */

size_t vklm_embedding_plan_size(uint32_t BT) { return 3 + 3 * (size_t)BT; }

vklm_status vklm_embedding_check_tokens(const int32_t *tokens, uint32_t BT, uint32_t V, char *err,
                                        size_t errlen) {
  for (uint32_t i = 0; i < BT; i++)
    if (tokens[i] < 0 || (uint32_t)tokens[i] >= V) {
      seterr(err, errlen, "embedding: token id %d at position %u (of %u) is outside [0,%u)",
             tokens[i], i, BT, V);
      return VKLM_ERROR_INVALID;
    }
  return VKLM_OK;
}

/* Keys (token << 32 | position) are distinct, so any sort of them is the stable sort by token. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

vklm_status vklm_embedding_plan(int32_t *plan, uint32_t *nunique, const int32_t *tokens,
                                uint32_t BT, uint32_t V, char *err, size_t errlen) {
  VKLM_ASSERT(BT < (1u << 30), "embedding plan: %u positions", BT);
  if (nunique) *nunique = 0;
  vklm_status st = vklm_embedding_check_tokens(tokens, BT, V, err, errlen);
  if (st != VKLM_OK) return st;
  uint64_t *keys = malloc((BT ? BT : 1) * sizeof *keys);
  if (!keys) {
    seterr(err, errlen, "embedding plan: out of host memory (%u positions)", BT);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  for (uint32_t i = 0; i < BT; i++) keys[i] = (uint64_t)(uint32_t)tokens[i] << 32 | i;
  qsort(keys, BT, sizeof *keys, cmp_u64);
  memset(plan, 0, vklm_embedding_plan_size(BT) * sizeof *plan);
  int32_t *order = plan + VKLM_EMBEDDING_PLAN_ORDER(BT);
  int32_t *start = plan + VKLM_EMBEDDING_PLAN_START(BT);
  int32_t *token = plan + VKLM_EMBEDDING_PLAN_TOKEN(BT);
  uint32_t U = 0;
  for (uint32_t k = 0; k < BT; k++) {
    uint32_t tok = (uint32_t)(keys[k] >> 32);
    if (k == 0 || tok != (uint32_t)(keys[k - 1] >> 32)) {
      start[U] = (int32_t)k;
      token[U] = (int32_t)tok;
      U++;
    }
    order[k] = (int32_t)(uint32_t)keys[k];
  }
  start[U] = (int32_t)BT;
  plan[0] = (int32_t)U;
  plan[1] = (int32_t)BT;
  if (nunique) *nunique = U;
  free(keys);
  return VKLM_OK;
}

/* ---- GPU ------------------------------------------------------------------------------------- */

/* Threads per workgroup along C for the dwte pass: the smallest power of two covering C, at
 * most the 1-D size, so that a small C does not leave most of a workgroup idle. */
static uint32_t wg_channels(const vklm_context *ctx, uint32_t C) {
  uint32_t want = 1;
  while (want < C && want < 256) want *= 2;
  return vklm_op_wg_fit(ctx, want, 0);
}

vklm_status vklm_embedding_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer tokens,
                                   vklm_buffer wte, vklm_buffer wpe, uint32_t B, uint32_t T,
                                   uint32_t C, uint32_t V) {
  return vklm_embedding_forward_range(cmd, out, tokens, wte, wpe, B, T, C, V, 0, V);
}

vklm_status vklm_embedding_forward_range(vklm_cmd *cmd, vklm_buffer out, vklm_buffer tokens,
                                         vklm_buffer wte, vklm_buffer wpe, uint32_t B, uint32_t T,
                                         uint32_t C, uint32_t V, uint32_t v0, uint32_t v1) {
  return vklm_embedding_forward_range2(cmd, out, tokens, wte, (vklm_buffer){0}, wpe, B, T, C, V,
                                       v0, v1, v1);
}

vklm_status vklm_embedding_forward_range2(vklm_cmd *cmd, vklm_buffer out, vklm_buffer tokens,
                                          vklm_buffer wte, vklm_buffer wte2, vklm_buffer wpe,
                                          uint32_t B, uint32_t T, uint32_t C, uint32_t V,
                                          uint32_t v0, uint32_t vs, uint32_t v1) {
  uint64_t BT = (uint64_t)B * T, n = BT * C;
  VKLM_ASSERT(n < (1ull << 32) && (uint64_t)V * C < (1ull << 32),
              "embedding: B*T*C = %llu or V*C too large", (unsigned long long)n);
  VKLM_ASSERT(out.size >= n * 4, "embedding forward: out %llu bytes < (B,T,C)", (unsigned long long)out.size);
  VKLM_ASSERT(tokens.size >= BT * 4, "embedding forward: tokens %llu bytes < (B,T)", (unsigned long long)tokens.size);
  VKLM_ASSERT(v0 < vs && vs <= v1 && v1 <= V, "embedding forward: range [%u,%u,%u) of V=%u", v0,
              vs, v1, V);
  VKLM_ASSERT(wte.size >= (uint64_t)(vs - v0) * C * 4, "embedding forward: wte %llu bytes < (vs-v0,C)",
              (unsigned long long)wte.size);
  VKLM_ASSERT(vs == v1 || wte2.size >= (uint64_t)(v1 - vs) * C * 4,
              "embedding forward: wte2 %llu bytes < (v1-vs,C)", (unsigned long long)wte2.size);
  int has_wpe = wpe.size > 0;
  VKLM_ASSERT(!has_wpe || wpe.size >= (uint64_t)T * C * 4, "embedding forward: wpe %llu bytes < (T,C)",
              (unsigned long long)wpe.size);
  if (n == 0) return VKLM_OK;
  embed_fwd_push pc = {(uint32_t)BT, T, C, V, (uint32_t)has_wpe, v0, v1, vs};
  /* Without a position table or a second chunk, wte stands in at bindings 3 and 4 (read-only,
   * never read). */
  vklm_buffer bufs[5] = {out, tokens, wte, has_wpe ? wpe : wte, vs < v1 ? wte2 : wte};
  return vklm_op_dispatch_1d(cmd, "embedding_forward_f32", bufs, 5, &pc, sizeof pc, n);
}

vklm_status vklm_embedding_backward(vklm_cmd *cmd, vklm_buffer dwte, vklm_buffer dwpe,
                                    vklm_buffer plan, vklm_buffer dout, uint32_t B, uint32_t T,
                                    uint32_t C, uint32_t V) {
  return vklm_embedding_backward_range(cmd, dwte, dwpe, plan, dout, B, T, C, V, 0, V);
}

vklm_status vklm_embedding_backward_range(vklm_cmd *cmd, vklm_buffer dwte, vklm_buffer dwpe,
                                          vklm_buffer plan, vklm_buffer dout, uint32_t B,
                                          uint32_t T, uint32_t C, uint32_t V, uint32_t v0,
                                          uint32_t v1) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint64_t BT = (uint64_t)B * T, n = BT * C;
  VKLM_ASSERT(n < (1ull << 32) && (uint64_t)V * C < (1ull << 32) && BT < (1u << 30),
              "embedding: B*T*C = %llu or V*C too large", (unsigned long long)n);
  VKLM_ASSERT(v0 < v1 && v1 <= V, "embedding backward: range [%u,%u) of V=%u", v0, v1, V);
  int has_wte = dwte.block != NULL; /* {0}: a frozen token table (dwpe only) */
  VKLM_ASSERT(!has_wte || dwte.size >= (uint64_t)(v1 - v0) * C * 4,
              "embedding backward: dwte %llu bytes < (v1-v0,C)", (unsigned long long)dwte.size);
  VKLM_ASSERT(dout.size >= n * 4, "embedding backward: dout %llu bytes < (B,T,C)", (unsigned long long)dout.size);
  VKLM_ASSERT(plan.size >= vklm_embedding_plan_size((uint32_t)BT) * 4,
              "embedding backward: plan %llu bytes < vklm_embedding_plan_size(%llu) int32",
              (unsigned long long)plan.size, (unsigned long long)BT);
  int has_wpe = dwpe.size > 0;
  VKLM_ASSERT(!has_wpe || dwpe.size >= (uint64_t)T * C * 4, "embedding backward: dwpe %llu bytes < (T,C)",
              (unsigned long long)dwpe.size);
  if (n == 0) return VKLM_OK;
  vklm_status st;

  /* dwte: x = distinct-token slots (a fixed count, BT at most, looped over when the device
   * allows fewer), y = chunks of C; with dwpe, T more x workgroups add its rows in the same
   * dispatch (where the grid allows them). */
  int both = 0;
  if (has_wte) {
    uint32_t wg = wg_channels(ctx, C), xmax = caps->max_workgroup_count[0];
    uint64_t gy = (C + wg - 1) / wg;
    VKLM_ASSERT(gy <= caps->max_workgroup_count[1], "embedding backward: C = %u too large", C);
    both = has_wpe && T < xmax;
    uint32_t room = both ? xmax - T : xmax;
    uint32_t slots = BT < room ? (uint32_t)BT : room;
    embed_dwte_push pw = {(uint32_t)BT, C, V, v0, v1, slots, B};
    vklm_buffer bw[4] = {dwte, dout, plan, dwpe};
    st = vklm_op_dispatch(cmd, both ? "embedding_backward_f32_dwte_dwpe"
                                    : "embedding_backward_f32_dwte",
                          &wg, 1, bw, both ? 4 : 3, &pw, sizeof pw, slots + (both ? T : 0),
                          (uint32_t)gy, 1);
    if (st != VKLM_OK) return st;
  }
  if (!has_wpe || both) return VKLM_OK;
  /* dwpe: one thread per (t,c), summing over b in order. */
  embed_dwpe_push pp = {B, T * C};
  vklm_buffer bp[2] = {dwpe, dout};
  return vklm_op_dispatch_1d(cmd, "embedding_backward_f32_dwpe", bp, 2, &pp, sizeof pp,
                             (uint64_t)T * C);
}

/* ---- references ------------------------------------------------------------------------------ */

void vklm_embedding_forward_ref(float *out, const int32_t *tokens, const float *wte,
                                const float *wpe, uint32_t B, uint32_t T, uint32_t C) {
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t t = 0; t < T; t++) {
      float *o = out + ((size_t)b * T + t) * C;
      const float *e = wte + (size_t)tokens[b * T + t] * C;
      for (uint32_t c = 0; c < C; c++) o[c] = wpe ? e[c] + wpe[(size_t)t * C + c] : e[c];
    }
}

void vklm_embedding_backward_ref(float *dwte, float *dwpe, const float *dout,
                                 const int32_t *tokens, uint32_t B, uint32_t T, uint32_t C) {
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t t = 0; t < T; t++) {
      const float *d = dout + ((size_t)b * T + t) * C;
      float *g = dwte + (size_t)tokens[b * T + t] * C;
      for (uint32_t c = 0; c < C; c++) {
        g[c] += d[c];
        if (dwpe) dwpe[(size_t)t * C + c] += d[c];
      }
    }
}

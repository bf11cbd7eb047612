/* Token and position embedding: out (B,T,C) = wte[tokens[b,t]] + wpe[t].
 *
 * The position table is optional (a Llama model has none): pass a zero-size buffer
 * (vklm_buffer){0} for wpe / dwpe to mean "no learned positions".
 *
 * The backward is deterministic (bit-identical from run to run, no atomics). dwpe is a plain
 * fixed-order sum over b. dwte is a scatter-add with repeated tokens, so it runs from a BUCKET
 * PLAN that the host builds from the tokens it uploads anyway (vklm_embedding_plan): the
 * positions sorted by token (stably), and for each distinct token its segment of that list. On
 * the GPU one workgroup (per channel chunk) owns each distinct token and sums its positions in
 * increasing order, so every dwte element receives exactly the additions, in the same order, as
 * the plain C loop `for bt: dwte[tokens[bt]] += dout[bt]`. The GPU result therefore equals the
 * reference bit for bit on a device with IEEE adds. The number of workgroups depends only on B*T
 * and C, never on the tokens, so a recorded training step replays with a re-uploaded plan.
 *
 * Token ids: vklm_embedding_plan rejects an id outside [0,V) with VKLM_ERROR_INVALID and a
 * message naming the position. The shaders never read out of bounds: a bad id in the forward
 * gives a NaN row (loud, not silent), and the backward skips a bad plan entry. Only the plan
 * function validates; call it (or vklm_embedding_check_tokens) on every batch.
 *
 * Sizes: B*T*C and V*C must be below 2^32. fp32 throughout. */
#ifndef VKLM_OPS_EMBEDDING_H
#define VKLM_OPS_EMBEDDING_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

/* ---- the bucket plan (host side) -------------------------------------------------------------
 * An int32 array of vklm_embedding_plan_size(BT) entries:
 *   [0]                      U, the number of distinct tokens
 *   [1]                      BT
 *   [2, 2+BT)                ORDER: positions bt sorted by (token, bt)
 *   [2+BT, 3+2BT)            START: segment u is ORDER[START[u] .. START[u+1]), u < U
 *   [3+2BT, 3+3BT)           TOKEN: the token id of segment u, u < U (ascending)
 * Entries past U are zero. */
#define VKLM_EMBEDDING_PLAN_ORDER(BT) 2u
#define VKLM_EMBEDDING_PLAN_START(BT) (2u + (uint32_t)(BT))
#define VKLM_EMBEDDING_PLAN_TOKEN(BT) (3u + 2u * (uint32_t)(BT))

/* Number of int32 entries of the plan for BT = B*T positions. */
size_t vklm_embedding_plan_size(uint32_t BT);

/* Builds the plan for tokens (BT) into plan (vklm_embedding_plan_size(BT) int32). Returns
 * VKLM_ERROR_INVALID, with a message in err (may be NULL) naming the first bad position, when a
 * token is outside [0,V); the plan is then unusable. *nunique (may be NULL) receives U. */
vklm_status vklm_embedding_plan(int32_t *plan, uint32_t *nunique, const int32_t *tokens,
                                uint32_t BT, uint32_t V, char *err, size_t errlen);

/* VKLM_OK when every token is in [0,V), else VKLM_ERROR_INVALID with a message (inference path,
 * where no plan is built). */
vklm_status vklm_embedding_check_tokens(const int32_t *tokens, uint32_t BT, uint32_t V, char *err,
                                        size_t errlen);

/* ---- GPU -------------------------------------------------------------------------------------- */

/* out (B,T,C) = wte[tokens[b,t]] + wpe[t]     (overwrites out)
 * tokens (B,T) int32, wte (V,C), wpe (T,C) or {0} for none (then out = wte[tokens]).
 * wpe needs only T rows: a model's (maxT,C) table can be passed whole. */
vklm_status vklm_embedding_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer tokens,
                                   vklm_buffer wte, vklm_buffer wpe, uint32_t B, uint32_t T,
                                   uint32_t C, uint32_t V);

/* The same over a vocabulary range [v0, v1), for a (V,C) table stored as row chunks (each within
 * the largest bindable buffer): wte is the chunk (v1-v0, C) holding rows v0..v1-1. The forward
 * writes only the positions whose token is in the range (out = wte[tok-v0] + wpe[t]) and leaves
 * the others as they are, so one call per chunk writes every position once; the call whose
 * range ends at V also writes the NaN rows of bad ids. The backward adds into dwte (v1-v0, C)
 * for the tokens in the range only, in the same order as the whole-table call (bit-identical);
 * pass dwpe to ONE of the calls (the others {0}). v0 = 0, v1 = V is the whole-table op. dwte {0}
 * (a frozen token table) computes dwpe alone. */
vklm_status vklm_embedding_forward_range(vklm_cmd *cmd, vklm_buffer out, vklm_buffer tokens,
                                         vklm_buffer wte, vklm_buffer wpe, uint32_t B, uint32_t T,
                                         uint32_t C, uint32_t V, uint32_t v0, uint32_t v1);
/* The forward over two consecutive chunks in one dispatch: wte holds rows [v0, vs), wte2 rows
 * [vs, v1) (vs = v1: wte alone, wte2 unused). */
vklm_status vklm_embedding_forward_range2(vklm_cmd *cmd, vklm_buffer out, vklm_buffer tokens,
                                          vklm_buffer wte, vklm_buffer wte2, vklm_buffer wpe,
                                          uint32_t B, uint32_t T, uint32_t C, uint32_t V,
                                          uint32_t v0, uint32_t vs, uint32_t v1);
vklm_status vklm_embedding_backward_range(vklm_cmd *cmd, vklm_buffer dwte, vklm_buffer dwpe,
                                          vklm_buffer plan, vklm_buffer dout, uint32_t B,
                                          uint32_t T, uint32_t C, uint32_t V, uint32_t v0,
                                          uint32_t v1);

/* dwte (V,C) += scatter of dout by token; dwpe (T,C) += sum over b of dout   (both ACCUMULATE)
 * dwpe may be {0} (no position table). plan: the buffer holding vklm_embedding_plan(tokens) for
 * the same batch (vklm_embedding_plan_size(B*T) int32). dout (B,T,C). */
vklm_status vklm_embedding_backward(vklm_cmd *cmd, vklm_buffer dwte, vklm_buffer dwpe,
                                    vklm_buffer plan, vklm_buffer dout, uint32_t B, uint32_t T,
                                    uint32_t C, uint32_t V);

/* ---- C references (wpe / dwpe may be NULL; tokens must be valid) -------------------------- */
void vklm_embedding_forward_ref(float *out, const int32_t *tokens, const float *wte,
                                const float *wpe, uint32_t B, uint32_t T, uint32_t C);
void vklm_embedding_backward_ref(float *dwte, float *dwpe, const float *dout,
                                 const int32_t *tokens, uint32_t B, uint32_t T, uint32_t C);

#endif

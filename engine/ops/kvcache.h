/* The kernels of the KV-cache path (generation), with C references: appending key/value heads to
 * a cache of several sequences, attention of new query rows against it, RoPE and learned
 * positions at per-row positions, and the GPU argmax.
 *
 * Rows. A pass over n rows carries a `rows` buffer of n (position, sequence slot) uint32 pairs:
 * row i is token number pos_i of the sequence in cache slot slot_i. The rows of one pass may
 * belong to different sequences (one decode step of a batch, or prefill chunks mixed with
 * decode), in any order; a sequence's own rows must be in increasing position order, and
 * attention of row i sees that sequence's cache rows [0, pos_i] (causal; the row's own key and
 * value are stored by vklm_kv_store earlier in the same pass). Everything reads the rows from the
 * buffer, so one recorded pass replays for any positions and sequences.
 *
 * Cache layout: per layer, K and V each (S*maxT, NKV, HS): sequence slot s at rows
 * s*maxT .. s*maxT+maxT-1, position p at row s*maxT + p. Element type fp32, or fp16 held with
 * 16-bit storage (vklm_caps.storage_16bit) and converted to fp32 for arithmetic (rounded to
 * nearest on store). S*maxT*NKV*HS must be < 2^32 elements.
 *
 * Does not: own memory, track which positions are valid (engine/infer does). */
#ifndef VKLM_OPS_KVCACHE_H
#define VKLM_OPS_KVCACHE_H

#include <stdint.h>

#include "tensor.h"
#include "vklm_runtime.h"

/* out (n, NH*HS) <- causal attention of n query rows (queries q (n, QS), head h at column h*HS)
 * against the cache kc, vc (S*maxT, NKV, HS) in kv_dt (F32 or F16). splits 0 or 1: one workgroup
 * per (head, row) walks all of the row's keys; splits > 1 (split-K, for few rows and long caches):
 * that many workgroups per (head, row) each take a contiguous slice of the keys into scratch
 * (vklm_attention_decode_scratch_bytes), then a second kernel merges the slices in a fixed
 * order. Passes of many rows (prefill: splits 1 and n >= VKLM_ATTENTION_PREFILL_ROWS) run a
 * tiled flash-attention kernel instead (attention_prefill_*.comp): a workgroup serves a block of
 * consecutive rows times the query heads of one KV head, each key/value tile loaded once for
 * all of them, so the cache is read about n/BQ times rather than n times; rows of different
 * sequences in one block are served slot by slot; CPU-type devices get a variant of their own
 * (attention_prefill_*_cpu.comp). Same results within rounding. On drivers that end shader loops
 * early (llvmpipe) the one-row kernel runs instead where the tiled kernels' loops over maxT keys
 * might pass the limit (vklm_attention_decode_choose). splits 0 keeps the one-row kernel for any
 * n: for passes known to hold one row per sequence (batched decode steps), where a tile's rows
 * would each need a pass of their own. Deterministic either way. HS <= 256. */
#define VKLM_ATTENTION_PREFILL_ROWS 16u
uint64_t vklm_attention_decode_scratch_bytes(uint32_t n, uint32_t NH, uint32_t HS,
                                             uint32_t splits);
vklm_status vklm_attention_decode(vklm_cmd *cmd, vklm_buffer out, vklm_buffer scratch,
                                  vklm_buffer q, vklm_buffer kc, vklm_buffer vc, vklm_dtype kv_dt,
                                  vklm_buffer rows, uint32_t n, uint32_t NH, uint32_t NKV,
                                  uint32_t HS, uint32_t QS, uint32_t S, uint32_t maxT,
                                  uint32_t splits);
/* The kernels vklm_attention_decode chooses from (vklm_attention_decode_choose): for n >=
 * VKLM_ATTENTION_PREFILL_ROWS rows and splits 1, on a context recording CPU-type kernels
 * (vklm_context_cpu_kernels) PREFILL_CPU where it fits, else PREFILL where it fits; otherwise
 * the one-row kernel, with subgroup reductions where the device has subgroup arithmetic and the
 * context records GPU kernels (on lavapipe they measured 5-10% slower than the shared-memory
 * tree), else with shared-memory ones.
 * vklm_attention_decode_ex records the one asked for (tests); it must fit
 * (vklm_attention_decode_fits: SUBGROUP needs subgroup arithmetic; PREFILL and PREFILL_CPU no
 * splits; PREFILL_CPU HS <= 64; both loops over maxT keys that llvmpipe does not cut short). */
typedef enum vklm_kv_attention_kernel {
  VKLM_KV_ATTENTION_AUTO = 0,
  VKLM_KV_ATTENTION_ROW_SHARED,   /* one workgroup per (heads, row): shared-memory reductions */
  VKLM_KV_ATTENTION_ROW_SUBGROUP, /* one workgroup per (heads, row): subgroup reductions */
  VKLM_KV_ATTENTION_PREFILL,      /* the tiled kernel (shared-memory tiles) */
  VKLM_KV_ATTENTION_PREFILL_CPU,  /* its CPU-type variant (rows in registers, no barrier) */
} vklm_kv_attention_kernel;
vklm_status vklm_attention_decode_ex(vklm_cmd *cmd, vklm_buffer out, vklm_buffer scratch,
                                     vklm_buffer q, vklm_buffer kc, vklm_buffer vc,
                                     vklm_dtype kv_dt, vklm_buffer rows, uint32_t n, uint32_t NH,
                                     uint32_t NKV, uint32_t HS, uint32_t QS, uint32_t S,
                                     uint32_t maxT, uint32_t splits,
                                     vklm_kv_attention_kernel kernel);
/* The kernel AUTO records for these sizes on this device, and whether a kernel can run them. */
int vklm_attention_decode_fits(const vklm_context *ctx, vklm_kv_attention_kernel kernel,
                               uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t S,
                               uint32_t maxT, uint32_t splits);
vklm_kv_attention_kernel vklm_attention_decode_choose(const vklm_context *ctx, uint32_t n,
                                                      uint32_t NH, uint32_t NKV, uint32_t HS,
                                                      uint32_t S, uint32_t maxT, uint32_t splits);
/* rows: n (pos, slot) pairs; kcache, vcache: fp32 (S*maxT, NKV, HS). */
void vklm_attention_decode_ref(float *out, const float *q, const float *kcache,
                               const float *vcache, const uint32_t *rows, uint32_t n, uint32_t NH,
                               uint32_t NKV, uint32_t HS, uint32_t QS, uint32_t maxT);
/* kc, vc (S*maxT, NKV, HS) in kv_dt, at each row's (slot, pos) <- the key and value heads of
 * qkv (n, QKV). Rows whose position or slot is out of range are skipped. */
vklm_status vklm_kv_store(vklm_cmd *cmd, vklm_buffer kc, vklm_buffer vc, vklm_dtype kv_dt,
                          vklm_buffer qkv, vklm_buffer rows, uint32_t n, uint32_t NH, uint32_t NKV,
                          uint32_t HS, uint32_t S, uint32_t maxT);
/* RoPE on qkv (n, QKV) at each row's position with a (maxT, HS) cos|sin table. */
vklm_status vklm_rope_cached(vklm_cmd *cmd, vklm_buffer qkv, vklm_buffer tab, vklm_buffer rows,
                             uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t maxT);
/* x (n, C) += wpe (maxT, C) at each row's position. */
vklm_status vklm_pos_add(vklm_cmd *cmd, vklm_buffer x, vklm_buffer wpe, vklm_buffer rows,
                         uint32_t n, uint32_t C, uint32_t maxT);
/* out (n) uint = per row, the argmax of x (n,V): the lowest index of the largest value. */
vklm_status vklm_argmax(vklm_cmd *cmd, vklm_buffer out, vklm_buffer x, uint32_t n, uint32_t V);
uint32_t vklm_argmax_ref(const float *x, uint32_t V);

#endif

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
 * against the cache kc, vc (S*maxT, NKV, HS) in kv_dt (F32 or F16). splits 1: one workgroup per
 * (head, row) walks all of the row's keys; splits > 1 (split-K, for few rows and long caches):
 * that many workgroups per (head, row) each take a contiguous slice of the keys into scratch
 * (vklm_attention_decode_scratch_bytes), then a second kernel merges the slices in a fixed
 * order. Deterministic either way. HS <= 256. */
uint64_t vklm_attention_decode_scratch_bytes(uint32_t n, uint32_t NH, uint32_t HS,
                                             uint32_t splits);
vklm_status vklm_attention_decode(vklm_cmd *cmd, vklm_buffer out, vklm_buffer scratch,
                                  vklm_buffer q, vklm_buffer kc, vklm_buffer vc, vklm_dtype kv_dt,
                                  vklm_buffer rows, uint32_t n, uint32_t NH, uint32_t NKV,
                                  uint32_t HS, uint32_t QS, uint32_t S, uint32_t maxT,
                                  uint32_t splits);
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

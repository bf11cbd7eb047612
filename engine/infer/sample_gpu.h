/* sample_gpu: sampling every row of a batch of logits on the GPU, so that only the chosen ids
 * (n int32) come back to the host instead of n*V floats.
 *
 * Semantics: exactly the host chain of sample.h (llama.cpp's order: repetition penalty, top-k,
 * top-p, min-p, temperature, draw; greedy when temp <= 0), each row with its own parameters,
 * penalty list and draw word (vklm_sample_row, filled by vklm_sampler_fill_row). The host
 * reference vklm_sample_rows_ref runs sample.c's chain on each row with the row's word.
 *
 * How: one workgroup per row (shaders/sample_rows_f32.comp). No sort: each cut-off (top-k's
 * k-th rank, top-p's mass, the draw's point) is a radix select over (logit key, id) with 8-bit
 * digits, counting tokens or summing their weights; surviving candidates are compacted into the
 * scratch between steps. Weights are exp computed from correctly rounded operations only (within
 * ~1 ulp of the true value; the host uses double) and summed exactly as 64-bit fixed-point
 * integers, so the GPU and the host can disagree only when u, top_p or min_p lies within about
 * 1e-7 (relative) of a boundary between two tokens; the GPU's result does not depend on the
 * device or the workgroup size. The penalty's division is correctly rounded (as the host's).
 *
 * Invariants: V < 2^20, n <= the device's x workgroup count; the rows, pen and scratch buffers
 * are the caller's and only scratch is written besides ids and logits. Parameters live in a
 * buffer, so a recorded command buffer replays each step after the host rewrites rows and pen.
 * Does not: keep history (the vklm_sampler does, on the host), or handle logits other than f32. */
#ifndef VKLM_INFER_SAMPLE_GPU_H
#define VKLM_INFER_SAMPLE_GPU_H

#include <stdint.h>

#include "sample.h"
#include "vklm_runtime.h"

/* Bytes of scratch vklm_sample_rows needs: n * V * 8. */
uint64_t vklm_sample_rows_scratch_bytes(uint32_t n, uint32_t V);

/* Records the sampling of n rows:
 *   ids     (n) int32, written: the chosen token of each row
 *   logits  (n, V) f32: each row's penalty is applied in place (the listed tokens only)
 *   rows    (n) vklm_sample_row
 *   pen     (n, max_pen) int32: row r's penalty list is pen[r*max_pen, +rows[r].n_pen), distinct
 *           ids (at least 4 bytes even when max_pen is 0)
 *   scratch vklm_sample_rows_scratch_bytes(n, V) bytes */
vklm_status vklm_sample_rows(vklm_cmd *cmd, vklm_buffer ids, vklm_buffer logits, vklm_buffer rows,
                             vklm_buffer pen, vklm_buffer scratch, uint32_t n, uint32_t V,
                             uint32_t max_pen);

/* The reference: vklm_sample_row_host on each row (logits penalised in place). */
void vklm_sample_rows_ref(int32_t *ids, float *logits, const vklm_sample_row *rows,
                          const int32_t *pen, uint32_t n, uint32_t V, uint32_t max_pen);

#endif

/* GPU sampling of a batch of rows (sample_gpu.h): shaders/sample_rows_f32.comp. */
#include "sample_gpu.h"

#include "ops/op_util.h"

_Static_assert(sizeof(vklm_sample_row) == 64, "sample_rows_f32.comp: struct Row is 16 words");

typedef struct rows_push {
  uint32_t n, V, max_pen, id_passes;
} rows_push;
_Static_assert(sizeof(rows_push) == 16, "sample_rows_f32.comp push constants");

#define HIST_BYTES (5u * 256u * 4u + 128u) /* the shader's histograms and shared scalars */

uint64_t vklm_sample_rows_scratch_bytes(uint32_t n, uint32_t V) { return (uint64_t)n * V * 8; }

vklm_status vklm_sample_rows(vklm_cmd *cmd, vklm_buffer ids, vklm_buffer logits, vklm_buffer rows,
                             vklm_buffer pen, vklm_buffer scratch, uint32_t n, uint32_t V,
                             uint32_t max_pen) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  const vklm_caps *caps = vklm_context_caps(ctx);
  VKLM_ASSERT(n >= 1 && V >= 1 && V < (1u << 20), "sample_rows: n=%u V=%u (V < 2^20)", n, V);
  VKLM_ASSERT(n <= caps->max_workgroup_count[0], "sample_rows: %u rows exceed the device's %u "
              "workgroups", n, caps->max_workgroup_count[0]);
  VKLM_ASSERT(ids.size >= (uint64_t)n * 4 && logits.size >= (uint64_t)n * V * 4 &&
              rows.size >= (uint64_t)n * sizeof(vklm_sample_row) &&
              pen.size >= (uint64_t)n * max_pen * 4 && pen.size >= 4,
              "sample_rows: ids, logits, rows or pen smaller than n=%u V=%u max_pen=%u", n, V,
              max_pen);
  VKLM_ASSERT(scratch.size >= vklm_sample_rows_scratch_bytes(n, V),
              "sample_rows: scratch of %llu bytes too small", (unsigned long long)scratch.size);
  uint32_t wg = vklm_op_wg_fit(ctx, 256, 0);
  while (wg > 64 && wg * 8 + HIST_BYTES > caps->max_shared_memory) wg /= 2;
  VKLM_ASSERT(wg >= 64 && wg * 8 + HIST_BYTES <= caps->max_shared_memory,
              "sample_rows: workgroup %u too small", wg);
  uint32_t bits = 0;
  while (bits < 32 && ((V - 1) >> bits) != 0) bits++;
  rows_push pc = {n, V, max_pen, (bits + 7) / 8};
  vklm_buffer b[5] = {ids, logits, rows, pen, scratch};
  return vklm_op_dispatch(cmd, "sample_rows_f32", &wg, 1, b, 5, &pc, sizeof pc, n, 1, 1);
}

void vklm_sample_rows_ref(int32_t *ids, float *logits, const vklm_sample_row *rows,
                          const int32_t *pen, uint32_t n, uint32_t V, uint32_t max_pen) {
  for (uint32_t r = 0; r < n; r++) {
    VKLM_ASSERT(rows[r].n_pen <= max_pen, "sample_rows_ref: row %u lists %u > %u ids", r,
                rows[r].n_pen, max_pen);
    ids[r] = vklm_sample_row_host(&rows[r], pen + (uint64_t)r * max_pen,
                                  logits + (uint64_t)r * V, V);
  }
}

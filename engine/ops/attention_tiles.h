/* Private to engine/ops: the tile choice of the flash-attention kernels (attention.c's training
 * kernels and kvcache.c's prefill kernel), sized from the device's shared memory and workgroup
 * limits. */
#ifndef VKLM_OPS_ATTENTION_TILES_H
#define VKLM_OPS_ATTENTION_TILES_H

#include "vklm_runtime.h"

/* Tiles of one kernel: NT threads serve BR rows of the workgroup's own block, RM rows per thread
 * (BR/RM row groups of TPR = NT/(BR/RM) threads), while tiles of BC rows of the other operand
 * stream through shared memory. */
typedef struct vklm_attn_tiles {
  uint32_t nt, br, bc, rm;
} vklm_attn_tiles;

/* Shared memory of a kernel, in floats: (a*BR + b*BC) rows of HS+1, e*BR score rows of BC+1 and
 * f*BC per-row values. Picks the largest BR (up to 64, no more than T needs) and then the largest
 * BC (32 down to 8, then down to 1 as a last resort) that fit the device's shared memory, with
 * up to 128 threads: enough rows per workgroup to reuse each key/value tile, and small register
 * tiles (RM rows x a few columns per thread) so that each shared-memory load feeds several FMAs.
 * Asserts when even BR = BC = 1 does not fit. */
vklm_attn_tiles vklm_attn_choose(const vklm_context *ctx, uint32_t T, uint32_t HS, uint32_t rm_max,
                                 uint32_t a, uint32_t b, uint32_t e, uint32_t f);

/* The CPU-type variants (vklm_context_cpu_kernels): an invocation per few query rows (forward,
 * dQ, the KV-cache prefill) or key rows (dK, dV; vklm_attn_cpu_rows), so that each load of the
 * other operand feeds several rows (llvmpipe loads every lane separately); rows of one head side
 * by side in workgroups of VKLM_ATTN_CPU_W invocations, no shared memory and no barrier; the
 * forward's online softmax rescales once per block of VKLM_ATTN_CPU_BK keys. */
#define VKLM_ATTN_CPU_W 16u
#define VKLM_ATTN_CPU_BK 16u
#define VKLM_ATTN_CPU_R 4u /* the most rows per invocation */
#define VKLM_ATTN_CPU_REGS 512u /* the most floats per invocation in its arrays of head-size rows */
/* Their loops over the head dimension are unrolled, and llvmpipe's compile time grows steeply
 * with the code (one-time, then Mesa's shader cache: about 2 s at HS = 16, 8 s at 64 and 10-45 s
 * at 128 on a loaded 2-core machine): larger heads run the GPU kernels. */
#define VKLM_ATTN_CPU_MAX_HS 64u

/* Loop iterations of one invocation of the CPU variants over `rows` rows of the other operand:
 * their loops over the head dimension and over their own rows are unrolled ([[unroll]], trip
 * counts from specialization constants; the T = 700, HS = 64 test would exceed llvmpipe's limit
 * otherwise), leaving the loops over keys (two per block in the forward) or query rows.
 * vklm_attn_cpu_loops(...) <= VKLM_CPU_LOOP_BUDGET or the GPU kernel runs (see op_util.h). */
uint64_t vklm_attn_cpu_loops(uint64_t rows);

/* Rows per invocation of a CPU variant that holds `arrays` arrays of R*HS floats (forward 2, dQ 3,
 * dK/dV 4): a power of two up to VKLM_ATTN_CPU_R within VKLM_ATTN_CPU_REGS floats. More rows feed
 * more FMAs per load, but past a few registers' worth llvmpipe's compile time grows steeply. */
uint32_t vklm_attn_cpu_rows(uint32_t HS, uint32_t arrays);

#endif

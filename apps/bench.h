/* The internals of the `vklm bench` commands that the benchmark card (apps/bench_card.c,
 * `vklm bench` / `vklm bench all`) reuses instead of copying: the GEMM timing of `bench ops`
 * (apps/cmd_bench.c), one training benchmark of `bench train` (apps/bench_train.c) and the
 * session timings of `bench infer` (apps/bench_infer.c). Each function is documented where it is
 * defined; this header only declares them and the types they share. */
#ifndef VKLM_APPS_BENCH_H
#define VKLM_APPS_BENCH_H

#include <stdint.h>

#include "dist/dist.h"
#include "infer/infer.h"
#include "model/model.h"
#include "ops/ops.h"

/* ---- apps/cmd_bench.c (bench ops) ---------------------------------------------------------- */
typedef struct mm_shape {
  const char *name;
  uint32_t M, N, K;
  int trans_a, trans_b;
} mm_shape;

typedef struct bench {
  vklm_context *ctx;
  vklm_arena *arena;
  vklm_cmd *cmd;
  double min_seconds; /* time budget per measurement */
} bench;

typedef vklm_status (*record_fn)(vklm_cmd *cmd, void *arg);

/* A GEMM whose B or C would exceed the largest bindable buffer is split along N into chunks. */
#define MAX_CHUNKS 16
typedef struct mm_arg {
  vklm_buffer a, b[MAX_CHUNKS], c[MAX_CHUNKS];
  vklm_gemm g[MAX_CHUNKS];
  int nchunks;
  int kind; /* 0 tiled fp32 (or the CPU-type variant, by the context's kernel family),
               1 fp16 storage (tiled), 2 naive, 3 cooperative matrices (fp16),
               4 tiled fp32 with the chosen tile double-buffered (bench_dbuf_fits says where),
               5 split-K fp32 (vklm_matmul_splitk: `splits` slices in `scratch`; one chunk),
               6 tiled fp32 with the chosen tile and scalar loads (novec) */
  uint32_t splits;
  vklm_buffer scratch;
} mm_arg;
/* Whether the tile vklm_matmul_config_choose picks for g can run double-buffered here. */
int bench_dbuf_fits(vklm_context *ctx, const vklm_gemm *g);

/* The GEMMs of GPT-2 124M (C 768, MLP 3072, V 50257) at T rows: qkv, attention projection, MLP
 * fc and proj, the LM head, and the MLP fc's weight gradient; fills out[0..BENCH_GPT2_SHAPES). */
#define BENCH_GPT2_SHAPES 6
void bench_gpt2_shapes(uint32_t T, mm_shape *out);

/* Seconds per repetition of rec(cmd, arg) (recorded repeatedly into b->cmd), or -1 with the error
 * printed. */
double time_recorded(bench *b, record_fn rec, void *arg);
/* Allocates (b->arena, reset first) and fills the operands of sh; 0, or -1 with the error printed. */
int mm_setup(bench *b, const mm_shape *sh, mm_arg *m);
vklm_status rec_mm(vklm_cmd *cmd, void *m); /* a record_fn over an mm_arg */

/* ---- apps/bench_train.c (bench train) ------------------------------------------------------ */
typedef struct train_result {
  double ms_step, tok_s, mfu, peak_mem, flops_tok, loss0, loss1;
  uint32_t dispatches, barriers; /* per step, as recorded */
  double submits;                /* queue submissions per step (each a host round trip) */
  uint64_t params;
  /* data parallel (d's size > 1) */
  double alone_tok_s;    /* rank 0 alone, the others idle */
  double total_tok_s;    /* all ranks: ranks x B x T / the slowest rank's time per step */
  double *rank_tok_s;    /* owned: each rank's B x T / its time per step */
  vklm_overlap_stats overlap; /* the last step's reduction, part by part during the backward */
} train_result;

/* `steps` timed training steps of preset `name` at (B,T) on a fresh context (d NULL: one
 * process); MFU against peak_gflops; mo: the model's options (NULL: defaults). 0, or -1 with the
 * error printed. */
int bench_one(const vklm_config *cfg, const char *name, uint32_t B, uint32_t T, uint32_t steps,
              double peak_gflops, const vklm_model_options *mo, vklm_dist *d,
              train_result *r);

/* ---- apps/bench_infer.c (bench infer) ------------------------------------------------------ */
typedef struct rnd_src {
  vklm_dtype type; /* of the linear weights */
  uint64_t seed;
  void **bufs; /* owned: every tensor handed out (vklm_infer_create reads them before it returns) */
  uint32_t nbufs, cap;
  uint32_t fallback; /* matrices stored as F16 because K % 32 != 0 */
  uint64_t weight_bytes;
} rnd_src;

/* vklm_infer_create's tensor callback for random weights of type r->type; rnd_free frees them. */
vklm_status rnd_get(void *user, const vklm_param_info *info, vklm_model_tensor *out, char *err,
                    size_t errlen);
void rnd_free(rnd_src *r);
/* Mean seconds per prefill of n tokens; seconds per decoded token after ctxlen tokens (with the
 * queue submissions per token); seconds per step of nb sequences decoded together. -1 on error
 * (printed). */
double time_prefill(vklm_infer *s, const int32_t *tok, uint32_t n, double seconds);
double time_decode(vklm_infer *s, const int32_t *tok, uint32_t ctxlen, uint32_t nd,
                   double *submits);
double time_batch(vklm_infer *s, const int32_t *tok, uint32_t nb, uint32_t bctx, uint32_t nd);

#endif

/* graph: the ONE forward pass of the decoder transformer, recorded into a command buffer, for
 * every mode the engine runs a model in. Private to engine/model and engine/infer (which records
 * generation steps with it).
 *
 * A pass runs the embedding and the L pre-norm blocks over n rows and leaves the last residual
 * stream (n, C); the final norm and the heads are separate calls, so a caller norms and projects
 * only the rows it needs. Two kinds of pass differ only in where a row's position comes from and
 * what its attention reads:
 *   SEQ  B whole sequences of T rows (row b*T + t is position t of sequence b): training (with
 *        activations saved per layer for the backward), evaluation and scoring (one shared set
 *        of activations). Attention over the sequence itself (causal, or bidirectional for MLM),
 *        RoPE and learned positions from t.
 *   KV   n independent rows, row i at (position, sequence slot) from `rows` (kvcache.h): the
 *        rows' keys and values are stored into a KV cache and each row attends to its
 *        sequence's cached rows [0, pos]. Prefill, decode and continuous batching are all this.
 * Everything else — norms, projections, MLP, residuals, the weights and their dtypes — is one
 * code path, so an architecture change is made once.
 *
 * Owns nothing: buffers come from the caller, weights from the model (borrowed). */
#ifndef VKLM_MODEL_GRAPH_H
#define VKLM_MODEL_GRAPH_H

#include <stdarg.h>

#include "model.h"
#include "model_params.h"
#include "ops/tensor.h"

/* The activations of one layer for n rows (tensors over the caller's buffers). ln*_mean and
 * lse are only used by GPT-2's LayerNorm and by SEQ attention respectively. */
/* Under mixed-precision training ln1, ln2 and act are F16 / BF16 (vklm_graph_acts_plan);
 * the ops that write and read them take either. */
typedef struct vklm_layer_acts {
  vklm_tensor ln1, ln1_mean, ln1_rstd; /* (n,C), (n), (n) */
  vklm_tensor qkv;                     /* (n,QKV), after RoPE */
  vklm_tensor atty;                    /* (n,C) */
  vklm_tensor lse;                     /* (B,NH,T) (SEQ) */
  vklm_tensor res2;                    /* (n,C) residual after attention */
  vklm_tensor ln2, ln2_mean, ln2_rstd; /* (n,C), (n), (n) */
  vklm_tensor fch;                     /* (n,FC) MLP pre-activation */
  vklm_tensor act;                     /* (n,F) post-activation */
  vklm_tensor res3;                    /* (n,C) residual after the MLP: the layer's output */
} vklm_layer_acts;

/* A KV cache for S sequences of up to maxT positions (kvcache.h's layout): per layer a K and a V
 * tensor (S*maxT, NKV, HS) in F32 or F16, and RoPE's (maxT, HS) cos|sin table (Llama). */
typedef struct vklm_kv_cache {
  uint32_t S, maxT;
  vklm_tensor *k, *v; /* L each (borrowed arrays) */
  vklm_tensor rope;   /* none for GPT-2 */
} vklm_kv_cache;

typedef enum vklm_pass_kind { VKLM_PASS_SEQ = 0, VKLM_PASS_KV = 1 } vklm_pass_kind;

typedef struct vklm_pass {
  vklm_pass_kind kind;
  uint32_t n;             /* rows */
  uint32_t B, T;          /* SEQ: n = B*T */
  int causal;             /* SEQ: causal (1) or bidirectional (0) attention */
  vklm_tensor tokens;     /* (B,T) I32 (KV: (1,n)) */
  vklm_tensor x0;         /* (n,C) the embedding's output */
  vklm_layer_acts *la;    /* nla sets: L (saved for the backward) or 1 (shared by all layers) */
  uint32_t nla;
  vklm_tensor tmp;        /* (n,C) projection outputs before the residual add */
  /* optional (none: the caller norms what it needs): the final norm of all n rows into lnf
   * (n,C) with its statistics, fused with the last layer's residual add (training's pass) */
  vklm_tensor lnf, lnf_mean, lnf_rstd;
  /* KV only */
  vklm_tensor rows;       /* (n,2) I32: (position, sequence slot) per row */
  const vklm_kv_cache *kv;
  vklm_buffer ascratch;   /* vklm_attention_decode_scratch_bytes(n, NH, HS, splits) */
  uint32_t splits;        /* split-K slices of the attention (1: none; 0: none and the one-row
                           * kernel whatever n, for one row per sequence: kvcache.h) */
} vklm_pass;

/* Records the pass; *out receives the last residual stream (n,C) (one of p's buffers). */
vklm_status vklm_graph_forward(struct vklm_model *m, vklm_cmd *cmd, const vklm_pass *p,
                               vklm_tensor *out);
/* out (n,C) = norm w/b of layer l (LayerNorm for GPT-2, RMSNorm for Llama, b then unused) of in
 * (n,C), with its statistics into mean (GPT-2) and rstd: the blocks' norms (and their
 * recomputation in the backward, options.recompute). */
vklm_status vklm_graph_norm(struct vklm_model *m, vklm_cmd *cmd, vklm_tensor out,
                            vklm_tensor mean, vklm_tensor rstd, vklm_tensor in, vklm_param_id w,
                            vklm_param_id b, uint32_t l);
/* out (n,C) = the final norm of x (n,C); mean (n) is GPT-2's (may be unused by Llama). */
vklm_status vklm_graph_final_norm(struct vklm_model *m, vklm_cmd *cmd, vklm_tensor out,
                                  vklm_tensor mean, vklm_tensor rstd, vklm_tensor x);
/* logits (n,V) = h (n,C) @ head^T, the head (tied wte or lm_head, any dtype) in vocabulary
 * chunks, each writing its column block. */
vklm_status vklm_graph_logits(struct vklm_model *m, vklm_cmd *cmd, vklm_tensor logits,
                              vklm_tensor h);
/* values (n) = h (n,C) @ score.weight^T + score.bias (cfg.scalar_head). */
vklm_status vklm_graph_values(struct vklm_model *m, vklm_cmd *cmd, vklm_tensor values,
                              vklm_tensor h);

/* The activations of one layer for a pass, allocated through a planner (below). share (may be
 * NULL): take its ln1, ln2 and act instead of allocating them (recomputation: one buffer of
 * each for every layer, refilled in the backward). prec: the dtype of the activations that are
 * GEMM inputs saved for the backward — ln1, ln2, the attention output atty (with an even head
 * size) and the MLP activation act — and of the outputs of the qkv layer (qkv, with an even
 * head size) and the fc layer (fch: the GELU's pre-activation, or SwiGLU's gate|up), F32, or
 * F16 / BF16 for mixed-precision training (a SEQ pass; a KV pass keeps F32 whatever prec says);
 * everything else (the residual stream, statistics, lse) is F32. */
typedef struct vklm_planner vklm_planner;
vklm_status vklm_graph_acts_plan(vklm_planner *pl, int arena, const vklm_model_config *cfg,
                                 uint32_t B, uint32_t T, int kv, vklm_dtype prec,
                                 const char *what, uint32_t l, const vklm_layer_acts *share,
                                 vklm_layer_acts *out);

/* ---- allocation planning: one walk serves the size estimate (dry) and the allocation ------- */
#define VKLM_PLAN_ARENAS 7
struct vklm_planner {
  vklm_context *ctx;            /* NULL for a dry run without a device */
  vklm_arena *arena[VKLM_PLAN_ARENAS];
  int dry;
  uint32_t align;
  uint64_t total, arena_bytes[VKLM_PLAN_ARENAS];
  uint64_t biggest;
  char biggest_name[96];
  char err[512];
};
/* Takes bytes (0 becomes 4) from arena k (or only counts them when dry); the name (printf) says
 * what failed or what was biggest. */
vklm_status vklm_plan_take(vklm_planner *pl, int k, uint64_t bytes, vklm_buffer *out,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif

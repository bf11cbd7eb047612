/* Private to engine/model: the model object shared by model.c (create, parameters), graph.c (the
 * forward pass), model_head.c (heads, losses, log-probs), model_backward.c and model_step.c
 * (recording and replay). */
#ifndef VKLM_MODEL_INTERNAL_H
#define VKLM_MODEL_INTERNAL_H

#include <stdarg.h>

#include "graph.h"
#include "model.h"
#include "model_params.h"
#include "ops/norm.h"

/* Arenas: A_HOST is host-visible memory for what the host writes or reads every call (the
 * batch's tokens, targets, embedding plan, loss scales and masks, the loss, the sequence sums,
 * the AdamW step values and the gradient norm): uploads and read-backs through the mapping, no
 * staged copy, so a training step costs its two submissions (pass, update) and nothing more. */
/* A_PARAM, A_GRAD, A_OPT (AdamW's m) and A_VEL (its v) hold the trainable tensors in the same
 * order and sizes, so where a device's binding limit cuts an arena into blocks, the four cut at
 * the same tensors and the multi-tensor update needs one dispatch per block, not one per
 * combination of blocks; the 16-bit weight copies of mixed precision have their own (A_HALF). */
enum { A_PARAM, A_GRAD, A_OPT, A_ACT, A_HOST, A_VEL, A_HALF, A_COUNT };

/* The (B,T) workspace: inputs, the saved (trainable) or shared (frozen) activations, the heads'
 * buffers and, when trainable, the backward's temporaries. */
typedef struct vklm_workspace {
  vklm_layer_acts *la;                /* owned array: L (trainable) or 1 (frozen) */
  uint32_t nla;
  vklm_tensor tokens;                 /* (B,T) I32 */
  vklm_tensor targets;                /* (BT) I32 */
  vklm_tensor plan;                   /* the embedding's bucket plan, I32 */
  vklm_tensor encoded;                /* (BT,C) embedding output */
  vklm_tensor lnf, lnf_mean, lnf_rstd; /* (BT,C), (BT), (BT) */
  vklm_tensor logits;                 /* (R,V): one chunk of rows; dlogits in place */
  vklm_tensor losses;                 /* (BT) per-row losses (= -log p), host-visible: the host
                                         takes their mean (vklm_model_read_loss) */
  vklm_tensor rscale;                 /* (BT) per-row loss scales of the backward */
  vklm_tensor rmask;                  /* (B,T) -mask: per-sequence sums of -losses = log-probs */
  vklm_tensor seq;                    /* (B) per-sequence log-probs */
  vklm_tensor values, dvalues;        /* (BT) scalar head, (BT,1) its gradient */
  vklm_tensor tmp;                    /* (BT,C) projection output before the residual add */
  /* backward temporaries (trainable only; shared by all layers) */
  vklm_tensor dres, dln, datty;       /* (BT,C) */
  vklm_tensor dqkv, dact, dfch;       /* (BT,QKV), (BT,F) (Llama only), (BT,FC) */
  vklm_buffer scratch;                /* attention backward scratch (raw bytes) */
  /* the norms' parameter gradients (trainable only), norm k = 2l (ln1 of layer l), 2l+1 (ln2),
   * 2L (the final norm): each norm's backward writes its partial sums into npart[k] and leaves
   * npend[k] (recording); each backward part ends with one vklm_norm_grads_reduce of the norms
   * it covered, its table entries at their norms' indices in ntable (norm.h) */
  vklm_buffer *npart;                 /* owned, 2L+1 (vklm_norm_partials_bytes each) */
  vklm_norm_grads *npend;             /* owned, 2L+1 */
  vklm_buffer ntable;                 /* 2L+1 entries */
} vklm_workspace;

/* Recorded command buffers: index by what they compute. */
enum {
  CMD_RUN_LM,    /* forward + LM head losses (+ values, seq sums) */
  CMD_RUN_NOLM,  /* forward (+ values), no LM head */
  CMD_FB,        /* forward + mean-loss LM head with gradients + backward (training step) */
  CMD_BWD_TOK,   /* LM head with per-row scales + backward */
  CMD_BWD_VAL,   /* scalar head backward + backward */
  CMD_BWD_BOTH,  /* both heads + backward */
  CMD_UPDATE,    /* gradient norm + AdamW + zeroed gradients */
  CMD_ZERO,      /* zeroed gradients */
  CMD_COUNT
};

struct vklm_model {
  /* borrowed */
  vklm_context *ctx;
  /* config */
  vklm_model_config cfg;
  uint32_t B, T;
  vklm_objective obj;
  /* the table */
  uint32_t ntensors;
  vklm_param_info *info;        /* owned, ntensors */
  uint8_t *init, *pid;          /* owned, ntensors */
  uint8_t *trains;              /* owned, ntensors: the tensor trains */
  vklm_dtype *dtype;            /* owned, ntensors: how it is held on the device */
  uint32_t first[VKLM_P_COUNT]; /* tensor index of id at layer 0, UINT32_MAX when absent */
  uint32_t layer_stride;        /* present per-layer tensors */
  uint64_t nparams;
  int trainable;                /* some tensor trains: gradients and moments exist */
  int no_moments;               /* options.no_moments: trainable, but no AdamW moments */
  int lowest_layer;             /* the backward goes down to this layer (-1: the embeddings) */
  int recompute;                /* options.recompute: ln1, ln2 and act are one shared buffer each,
                                   recomputed per layer in the backward (model_backward.c) */
  /* Storage slots: tensor i is stored as slots slot_of[i] .. slot_of[i+1]-1, one buffer each
   * (of parameters, gradients and both moments). A (V,C) vocabulary matrix (wte, lm_head) larger
   * than the largest bindable buffer is split into row chunks of vrows rows (nvchunks slots, the
   * last one possibly shorter); every other tensor is one slot. The flat vector and the table do
   * not see the split: slot s holds floats slot_off[s] .. + slot_count[s] of the flat vector. */
  uint32_t nslots;
  uint32_t *slot_of;              /* owned, ntensors + 1 */
  uint64_t *slot_off;             /* owned, nslots */
  uint32_t *slot_count;           /* owned, nslots (elements) */
  uint32_t vrows, nvchunks;       /* rows per vocabulary chunk, chunks (1: not split) */
  /* owned arenas and the buffers in them */
  vklm_arena *arena[A_COUNT];     /* NULL when unused (a frozen model has no A_GRAD, A_OPT) */
  vklm_buffer *p, *g, *mom, *vel; /* owned arrays of nslots views; g/mom/vel {0} when frozen */
  /* Mixed precision (options.precision F16 / BF16): the linear layers' weights (and a tied wte,
   * as the LM head) have a 16-bit copy h[s] in A_PARAM that every GEMM reads (vklm_model_w and
   * vklm_model_headchunk return it); p stays the fp32 master that AdamW updates, writing h in
   * the same pass, and set_params refreshes h. prec F32: no copies (h all {0}). */
  vklm_dtype prec;
  vklm_buffer *h;                 /* owned, nslots */
  float loss_scale;               /* S (1 unless F16): see vklm_model_set_loss_scale */
  uint32_t *tslots;               /* owned: the trainable slots, ntslots of them */
  uint32_t ntslots;
  uint32_t *tcount;               /* owned, ntslots: their element counts */
  vklm_buffer *tg;                /* owned, ntslots: their gradient buffers */
  /* the (B,T) workspace (B = 0: none) */
  vklm_workspace w;
  uint32_t lrows, nchunks;        /* R rows per logits chunk (a multiple of 64 or BT) */
  float lscale;                   /* the (B,T) heads' logits are lscale * h W^T (options) */
  float *host_f;                  /* owned, BT floats of upload scratch */
  vklm_buffer step_buf, norm_buf, norm_scratch; /* vklm_adamw_step, (4), grad-norm partials */
  /* recorded command buffers */
  vklm_cmd *cmd[CMD_COUNT];
  uint8_t recorded[CMD_COUNT];
  float upd_clip;
  /* the training pass in parts (model_overlap.c; created on first use): parts[k] records the
   * forward, the heads and the top layers' backward (k = 0), then lower layer groups, the
   * embeddings with the last; after part k the gradients of flat [part_lo[k], nparams) are final.
   * Where a gradient buffer is not mapped, each part copies its finished gradients into rb[slot]
   * (host-visible, rb_arena) for the host to read while later parts run. */
  vklm_cmd **parts;               /* owned, nparts */
  uint64_t *part_lo;              /* owned, nparts */
  uint32_t nparts;
  vklm_arena *rb_arena;           /* owned; NULL when every gradient is mapped */
  vklm_buffer *rb;                /* owned, nslots ({0}: read the gradient directly) */
  /* The pipelined training step (model.h: vklm_model_train_step_stage / _submit / _wait): the
   * staged batch in host memory (checked, with its embedding plan), copied into A_HOST at
   * submit, so the host prepares step n+1 while step n runs; flight: a submitted step not yet
   * waited for; fl_ready: its loss and norm, read when something waited for it (settle). */
  int32_t *st_tok, *st_tg, *st_plan; /* owned, BT, BT, the plan's size */
  float st_scale;
  int staged, flight, fl_ready;
  float fl_loss, fl_norm;
  int have_logits;  /* the last run left the logits of its single chunk in w.logits */
  int have_run;     /* a vklm_model_run with activations for vklm_model_backward */
  int run_had_lm;
  char err[512];
};

/* Index of tensor id at layer l (l ignored outside section 1); UINT32_MAX when absent. */
uint32_t vklm_model_index(const vklm_model *m, vklm_param_id id, uint32_t l);
/* Parameter / gradient of tensor id at layer l as a tensor (none when absent, or for a gradient
 * when the tensor does not train); for a linear layer's weight under mixed precision, the 16-bit
 * copy the GEMMs read. The tensor must be one slot (not a split vocabulary matrix:
 * use the chunk functions for WTE, LM_HEAD). */
vklm_tensor vklm_model_w(const vklm_model *m, vklm_param_id id, uint32_t l);
vklm_tensor vklm_model_gw(const vklm_model *m, vklm_param_id id, uint32_t l);
/* Chunk k < m->nvchunks of the vocabulary matrix id (VKLM_P_WTE or VKLM_P_LM_HEAD): its
 * parameters / gradient (v1-v0, C) for the rows [*v0, *v1) it holds (gradient: none when the
 * tensor does not train). */
vklm_tensor vklm_model_wchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1);
vklm_tensor vklm_model_gchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1);
/* Chunk k of the LM head's weights as the GEMMs read them (the 16-bit copy under mixed
 * precision, else as vklm_model_wchunk). */
vklm_tensor vklm_model_headchunk(const vklm_model *m, uint32_t k, uint32_t *v0, uint32_t *v1);
/* The head's parameter id: WTE when tied, else LM_HEAD. */
vklm_param_id vklm_model_head_id(const vklm_model *m);
/* Rows per vocabulary chunk: every (V,C) chunk buffer within max_bytes (0: no limit). */
uint32_t vklm_model_vocab_rows(const vklm_model_config *cfg, uint64_t max_bytes);
/* Formats into m->err and returns st. */
vklm_status vklm_model_fail(vklm_model *m, vklm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records call; a failure returns from the caller with a message naming the call. */
#define VKLM_MODEL_TRY(m, call)                                                                    \
  do {                                                                                             \
    vklm_status st_ = (call);                                                                      \
    if (st_ != VKLM_OK)                                                                            \
      return vklm_model_fail(m, st_, "model: recording %s failed: %s", #call,                     \
                             vklm_context_error((m)->ctx));                                        \
  } while (0)

/* Recording (model_head.c, model_backward.c), between begin and end of cmd.
 * forward: the graph over the workspace (SEQ), then the final norm into w.lnf.
 * lm_head: per chunk of R rows, the logits and the per-row losses; with_grad, also dlogits (in
 * place, scaled per row by w.rscale) and their backward (w.dln rows overwritten or, with
 * accumulate, added to; the head's weight gradient accumulated); then the mean loss into w.loss
 * and the per-sequence sums into w.seq.
 * values: the scalar head into w.values; values_backward: dln (over)written from w.dvalues.
 * backward: from w.dln (the final norm's output gradient) down to the embeddings. */
vklm_status vklm_model_record_forward(vklm_model *m, vklm_cmd *cmd);
vklm_status vklm_model_record_lm_head(vklm_model *m, vklm_cmd *cmd, int with_grad,
                                      int accumulate);
vklm_status vklm_model_record_values(vklm_model *m, vklm_cmd *cmd);
vklm_status vklm_model_record_values_backward(vklm_model *m, vklm_cmd *cmd);
/* The inputs of a training pass (model_step.c): the batch checked and uploaded, the per-row loss
 * scales grad_scale / (targets not ignored); then CMD_FB or the overlapped parts run it. */
vklm_status vklm_model_fb_prepare(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                                  float grad_scale);
/* The mean of the last pass's per-row losses over the rows whose target is not ignored (0 when
 * none), in double from the host-visible losses and targets: no dispatch of its own. */
vklm_status vklm_model_read_loss(vklm_model *m, float *loss);
/* Waits for a submitted training step still in flight and keeps its loss and norm for
 * vklm_model_train_step_wait; every call that reads or writes the model's memory or runs its
 * passes calls it first, so nothing overlaps the step but host work. */
vklm_status vklm_model_settle(vklm_model *m);
/* Frees the parts of the overlapped training pass (model_overlap.c); accepts none made. */
void vklm_model_parts_free(vklm_model *m);
/* Part of the backward: with top, the final norm's (dres zeroed first); then layers hi-1 down to
 * lo; with embed, the embeddings. The whole backward is top, [lowest, L), embed (when they
 * train): vklm_model_record_backward. */
vklm_status vklm_model_record_backward_part(vklm_model *m, vklm_cmd *cmd, int top, uint32_t hi,
                                            uint32_t lo, int embed);
vklm_status vklm_model_record_backward(vklm_model *m, vklm_cmd *cmd);
/* Rows per logits chunk for (cfg, B, T): want (0: automatic, at most 256 MiB of logits and the
 * largest bindable range max_range) rounded to a multiple of 64, or B*T when that is less. */
uint32_t vklm_model_logits_rows(const vklm_model_config *cfg, uint32_t B, uint32_t T,
                                uint32_t want, uint64_t max_range);

#endif

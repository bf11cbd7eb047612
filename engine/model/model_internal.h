/* Private to engine/model: the model object shared by model.c (create, parameters),
 * model_forward.c, model_backward.c and model_step.c (recording and replay). */
#ifndef VKLM_MODEL_INTERNAL_H
#define VKLM_MODEL_INTERNAL_H

#include <stdarg.h>

#include "model.h"
#include "model_params.h"

/* Activations saved for the backward, one set per layer. */
typedef struct vklm_layer_acts {
  vklm_buffer ln1, ln1_mean, ln1_rstd; /* (BT,C), (BT), (BT) */
  vklm_buffer qkv;                     /* (BT,QKV), after RoPE */
  vklm_buffer atty;                    /* (BT,C) */
  vklm_buffer lse;                     /* (B,NH,T) */
  vklm_buffer res2;                    /* (BT,C) residual after attention */
  vklm_buffer ln2, ln2_mean, ln2_rstd; /* (BT,C), (BT), (BT) */
  vklm_buffer fch;                     /* (BT,FC) pre-activation */
  vklm_buffer act;                     /* (BT,F) post-activation */
  vklm_buffer res3;                    /* (BT,C) residual after the MLP: the layer's output */
} vklm_layer_acts;

struct vklm_model {
  /* borrowed */
  vklm_context *ctx;
  /* config */
  vklm_model_config cfg;
  uint32_t B, T;
  vklm_objective obj;
  /* the table */
  uint32_t ntensors;
  vklm_param_info *info; /* owned, ntensors */
  uint8_t *init, *pid;   /* owned, ntensors */
  uint32_t first[VKLM_P_COUNT]; /* tensor index of id at layer 0, UINT32_MAX when absent */
  uint32_t layer_stride;        /* present per-layer tensors */
  uint64_t nparams;
  /* Storage slots: tensor i is stored as slots slot_of[i] .. slot_of[i+1]-1, one buffer each
   * (of parameters, gradients and both moments). A (V,C) vocabulary matrix (wte, lm_head) larger
   * than the largest bindable buffer is split into row chunks of vrows rows (nvchunks slots, the
   * last one possibly shorter); every other tensor is one slot. The flat vector and the table do
   * not see the split: slot s holds floats slot_off[s] .. + slot_count[s] of the flat vector. */
  uint32_t nslots;
  uint32_t *slot_of;              /* owned, ntensors + 1 */
  uint64_t *slot_off;             /* owned, nslots */
  uint32_t *slot_count;           /* owned, nslots */
  uint32_t vrows, nvchunks;       /* rows per vocabulary chunk, chunks (1: not split) */
  /* owned arenas and the buffers in them */
  vklm_arena *a_param, *a_grad, *a_opt, *a_act;
  vklm_buffer *p, *g, *mom, *vel; /* owned arrays of nslots views */
  vklm_layer_acts *la;            /* owned, L */
  vklm_buffer tokens, targets, plan;  /* (BT) int32, (BT) int32, plan int32 */
  vklm_buffer encoded;                /* (BT,C) embedding output */
  vklm_buffer lnf, lnf_mean, lnf_rstd;
  vklm_buffer logits;                 /* (R,V): one chunk of rows; dlogits in place */
  uint32_t lrows, nchunks;            /* R rows per logits chunk (a multiple of 64 or BT) */
  vklm_buffer chunk_scale;            /* nchunks slots of scale_stride bytes: [_, ratio] */
  uint32_t scale_stride;
  float *host_scale;                  /* owned, 2 * nchunks */
  vklm_buffer losses, dloss, loss;    /* (BT), (1), (1) */
  vklm_buffer tmp;                    /* (BT,C) projection output before the residual add */
  /* backward temporaries (shared by all layers) */
  vklm_buffer dres;                   /* (BT,C) residual-stream gradient */
  vklm_buffer dln;                    /* (BT,C) */
  vklm_buffer datty;                  /* (BT,C) */
  vklm_buffer dqkv;                   /* (BT,QKV) */
  vklm_buffer dact, dfch;             /* (BT,F), (BT,FC) */
  vklm_buffer scratch;                /* norm / attention backward scratch */
  vklm_buffer step_buf, norm_buf, norm_scratch; /* vklm_adamw_step, (2), grad-norm partials */
  /* recorded command buffers */
  vklm_cmd *c_fwd, *c_fb, *c_upd, *c_zero;
  int fwd_rec, fb_rec, upd_rec, zero_rec;
  float fb_scale, upd_clip;
  int have_logits; /* the last run left logits (not dlogits) in m->logits */
  char err[512];
};

/* Buffer of parameter id at layer l (l ignored outside section 1); {0} when absent. The tensor
 * must be one slot (not a split vocabulary matrix: use the chunk functions for WTE, LM_HEAD). */
vklm_buffer vklm_model_pbuf(const vklm_model *m, vklm_param_id id, uint32_t l);
vklm_buffer vklm_model_gbuf(const vklm_model *m, vklm_param_id id, uint32_t l);
/* Chunk k < m->nvchunks of the vocabulary matrix id (VKLM_P_WTE or VKLM_P_LM_HEAD): its
 * parameters / gradient (v1-v0, C) for the rows [*v0, *v1) it holds. */
vklm_buffer vklm_model_pchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1);
vklm_buffer vklm_model_gchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1);
/* Rows per vocabulary chunk: every (V,C) chunk buffer within max_bytes (0: no limit). */
uint32_t vklm_model_vocab_rows(const vklm_model_config *cfg, uint64_t max_bytes);
/* Formats into m->err and returns st. */
vklm_status vklm_model_fail(vklm_model *m, vklm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record into cmd (between begin and end). forward: embedding to the final norm (m->lnf).
 * head: per chunk of R rows, the lm head's logits and the cross-entropy losses; with_grad, also
 * dlogits (in place, rescaled from the chunk's count to the batch's: m->chunk_scale) and their
 * backward (dln rows overwritten, the head's weight gradient accumulated); then the mean loss
 * into m->loss. backward: from dln (the lnf output's gradient) down to the embeddings. */
vklm_status vklm_model_record_forward(vklm_model *m, vklm_cmd *cmd);
vklm_status vklm_model_record_head(vklm_model *m, vklm_cmd *cmd, int with_grad, float grad_scale);
vklm_status vklm_model_record_backward(vklm_model *m, vklm_cmd *cmd);
/* Rows per logits chunk for (cfg, B, T): want (0: automatic, at most 256 MiB of logits and the
 * largest bindable range max_range) rounded to a multiple of 64, or B*T when that is less. */
uint32_t vklm_model_logits_rows(const vklm_model_config *cfg, uint32_t B, uint32_t T,
                                uint32_t want, uint64_t max_range);

#endif

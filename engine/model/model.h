/* The decoder transformer: one model covering GPT-2 style (learned positions, LayerNorm with bias,
 * GELU MLP, tied input/output embeddings) and Llama style (RoPE, RMSNorm, SwiGLU MLP, grouped-
 * query attention, untied output, no biases), trained end to end on the GPU.
 *
 * Owns: the parameters, gradients and AdamW moments (each one buffer per arena block, laid out
 * by the parameter table in model_params.h, an X-macro that also drives checkpoint I/O and the
 * tests), the activations for a fixed (B,T), and the recorded command buffers of the training
 * step, which are recorded once and replayed: per-step values (learning rate, step number) live
 * in a small GPU buffer, and the tokens are uploaded into fixed buffers before each replay.
 *
 * Limits: a buffer cannot exceed the device's maxStorageBufferRange, so the two tensors that grow
 * with the vocabulary are split. The (V,C) vocabulary matrices (wte, an untied lm_head) are
 * stored as row chunks (vocabulary ranges, each one buffer within the limit, with their
 * gradients and AdamW moments alike: GPT-2's 147 MiB wte becomes two chunks under 128 MiB
 * limits); the embedding and the lm head run chunk by chunk in a fixed order, so the results are
 * deterministic. The split is an allocation detail: the parameter table, the flat vectors (get /
 * set), checkpoints and export see whole tensors. The logits are never stored whole: the lm head
 * and the cross-entropy run over chunks of rows (vklm_model_options), so no (B,T,V) buffer
 * exists. Every other tensor and (B,T,*) activation must fit in one buffer; creation fails with a
 * message naming the tensor and the limit otherwise.
 *
 * Objectives: next-token prediction (causal attention), and masked language modelling
 * (bidirectional attention; vklm_mlm_mask chooses 15% of positions, 80/10/10 mask/random/keep,
 * and the loss covers the chosen positions only).
 *
 * Does not: read data files, schedule the learning rate, or print; engine/train does that. */
#ifndef VKLM_MODEL_H
#define VKLM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

#define VKLM_IGNORE_INDEX (-100)

typedef enum vklm_arch { VKLM_ARCH_GPT2 = 0, VKLM_ARCH_LLAMA = 1 } vklm_arch;
typedef enum vklm_objective { VKLM_OBJ_CAUSAL = 0, VKLM_OBJ_MLM = 1 } vklm_objective;

typedef struct vklm_model_config {
  vklm_arch arch;
  uint32_t vocab_size; /* V */
  uint32_t max_seq;    /* maxT: learned positions (GPT-2) / RoPE context */
  uint32_t n_layer;    /* L */
  uint32_t n_head;     /* NH */
  uint32_t n_kv_head;  /* NKV (divides NH); GPT-2: = NH */
  uint32_t n_embd;     /* C = NH * HS */
  uint32_t ffn_hidden; /* MLP hidden size: 4C for GPT-2; Llama's intermediate_size */
  float norm_eps;      /* 1e-5 */
  float rope_theta;    /* Llama: 10000 (or 500000); unused by GPT-2 */
  int tie_embeddings;  /* output projection = wte^T (GPT-2: 1) */
} vklm_model_config;

/* Named configurations: "gpt2-tiny", "llama-tiny" (test sizes), "gpt2-124M", "gpt2-350M",
 * "llama-60M". Returns VKLM_ERROR_NOT_FOUND for an unknown name. */
vklm_status vklm_model_config_preset(const char *name, vklm_model_config *out);
/* Checks a config's consistency (divisibility, non-zero sizes); writes a message into err. */
vklm_status vklm_model_config_check(const vklm_model_config *cfg, char *err, size_t errlen);
/* Number of parameters; and the device bytes vklm_model_create would need for (B,T) (0 for an
 * invalid config). */
uint64_t vklm_model_config_params(const vklm_model_config *cfg);
uint64_t vklm_model_config_bytes(const vklm_model_config *cfg, uint32_t B, uint32_t T);

typedef struct vklm_model vklm_model;

/* The message of the last failure of m (or, with m == NULL, of the last failed
 * vklm_model_create on this thread): bad token ids name the position, a model that does not fit
 * says how many bytes it needs and how many the device has. */
const char *vklm_model_error(const vklm_model *m);
/* The [MASK] id the tests and `vklm train --objective mlm` use: V-1 (the tokenizer's last id). */
int32_t vklm_model_mask_id(const vklm_model_config *cfg);
uint32_t vklm_model_batch(const vklm_model *m); /* B */
uint32_t vklm_model_seq(const vklm_model *m);   /* T */
vklm_objective vklm_model_objective(const vklm_model *m);

/* Allocates parameters, gradients, moments and activations for batches of (B,T) with objective
 * obj, on ctx. A model that does not fit says how much it needs and how much the device has. */
vklm_status vklm_model_create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                              uint32_t T, vklm_objective obj, vklm_model **out);
/* Options of vklm_model_create_ex (zero-initialise; vklm_model_create uses the defaults).
 * logits_rows: the lm head and the cross-entropy run over chunks of this many (B*T) rows, so the
 * logits take one (rows,V) buffer, never (B*T,V); 0 chooses automatically (at most 256 MiB and
 * the largest bindable buffer, a multiple of 64 rows, or all B*T rows when they fit). With more
 * than one chunk, vklm_model_get_logits is unavailable (only the last chunk is kept). */
/* max_tensor_bytes: the largest buffer of one chunk of a (V,C) vocabulary matrix (wte, lm_head,
 * their gradients and moments); 0 means the device's limit. A value below it forces the split
 * (for tests); other tensors ignore it. */
typedef struct vklm_model_options {
  uint32_t logits_rows;
  uint64_t max_tensor_bytes;
} vklm_model_options;
vklm_status vklm_model_create_ex(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                 uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                 vklm_model **out);
void vklm_model_destroy(vklm_model *m); /* accepts NULL */
const vklm_model_config *vklm_model_get_config(const vklm_model *m);

/* GPT-2 initialisation (normal std 0.02, residual projections 0.02/sqrt(2L), LayerNorm weight
 * 1 bias 0, biases 0), deterministic for a seed. */
vklm_status vklm_model_init(vklm_model *m, uint64_t seed);

/* The parameter table (model_params.h): every tensor, its name, shape and offset in the flat
 * parameter vector. */
typedef struct vklm_param_info {
  char name[64];        /* vklm's name, e.g. "h.3.attn.qkv.weight" */
  uint32_t ndim;
  uint32_t shape[4];
  uint64_t offset;      /* floats from the start of the flat vector */
  uint64_t count;       /* floats */
  int decay;            /* weight decay applies (matrices) */
  int layer;            /* -1 for non-layer tensors */
} vklm_param_info;
uint32_t vklm_model_param_count(const vklm_model *m);
const vklm_param_info *vklm_model_param(const vklm_model *m, uint32_t i);
uint64_t vklm_model_num_params(const vklm_model *m);

/* Host copies of the flat parameter / gradient / moment vectors (num_params floats). */
vklm_status vklm_model_get_params(vklm_model *m, float *out);
vklm_status vklm_model_set_params(vklm_model *m, const float *in);
vklm_status vklm_model_get_grads(vklm_model *m, float *out);
vklm_status vklm_model_get_moments(vklm_model *m, float *m_out, float *v_out);
vklm_status vklm_model_set_moments(vklm_model *m, const float *m_in, const float *v_in);

/* Forward (and loss when targets != NULL) on inputs (B,T) int32 in [0,V); targets (B,T) int32 in
 * [0,V) or VKLM_IGNORE_INDEX. *loss receives the mean loss over the non-ignored targets.
 * Bad token ids are a clear VKLM_ERROR_INVALID. */
vklm_status vklm_model_forward(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                               float *loss);
/* Logits (B,T,V) of the last vklm_model_forward (a forward_backward overwrites them with their
 * gradient); VKLM_ERROR_UNSUPPORTED when the logits are computed in several row chunks. */
vklm_status vklm_model_get_logits(vklm_model *m, float *out);

/* One micro-batch of forward + backward; gradients ACCUMULATE scaled by grad_scale
 * (1/accumulation steps). *loss as in vklm_model_forward. */
vklm_status vklm_model_forward_backward(vklm_model *m, const int32_t *inputs,
                                        const int32_t *targets, float grad_scale, float *loss);

typedef struct vklm_optim_config {
  float lr, beta1, beta2, eps, weight_decay;
  float grad_clip; /* max global norm; <= 0: no clipping */
} vklm_optim_config;

/* Global-norm clipping and one AdamW step (weight decay on matrices only), then zeroes the
 * gradients. step counts from 1. *grad_norm (may be NULL) receives the norm before clipping. */
vklm_status vklm_model_update(vklm_model *m, const vklm_optim_config *oc, uint32_t step,
                              float *grad_norm);
vklm_status vklm_model_zero_grads(vklm_model *m);

/* MLM masking on the host: of the n tokens, chooses 15% (at least one) of the positions with a
 * seeded generator; inputs = tokens with the chosen ones replaced by mask_id (80%), a random
 * token in [0,V) (10%) or kept (10%); targets = the original token at chosen positions, else
 * VKLM_IGNORE_INDEX. */
void vklm_mlm_mask(const int32_t *tokens, uint32_t n, uint32_t V, int32_t mask_id, uint64_t seed,
                   int32_t *inputs, int32_t *targets);

#endif

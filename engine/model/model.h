/* The decoder transformer: one model covering GPT-2 style (learned positions, LayerNorm with bias,
 * GELU MLP, tied input/output embeddings) and Llama style (RoPE, RMSNorm, SwiGLU MLP, grouped-
 * query attention, untied output, no biases), run on the GPU in every mode: training, evaluation
 * (log-probs, scores) and — through engine/infer's sessions, which borrow its weights — generation.
 * ONE forward graph (graph.h) serves all of them.
 *
 * Owns: the weights (each tensor one buffer, laid out by the parameter table in model_params.h,
 * an X-macro that also drives checkpoint I/O and the tests; fp32, or for a frozen model loaded
 * from a file any linear-layer dtype: F16, Q8_0, Q4_0), and when trainable their gradients and
 * AdamW moments; the activations for a fixed (B,T) (saved per layer when trainable, one shared
 * set when frozen); and recorded command buffers that are replayed: per-step values (learning
 * rate, step number, per-row loss scales) live in GPU buffers uploaded before each replay.
 *
 * Modes: a model is created TRAINABLE (weights, gradients, moments) or FROZEN (weights only: no
 * gradient or moment memory at all; a reference model, a reward model, a server's). In a
 * trainable model individual tensors can be frozen by name pattern (options.freeze / .train):
 * they get no gradient or moment memory, the optimizer skips them, and the backward stops below
 * the lowest layer that trains, so a head or the last layers train alone.
 *
 * Heads: the LM head (tied or not) gives per-token log-probabilities of given targets and their
 * sums per sequence over a mask (vklm_model_run), computed chunk by chunk of rows so that no
 * (B,T,V) logits exist; a scalar head (cfg.scalar_head: one value per position) for reward and
 * value models; the final hidden states are readable. vklm_model_backward takes the gradient of
 * any weighted sum of log-probs and values (what SFT, DPO, PPO and reward-model training need).
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

#include "ops/tensor.h"
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
  uint32_t scalar_head; /* 1: a scalar head score.weight (1,C) + score.bias (1): one value per
                           position (reward and value models); 0: none */
} vklm_model_config;

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

/* Named configurations: "gpt2-tiny", "llama-tiny" (test sizes), "gpt2-124M", "gpt2-350M",
 * "llama-60M". Returns VKLM_ERROR_NOT_FOUND for an unknown name. */
vklm_status vklm_model_config_preset(const char *name, vklm_model_config *out);
/* Checks a config's consistency (divisibility, non-zero sizes, each size within the maxima
 * below); writes a message into err. */
#define VKLM_MODEL_MAX_LAYERS 4096u
#define VKLM_MODEL_MAX_DIM (1u << 20) /* n_embd, n_head, n_kv_head, ffn_hidden, max_seq */
#define VKLM_MODEL_MAX_VOCAB (1u << 24)
vklm_status vklm_model_config_check(const vklm_model_config *cfg, char *err, size_t errlen);
/* Checks that table[0..n) is the config's own parameter table (model_params.h), entry by entry:
 * name, ndim, shape, offset, count; each shape's product equal to its count and each tensor
 * inside the nparams floats (overflow-safe); nparams equal to the config's (0: not compared, the
 * caller's vector is the config's size). Runs vklm_model_config_check first. For tables read from
 * files (checkpoints) and given to exporters; writes which tensor and field differ into err. */
vklm_status vklm_model_table_check(const vklm_model_config *cfg, const vklm_param_info *table,
                                   uint32_t n, uint64_t nparams, char *err, size_t errlen);
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

/* Sets cfg->scalar_head from a parameter table (a checkpoint's): 1 when it holds score.weight. */
void vklm_model_config_from_table(vklm_model_config *cfg, const vklm_param_info *table,
                                  uint32_t n);

/* Allocates parameters, gradients, moments and activations for batches of (B,T) with objective
 * obj, on ctx. A model that does not fit says how much it needs and how much the device has.
 * B = T = 0 creates the weights alone (no batch workspace): a model that only inference
 * sessions run (engine/infer). */
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
/* frozen: weights only (no gradients, no moments; forward and log-probs, no backward).
 * freeze: comma-separated name patterns (fnmatch(3): "wte.weight,h.[0-3].*") of tensors that stay
 * frozen in a trainable model; train: when set, ONLY tensors matching its patterns train. A
 * pattern matching no tensor is an error (a typo must not silently train everything). */
/* logit_scale: the batch heads' logits are logit_scale * (h @ W^T) (0 means 1): with 1/t, the
 * per-token log-probs, the loss and their gradients are those of sampling at temperature t (what
 * PPO's log-probs need when it samples at t). Inference sessions over the model are unaffected
 * (their samplers apply the temperature). A scale other than 1 needs an F32 or F16 LM head. */
typedef struct vklm_model_options {
  uint32_t logits_rows;
  uint64_t max_tensor_bytes;
  int frozen;
  const char *freeze;
  const char *train;
  float logit_scale;
  int no_moments; /* trainable without AdamW moments on the device: the optimizer state lives
                     elsewhere (ZeRO-1 keeps each rank's shard of it, engine/train); the moments
                     read as zeros, and vklm_model_update is unavailable */
  int recompute;  /* trainable: the cheap activations (both norms' outputs, the MLP activation)
                     are not kept per layer but recomputed in the backward from what is kept
                     (the norms' inputs and statistics, the MLP pre-activation): 6C of GPT-2's
                     16C saved floats per row and layer (Llama: 2C + F of 7C + 3F) for two norm
                     passes and one activation pass more per layer; gradients bit-identical */
  vklm_dtype precision; /* trainable: the dtype in which the GEMMs read the linear layers'
                           weights (and a tied wte as the LM head): VKLM_DTYPE_F32 (0, the
                           default), F16 or BF16: 16-bit copies of the fp32 master weights,
                           written by every AdamW step and by vklm_model_set_params; gradients,
                           moments, activations and accumulation stay fp32. F16 needs loss
                           scaling with the gradients in 16 bits (engine/train's scaler) */
  vklm_dtype weight_dtype; /* vklm_model_create_from (frozen): F16 converts the linear layers'
                              fp32 weights (an untied lm_head too) to fp16 as they are uploaded
                              (round to nearest even): half the bytes every decode step reads;
                              F32 (0): each tensor as the source holds it */
} vklm_model_options;
vklm_status vklm_model_create_ex(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                 uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                 vklm_model **out);
void vklm_model_destroy(vklm_model *m); /* accepts NULL */
const vklm_model_config *vklm_model_get_config(const vklm_model *m);

/* A weight tensor as a source holds it: data in dtype (F32: count floats; F16/Q8_0/Q4_0:
 * vklm_dtype_bytes(dtype, shape[0], shape[1]) bytes in ggml's layout). Only the linear layers'
 * weights (the 2-D matrices other than wte, wpe and score) may be other than F32. */
typedef struct vklm_model_tensor {
  const void *data; /* borrowed; read during vklm_model_create_from only */
  vklm_dtype dtype;
} vklm_model_tensor;
/* Fills *out for table entry info; VKLM_OK, or a status with a message in err when the source
 * lacks the tensor. */
typedef vklm_status (*vklm_model_tensor_fn)(void *user, const vklm_param_info *info,
                                            vklm_model_tensor *out, char *err, size_t errlen);
/* A FROZEN model whose weights are read through get(user, ...) for every table entry, each kept
 * in its source dtype (a GGUF's Q4_0 weights stay Q4_0 on the device). opt->frozen is implied. */
vklm_status vklm_model_create_from(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                   uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                   vklm_model_tensor_fn get, void *user, vklm_model **out,
                                   char *err, size_t errlen);
/* The same from a flat fp32 parameter vector in table order (a checkpoint's params). */
vklm_status vklm_model_create_f32(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                  uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                  const float *params, vklm_model **out, char *err,
                                  size_t errlen);

vklm_context *vklm_model_context(const vklm_model *m);
/* No tensor trains (created frozen, or every tensor frozen by pattern). */
int vklm_model_is_frozen(const vklm_model *m);
/* Whether table entry i trains. */
int vklm_model_param_trainable(const vklm_model *m, uint32_t i);
/* The dtype a table entry is held in on the device. */
vklm_dtype vklm_model_param_dtype(const vklm_model *m, uint32_t i);

/* Device memory by kind (bytes, as allocated). */
typedef struct vklm_model_memory {
  uint64_t weights, grads, moments, activations;
} vklm_model_memory;
void vklm_model_memory_get(const vklm_model *m, vklm_model_memory *out);

/* GPT-2 initialisation (normal std 0.02, residual projections 0.02/sqrt(2L), LayerNorm weight
 * 1 bias 0, biases 0), deterministic for a seed. */
vklm_status vklm_model_init(vklm_model *m, uint64_t seed);

uint32_t vklm_model_param_count(const vklm_model *m);
const vklm_param_info *vklm_model_param(const vklm_model *m, uint32_t i);
uint64_t vklm_model_num_params(const vklm_model *m);

/* Host copies of the flat parameter / gradient / moment vectors (num_params floats). Gradients
 * and moments of frozen tensors read as zeros and are not written; parameters of a model holding
 * non-F32 weights are VKLM_ERROR_UNSUPPORTED. */
vklm_status vklm_model_get_params(vklm_model *m, float *out);
vklm_status vklm_model_set_params(vklm_model *m, const float *in);
vklm_status vklm_model_get_grads(vklm_model *m, float *out);
/* Replaces the trainable tensors' gradients (e.g. with their sum over data-parallel ranks);
 * a frozen tensor's entries are ignored. */
vklm_status vklm_model_set_grads(vklm_model *m, const float *in);
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

/* One micro-batch of forward + backward; gradients ACCUMULATE scaled by grad_scale: the gradient
 * added is grad_scale x that of the micro-batch's mean loss over its non-ignored targets
 * (1/accumulation steps for equal micro-batches; count_mb / count_step to normalise by the
 * step's target tokens). grad_scale may change every call at no cost (it is uploaded, not
 * recorded). *loss as in vklm_model_forward. */
vklm_status vklm_model_forward_backward(vklm_model *m, const int32_t *inputs,
                                        const int32_t *targets, float grad_scale, float *loss);

/* The same pass, with the gradients handed to the host as the backward finishes them, while the
 * device computes the rest (data-parallel training reduces each part over the ranks meanwhile).
 * The pass runs as parts (the forward, the heads and the top layers' backward; then groups of
 * lower layers, at most 16 parts; the embeddings with the last); when part k completes, the
 * gradients of a suffix [lo, hi) of the flat vector are final: they are copied into grads[lo, hi)
 * and ready(user, grads, lo, hi) is called. The ranges come in decreasing order, cover [0, n)
 * exactly once, and are the same on every call of a model. Gradients accumulate on the device as
 * in vklm_model_forward_backward (grads gets the accumulated values; tensors that do not train
 * read as zeros); what ready() does to grads stays on the host. A ready() that fails stops the
 * calls: the rest of the pass is waited for and its status returned (its message is the
 * caller's). stats (may be NULL): parts handed over, how many of them while the device was still
 * computing later parts, and the host's seconds waiting for the device and inside ready(). */
/* Dispatches and barriers of one recorded training step (the training pass, whole or in parts,
 * and the update), once both have run: what `vklm bench train` reports. */
void vklm_model_step_counts(const vklm_model *m, uint32_t *dispatches, uint32_t *barriers);

typedef vklm_status (*vklm_grads_ready_fn)(void *user, float *grads, uint64_t lo, uint64_t hi);
typedef struct vklm_overlap_stats {
  uint32_t parts, early;
  double wait_s, ready_s;
} vklm_overlap_stats;
vklm_status vklm_model_forward_backward_parts(vklm_model *m, const int32_t *inputs,
                                              const int32_t *targets, float grad_scale,
                                              float *loss, float *grads,
                                              vklm_grads_ready_fn ready, void *user,
                                              vklm_overlap_stats *stats);

/* ---- log-probs, values, hidden states, and their backward --------------------------------
 * vklm_model_run: one forward of the batch (activations saved when trainable) and any of:
 *   token_logp (B,T)  log p(targets[r] | inputs up to r) at every row, 0 where ignored;
 *   seq_logp (B)      per sequence, sum_t mask[b,t] * token_logp[b,t] (mask NULL: 1 where the
 *                     target is not ignored): right-padded sequences of different lengths
 *                     batch together, their padding masked;
 *   values (B,T)      the scalar head (cfg.scalar_head), read at any position (e.g. the last
 *                     token of each sequence);
 *   hidden (B,T,C)    the final hidden states (after the last norm);
 *   loss              the mean loss over non-ignored targets.
 * targets NULL skips the LM head entirely (a reward model scores without it). Causal models
 * only see earlier positions, so right padding never changes a sequence's results. Works for
 * any vocabulary size (the lm head runs over row chunks and vocabulary chunks). */
typedef struct vklm_model_io {
  const int32_t *inputs;  /* (B,T) */
  const int32_t *targets; /* (B,T) or NULL */
  const float *mask;      /* (B,T) or NULL */
  float *token_logp;      /* out (B,T) or NULL */
  float *seq_logp;        /* out (B) or NULL */
  float *values;          /* out (B,T) or NULL */
  float *hidden;          /* out (B,T,C) or NULL */
  float *loss;            /* out or NULL */
} vklm_model_io;
vklm_status vklm_model_run(vklm_model *m, const vklm_model_io *io);
/* After vklm_model_run on a trainable model (same batch, nothing run in between): ACCUMULATES
 * into the trainable tensors' gradients the gradient of
 *   sum_r token_w[r] * token_logp[r]  +  sum_r value_w[r] * values[r]
 * token_w (B,T) or NULL (the run must have had targets), value_w (B,T) or NULL (needs the scalar
 * head). A loss L(logp, values) passes token_w = dL/dlogp, value_w = dL/dvalues. */
vklm_status vklm_model_backward(vklm_model *m, const float *token_w, const float *value_w);
/* The same with one coefficient per sequence: token_w[b,t] = coef[b] * mask[b,t] (mask as in
 * vklm_model_run): the gradient of sum_b coef[b] * seq_logp[b] (DPO; SFT with coef = -1/count). */
vklm_status vklm_model_backward_seq(vklm_model *m, const float *coef, const float *mask);
/* Losses computed on the GPU (PPO) read the last run's per-row results and write the
 * backward's per-row weights in place, with no host copy. Views (B*T floats each, 0-size when
 * absent): neg_logp = -token_logp of the last vklm_model_run with targets; values = its scalar
 * head's values; neg_token_w and value_w = what vklm_model_backward_rows reads as -token_w and
 * value_w (a trainable model only). Valid until the model is destroyed; the contents change with
 * every run. */
typedef struct vklm_model_rows {
  vklm_buffer neg_logp, values, neg_token_w, value_w;
} vklm_model_rows;
void vklm_model_rows_get(vklm_model *m, vklm_model_rows *out);
/* vklm_model_backward with the weights already on the device (written into the views above
 * after the run): the token weights when `token`, the value weights when `value`. */
vklm_status vklm_model_backward_rows(vklm_model *m, int token, int value);

typedef struct vklm_optim_config {
  float lr, beta1, beta2, eps, weight_decay;
  float grad_clip; /* max global norm; <= 0: no clipping */
} vklm_optim_config;

/* Global-norm clipping and one AdamW step (weight decay on matrices only) over the trainable
 * tensors, then zeroes the gradients. step counts from 1. *grad_norm (may be NULL) receives the norm before clipping. */
vklm_status vklm_model_update(vklm_model *m, const vklm_optim_config *oc, uint32_t step,
                              float *grad_norm);
vklm_status vklm_model_zero_grads(vklm_model *m);

/* Loss scaling (a model created with precision F16; 1 otherwise): the passes that follow
 * compute S times the gradients (the per-row loss scales of forward_backward and the weights of
 * vklm_model_backward are multiplied by S, so gradients small in fp16 stay representable), and
 * the update divides them by S on the device before clipping: the gradient norm it reports and
 * uses is the true one. A non-finite norm (an overflow) makes the update a no-op (parameters,
 * moments and weight copies untouched; the gradients are still zeroed): the caller halves S and
 * does not count the step (engine/train's scaler). S must be a positive finite power of two;
 * VKLM_ERROR_INVALID otherwise, and for a model that is not F16. */
vklm_status vklm_model_set_loss_scale(vklm_model *m, float scale);
float vklm_model_loss_scale(const vklm_model *m);
/* The dtype the model's GEMMs read its weights in (options.precision: F32, F16 or BF16). */
vklm_dtype vklm_model_precision(const vklm_model *m);

/* A whole training step in ONE queue submission: the pass of vklm_model_forward_backward on
 * (inputs, targets, grad_scale) and the update of vklm_model_update (oc, step), recorded apart and
 * submitted together, so the host waits once. The update runs whatever the loss: a caller that
 * stops on a non-finite loss or norm (as vklm train does) stops after it. *loss and *grad_norm
 * (either may be NULL) as in those two calls. */
vklm_status vklm_model_train_step(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                                  float grad_scale, const vklm_optim_config *oc, uint32_t step,
                                  float *loss, float *grad_norm);

/* The same step pipelined, so that the host prepares the next batch while the device runs this
 * one (vklm train):
 *   stage   checks the batch and builds its embedding plan in host memory (host work only: it
 *           may run while an earlier step is still running on the device);
 *   submit  waits for the previous step if it still runs (its results are kept), copies the staged
 *           batch and the per-row loss scales (at the loss scale set now) into the model, and
 *           submits the pass and the update (oc, step) as one submission without waiting;
 *   wait    waits for the submitted step and gives its *loss and *grad_norm (either may be NULL).
 * Every other call on the model waits for a step in flight first. A submit before the previous
 * step's wait is refused (VKLM_ERROR_INVALID), as are a submit with nothing staged and a wait
 * with nothing submitted. vklm_model_train_step is stage + submit + wait. */
vklm_status vklm_model_train_step_stage(vklm_model *m, const int32_t *inputs,
                                        const int32_t *targets, float grad_scale);
vklm_status vklm_model_train_step_submit(vklm_model *m, const vklm_optim_config *oc,
                                         uint32_t step);
vklm_status vklm_model_train_step_wait(vklm_model *m, float *loss, float *grad_norm);

/* MLM masking on the host: of the n tokens, chooses 15% (at least one) of the positions with a
 * seeded generator; inputs = tokens with the chosen ones replaced by mask_id (80%), a random
 * token in [0,V) (10%) or kept (10%); targets = the original token at chosen positions, else
 * VKLM_IGNORE_INDEX. */
void vklm_mlm_mask(const int32_t *tokens, uint32_t n, uint32_t V, int32_t mask_id, uint64_t seed,
                   int32_t *inputs, int32_t *targets);

#endif

/* infer: generation sessions. A session runs a model (engine/model) through the ONE forward graph
 * (model/graph.h) in KV mode, with a KV cache for up to n_seq sequences at once.
 *
 * Weights: a session either BORROWS a model's weights on the device (vklm_infer_create_for: a
 * policy being trained samples from itself between updates with nothing copied, and sees every
 * update), or owns a frozen model it loads through a tensor callback (vklm_infer_create: a GGUF's
 * quantized weights stay quantized on the device).
 *
 * Owns: the KV cache (per layer K and V of (n_seq * n_ctx, NKV, HS), fp16 where the device has
 * 16-bit storage, else fp32: ops/kvcache.h), the activations of one pass of up to prefill_rows
 * rows, RoPE's table, the recorded command buffers, and per-sequence positions.
 *
 * Batching: vklm_infer_step takes any set of requests, one per sequence slot, each appending one
 * or more tokens to its sequence; their rows run together in passes of at most prefill_rows
 * rows, so one step decodes every live sequence at once, and a new sequence's prefill can ride
 * along with the others' decode (continuous batching: sequences join and leave between steps
 * without disturbing the others). A step of single-token requests (pure decode) replays a
 * command buffer recorded once per batch size; other steps are recorded per pass. Per request
 * that asks for it, the step returns the next token, chosen on the GPU (infer/sample_gpu.h) with
 * the request's own sampling parameters, penalty window and seeded draw (the argmax when it has
 * no sampler): only the ids come back to the host.
 *
 * Invariants: a sequence's positions are [0, pos); a request that would pass n_ctx fails with
 * VKLM_ERROR_INVALID and a clear message (the caller shifts or stops, as vklm generate's
 * --ctx-shift does); nothing is changed by a failed step's validation. The model must outlive a session that borrows it.
 *
 * Does not: tokenize, detokenize, schedule requests or own samplers (callers do). */
#ifndef VKLM_INFER_H
#define VKLM_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "infer/sample.h"
#include "model/model.h"
#include "ops/quant.h"

typedef struct vklm_infer vklm_infer;

/* Options (zero-initialise; NULL means all defaults).
 * n_seq: sequences held at once (cache slots; 0: 1).
 * prefill_rows: rows per pass (0: min(n_ctx * n_seq, 256)); longer prompts run in passes.
 * max_tensor_bytes: the largest buffer of one row chunk of a (V,C) vocabulary matrix of an owned
 * model (0: the device's bindable limit); smaller values force the split (tests).
 * decode_splits: key slices of a decode step's split-K attention (0: ceil(n_ctx/256), at most
 * 16; 1: no split).
 * kv_type: 0 automatic (F16 with 16-bit storage, else F32), or VKLM_DTYPE_F32 + 1 / F16 + 1 to
 * force one (F16 without 16-bit storage is an error).
 * max_penalty: distinct tokens a sampler's repetition-penalty window may hold (0: 256).
 * weight_type (sessions that create their model): 0 automatic: fp32 linear weights are held in
 * fp16 (converted on load, vklm_model_options.weight_dtype: half the bytes a decode step reads,
 * and the operand cooperative-matrix GEMMs take) except on contexts with CPU-type kernels
 * (lavapipe), whose fp32 GEMM is their fastest; VKLM_DTYPE_F32 + 1 / F16 + 1 force one. Weights
 * the source already holds in another dtype (F16, Q8_0, Q4_0) stay as they are. */
typedef struct vklm_infer_options {
  uint32_t n_seq;
  uint32_t prefill_rows;
  uint64_t max_tensor_bytes;
  uint32_t decode_splits;
  int kv_type;
  uint32_t max_penalty;
  int weight_type;
} vklm_infer_options;
/* The dtype weight_type (above) gives fp32 linear weights on ctx. */
vklm_dtype vklm_infer_weight_dtype(const vklm_context *ctx, const vklm_infer_options *opt);

/* A session of n_ctx positions per sequence (GPT-2: <= cfg->max_seq) over a frozen model it
 * creates from get(user, ...) (model.h's tensor callback; linear weights in any dtype). */
vklm_status vklm_infer_create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                              const vklm_infer_options *opt, vklm_model_tensor_fn get, void *user,
                              vklm_infer **out, char *err, size_t errlen);
/* The same from a flat fp32 parameter vector in table order (a checkpoint's params). */
vklm_status vklm_infer_create_f32(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                                  const float *params, vklm_infer **out, char *err,
                                  size_t errlen);
/* A session BORROWING model m's weights on the device (m: any model, trainable or frozen; it
 * must outlive the session). */
vklm_status vklm_infer_create_for(vklm_model *m, uint32_t n_ctx, const vklm_infer_options *opt,
                                  vklm_infer **out, char *err, size_t errlen);
void vklm_infer_destroy(vklm_infer *s); /* accepts NULL */

const char *vklm_infer_error(const vklm_infer *s);
const vklm_model_config *vklm_infer_config(const vklm_infer *s);
vklm_model *vklm_infer_model(const vklm_infer *s);
uint32_t vklm_infer_ctx(const vklm_infer *s);   /* n_ctx */
uint32_t vklm_infer_slots(const vklm_infer *s); /* n_seq */
vklm_dtype vklm_infer_kv_dtype(const vklm_infer *s);
/* The dtype of the linear weights as the session's model holds them (its first layer's qkv). */
vklm_dtype vklm_infer_weights_dtype(const vklm_infer *s);
/* Device bytes the session itself holds (cache, activations, tables; not borrowed weights). */
uint64_t vklm_infer_memory(const vklm_infer *s);

/* Sequence slots: open takes a free slot (its cache empty) or returns -1 when all are in use;
 * close frees it. pos: tokens in the slot's cache; rewind forgets rows >= pos (pos <= the
 * current position; 0 starts over). */
int vklm_infer_seq_open(vklm_infer *s);
void vklm_infer_seq_close(vklm_infer *s, uint32_t slot);
uint32_t vklm_infer_seq_pos(const vklm_infer *s, uint32_t slot);
void vklm_infer_seq_rewind(vklm_infer *s, uint32_t slot, uint32_t pos);

/* One request of a step: append tokens[0..n) (n >= 1) to the sequence in `slot`; with want, the
 * step produces the next token after the last of them: the argmax when sampler is NULL, else the
 * sampler's choice (its parameters, the distinct tokens of its penalty window, one word of its
 * generator: the id vklm_sampler_sample would choose from the same logits), made on the GPU.
 * The caller feeds the sampler's history (vklm_sampler_accept). */
typedef struct vklm_infer_req {
  uint32_t slot;
  const int32_t *tokens;
  uint32_t n;
  int want;
  vklm_sampler *sampler;
} vklm_infer_req;
/* Runs reqs[0..count) together (each slot at most once). next[i] (may be NULL) receives request
 * i's next token (-1 when it did not want one); logits (may be NULL) receives, for each request
 * that wants one, in request order, its row of V logits ((number wanting) x V floats; after its
 * sampler's repetition penalty). On an invalid request nothing runs and nothing changes. */
vklm_status vklm_infer_step(vklm_infer *s, const vklm_infer_req *reqs, uint32_t count,
                            int32_t *next, float *logits);

/* ---- one sequence (slot 0): the calls generate and chat make ----------------------------- */
uint32_t vklm_infer_pos(const vklm_infer *s);            /* slot 0's position */
void vklm_infer_rewind(vklm_infer *s, uint32_t pos);     /* slot 0 */
/* Appends tokens[0..n) to slot 0; logits (V) (may be NULL) receives the last token's logits,
 * *next (may be NULL) its argmax. */
vklm_status vklm_infer_prefill(vklm_infer *s, const int32_t *tokens, uint32_t n, float *logits,
                               int32_t *next);
/* Appends one token to slot 0 (a replayed decode step); logits and next as above (logits NULL
 * for greedy decoding: nothing but the argmax id is read back). */
vklm_status vklm_infer_decode(vklm_infer *s, int32_t token, float *logits, int32_t *next);

#endif

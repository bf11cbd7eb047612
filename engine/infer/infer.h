/* infer: text generation with a KV cache on the GPU, for both model families (GPT-2 and Llama,
 * model.h), built from a parameter table's tensors (a vklm checkpoint's fp32 weights today).
 *
 * Owns: the weights (each table tensor one device buffer; the (V,C) vocabulary matrices split
 * into row chunks when they exceed the largest bindable buffer), the KV cache, the activations
 * of one prefill chunk, and two command buffers: the prefill (recorded per call, its row count
 * varies) and the decode step (recorded ONCE and replayed: the token and the position live in
 * small device buffers re-uploaded per step, and every kernel that needs the position - the
 * position embedding, RoPE, the cache append and the attention - reads it from there).
 *
 * KV cache layout: per layer, K and V each (maxT, NKV, HS) fp32, maxT = the context length
 * n_ctx; row p holds position p. Positions [0, pos) are valid.
 *
 * Weights: every linear layer's weight has a vklm_dtype (quant.h) given by the tensor
 * source, so quantized GGUF weights plug in through vklm_infer_create's callback; the embedding
 * tables (wte, wpe), norms and biases must be F32 (a tied lm head reads wte, so it is F32 too).
 *
 * Invariants: prefill/decode append at the current position and fail with VKLM_ERROR_INVALID
 * (a clear message) when the context would overflow; the caller shifts or stops (generate.h).
 * Greedy decoding runs the argmax on the GPU (only one id comes back); other samplers read the
 * last row's logits (V floats) back to the host (sample.h).
 *
 * Does not: read files or tokenize (apps/cmd_generate.c does), or batch several sequences. */
#ifndef VKLM_INFER_H
#define VKLM_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "ops/quant.h"

typedef struct vklm_infer vklm_infer;

/* One tensor of the parameter table as the source has it: data in type (F32: count floats;
 * other types: vklm_dtype_bytes(type, shape[0], shape[1]) bytes, ggml's layout). */
typedef struct vklm_infer_tensor {
  const void *data; /* borrowed; only read during vklm_infer_create */
  vklm_dtype type;
} vklm_infer_tensor;

/* Fills *out for table entry info (name, shape as model_params.h lists it); returns VKLM_OK, or a
 * status (with its own message in err) when the source lacks the tensor. */
typedef vklm_status (*vklm_infer_tensor_fn)(void *user, const vklm_param_info *info,
                                            vklm_infer_tensor *out, char *err, size_t errlen);

/* Options of vklm_infer_create (zero-initialise; NULL means all defaults).
 * prefill_rows: rows per prefill pass (0: min(n_ctx, 256)); longer prompts run in passes.
 * max_tensor_bytes: the largest buffer of one row chunk of a (V,C) vocabulary matrix (0: the
 * device's bindable limit); smaller values force the split (tests). */
/* decode_splits: key slices of the decode step's split-K attention (0: ceil(n_ctx/256), at
 * most 16; 1: no split). */
typedef struct vklm_infer_options {
  uint32_t prefill_rows;
  uint64_t max_tensor_bytes;
  uint32_t decode_splits;
} vklm_infer_options;

/* Creates a session of context length n_ctx (the KV cache's rows; GPT-2: <= cfg->max_seq),
 * reading every tensor of cfg's parameter table through get(user, ...). */
vklm_status vklm_infer_create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                              const vklm_infer_options *opt, vklm_infer_tensor_fn get,
                              void *user, vklm_infer **out, char *err, size_t errlen);
/* The same from a flat fp32 parameter vector in table order (a checkpoint's params, or
 * vklm_model_get_params). */
vklm_status vklm_infer_create_f32(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                                  const float *params, vklm_infer **out, char *err,
                                  size_t errlen);
void vklm_infer_destroy(vklm_infer *s); /* accepts NULL */

const char *vklm_infer_error(const vklm_infer *s);
const vklm_model_config *vklm_infer_config(const vklm_infer *s);
uint32_t vklm_infer_ctx(const vklm_infer *s); /* n_ctx */
uint32_t vklm_infer_pos(const vklm_infer *s); /* tokens in the cache */
/* Forgets cache rows >= pos (pos <= the current position); 0 starts over. */
void vklm_infer_rewind(vklm_infer *s, uint32_t pos);

/* Appends tokens[0..n) (n >= 1) at the current position in batched passes; logits (V), when not
 * NULL, receives the logits of the last token; *next (may be NULL) its argmax. */
vklm_status vklm_infer_prefill(vklm_infer *s, const int32_t *tokens, uint32_t n, float *logits,
                               int32_t *next);
/* Appends one token by replaying the recorded decode step; logits and next as above (pass
 * logits NULL for greedy decoding: nothing but the argmax id is read back). */
vklm_status vklm_infer_decode(vklm_infer *s, int32_t token, float *logits, int32_t *next);

/* ---- the kernels of the KV-cache path (infer_ops.c), with C references ------------------- */
/* out (n, NH*HS) <- causal attention of n query rows at positions pos0+i (queries q (n, QS),
 * head h at column h*HS) against the cache kc, vc (maxT, NKV, HS) rows [0, pos0+i]. info: a
 * uint buffer holding pos0. splits 1: one workgroup per (head, row) walks all keys; splits S > 1
 * (split-K, for few rows and long caches): S workgroups per (head, row) each take a contiguous
 * slice of the keys into scratch (vklm_attention_decode_scratch_bytes), then a second kernel
 * merges the slices in a fixed order. Deterministic either way. HS <= 256. */
uint64_t vklm_attention_decode_scratch_bytes(uint32_t n, uint32_t NH, uint32_t HS,
                                             uint32_t splits);
vklm_status vklm_attention_decode(vklm_cmd *cmd, vklm_buffer out, vklm_buffer scratch,
                                  vklm_buffer q, vklm_buffer kc, vklm_buffer vc, vklm_buffer info,
                                  uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t QS,
                                  uint32_t splits);
void vklm_attention_decode_ref(float *out, const float *q, const float *kc, const float *vc,
                               uint32_t pos0, uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS,
                               uint32_t QS);
/* kc, vc (maxT, NKV, HS) rows pos0..pos0+n-1 <- the key and value heads of qkv (n, QKV). */
vklm_status vklm_kv_store(vklm_cmd *cmd, vklm_buffer kc, vklm_buffer vc, vklm_buffer qkv,
                          vklm_buffer info, uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS,
                          uint32_t maxT);
/* RoPE on qkv (n, QKV) at positions pos0+i with a (maxT, HS) cos|sin table. */
vklm_status vklm_rope_cached(vklm_cmd *cmd, vklm_buffer qkv, vklm_buffer tab, vklm_buffer info,
                             uint32_t n, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t maxT);
/* x (n, C) += wpe (maxT, C) rows pos0..pos0+n-1. */
vklm_status vklm_pos_add(vklm_cmd *cmd, vklm_buffer x, vklm_buffer wpe, vklm_buffer info,
                         uint32_t n, uint32_t C, uint32_t maxT);
/* out (1) uint = argmax of x (V): the lowest index of the largest value. */
vklm_status vklm_argmax(vklm_cmd *cmd, vklm_buffer out, vklm_buffer x, uint32_t V);
uint32_t vklm_argmax_ref(const float *x, uint32_t V);

#endif

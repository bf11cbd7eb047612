/* model_load: importing transformer LMs that other tools wrote, and exporting vklm's to GGUF.
 *
 * Import (vklm_model_load) reads
 *  - a Hugging Face directory: config.json + model.safetensors (+ tokenizer.json), GPT2LMHeadModel
 *    (keys with or without "transformer."; Conv1D weights transposed; tied head) or
 *    LlamaForCausalLM (q/k/v and gate/up fused into vklm's qkv and fc; no RoPE permutation: HF's
 *    rotate_half convention is vklm's); a path to a .safetensors file reads config.json beside it;
 *  - a GGUF file, architecture "gpt2" or "llama", tensors F32, F16, BF16, Q8_0, Q4_0, with
 *    llama.cpp's names; Llama's attn_q/attn_k rows are un-permuted from llama.cpp's interleaved
 *    RoPE order (hf_names.h); the tokenizer from tokenizer.ggml.* (byte-level BPE, "gpt2") and
 *    the chat template from tokenizer.chat_template.
 * into the config and one vklm_loaded_tensor per entry of vklm's parameter table (model_params.h).
 * Norms, biases and embeddings are always fp32 (a quantized token_embd / position_embd is
 * dequantized: the embedding lookup reads fp32 rows). With keep_quant, a linear weight (the 2-D
 * matrices other than wte/wpe, the lm head included) whose parts are all F16, Q8_0 or Q4_0 of one
 * type keeps its raw ggml bytes (rows concatenated / permuted whole: a row of K elements is
 * K/32 blocks, so fusing and permuting never touches a block); otherwise it becomes fp32.
 *
 * Every count, shape and size is checked against the hyperparameters before use: an unknown
 * architecture or tensor type, a missing tensor or a shape mismatch is VKLM_ERROR_INVALID with a
 * message naming the tensor, what was expected and what was found.
 *
 * Export (vklm_export_gguf): a flat fp32 parameter vector to GGUF with llama.cpp's names and
 * metadata (linear weights in F32, F16, Q8_0 or Q4_0; norms and embeddings F32; Llama Q/K rows
 * permuted as llama.cpp's converter does), plus tokenizer.ggml.* from a tokenizer.json. */
#ifndef VKLM_FORMATS_MODEL_LOAD_H
#define VKLM_FORMATS_MODEL_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "formats/quant.h"
#include "model/model.h"
#include "ops/quant.h"
#include "text/tokenizer.h"

typedef struct vklm_loaded_tensor {
  vklm_dtype type; /* VKLM_DTYPE_F32, or the raw type of a kept linear weight */
  uint32_t rows, cols;   /* vklm's shape (cols 0: 1-D) */
  void *data;            /* owned: rows*cols floats, or vklm_dtype_bytes(type, rows, cols) */
  uint64_t nbytes;
} vklm_loaded_tensor;

typedef struct vklm_loaded_model {
  vklm_model_config cfg;
  uint32_t ntensors;
  vklm_param_info *table;     /* owned: vklm's parameter table for cfg */
  vklm_loaded_tensor *t;      /* owned: ntensors, in table order */
  uint64_t nparams;           /* floats of the flat vector */
  char format[16];            /* "hf" or "gguf" */
  vklm_tokenizer *tokenizer;  /* owned; NULL when none could be built (see tokenizer_note) */
  char tokenizer_note[256];   /* why there is no tokenizer, or what was assumed */
  char *chat_template;        /* owned; NULL when the file has none */
  int32_t bos_id, eos_id;     /* -1 when unknown */
} vklm_loaded_model;

/* path: an HF directory, a .safetensors file (config.json beside it) or a .gguf file. */
vklm_status vklm_model_load(const char *path, int keep_quant, vklm_loaded_model **out, char *err,
                            size_t errlen);
void vklm_loaded_model_free(vklm_loaded_model *m); /* accepts NULL */
/* The whole model as vklm's flat fp32 parameter vector (nparams floats), dequantizing. */
vklm_status vklm_loaded_model_params(const vklm_loaded_model *m, float *out, char *err,
                                     size_t errlen);

/* Writes cfg + params (the flat fp32 vector laid out by table) to path as GGUF. linear_type: the
 * ggml type of the 2-D linear weights, VKLM_GGML_TYPE_F32, _F16, _Q8_0 or _Q4_0 (a matrix whose
 * row length is not a multiple of 32 falls back to F16 for the quantized types); norms, biases
 * and embeddings are F32. tokenizer_json: NULL, or a tokenizer.json whose vocab, merges and added
 * tokens become tokenizer.ggml.*. The config and table are checked first
 * (vklm_model_table_check: the table must be cfg's own, so params holds
 * vklm_model_config_params(cfg) floats); a bad one is an error, never a crash. */
vklm_status vklm_export_gguf(const char *path, const vklm_model_config *cfg,
                             const vklm_param_info *table, uint32_t ntensors, const float *params,
                             uint32_t linear_type, const char *tokenizer_json, char *err,
                             size_t errlen);

#endif

/* The parameter table of the decoder transformer: ONE X-macro listing every parameter tensor.
 * It generates the tensor ids (VKLM_P_*), the flat parameter vector layout (vklm_param_info: name,
 * shape, offset, decay, layer), the per-tensor buffers of parameters, gradients and AdamW moments
 * (a (V,C) vocabulary matrix too large for one buffer gets several: model_internal.h's slots),
 * the initialisation, and whatever else walks the parameters (checkpoints, safetensors export,
 * the parity tests, which compare every tensor by its name from this table).
 *
 * Columns of X(id, name, section, d0, d1, decay, init, present):
 *   id       enum suffix: VKLM_P_<id>
 *   name     vklm's name; per-layer names hold one %u for the layer index
 *   section  0: before the layers, 1: once per layer, 2: after the layers
 *   d0, d1   shape, expressions of the config `c`; d1 == 0 means a 1-D tensor (d0)
 *   decay    AdamW weight decay applies (every 2-D matrix, embeddings included, as llm.c/nanoGPT)
 *   init     VKLM_INIT_NORMAL (std 0.02), _RESID (0.02/sqrt(2L)), _ONE, _ZERO
 *   present  whether the config has the tensor
 * The flat vector is: section 0 in table order, then for each layer l = 0..L-1 the section-1
 * tensors in table order, then section 2; absent tensors take no space.
 *
 * Llama's gate and up projections are ONE fused tensor "mlp.fc.weight" of shape (2F, C): rows
 * 0..F-1 are the gate (HF gate_proj), rows F..2F-1 the up projection (HF up_proj); see
 * activation.h (SwiGLU). The attention's qkv weight holds NH query heads, then NKV key heads,
 * then NKV value heads (rows of HS each), see attention.h. The scalar head (reward and value
 * models, cfg->scalar_head) is score.weight (1, C) and score.bias (1) on the final hidden state
 * (HF's GPT2ForSequenceClassification "score", with a bias). Private to engine/model and its
 * users (engine/train); include model.h first. */
#ifndef VKLM_MODEL_PARAMS_H
#define VKLM_MODEL_PARAMS_H

#include "model.h"

enum { VKLM_INIT_NORMAL = 0, VKLM_INIT_RESID, VKLM_INIT_ONE, VKLM_INIT_ZERO };

/* Derived sizes of a config c. */
#define VKLM_MP_GPT2(c) ((c)->arch == VKLM_ARCH_GPT2)
#define VKLM_MP_HS(c) ((c)->n_embd / (c)->n_head)
#define VKLM_MP_QKV(c) (((c)->n_head + 2 * (c)->n_kv_head) * VKLM_MP_HS(c))
/* rows of the MLP's first matrix: F (GELU) or 2F (SwiGLU's fused gate and up) */
#define VKLM_MP_FC(c) (VKLM_MP_GPT2(c) ? (c)->ffn_hidden : 2 * (c)->ffn_hidden)

#define VKLM_MODEL_PARAMS(X)                                                                      \
  X(WTE, "wte.weight", 0, (c)->vocab_size, (c)->n_embd, 1, VKLM_INIT_NORMAL, 1)                  \
  X(WPE, "wpe.weight", 0, (c)->max_seq, (c)->n_embd, 1, VKLM_INIT_NORMAL, VKLM_MP_GPT2(c))       \
  X(LN1_W, "h.%u.ln1.weight", 1, (c)->n_embd, 0, 0, VKLM_INIT_ONE, 1)                            \
  X(LN1_B, "h.%u.ln1.bias", 1, (c)->n_embd, 0, 0, VKLM_INIT_ZERO, VKLM_MP_GPT2(c))               \
  X(QKV_W, "h.%u.attn.qkv.weight", 1, VKLM_MP_QKV(c), (c)->n_embd, 1, VKLM_INIT_NORMAL, 1)       \
  X(QKV_B, "h.%u.attn.qkv.bias", 1, VKLM_MP_QKV(c), 0, 0, VKLM_INIT_ZERO, VKLM_MP_GPT2(c))       \
  X(ATTO_W, "h.%u.attn.proj.weight", 1, (c)->n_embd, (c)->n_embd, 1, VKLM_INIT_RESID, 1)         \
  X(ATTO_B, "h.%u.attn.proj.bias", 1, (c)->n_embd, 0, 0, VKLM_INIT_ZERO, VKLM_MP_GPT2(c))        \
  X(LN2_W, "h.%u.ln2.weight", 1, (c)->n_embd, 0, 0, VKLM_INIT_ONE, 1)                            \
  X(LN2_B, "h.%u.ln2.bias", 1, (c)->n_embd, 0, 0, VKLM_INIT_ZERO, VKLM_MP_GPT2(c))               \
  X(FC_W, "h.%u.mlp.fc.weight", 1, VKLM_MP_FC(c), (c)->n_embd, 1, VKLM_INIT_NORMAL, 1)           \
  X(FC_B, "h.%u.mlp.fc.bias", 1, VKLM_MP_FC(c), 0, 0, VKLM_INIT_ZERO, VKLM_MP_GPT2(c))           \
  X(PROJ_W, "h.%u.mlp.proj.weight", 1, (c)->n_embd, (c)->ffn_hidden, 1, VKLM_INIT_RESID, 1)      \
  X(PROJ_B, "h.%u.mlp.proj.bias", 1, (c)->n_embd, 0, 0, VKLM_INIT_ZERO, VKLM_MP_GPT2(c))         \
  X(LNF_W, "lnf.weight", 2, (c)->n_embd, 0, 0, VKLM_INIT_ONE, 1)                                 \
  X(LNF_B, "lnf.bias", 2, (c)->n_embd, 0, 0, VKLM_INIT_ZERO, VKLM_MP_GPT2(c))                    \
  X(LM_HEAD, "lm_head.weight", 2, (c)->vocab_size, (c)->n_embd, 1, VKLM_INIT_NORMAL,             \
    !(c)->tie_embeddings)                                                                         \
  X(SCORE_W, "score.weight", 2, 1, (c)->n_embd, 1, VKLM_INIT_NORMAL, (c)->scalar_head)            \
  X(SCORE_B, "score.bias", 2, 1, 0, 0, VKLM_INIT_ZERO, (c)->scalar_head)

#define VKLM_MP_ENUM(id, name, section, d0, d1, decay, init, present) VKLM_P_##id,
typedef enum vklm_param_id { VKLM_MODEL_PARAMS(VKLM_MP_ENUM) VKLM_P_COUNT } vklm_param_id;
#undef VKLM_MP_ENUM

/* The table expanded for a config: info[0..*n) in flat order (n <= vklm_model_table_max(cfg)),
 * init[i] the VKLM_INIT_* of each entry, id[i] its vklm_param_id. Returns the number of floats. */
uint32_t vklm_model_table_max(const vklm_model_config *cfg);
uint64_t vklm_model_table(const vklm_model_config *cfg, vklm_param_info *info, uint8_t *init,
                          uint8_t *id, uint32_t *n);

#endif

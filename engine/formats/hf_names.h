/* hf_names: the one mapping between vklm's parameter table (model_params.h) and the tensor names
 * of other tools: Hugging Face's GPT2LMHeadModel / LlamaForCausalLM safetensors keys, and
 * llama.cpp's GGUF names (token_embd.weight, blk.N.attn_q.weight, ...). Export (safetensors,
 * GGUF) and import (engine/formats/model_load.c) both walk this list, so names cannot drift.
 *
 * An entry maps ROWS [r0, r0+nr) of one vklm tensor to one external tensor: Llama's fused qkv
 * is three entries (q_proj/attn_q, k_proj/attn_k, v_proj/attn_v), its fused gate/up two.
 * Layouts:
 *  - HF GPT-2 stores its linear layers as Conv1D, weight (in, out): `transpose` is set and the
 *    external tensor is the transpose of the row slice. GGUF (as llama.cpp's converter writes it)
 *    stores every matrix (out, in) = vklm's layout: never transposed.
 *  - RoPE: vklm and HF use the rotate_half convention (pairs (i, i+HS/2) of a head rotate
 *    together). llama.cpp's kernels rotate adjacent pairs (2j, 2j+1), so its converter permutes
 *    the rows of Llama's Q and K weights within each head: GGUF row 2j+i of a head = HF row
 *    i*HS/2 + j (i in {0,1}, j < HS/2). `rope_perm` marks those entries (heads of HS rows);
 *    vklm_rope_row_to_gguf / _from_gguf map a row index inside the slice.
 *  - `alias`: the entry repeats another tensor under a second name (HF Llama with tied
 *    embeddings writes lm_head.weight = wte); readers skip it.
 * Does not: read or write files, or convert types. */
#ifndef VKLM_FORMATS_HF_NAMES_H
#define VKLM_FORMATS_HF_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef enum vklm_names_kind { VKLM_NAMES_HF = 0, VKLM_NAMES_GGUF = 1 } vklm_names_kind;

typedef struct vklm_name_map {
  char vname[64];     /* vklm's tensor name, layer filled in ("h.3.attn.qkv.weight") */
  char ext[96];       /* the external name ("model.layers.3.self_attn.q_proj.weight") */
  uint32_t r0, nr;    /* the vklm tensor's rows [r0, r0+nr); nr 0: all of them */
  uint8_t transpose;  /* external = transpose of the slice (HF GPT-2 Conv1D weights) */
  uint8_t rope_perm;  /* GGUF Llama Q/K: rows permuted per head of HS rows (see above) */
  uint8_t alias;      /* a second name for a tensor listed already (tied HF lm_head) */
} vklm_name_map;

/* Entries for config c, in vklm's flat order: writes at most cap entries into out (may be NULL)
 * and returns how many there are; 0 for a config vklm_model_config_check refuses (n_head 0, a
 * head size that does not divide, a huge n_layer, ...): callers treat 0 as an error. */
size_t vklm_name_map_build(const vklm_model_config *c, vklm_names_kind kind, vklm_name_map *out,
                           size_t cap);
/* Row r (< HS) of a head: its index in llama.cpp's interleaved order, and back. HS even (an HS
 * below 2 maps every row to itself rather than divide by zero). */
uint32_t vklm_rope_row_to_gguf(uint32_t r, uint32_t HS);
uint32_t vklm_rope_row_from_gguf(uint32_t g, uint32_t HS);

#endif

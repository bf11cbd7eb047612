/* The name table between vklm and Hugging Face / GGUF (see hf_names.h). */
#include <stdio.h>
#include <string.h>

#include "formats/hf_names.h"

typedef struct lst {
  vklm_name_map *out;
  size_t n, cap;
} lst;

static void put(lst *l, const char *vfmt, uint32_t layer, const char *efmt, uint32_t r0,
                uint32_t nr, int transpose, int rope, int alias) {
  if (l->out && l->n < l->cap) {
    vklm_name_map *e = &l->out[l->n];
    memset(e, 0, sizeof *e);
    snprintf(e->vname, sizeof e->vname, vfmt, layer);
    snprintf(e->ext, sizeof e->ext, efmt, layer);
    e->r0 = r0;
    e->nr = nr;
    e->transpose = (uint8_t)transpose;
    e->rope_perm = (uint8_t)rope;
    e->alias = (uint8_t)alias;
  }
  l->n++;
}

static void gpt2(lst *l, const vklm_model_config *c, int gg) {
  int T = !gg; /* HF Conv1D weights are (in, out) */
  put(l, "wte.weight", 0, gg ? "token_embd.weight" : "wte.weight", 0, 0, 0, 0, 0);
  put(l, "wpe.weight", 0, gg ? "position_embd.weight" : "wpe.weight", 0, 0, 0, 0, 0);
  for (uint32_t i = 0; i < c->n_layer; i++) {
    put(l, "h.%u.ln1.weight", i, gg ? "blk.%u.attn_norm.weight" : "h.%u.ln_1.weight", 0, 0, 0, 0, 0);
    put(l, "h.%u.ln1.bias", i, gg ? "blk.%u.attn_norm.bias" : "h.%u.ln_1.bias", 0, 0, 0, 0, 0);
    put(l, "h.%u.attn.qkv.weight", i, gg ? "blk.%u.attn_qkv.weight" : "h.%u.attn.c_attn.weight", 0, 0, T, 0, 0);
    put(l, "h.%u.attn.qkv.bias", i, gg ? "blk.%u.attn_qkv.bias" : "h.%u.attn.c_attn.bias", 0, 0, 0, 0, 0);
    put(l, "h.%u.attn.proj.weight", i, gg ? "blk.%u.attn_output.weight" : "h.%u.attn.c_proj.weight", 0, 0, T, 0, 0);
    put(l, "h.%u.attn.proj.bias", i, gg ? "blk.%u.attn_output.bias" : "h.%u.attn.c_proj.bias", 0, 0, 0, 0, 0);
    put(l, "h.%u.ln2.weight", i, gg ? "blk.%u.ffn_norm.weight" : "h.%u.ln_2.weight", 0, 0, 0, 0, 0);
    put(l, "h.%u.ln2.bias", i, gg ? "blk.%u.ffn_norm.bias" : "h.%u.ln_2.bias", 0, 0, 0, 0, 0);
    put(l, "h.%u.mlp.fc.weight", i, gg ? "blk.%u.ffn_up.weight" : "h.%u.mlp.c_fc.weight", 0, 0, T, 0, 0);
    put(l, "h.%u.mlp.fc.bias", i, gg ? "blk.%u.ffn_up.bias" : "h.%u.mlp.c_fc.bias", 0, 0, 0, 0, 0);
    put(l, "h.%u.mlp.proj.weight", i, gg ? "blk.%u.ffn_down.weight" : "h.%u.mlp.c_proj.weight", 0, 0, T, 0, 0);
    put(l, "h.%u.mlp.proj.bias", i, gg ? "blk.%u.ffn_down.bias" : "h.%u.mlp.c_proj.bias", 0, 0, 0, 0, 0);
  }
  put(l, "lnf.weight", 0, gg ? "output_norm.weight" : "ln_f.weight", 0, 0, 0, 0, 0);
  put(l, "lnf.bias", 0, gg ? "output_norm.bias" : "ln_f.bias", 0, 0, 0, 0, 0);
  if (!c->tie_embeddings)
    put(l, "lm_head.weight", 0, gg ? "output.weight" : "lm_head.weight", 0, 0, 0, 0, 0);
}

static void llama(lst *l, const vklm_model_config *c, int gg) {
  uint32_t HS = c->n_embd / c->n_head, q = c->n_head * HS, kv = c->n_kv_head * HS;
  uint32_t F = c->ffn_hidden;
  put(l, "wte.weight", 0, gg ? "token_embd.weight" : "model.embed_tokens.weight", 0, 0, 0, 0, 0);
  for (uint32_t i = 0; i < c->n_layer; i++) {
    put(l, "h.%u.ln1.weight", i, gg ? "blk.%u.attn_norm.weight" : "model.layers.%u.input_layernorm.weight", 0, 0, 0, 0, 0);
    put(l, "h.%u.attn.qkv.weight", i, gg ? "blk.%u.attn_q.weight" : "model.layers.%u.self_attn.q_proj.weight", 0, q, 0, gg, 0);
    put(l, "h.%u.attn.qkv.weight", i, gg ? "blk.%u.attn_k.weight" : "model.layers.%u.self_attn.k_proj.weight", q, kv, 0, gg, 0);
    put(l, "h.%u.attn.qkv.weight", i, gg ? "blk.%u.attn_v.weight" : "model.layers.%u.self_attn.v_proj.weight", q + kv, kv, 0, 0, 0);
    put(l, "h.%u.attn.proj.weight", i, gg ? "blk.%u.attn_output.weight" : "model.layers.%u.self_attn.o_proj.weight", 0, 0, 0, 0, 0);
    put(l, "h.%u.ln2.weight", i, gg ? "blk.%u.ffn_norm.weight" : "model.layers.%u.post_attention_layernorm.weight", 0, 0, 0, 0, 0);
    put(l, "h.%u.mlp.fc.weight", i, gg ? "blk.%u.ffn_gate.weight" : "model.layers.%u.mlp.gate_proj.weight", 0, F, 0, 0, 0);
    put(l, "h.%u.mlp.fc.weight", i, gg ? "blk.%u.ffn_up.weight" : "model.layers.%u.mlp.up_proj.weight", F, F, 0, 0, 0);
    put(l, "h.%u.mlp.proj.weight", i, gg ? "blk.%u.ffn_down.weight" : "model.layers.%u.mlp.down_proj.weight", 0, 0, 0, 0, 0);
  }
  put(l, "lnf.weight", 0, gg ? "output_norm.weight" : "model.norm.weight", 0, 0, 0, 0, 0);
  if (!c->tie_embeddings)
    put(l, "lm_head.weight", 0, gg ? "output.weight" : "lm_head.weight", 0, 0, 0, 0, 0);
  else if (!gg) /* HF writes the tied head under its own name as well */
    put(l, "wte.weight", 0, "lm_head.weight", 0, 0, 0, 0, 1);
}

size_t vklm_name_map_build(const vklm_model_config *c, vklm_names_kind kind, vklm_name_map *out,
                           size_t cap) {
  lst l = {out, 0, cap};
  /* n_head 0 or a head size of 0 would divide by zero below, a huge n_layer spin: refuse */
  if (vklm_model_config_check(c, NULL, 0) != VKLM_OK) return 0;
  if (c->arch == VKLM_ARCH_GPT2) gpt2(&l, c, kind == VKLM_NAMES_GGUF);
  else llama(&l, c, kind == VKLM_NAMES_GGUF);
  return l.n;
}

uint32_t vklm_rope_row_to_gguf(uint32_t r, uint32_t HS) {
  if (HS < 2) return r;
  uint32_t half = HS / 2, i = r / half, j = r % half;
  return 2 * j + i;
}

uint32_t vklm_rope_row_from_gguf(uint32_t g, uint32_t HS) {
  if (HS < 2) return g;
  uint32_t half = HS / 2;
  return (g % 2) * half + g / 2;
}

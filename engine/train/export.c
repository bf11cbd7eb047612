/* Export of a checkpoint to safetensors with Hugging Face's tensor names (GPT2LMHeadModel's
 * GPT2Model keys, LlamaForCausalLM's keys) and HF's config.json.
 *
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON ({name: {"dtype": "F32",
 * "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}, padded with spaces to a
 * multiple of 8), then the tensors' bytes (offsets relative to the end of the header).
 *
 * GPT-2 stores its linear layers as Conv1D, weight (in, out): vklm's (out, in) matrices are
 * transposed. Llama's fused qkv is split into q_proj, k_proj, v_proj and the fused gate/up
 * into gate_proj and up_proj (row ranges, see model_params.h); vklm's RoPE is HF's rotate_half
 * convention, so no permutation is needed. The name table is formats/hf_names.c (shared with
 * the importer and the GGUF export). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hf_names.h"
#include "train/train.h"

typedef struct out_tensor {
  char name[96];
  const float *src; /* rows x cols, row-major, already offset to the first row */
  uint32_t rows, cols; /* of the source slice; cols 0: 1-D of `rows` */
  int transpose;       /* write (cols, rows) */
} out_tensor;

typedef struct tlist {
  out_tensor *t;
  size_t n, cap;
} tlist;

static const vklm_param_info *find(const vklm_ckpt *c, const char *name) {
  for (uint32_t i = 0; i < c->ntensors; i++)
    if (!strcmp(c->table[i].name, name)) return &c->table[i];
  return NULL;
}

/* Adds rows [e->r0, e->r0 + e->nr) of the vklm tensor e->vname as HF tensor e->ext. */
static int add(tlist *l, const vklm_ckpt *c, const vklm_name_map *e, char *err, size_t errlen) {
  const vklm_param_info *p = find(c, e->vname);
  if (!p) {
    snprintf(err, errlen, "the checkpoint has no tensor '%s'", e->vname);
    return -1;
  }
  uint32_t cols = p->ndim >= 2 ? p->shape[1] : 0, r0 = e->r0, nr = e->nr;
  if (r0 > p->shape[0] || (nr == 0 && (nr = p->shape[0] - r0) == 0) || nr > p->shape[0] - r0) {
    snprintf(err, errlen, "tensor '%s' has %u rows; its Hugging Face part '%s' needs rows %u to "
             "%u (does the architecture match the table?)", p->name, p->shape[0], e->ext, r0,
             r0 + (e->nr ? e->nr : 1) - 1);
    return -1;
  }
  /* defence in depth (vklm_export_safetensors checked the table): inside the parameters */
  uint64_t cc = cols ? cols : 1, need = (uint64_t)(r0 + nr) * cc;
  if (p->ndim > 2 || need > p->count || p->count > c->nparams ||
      p->offset > c->nparams - p->count) {
    snprintf(err, errlen, "tensor '%s' lies outside the checkpoint's %llu parameters", p->name,
             (unsigned long long)c->nparams);
    return -1;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    out_tensor *t = realloc(l->t, cap * sizeof *l->t);
    if (!t) {
      snprintf(err, errlen, "out of host memory");
      return -1;
    }
    l->t = t;
    l->cap = cap;
  }
  out_tensor *o = &l->t[l->n++];
  snprintf(o->name, sizeof o->name, "%s", e->ext);
  o->src = c->params + p->offset + (uint64_t)r0 * (cols ? cols : 1);
  o->rows = nr;
  o->cols = cols;
  o->transpose = e->transpose && cols;
  return 0;
}

/* The HF tensors of the checkpoint, from the shared name table (formats/hf_names.h). */
static int build(tlist *l, const vklm_ckpt *c, char *err, size_t n) {
  size_t cnt = vklm_name_map_build(&c->st.model, VKLM_NAMES_HF, NULL, 0);
  if (!cnt) {
    snprintf(err, n, "no Hugging Face names for this model config");
    return -1;
  }
  vklm_name_map *map = malloc(cnt * sizeof *map);
  if (!map) {
    snprintf(err, n, "out of host memory");
    return -1;
  }
  vklm_name_map_build(&c->st.model, VKLM_NAMES_HF, map, cnt);
  int bad = 0;
  for (size_t i = 0; i < cnt && !bad; i++) bad = add(l, c, &map[i], err, n);
  free(map);
  return bad;
}

static char *hf_config(const vklm_ckpt *c) {
  const vklm_model_config *m = &c->st.model;
  cJSON *j = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(j, "architectures");
  if (m->arch == VKLM_ARCH_GPT2) {
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddStringToObject(j, "model_type", "gpt2");
    cJSON_AddNumberToObject(j, "vocab_size", m->vocab_size);
    cJSON_AddNumberToObject(j, "n_positions", m->max_seq);
    cJSON_AddNumberToObject(j, "n_ctx", m->max_seq);
    cJSON_AddNumberToObject(j, "n_embd", m->n_embd);
    cJSON_AddNumberToObject(j, "n_layer", m->n_layer);
    cJSON_AddNumberToObject(j, "n_head", m->n_head);
    cJSON_AddNumberToObject(j, "n_inner", m->ffn_hidden);
    cJSON_AddStringToObject(j, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(j, "layer_norm_epsilon", m->norm_eps);
    cJSON_AddNumberToObject(j, "resid_pdrop", 0);
    cJSON_AddNumberToObject(j, "embd_pdrop", 0);
    cJSON_AddNumberToObject(j, "attn_pdrop", 0);
  } else {
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(j, "model_type", "llama");
    cJSON_AddNumberToObject(j, "vocab_size", m->vocab_size);
    cJSON_AddNumberToObject(j, "hidden_size", m->n_embd);
    cJSON_AddNumberToObject(j, "intermediate_size", m->ffn_hidden);
    cJSON_AddNumberToObject(j, "num_hidden_layers", m->n_layer);
    cJSON_AddNumberToObject(j, "num_attention_heads", m->n_head);
    cJSON_AddNumberToObject(j, "num_key_value_heads", m->n_kv_head);
    cJSON_AddNumberToObject(j, "max_position_embeddings", m->max_seq);
    cJSON_AddNumberToObject(j, "rms_norm_eps", m->norm_eps);
    cJSON_AddNumberToObject(j, "rope_theta", m->rope_theta);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddBoolToObject(j, "attention_bias", 0);
    cJSON_AddBoolToObject(j, "mlp_bias", 0);
  }
  cJSON_AddBoolToObject(j, "tie_word_embeddings", m->tie_embeddings);
  cJSON_AddStringToObject(j, "torch_dtype", "float32");
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  return s;
}

static int write_file(const char *path, const void *data, size_t n, char *err, size_t errlen) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(data, 1, n, f) == n;
  if (f && fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

vklm_status vklm_export_safetensors(const vklm_ckpt *c, const char *path, const char *config_path,
                                    char *err, size_t errlen) {
  /* vklm_ckpt_read checked this already; a vklm_ckpt built another way is checked here too */
  char why[768];
  if (vklm_model_table_check(&c->st.model, c->table, c->ntensors, c->nparams, why, sizeof why) !=
      VKLM_OK) {
    snprintf(err, errlen, "cannot export: %s", why);
    return VKLM_ERROR_INVALID;
  }
  tlist l = {0};
  int bad = build(&l, c, err, errlen);
  if (bad) {
    free(l.t);
    return VKLM_ERROR_INVALID;
  }
  cJSON *h = cJSON_CreateObject();
  cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
  cJSON_AddStringToObject(meta, "format", "pt");
  cJSON_AddStringToObject(meta, "producer", "vklm export");
  uint64_t off = 0;
  for (size_t i = 0; i < l.n; i++) {
    out_tensor *t = &l.t[i];
    cJSON *o = cJSON_AddObjectToObject(h, t->name);
    cJSON_AddStringToObject(o, "dtype", "F32");
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    if (!t->cols) cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->rows));
    else {
      cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->transpose ? t->cols : t->rows));
      cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->transpose ? t->rows : t->cols));
    }
    uint64_t bytes = (uint64_t)t->rows * (t->cols ? t->cols : 1) * 4;
    cJSON *d = cJSON_AddArrayToObject(o, "data_offsets");
    cJSON_AddItemToArray(d, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(d, cJSON_CreateNumber((double)(off + bytes)));
    off += bytes;
  }
  char *js = cJSON_PrintUnformatted(h);
  cJSON_Delete(h);
  size_t jl = strlen(js), padded = (jl + 7) / 8 * 8;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  vklm_status st = VKLM_ERROR_IO;
  if (!f) {
    snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
    goto done;
  }
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
  int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(js, 1, jl, f) == jl;
  for (size_t i = jl; i < padded && ok; i++) ok = fputc(' ', f) != EOF;
  float *row = NULL;
  for (size_t i = 0; i < l.n && ok; i++) {
    out_tensor *t = &l.t[i];
    if (!t->transpose) {
      size_t cnt = (size_t)t->rows * (t->cols ? t->cols : 1);
      ok = fwrite(t->src, 4, cnt, f) == cnt;
    } else {
      float *nrow = realloc(row, (size_t)t->rows * 4);
      if (!nrow) {
        ok = 0;
        break;
      }
      row = nrow;
      for (uint32_t cidx = 0; cidx < t->cols && ok; cidx++) {
        for (uint32_t r = 0; r < t->rows; r++) row[r] = t->src[(size_t)r * t->cols + cidx];
        ok = fwrite(row, 4, t->rows, f) == t->rows;
      }
    }
  }
  free(row);
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    remove(tmp);
    goto done;
  }
  st = VKLM_OK;
  if (config_path) {
    char *cfg = hf_config(c);
    if (write_file(config_path, cfg, strlen(cfg), err, errlen) != 0) st = VKLM_ERROR_IO;
    cJSON_free(cfg);
  }
done:
  cJSON_free(js);
  free(l.t);
  return st;
}

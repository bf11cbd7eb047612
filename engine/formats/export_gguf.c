/* Export of a vklm model (flat fp32 parameters) to GGUF with llama.cpp's tensor names and
 * metadata, so llama.cpp and PyPI gguf read it (see model_load.h). Names from hf_names.c.
 * Llama: rows of attn_q / attn_k are permuted within each head into llama.cpp's interleaved RoPE
 * order (GGUF row 2j+i = vklm row i*HS/2 + j), exactly what llama.cpp's converter does to HF
 * weights; the importer undoes it. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/hf_names.h"
#include "formats/model_load.h"

static void seterr(char *err, size_t n, const char *fmt, ...) {
  if (!err || !n) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
}

static const vklm_param_info *find(const vklm_param_info *t, uint32_t n, const char *name) {
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(t[i].name, name)) return &t[i];
  return NULL;
}

/* tokenizer.ggml.* from a tokenizer.json (byte-level BPE): tokens padded to V with unused
 * "[PAD<id>]" entries. */
static int add_tokenizer(vklm_gguf_writer *w, const char *path, uint32_t V, char *err, size_t n) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long len = -1;
  if (f && fseek(f, 0, SEEK_END) == 0) len = ftell(f);
  if (f && len >= 0 && len < (256l << 20) && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, f) != (size_t)len)
    len = -1;
  if (f) fclose(f);
  if (!buf || len < 0) {
    free(buf);
    seterr(err, n, "cannot read tokenizer '%s'", path);
    return -1;
  }
  buf[len] = 0;
  cJSON *j = cJSON_Parse(buf);
  free(buf);
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(model, "type");
  int rc = -1;
  char **toks = calloc(V ? V : 1, sizeof *toks);
  int32_t *types = calloc(V ? V : 1, sizeof *types);
  const char **mstr = NULL;
  char **mown = NULL;
  size_t nm = 0;
  if (!cJSON_IsObject(vocab) || (mt && cJSON_IsString(mt) && strcmp(mt->valuestring, "BPE"))) {
    seterr(err, n, "tokenizer '%s' is not a BPE tokenizer.json", path);
    goto done;
  }
  if (!toks || !types) goto oom;
  const cJSON *it;
  int32_t eos = -1;
  cJSON_ArrayForEach(it, vocab) {
    double id = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (id < 0 || id >= V || id != (double)(uint32_t)id) {
      seterr(err, n, "tokenizer '%s': token '%.40s' has id %g outside the model's vocabulary "
             "(%u)", path, it->string, id, V);
      goto done;
    }
    free(toks[(uint32_t)id]);
    if (!(toks[(uint32_t)id] = strdup(it->string))) goto oom;
    types[(uint32_t)id] = 1;
  }
  cJSON_ArrayForEach(it, added) {
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(it, "id");
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(it, "content");
    double id = cJSON_IsNumber(idj) ? idj->valuedouble : -1;
    if (!cJSON_IsString(cj) || id < 0 || id >= V || id != (double)(uint32_t)id) {
      seterr(err, n, "tokenizer '%s': an added token has a bad id or content (vocabulary %u)",
             path, V);
      goto done;
    }
    uint32_t u = (uint32_t)id;
    free(toks[u]);
    if (!(toks[u] = strdup(cj->valuestring))) goto oom;
    types[u] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? 3 : 4;
    if (!strcmp(cj->valuestring, "<|endoftext|>")) eos = (int32_t)u;
  }
  for (uint32_t i = 0; i < V; i++)
    if (!toks[i]) {
      char pad[32];
      snprintf(pad, sizeof pad, "[PAD%u]", i);
      if (!(toks[i] = strdup(pad))) goto oom;
      types[i] = 5;
    }
  size_t mcount = cJSON_IsArray(merges) ? (size_t)cJSON_GetArraySize(merges) : 0;
  mstr = calloc(mcount + 1, sizeof *mstr);
  mown = calloc(mcount + 1, sizeof *mown);
  if (!mstr || !mown) goto oom;
  cJSON_ArrayForEach(it, merges) {
    if (cJSON_IsString(it)) mstr[nm++] = it->valuestring;
    else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
             cJSON_IsString(cJSON_GetArrayItem(it, 0)) && cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
      const char *a = cJSON_GetArrayItem(it, 0)->valuestring, *b = cJSON_GetArrayItem(it, 1)->valuestring;
      char *s = malloc(strlen(a) + strlen(b) + 2);
      if (!s) goto oom;
      sprintf(s, "%s %s", a, b);
      mown[nm] = s;
      mstr[nm++] = s;
    } else {
      seterr(err, n, "tokenizer '%s': merge #%zu is neither \"a b\" nor [a, b]", path, nm);
      goto done;
    }
  }
  /* the pre-tokenizer: GPT-2's unless a Split carries Llama 3's regex */
  const char *pre = "gpt-2";
  char *pj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"));
  if (pj && strstr(pj, "(?i:'s|'t|'re|'ve|'m|'ll|'d)")) pre = "llama-bpe";
  cJSON_free(pj);
  if (vklm_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2") ||
      vklm_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre) ||
      vklm_gguf_writer_add_array_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, V) ||
      vklm_gguf_writer_add_array(w, "tokenizer.ggml.token_type", VKLM_GGUF_TYPE_INT32, types, V) ||
      vklm_gguf_writer_add_array_str(w, "tokenizer.ggml.merges", mstr, nm) ||
      (eos >= 0 && (vklm_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)eos) ||
                    vklm_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos)))) {
    seterr(err, n, "cannot add the tokenizer metadata");
    goto done;
  }
  rc = 0;
  goto done;
oom:
  seterr(err, n, "out of host memory reading the tokenizer");
done:
  if (toks)
    for (uint32_t i = 0; i < V; i++) free(toks[i]);
  free(toks);
  free(types);
  if (mown)
    for (size_t i = 0; i < nm; i++) free(mown[i]);
  free(mown);
  free(mstr);
  cJSON_Delete(j);
  return rc;
}

vklm_status vklm_export_gguf(const char *path, const vklm_model_config *cfg,
                             const vklm_param_info *table, uint32_t ntensors, const float *params,
                             uint32_t linear_type, const char *tokenizer_json, char *err,
                             size_t errlen) {
  if (linear_type != VKLM_GGML_TYPE_F32 && linear_type != VKLM_GGML_TYPE_F16 &&
      linear_type != VKLM_GGML_TYPE_Q8_0 && linear_type != VKLM_GGML_TYPE_Q4_0) {
    seterr(err, errlen, "GGUF export: type %u is not one of F32, F16, Q8_0, Q4_0", linear_type);
    return VKLM_ERROR_INVALID;
  }
  /* The config and the table it implies, before any division by n_head or head size: a table
   * from vklm_ckpt_read passed this already, a caller's own is checked here (params must hold
   * vklm_model_config_params(cfg) floats). */
  char why[768];
  if (vklm_model_table_check(cfg, table, ntensors, 0, why, sizeof why) != VKLM_OK) {
    seterr(err, errlen, "GGUF export: %s", why);
    return VKLM_ERROR_INVALID;
  }
  vklm_gguf_writer *w = NULL;
  if (vklm_gguf_writer_create(0, &w) != 0) {
    seterr(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  const int gpt2 = cfg->arch == VKLM_ARCH_GPT2;
  const char *arch = gpt2 ? "gpt2" : "llama";
  uint32_t HS = cfg->n_embd / cfg->n_head;
  char k[128];
  int bad = vklm_gguf_writer_add_str(w, "general.architecture", arch) ||
            vklm_gguf_writer_add_str(w, "general.name", gpt2 ? "vklm-gpt2" : "vklm-llama");
  uint32_t ftype = linear_type == VKLM_GGML_TYPE_F32 ? 0 : linear_type == VKLM_GGML_TYPE_F16 ? 1
                   : linear_type == VKLM_GGML_TYPE_Q4_0 ? 2 : 7; /* llama_ftype */
  bad = bad || vklm_gguf_writer_add_u32(w, "general.file_type", ftype);
#define U32(key, v) (snprintf(k, sizeof k, "%s." key, arch), vklm_gguf_writer_add_u32(w, k, (v)))
#define F32(key, v) (snprintf(k, sizeof k, "%s." key, arch), vklm_gguf_writer_add_f32(w, k, (v)))
  bad = bad || U32("context_length", cfg->max_seq) || U32("embedding_length", cfg->n_embd) ||
        U32("block_count", cfg->n_layer) || U32("feed_forward_length", cfg->ffn_hidden) ||
        U32("attention.head_count", cfg->n_head) ||
        U32("attention.head_count_kv", cfg->n_kv_head) || U32("vocab_size", cfg->vocab_size);
  if (gpt2) bad = bad || F32("attention.layer_norm_epsilon", cfg->norm_eps);
  else
    bad = bad || F32("attention.layer_norm_rms_epsilon", cfg->norm_eps) ||
          F32("rope.freq_base", cfg->rope_theta) || U32("rope.dimension_count", HS);
#undef U32
#undef F32
  if (bad) {
    vklm_gguf_writer_destroy(w);
    seterr(err, errlen, "cannot add the GGUF metadata");
    return VKLM_ERROR_INVALID;
  }
  if (tokenizer_json && add_tokenizer(w, tokenizer_json, cfg->vocab_size, err, errlen)) {
    vklm_gguf_writer_destroy(w);
    return VKLM_ERROR_INVALID;
  }
  size_t cnt = vklm_name_map_build(cfg, VKLM_NAMES_GGUF, NULL, 0);
  vklm_name_map *map = malloc((cnt ? cnt : 1) * sizeof *map);
  float *tmp = NULL;
  vklm_status rc = VKLM_ERROR_INVALID;
  if (!map) goto oom;
  if (!cnt) {
    seterr(err, errlen, "GGUF export: no GGUF names for this model config");
    goto done;
  }
  vklm_name_map_build(cfg, VKLM_NAMES_GGUF, map, cnt);
  for (size_t i = 0; i < cnt; i++) {
    const vklm_name_map *e = &map[i];
    const vklm_param_info *p = find(table, ntensors, e->vname);
    if (!p) {
      seterr(err, errlen, "the model has no tensor '%s'", e->vname);
      goto done;
    }
    uint32_t cols = p->ndim >= 2 ? p->shape[1] : 0, nr = e->nr ? e->nr : p->shape[0] - e->r0;
    uint64_t cc = cols ? cols : 1;
    if (e->r0 > p->shape[0] || nr == 0 || nr > p->shape[0] - e->r0 ||
        (e->rope_perm && (HS < 2 || nr % HS))) {
      seterr(err, errlen, "GGUF export: tensor '%s' has %u rows; '%s' needs rows %u to %u",
             p->name, p->shape[0], e->ext, e->r0, e->r0 + (nr ? nr : 1) - 1);
      goto done;
    }
    const float *src = params + p->offset + (uint64_t)e->r0 * cc;
    if (e->rope_perm) {
      free(tmp);
      if (!(tmp = malloc((uint64_t)nr * cc * 4))) goto oom;
      for (uint32_t r = 0; r < nr; r++) {
        uint32_t g = (r / HS) * HS + vklm_rope_row_to_gguf(r % HS, HS);
        memcpy(tmp + (uint64_t)g * cc, src + (uint64_t)r * cc, cc * 4);
      }
      src = tmp;
    }
    int linear = cols && strcmp(e->vname, "wte.weight") && strcmp(e->vname, "wpe.weight");
    uint32_t type = VKLM_GGML_TYPE_F32;
    if (linear) {
      type = linear_type;
      if ((type == VKLM_GGML_TYPE_Q8_0 || type == VKLM_GGML_TYPE_Q4_0) && cols % 32)
        type = VKLM_GGML_TYPE_F16;
    }
    int64_t ne[2] = {cols ? (int64_t)cols : (int64_t)nr, (int64_t)nr};
    if (vklm_gguf_writer_add_tensor(w, e->ext, type, cols ? 2 : 1, ne, src) != 0) {
      seterr(err, errlen, "cannot add tensor '%s' as %s (a non-finite value?)", e->ext,
             vklm_ggml_type_name(type));
      goto done;
    }
  }
  free(tmp);
  free(map);
  if (vklm_gguf_writer_finish(w, path, err, errlen) != 0) return VKLM_ERROR_IO;
  return VKLM_OK;
oom:
  seterr(err, errlen, "out of host memory");
  rc = VKLM_ERROR_OUT_OF_HOST_MEMORY;
done:
  free(tmp);
  free(map);
  vklm_gguf_writer_destroy(w);
  return rc;
}

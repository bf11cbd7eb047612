/* Import of Hugging Face (safetensors + config.json) and GGUF models into vklm's parameter table
 * (see model_load.h). The tensor names come from hf_names.c, shared with the exporters. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/gguf.h"
#include "formats/hf_names.h"
#include "formats/model_load.h"
#include "formats/safetensors.h"
#include "model/model_params.h"

#define MAX_LAYERS 4096u
#define MAX_DIM (1u << 20)      /* embedding, heads, ffn, context: generous, bounds the products */
#define MAX_VOCAB (1u << 24)

static void seterr(char *err, size_t n, const char *fmt, ...) {
  if (!err || !n) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
}

/* ---- one external tensor, whichever file it comes from ---- */
typedef struct src_tensor {
  uint32_t type;      /* ggml type number (safetensors F32/F16/BF16 mapped to it) */
  uint32_t ndim;
  uint64_t shape[4];  /* row-major, outermost first */
  const void *data;
  uint64_t nbytes;
} src_tensor;

typedef struct source {
  vklm_gguf *g;
  vklm_safetensors *st;
  const char *prefix; /* HF GPT-2: "transformer." when the keys carry it */
} source;

static int src_find(const source *s, const char *name, src_tensor *o, char *err, size_t n) {
  memset(o, 0, sizeof *o);
  if (s->g) {
    const vklm_gguf_tensor *t = vklm_gguf_tensor_find(s->g, name);
    if (!t) return 1;
    if (!vklm_ggml_type_supported(t->type)) {
      const char *tn = vklm_ggml_type_name(t->type);
      seterr(err, n, "tensor '%s' has type %s (%u), which vklm cannot read (F32, F16, BF16, Q8_0, "
             "Q4_0)", name, tn ? tn : "unknown", t->type);
      return -1;
    }
    o->type = t->type;
    o->ndim = t->n_dims;
    for (uint32_t d = 0; d < t->n_dims; d++) o->shape[d] = (uint64_t)t->ne[t->n_dims - 1 - d];
    o->data = t->data;
    o->nbytes = t->nbytes;
    return 0;
  }
  char full[160];
  const vklm_st_tensor *t = NULL;
  if (s->prefix) {
    snprintf(full, sizeof full, "%s%s", s->prefix, name);
    t = vklm_safetensors_find(s->st, full);
  }
  if (!t) t = vklm_safetensors_find(s->st, name);
  if (!t) return 1;
  if (!t->supported || t->n_dims > 4) {
    seterr(err, n, "tensor '%s' has dtype %s with %u dims; vklm reads F32, F16, BF16 up to 4-D",
           name, t->dtype, t->n_dims);
    return -1;
  }
  o->type = !strcmp(t->dtype, "F32") ? VKLM_GGML_TYPE_F32
            : !strcmp(t->dtype, "F16") ? VKLM_GGML_TYPE_F16 : VKLM_GGML_TYPE_BF16;
  o->ndim = t->n_dims;
  for (uint32_t d = 0; d < t->n_dims; d++) o->shape[d] = t->shape[d];
  o->data = t->data;
  o->nbytes = t->nbytes;
  return 0;
}

static void shape_str(const src_tensor *t, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "(");
  for (uint32_t d = 0; d < t->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
  if (k < n) snprintf(buf + k, n - k, ")");
}

/* ---- hyperparameters ---- */
static int json_u32(const cJSON *j, const char *key, uint32_t *v, int required, char *err,
                    size_t n) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!x || cJSON_IsNull(x)) {
    if (required) seterr(err, n, "config.json has no '%s'", key);
    return required ? -1 : 1;
  }
  double d = cJSON_IsNumber(x) ? x->valuedouble : -1;
  if (d < 1 || d > 4294967295.0 || d != (double)(uint64_t)d) {
    seterr(err, n, "config.json: '%s' is not a positive integer", key);
    return -1;
  }
  *v = (uint32_t)d;
  return 0;
}

static int json_f32(const cJSON *j, const char *key, float *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!cJSON_IsNumber(x)) return 1;
  *v = (float)x->valuedouble;
  return 0;
}

static int hf_config(const char *path, vklm_model_config *c, char *err, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    seterr(err, n, "cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  char *buf = NULL;
  long len = -1;
  if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
  if (len >= 0 && len < (16l << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)))
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) len = -1;
  fclose(f);
  if (!buf || len < 0) {
    free(buf);
    seterr(err, n, "cannot read '%s' (or larger than 16 MiB)", path);
    return -1;
  }
  buf[len] = 0;
  cJSON *j = cJSON_Parse(buf);
  free(buf);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    seterr(err, n, "'%s' is not a JSON object", path);
    return -1;
  }
  int rc = -1;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
  const char *type = cJSON_IsString(mt) ? mt->valuestring : "";
  memset(c, 0, sizeof *c);
  const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
  if (!strcmp(type, "gpt2")) {
    c->arch = VKLM_ARCH_GPT2;
    if (json_u32(j, "vocab_size", &c->vocab_size, 1, err, n) ||
        json_u32(j, "n_positions", &c->max_seq, 1, err, n) ||
        json_u32(j, "n_embd", &c->n_embd, 1, err, n) ||
        json_u32(j, "n_layer", &c->n_layer, 1, err, n) ||
        json_u32(j, "n_head", &c->n_head, 1, err, n))
      goto done;
    c->n_kv_head = c->n_head;
    int r = json_u32(j, "n_inner", &c->ffn_hidden, 0, err, n);
    if (r < 0) goto done;
    if (r) c->ffn_hidden = 4 * c->n_embd;
    c->norm_eps = 1e-5f;
    json_f32(j, "layer_norm_epsilon", &c->norm_eps);
    c->rope_theta = 10000.0f;
    c->tie_embeddings = tie ? cJSON_IsTrue(tie) : 1;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "activation_function");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu_new") &&
        strcmp(act->valuestring, "gelu_pytorch_tanh")) {
      seterr(err, n, "config.json: activation_function '%s' (vklm's GPT-2 uses tanh-GELU, "
             "gelu_new)", act->valuestring);
      goto done;
    }
  } else if (!strcmp(type, "llama")) {
    c->arch = VKLM_ARCH_LLAMA;
    if (json_u32(j, "vocab_size", &c->vocab_size, 1, err, n) ||
        json_u32(j, "max_position_embeddings", &c->max_seq, 1, err, n) ||
        json_u32(j, "hidden_size", &c->n_embd, 1, err, n) ||
        json_u32(j, "num_hidden_layers", &c->n_layer, 1, err, n) ||
        json_u32(j, "num_attention_heads", &c->n_head, 1, err, n) ||
        json_u32(j, "intermediate_size", &c->ffn_hidden, 1, err, n))
      goto done;
    int r = json_u32(j, "num_key_value_heads", &c->n_kv_head, 0, err, n);
    if (r < 0) goto done;
    if (r) c->n_kv_head = c->n_head;
    c->norm_eps = 1e-6f;
    json_f32(j, "rms_norm_eps", &c->norm_eps);
    c->rope_theta = 10000.0f;
    json_f32(j, "rope_theta", &c->rope_theta);
    c->tie_embeddings = tie ? cJSON_IsTrue(tie) : 0;
    uint32_t hd = 0;
    if (json_u32(j, "head_dim", &hd, 0, err, n) == 0 && hd * c->n_head != c->n_embd) {
      seterr(err, n, "config.json: head_dim %u * num_attention_heads %u != hidden_size %u "
             "(vklm needs C = NH * HS)", hd, c->n_head, c->n_embd);
      goto done;
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
      seterr(err, n, "config.json: rope_scaling is set; vklm implements plain RoPE only");
      goto done;
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(j, "attention_bias");
    if (cJSON_IsTrue(ab)) {
      seterr(err, n, "config.json: attention_bias is true; vklm's Llama has no biases");
      goto done;
    }
  } else {
    seterr(err, n, "config.json: model_type '%s' is not supported (gpt2, llama)", type);
    goto done;
  }
  rc = 0;
done:
  cJSON_Delete(j);
  return rc;
}

static int gguf_u32(const vklm_gguf *g, const char *arch, const char *key, uint32_t *v,
                    int required, char *err, size_t n) {
  char k[128];
  snprintf(k, sizeof k, "%s.%s", arch, key);
  if (vklm_gguf_kv_find(g, k) < 0) {
    if (required) seterr(err, n, "GGUF metadata has no '%s'", k);
    return required ? -1 : 1;
  }
  if (vklm_gguf_get_u32(g, k, v) != 0 || *v == 0) {
    seterr(err, n, "GGUF metadata '%s' is not a positive 32-bit integer", k);
    return -1;
  }
  return 0;
}

static int gguf_f32(const vklm_gguf *g, const char *arch, const char *key, float *v) {
  char k[128];
  snprintf(k, sizeof k, "%s.%s", arch, key);
  return vklm_gguf_get_f32(g, k, v);
}

static int gguf_config(const vklm_gguf *g, vklm_model_config *c, char *err, size_t n) {
  const char *arch = NULL;
  uint64_t alen = 0;
  memset(c, 0, sizeof *c);
  if (vklm_gguf_get_str(g, "general.architecture", &arch, &alen) != 0) {
    seterr(err, n, "GGUF metadata has no string 'general.architecture'");
    return -1;
  }
  if (!strcmp(arch, "gpt2")) c->arch = VKLM_ARCH_GPT2;
  else if (!strcmp(arch, "llama")) c->arch = VKLM_ARCH_LLAMA;
  else {
    seterr(err, n, "GGUF architecture '%.64s' is not supported (gpt2, llama)", arch);
    return -1;
  }
  if (gguf_u32(g, arch, "context_length", &c->max_seq, 1, err, n) ||
      gguf_u32(g, arch, "embedding_length", &c->n_embd, 1, err, n) ||
      gguf_u32(g, arch, "block_count", &c->n_layer, 1, err, n) ||
      gguf_u32(g, arch, "feed_forward_length", &c->ffn_hidden, 1, err, n) ||
      gguf_u32(g, arch, "attention.head_count", &c->n_head, 1, err, n))
    return -1;
  int r = gguf_u32(g, arch, "attention.head_count_kv", &c->n_kv_head, 0, err, n);
  if (r < 0) return -1;
  if (r) c->n_kv_head = c->n_head;
  c->rope_theta = 10000.0f;
  if (c->arch == VKLM_ARCH_GPT2) {
    c->norm_eps = 1e-5f;
    gguf_f32(g, arch, "attention.layer_norm_epsilon", &c->norm_eps);
  } else {
    c->norm_eps = 1e-5f;
    gguf_f32(g, arch, "attention.layer_norm_rms_epsilon", &c->norm_eps);
    gguf_f32(g, arch, "rope.freq_base", &c->rope_theta);
    uint32_t rd = 0;
    if (gguf_u32(g, arch, "rope.dimension_count", &rd, 0, err, n) == 0 && c->n_head &&
        rd != c->n_embd / c->n_head) {
      seterr(err, n, "GGUF %s.rope.dimension_count %u != head size %u (partial RoPE is not "
             "supported)", arch, rd, c->n_embd / c->n_head);
      return -1;
    }
  }
  /* vocabulary: llama.vocab_size when present, else token_embd's rows */
  r = gguf_u32(g, arch, "vocab_size", &c->vocab_size, 0, err, n);
  if (r < 0) return -1;
  const vklm_gguf_tensor *te = vklm_gguf_tensor_find(g, "token_embd.weight");
  if (!te) {
    seterr(err, n, "GGUF has no tensor 'token_embd.weight'");
    return -1;
  }
  if (r) {
    if (te->n_dims != 2 || te->ne[1] > (int64_t)MAX_VOCAB) {
      seterr(err, n, "tensor 'token_embd.weight' is not a (vocab, embd) matrix");
      return -1;
    }
    c->vocab_size = (uint32_t)te->ne[1];
  }
  c->tie_embeddings = vklm_gguf_tensor_find(g, "output.weight") == NULL;
  return 0;
}

static int config_bounds(const vklm_model_config *c, char *err, size_t n) {
  if (c->n_layer > MAX_LAYERS || c->n_embd > MAX_DIM || c->n_head > MAX_DIM ||
      c->n_kv_head > MAX_DIM || c->ffn_hidden > MAX_DIM || c->max_seq > MAX_DIM ||
      c->vocab_size > MAX_VOCAB) {
    seterr(err, n, "hyperparameters out of range: layers %u (<= %u), embd %u, heads %u/%u, ffn %u, "
           "context %u (<= %u), vocab %u (<= %u)", c->n_layer, MAX_LAYERS, c->n_embd, c->n_head,
           c->n_kv_head, c->ffn_hidden, c->max_seq, MAX_DIM, c->vocab_size, MAX_VOCAB);
    return -1;
  }
  char e[512];
  if (vklm_model_config_check(c, e, sizeof e) != VKLM_OK) {
    seterr(err, n, "inconsistent hyperparameters: %s", e);
    return -1;
  }
  if (c->arch == VKLM_ARCH_LLAMA && (c->n_embd / c->n_head) % 2) {
    seterr(err, n, "head size %u is odd (RoPE needs pairs)", c->n_embd / c->n_head);
    return -1;
  }
  return 0;
}

/* ---- tensors ---- */
static int is_linear(const vklm_param_info *p) {
  return p->ndim == 2 && strcmp(p->name, "wte.weight") && strcmp(p->name, "wpe.weight");
}

/* Loads table entry p from the parts of map[0..cnt) that name it. */
static int load_tensor(const source *s, const vklm_model_config *c, const vklm_param_info *p,
                       const vklm_name_map *map, size_t cnt, int keep_quant,
                       vklm_loaded_tensor *o, char *err, size_t n) {
  uint32_t rows = p->shape[0], cols = p->ndim >= 2 ? p->shape[1] : 0;
  uint32_t HS = c->n_embd / c->n_head;
  src_tensor parts[4];
  const vklm_name_map *pm[4];
  size_t np = 0;
  for (size_t i = 0; i < cnt; i++) {
    if (strcmp(map[i].vname, p->name) || map[i].alias) continue;
    VKLM_ASSERT(np < 4, "too many parts for %s", p->name);
    int r = src_find(s, map[i].ext, &parts[np], err, n);
    if (r < 0) return -1;
    if (r > 0) {
      seterr(err, n, "missing tensor '%s' (vklm's %s)", map[i].ext, p->name);
      return -1;
    }
    /* expected external shape */
    const vklm_name_map *e = &map[i];
    uint32_t nr = e->nr ? e->nr : rows - e->r0;
    uint64_t want[2] = {e->transpose ? cols : nr, e->transpose ? nr : cols};
    uint32_t wd = cols ? 2 : 1;
    const src_tensor *t = &parts[np];
    int ok = t->ndim == wd && t->shape[0] == want[0] && (wd == 1 || t->shape[1] == want[1]);
    if (!ok) {
      char got[96];
      shape_str(t, got, sizeof got);
      if (wd == 1) seterr(err, n, "tensor '%s' has shape %s, expected (%llu) from the "
                          "hyperparameters", e->ext, got, (unsigned long long)want[0]);
      else seterr(err, n, "tensor '%s' has shape %s, expected (%llu, %llu) from the "
                  "hyperparameters", e->ext, got, (unsigned long long)want[0],
                  (unsigned long long)want[1]);
      return -1;
    }
    pm[np++] = e;
  }
  if (np == 0) {
    seterr(err, n, "no external name for vklm tensor '%s'", p->name);
    return -1;
  }
  o->rows = rows;
  o->cols = cols;
  /* raw: every part of one kept type, no transpose */
  vklm_dtype wt = VKLM_DTYPE_F32;
  int raw = keep_quant && is_linear(p) && vklm_dtype_from_ggml(parts[0].type, &wt) == 0 &&
            wt != VKLM_DTYPE_F32;
  for (size_t i = 0; i < np && raw; i++)
    raw = parts[i].type == parts[0].type && !pm[i]->transpose &&
          vklm_ggml_row_bytes(parts[i].type, cols) > 0;
  if (raw) {
    int64_t rb = vklm_ggml_row_bytes(parts[0].type, cols);
    o->type = wt;
    o->nbytes = (uint64_t)rb * rows;
    o->data = malloc(o->nbytes ? o->nbytes : 1);
    if (!o->data) goto oom;
    for (size_t i = 0; i < np; i++) {
      const vklm_name_map *e = pm[i];
      uint32_t nr = e->nr ? e->nr : rows - e->r0;
      VKLM_ASSERT(parts[i].nbytes == (uint64_t)rb * nr, "bytes of %s", e->ext);
      const uint8_t *src = parts[i].data;
      for (uint32_t r = 0; r < nr; r++) {
        uint32_t d = r;
        if (e->rope_perm) d = (r / HS) * HS + vklm_rope_row_from_gguf(r % HS, HS);
        memcpy((uint8_t *)o->data + (uint64_t)(e->r0 + d) * rb, src + (uint64_t)r * rb, (size_t)rb);
      }
    }
    return 0;
  }
  uint64_t cc = cols ? cols : 1;
  o->type = VKLM_DTYPE_F32;
  o->nbytes = (uint64_t)rows * cc * 4;
  o->data = malloc(o->nbytes ? o->nbytes : 1);
  if (!o->data) goto oom;
  float *dst = o->data;
  for (size_t i = 0; i < np; i++) {
    const vklm_name_map *e = pm[i];
    uint32_t nr = e->nr ? e->nr : rows - e->r0;
    uint64_t cnt_el = (uint64_t)nr * cc;
    float *tmp = malloc(cnt_el * 4 + 4);
    if (!tmp) goto oom;
    if (vklm_ggml_to_f32(parts[i].type, tmp, parts[i].data, (size_t)cnt_el) != 0) {
      free(tmp);
      seterr(err, n, "tensor '%s': cannot convert its %s data to fp32 (row length %u not a "
             "multiple of the block?)", e->ext, vklm_ggml_type_name(parts[i].type), cols);
      return -1;
    }
    for (uint32_t r = 0; r < nr; r++) {
      uint32_t d = r;
      if (e->rope_perm) d = (r / HS) * HS + vklm_rope_row_from_gguf(r % HS, HS);
      float *row = dst + (uint64_t)(e->r0 + d) * cc;
      if (!e->transpose) memcpy(row, tmp + (uint64_t)r * cc, cc * 4);
      else
        for (uint32_t k = 0; k < cols; k++) row[k] = tmp[(uint64_t)k * nr + r];
    }
    free(tmp);
  }
  return 0;
oom:
  seterr(err, n, "out of host memory for tensor '%s'", p->name);
  return -1;
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

vklm_status vklm_model_load(const char *path, int keep_quant, vklm_loaded_model **out, char *err,
                            size_t errlen) {
  *out = NULL;
  vklm_loaded_model *m = calloc(1, sizeof *m);
  source s = {0};
  vklm_name_map *map = NULL;
  vklm_status rc = VKLM_ERROR_INVALID;
  char p1[8192], p2[8192];
  if (!m) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  m->bos_id = m->eos_id = -1;
  vklm_names_kind kind;
  if (ends_with(path, ".gguf") && !is_dir(path)) {
    kind = VKLM_NAMES_GGUF;
    snprintf(m->format, sizeof m->format, "gguf");
    if (vklm_gguf_open(path, &s.g, err, errlen) != 0) {
      rc = VKLM_ERROR_IO;
      goto done;
    }
    if (gguf_config(s.g, &m->cfg, err, errlen)) goto done;
  } else {
    kind = VKLM_NAMES_HF;
    snprintf(m->format, sizeof m->format, "hf");
    const char *dir = path;
    char dbuf[4096];
    if (!is_dir(path)) { /* a .safetensors file: config.json beside it */
      snprintf(dbuf, sizeof dbuf, "%s", path);
      char *sl = strrchr(dbuf, '/');
      if (sl) *sl = 0;
      else snprintf(dbuf, sizeof dbuf, ".");
      dir = dbuf;
      snprintf(p2, sizeof p2, "%s", path);
    } else {
      snprintf(p2, sizeof p2, "%s/model.safetensors", dir);
    }
    snprintf(p1, sizeof p1, "%s/config.json", dir);
    if (hf_config(p1, &m->cfg, err, errlen)) goto done;
    if (vklm_safetensors_open(p2, &s.st, err, errlen) != 0) {
      snprintf(p1, sizeof p1, "%s/model.safetensors.index.json", dir);
      FILE *ix = fopen(p1, "rb");
      if (ix) {
        fclose(ix);
        seterr(err, errlen, "'%s' holds a sharded checkpoint (model.safetensors.index.json); "
               "vklm reads one model.safetensors", dir);
      }
      rc = VKLM_ERROR_IO;
      goto done;
    }
    if (m->cfg.arch == VKLM_ARCH_GPT2 && !vklm_safetensors_find(s.st, "wte.weight") &&
        vklm_safetensors_find(s.st, "transformer.wte.weight"))
      s.prefix = "transformer.";
    snprintf(p1, sizeof p1, "%s/tokenizer.json", dir);
    FILE *tf = fopen(p1, "rb");
    if (tf) {
      fclose(tf);
      char te[512];
      if (vklm_tokenizer_load_json(p1, &m->tokenizer, te, sizeof te) != 0)
        snprintf(m->tokenizer_note, sizeof m->tokenizer_note, "tokenizer.json not loaded: %.200s", te);
    } else snprintf(m->tokenizer_note, sizeof m->tokenizer_note, "no tokenizer.json");
  }
  if (config_bounds(&m->cfg, err, errlen)) goto done;
  /* the table */
  uint32_t tmax = vklm_model_table_max(&m->cfg), nt = 0;
  m->table = calloc(tmax ? tmax : 1, sizeof *m->table);
  uint8_t *init = malloc(tmax + 1), *ids = malloc(tmax + 1);
  if (!m->table || !init || !ids) {
    free(init);
    free(ids);
    rc = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    seterr(err, errlen, "out of host memory");
    goto done;
  }
  m->nparams = vklm_model_table(&m->cfg, m->table, init, ids, &nt);
  free(init);
  free(ids);
  m->ntensors = nt;
  m->t = calloc(nt ? nt : 1, sizeof *m->t);
  size_t cnt = vklm_name_map_build(&m->cfg, kind, NULL, 0);
  map = malloc((cnt ? cnt : 1) * sizeof *map);
  if (!m->t || !map) {
    rc = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    seterr(err, errlen, "out of host memory");
    goto done;
  }
  vklm_name_map_build(&m->cfg, kind, map, cnt);
  for (uint32_t i = 0; i < nt; i++)
    if (load_tensor(&s, &m->cfg, &m->table[i], map, cnt, keep_quant, &m->t[i], err, errlen))
      goto done;
  if (s.g) {
    const char *ct = NULL;
    uint64_t cl = 0;
    if (vklm_gguf_get_str(s.g, "tokenizer.chat_template", &ct, &cl) == 0) {
      m->chat_template = malloc(cl + 1);
      if (m->chat_template) {
        memcpy(m->chat_template, ct, cl);
        m->chat_template[cl] = 0;
      }
    }
    vklm_tokenizer_from_gguf(s.g, &m->tokenizer, &m->bos_id, &m->eos_id, m->tokenizer_note,
                             sizeof m->tokenizer_note);
  }
  rc = VKLM_OK;
done:
  free(map);
  vklm_gguf_close(s.g);
  vklm_safetensors_close(s.st);
  if (rc == VKLM_OK) *out = m;
  else vklm_loaded_model_free(m);
  return rc;
}

void vklm_loaded_model_free(vklm_loaded_model *m) {
  if (!m) return;
  if (m->t)
    for (uint32_t i = 0; i < m->ntensors; i++) free(m->t[i].data);
  free(m->t);
  free(m->table);
  free(m->chat_template);
  vklm_tokenizer_destroy(m->tokenizer);
  free(m);
}

vklm_status vklm_loaded_model_params(const vklm_loaded_model *m, float *out, char *err,
                                     size_t errlen) {
  static const uint32_t ggml_of[VKLM_DTYPE_LINEAR_COUNT] = {
      VKLM_GGML_TYPE_F32, VKLM_GGML_TYPE_F16, VKLM_GGML_TYPE_Q8_0, VKLM_GGML_TYPE_Q4_0};
  for (uint32_t i = 0; i < m->ntensors; i++) {
    const vklm_param_info *p = &m->table[i];
    const vklm_loaded_tensor *t = &m->t[i];
    VKLM_ASSERT(p->offset + p->count <= m->nparams, "table");
    if (vklm_ggml_to_f32(ggml_of[t->type], out + p->offset, t->data, (size_t)p->count) != 0) {
      seterr(err, errlen, "cannot dequantize '%s'", p->name);
      return VKLM_ERROR_INVALID;
    }
  }
  return VKLM_OK;
}

/* Model configurations: the named presets, the consistency check, and the parameter table
 * (model_params.h) expanded for a config. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_params.h"
#include "ops/norm.h"

typedef struct preset {
  const char *name;
  vklm_model_config cfg;
} preset;

static const preset PRESETS[] = {
    /* arch, V, maxT, L, NH, NKV, C, F, eps, theta, tie */
    {"gpt2-tiny", {VKLM_ARCH_GPT2, 256, 64, 2, 4, 4, 64, 256, 1e-5f, 10000.0f, 1}},
    {"llama-tiny", {VKLM_ARCH_LLAMA, 256, 64, 2, 4, 2, 64, 172, 1e-5f, 10000.0f, 0}},
    {"gpt2-124M", {VKLM_ARCH_GPT2, 50257, 1024, 12, 12, 12, 768, 3072, 1e-5f, 10000.0f, 1}},
    {"gpt2-350M", {VKLM_ARCH_GPT2, 50257, 1024, 24, 16, 16, 1024, 4096, 1e-5f, 10000.0f, 1}},
    /* the LLaMA-60M of the GaLore / ReLoRA papers (T5 tokenizer's 32000) */
    {"llama-60M", {VKLM_ARCH_LLAMA, 32000, 1024, 8, 8, 8, 512, 1376, 1e-6f, 10000.0f, 0}},
};

vklm_status vklm_model_config_preset(const char *name, vklm_model_config *out) {
  for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
    if (name && strcmp(name, PRESETS[i].name) == 0) {
      *out = PRESETS[i].cfg;
      return VKLM_OK;
    }
  return VKLM_ERROR_NOT_FOUND;
}

vklm_status vklm_model_config_check(const vklm_model_config *c, char *err, size_t errlen) {
  const char *why = NULL;
  char buf[384];
  if (c->arch != VKLM_ARCH_GPT2 && c->arch != VKLM_ARCH_LLAMA) why = "unknown arch";
  else if (c->n_layer > VKLM_MODEL_MAX_LAYERS || c->n_embd > VKLM_MODEL_MAX_DIM ||
           c->n_head > VKLM_MODEL_MAX_DIM || c->n_kv_head > VKLM_MODEL_MAX_DIM ||
           c->ffn_hidden > VKLM_MODEL_MAX_DIM || c->max_seq > VKLM_MODEL_MAX_DIM ||
           c->vocab_size > VKLM_MODEL_MAX_VOCAB || c->scalar_head > 1) {
    snprintf(buf, sizeof buf, "a size is out of range: n_layer %u (<= %u), n_embd %u, n_head %u, "
             "n_kv_head %u, ffn_hidden %u, max_seq %u (each <= %u), vocab_size %u (<= %u), "
             "scalar_head %u (0 or 1)", c->n_layer, VKLM_MODEL_MAX_LAYERS, c->n_embd, c->n_head,
             c->n_kv_head, c->ffn_hidden, c->max_seq, VKLM_MODEL_MAX_DIM, c->vocab_size,
             VKLM_MODEL_MAX_VOCAB, c->scalar_head);
    why = buf;
  } else if (!c->vocab_size || !c->max_seq || !c->n_layer || !c->n_head || !c->n_kv_head ||
           !c->n_embd || !c->ffn_hidden)
    why = "a size is zero (vocab_size, max_seq, n_layer, n_head, n_kv_head, n_embd, ffn_hidden)";
  else if (c->n_embd % c->n_head) {
    snprintf(buf, sizeof buf, "n_embd %u is not a multiple of n_head %u", c->n_embd, c->n_head);
    why = buf;
  } else if (c->n_head % c->n_kv_head) {
    snprintf(buf, sizeof buf, "n_kv_head %u does not divide n_head %u", c->n_kv_head, c->n_head);
    why = buf;
  } else if (c->arch == VKLM_ARCH_GPT2 && c->n_kv_head != c->n_head)
    why = "GPT-2 has n_kv_head == n_head";
  else if (VKLM_MP_HS(c) > 256) {
    snprintf(buf, sizeof buf, "head size %u > 256 (attention.h)", VKLM_MP_HS(c));
    why = buf;
  } else if (c->arch == VKLM_ARCH_LLAMA && (VKLM_MP_HS(c) & 1)) {
    snprintf(buf, sizeof buf, "RoPE needs an even head size, not %u", VKLM_MP_HS(c));
    why = buf;
  } else if (c->arch == VKLM_ARCH_LLAMA && !(c->norm_eps > 0))
    why = "norm_eps must be > 0";
  else if (c->arch == VKLM_ARCH_LLAMA && !(c->rope_theta > 0))
    why = "rope_theta must be > 0";
  else if (c->arch == VKLM_ARCH_GPT2 && c->norm_eps != 0 && c->norm_eps != VKLM_LAYERNORM_EPS)
    why = "GPT-2's LayerNorm uses eps 1e-5 (norm.h); set norm_eps to 1e-5 or 0";
  else if ((uint64_t)c->vocab_size * c->n_embd >= (1ull << 32) ||
           (uint64_t)VKLM_MP_FC(c) * c->n_embd >= (1ull << 32))
    why = "a weight matrix has 2^32 elements or more";
  if (why) {
    if (err && errlen) snprintf(err, errlen, "model config: %s", why);
    return VKLM_ERROR_INVALID;
  }
  return VKLM_OK;
}

uint32_t vklm_model_table_max(const vklm_model_config *c) {
  uint32_t n = 0;
#define COUNT(id, name, section, d0, d1, decay, init, present) n += (section) == 1 ? c->n_layer : 1;
  VKLM_MODEL_PARAMS(COUNT)
#undef COUNT
  return n;
}

/* One entry for tensor `id` of layer l at *off (floats), advancing it. */
static void entry(vklm_param_info *info, uint8_t *init_out, uint8_t *id_out, uint32_t *n,
                  uint64_t *off, int id, const char *fmt, int section, uint32_t l, uint64_t d0,
                  uint64_t d1, int decay, int init) {
  vklm_param_info *p = info ? &info[*n] : NULL;
  uint64_t count = d0 * (d1 ? d1 : 1);
  if (p) {
    memset(p, 0, sizeof *p);
    if (section == 1)
      snprintf(p->name, sizeof p->name, fmt, l);
    else
      snprintf(p->name, sizeof p->name, "%s", fmt);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = (uint32_t)d0;
    p->shape[1] = (uint32_t)d1;
    p->offset = *off;
    p->count = count;
    p->decay = decay;
    p->layer = section == 1 ? (int)l : -1;
  }
  if (init_out) init_out[*n] = (uint8_t)init;
  if (id_out) id_out[*n] = (uint8_t)id;
  *off += count;
  (*n)++;
}

uint64_t vklm_model_table(const vklm_model_config *c, vklm_param_info *info, uint8_t *init,
                          uint8_t *id, uint32_t *nout) {
  uint32_t n = 0;
  uint64_t off = 0;
#define EMIT(sec, l)                                                                               \
  do {                                                                                             \
    VKLM_MODEL_PARAMS(ROW)                                                                         \
  } while (0)
#define ROW(pid, name, section, d0, d1, decay, init_kind, present)                                 \
  if ((section) == sec_ && (present))                                                              \
    entry(info, init, id, &n, &off, VKLM_P_##pid, name, section, l_, (uint64_t)(d0),              \
          (uint64_t)(d1), decay, init_kind);
  uint32_t l_ = 0;
  int sec_ = 0;
  EMIT(sec_, l_);
  sec_ = 1;
  for (l_ = 0; l_ < c->n_layer; l_++) EMIT(sec_, l_);
  sec_ = 2;
  l_ = 0;
  EMIT(sec_, l_);
#undef ROW
#undef EMIT
  if (nout) *nout = n;
  return off;
}

uint64_t vklm_model_config_params(const vklm_model_config *cfg) {
  return vklm_model_table(cfg, NULL, NULL, NULL, NULL);
}

/* a * b into *out; 0 when it overflows */
static int mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
  if (a && b > UINT64_MAX / a) return 0;
  *out = a * b;
  return 1;
}

vklm_status vklm_model_table_check(const vklm_model_config *cfg, const vklm_param_info *table,
                                   uint32_t n, uint64_t nparams, char *err, size_t errlen) {
  char e[384];
  if (vklm_model_config_check(cfg, e, sizeof e) != VKLM_OK) {
    if (err && errlen) snprintf(err, errlen, "%s", e);
    return VKLM_ERROR_INVALID;
  }
  /* The bounds above keep every count below 2^44 and the whole below 2^60: no overflow here. */
  uint32_t want_n = 0;
  uint64_t want_np = vklm_model_table(cfg, NULL, NULL, NULL, &want_n);
  const char *arch = cfg->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama";
  if (n != want_n || (nparams && nparams != want_np)) {
    char have[96];
    if (nparams)
      snprintf(have, sizeof have, "%u tensors and %llu parameters", n, (unsigned long long)nparams);
    else
      snprintf(have, sizeof have, "%u tensors", n);
    if (err && errlen)
      snprintf(err, errlen, "the parameter table has %s; the model config (%s, V %u, ctx %u, L %u, "
               "NH %u, NKV %u, C %u, F %u, tied %d, scalar head %u) has %u tensors and %llu "
               "parameters", have, arch, cfg->vocab_size, cfg->max_seq, cfg->n_layer, cfg->n_head,
               cfg->n_kv_head, cfg->n_embd, cfg->ffn_hidden, cfg->tie_embeddings,
               cfg->scalar_head, want_n, (unsigned long long)want_np);
    return VKLM_ERROR_INVALID;
  }
  /* Each entry on its own first (shape against count, inside the vector), then against the
   * config's own entry. */
  uint64_t limit = nparams ? nparams : want_np;
  for (uint32_t i = 0; i < n; i++) {
    const vklm_param_info *p = &table[i];
    char name[sizeof p->name];
    memcpy(name, p->name, sizeof name);
    name[sizeof name - 1] = 0;
    uint64_t prod = 1;
    int ok = p->ndim >= 1 && p->ndim <= 4;
    for (uint32_t d = 0; ok && d < p->ndim; d++) ok = mul_ok(prod, p->shape[d], &prod);
    if (!ok || prod != p->count) {
      if (err && errlen)
        snprintf(err, errlen, "tensor %u ('%s'): shape (%u,%u,%u,%u) with ndim %u does not hold its "
                 "count of %llu elements", i, name, p->shape[0], p->shape[1], p->shape[2],
                 p->shape[3], p->ndim, (unsigned long long)p->count);
      return VKLM_ERROR_INVALID;
    }
    if (p->count > limit || p->offset > limit - p->count) {
      if (err && errlen)
        snprintf(err, errlen, "tensor %u ('%s'): offset %llu + count %llu lies outside the %llu "
                 "parameters", i, name, (unsigned long long)p->offset,
                 (unsigned long long)p->count, (unsigned long long)limit);
      return VKLM_ERROR_INVALID;
    }
  }
  vklm_param_info *want = malloc((size_t)want_n * sizeof *want);
  if (!want) {
    if (err && errlen) snprintf(err, errlen, "out of host memory for a table of %u tensors", want_n);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  vklm_model_table(cfg, want, NULL, NULL, NULL);
  vklm_status rc = VKLM_OK;
  for (uint32_t i = 0; i < n && rc == VKLM_OK; i++) {
    const vklm_param_info *p = &table[i], *q = &want[i];
    int same = !strncmp(p->name, q->name, sizeof p->name) && p->ndim == q->ndim &&
               p->offset == q->offset && p->count == q->count;
    for (int d = 0; same && d < 4; d++) same = p->shape[d] == q->shape[d];
    if (!same) {
      char name[sizeof p->name];
      memcpy(name, p->name, sizeof name);
      name[sizeof name - 1] = 0;
      if (err && errlen)
        snprintf(err, errlen, "tensor %u is '%s' (%u,%u) at offset %llu; the %s config's tensor %u "
                 "is '%s' (%u,%u) at offset %llu", i, name, p->shape[0], p->shape[1],
                 (unsigned long long)p->offset, arch, i, q->name, q->shape[0], q->shape[1],
                 (unsigned long long)q->offset);
      rc = VKLM_ERROR_INVALID;
    }
  }
  free(want);
  return rc;
}

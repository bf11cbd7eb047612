/* Model configurations: the named presets, the consistency check, and the parameter table
 * (model_params.h) expanded for a config. */
#include <stdio.h>
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
  char buf[256];
  if (c->arch != VKLM_ARCH_GPT2 && c->arch != VKLM_ARCH_LLAMA) why = "unknown arch";
  else if (!c->vocab_size || !c->max_seq || !c->n_layer || !c->n_head || !c->n_kv_head ||
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

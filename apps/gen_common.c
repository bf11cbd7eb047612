/* gen_common: model opening and sampling flags for generate and chat. */
#include "gen_common.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/file.h"

vklm_status gen_model_tensor(void *user, const vklm_param_info *info, vklm_model_tensor *out,
                             char *err, size_t errlen) {
  gen_model *s = user;
  uint32_t n = s->ck ? s->ck->ntensors : s->lm->ntensors;
  const vklm_param_info *tab = s->ck ? s->ck->table : s->lm->table;
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(tab[i].name, info->name)) {
      if (tab[i].count != info->count) break;
      if (s->ck) {
        out->data = s->ck->params + tab[i].offset;
        out->dtype = VKLM_DTYPE_F32;
      } else {
        out->data = s->lm->t[i].data;
        out->dtype = s->lm->t[i].type;
      }
      return VKLM_OK;
    }
  snprintf(err, errlen, "the model has no tensor %s of %llu values", info->name,
           (unsigned long long)info->count);
  return VKLM_ERROR_INVALID;
}

char *gen_read_file(const char *path) {
  char *text = NULL, err[512];
  return vklm_file_read(path, VKLM_FILE_MAX_TEXT, 0, &text, NULL, err, sizeof err) == VKLM_OK
             ? text
             : NULL;
}

double gen_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void gen_oom_hint(vklm_status st, char *err, size_t errlen) {
  size_t n = strlen(err);
  if (st == VKLM_ERROR_OUT_OF_DEVICE_MEMORY && n < errlen)
    snprintf(err + n, errlen - n, "; a smaller -c (the KV cache's context), fewer slots or a "
             "quantized model (F16, Q8_0, Q4_0 GGUF) needs less");
}

void gen_tokenizer_warn(const char *cmd, const vklm_tokenizer *tk, const char *path) {
  int first, n = vklm_tokenizer_missing_bytes(tk, &first);
  if (n)
    fprintf(stderr, "%s: warning: the tokenizer of %s has no token for %d of the 256 byte values "
            "(the first: 0x%02x) and no unknown token: text holding them loses those bytes when "
            "encoded\n", cmd, path, n, first);
}

int gen_model_open(gen_model *m, const char *model, const char *tok, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  m->eos = -1;
  struct stat sb;
  snprintf(m->path, sizeof m->path, "%s", model);
  if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    snprintf(m->path, sizeof m->path, "%s/checkpoint.bin", model);
    if (stat(m->path, &sb) != 0) snprintf(m->path, sizeof m->path, "%s", model); /* HF dir */
  }
  if (stat(m->path, &sb) != 0) {
    snprintf(err, errlen, "cannot open the model %.1000s: %s", m->path, strerror(errno));
    return 1;
  }
  if (S_ISREG(sb.st_mode)) { /* a file must say what it is in its first bytes */
    unsigned char head[9] = {0};
    FILE *f = fopen(m->path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (!f) {
      snprintf(err, errlen, "cannot read the model %.1000s: %s", m->path, strerror(errno));
      return 1;
    }
    if (sb.st_size == 0) {
      snprintf(err, errlen, "the model file %.1000s is empty", m->path);
      return 1;
    }
    if (!vklm_ckpt_sniff(m->path) && !(got >= 4 && !memcmp(head, "GGUF", 4)) &&
        !(got == 9 && head[8] == '{')) {
      snprintf(err, errlen, "%.1000s is not a model: neither a vklm checkpoint, a GGUF file nor a "
               "safetensors file (by its first bytes)", m->path);
      return 1;
    }
  } else if (!S_ISDIR(sb.st_mode)) {
    snprintf(err, errlen, "the model %.1000s is not a regular file or a directory", m->path);
    return 1;
  }
  if (vklm_ckpt_sniff(m->path)) {
    if (vklm_ckpt_read(m->path, 0, &m->ck, err, errlen)) return 1;
    m->cfg = &m->ck->st.model;
  } else {
    if (vklm_model_load(m->path, 1, &m->lm, err, errlen)) return 1;
    m->cfg = &m->lm->cfg;
  }
  const char *tp = tok;
  if (!tp) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", m->path);
    snprintf(m->tokpath, sizeof m->tokpath, "%s/tokenizer.json", dirname(dir));
    if (stat(m->tokpath, &sb) == 0) tp = m->tokpath;
  } else {
    snprintf(m->tokpath, sizeof m->tokpath, "%s", tok);
  }
  if (tp) {
    if (vklm_tokenizer_load(tp, &m->tk, err, errlen)) return 1;
  } else if (m->lm && m->lm->tokenizer) {
    m->tk = m->lm->tokenizer;
    m->lm->tokenizer = NULL;
    m->tokpath[0] = 0;
  } else {
    snprintf(err, errlen, "no tokenizer: give -t tokenizer.json (none beside %.1000s%s%.300s)",
             m->path, m->lm && m->lm->tokenizer_note[0] ? "; the model's own: " : "",
             m->lm ? m->lm->tokenizer_note : "");
    return 1;
  }
  gen_tokenizer_warn("vklm", m->tk, m->tokpath[0] ? m->tokpath : m->path);
  if (vklm_tokenizer_vocab_size(m->tk) > m->cfg->vocab_size) {
    snprintf(err, errlen, "the tokenizer has %zu ids but the model's vocabulary is %u",
             vklm_tokenizer_vocab_size(m->tk), m->cfg->vocab_size);
    return 1;
  }
  m->eos = m->lm && m->lm->eos_id >= 0 ? m->lm->eos_id
                                       : vklm_tokenizer_special_id(m->tk, "<|endoftext|>");
  if (m->eos < 0) m->eos = vklm_tokenizer_special_id(m->tk, "</s>");
  return 0;
}

void gen_model_close(gen_model *m) {
  vklm_tokenizer_destroy(m->tk);
  vklm_ckpt_free(m->ck);
  vklm_loaded_model_free(m->lm);
  m->tk = NULL;
  m->ck = NULL;
  m->lm = NULL;
}

static int seed_flag(void *p, const char *v, char *err, size_t errlen) {
  gen_sampling *s = p;
  int digits = *v != 0;
  for (const char *q = v; *q; q++) digits &= *q >= '0' && *q <= '9';
  errno = 0;
  unsigned long long x = digits ? strtoull(v, NULL, 10) : 0;
  if (!digits || errno == ERANGE) {
    snprintf(err, errlen, "wants an integer in [0, 2^64-1], not '%s'", v);
    return 1;
  }
  s->sp.seed = x, s->seed_set = 1;
  return 0;
}

static int stop_flag(void *p, const char *v, char *err, size_t errlen) {
  gen_sampling *s = p;
  if (s->nstops == GEN_MAX_STOPS) {
    snprintf(err, errlen, "is given too often: at most %d", GEN_MAX_STOPS);
    return 1;
  }
  if (!*v) {
    snprintf(err, errlen, "wants a non-empty string");
    return 1;
  }
  s->stops[s->nstops++] = v;
  return 0;
}

void gen_sampling_default(gen_sampling *s) {
  memset(s, 0, sizeof *s);
  vklm_sampler_params_default(&s->sp);
  vklm_sampler_params *sp = &s->sp;
  const app_flag f[] = {
      AF_FLAG("--temp", NULL, AF_F32, &sp->temp, 0, 100, "X", "temperature (0.8; 0: greedy)"),
      AF_FLAG("--top-k", NULL, AF_U32, &sp->top_k, 0, 1u << 24, "N", "top-k (40; 0: off)"),
      AF_FLAG("--top-p", NULL, AF_F32, &sp->top_p, 0, 1, "X", "nucleus (0.95; 1: off)"),
      AF_FLAG("--min-p", NULL, AF_F32, &sp->min_p, 0, 1, "X", "min-p (0.05; 0: off)"),
      AF_FLAG("--repeat-penalty", NULL, AF_F32, &sp->repeat_penalty, 0.01, 100, "X",
              "repeat penalty (1.0: off)"),
      AF_FLAG("--repeat-last-n", NULL, AF_U32, &sp->repeat_last_n, 0, 1u << 20, "N",
              "tokens the penalty looks back at (64)"),
      {"--seed", NULL, AF_FN, s, 0, 0, "N", "sampler seed (default: from the clock)", seed_flag},
      {"--stop", NULL, AF_FN, s, 0, 0, "STR",
       "stop when the generated text contains STR (repeatable)", stop_flag},
      AF_LAST};
  _Static_assert(sizeof f <= sizeof s->flags, "gen_sampling.flags holds the table");
  memcpy(s->flags, f, sizeof f);
}

int gen_template_flag_ok(const char *cmd, const char *tpl) {
  for (const char *const *b = vklm_chat_builtin_names(); *b; b++)
    if (!strcmp(*b, tpl)) return 1;
  struct stat sb;
  if (stat(tpl, &sb) == 0 && S_ISREG(sb.st_mode)) return 1;
  fprintf(stderr, "vklm %s: --chat-template is a built-in (chatml, llama3, plain) or a template "
          "file; '%s' is neither\n", cmd, tpl);
  return 0;
}

/* A token's text as a C string (NULL for none or a long one). */
static const char *token_text(const vklm_tokenizer *tk, int32_t id, char *buf, size_t n) {
  size_t len;
  const char *s = id >= 0 ? vklm_tokenizer_token_bytes(tk, id, &len) : NULL;
  if (!s || len >= n) return NULL;
  memcpy(buf, s, len);
  buf[len] = 0;
  return buf;
}

vklm_status gen_template_open(const char *model_path, const char *embedded,
                              const vklm_tokenizer *tk, int32_t bos_id, int32_t eos_id,
                              const char *tpl, vklm_chat_template **t, char *from, size_t fromlen,
                              char *err, size_t errlen) {
  char eb[256], bb[256];
  const char *eos = token_text(tk, eos_id, eb, sizeof eb);
  const char *bos = token_text(tk, bos_id, bb, sizeof bb);
  if (tpl) {
    snprintf(from, fromlen, "--chat-template");
    for (const char *const *b = vklm_chat_builtin_names(); *b; b++)
      if (!strcmp(*b, tpl)) return vklm_chat_template_builtin(tpl, bos, eos, t, err, errlen);
    char *text = gen_read_file(tpl);
    if (!text) {
      snprintf(err, errlen, "cannot read %s", tpl);
      return VKLM_ERROR_IO;
    }
    char e2[768];
    vklm_status st = vklm_chat_template_create(text, strlen(text), bos, eos, t, e2, sizeof e2);
    if (st) snprintf(err, errlen, "%s: %s", tpl, e2);
    free(text);
    return st;
  }
  vklm_status st = vklm_chat_template_find(model_path, embedded, bos, eos, t, from, fromlen, err,
                                           errlen);
  if (st != VKLM_ERROR_NOT_FOUND) return st;
  snprintf(from, fromlen, "none: the built-in default");
  return vklm_chat_template_builtin("chatml", bos, eos, t, err, errlen);
}

vklm_status gen_model_template(const gen_model *gm, const char *tpl, vklm_chat_template **t,
                               char *from, size_t fromlen, char *err, size_t errlen) {
  return gen_template_open(gm->path, gm->lm ? gm->lm->chat_template : NULL, gm->tk,
                           gm->lm ? gm->lm->bos_id : -1, gm->eos, tpl, t, from, fromlen, err,
                           errlen);
}

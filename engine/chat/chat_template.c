/* Chat templates: built-ins, finding a model's own template, rendering with the variables
 * transformers passes (bos_token, eos_token, add_generation_prompt), end-of-turn markers, and
 * encoding a rendered prompt with special tokens only where the template wrote them. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat/chat.h"
#include "chat/jinja.h"
#include "formats/gguf.h"
#include "io/file.h"

#define MAX_STOPS 16

struct vklm_chat_template {
  vklm_jinja *j;
  char *text, *bos, *eos; /* owned; bos/eos may be NULL */
  char name[16];
  const char *stops[MAX_STOPS];
  size_t nstops;
};

/* ---- built-ins ---------------------------------------------------------------------------- */
typedef struct builtin {
  const char *name, *text;
  const char *stops[4];
} builtin;

static const builtin builtins[] = {
    {"chatml",
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
     " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant"
     "\\n' }}{% endif %}",
     {"<|im_end|>", "<|im_start|>", NULL}},
    /* Meta-Llama-3-8B-Instruct's template */
    {"llama3",
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
     "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
     "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
     "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>"
     "assistant<|end_header_id|>\\n\\n' }}{% endif %}",
     {"<|eot_id|>", "<|start_header_id|>", "<|end_of_text|>", NULL}},
    /* "User: ... / Assistant: ..." for models without a template; the reply follows "Assistant:"
     * directly, as the model writes it (usually starting with a space) */
    {"plain",
     "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + "
     "'\\n\\n' }}{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n' }}"
     "{% else %}{{ 'Assistant:' + message['content'] + '\\n' }}{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
     {"\nUser:", NULL}},
};
#define NBUILTIN (sizeof builtins / sizeof builtins[0])

const char *const *vklm_chat_builtin_names(void) {
  static const char *const names[NBUILTIN + 1] = {"chatml", "llama3", "plain", NULL};
  return names;
}

/* end-of-turn (and start-of-turn) markers looked for in a template's text */
static const char *const known_marks[] = {
    "<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|eom_id|>", "<|start_header_id|>",
    "<|end|>", "<|user|>", "<end_of_turn>", "<start_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<|EOT|>", "<|end_of_turn|>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81"
    "sentence\xef\xbd\x9c>", "<|start_of_role|>", "[INST]", NULL};

static char *dupn(const char *s) { return s ? strdup(s) : NULL; }

static vklm_status make(const char *text, size_t len, const char *bos, const char *eos,
                        const char *name, const char *const *stops, vklm_chat_template **out,
                        char *err, size_t errlen) {
  *out = NULL;
  vklm_chat_template *t = calloc(1, sizeof *t);
  if (!t) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  vklm_status st = vklm_jinja_parse(text, len, &t->j, err, errlen);
  if (st) {
    free(t);
    return st;
  }
  t->text = malloc(len + 1);
  t->bos = dupn(bos);
  t->eos = dupn(eos);
  if (!t->text || (bos && !t->bos) || (eos && !t->eos)) {
    vklm_chat_template_destroy(t);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  memcpy(t->text, text, len);
  t->text[len] = 0;
  snprintf(t->name, sizeof t->name, "%s", name);
  if (stops) {
    for (size_t i = 0; stops[i] && t->nstops < MAX_STOPS - 1; i++) t->stops[t->nstops++] = stops[i];
  } else {
    for (size_t i = 0; known_marks[i] && t->nstops < MAX_STOPS - 1; i++)
      if (strstr(t->text, known_marks[i])) t->stops[t->nstops++] = known_marks[i];
  }
  if (t->eos && *t->eos) {
    int dup = 0;
    for (size_t i = 0; i < t->nstops; i++) dup |= !strcmp(t->stops[i], t->eos);
    if (!dup) t->stops[t->nstops++] = t->eos;
  }
  *out = t;
  return VKLM_OK;
}

vklm_status vklm_chat_template_create(const char *text, size_t len, const char *bos,
                                      const char *eos, vklm_chat_template **out, char *err,
                                      size_t errlen) {
  return make(text, len, bos, eos, "jinja", NULL, out, err, errlen);
}

vklm_status vklm_chat_template_builtin(const char *name, const char *bos, const char *eos,
                                       vklm_chat_template **out, char *err, size_t errlen) {
  for (size_t i = 0; i < NBUILTIN; i++)
    if (!strcmp(name, builtins[i].name)) /* an unknown bos/eos renders as "" here */
      return make(builtins[i].text, strlen(builtins[i].text), bos ? bos : "", eos ? eos : "",
                  builtins[i].name, builtins[i].stops, out, err, errlen);
  *out = NULL;
  snprintf(err, errlen, "no built-in chat template '%s' (chatml, llama3, plain)", name);
  return VKLM_ERROR_NOT_FOUND;
}

void vklm_chat_template_destroy(vklm_chat_template *t) {
  if (!t) return;
  vklm_jinja_destroy(t->j);
  free(t->text);
  free(t->bos);
  free(t->eos);
  free(t);
}

const char *vklm_chat_template_name(const vklm_chat_template *t) { return t->name; }
const char *vklm_chat_template_text(const vklm_chat_template *t) { return t->text; }
const char *vklm_chat_template_bos(const vklm_chat_template *t) { return t->bos; }
const char *vklm_chat_template_eos(const vklm_chat_template *t) { return t->eos; }

size_t vklm_chat_template_stops(const vklm_chat_template *t, const char **out, size_t max) {
  for (size_t i = 0; i < t->nstops && i < max; i++) out[i] = t->stops[i];
  return t->nstops;
}

/* ---- finding a model's template ------------------------------------------------------------ */
/* An optional file beside the model: NULL when it is absent or cannot be read. */
static char *read_file(const char *path) {
  char *text = NULL, err[512];
  return vklm_file_read(path, VKLM_FILE_MAX_CONFIG, 0, &text, NULL, err, sizeof err) == VKLM_OK
             ? text
             : NULL;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} */
static const char *token_text(const cJSON *cfg, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsObject(v)) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (cJSON_IsString(c)) return c->valuestring;
  }
  return NULL;
}

/* A GGUF's tokenizer.chat_template and its bos/eos token texts (malloc'ed; NULL when absent). */
static void gguf_template(const char *path, char **tpl, char **bos, char **eos) {
  vklm_gguf *g = NULL;
  char e[256];
  if (vklm_gguf_open(path, &g, e, sizeof e)) return;
  const char *s;
  uint64_t len;
  if (!vklm_gguf_get_str(g, "tokenizer.chat_template", &s, &len)) *tpl = strndup(s, len);
  vklm_gguf_array toks;
  if (!vklm_gguf_get_array(g, "tokenizer.ggml.tokens", &toks)) {
    const char *keys[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    char **dst[2] = {bos, eos};
    for (int k = 0; k < 2; k++) {
      uint32_t id;
      if (!vklm_gguf_get_u32(g, keys[k], &id) && !vklm_gguf_array_str(&toks, id, &s, &len))
        *dst[k] = strndup(s, len);
    }
  }
  vklm_gguf_close(g);
}

vklm_status vklm_chat_template_find(const char *model_path, const char *embedded,
                                    const char *bos, const char *eos, vklm_chat_template **out,
                                    char *from, size_t fromlen, char *err, size_t errlen) {
  *out = NULL;
  snprintf(from, fromlen, "none");
  char dir[4096], p[4200];
  struct stat sb;
  int isdir = stat(model_path, &sb) == 0 && S_ISDIR(sb.st_mode);
  snprintf(dir, sizeof dir, "%s", model_path);
  if (!isdir) {
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
  }
  char *text = NULL, *gbos = NULL, *geos = NULL, *cfgtext = NULL;
  cJSON *cfg = NULL;
  size_t n = strlen(model_path);
  if (!embedded && !isdir && n > 5 && !strcmp(model_path + n - 5, ".gguf"))
    gguf_template(model_path, &text, &gbos, &geos);
  if (embedded) text = strdup(embedded);
  if (text) snprintf(from, fromlen, "the model's tokenizer.chat_template");
  snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
  if ((cfgtext = read_file(p)) && !(cfg = cJSON_Parse(cfgtext))) {
    snprintf(err, errlen, "%s is not valid JSON", p);
    free(cfgtext);
    free(text);
    free(gbos);
    free(geos);
    return VKLM_ERROR_INVALID;
  }
  if (!text) {
    snprintf(p, sizeof p, "%s/chat_template.jinja", dir);
    if ((text = read_file(p))) snprintf(from, fromlen, "chat_template.jinja");
  }
  if (!text && cfg) {
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    const char *s = cJSON_IsString(ct) ? ct->valuestring : NULL;
    if (cJSON_IsArray(ct)) { /* [{name, template}]: "default", else the first */
      const cJSON *it;
      cJSON_ArrayForEach(it, ct) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
        if (!cJSON_IsString(tp)) continue;
        if (!s || (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default"))) s = tp->valuestring;
      }
    }
    if (s) {
      text = strdup(s);
      snprintf(from, fromlen, "tokenizer_config.json");
    }
  }
  const char *b = cfg && token_text(cfg, "bos_token") ? token_text(cfg, "bos_token")
                  : gbos ? gbos : bos;
  const char *e = cfg && token_text(cfg, "eos_token") ? token_text(cfg, "eos_token")
                  : geos ? geos : eos;
  vklm_status st = VKLM_ERROR_NOT_FOUND;
  if (text) {
    char perr[512];
    st = make(text, strlen(text), b, e, "jinja", NULL, out, perr, sizeof perr);
    if (st) snprintf(err, errlen, "the chat template from %s: %s", from, perr);
  } else {
    snprintf(err, errlen, "no chat template beside %s", model_path);
  }
  cJSON_Delete(cfg);
  free(cfgtext);
  free(text);
  free(gbos);
  free(geos);
  return st;
}

/* ---- rendering ------------------------------------------------------------------------------ */
/* Appends s as a JSON string literal. */
static int put_json_str(char **buf, size_t *n, size_t *cap, const char *s, size_t len);

static int put(char **buf, size_t *n, size_t *cap, const char *s, size_t len) {
  if (*n + len + 1 > *cap) {
    size_t c = *cap ? *cap : 256;
    while (c < *n + len + 1) c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb) return -1;
    *buf = nb;
    *cap = c;
  }
  memcpy(*buf + *n, s, len);
  *n += len;
  (*buf)[*n] = 0;
  return 0;
}

static int put_json_str(char **buf, size_t *n, size_t *cap, const char *s, size_t len) {
  int r = put(buf, n, cap, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < len && !r; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    char e[8];
    r |= put(buf, n, cap, s + run, i - run);
    snprintf(e, sizeof e, ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : "\\u%04x", ch);
    r |= put(buf, n, cap, e, strlen(e));
    run = i + 1;
  }
  r |= put(buf, n, cap, s + run, len - run);
  return r | put(buf, n, cap, "\"", 1);
}

/* vars_json with bos_token, eos_token and add_generation_prompt added (a textual merge, so the
 * caller's numbers keep their exact form). NULL with err set when vars_json is not an object. */
static char *full_vars(const vklm_chat_template *t, const char *vars_json, int agp, char *err,
                       size_t errlen) {
  const char *body = "", *end = NULL;
  if (vars_json) {
    cJSON *v = cJSON_Parse(vars_json);
    int ok = cJSON_IsObject(v), empty = ok && !v->child;
    cJSON_Delete(v);
    if (!ok) {
      snprintf(err, errlen, "the template variables must be a JSON object");
      return NULL;
    }
    if (!empty) {
      body = strchr(vars_json, '{') + 1;
      end = strrchr(vars_json, '}');
    }
  }
  char *buf = NULL;
  size_t n = 0, cap = 0;
  int r = put(&buf, &n, &cap, "{", 1);
  if (end) {
    r |= put(&buf, &n, &cap, body, (size_t)(end - body));
    r |= put(&buf, &n, &cap, ", ", 2);
  }
  if (t->bos) {
    r |= put(&buf, &n, &cap, "\"bos_token\": ", 13);
    r |= put_json_str(&buf, &n, &cap, t->bos, strlen(t->bos));
    r |= put(&buf, &n, &cap, ", ", 2);
  }
  if (t->eos) {
    r |= put(&buf, &n, &cap, "\"eos_token\": ", 13);
    r |= put_json_str(&buf, &n, &cap, t->eos, strlen(t->eos));
    r |= put(&buf, &n, &cap, ", ", 2);
  }
  const char *g = agp ? "\"add_generation_prompt\": true}" : "\"add_generation_prompt\": false}";
  r |= put(&buf, &n, &cap, g, strlen(g));
  if (r) {
    free(buf);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  return buf;
}

vklm_status vklm_chat_template_apply(const vklm_chat_template *t, const char *vars_json,
                                     int add_generation_prompt, int64_t now, char **out,
                                     size_t *outlen, char *err, size_t errlen) {
  *out = NULL;
  char *vars = full_vars(t, vars_json, add_generation_prompt, err, errlen);
  if (!vars) return VKLM_ERROR_INVALID;
  vklm_jinja_opts o = {now, NULL};
  vklm_status st = vklm_jinja_render(t->j, vars, &o, out, outlen, err, errlen);
  free(vars);
  return st;
}

char *vklm_chat_vars_json(const vklm_chat_message *msgs, size_t n, const char *extra_json,
                          char *err, size_t errlen) {
  const char *body = NULL, *end = NULL;
  if (extra_json) {
    cJSON *v = cJSON_Parse(extra_json);
    int ok = cJSON_IsObject(v), empty = ok && !v->child;
    cJSON_Delete(v);
    if (!ok) {
      snprintf(err, errlen, "the extra variables must be a JSON object");
      return NULL;
    }
    if (!empty) {
      body = strchr(extra_json, '{') + 1;
      end = strrchr(extra_json, '}');
    }
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int r = put(&buf, &len, &cap, "{\"messages\": [", 14);
  for (size_t i = 0; i < n; i++) {
    if (i) r |= put(&buf, &len, &cap, ", ", 2);
    r |= put(&buf, &len, &cap, "{\"role\": ", 9);
    r |= put_json_str(&buf, &len, &cap, msgs[i].role, strlen(msgs[i].role));
    r |= put(&buf, &len, &cap, ", \"content\": ", 13);
    r |= put_json_str(&buf, &len, &cap, msgs[i].content, strlen(msgs[i].content));
    r |= put(&buf, &len, &cap, "}", 1);
  }
  r |= put(&buf, &len, &cap, "]", 1);
  if (end) {
    r |= put(&buf, &len, &cap, ", ", 2);
    r |= put(&buf, &len, &cap, body, (size_t)(end - body));
  }
  r |= put(&buf, &len, &cap, "}", 1);
  if (r) {
    free(buf);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  return buf;
}

/* oai: OpenAI request bodies -> srv_job. Every field is type-checked and bounded; unknown fields
 * are ignored (clients send many); a wrong one is a 400 naming it. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve_internal.h"

int srv_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!k || i + k > n) return 0;
    uint32_t cp = k == 1 ? c : k == 2 ? c & 31 : k == 3 ? c & 15 : c & 7;
    for (size_t j = 1; j < k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (p[i + j] & 63);
    }
    if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
      return 0;
    i += k;
  }
  return 1;
}

/* s[0..n) with invalid UTF-8 replaced by U+FFFD, NUL-terminated (malloc'ed). */
char *srv_utf8_lossy(const char *s, size_t n) {
  char *o = malloc(3 * n + 1);
  if (!o) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    unsigned c = (unsigned char)s[i];
    size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (l && i + l <= n && srv_utf8_valid(s + i, l)) {
      memcpy(o + k, s + i, l);
      k += l;
      i += l;
    } else {
      memcpy(o + k, "\xEF\xBF\xBD", 3);
      k += 3;
      i++;
    }
  }
  o[k] = 0;
  return o;
}

char *srv_error_json(const char *msg, const char *type, const char *param, const char *code) {
  cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
  cJSON_AddStringToObject(e, "message", msg);
  cJSON_AddStringToObject(e, "type", type);
  if (param && *param) cJSON_AddStringToObject(e, "param", param);
  else cJSON_AddNullToObject(e, "param");
  if (code) cJSON_AddStringToObject(e, "code", code);
  else cJSON_AddNullToObject(e, "code");
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

void srv_job_free(srv_job *j) {
  if (!j) return;
  for (uint32_t i = 0; i < j->nch; i++) {
    srv_choice *c = &j->ch[i];
    vklm_sampler_destroy(c->smp);
    vklm_stream_destroy(c->stream);
    free(c->gen);
    free(c->lp);
    free(c->top_id);
    free(c->top_lp);
    free(c->plp);
    free(c->ptop_id);
    free(c->ptop_lp);
  }
  free(j->ch);
  for (uint32_t i = 0; i < j->nprompts; i++) {
    vklm_token_ids_free(&j->prompts[i]);
    if (j->ptext) free(j->ptext[i]);
  }
  free(j->prompts);
  free(j->ptext);
  for (uint32_t i = 0; i < j->nstops; i++) free(j->stops[i]);
  free(j);
}

/* ---- fields ---- */
typedef struct pctx {
  char *err, *param;
  size_t errlen, paramlen;
} pctx;

static int bad(pctx *P, const char *field, const char *fmt, const char *what) {
  snprintf(P->param, P->paramlen, "%s", field);
  char m[400];
  snprintf(m, sizeof m, fmt, field, what);
  char *e = srv_error_json(m, "invalid_request_error", field, NULL);
  snprintf(P->err, P->errlen, "%s", e ? e : "");
  free(e);
  return 400;
}

/* A number field in [lo, hi] (an integer when integer): 0 absent, 1 present, -1 error. */
static int num(pctx *P, const cJSON *o, const char *name, double lo, double hi, int integer,
               double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!v || cJSON_IsNull(v)) return 0;
  char range[96];
  snprintf(range, sizeof range, "%s in [%g, %g]", integer ? "an integer" : "a number", lo, hi);
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
      v->valuedouble > hi || (integer && v->valuedouble != floor(v->valuedouble))) {
    bad(P, name, "'%s' must be %s", range);
    return -1;
  }
  *out = v->valuedouble;
  return 1;
}

static int boolean(pctx *P, const cJSON *o, const char *name, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsBool(v)) return bad(P, name, "'%s' must be %s", "true or false"), -1;
  *out = cJSON_IsTrue(v);
  return 1;
}

static int add_stop(srv_job *j, const char *s, size_t n) {
  if (!(j->stops[j->nstops] = malloc(n + 1))) return -1;
  memcpy(j->stops[j->nstops], s, n);
  j->stops[j->nstops++][n] = 0;
  return 0;
}

static int stops(pctx *P, srv_job *j, const cJSON *o) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "stop");
  if (!v || cJSON_IsNull(v)) return 0;
  const cJSON *one = cJSON_IsString(v) ? v : NULL, *e;
  if (!one && !cJSON_IsArray(v))
    return bad(P, "stop", "'%s' must be %s", "a string or an array of strings");
  if (!one && cJSON_GetArraySize(v) > SRV_MAX_STOPS)
    return bad(P, "stop", "'%s' holds %s", "at most 16 strings");
  for (e = one ? one : v->child; e; e = one ? NULL : e->next) {
    if (!cJSON_IsString(e)) return bad(P, "stop", "'%s' must be %s", "strings");
    size_t n = strlen(e->valuestring);
    if (n == 0 || n > 256 || !srv_utf8_valid(e->valuestring, n))
      return bad(P, "stop", "'%s' strings must be %s", "non-empty valid UTF-8 of <= 256 bytes");
    if (add_stop(j, e->valuestring, n)) return 500;
  }
  return 0;
}

/* The fields both endpoints share. */
static int common(pctx *P, vklm_serve *sv, srv_job *j, const cJSON *o, uint32_t *n) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "model");
  if (v && !cJSON_IsNull(v) && !cJSON_IsString(v))
    return bad(P, "model", "'%s' must be %s", "a string");
  uint32_t n_ctx = sv->n_ctx, V = sv->vocab;
  double d;
  int r;
  j->sp.temp = 1.0f, j->sp.top_p = 1.0f, j->sp.top_k = 0, j->sp.min_p = 0.0f;
  j->sp.repeat_penalty = 1.0f, j->sp.repeat_last_n = 64;
  if ((r = num(P, o, "temperature", 0, 2, 0, &d)) < 0) return 400;
  if (r) j->sp.temp = (float)d;
  if ((r = num(P, o, "top_p", 0, 1, 0, &d)) < 0) return 400;
  if (r) j->sp.top_p = (float)d;
  if ((r = num(P, o, "top_k", 0, V, 1, &d)) < 0) return 400;
  if (r) j->sp.top_k = (uint32_t)d;
  if ((r = num(P, o, "min_p", 0, 1, 0, &d)) < 0) return 400;
  if (r) j->sp.min_p = (float)d;
  if ((r = num(P, o, "repeat_penalty", 0.01, 10, 0, &d)) < 0) return 400;
  if (r) j->sp.repeat_penalty = (float)d;
  if ((r = num(P, o, "presence_penalty", -2, 2, 0, &d)) < 0) return 400;
  if (r) j->presence = (float)d;
  if ((r = num(P, o, "frequency_penalty", -2, 2, 0, &d)) < 0) return 400;
  if (r) j->frequency = (float)d;
  j->host = j->presence != 0 || j->frequency != 0;
  if ((r = num(P, o, "seed", -9007199254740991.0, 9007199254740991.0, 1, &d)) < 0) return 400;
  if (r) j->sp.seed = (uint64_t)(int64_t)d;
  else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    j->sp.seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)j;
  }
  j->max_tokens = UINT32_MAX;
  const char *mt = j->kind == SRV_CHAT &&
                   cJSON_GetObjectItemCaseSensitive(o, "max_completion_tokens") ?
                   "max_completion_tokens" : "max_tokens";
  if ((r = num(P, o, mt, 0, n_ctx, 1, &d)) < 0) return 400;
  if (r) j->max_tokens = (uint32_t)d;
  else if (j->kind == SRV_COMPLETION) j->max_tokens = 16; /* OpenAI's default for completions */
  if ((r = num(P, o, "n", 1, SRV_MAX_N, 1, &d)) < 0) return 400;
  *n = r ? (uint32_t)d : 1;
  if (boolean(P, o, "stream", &j->stream) < 0) return 400;
  if (boolean(P, o, "ignore_eos", &j->ignore_eos) < 0) return 400;
  v = cJSON_GetObjectItemCaseSensitive(o, "stream_options");
  if (v && !cJSON_IsNull(v)) {
    if (!cJSON_IsObject(v)) return bad(P, "stream_options", "'%s' must be %s", "an object");
    if (boolean(P, v, "include_usage", &j->usage_chunk) < 0) return 400;
  }
  return stops(P, j, o);
}

/* ---- chat ---- */
static const char *const roles[] = {"system", "user", "assistant", "tool", "developer", NULL};

static int messages(pctx *P, vklm_serve *sv, srv_job *j, const cJSON *o) {
  const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "messages"), *m;
  if (!cJSON_IsArray(ms) || !ms->child)
    return bad(P, "messages", "'%s' must be %s", "a non-empty array of messages");
  if (cJSON_GetArraySize(ms) > SRV_MAX_MESSAGES)
    return bad(P, "messages", "'%s' holds %s", "at most 1024 messages");
  if (!sv->m.tpl) return bad(P, "messages", "'%s': %s", "this model has no chat template");
  size_t nm = (size_t)cJSON_GetArraySize(ms), k = 0;
  vklm_chat_message *msg = calloc(nm, sizeof *msg);
  char **own = calloc(nm, sizeof *own);
  int st = 0;
  if (!msg || !own) st = 500;
  for (m = ms->child; m && !st; m = m->next, k++) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
      st = bad(P, "messages", "'%s': each message needs %s", "a string 'role'");
      break;
    }
    const char *const *ro = roles;
    while (*ro && strcmp(*ro, role->valuestring)) ro++;
    if (!*ro) {
      st = bad(P, "messages", "'%s': unknown role; the roles are %s",
               "system, user, assistant, tool, developer");
      break;
    }
    msg[k].role = *ro;
    if (!ct || cJSON_IsNull(ct)) {
      msg[k].content = "";
    } else if (cJSON_IsString(ct)) {
      msg[k].content = ct->valuestring;
    } else if (cJSON_IsArray(ct)) { /* [{"type": "text", "text": ...}, ...] */
      size_t tot = 1;
      const cJSON *p;
      for (p = ct->child; p; p = p->next) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
          st = bad(P, "messages", "'%s': content parts must be %s", "{\"type\": \"text\", "
                   "\"text\": string} (this model reads text only)");
          break;
        }
        tot += strlen(tx->valuestring);
      }
      if (st) break;
      if (!(own[k] = malloc(tot))) { st = 500; break; }
      own[k][0] = 0;
      for (p = ct->child; p; p = p->next)
        strcat(own[k], cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring);
      msg[k].content = own[k];
    } else {
      st = bad(P, "messages", "'%s': content must be %s", "a string or an array of text parts");
      break;
    }
    if (!srv_utf8_valid(msg[k].content, strlen(msg[k].content)))
      st = bad(P, "messages", "'%s': content must be %s", "valid UTF-8");
  }
  char e2[512] = "";
  char *vars = st ? NULL : vklm_chat_vars_json(msg, nm, NULL, e2, sizeof e2);
  if (!st && !vars) st = 500;
  if (!st) {
    j->nprompts = 1;
    j->prompts = calloc(1, sizeof *j->prompts);
    if (!j->prompts) st = 500;
    pthread_mutex_lock(&sv->tk_mu);
    vklm_status es = st ? VKLM_OK
                        : vklm_chat_template_encode(sv->m.tpl, sv->m.tk, vars, 1, 0, j->prompts,
                                                    NULL, e2, sizeof e2);
    pthread_mutex_unlock(&sv->tk_mu);
    if (!st && es) st = bad(P, "messages", "'%s': the chat template fails: %s", e2);
  }
  free(vars);
  for (size_t i = 0; i < nm && own; i++) free(own[i]);
  free(own);
  free(msg);
  return st;
}

/* ---- completions ---- */
static int prompt_one(pctx *P, vklm_serve *sv, srv_job *j, const cJSON *p, uint32_t i) {
  vklm_token_ids *ids = &j->prompts[i];
  uint32_t V = sv->vocab;
  if (cJSON_IsString(p)) {
    size_t n = strlen(p->valuestring);
    if (!srv_utf8_valid(p->valuestring, n))
      return bad(P, "prompt", "'%s' must be %s", "valid UTF-8");
    if (!(j->ptext[i] = strdup(p->valuestring))) return 500;
    pthread_mutex_lock(&sv->tk_mu);
    int e = vklm_tokenizer_encode(sv->m.tk, p->valuestring, n, VKLM_ENCODE_SPECIALS, ids);
    pthread_mutex_unlock(&sv->tk_mu);
    if (e) return 500;
    return 0;
  }
  /* token ids */
  int n = cJSON_GetArraySize(p);
  if (!(ids->ids = malloc(sizeof(int32_t) * (n ? n : 1)))) return 500;
  ids->cap = n ? n : 1;
  for (const cJSON *e = p->child; e; e = e->next) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= V ||
        e->valuedouble != floor(e->valuedouble))
      return bad(P, "prompt", "'%s' token ids must be %s", "integers in [0, vocabulary size)");
    ids->ids[ids->n++] = (int32_t)e->valuedouble;
  }
  vklm_bytes b = {0};
  int e = vklm_tokenizer_decode(sv->m.tk, ids->ids, ids->n, 0, &b);
  if (e) return bad(P, "prompt", "'%s' %s", "holds an id the tokenizer cannot decode");
  j->ptext[i] = b.data ? b.data : strdup("");
  return j->ptext[i] ? 0 : 500;
}

static int prompts(pctx *P, vklm_serve *sv, srv_job *j, const cJSON *o) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
  const char *what = "a string, an array of token ids, or an array of either";
  if (!p || !(cJSON_IsString(p) || cJSON_IsArray(p)))
    return bad(P, "prompt", "'%s' must be %s", what);
  /* one prompt (a string or ids) or a list of them */
  int list = cJSON_IsArray(p) && p->child && (cJSON_IsString(p->child) || cJSON_IsArray(p->child));
  uint32_t n = list ? (uint32_t)cJSON_GetArraySize(p) : 1;
  if (n > SRV_MAX_CHOICES) return bad(P, "prompt", "'%s' holds %s", "at most 64 prompts");
  j->prompts = calloc(n, sizeof *j->prompts);
  j->ptext = calloc(n, sizeof *j->ptext);
  if (!j->prompts || !j->ptext) return 500;
  j->nprompts = n;
  const cJSON *e = list ? p->child : p;
  for (uint32_t i = 0; i < n; i++, e = e->next) {
    if (list && !(cJSON_IsString(e) || (cJSON_IsArray(e) &&
                                        (!e->child || cJSON_IsNumber(e->child)))))
      return bad(P, "prompt", "'%s' must be %s", what);
    int st = prompt_one(P, sv, j, e, i);
    if (st) return st;
  }
  double d;
  int r;
  if ((r = boolean(P, o, "echo", &j->echo)) < 0) return 400;
  if ((r = num(P, o, "logprobs", 0, SRV_MAX_TOP, 1, &d)) < 0) return 400;
  if (r) j->logprobs = 1, j->top_n = (uint32_t)d;
  return 0;
}

int srv_parse(vklm_serve *sv, int kind, const char *body, size_t len, srv_job **out, char *err,
              size_t errlen, char *param, size_t paramlen) {
  pctx P = {err, param, errlen, paramlen};
  *out = NULL;
  param[0] = 0;
  cJSON *o = cJSON_ParseWithLength(body, len);
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    char *e = srv_error_json("the body is not a JSON object (malformed, or nested too deeply)",
                             "invalid_request_error", NULL, NULL);
    snprintf(err, errlen, "%s", e ? e : "");
    free(e);
    return 400;
  }
  srv_job *j = calloc(1, sizeof *j);
  if (!j) return cJSON_Delete(o), 500;
  j->kind = kind;
  uint32_t n = 1;
  int st = common(&P, sv, j, o, &n);
  if (!st && kind == SRV_CHAT) {
    st = messages(&P, sv, j, o);
    double d;
    int r;
    if (!st && boolean(&P, o, "logprobs", &j->logprobs) < 0) st = 400;
    if (!st && (r = num(&P, o, "top_logprobs", 0, SRV_MAX_TOP, 1, &d)) < 0) st = 400;
    if (!st && r) j->top_n = (uint32_t)d;
  } else if (!st) {
    st = prompts(&P, sv, j, o);
  }
  cJSON_Delete(o);
  uint32_t n_ctx = sv->n_ctx;
  for (uint32_t i = 0; !st && i < j->nprompts; i++) {
    char m[300];
    if (j->prompts[i].n == 0) {
      snprintf(m, sizeof m, "the prompt is empty");
    } else if (j->prompts[i].n >= n_ctx) {
      snprintf(m, sizeof m, "the prompt has %zu tokens; this server's context is %u tokens (it "
               "must be shorter, to leave room for the reply)", j->prompts[i].n, n_ctx);
    } else {
      j->prompt_tokens += (uint32_t)j->prompts[i].n;
      continue;
    }
    char *e = srv_error_json(m, "invalid_request_error", kind == SRV_CHAT ? "messages" : "prompt",
                             j->prompts[i].n ? "context_length_exceeded" : NULL);
    snprintf(err, errlen, "%s", e ? e : "");
    free(e);
    st = 400;
  }
  if (!st && j->nprompts * n > SRV_MAX_CHOICES)
    st = bad(&P, "n", "'%s': prompts times n must be %s", "at most 64");
  if (!st) { /* the template's end-of-turn markers stop chat replies */
    for (uint32_t k = 0; kind == SRV_CHAT && k < sv->ntpl_stops; k++)
      if (add_stop(j, sv->tpl_stops[k], strlen(sv->tpl_stops[k]))) st = 500;
    j->nch = j->nprompts * n;
    if (!st && !(j->ch = calloc(j->nch, sizeof *j->ch))) st = 500;
  }
  for (uint32_t i = 0; !st && i < j->nch; i++) {
    srv_choice *c = &j->ch[i];
    c->job = j;
    c->index = i;
    c->prompt = i / n;
    c->ids = j->prompts[c->prompt].ids;
    c->np = (uint32_t)j->prompts[c->prompt].n;
    c->slot = -1;
    vklm_sampler_params sp = j->sp;
    sp.seed += i;
    vklm_stream_options so = {.stops = (const char *const *)j->stops, .nstops = j->nstops};
    if (!(c->smp = vklm_sampler_create(&sp, sv->vocab)) ||
        vklm_stream_create(sv->m.tk, &so, &c->stream))
      st = 500;
  }
  if (st == 500 && !err[0]) {
    char *e = srv_error_json("out of memory", "server_error", NULL, NULL);
    snprintf(err, errlen, "%s", e ? e : "");
    free(e);
  }
  if (st) {
    srv_job_free(j);
    return st;
  }
  *out = j;
  return 0;
}

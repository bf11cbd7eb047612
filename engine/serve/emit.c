/* emit: jobs -> OpenAI JSON: whole responses (chat.completion, text_completion) and the SSE
 * chunks of streaming ones (chat.completion.chunk / text_completion; the role in a choice's
 * first delta, its finish_reason in its last, usage in the job's last chunk, then [DONE]).
 * Log-probs: log-softmax of the step's logits (after a repetition penalty, before temperature,
 * truncation and the presence/frequency penalties). Token text is made valid UTF-8 (an
 * incomplete byte sequence becomes U+FFFD; the raw bytes are in "bytes"). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_internal.h"

static cJSON *tok_string(vklm_serve *sv, int32_t id) {
  size_t n = 0;
  const char *b = vklm_tokenizer_token_bytes(sv->m.tk, id, &n);
  char *s = srv_utf8_lossy(b ? b : "", b ? n : 0);
  cJSON *r = cJSON_CreateString(s ? s : "");
  free(s);
  return r;
}

static cJSON *tok_bytes(vklm_serve *sv, int32_t id) {
  size_t n = 0;
  const char *b = vklm_tokenizer_token_bytes(sv->m.tk, id, &n);
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; b && i < n; i++)
    cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)b[i]));
  return a;
}

/* chat: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]} for tokens [a, b) */
static cJSON *chat_logprobs(vklm_serve *sv, const srv_choice *c, uint32_t a, uint32_t b) {
  const srv_job *j = c->job;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "content");
  for (uint32_t i = a; i < b; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToObject(e, "token", tok_string(sv, c->gen[i]));
    cJSON_AddNumberToObject(e, "logprob", c->lp[i]);
    cJSON_AddItemToObject(e, "bytes", tok_bytes(sv, c->gen[i]));
    cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
    for (uint32_t k = 0; k < j->top_n; k++) {
      cJSON *t = cJSON_CreateObject();
      int32_t id = c->top_id[(size_t)i * j->top_n + k];
      cJSON_AddItemToObject(t, "token", tok_string(sv, id));
      cJSON_AddNumberToObject(t, "logprob", c->top_lp[(size_t)i * j->top_n + k]);
      cJSON_AddItemToObject(t, "bytes", tok_bytes(sv, id));
      cJSON_AddItemToArray(top, t);
    }
    cJSON_AddItemToArray(arr, e);
  }
  return o;
}

/* completions: {tokens, token_logprobs, top_logprobs, text_offset}: the prompt's tokens first
 * when echoed (the first has no log-prob: null), then generated tokens [a, b). */
static cJSON *completion_logprobs(vklm_serve *sv, const srv_choice *c, int with_prompt,
                                  uint32_t a, uint32_t b, size_t offset) {
  const srv_job *j = c->job;
  cJSON *o = cJSON_CreateObject();
  cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
  cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
  cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
  cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
  uint32_t np = with_prompt && c->plp ? c->np : 0;
  for (uint32_t i = 0; i < np + (b - a); i++) {
    int pr = i < np;
    uint32_t g = a + (i - np);
    int32_t id = pr ? c->ids[i] : c->gen[g];
    float lp = pr ? c->plp[i] : c->lp[g];
    const int32_t *tid = pr ? c->ptop_id + (size_t)i * j->top_n : c->top_id + (size_t)g * j->top_n;
    const float *tlp = pr ? c->ptop_lp + (size_t)i * j->top_n : c->top_lp + (size_t)g * j->top_n;
    cJSON_AddItemToArray(toks, tok_string(sv, id));
    cJSON_AddItemToArray(lps, isnan(lp) ? cJSON_CreateNull() : cJSON_CreateNumber(lp));
    if (pr && i == 0) {
      cJSON_AddItemToArray(tops, cJSON_CreateNull());
    } else {
      cJSON *t = cJSON_CreateObject();
      for (uint32_t k = 0; k < j->top_n; k++) {
        cJSON *s = tok_string(sv, tid[k]);
        if (!cJSON_GetObjectItemCaseSensitive(t, s->valuestring))
          cJSON_AddNumberToObject(t, s->valuestring, tlp[k]);
        cJSON_Delete(s);
      }
      cJSON_AddItemToArray(tops, t);
    }
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
    size_t n = 0;
    vklm_tokenizer_token_bytes(sv->m.tk, id, &n);
    offset += n;
  }
  return o;
}

static cJSON *usage(const srv_job *j) {
  uint32_t gen = 0;
  for (uint32_t i = 0; i < j->nch; i++) gen += j->ch[i].ngen;
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", j->prompt_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", gen);
  cJSON_AddNumberToObject(u, "total_tokens", j->prompt_tokens + gen);
  return u;
}

static cJSON *head(vklm_serve *sv, const srv_job *j, const char *object) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", j->id);
  cJSON_AddStringToObject(o, "object", object);
  cJSON_AddNumberToObject(o, "created", (double)j->created);
  cJSON_AddStringToObject(o, "model", sv->model_name);
  cJSON_AddStringToObject(o, "system_fingerprint", "vklm");
  return o;
}

/* Text as a JSON string, strictly valid UTF-8 whatever the bytes (the stream passes some
 * sequences JSON parsers refuse, e.g. overlong forms: those become U+FFFD per byte). */
static cJSON *text_of(const char *s, size_t n) {
  char *t = srv_utf8_lossy(s, n);
  cJSON *r = cJSON_CreateString(t ? t : "");
  free(t);
  return r;
}

char *srv_response_json(vklm_serve *sv, srv_job *j) {
  int chat = j->kind == SRV_CHAT;
  cJSON *o = head(sv, j, chat ? "chat.completion" : "text_completion");
  cJSON *chs = cJSON_AddArrayToObject(o, "choices");
  for (uint32_t i = 0; i < j->nch; i++) {
    srv_choice *c = &j->ch[i];
    size_t n = 0;
    const char *t = vklm_stream_text(c->stream, &n);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", i);
    if (chat) {
      cJSON *m = cJSON_AddObjectToObject(ch, "message");
      cJSON_AddStringToObject(m, "role", "assistant");
      cJSON_AddItemToObject(m, "content", text_of(t ? t : "", n));
      if (j->logprobs) cJSON_AddItemToObject(ch, "logprobs", chat_logprobs(sv, c, 0, c->ngen));
      else cJSON_AddNullToObject(ch, "logprobs");
    } else {
      const char *pt = j->echo ? j->ptext[c->prompt] : "";
      size_t pl = strlen(pt);
      char *all = malloc(pl + n + 1);
      if (all) {
        memcpy(all, pt, pl);
        if (n) memcpy(all + pl, t, n);
        all[pl + n] = 0;
      }
      cJSON_AddItemToObject(ch, "text", text_of(all ? all : "", all ? pl + n : 0));
      free(all);
      if (j->logprobs)
        cJSON_AddItemToObject(ch, "logprobs", completion_logprobs(sv, c, j->echo, 0, c->ngen, 0));
      else cJSON_AddNullToObject(ch, "logprobs");
    }
    cJSON_AddStringToObject(ch, "finish_reason", c->finish ? c->finish : "length");
    cJSON_AddItemToArray(chs, ch);
  }
  cJSON_AddItemToObject(o, "usage", usage(j));
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static void send_event(srv_job *j, cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!s) return;
  vklm_http_stream_write(j->hs, "data: ", 6);
  vklm_http_stream_write(j->hs, s, strlen(s));
  vklm_http_stream_write(j->hs, "\n\n", 2);
  free(s);
}

/* One chunk for choice c: delta text, new log-probs, finish_reason (NULL: none yet). */
static cJSON *chunk(vklm_serve *sv, srv_job *j, srv_choice *c, const char *text, size_t n,
                    int role, const char *finish) {
  int chat = j->kind == SRV_CHAT;
  cJSON *o = head(sv, j, chat ? "chat.completion.chunk" : "text_completion");
  cJSON *chs = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
  cJSON_AddNumberToObject(ch, "index", c->index);
  uint32_t a = c->sent_tok, b = c->ngen;
  if (chat) {
    cJSON *d = cJSON_AddObjectToObject(ch, "delta");
    if (role) cJSON_AddStringToObject(d, "role", "assistant");
    if (n || role) cJSON_AddItemToObject(d, "content", text_of(text, n));
    if (j->logprobs && b > a) cJSON_AddItemToObject(ch, "logprobs", chat_logprobs(sv, c, a, b));
    else cJSON_AddNullToObject(ch, "logprobs");
  } else {
    cJSON_AddItemToObject(ch, "text", text_of(text, n));
    if (j->logprobs && b > a)
      cJSON_AddItemToObject(ch, "logprobs", completion_logprobs(sv, c, 0, a, b, 0));
    else cJSON_AddNullToObject(ch, "logprobs");
  }
  c->sent_tok = b;
  if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
  else cJSON_AddNullToObject(ch, "finish_reason");
  cJSON_AddItemToArray(chs, ch);
  return o;
}

void srv_stream_emit(vklm_serve *sv, srv_job *j, srv_choice *c, const char *text, size_t n,
                     int last) {
  if (!c->started) {
    c->started = 1;
    if (j->kind == SRV_CHAT) {
      send_event(j, chunk(sv, j, c, "", 0, 1, NULL));
    } else if (j->echo) {
      const char *pt = j->ptext[c->prompt];
      send_event(j, chunk(sv, j, c, pt, strlen(pt), 0, NULL));
    }
  }
  if (n || (j->logprobs && c->ngen > c->sent_tok)) send_event(j, chunk(sv, j, c, text, n, 0, NULL));
  if (!c->finish) return;
  cJSON *o = chunk(sv, j, c, "", 0, 0, c->finish);
  if (last) cJSON_AddItemToObject(o, "usage", usage(j));
  send_event(j, o);
  if (!last) return;
  if (j->failed) {
    cJSON *e = cJSON_CreateObject(), *er = cJSON_AddObjectToObject(e, "error");
    cJSON_AddStringToObject(er, "message", j->errmsg);
    cJSON_AddStringToObject(er, "type", "server_error");
    send_event(j, e);
  }
  vklm_http_stream_write(j->hs, "data: [DONE]\n\n", 14);
}

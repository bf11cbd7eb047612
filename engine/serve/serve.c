/* serve: the server's life, its routes and the small endpoints (health, models, tokenize,
 * detokenize, metrics, the page); completions are parsed in oai.c, run in sched.c, written in
 * emit.c. */
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve_internal.h"

extern const unsigned char vklm_file_chat_page[];
extern const size_t vklm_file_chat_page_size;

static const char *const cors[] = {"Access-Control-Allow-Origin", "*", NULL};

static void reply_json(vklm_serve *sv, vklm_http_request *r, int status, const char *json) {
  if (status >= 400) {
    pthread_mutex_lock(&sv->mu);
    sv->met.errors++;
    pthread_mutex_unlock(&sv->mu);
  }
  vklm_http_reply(r, status, "application/json", json ? json : "{}", json ? strlen(json) : 2, cors);
}

static void reply_error(vklm_serve *sv, vklm_http_request *r, int status, const char *msg,
                        const char *type, const char *code) {
  char *e = srv_error_json(msg, type, NULL, code);
  reply_json(sv, r, status, e);
  free(e);
}

static void reply_obj(vklm_serve *sv, vklm_http_request *r, int status, cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  reply_json(sv, r, status, s);
  free(s);
}

/* The API key, compared in time independent of where the two differ (and of the key's
 * contents; only its length may show). */
static int key_ok(const vklm_serve *sv, const char *auth) {
  if (!sv->api_key[0]) return 1;
  const char *k = sv->api_key, *g = "";
  if (auth && !strncmp(auth, "Bearer ", 7)) g = auth + 7;
  size_t kl = strlen(k), gl = strlen(g);
  unsigned diff = (unsigned)(kl ^ gl);
  for (size_t i = 0; i < kl; i++) diff |= (unsigned char)k[i] ^ (unsigned char)g[i < gl ? i : 0];
  return diff == 0;
}

/* ---- completions ---- */
static void completions(vklm_serve *sv, vklm_http_request *r, int kind, const char *body,
                        size_t len) {
  char err[1024] = "", param[64];
  srv_job *j = NULL;
  int st = srv_parse(sv, kind, body, len, &j, err, sizeof err, param, sizeof param);
  if (st) {
    pthread_mutex_lock(&sv->mu);
    sv->met.errors++;
    pthread_mutex_unlock(&sv->mu);
    vklm_http_reply(r, st, "application/json", err, strlen(err), cors);
    return;
  }
  static atomic_ulong counter;
  snprintf(j->id, sizeof j->id, "%s-%lx%04lx", kind == SRV_CHAT ? "chatcmpl" : "cmpl",
           (unsigned long)time(NULL), atomic_fetch_add(&counter, 1) & 0xffff);
  j->created = (int64_t)time(NULL);
  int stream = j->stream;
  st = srv_submit(sv, j, r);
  if (st) {
    srv_job_free(j);
    if (st == 503)
      reply_error(sv, r, 503,
                  atomic_load(&sv->stopping) ? "the server is shutting down"
                                             : "the server is busy: the queue is full; retry later",
                  "server_error", "server_busy");
    else reply_error(sv, r, 500, "cannot start the reply", "server_error", NULL);
    return;
  }
  if (stream) return; /* the scheduler writes and frees it */
  srv_wait(sv, j, r);
  if (j->failed) {
    reply_error(sv, r, 500, j->errmsg, "server_error", NULL);
  } else {
    char *s = srv_response_json(sv, j);
    reply_json(sv, r, s ? 200 : 500, s);
    free(s);
  }
  srv_job_free(j);
}

/* ---- small endpoints ---- */
static void tokenize(vklm_serve *sv, vklm_http_request *r, const char *body, size_t len) {
  cJSON *o = cJSON_ParseWithLength(body, len), *c = cJSON_GetObjectItemCaseSensitive(o, "content");
  cJSON *wp = cJSON_GetObjectItemCaseSensitive(o, "with_pieces");
  if (!cJSON_IsString(c) || (wp && !cJSON_IsBool(wp)) ||
      !srv_utf8_valid(c->valuestring, strlen(c->valuestring))) {
    cJSON_Delete(o);
    return reply_error(sv, r, 400, "give {\"content\": string (valid UTF-8), \"with_pieces\": "
                       "bool (optional)}", "invalid_request_error", NULL);
  }
  vklm_token_ids ids = {0};
  pthread_mutex_lock(&sv->tk_mu);
  int e = vklm_tokenizer_encode(sv->m.tk, c->valuestring, strlen(c->valuestring),
                                VKLM_ENCODE_SPECIALS, &ids);
  pthread_mutex_unlock(&sv->tk_mu);
  int pieces = cJSON_IsTrue(wp);
  cJSON_Delete(o);
  if (e) return reply_error(sv, r, 500, "tokenizer failure", "server_error", NULL);
  cJSON *out = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(out, "tokens");
  for (size_t i = 0; i < ids.n; i++) {
    if (!pieces) {
      cJSON_AddItemToArray(a, cJSON_CreateNumber(ids.ids[i]));
      continue;
    }
    cJSON *p = cJSON_CreateObject();
    size_t n = 0;
    const char *b = vklm_tokenizer_token_bytes(sv->m.tk, ids.ids[i], &n);
    char *t = malloc(n + 1);
    if (t) memcpy(t, b, n), t[n] = 0;
    cJSON_AddNumberToObject(p, "id", ids.ids[i]);
    if (t && srv_utf8_valid(t, n)) cJSON_AddStringToObject(p, "piece", t);
    else {
      cJSON *bb = cJSON_AddArrayToObject(p, "piece");
      for (size_t k = 0; k < n; k++)
        cJSON_AddItemToArray(bb, cJSON_CreateNumber((unsigned char)b[k]));
    }
    free(t);
    cJSON_AddItemToArray(a, p);
  }
  vklm_token_ids_free(&ids);
  reply_obj(sv, r, 200, out);
}

static void detokenize(vklm_serve *sv, vklm_http_request *r, const char *body, size_t len) {
  cJSON *o = cJSON_ParseWithLength(body, len), *t = cJSON_GetObjectItemCaseSensitive(o, "tokens");
  uint32_t V = vklm_infer_config(sv->m.session)->vocab_size;
  int n = cJSON_IsArray(t) ? cJSON_GetArraySize(t) : -1, k = 0;
  int32_t *ids = n >= 0 ? malloc(sizeof(int32_t) * (n ? n : 1)) : NULL;
  for (cJSON *e = ids ? t->child : NULL; e; e = e->next, k++) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= V ||
        e->valuedouble != (double)(int32_t)e->valuedouble)
      break;
    ids[k] = (int32_t)e->valuedouble;
  }
  cJSON_Delete(o);
  vklm_bytes b = {0};
  if (!ids || k != n || vklm_tokenizer_decode(sv->m.tk, ids, (size_t)n, 0, &b)) {
    free(ids);
    return reply_error(sv, r, 400, "give {\"tokens\": [ids of this model's vocabulary]}",
                       "invalid_request_error", NULL);
  }
  free(ids);
  /* the text, valid UTF-8 (a piece of a character becomes U+FFFD) */
  cJSON *out = cJSON_CreateObject();
  char *txt = srv_utf8_lossy(b.data ? b.data : "", b.n);
  cJSON_AddStringToObject(out, "content", txt ? txt : "");
  free(txt);
  vklm_bytes_free(&b);
  reply_obj(sv, r, 200, out);
}

static void models(vklm_serve *sv, vklm_http_request *r) {
  cJSON *o = cJSON_CreateObject(), *m = cJSON_CreateObject();
  cJSON *d = cJSON_AddArrayToObject(o, "data");
  cJSON_AddStringToObject(o, "object", "list");
  cJSON_AddStringToObject(m, "id", sv->model_name);
  cJSON_AddStringToObject(m, "object", "model");
  cJSON_AddNumberToObject(m, "created", (double)(int64_t)time(NULL));
  cJSON_AddStringToObject(m, "owned_by", "vklm");
  cJSON *meta = cJSON_AddObjectToObject(m, "meta");
  cJSON_AddNumberToObject(meta, "n_ctx", vklm_infer_ctx(sv->m.session));
  cJSON_AddNumberToObject(meta, "n_vocab", vklm_infer_config(sv->m.session)->vocab_size);
  cJSON_AddNumberToObject(meta, "slots", vklm_infer_slots(sv->m.session));
  cJSON_AddBoolToObject(meta, "chat_template", sv->m.tpl != NULL);
  cJSON_AddItemToArray(d, m);
  reply_obj(sv, r, 200, o);
}

static void metrics(vklm_serve *sv, vklm_http_request *r) {
  pthread_mutex_lock(&sv->mu);
  srv_metrics m = sv->met;
  uint32_t q = sv->qlen, busy = sv->busy;
  pthread_mutex_unlock(&sv->mu);
  uint32_t slots = atomic_load(&sv->ready) ? vklm_infer_slots(sv->m.session) : 0;
  long rss = 0, pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  if (f) fclose(f);
  char b[3072];
  int n = snprintf(b, sizeof b,
      "# HELP vklm_requests_total Completion requests accepted (chat and text).\n"
      "# TYPE vklm_requests_total counter\nvklm_requests_total %llu\n"
      "# HELP vklm_request_errors_total Requests answered with a 4xx or 5xx status.\n"
      "# TYPE vklm_request_errors_total counter\nvklm_request_errors_total %llu\n"
      "# HELP vklm_requests_rejected_total Requests refused with 503 because the queue was full.\n"
      "# TYPE vklm_requests_rejected_total counter\nvklm_requests_rejected_total %llu\n"
      "# HELP vklm_prompt_tokens_total Prompt tokens of accepted requests.\n"
      "# TYPE vklm_prompt_tokens_total counter\nvklm_prompt_tokens_total %llu\n"
      "# HELP vklm_tokens_generated_total Tokens generated.\n"
      "# TYPE vklm_tokens_generated_total counter\nvklm_tokens_generated_total %llu\n"
      "# HELP vklm_steps_total Batched inference steps run.\n"
      "# TYPE vklm_steps_total counter\nvklm_steps_total %llu\n"
      "# HELP vklm_tokens_per_second Generated tokens per second over recent steps (0 idle).\n"
      "# TYPE vklm_tokens_per_second gauge\nvklm_tokens_per_second %.3f\n"
      "# HELP vklm_queue_length Requests waiting for a slot.\n"
      "# TYPE vklm_queue_length gauge\nvklm_queue_length %u\n"
      "# HELP vklm_slots_busy Sequence slots in use.\n"
      "# TYPE vklm_slots_busy gauge\nvklm_slots_busy %u\n"
      "# HELP vklm_slots_total Sequence slots.\n"
      "# TYPE vklm_slots_total gauge\nvklm_slots_total %u\n"
      "# HELP vklm_resident_memory_bytes Resident memory of the server process.\n"
      "# TYPE vklm_resident_memory_bytes gauge\nvklm_resident_memory_bytes %lld\n",
      (unsigned long long)m.requests, (unsigned long long)m.errors,
      (unsigned long long)m.rejected, (unsigned long long)m.prompt_tokens,
      (unsigned long long)m.gen_tokens, (unsigned long long)m.steps, m.tok_s, q, busy, slots,
      (long long)rss * sysconf(_SC_PAGESIZE));
  vklm_http_reply(r, 200, "text/plain; version=0.0.4", b, (size_t)n, NULL);
}

/* ---- routing ---- */
static void handle(void *user, vklm_http_request *r, const char *method, const char *path,
                   const char *body, size_t len) {
  vklm_serve *sv = user;
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  if (!strcmp(method, "OPTIONS")) { /* CORS preflight */
    static const char *const h[] = {"Access-Control-Allow-Origin", "*",
                                     "Access-Control-Allow-Methods", "GET, POST, OPTIONS",
                                     "Access-Control-Allow-Headers", "Authorization, Content-Type",
                                     NULL};
    vklm_http_reply(r, 204, NULL, "", 0, h);
    return;
  }
  if (get && (!strcmp(path, "/") || !strcmp(path, "/index.html"))) {
    vklm_http_reply(r, 200, "text/html; charset=utf-8", (const char *)vklm_file_chat_page,
                    vklm_file_chat_page_size, NULL);
    return;
  }
  if (get && !strcmp(path, "/health")) {
    if (atomic_load(&sv->stopping))
      return reply_json(sv, r, 503, "{\"status\":\"stopping\"}");
    if (!atomic_load(&sv->ready))
      return reply_json(sv, r, 503, "{\"status\":\"loading\",\"error\":{\"message\":\"the model "
                                    "is loading\",\"type\":\"unavailable_error\",\"code\":503}}");
    return reply_json(sv, r, 200, "{\"status\":\"ok\"}");
  }
  if (!key_ok(sv, vklm_http_header(r, "Authorization"))) {
    static const char *const h[] = {"WWW-Authenticate", "Bearer", "Access-Control-Allow-Origin",
                                    "*", NULL};
    char *e = srv_error_json("invalid or missing API key (Authorization: Bearer KEY)",
                             "authentication_error", NULL, "invalid_api_key");
    pthread_mutex_lock(&sv->mu);
    sv->met.errors++;
    pthread_mutex_unlock(&sv->mu);
    vklm_http_reply(r, 401, "application/json", e ? e : "{}", e ? strlen(e) : 2, h);
    free(e);
    return;
  }
  if (get && !strcmp(path, "/metrics")) return metrics(sv, r);
  int known = !strcmp(path, "/v1/chat/completions") || !strcmp(path, "/chat/completions") ||
              !strcmp(path, "/v1/completions") || !strcmp(path, "/completions") ||
              !strcmp(path, "/v1/models") || !strcmp(path, "/models") ||
              !strcmp(path, "/tokenize") || !strcmp(path, "/detokenize");
  if (!known) return reply_error(sv, r, 404, "no such endpoint", "invalid_request_error", NULL);
  if (!atomic_load(&sv->ready) || atomic_load(&sv->stopping))
    return reply_error(sv, r, 503, atomic_load(&sv->stopping) ? "the server is shutting down"
                                                              : "the model is loading",
                       "server_error", NULL);
  if (get && (!strcmp(path, "/v1/models") || !strcmp(path, "/models"))) return models(sv, r);
  if (!post) return reply_error(sv, r, 405, "use POST", "invalid_request_error", NULL);
  if (strstr(path, "chat/completions")) return completions(sv, r, SRV_CHAT, body, len);
  if (strstr(path, "completions")) return completions(sv, r, SRV_COMPLETION, body, len);
  if (!strcmp(path, "/tokenize")) return tokenize(sv, r, body, len);
  if (!strcmp(path, "/detokenize")) return detokenize(sv, r, body, len);
  reply_error(sv, r, 404, "no such endpoint", "invalid_request_error", NULL);
}

/* ---- life ---- */
vklm_status vklm_serve_start(const vklm_serve_options *o, vklm_serve **out, char *err,
                             size_t errlen) {
  *out = NULL;
  vklm_serve *sv = calloc(1, sizeof *sv);
  if (!sv) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  sv->o = *o;
  if (!sv->o.queue_max) sv->o.queue_max = 64;
  snprintf(sv->model_name, sizeof sv->model_name, "%s", o->model_name ? o->model_name : "vklm");
  if (o->api_key && strlen(o->api_key) >= sizeof sv->api_key) {
    snprintf(err, errlen, "the API key is longer than %zu bytes", sizeof sv->api_key - 1);
    free(sv);
    return VKLM_ERROR_INVALID;
  }
  snprintf(sv->api_key, sizeof sv->api_key, "%s", o->api_key ? o->api_key : "");
  sv->o.api_key = sv->api_key;
  pthread_mutex_init(&sv->mu, NULL);
  pthread_mutex_init(&sv->tk_mu, NULL);
  pthread_cond_init(&sv->work, NULL);
  pthread_cond_init(&sv->done, NULL);
  sv->started = srv_now();
  vklm_http_options ho = {.host = o->host, .port = o->port, .max_body = o->max_body,
                          .max_conns = o->max_conns, .timeout_s = o->timeout_s,
                          .handler = handle, .user = sv};
  vklm_status st = vklm_http_start(&ho, &sv->http, err, errlen);
  if (st) {
    vklm_serve_destroy(sv);
    return st;
  }
  *out = sv;
  return VKLM_OK;
}

uint16_t vklm_serve_port(const vklm_serve *sv) { return vklm_http_port(sv->http); }

vklm_status vklm_serve_ready(vklm_serve *sv, const vklm_serve_model *m, char *err,
                             size_t errlen) {
  sv->m = *m;
  sv->n_ctx = vklm_infer_ctx(m->session);
  sv->vocab = vklm_infer_config(m->session)->vocab_size;
  sv->nends = sv->nchat_ends = 0;
  if (m->eos >= 0) sv->ends[sv->nends++] = m->eos;
  sv->nchat_ends = sv->nends;
  sv->ntpl_stops = 0;
  if (m->tpl) { /* end-of-turn markers: ids where they are tokens, and always stop strings */
    const char *marks[SRV_MAX_ENDS];
    size_t nm = vklm_chat_template_stops(m->tpl, marks, SRV_MAX_ENDS);
    if (nm > SRV_MAX_ENDS) nm = SRV_MAX_ENDS;
    for (size_t k = 0; k < nm; k++) {
      int32_t id = vklm_tokenizer_special_id(m->tk, marks[k]);
      if (id >= 0 && sv->nchat_ends < SRV_MAX_ENDS) sv->ends[sv->nchat_ends++] = id;
      if (*marks[k]) sv->tpl_stops[sv->ntpl_stops++] = marks[k];
    }
  }
  /* every slot is the scheduler's: a new session holds slot 0 open for its single-sequence
   * calls (infer.h), which the server never makes */
  for (uint32_t i = 0; i < vklm_infer_slots(m->session); i++) vklm_infer_seq_close(m->session, i);
  if (srv_sched_start(sv)) {
    snprintf(err, errlen, "cannot start the scheduler thread");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  atomic_store(&sv->ready, 1);
  return VKLM_OK;
}

void vklm_serve_stop(vklm_serve *sv) {
  if (!sv) return;
  atomic_store(&sv->stopping, 1);
  srv_sched_stop(sv);
}

void vklm_serve_destroy(vklm_serve *sv) {
  if (!sv) return;
  vklm_serve_stop(sv);
  vklm_http_stop(sv->http);
  pthread_mutex_destroy(&sv->mu);
  pthread_mutex_destroy(&sv->tk_mu);
  pthread_cond_destroy(&sv->work);
  pthread_cond_destroy(&sv->done);
  free(sv);
}

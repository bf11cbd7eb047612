/* serve_internal: what the pieces of engine/serve share.
 *   serve.c   routes, authentication, /health /models /tokenize /detokenize /metrics, the page
 *   oai.c     OpenAI request bodies -> srv_job (every field bounded and type-checked)
 *   emit.c    srv_job -> OpenAI JSON (whole responses and SSE chunks)
 *   sched.c   the queue, the slots and the scheduler thread (the only caller of the session)
 * A job is one request; each of its choices is one sequence. Once submitted, a job's choices
 * belong to the scheduler thread until the job is done; the job itself then belongs to whoever
 * waits for it (a blocking handler), or the scheduler frees it (a stream). */
#ifndef VKLM_SERVE_INTERNAL_H
#define VKLM_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "infer/stream.h"
#include "net/http.h"
#include "serve/serve.h"

#define SRV_MAX_STOPS 16
#define SRV_MAX_ENDS 16
#define SRV_MAX_TOP 20      /* top_logprobs */
#define SRV_MAX_N 16        /* choices per prompt */
#define SRV_MAX_CHOICES 64  /* choices per request */
#define SRV_MAX_MESSAGES 1024

enum { SRV_CHAT, SRV_COMPLETION };

typedef struct srv_choice {
  struct srv_job *job;
  uint32_t index, prompt;   /* the choice's index; which prompt of the job */
  const int32_t *ids;       /* the prompt's tokens (the job's) */
  uint32_t np;
  vklm_sampler *smp;        /* owned */
  vklm_stream *stream;      /* owned */
  int slot;                 /* -1: none */
  uint32_t fed;             /* prompt tokens in the cache */
  int32_t next;             /* the last generated token, fed at the next step */
  int32_t *gen;             /* generated ids (owned) */
  uint32_t ngen, cap;
  float *lp;                /* per generated token (logprobs): its log-prob, then top_n pairs */
  int32_t *top_id;
  float *top_lp;
  float *plp;               /* per prompt token (echo with logprobs; [0] NAN), top_n pairs */
  int32_t *ptop_id;
  float *ptop_lp;
  const char *finish;       /* NULL while running: "stop" or "length" */
  int started;              /* streaming: the first chunk went out */
  uint32_t sent_tok;        /* streaming: tokens whose logprobs went out */
} srv_choice;

typedef struct srv_job {
  int kind, stream, echo, usage_chunk;
  int ignore_eos;           /* end-of-sequence tokens do not end the reply (benchmarks) */
  int logprobs;             /* 1: return log-probs */
  uint32_t top_n;
  uint32_t max_tokens;
  vklm_sampler_params sp;
  float presence, frequency;
  int host;                 /* sample on the host (presence / frequency penalties) */
  char *stops[SRV_MAX_STOPS + SRV_MAX_ENDS];
  uint32_t nstops;
  vklm_token_ids *prompts;  /* owned */
  char **ptext;             /* owned: each prompt's text (echo) */
  uint32_t nprompts;
  srv_choice *ch;           /* owned */
  uint32_t nch, admitted, ndone;
  uint32_t prompt_tokens;
  char id[48];
  int64_t created;
  atomic_int cancelled;     /* the client left */
  int failed;               /* a step failed: errmsg holds why */
  char errmsg[512];
  vklm_http_stream *hs;     /* streaming: the reply */
  struct srv_job *qnext;    /* the queue */
  struct srv_job *dnext;    /* finished streaming jobs, freed by the scheduler */
  double t_start;
} srv_job;

typedef struct srv_metrics {
  uint64_t requests, errors, rejected, prompt_tokens, gen_tokens, steps;
  double tok_s;            /* generated tokens per second, a moving rate over recent steps */
} srv_metrics;

struct vklm_serve {
  vklm_serve_options o;
  char model_name[256];
  char api_key[512];
  vklm_http *http;
  vklm_serve_model m;
  atomic_int ready, stopping;
  pthread_mutex_t tk_mu;    /* the tokenizer's encoder is not thread-safe */
  int32_t ends[SRV_MAX_ENDS];  /* completions: eos; chat: eos and the template's end ids */
  uint32_t nends, nchat_ends;
  const char *tpl_stops[SRV_MAX_ENDS];
  uint32_t ntpl_stops;
  uint32_t n_ctx, vocab;    /* what requests are checked against: the session's context and
                               vocabulary (vklm_serve_ready); srv_parse reads no session */
  /* the scheduler (sched.c) */
  pthread_t thread;
  int thread_on;
  pthread_mutex_t mu;       /* the queue, the metrics, job completion */
  pthread_cond_t work, done;
  srv_job *qhead, *qtail, *dead;
  uint32_t qlen, busy;
  srv_metrics met;
  double started;
};

/* oai.c: parses a request body into *job (kind set by the caller). 0, or the HTTP status with an
 * OpenAI error object in err (param: the field at fault, "" when none). */
int srv_parse(vklm_serve *sv, int kind, const char *body, size_t len, srv_job **job, char *err,
              size_t errlen, char *param, size_t paramlen);
void srv_job_free(srv_job *j);
/* An OpenAI error object as JSON (malloc'ed). */
char *srv_error_json(const char *msg, const char *type, const char *param, const char *code);
/* Whether s[0..n) is valid UTF-8. */
int srv_utf8_valid(const char *s, size_t n);
/* s[0..n) with each byte of no valid UTF-8 character replaced by U+FFFD, NUL-terminated
 * (malloc'ed; NULL when out of memory). */
char *srv_utf8_lossy(const char *s, size_t n);

/* emit.c */
char *srv_response_json(vklm_serve *sv, srv_job *j);
/* Streaming: writes the chunks due for choice c (text since the last, its finish) and, when
 * last, the usage chunk and [DONE]. */
void srv_stream_emit(vklm_serve *sv, srv_job *j, srv_choice *c, const char *text, size_t n,
                     int last);

/* sched.c */
vklm_status srv_sched_start(vklm_serve *sv);
/* Queues j (0), or 503 when the queue is full or the server stops. A streaming job's reply
 * (200, text/event-stream) is started here, once it is sure to be served. */
int srv_submit(vklm_serve *sv, srv_job *j, vklm_http_request *r);
/* Blocks until j is done (or its client left: r polled). */
void srv_wait(vklm_serve *sv, srv_job *j, vklm_http_request *r);
void srv_sched_stop(vklm_serve *sv);
double srv_now(void);

#endif

/* serve: an OpenAI-compatible HTTP server over one inference session (`vklm serve`).
 *
 * Endpoints (docs/serve.md lists every field and limit): POST /v1/chat/completions,
 * POST /v1/completions, GET /v1/models, GET /health (503 while the model loads), POST /tokenize,
 * POST /detokenize, GET /metrics (Prometheus text) and GET / (the web chat page, embedded).
 *
 * Life: vklm_serve_start listens at once and answers /health with 503 ("loading") while the
 * caller opens the model; vklm_serve_ready hands over the session, tokenizer and chat template
 * (all borrowed: they must outlive the server) and starts the scheduler; vklm_serve_stop ends
 * gracefully: new requests get 503, queued ones are answered 503, running ones end with
 * finish_reason "length" (streams get their last chunk and [DONE]); then nothing is left
 * running.
 *
 * Scheduling (engine/serve/sched.c): every choice of every request is one sequence; up to the
 * session's n_seq run together, each vklm_infer_step decoding all of them at once (continuous
 * batching: a sequence joins with its prompt and leaves when done between steps, without
 * stopping the others); more wait in a FIFO queue of at most queue_max requests, past which a
 * request gets 503. A client that hangs up frees its slot before the next step.
 *
 * Threads: one per connection (engine/net/http.h), one scheduler thread that alone calls the
 * session. Not reentrant across servers sharing a session. */
#ifndef VKLM_SERVE_SERVE_H
#define VKLM_SERVE_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "infer/infer.h"
#include "text/tokenizer.h"

typedef struct vklm_serve vklm_serve;

typedef struct vklm_serve_options {
  const char *host;       /* NULL: 127.0.0.1 */
  uint16_t port;          /* 0: any free port (vklm_serve_port) */
  const char *api_key;    /* NULL or "": none; else every request but GET / and /health needs
                             "Authorization: Bearer KEY" */
  const char *model_name; /* the id /v1/models reports; NULL: "vklm" */
  uint32_t queue_max;     /* requests waiting for a slot; 0: 64 */
  size_t max_body;        /* request body bytes; 0: 1 MiB */
  uint32_t max_conns;     /* simultaneous connections; 0: 128 */
  uint32_t timeout_s;     /* idle connection timeout; 0: 15 */
} vklm_serve_options;

/* What the server serves (borrowed). The session is the server's alone from vklm_serve_ready
 * on (it takes every slot, closing any that were open). eos: the end-of-sequence id (-1: none). */
typedef struct vklm_serve_model {
  vklm_infer *session;
  vklm_tokenizer *tk;
  const vklm_chat_template *tpl; /* chat completions; NULL: /v1/chat/completions answers 400 */
  int32_t eos;
} vklm_serve_model;

vklm_status vklm_serve_start(const vklm_serve_options *o, vklm_serve **out, char *err,
                             size_t errlen);
uint16_t vklm_serve_port(const vklm_serve *sv);
/* Starts serving m; /health turns 200. */
vklm_status vklm_serve_ready(vklm_serve *sv, const vklm_serve_model *m, char *err, size_t errlen);
/* The graceful end (see above); then the server only answers 503 until destroyed. */
void vklm_serve_stop(vklm_serve *sv);
/* Stops (if not yet) and frees. Accepts NULL. */
void vklm_serve_destroy(vklm_serve *sv);

#endif

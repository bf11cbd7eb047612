/* sched: the request queue, the sequence slots and the scheduler thread. The thread alone calls
 * the session: each turn it drops the choices whose client left, admits queued choices into
 * free slots, runs ONE vklm_infer_step over every live choice (a prompt, a whole prompt or one
 * token of it when prompt log-probs are asked for, or the last generated token), then hands
 * each its next token: end-of-sequence and stop strings, max_tokens, the context's end, the
 * stream's text (whole UTF-8 characters), log-probs, and SSE chunks for streaming requests.
 * sv->mu guards the queue, the metrics and job completion; it is released around the step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve_internal.h"

double srv_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int wants_plp(const srv_job *j) {
  return j->kind == SRV_COMPLETION && j->echo && j->logprobs;
}
static int greedy(const srv_job *j) { return vklm_sampler_is_greedy(&j->sp) && !j->host; }

/* Ends choice c (lock held): frees its slot, flushes its text, completes the job when it was
 * the last choice (a streaming job is freed here; a waiting handler is woken). */
static void finish(vklm_serve *sv, srv_choice *c, const char *reason) {
  if (c->finish) return;
  srv_job *j = c->job;
  c->finish = reason;
  if (c->slot >= 0) vklm_infer_seq_close(sv->m.session, (uint32_t)c->slot);
  c->slot = -1;
  vklm_stream_piece pc = {"", 0, -1};
  if (vklm_stream_stopped(c->stream) < 0 && vklm_stream_finish(c->stream, &pc)) pc.n = 0;
  int last = ++j->ndone == j->nch;
  if (j->stream) srv_stream_emit(sv, j, c, pc.text, pc.n, last);
  if (!last) return;
  if (j->stream) { /* freed once no slot list points at it (run) */
    vklm_http_stream_close(j->hs);
    j->hs = NULL;
    j->dnext = sv->dead;
    sv->dead = j;
  } else {
    pthread_cond_broadcast(&sv->done);
  }
}

static void finish_job(vklm_serve *sv, srv_job *j) {
  for (uint32_t i = 0; i < j->nch; i++) finish(sv, &j->ch[i], "length");
}

/* log-softmax of row at t, and the top n (ids, log-probs) of the row */
static float logprob_of(const float *row, uint32_t V, int32_t t, uint32_t n, int32_t *tid,
                        float *tlp) {
  double mx = -INFINITY, s = 0;
  for (uint32_t v = 0; v < V; v++)
    if (row[v] > mx) mx = row[v];
  for (uint32_t v = 0; v < V; v++) s += exp((double)row[v] - mx);
  double lse = mx + log(s);
  for (uint32_t k = 0; k < n; k++) { /* selection: n is small */
    int32_t best = -1;
    for (uint32_t v = 0; v < V; v++) {
      int taken = 0;
      for (uint32_t q = 0; q < k && !taken; q++) taken = tid[q] == (int32_t)v;
      if (!taken && (best < 0 || row[v] > row[best])) best = (int32_t)v;
    }
    tid[k] = best;
    tlp[k] = (float)(row[best] - lse);
  }
  return (float)(row[t] - lse);
}

static int grow(srv_choice *c, uint32_t top_n, int lp) {
  if (c->ngen < c->cap) return 0;
  uint32_t cap = c->cap ? 2 * c->cap : 64;
  int32_t *g = realloc(c->gen, sizeof *g * cap);
  if (g) c->gen = g;
  if (!g) return -1;
  if (lp) {
    float *a = realloc(c->lp, sizeof *a * cap);
    if (a) c->lp = a;
    int32_t *b = realloc(c->top_id, sizeof *b * cap * (top_n ? top_n : 1));
    if (b) c->top_id = b;
    float *d = realloc(c->top_lp, sizeof *d * cap * (top_n ? top_n : 1));
    if (d) c->top_lp = d;
    if (!a || !b || !d) return -1;
  }
  c->cap = cap;
  return 0;
}

/* OpenAI's presence and frequency penalties over the generated tokens, then the host chain. */
static int32_t host_pick(srv_choice *c, const float *row, float *tmp, uint32_t V) {
  memcpy(tmp, row, sizeof(float) * V);
  for (uint32_t i = 0; i < c->ngen; i++) {
    int32_t t = c->gen[i];
    int seen = 0;
    for (uint32_t k = 0; k < i && !seen; k++) seen = c->gen[k] == t;
    tmp[t] -= c->job->frequency + (seen ? 0 : c->job->presence);
  }
  return vklm_sampler_sample(c->smp, tmp);
}

static int is_end(const vklm_serve *sv, const srv_job *j, int32_t t) {
  uint32_t n = j->ignore_eos ? 0 : j->kind == SRV_CHAT ? sv->nchat_ends : sv->nends;
  for (uint32_t k = 0; k < n; k++)
    if (sv->ends[k] == t) return 1;
  return 0;
}

/* Hands choice c its step's outcome (lock held). */
static void advance(vklm_serve *sv, srv_choice *c, uint32_t fed, int32_t next, const float *row,
                    float *tmp) {
  srv_job *j = c->job;
  uint32_t V = vklm_infer_config(sv->m.session)->vocab_size;
  if (c->fed < c->np) {
    if (wants_plp(j) && c->fed + 1 < c->np) {
      uint32_t k = c->fed + 1;
      c->plp[k] = logprob_of(row, V, c->ids[k], j->top_n, c->ptop_id + (size_t)k * j->top_n,
                             c->ptop_lp + (size_t)k * j->top_n);
    }
    c->fed += fed;
    if (c->fed < c->np) return;
    if (j->max_tokens == 0) return finish(sv, c, "length");
  }
  int32_t t = j->host ? host_pick(c, row, tmp, V) : next;
  if (is_end(sv, j, t)) return finish(sv, c, "stop");
  if (grow(c, j->top_n, j->logprobs)) return finish(sv, c, "length");
  if (j->logprobs)
    c->lp[c->ngen] = logprob_of(row, V, t, j->top_n, c->top_id + (size_t)c->ngen * j->top_n,
                                c->top_lp + (size_t)c->ngen * j->top_n);
  vklm_stream_piece pc;
  if (vklm_stream_push(c->stream, t, &pc)) return finish(sv, c, "stop");
  vklm_sampler_accept(c->smp, t);
  c->gen[c->ngen++] = t;
  c->next = t;
  sv->met.gen_tokens++;
  if (pc.stop >= 0) {
    if (j->stream && pc.n) srv_stream_emit(sv, j, c, pc.text, pc.n, 0);
    return finish(sv, c, "stop");
  }
  if (j->stream) srv_stream_emit(sv, j, c, pc.text, pc.n, 0);
  if (c->ngen >= j->max_tokens ||
      vklm_infer_seq_pos(sv->m.session, (uint32_t)c->slot) >= vklm_infer_ctx(sv->m.session))
    finish(sv, c, "length");
}

/* Takes the next queued choice into a slot (lock held); 0 when none could be. */
static int admit(vklm_serve *sv, srv_choice **act, uint32_t *nact) {
  srv_job *j = sv->qhead;
  if (!j) return 0;
  srv_choice *c = &j->ch[j->admitted];
  int needs = j->max_tokens > 0 || wants_plp(j);
  int slot = needs ? vklm_infer_seq_open(sv->m.session) : -1;
  if (needs && slot < 0) return 0;
  if (++j->admitted == j->nch) { /* the whole job is out of the queue */
    sv->qhead = j->qnext;
    if (!sv->qhead) sv->qtail = NULL;
    sv->qlen--;
  }
  if (!needs) {
    finish(sv, c, "length");
    return 1;
  }
  c->slot = slot;
  for (uint32_t i = 0; i < c->np; i++) vklm_sampler_accept(c->smp, c->ids[i]);
  if (wants_plp(j)) {
    size_t tn = (size_t)c->np * (j->top_n ? j->top_n : 1);
    c->plp = malloc(sizeof(float) * c->np);
    c->ptop_id = calloc(tn, sizeof(int32_t));
    c->ptop_lp = calloc(tn, sizeof(float));
    if (!c->plp || !c->ptop_id || !c->ptop_lp) {
      finish(sv, c, "length");
      return 1;
    }
    for (uint32_t i = 0; i < c->np; i++) c->plp[i] = NAN;
  }
  act[(*nact)++] = c;
  return 1;
}

static void *run(void *arg) {
  vklm_serve *sv = arg;
  uint32_t S = vklm_infer_slots(sv->m.session), V = vklm_infer_config(sv->m.session)->vocab_size;
  srv_choice **act = calloc(S, sizeof *act);
  vklm_infer_req *reqs = calloc(S, sizeof *reqs);
  int32_t *next = calloc(S, sizeof *next);
  float *logits = malloc(sizeof(float) * V * S), *tmp = malloc(sizeof(float) * V);
  uint32_t nact = 0;
  double win_tok = 0, win_t = 0;
  pthread_mutex_lock(&sv->mu);
  if (!act || !reqs || !next || !logits || !tmp) atomic_store(&sv->stopping, 1);
  for (;;) {
    int stop = atomic_load(&sv->stopping);
    for (uint32_t i = 0; i < nact; i++) /* clients gone, or the end */
      if (atomic_load(&act[i]->job->cancelled) || stop) finish_job(sv, act[i]->job);
    for (srv_job **pp = &sv->qhead, *j; (j = *pp);) { /* the same in the queue */
      if (!stop && !atomic_load(&j->cancelled)) {
        pp = &j->qnext;
        continue;
      }
      *pp = j->qnext;
      sv->qlen--;
      j->admitted = j->nch;
      finish_job(sv, j);
    }
    for (sv->qtail = sv->qhead; sv->qtail && sv->qtail->qnext;) sv->qtail = sv->qtail->qnext;
    uint32_t k = 0;
    for (uint32_t i = 0; i < nact; i++)
      if (!act[i]->finish) act[k++] = act[i];
    nact = k;
    while (sv->dead) {
      srv_job *d = sv->dead;
      sv->dead = d->dnext;
      srv_job_free(d);
    }
    while (nact < S && admit(sv, act, &nact)) {}
    for (k = 0; k < nact; k++) /* admitted and finished at once */
      if (act[k]->finish) act[k] = act[--nact], k--;
    sv->busy = nact;
    if (!nact) {
      sv->met.tok_s = 0;
      if (stop) break;
      pthread_cond_wait(&sv->work, &sv->mu);
      continue;
    }
    int need = 0;
    for (uint32_t i = 0; i < nact; i++) {
      srv_choice *c = act[i];
      srv_job *j = c->job;
      int last = 1;
      vklm_infer_req *r = &reqs[i];
      r->slot = (uint32_t)c->slot;
      r->want = 1;
      if (c->fed < c->np) {
        r->tokens = c->ids + c->fed;
        r->n = wants_plp(j) ? 1 : c->np - c->fed;
        last = c->fed + r->n == c->np;
      } else {
        r->tokens = &c->next;
        r->n = 1;
      }
      r->sampler = last && !greedy(j) && !j->host ? c->smp : NULL;
      need |= j->logprobs || j->host || wants_plp(j);
    }
    pthread_mutex_unlock(&sv->mu);
    double t0 = srv_now();
    vklm_status st = vklm_infer_step(sv->m.session, reqs, nact, next, need ? logits : NULL);
    double dt = srv_now() - t0;
    pthread_mutex_lock(&sv->mu);
    sv->met.steps++;
    if (st) {
      for (uint32_t i = 0; i < nact; i++) {
        srv_job *j = act[i]->job;
        if (!j->failed)
          snprintf(j->errmsg, sizeof j->errmsg, "%s", vklm_infer_error(sv->m.session));
        j->failed = 1;
        atomic_store(&j->cancelled, 1); /* out of the queue too, if part of it waits there */
      }
      for (uint32_t i = 0; i < nact; i++) finish_job(sv, act[i]->job);
      continue;
    }
    uint64_t g0 = sv->met.gen_tokens;
    for (uint32_t i = 0; i < nact; i++)
      advance(sv, act[i], reqs[i].n, next[i], need ? logits + (size_t)i * V : NULL, tmp);
    win_tok = win_tok * 0.9 + (double)(sv->met.gen_tokens - g0);
    win_t = win_t * 0.9 + dt;
    sv->met.tok_s = win_t > 0 ? win_tok / win_t : 0;
  }
  sv->busy = 0;
  while (sv->dead) {
    srv_job *d = sv->dead;
    sv->dead = d->dnext;
    srv_job_free(d);
  }
  pthread_mutex_unlock(&sv->mu);
  free(act);
  free(reqs);
  free(next);
  free(logits);
  free(tmp);
  return NULL;
}

vklm_status srv_sched_start(vklm_serve *sv) {
  if (pthread_create(&sv->thread, NULL, run, sv)) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  sv->thread_on = 1;
  return VKLM_OK;
}

static void on_gone(void *user) { atomic_store(&((srv_job *)user)->cancelled, 1); }

int srv_submit(vklm_serve *sv, srv_job *j, vklm_http_request *r) {
  pthread_mutex_lock(&sv->mu);
  int st = 0;
  if (atomic_load(&sv->stopping) || !sv->thread_on) {
    st = 503;
  } else if (sv->qlen >= sv->o.queue_max) {
    sv->met.rejected++;
    st = 503;
  } else {
    static const char *const hdr[] = {"Cache-Control", "no-cache", "X-Accel-Buffering", "no",
                                      "Access-Control-Allow-Origin", "*", NULL};
    if (j->stream && vklm_http_reply_stream(r, 200, "text/event-stream", hdr, on_gone, j, &j->hs)) {
      vklm_http_stream_close(j->hs);
      j->hs = NULL;
      pthread_mutex_unlock(&sv->mu);
      return 500;
    }
    j->t_start = srv_now();
    if (sv->qtail) sv->qtail->qnext = j;
    else sv->qhead = j;
    sv->qtail = j;
    sv->qlen++;
    sv->met.requests++;
    sv->met.prompt_tokens += j->prompt_tokens;
    pthread_cond_signal(&sv->work);
  }
  pthread_mutex_unlock(&sv->mu);
  return st;
}

void srv_wait(vklm_serve *sv, srv_job *j, vklm_http_request *r) {
  pthread_mutex_lock(&sv->mu);
  while (j->ndone < j->nch) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&sv->done, &sv->mu, &ts);
    if (j->ndone < j->nch && !atomic_load(&j->cancelled) && vklm_http_gone(r)) {
      atomic_store(&j->cancelled, 1);
      pthread_cond_signal(&sv->work);
    }
  }
  pthread_mutex_unlock(&sv->mu);
}

void srv_sched_stop(vklm_serve *sv) {
  pthread_mutex_lock(&sv->mu);
  atomic_store(&sv->stopping, 1);
  pthread_cond_broadcast(&sv->work);
  pthread_mutex_unlock(&sv->mu);
  if (sv->thread_on) pthread_join(sv->thread, NULL);
  sv->thread_on = 0;
}

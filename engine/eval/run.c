/* eval runs: turns a task into scoring requests, scores them (score.c) and computes the task's
 * metrics (metrics.c). Multiple choice: one request per choice, context and continuation split
 * as lm-evaluation-harness splits them (trailing spaces of the context move into the
 * continuation; the continuation's tokens are those of context+continuation after the context's
 * own tokens; an empty context is the end-of-sequence token). Perplexity: each document as
 * [eos] + its tokens in sliding windows. Bias: each sentence of a pair as a continuation of the
 * end-of-sequence token. Generation tasks go to gen.c. Optionally writes every item's requests,
 * log-likelihoods and predictions to o->samples (JSONL). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "eval/eval.h"
#include "eval/eval_internal.h"

int vklm_eval_run_gen(const vklm_eval_model *em, const vklm_eval_task *t,
                      const vklm_eval_options *o, const char *variant, vklm_eval_result *out,
                      char *err, size_t errlen);

void vklm_eval_options_default(vklm_eval_options *o) {
  memset(o, 0, sizeof *o);
  o->batch = 8;
  o->seed = 1234;
  o->top_k = 40;
  o->top_p = 0.95f;
  o->gen_seqs = 8;
}

static void metric(vklm_eval_result *r, const char *name, double v, double se, uint64_t n) {
  if (r->nm >= VKLM_EVAL_MAX_METRICS) return;
  vklm_eval_metric *m = &r->m[r->nm++];
  snprintf(m->name, sizeof m->name, "%s", name);
  m->value = v, m->se = se, m->n = n;
}

static void metric_mean(vklm_eval_result *r, const char *name, const double *x, size_t n) {
  double m, se;
  vklm_eval_mean_stderr(x, n, &m, &se);
  metric(r, name, m, se, n);
}

/* a request's tokens: ctx and cont as the harness splits them */
typedef struct seq { int32_t *tok; uint32_t n, n_cont; } seq;

static int encode(const vklm_eval_model *em, const char *s, size_t len, vklm_token_ids *ids) {
  ids->n = 0;
  return len ? vklm_tokenizer_encode(em->tk, s, len, 0, ids) : 0;
}

static int make_seq(const vklm_eval_model *em, const char *ctx, const char *delim, const char *cont,
                    seq *q, char *err, size_t errlen) {
  size_t nc = strlen(ctx), nd = strlen(delim), nk = strlen(cont), cut = nc;
  while (cut && (ctx[cut - 1] == ' ' || (ctx[cut - 1] >= 9 && ctx[cut - 1] <= 13))) cut--; /* rstrip */
  char *whole = malloc(nc + nd + nk + 1);
  vklm_token_ids a = {0}, w = {0};
  int rc = -1;
  if (!whole) return snprintf(err, errlen, "out of memory"), -1;
  memcpy(whole, ctx, nc), memcpy(whole + nc, delim, nd), memcpy(whole + nc + nd, cont, nk + 1);
  if (cut == 0) { /* empty context: the end-of-sequence token */
    if (em->eos < 0) {
      snprintf(err, errlen, "an empty context needs an end-of-sequence token, and the tokenizer has none");
      goto done;
    }
    if (encode(em, whole + cut, strlen(whole + cut), &w)) goto enc;
    q->n = (uint32_t)w.n + 1, q->n_cont = (uint32_t)w.n;
    if (!(q->tok = malloc(sizeof(int32_t) * q->n))) goto oom;
    q->tok[0] = em->eos;
    memcpy(q->tok + 1, w.ids, sizeof(int32_t) * w.n);
  } else {
    if (encode(em, whole, cut, &a) || encode(em, whole, strlen(whole), &w)) goto enc;
    q->n = (uint32_t)w.n, q->n_cont = w.n > a.n ? (uint32_t)(w.n - a.n) : 0;
    if (!(q->tok = malloc(sizeof(int32_t) * (w.n ? w.n : 1)))) goto oom;
    memcpy(q->tok, w.ids, sizeof(int32_t) * w.n);
  }
  rc = 0;
  goto done;
enc:
  snprintf(err, errlen, "the tokenizer cannot encode the text");
  goto done;
oom:
  snprintf(err, errlen, "out of memory");
done:
  vklm_token_ids_free(&a);
  vklm_token_ids_free(&w);
  free(whole);
  return rc;
}

static cJSON *ints(const int32_t *x, uint32_t n) {
  cJSON *a = cJSON_CreateArray();
  for (uint32_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
  return a;
}

static void sample_line(FILE *f, cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  if (s) fprintf(f, "%s\n", s);
  free(s);
  cJSON_Delete(o);
}

static cJSON *req_json(const vklm_eval_req *r) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "tokens", ints(r->tokens, r->n));
  cJSON_AddNumberToObject(o, "n_cont", r->n_cont);
  cJSON_AddNumberToObject(o, "ll", r->ll);
  if (r->greedy >= 0) cJSON_AddBoolToObject(o, "greedy", r->greedy);
  return o;
}

static int score_all(const vklm_eval_model *em, const vklm_eval_options *o, vklm_eval_req *reqs,
                     size_t n, uint32_t T, int greedy, const char *label, char *err, size_t errlen) {
  vklm_eval_scorer *sc = NULL;
  if (vklm_eval_scorer_create(em, o->batch, T, greedy, &sc, err, errlen)) return -1;
  int r = vklm_eval_score(sc, reqs, n, o->progress ? label : NULL, err, errlen);
  vklm_eval_scorer_destroy(sc);
  return r;
}

/* MC and BIAS: one request per choice */
static int run_choices(const vklm_eval_model *em, const vklm_eval_task *t, uint32_t ni,
                       const vklm_eval_options *o, const char *label, vklm_eval_result *out,
                       char *err, size_t errlen) {
  size_t nr = 0;
  for (uint32_t i = 0; i < ni; i++) nr += t->items[i].nchoices;
  seq *qs = calloc(nr ? nr : 1, sizeof *qs);
  vklm_eval_req *rq = calloc(nr ? nr : 1, sizeof *rq);
  double *a = calloc(4 * (size_t)ni + 1, sizeof(double));
  int rc = -1;
  if (!qs || !rq || !a) { snprintf(err, errlen, "out of memory"); goto done; }
  uint32_t T = 1;
  int bias = t->kind == VKLM_TASK_BIAS;
  for (uint32_t i = 0, k = 0; i < ni; i++) {
    const vklm_eval_item *it = &t->items[i];
    for (uint32_t j = 0; j < it->nchoices; j++, k++) {
      if (make_seq(em, bias ? "" : it->context, bias ? "" : t->delim, it->choices[j], &qs[k], err,
                   errlen)) {
        char m[512];
        snprintf(m, sizeof m, "%s", err);
        snprintf(err, errlen, "%s:%u: %s", t->path, it->line, m);
        goto done;
      }
      rq[k] = (vklm_eval_req){.tokens = qs[k].tok, .n = qs[k].n, .n_cont = qs[k].n_cont};
      if (qs[k].n - 1 > T) T = qs[k].n - 1;
    }
  }
  if (T > em->cfg->max_seq) T = em->cfg->max_seq;
  int lambada = t->greedy;
  for (uint32_t i = 0; i < ni; i++) lambada &= t->items[i].nchoices == 1;
  if (score_all(em, o, rq, nr, T, t->greedy && !bias, label, err, errlen)) goto done;
  double *acc = a, *accn = a + ni, *accb = a + 2 * (size_t)ni, *gr = a + 3 * (size_t)ni;
  double llsum = 0;
  uint64_t kst = 0;
  for (uint32_t i = 0, k = 0; i < ni; k += t->items[i].nchoices, i++) {
    const vklm_eval_item *it = &t->items[i];
    double ll[64];
    for (uint32_t j = 0; j < it->nchoices; j++) ll[j] = rq[k + j].ll;
    vklm_mc_score ms;
    vklm_eval_mc_score(ll, (const char *const *)it->choices, it->nchoices, bias ? 0 : it->gold, &ms);
    int stereo = bias && ll[0] > ll[1];
    acc[i] = ms.acc, accn[i] = ms.acc_norm, accb[i] = ms.acc_bytes;
    gr[i] = rq[k + (uint32_t)it->gold].greedy == 1;
    llsum += ll[bias ? 0 : it->gold];
    if (bias) {
      kst += stereo;
      uint32_t c = 0;
      while (c < out->ncat && strcmp(out->cat[c].name, it->category)) c++;
      if (c == out->ncat && c < VKLM_EVAL_MAX_CATS) {
        snprintf(out->cat[c].name, sizeof out->cat[c].name, "%s", it->category);
        out->ncat++;
      }
      if (c < out->ncat) out->cat[c].k += stereo, out->cat[c].n++;
      acc[i] = stereo, accn[i] = fabs(ll[0] - ll[1]);
    }
    if (o->samples) {
      cJSON *js = cJSON_CreateObject(), *rs = cJSON_CreateArray();
      cJSON_AddStringToObject(js, "task", t->name);
      cJSON_AddStringToObject(js, "variant", out->variant);
      cJSON_AddNumberToObject(js, "line", it->line);
      if (!bias) cJSON_AddNumberToObject(js, "gold", it->gold);
      cJSON_AddNumberToObject(js, "pred", ms.pred);
      cJSON_AddNumberToObject(js, "pred_norm", ms.pred_norm);
      for (uint32_t j = 0; j < it->nchoices; j++) cJSON_AddItemToArray(rs, req_json(&rq[k + j]));
      cJSON_AddItemToObject(js, "requests", rs);
      sample_line(o->samples, js);
    }
  }
  if (bias) {
    metric_mean(out, "pct_stereotype", acc, ni);
    metric_mean(out, "likelihood_diff", accn, ni);
    for (uint32_t c = 0; c < out->ncat; c++) {
      vklm_eval_category *g = &out->cat[c];
      g->frac = g->n ? (double)g->k / (double)g->n : 0;
      vklm_eval_wilson(g->k, g->n, &g->lo, &g->hi);
    }
  } else if (lambada) {
    metric_mean(out, "acc", gr, ni);
    metric(out, "ppl", exp(-llsum / ni), -1, ni);
  } else {
    metric_mean(out, "acc", acc, ni);
    metric_mean(out, "acc_norm", accn, ni);
    metric_mean(out, "acc_bytes", accb, ni);
    if (t->greedy) metric_mean(out, "acc_greedy", gr, ni);
  }
  (void)kst;
  rc = 0;
done:
  for (size_t k = 0; qs && k < nr; k++) free(qs[k].tok);
  free(qs), free(rq), free(a);
  return rc;
}

static int run_ppl(const vklm_eval_model *em, const vklm_eval_task *t, uint32_t ni,
                   const vklm_eval_options *o, const char *label, vklm_eval_result *out,
                   char *err, size_t errlen) {
  uint32_t ctx = o->ctx && o->ctx < em->cfg->max_seq ? o->ctx : em->cfg->max_seq;
  uint32_t stride = o->stride ? o->stride : (ctx / 2 ? ctx / 2 : 1);
  if (stride > ctx) stride = ctx;
  vklm_token_ids *docs = calloc(ni, sizeof *docs);
  vklm_eval_req *rq = NULL;
  uint32_t *wb = NULL, *we = NULL, *ws = NULL, *wd = NULL;
  int rc = -1;
  if (!docs) return snprintf(err, errlen, "out of memory"), -1;
  size_t nw = 0;
  uint32_t T = 1;
  char **dec = calloc(ni + 1, sizeof(char *)); /* shard documents' text, decoded */
  const char **txt = calloc(ni + 1, sizeof(char *));
  if (!dec || !txt) { snprintf(err, errlen, "out of memory"); goto done; }
  for (uint32_t i = 0; i < ni; i++) {
    const vklm_eval_item *it = &t->items[i];
    const char *x = txt[i] = it->context;
    if (it->ids) { /* token shards: the ids as they are; the text for counting bytes and words */
      vklm_bytes by = {0};
      for (uint32_t k = 0; k < it->nids; k++)
        if (it->ids[k] < 0 || (uint32_t)it->ids[k] >= em->cfg->vocab_size) {
          snprintf(err, errlen, "%s: document %u holds token %d, outside the model's vocabulary of %u "
                   "(shards made with another tokenizer?)", t->path, i + 1, it->ids[k], em->cfg->vocab_size);
          goto done;
        }
      if (vklm_tokenizer_decode(em->tk, it->ids, it->nids, VKLM_DECODE_SKIP_SPECIALS, &by)) {
        snprintf(err, errlen, "%s: document %u cannot be decoded by the model's tokenizer", t->path, i + 1);
        goto done;
      }
      if (!by.data && !(by.data = calloc(1, 1))) { snprintf(err, errlen, "out of memory"); goto done; }
      txt[i] = dec[i] = by.data;
      docs[i].ids = malloc(sizeof(int32_t) * it->nids);
      if (!docs[i].ids) { snprintf(err, errlen, "out of memory"); goto done; }
      memcpy(docs[i].ids, it->ids, sizeof(int32_t) * it->nids);
      docs[i].n = docs[i].cap = it->nids;
    } else if (em->eos >= 0) {
      docs[i].ids = malloc(sizeof(int32_t) * 16), docs[i].cap = docs[i].ids ? 16 : 0;
      if (!docs[i].ids) { snprintf(err, errlen, "out of memory"); goto done; }
      docs[i].ids[docs[i].n++] = em->eos;
    }
    if (!it->ids && *x && vklm_tokenizer_encode(em->tk, x, strlen(x), 0, &docs[i])) {
      snprintf(err, errlen, "%s:%u: the tokenizer cannot encode the text", t->path, t->items[i].line);
      goto done;
    }
    nw += vklm_eval_windows((uint32_t)docs[i].n, ctx, stride, NULL, NULL, NULL, 0);
    uint32_t need = docs[i].n > 1 ? (uint32_t)docs[i].n - 1 : 1;
    if ((need < ctx ? need : ctx) > T) T = need < ctx ? need : ctx;
  }
  rq = calloc(nw + 1, sizeof *rq);
  wb = calloc(nw + 1, 4), we = calloc(nw + 1, 4), ws = calloc(nw + 1, 4), wd = calloc(nw + 1, 4);
  if (!rq || !wb || !we || !ws || !wd) { snprintf(err, errlen, "out of memory"); goto done; }
  size_t k = 0;
  for (uint32_t i = 0; i < ni; i++) {
    uint32_t m = vklm_eval_windows((uint32_t)docs[i].n, ctx, stride, wb + k, we + k, ws + k, (uint32_t)(nw - k));
    for (uint32_t j = 0; j < m; j++, k++) {
      wd[k] = i;
      rq[k] = (vklm_eval_req){.tokens = docs[i].ids + wb[k], .n = we[k] - wb[k] + 1,
                              .n_cont = we[k] - ws[k]};
    }
  }
  if (score_all(em, o, rq, nw, T, 0, label, err, errlen)) goto done;
  vklm_ppl p = {0};
  double *per = calloc(ni + 1, sizeof(double));
  if (!per) { snprintf(err, errlen, "out of memory"); goto done; }
  for (size_t j = 0; j < nw; j++) p.ll += rq[j].ll, p.tokens += rq[j].n_cont, per[wd[j]] += rq[j].ll;
  for (uint32_t i = 0; i < ni; i++) {
    p.words += vklm_eval_count_words(txt[i]);
    p.bytes += strlen(txt[i]);
    per[i] = per[i] / (double)(strlen(txt[i]) ? strlen(txt[i]) : 1);
  }
  vklm_eval_ppl_finish(&p);
  /* the standard error of bits per byte: over documents (their per-byte means) */
  double mean, se;
  vklm_eval_mean_stderr(per, ni, &mean, &se);
  free(per);
  metric(out, "bits_per_byte", p.bits_per_byte, ni > 1 ? se / log(2.0) : -1, ni);
  metric(out, "token_perplexity", p.token_ppl, -1, p.tokens);
  metric(out, "word_perplexity", p.word_ppl, -1, p.words);
  metric(out, "byte_perplexity", p.byte_ppl, -1, p.bytes);
  metric(out, "loglikelihood", p.ll, -1, p.tokens);
  if (o->samples) {
    for (uint32_t i = 0, j = 0; i < ni; i++) {
      cJSON *js = cJSON_CreateObject(), *rs = cJSON_CreateArray();
      cJSON_AddStringToObject(js, "task", t->name);
      cJSON_AddStringToObject(js, "variant", out->variant);
      cJSON_AddNumberToObject(js, "line", t->items[i].line);
      cJSON_AddItemToObject(js, "doc_tokens", ints(docs[i].ids, (uint32_t)docs[i].n));
      cJSON_AddNumberToObject(js, "ctx", ctx);
      cJSON_AddNumberToObject(js, "stride", stride);
      for (; j < nw && wd[j] == i; j++) {
        cJSON *w = req_json(&rq[j]);
        cJSON_AddNumberToObject(w, "begin", wb[j]);
        cJSON_AddItemToArray(rs, w);
      }
      cJSON_AddItemToObject(js, "windows", rs);
      sample_line(o->samples, js);
    }
  }
  rc = 0;
done:
  for (uint32_t i = 0; i < ni; i++) vklm_token_ids_free(&docs[i]), free(dec ? dec[i] : NULL);
  free(dec), free(txt);
  free(docs), free(rq), free(wb), free(we), free(ws), free(wd);
  return rc;
}

int vklm_eval_run(const vklm_eval_model *em, const vklm_eval_task *t, const vklm_eval_options *o,
                  const char *variant, vklm_eval_result *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  snprintf(out->task, sizeof out->task, "%s", t->name);
  snprintf(out->variant, sizeof out->variant, "%s", variant ? variant : "clean");
  out->kind = t->kind;
  uint32_t ni = o->limit && o->limit < t->n ? o->limit : t->n;
  out->items = ni;
  char label[200];
  snprintf(label, sizeof label, "vklm eval: %s [%s]", t->name, out->variant);
  double t0 = vklm_eval_now();
  int r;
  err[0] = 0;
  if (t->kind == VKLM_TASK_GEN) r = vklm_eval_run_gen(em, t, o, out->variant, out, err, errlen);
  else if (t->kind == VKLM_TASK_PPL) r = run_ppl(em, t, ni, o, label, out, err, errlen);
  else r = run_choices(em, t, ni, o, label, out, err, errlen);
  out->seconds = vklm_eval_now() - t0;
  return r;
}

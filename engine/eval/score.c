/* eval scorer: log-likelihoods of many token sequences through ONE frozen model of (B,T) —
 * vklm_model_run with targets = inputs shifted by one and a mask over each request's scored
 * (continuation) tokens, right-padded rows batched B at a time (causal attention: padding never
 * changes a row's result). For the greedy check the batch's logits are read back (B is lowered
 * so that they fit one buffer) and the argmax compared with each scored target. Also the sliding
 * windows of perplexity and the progress lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eval/eval.h"
#include "eval/eval_internal.h"

double vklm_eval_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void vklm_eval_progress_start(vklm_eval_progress *p, const char *label, uint64_t total) {
  p->label = label, p->unit = NULL, p->total = total, p->t0 = p->last = vklm_eval_now();
}

void vklm_eval_progress_update(vklm_eval_progress *p, uint64_t done) {
  if (!p->label) return;
  double now = vklm_eval_now();
  if (done < p->total && now - p->last < 0.5) return;
  p->last = now;
  double dt = now - p->t0, rate = dt > 0 ? (double)done / dt : 0;
  double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
  fprintf(stderr, "%s%s: %llu/%llu %s, %.1f/s, ETA %.0f s%s", isatty(2) ? "\r" : "",
          p->label, (unsigned long long)done, (unsigned long long)p->total, p->unit ? p->unit : "items", rate, eta,
          done >= p->total || !isatty(2) ? "\n" : "");
  fflush(stderr);
}

struct vklm_eval_scorer {
  vklm_model *m; /* owned */
  uint32_t B, T, V, greedy;
  int32_t *in, *tg;
  float *mask, *seq, *logits;
};

void vklm_eval_scorer_destroy(vklm_eval_scorer *s) {
  if (!s) return;
  vklm_model_destroy(s->m);
  free(s->in), free(s->tg), free(s->mask), free(s->seq), free(s->logits);
  free(s);
}

int vklm_eval_scorer_create(const vklm_eval_model *em, uint32_t B, uint32_t T, int want_greedy,
                            vklm_eval_scorer **out, char *err, size_t errlen) {
  *out = NULL;
  uint32_t V = em->cfg->vocab_size;
  if (T == 0 || T > em->cfg->max_seq) T = em->cfg->max_seq;
  if (B == 0) B = 1;
  if (B > 4096) B = 4096; /* rows of one batch: vklm_eval_score's index */
  if (want_greedy) { /* one logits buffer for the whole batch (64 MiB) */
    uint64_t rows = (64ull << 20) / ((uint64_t)V * 4);
    uint64_t b = rows / T;
    if (b < B) B = b ? (uint32_t)b : 1;
  }
  vklm_eval_scorer *s = calloc(1, sizeof *s);
  if (!s) return snprintf(err, errlen, "out of memory"), -1;
  s->B = B, s->T = T, s->V = V, s->greedy = want_greedy != 0;
  size_t BT = (size_t)B * T;
  s->in = malloc(BT * sizeof(int32_t));
  s->tg = malloc(BT * sizeof(int32_t));
  s->mask = malloc(BT * sizeof(float));
  s->seq = malloc(B * sizeof(float));
  if (want_greedy) s->logits = malloc(BT * V * sizeof(float));
  if (!s->in || !s->tg || !s->mask || !s->seq || (want_greedy && !s->logits)) {
    vklm_eval_scorer_destroy(s);
    return snprintf(err, errlen, "out of memory"), -1;
  }
  vklm_model_options opt = {.frozen = 1, .logits_rows = want_greedy ? (uint32_t)BT : 0};
  if (vklm_model_create_from(em->ctx, em->cfg, B, T, VKLM_OBJ_CAUSAL, &opt, em->get, em->user,
                             &s->m, err, errlen) != VKLM_OK) {
    if (!err[0]) snprintf(err, errlen, "%s", vklm_model_error(NULL));
    vklm_eval_scorer_destroy(s);
    return -1;
  }
  *out = s;
  return 0;
}

int vklm_eval_score(vklm_eval_scorer *s, vklm_eval_req *reqs, size_t n, const char *label,
                    char *err, size_t errlen) {
  uint32_t B = s->B, T = s->T, V = s->V;
  size_t BT = (size_t)B * T;
  size_t idx[4096];
  vklm_eval_progress pr;
  vklm_eval_progress_start(&pr, label, n);
  pr.unit = "sequences";
  size_t i = 0;
  while (i < n) {
    for (size_t k = 0; k < BT; k++) s->in[k] = 0, s->tg[k] = VKLM_IGNORE_INDEX, s->mask[k] = 0;
    uint32_t rows = 0;
    for (; i < n && rows < B; i++) {
      vklm_eval_req *r = &reqs[i];
      r->ll = 0, r->greedy = s->greedy ? 1 : -1;
      if (r->n_cont == 0) continue; /* an empty continuation: log 1 = 0 */
      if (r->n < 2 || r->n_cont >= r->n) {
        snprintf(err, errlen, "request %zu: %u tokens with %u to score (a context token is needed)",
                 i, r->n, r->n_cont);
        return -1;
      }
      uint32_t start = r->n - 1 > T ? r->n - 1 - T : 0, len = r->n - 1 - start;
      uint32_t nc = r->n_cont < len ? r->n_cont : len;
      for (uint32_t t = 0; t < len; t++) {
        s->in[(size_t)rows * T + t] = r->tokens[start + t];
        s->tg[(size_t)rows * T + t] = r->tokens[start + t + 1];
        s->mask[(size_t)rows * T + t] = t >= len - nc;
      }
      idx[rows++] = i;
    }
    if (!rows) continue;
    vklm_model_io io = {.inputs = s->in, .targets = s->tg, .mask = s->mask, .seq_logp = s->seq};
    if (vklm_model_run(s->m, &io) != VKLM_OK ||
        (s->greedy && vklm_model_get_logits(s->m, s->logits) != VKLM_OK)) {
      snprintf(err, errlen, "%s", vklm_model_error(s->m));
      return -1;
    }
    for (uint32_t b = 0; b < rows; b++) {
      vklm_eval_req *r = &reqs[idx[b]];
      r->ll = s->seq[b];
      if (!s->greedy) continue;
      for (uint32_t t = 0; t < T; t++) {
        if (s->mask[(size_t)b * T + t] == 0) continue;
        const float *lg = s->logits + ((size_t)b * T + t) * V;
        uint32_t am = 0;
        for (uint32_t v = 1; v < V; v++)
          if (lg[v] > lg[am]) am = v;
        if ((int32_t)am != s->tg[(size_t)b * T + t]) r->greedy = 0;
      }
    }
    if (i < n) vklm_eval_progress_update(&pr, i);
  }
  if (n) vklm_eval_progress_update(&pr, n);
  return 0;
}

uint32_t vklm_eval_windows(uint32_t n, uint32_t ctx, uint32_t stride, uint32_t *b, uint32_t *e,
                           uint32_t *s, uint32_t cap) {
  if (n < 2 || ctx == 0) return 0;
  if (stride == 0 || stride > ctx) stride = ctx;
  uint32_t k = 0, prev = 0; /* x[1..prev] already scored */
  for (uint32_t beg = 0;; beg += stride) {
    uint32_t end = beg + ctx < n - 1 ? beg + ctx : n - 1; /* inputs x[beg, end), targets up to x[end] */
    if (end > prev) {
      if (k < cap) b[k] = beg, e[k] = end, s[k] = prev;
      k++;
      prev = end;
    }
    if (end == n - 1) break;
  }
  return k;
}

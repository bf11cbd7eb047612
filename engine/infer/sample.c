/* Host-side sampling chain (sample.h). */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct vklm_sampler {
  vklm_sampler_params p;
  uint32_t V;
  int32_t *hist; /* ring of the last repeat_last_n tokens */
  uint32_t nhist, head;
  uint64_t rng;
  struct cand {
    float l;
    uint32_t id;
  } *idx;          /* scratch: candidates (logit, id) */
  double *pr;      /* scratch: probabilities */
  uint8_t *seen;   /* scratch: V flags */
};

void vklm_sampler_params_default(vklm_sampler_params *p) {
  p->temp = 0.8f;
  p->top_k = 40;
  p->top_p = 0.95f;
  p->min_p = 0.05f;
  p->repeat_penalty = 1.0f;
  p->repeat_last_n = 64;
  p->seed = 0;
}

int vklm_sampler_is_greedy(const vklm_sampler_params *p) {
  return p->temp <= 0.0f && (p->repeat_penalty == 1.0f || p->repeat_last_n == 0);
}

vklm_sampler *vklm_sampler_create(const vklm_sampler_params *p, uint32_t V) {
  vklm_sampler *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->p = *p;
  s->V = V;
  s->rng = p->seed;
  s->hist = calloc(p->repeat_last_n ? p->repeat_last_n : 1, sizeof *s->hist);
  s->idx = calloc(V, sizeof *s->idx);
  s->pr = calloc(V, sizeof *s->pr);
  s->seen = calloc(V, 1);
  if (!s->hist || !s->idx || !s->pr || !s->seen) {
    vklm_sampler_destroy(s);
    return NULL;
  }
  return s;
}

void vklm_sampler_destroy(vklm_sampler *s) {
  if (!s) return;
  free(s->hist);
  free(s->idx);
  free(s->pr);
  free(s->seen);
  free(s);
}

void vklm_sampler_accept(vklm_sampler *s, int32_t token) {
  uint32_t N = s->p.repeat_last_n;
  if (!N) return;
  s->hist[s->head] = token;
  s->head = (s->head + 1) % N;
  if (s->nhist < N) s->nhist++;
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void penalize(vklm_sampler *s, float *logits) {
  float pen = s->p.repeat_penalty;
  if (pen == 1.0f || !s->nhist) return;
  for (uint32_t i = 0; i < s->nhist; i++) {
    int32_t t = s->hist[i];
    if (t < 0 || (uint32_t)t >= s->V || s->seen[t]) continue;
    s->seen[t] = 1;
    logits[t] = logits[t] > 0 ? logits[t] / pen : logits[t] * pen;
  }
  for (uint32_t i = 0; i < s->nhist; i++)
    if (s->hist[i] >= 0 && (uint32_t)s->hist[i] < s->V) s->seen[s->hist[i]] = 0;
}

/* descending logit, then ascending id: a total order, so the sort is deterministic */
static int by_logit(const void *a, const void *b) {
  const struct cand *x = a, *y = b;
  if (x->l != y->l) return x->l > y->l ? -1 : 1;
  return x->id < y->id ? -1 : 1;
}

static uint32_t argmax(const float *x, uint32_t V) {
  uint32_t b = 0;
  for (uint32_t j = 1; j < V; j++)
    if (x[j] > x[b]) b = j;
  return b;
}

/* The candidates after top-k/top-p/min-p, sorted by logit, with their tempered probabilities
 * in s->pr[0..n). Returns n. */
static uint32_t chain(vklm_sampler *s, float *logits) {
  uint32_t V = s->V, n = 0;
  penalize(s, logits);
  for (uint32_t j = 0; j < V; j++)
    if (!isnan(logits[j])) s->idx[n].l = logits[j], s->idx[n++].id = j;
  qsort(s->idx, n, sizeof *s->idx, by_logit);
  if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;
  if (n == 0) return 0;
  /* probabilities at temperature 1 over the candidates */
  double mx = s->idx[0].l, sum = 0;
  for (uint32_t i = 0; i < n; i++) sum += (s->pr[i] = exp((double)s->idx[i].l - mx));
  if (s->p.top_p < 1.0f) {
    double cum = 0;
    uint32_t k = n;
    for (uint32_t i = 0; i < n; i++) {
      cum += s->pr[i] / sum;
      if (cum >= s->p.top_p) {
        k = i + 1;
        break;
      }
    }
    n = k;
  }
  if (s->p.min_p > 0.0f) {
    double thr = s->p.min_p * s->pr[0]; /* pr[0] is the largest */
    uint32_t k = 1;
    while (k < n && s->pr[k] >= thr) k++;
    n = k;
  }
  double t = s->p.temp > 0 ? s->p.temp : 1.0;
  sum = 0;
  for (uint32_t i = 0; i < n; i++)
    sum += (s->pr[i] = exp(((double)s->idx[i].l - mx) / t));
  for (uint32_t i = 0; i < n; i++) s->pr[i] /= sum;
  return n;
}

int32_t vklm_sampler_sample(vklm_sampler *s, float *logits) {
  if (s->p.temp <= 0.0f) {
    penalize(s, logits);
    return (int32_t)argmax(logits, s->V);
  }
  uint32_t n = chain(s, logits);
  if (n == 0) return (int32_t)argmax(logits, s->V);
  double u = (double)(splitmix(&s->rng) >> 11) * (1.0 / 9007199254740992.0), cum = 0;
  for (uint32_t i = 0; i < n; i++) {
    cum += s->pr[i];
    if (u < cum) return (int32_t)s->idx[i].id;
  }
  return (int32_t)s->idx[n - 1].id;
}

void vklm_sampler_probs(vklm_sampler *s, float *logits, float *probs) {
  memset(probs, 0, sizeof(float) * s->V);
  if (s->p.temp <= 0.0f) {
    penalize(s, logits);
    probs[argmax(logits, s->V)] = 1.0f;
    return;
  }
  uint32_t n = chain(s, logits);
  for (uint32_t i = 0; i < n; i++) probs[s->idx[i].id] = (float)s->pr[i];
}

/* Host-side sampling chain and the GPU rows' parameters (sample.h). */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cand {
  float l;
  uint32_t id;
};

/* The chain's scratch for one row of V. */
typedef struct work {
  struct cand *idx; /* candidates (logit, id) */
  double *pr;       /* probabilities */
} work;

struct vklm_sampler {
  vklm_sampler_params p;
  uint32_t V;
  int32_t *hist; /* ring of the last repeat_last_n tokens */
  uint32_t nhist, head;
  uint64_t rng;
  work w;
  uint8_t *seen; /* scratch: V flags */
  int32_t *pen;  /* scratch: the distinct tokens of the history */
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
  uint32_t N = p->repeat_last_n ? p->repeat_last_n : 1;
  s->hist = calloc(N, sizeof *s->hist);
  s->pen = calloc(N, sizeof *s->pen);
  s->w.idx = calloc(V ? V : 1, sizeof *s->w.idx);
  s->w.pr = calloc(V ? V : 1, sizeof *s->w.pr);
  s->seen = calloc(V ? V : 1, 1);
  if (!s->hist || !s->pen || !s->w.idx || !s->w.pr || !s->seen) {
    vklm_sampler_destroy(s);
    return NULL;
  }
  return s;
}

void vklm_sampler_destroy(vklm_sampler *s) {
  if (!s) return;
  free(s->hist);
  free(s->pen);
  free(s->w.idx);
  free(s->w.pr);
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

double vklm_sampler_uniform(uint64_t w) { return (double)(w >> 11) * (1.0 / 9007199254740992.0); }

/* The distinct valid tokens of the history (into s->pen); their count. Empty when the penalty
 * is off. */
static uint32_t distinct(vklm_sampler *s) {
  uint32_t n = 0;
  if (s->p.repeat_penalty == 1.0f) return 0;
  for (uint32_t i = 0; i < s->nhist; i++) {
    int32_t t = s->hist[i];
    if (t < 0 || (uint32_t)t >= s->V || s->seen[t]) continue;
    s->seen[t] = 1;
    s->pen[n++] = t;
  }
  for (uint32_t i = 0; i < n; i++) s->seen[s->pen[i]] = 0;
  return n;
}

/* Penalises the distinct tokens pen[0..n). */
static void penalize(float *logits, const int32_t *pen, uint32_t n, float penalty) {
  if (penalty == 1.0f) return;
  for (uint32_t i = 0; i < n; i++) {
    float *l = &logits[pen[i]];
    *l = *l > 0 ? *l / penalty : *l * penalty;
  }
}

/* descending logit, then ascending id: a total order, so the sort is deterministic */
static int by_logit(const void *a, const void *b) {
  const struct cand *x = a, *y = b;
  if (x->l != y->l) return x->l > y->l ? -1 : 1;
  return x->id < y->id ? -1 : 1;
}

/* The lowest id of the largest non-NaN logit; 0 when every logit is NaN. */
static uint32_t argmax(const float *x, uint32_t V) {
  uint32_t b = 0;
  int have = 0;
  for (uint32_t j = 0; j < V; j++)
    if (!isnan(x[j]) && (!have || x[j] > x[b])) b = j, have = 1;
  return b;
}

/* The candidates of penalised logits after top-k/top-p/min-p, sorted by logit, with their
 * tempered probabilities in w->pr[0..n). Returns n. */
static uint32_t chain(const vklm_sampler_params *p, const float *logits, uint32_t V, work *w) {
  uint32_t n = 0;
  for (uint32_t j = 0; j < V; j++)
    if (!isnan(logits[j])) w->idx[n].l = logits[j], w->idx[n++].id = j;
  qsort(w->idx, n, sizeof *w->idx, by_logit);
  if (p->top_k > 0 && p->top_k < n) n = p->top_k;
  if (n == 0) return 0;
  double mx = w->idx[0].l, sum = 0;
  if (isinf(mx)) { /* the largest logit is infinite: only it remains */
    w->pr[0] = 1.0;
    return 1;
  }
  /* probabilities at temperature 1 over the candidates */
  for (uint32_t i = 0; i < n; i++) sum += (w->pr[i] = exp((double)w->idx[i].l - mx));
  if (p->top_p < 1.0f) {
    double cum = 0;
    uint32_t k = n;
    for (uint32_t i = 0; i < n; i++) {
      cum += w->pr[i] / sum;
      if (cum >= p->top_p) {
        k = i + 1;
        break;
      }
    }
    n = k;
  }
  if (p->min_p > 0.0f) {
    double thr = p->min_p * w->pr[0]; /* pr[0] is the largest */
    uint32_t k = 1;
    while (k < n && w->pr[k] >= thr) k++;
    n = k;
  }
  double t = p->temp > 0 ? p->temp : 1.0;
  sum = 0;
  for (uint32_t i = 0; i < n; i++)
    sum += (w->pr[i] = exp(((double)w->idx[i].l - mx) / t));
  for (uint32_t i = 0; i < n; i++) w->pr[i] /= sum;
  return n;
}

/* The draw over penalised logits with uniform u (temp > 0). */
static int32_t draw(const vklm_sampler_params *p, const float *logits, uint32_t V, work *w,
                    double u) {
  uint32_t n = chain(p, logits, V, w);
  if (n == 0) return (int32_t)argmax(logits, V);
  double cum = 0;
  for (uint32_t i = 0; i < n; i++) {
    cum += w->pr[i];
    if (u < cum) return (int32_t)w->idx[i].id;
  }
  return (int32_t)w->idx[n - 1].id;
}

int32_t vklm_sampler_sample_u(vklm_sampler *s, float *logits, double u) {
  penalize(logits, s->pen, distinct(s), s->p.repeat_penalty);
  if (s->p.temp <= 0.0f) return (int32_t)argmax(logits, s->V);
  return draw(&s->p, logits, s->V, &s->w, u);
}

int32_t vklm_sampler_sample(vklm_sampler *s, float *logits) {
  double u = s->p.temp > 0.0f ? vklm_sampler_uniform(splitmix(&s->rng)) : 0.0;
  return vklm_sampler_sample_u(s, logits, u);
}

void vklm_sampler_probs(vklm_sampler *s, float *logits, float *probs) {
  memset(probs, 0, sizeof(float) * s->V);
  penalize(logits, s->pen, distinct(s), s->p.repeat_penalty);
  if (s->p.temp <= 0.0f) {
    probs[argmax(logits, s->V)] = 1.0f;
    return;
  }
  uint32_t n = chain(&s->p, logits, s->V, &s->w);
  for (uint32_t i = 0; i < n; i++) probs[s->w.idx[i].id] = (float)s->w.pr[i];
}

/* ---- GPU rows ---- */

static void split2(double x, float out[2]) {
  out[0] = (float)x;
  out[1] = isfinite(out[0]) ? (float)(x - (double)out[0]) : 0.0f;
}

void vklm_sample_row_set(vklm_sample_row *row, const vklm_sampler_params *p, uint64_t w,
                         uint32_t n_pen) {
  memset(row, 0, sizeof *row);
  /* NaN parameters become the values the host chain treats them as (no shader compares NaN) */
  row->temp = isnan(p->temp) ? 1.0f : p->temp;
  row->top_k = p->top_k;
  row->top_p = isnan(p->top_p) ? 1.0f : p->top_p;
  row->min_p = isnan(p->min_p) ? 0.0f : p->min_p;
  row->penalty = p->repeat_penalty;
  row->n_pen = n_pen;
  row->u_hi = (uint32_t)(w >> 32);
  row->u_lo = (uint32_t)w;
  /* the host chain uses temperature 1 when temp is not > 0 (NaN) */
  split2(p->temp > 0.0f ? 1.0 / (double)p->temp : 1.0, row->inv_temp);
  split2(p->min_p > 0.0f ? log((double)p->min_p) : 0.0, row->ln_min_p);
  row->top_p_fx = p->top_p >= 0.0f && p->top_p < 1.0f
                      ? (uint32_t)((double)p->top_p * 4294967296.0)
                      : 0;
}

vklm_status vklm_sampler_fill_row(vklm_sampler *s, vklm_sample_row *row, int32_t *pen,
                                  uint32_t max_pen) {
  uint32_t n = distinct(s);
  if (n > max_pen) return VKLM_ERROR_INVALID;
  memcpy(pen, s->pen, sizeof(int32_t) * n);
  uint64_t w = s->p.temp > 0.0f ? splitmix(&s->rng) : 0;
  vklm_sample_row_set(row, &s->p, w, n);
  return VKLM_OK;
}

int32_t vklm_sample_row_host(const vklm_sample_row *row, const int32_t *pen, float *logits,
                             uint32_t V) {
  vklm_sampler_params p = {row->temp, row->top_k, row->top_p, row->min_p, row->penalty, 0, 0};
  penalize(logits, pen, row->n_pen, row->penalty);
  if (p.temp <= 0.0f) return (int32_t)argmax(logits, V);
  work w = {malloc(sizeof(struct cand) * (V ? V : 1)), malloc(sizeof(double) * (V ? V : 1))};
  VKLM_ASSERT(w.idx && w.pr, "sample_row_host: out of memory for V=%u", V);
  int32_t id = draw(&p, logits, V, &w, vklm_sampler_uniform((uint64_t)row->u_hi << 32 | row->u_lo));
  free(w.idx);
  free(w.pr);
  return id;
}

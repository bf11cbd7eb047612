/* Sampling tests (VKLM_TEST_GPU): the GPU sampler (engine/infer/sample_gpu.h) chooses the same
 * ids as the host chain (engine/infer/sample.c) on every row of every step:
 *   - batches of rows with mixed per-row parameters (llama.cpp's defaults, top_k 0 with
 *     top_p 0.9, min-p only, greedy with a penalty, plain sampling over the whole vocabulary,
 *     penalties below 1, top_k 1, min_p 1, top_p 0, tiny and large temperatures) at V = 7, 1000
 *     and 50257, several steps each with the chosen ids fed back into each row's penalty history;
 *   - crafted logits: a coarse grid (ties everywhere), bf16-rounded values, NaN and -inf
 *     sprinkled in, a row of NaN, a +inf, a row of -inf, a single number among NaN;
 *   - the penalised logits the GPU leaves in place equal the host's bit for bit (the penalty's
 *     division is correctly rounded on the GPU);
 *   - a twin vklm_sampler with the same seed that samples on the host (vklm_sampler_sample)
 *     gives the same ids: filling a GPU row advances the generator as sampling does;
 *   - seed determinism: the same seed gives the same ids, another seed different ones.
 * The command buffer of a batch is recorded once and replayed for every step.
 * `test_sample big` also measures the mismatch rate over 20k+ rows of V in {100, 1000, 8000,
 * 50257}; probes how close to a boundary (in u, or in top_p) the GPU and the host may disagree
 * (`test_sample probe` alone); and times one step of 16 rows at V = 50257 against downloading
 * the logits and sampling on the host (`test_sample bench` alone). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/sample.h"
#include "infer/sample_gpu.h"
#include "testutil.h"

static uint64_t mix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double unif(uint64_t *x) { return ((mix(x) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double normal(uint64_t *x) {
  return sqrt(-2.0 * log(unif(x))) * cos(6.283185307179586 * unif(x));
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
/* CPU time of the whole process (lavapipe's threads included): less noisy than the wall clock on
 * a shared machine. */
static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* ---- parameter sets ---- */
typedef struct pset {
  const char *name;
  float temp;
  uint32_t top_k;
  float top_p, min_p, pen;
  uint32_t last_n;
} pset;
static const pset SETS[] = {
    {"llama.cpp defaults", 0.8f, 40, 0.95f, 0.05f, 1.0f, 64},
    {"defaults + penalty 1.1", 0.8f, 40, 0.95f, 0.05f, 1.1f, 64},
    {"top_k 0, top_p 0.9", 1.0f, 0, 0.9f, 0.0f, 1.0f, 64},
    {"min_p 0.1 only, temp 0.7", 0.7f, 0, 1.0f, 0.1f, 1.0f, 64},
    {"greedy, penalty 1.3", 0.0f, 40, 0.95f, 0.05f, 1.3f, 32},
    {"plain, temp 1.3", 1.3f, 0, 1.0f, 0.0f, 1.0f, 64},
    {"top_k 5, top_p 0.5, temp 0.5, penalty 0.8", 0.5f, 5, 0.5f, 0.0f, 0.8f, 16},
    {"top_k 1", 0.9f, 1, 1.0f, 0.0f, 1.2f, 8},
    {"min_p 1", 1.0f, 0, 1.0f, 1.0f, 1.0f, 64},
    {"top_p 0", 1.0f, 0, 0.0f, 0.0f, 1.0f, 64},
    {"temp 2, top_k 200, top_p 0.99, min_p 0.01, penalty 1.5", 2.0f, 200, 0.99f, 0.01f, 1.5f, 64},
    {"temp 0.05, top_p 0.95", 0.05f, 0, 0.95f, 0.0f, 1.0f, 64},
    {"temp 1, top_p 0.999, min_p 0.001", 1.0f, 0, 0.999f, 0.001f, 1.05f, 128},
};
#define NSETS (sizeof SETS / sizeof *SETS)

static vklm_sampler_params params_of(const pset *s, uint64_t seed) {
  vklm_sampler_params p = {s->temp, s->top_k, s->top_p, s->min_p, s->pen, s->last_n, seed};
  return p;
}

/* ---- logits ---- */
enum { LG_NORMAL, LG_GRID, LG_BF16, LG_HOLES, LG_SPECIAL, LG_KINDS };

/* One row of V logits of the given kind; `variant` picks the special rows. */
static void make_logits(float *x, uint32_t V, int kind, uint64_t *g, uint32_t variant) {
  double sd = 2.0 + (mix(g) % 3); /* std 2, 3 or 4 */
  for (uint32_t j = 0; j < V; j++) x[j] = (float)(sd * normal(g));
  if (kind == LG_GRID)
    for (uint32_t j = 0; j < V; j++) x[j] = roundf(x[j] * 2.0f) * 0.5f;
  if (kind == LG_BF16)
    for (uint32_t j = 0; j < V; j++) {
      uint32_t b;
      memcpy(&b, &x[j], 4);
      b &= 0xffff0000u;
      memcpy(&x[j], &b, 4);
    }
  if (kind == LG_HOLES)
    for (uint32_t j = 0; j < V; j++) {
      uint64_t r = mix(g) % 100;
      if (r < 5) x[j] = NAN;
      else if (r < 8) x[j] = -INFINITY;
      else if (r < 9) x[j] = -0.0f;
    }
  if (kind == LG_SPECIAL) {
    uint32_t a = (uint32_t)(mix(g) % V);
    switch (variant % 5) {
    case 0: /* all NaN */
      for (uint32_t j = 0; j < V; j++) x[j] = NAN;
      break;
    case 1: /* one number among NaN */
      for (uint32_t j = 0; j < V; j++) x[j] = j == a ? -3.0f : NAN;
      break;
    case 2: /* a +inf (and another one above it when there is room) */
      x[a] = INFINITY;
      if (a + 1 < V) x[a + 1] = INFINITY;
      break;
    case 3: /* all -inf */
      for (uint32_t j = 0; j < V; j++) x[j] = -INFINITY;
      break;
    default: /* all equal: ties everywhere */
      for (uint32_t j = 0; j < V; j++) x[j] = 1.5f;
    }
  }
}

/* ---- a batch of rows on the GPU, its command recorded once ---- */
typedef struct batch {
  uint32_t n, V, max_pen;
  vklm_buffer ids, logits, rows, pen, scratch;
  float *lg, *lg_ref, *lg_twin, *lg_gpu;
  vklm_sample_row *row;
  int32_t *penl, *gid, *rid;
} batch;

static void batch_init(vt_env *env, batch *b, uint32_t n, uint32_t V, uint32_t max_pen) {
  memset(b, 0, sizeof *b);
  b->n = n, b->V = V, b->max_pen = max_pen;
  size_t nv = (size_t)n * V;
  b->ids = vt_alloc(env, n * 4);
  b->logits = vt_alloc(env, nv * 4);
  b->rows = vt_alloc(env, n * sizeof(vklm_sample_row));
  b->pen = vt_alloc(env, (size_t)n * max_pen * 4 + 4);
  b->scratch = vt_alloc(env, vklm_sample_rows_scratch_bytes(n, V));
  b->lg = malloc(nv * 4), b->lg_ref = malloc(nv * 4), b->lg_twin = malloc(V * 4);
  b->lg_gpu = malloc(nv * 4);
  b->row = calloc(n, sizeof *b->row);
  b->penl = calloc((size_t)n * max_pen + 1, 4);
  b->gid = malloc(n * 4), b->rid = malloc(n * 4);
  vt_begin(env);
  vt_ok(env, vklm_sample_rows(env->cmd, b->ids, b->logits, b->rows, b->pen, b->scratch, n, V,
                              max_pen), "sample_rows");
  vt_ok(env, vklm_cmd_end(env->cmd), "end");
}

static void batch_free(batch *b) {
  free(b->lg), free(b->lg_ref), free(b->lg_twin), free(b->lg_gpu);
  free(b->row), free(b->penl), free(b->gid), free(b->rid);
}

/* Uploads lg, rows and pen, replays the recorded command, downloads ids and logits. */
static double batch_run(vt_env *env, batch *b) {
  vklm_context *ctx = env->ctx;
  size_t nv = (size_t)b->n * b->V;
  vt_ok(env, vklm_buffer_upload(ctx, b->logits, 0, b->lg, nv * 4), "upload logits");
  vt_ok(env, vklm_buffer_upload(ctx, b->rows, 0, b->row, b->n * sizeof *b->row), "upload rows");
  vt_ok(env, vklm_buffer_upload(ctx, b->pen, 0, b->penl, ((size_t)b->n * b->max_pen + 1) * 4),
        "upload pen");
  double t0 = now_ms();
  vt_ok(env, vklm_cmd_run(env->cmd), "run");
  double t = now_ms() - t0;
  vt_ok(env, vklm_buffer_download(ctx, b->ids, 0, b->gid, b->n * 4), "download ids");
  vt_ok(env, vklm_buffer_download(ctx, b->logits, 0, b->lg_gpu, nv * 4), "download logits");
  return t;
}

static int same_bits(const float *a, const float *b, uint32_t V) {
  for (uint32_t j = 0; j < V; j++)
    if (!(isnan(a[j]) && isnan(b[j])) && memcmp(&a[j], &b[j], 4)) return 0;
  return 1;
}

/* Tallies per parameter set. */
typedef struct tally {
  long rows, mismatch, logits_diff, twin_diff;
} tally;

/* Runs `steps` steps over a batch: row r uses SETS[set_of(r)], its own seed, logits of `kind`.
 * Compares GPU ids and penalised logits with the host reference, and with a twin sampler. */
static void run_rows(vt_env *env, uint32_t n, uint32_t V, uint32_t steps, int kind, uint64_t seed,
                     int twin, tally *t, double *gpu_ms) {
  batch b;
  uint32_t max_pen = 128;
  batch_init(env, &b, n, V, max_pen);
  vklm_sampler **s = calloc(n, sizeof *s), **tw = calloc(n, sizeof *tw);
  uint32_t *set = calloc(n, 4);
  uint64_t g = seed;
  for (uint32_t r = 0; r < n; r++) {
    set[r] = (uint32_t)((r + seed) % NSETS);
    vklm_sampler_params p = params_of(&SETS[set[r]], seed * 1000 + r);
    s[r] = vklm_sampler_create(&p, V), tw[r] = vklm_sampler_create(&p, V);
    for (uint32_t i = 0; i < 24; i++) { /* a prompt */
      int32_t tok = (int32_t)(mix(&g) % (V < 64 ? V : 64)); /* repeats for the penalty */
      vklm_sampler_accept(s[r], tok), vklm_sampler_accept(tw[r], tok);
    }
  }
  for (uint32_t st = 0; st < steps; st++) {
    for (uint32_t r = 0; r < n; r++) {
      float *x = b.lg + (size_t)r * V;
      make_logits(x, V, kind, &g, st * n + r);
      vt_ok(env, vklm_sampler_fill_row(s[r], &b.row[r], b.penl + (size_t)r * max_pen, max_pen),
            "fill_row");
    }
    memcpy(b.lg_ref, b.lg, (size_t)n * V * 4);
    double ms = batch_run(env, &b);
    if (gpu_ms) *gpu_ms += ms;
    vklm_sample_rows_ref(b.rid, b.lg_ref, b.row, b.penl, n, V, max_pen);
    for (uint32_t r = 0; r < n; r++) {
      tally *tt = &t[set[r]];
      tt->rows++;
      const float *x = b.lg_ref + (size_t)r * V;
      if (b.gid[r] != b.rid[r]) {
        if (tt->mismatch++ < 3)
          printf("  mismatch: V=%u kind %d step %u row %u (%s): gpu %d host %d\n", V, kind, st, r,
                 SETS[set[r]].name, b.gid[r], b.rid[r]);
      }
      if (!same_bits(b.lg_gpu + (size_t)r * V, x, V) && tt->logits_diff++ < 3)
        printf("  penalised logits differ: V=%u step %u row %u (%s)\n", V, st, r,
               SETS[set[r]].name);
      if (twin) {
        memcpy(b.lg_twin, b.lg + (size_t)r * V, V * 4);
        int32_t id = vklm_sampler_sample(tw[r], b.lg_twin);
        if (id != b.rid[r] && tt->twin_diff++ < 3)
          printf("  twin sampler: V=%u step %u row %u: %d, reference %d\n", V, st, r, id,
                 b.rid[r]);
      }
      vklm_sampler_accept(s[r], b.gid[r]), vklm_sampler_accept(tw[r], b.gid[r]);
    }
  }
  for (uint32_t r = 0; r < n; r++) vklm_sampler_destroy(s[r]), vklm_sampler_destroy(tw[r]);
  free(s), free(tw), free(set);
  batch_free(&b);
}

static void report(vt_env *env, const char *what, const tally *t, int strict) {
  long rows = 0, mm = 0, ld = 0, td = 0;
  for (size_t i = 0; i < NSETS; i++) {
    rows += t[i].rows, mm += t[i].mismatch, ld += t[i].logits_diff, td += t[i].twin_diff;
    if (!strict && t[i].rows)
      printf("    %-58s rows %6ld  mismatches %ld\n", SETS[i].name, t[i].rows, t[i].mismatch);
  }
  char msg[256];
  snprintf(msg, sizeof msg,
           "%s: %ld rows, %ld id mismatches (rate %.2e), %ld rows with penalised logits "
           "differing, %ld twin-sampler differences", what, rows, mm, rows ? (double)mm / rows : 0,
           ld, td);
  if (strict) vt_expect(env, mm == 0 && ld == 0 && td == 0, "%s", msg);
  else printf("  %s\n", msg);
}

static void test_matches_host(vt_env *env) {
  static const char *kinds[LG_KINDS] = {"normal", "grid (ties)", "bf16", "NaN/-inf/-0 holes",
                                        "special rows"};
  struct {
    uint32_t n, V, steps;
  } cases[] = {{6, 1, 3}, {40, 7, 20}, {52, 1000, 6}, {16, 50257, 3}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    for (int k = 0; k < LG_KINDS; k++) {
      if (cases[c].V > 1000 && k == LG_SPECIAL) continue; /* the small sizes cover them */
      tally t[NSETS];
      memset(t, 0, sizeof t);
      uint32_t steps = cases[c].V > 1000 && k != LG_NORMAL ? 1 : cases[c].steps;
      run_rows(env, cases[c].n, cases[c].V, steps, k, 17 + c * 10 + k, 1, t, NULL);
      char what[128];
      snprintf(what, sizeof what, "GPU == host, V=%u, %u rows x %u steps, %s logits",
               cases[c].V, cases[c].n, steps, kinds[k]);
      report(env, what, t, 1);
    }
}

/* The same seed gives the same ids on the GPU; another seed gives different ones. */
static void test_seeds(vt_env *env) {
  uint32_t n = 8, V = 500, steps = 12;
  int32_t ids[3][12 * 8];
  uint64_t seeds[3] = {42, 42, 43};
  for (int k = 0; k < 3; k++) {
    batch b;
    batch_init(env, &b, n, V, 4);
    vklm_sampler_params p = {1.0f, 0, 1.0f, 0.0f, 1.0f, 64, 0};
    vklm_sampler *s[8];
    uint64_t g = 7; /* the same logits every time */
    for (uint32_t r = 0; r < n; r++) p.seed = seeds[k] + 1000 * r, s[r] = vklm_sampler_create(&p, V);
    for (uint32_t st = 0; st < steps; st++) {
      for (uint32_t r = 0; r < n; r++) {
        make_logits(b.lg + (size_t)r * V, V, LG_NORMAL, &g, 0);
        for (uint32_t j = 0; j < V; j++) b.lg[(size_t)r * V + j] *= 0.25f; /* flat */
        vt_ok(env, vklm_sampler_fill_row(s[r], &b.row[r], b.penl + r * 4, 4), "fill_row");
      }
      batch_run(env, &b);
      memcpy(ids[k] + st * n, b.gid, n * 4);
    }
    for (uint32_t r = 0; r < n; r++) vklm_sampler_destroy(s[r]);
    batch_free(&b);
  }
  int same = 0, diff = 0;
  for (uint32_t i = 0; i < n * steps; i++) same += ids[0][i] == ids[1][i], diff += ids[0][i] != ids[2][i];
  vt_expect(env, same == (int)(n * steps) && diff > (int)(n * steps) / 2,
            "seed determinism: seed 42 twice: %d of %u ids equal; seed 43: %d of %u differ", same,
            n * steps, diff, n * steps);
}

/* Host-side bookkeeping: a sampler and a GPU row agree on the draw's word and penalty list. */
static void test_fill_row(vt_env *env) {
  vklm_sampler_params p;
  vklm_sampler_params_default(&p);
  p.repeat_penalty = 1.2f, p.repeat_last_n = 4, p.seed = 5;
  vklm_sampler *s = vklm_sampler_create(&p, 10);
  int32_t hist[] = {3, 3, 9, 12, -1, 3, 7}; /* last 4: 12 -1 3 7; 12 and -1 are out of range */
  for (size_t i = 0; i < sizeof hist / sizeof *hist; i++) vklm_sampler_accept(s, hist[i]);
  vklm_sample_row row;
  int32_t pen[4] = {0};
  vklm_status small = vklm_sampler_fill_row(s, &row, pen, 1);
  vklm_status st = vklm_sampler_fill_row(s, &row, pen, 4);
  int ok = small == VKLM_ERROR_INVALID && st == VKLM_OK && row.n_pen == 2 &&
           ((pen[0] == 3 && pen[1] == 7) || (pen[0] == 7 && pen[1] == 3));
  vt_expect(env, ok, "fill_row: penalty list {3,7} from history (n_pen %u: %d %d), too small a "
            "list refused (%s)", row.n_pen, pen[0], pen[1], vklm_status_name(small));
  vklm_sampler_destroy(s);
}

/* ---- big: the mismatch rate over many rows, and timing ---- */
static void big(vt_env *env) {
  struct {
    uint32_t n, V, steps;
  } cases[] = {{256, 100, 32}, {256, 1000, 32}, {128, 8000, 32}, {64, 50257, 32}};
  tally all[NSETS];
  memset(all, 0, sizeof all);
  for (size_t c = 0; c < 4; c++) {
    tally t[NSETS];
    memset(t, 0, sizeof t);
    double ms = 0, t0 = now_ms();
    run_rows(env, cases[c].n, cases[c].V, cases[c].steps, LG_NORMAL, 1000 + c, 0, t, &ms);
    char what[128];
    snprintf(what, sizeof what, "big: V=%u, %u rows x %u steps, normal logits (std 2-4)",
             cases[c].V, cases[c].n, cases[c].steps);
    report(env, what, t, 0);
    printf("    (GPU %.1f ms, everything %.1f s)\n", ms, (now_ms() - t0) / 1e3);
    for (size_t i = 0; i < NSETS; i++)
      all[i].rows += t[i].rows, all[i].mismatch += t[i].mismatch,
          all[i].logits_diff += t[i].logits_diff;
  }
  report(env, "big: all sizes", all, 0);
}


/* ---- big: how close to a boundary the GPU and the host may disagree ---- */

/* The host's id for row (u_hi, top_p as given) over a fresh copy of x. */
static int32_t host_at(const vklm_sample_row *row, const float *x, float *tmp, uint32_t V) {
  memcpy(tmp, x, V * 4);
  return vklm_sample_row_host(row, NULL, tmp, V);
}

/* Offsets (in units of 2^-32 of u, or ulps of top_p) at which the probes sit on each side. */
static const uint32_t OFFS[] = {0, 1, 4, 16, 64, 430, 4295};
#define NOFFS (sizeof OFFS / sizeof *OFFS)

/* For each of n rows of normal logits with parameters ps: find a point where the host's id
 * changes — in u after a random u (what = 0), or in top_p near ps->top_p with u at its top
 * (what = 1, the last candidate of the top-p set) — then run the GPU on both sides of it at each
 * offset and count disagreements. */
static void probe(vt_env *env, uint32_t n, uint32_t V, const pset *ps, int what) {
  batch b;
  batch_init(env, &b, n, V, 1);
  float *tmp = malloc(V * 4);
  uint64_t g = 4242 + V + what;
  uint32_t *lo = calloc(n, 4), *hi = calloc(n, 4);
  vklm_sampler_params p = params_of(ps, 0);
  uint32_t found = 0;
  for (uint32_t r = 0; r < n; r++) {
    float *x = b.lg + (size_t)r * V;
    make_logits(x, V, LG_NORMAL, &g, 0);
    vklm_sample_row row;
    if (what == 0) { /* gallop from a random u to the next change, then bisect */
      uint32_t u0 = (uint32_t)mix(&g), step = 1;
      vklm_sample_row_set(&row, &p, (uint64_t)u0 << 32, 0);
      int32_t id0 = host_at(&row, x, tmp, V);
      uint64_t l = u0, h = u0;
      for (;;) {
        h = l + step;
        if (h > 0xffffffffull) h = 0xffffffffull;
        vklm_sample_row_set(&row, &p, h << 32, 0);
        if (host_at(&row, x, tmp, V) != id0 || h == 0xffffffffull) break;
        l = h, step *= 2;
      }
      if (host_at(&row, x, tmp, V) == id0) continue;
      while (h - l > 1) {
        uint64_t mid = (l + h) / 2;
        vklm_sample_row_set(&row, &p, mid << 32, 0);
        if (host_at(&row, x, tmp, V) == id0) l = mid;
        else h = mid;
      }
      lo[r] = (uint32_t)l, hi[r] = (uint32_t)h;
    } else { /* bisect over top_p's bits in [top_p / 2, top_p] with u at its top */
      uint32_t l, h;
      float f = ps->top_p * 0.5f;
      memcpy(&l, &f, 4), memcpy(&h, &ps->top_p, 4);
      vklm_sampler_params q = p;
      q.top_p = f;
      vklm_sample_row_set(&row, &q, 0xffffffff00000000ull, 0);
      int32_t id0 = host_at(&row, x, tmp, V);
      memcpy(&q.top_p, &h, 4);
      vklm_sample_row_set(&row, &q, 0xffffffff00000000ull, 0);
      if (host_at(&row, x, tmp, V) == id0) continue;
      while (h - l > 1) {
        uint32_t mid = l + (h - l) / 2;
        memcpy(&q.top_p, &mid, 4);
        vklm_sample_row_set(&row, &q, 0xffffffff00000000ull, 0);
        if (host_at(&row, x, tmp, V) == id0) l = mid;
        else h = mid;
      }
      lo[r] = l, hi[r] = h;
    }
    found++;
  }
  long mism[NOFFS] = {0}, probes[NOFFS] = {0};
  for (size_t o = 0; o < NOFFS; o++)
    for (int side = 0; side < 2; side++) {
      for (uint32_t r = 0; r < n; r++) {
        uint32_t at = hi[r] == lo[r] ? lo[r] : side ? hi[r] + OFFS[o] : lo[r] - OFFS[o];
        vklm_sampler_params q = p;
        if (what == 0) vklm_sample_row_set(&b.row[r], &p, (uint64_t)at << 32, 0);
        else memcpy(&q.top_p, &at, 4), vklm_sample_row_set(&b.row[r], &q, 0xffffffff00000000ull, 0);
      }
      memcpy(b.lg_ref, b.lg, (size_t)n * V * 4);
      batch_run(env, &b);
      vklm_sample_rows_ref(b.rid, b.lg_ref, b.row, b.penl, n, V, 1);
      for (uint32_t r = 0; r < n; r++)
        if (hi[r] != lo[r]) probes[o]++, mism[o] += b.gid[r] != b.rid[r];
    }
  printf("  boundary probe (%s), V=%u, %u of %u rows with a %s boundary; GPU != host at "
         "distance:\n   ", ps->name, V, found, n, what ? "top_p" : "draw");
  for (size_t o = 0; o < NOFFS; o++)
    printf(" %u%s %ld/%ld;", OFFS[o], what ? " ulp" : "", mism[o], probes[o]);
  printf("%s\n", what ? "" : "  (units of 2^-32 in u: 430 = 1e-7, 4295 = 1e-6)");
  free(tmp), free(lo), free(hi);
  batch_free(&b);
}

static void bench(vt_env *env, const pset *ps) {
  uint32_t n = 16, V = 50257, iters = 10;
  batch b;
  batch_init(env, &b, n, V, 128);
  vklm_sampler *s[16];
  uint64_t g = 99;
  for (uint32_t r = 0; r < n; r++) {
    vklm_sampler_params p = params_of(ps, r);
    s[r] = vklm_sampler_create(&p, V);
    make_logits(b.lg + (size_t)r * V, V, LG_NORMAL, &g, 0);
    vt_ok(env, vklm_sampler_fill_row(s[r], &b.row[r], b.penl + r * 128, 128), "fill_row");
  }
  batch_run(env, &b); /* warm-up: pipeline built */
  double gpu = 1e30, host = 1e30, gcpu = 1e30, hcpu = 1e30;
  for (uint32_t it = 0; it < iters; it++) {
    double t0 = now_ms(), c0 = cpu_ms();
    vt_ok(env, vklm_cmd_run(env->cmd), "run");
    vt_ok(env, vklm_buffer_download(env->ctx, b.ids, 0, b.gid, n * 4), "ids");
    double t1 = now_ms(), c1 = cpu_ms();
    vt_ok(env, vklm_buffer_download(env->ctx, b.logits, 0, b.lg_gpu, (size_t)n * V * 4), "lg");
    for (uint32_t r = 0; r < n; r++) vklm_sampler_sample(s[r], b.lg_gpu + (size_t)r * V);
    double t2 = now_ms(), c2 = cpu_ms();
    if (t1 - t0 < gpu) gpu = t1 - t0;
    if (t2 - t1 < host) host = t2 - t1;
    if (c1 - c0 < gcpu) gcpu = c1 - c0;
    if (c2 - c1 < hcpu) hcpu = c2 - c1;
  }
  printf("  bench %-44s n=%u V=%u: GPU %6.2f ms/step (%6.2f ms CPU); download + host chain "
         "%6.2f ms/step (%6.2f ms CPU); best of %u on %s\n", ps->name, n, V, gpu, gcpu, host,
         hcpu, iters, vklm_context_caps(env->ctx)->name);
  for (uint32_t r = 0; r < n; r++) vklm_sampler_destroy(s[r]);
  batch_free(&b);
}

static void probes(vt_env *env) {
  static const pset plain = {"plain, temp 1", 1.0f, 0, 1.0f, 0.0f, 1.0f, 0};
  static const pset topp = {"top_k 0, top_p 0.9, temp 0.7", 0.7f, 0, 0.9f, 0.0f, 1.0f, 0};
  probe(env, 256, 1000, &plain, 0);
  probe(env, 32, 50257, &plain, 0);
  probe(env, 256, 1000, &SETS[0], 0);
  probe(env, 256, 1000, &topp, 1);
  probe(env, 32, 50257, &topp, 1);
}

static void benches(vt_env *env) {
  bench(env, &SETS[0]);
  bench(env, &SETS[2]);
  bench(env, &SETS[5]);
  bench(env, &SETS[4]);
}

/* No argument: the CTest checks. "big": the mismatch rate over 20k+ rows, the boundary probes
 * and the benchmark; "probe" or "bench": one of those alone. */
int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  vt_env env;
  vt_init(&env, "test_sample");
  if (!strcmp(mode, "big") || !strcmp(mode, "probe") || !strcmp(mode, "bench")) {
    if (!strcmp(mode, "big")) big(&env);
    if (strcmp(mode, "bench")) probes(&env);
    if (strcmp(mode, "probe")) benches(&env);
    return vt_finish(&env);
  }
  test_fill_row(&env);
  test_matches_host(&env);
  test_seeds(&env);
  return vt_finish(&env);
}

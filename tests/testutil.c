/* Test helpers (see testutil.h). */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/elementwise.h"

static const char *test_name = "test";

void vt_ok(vt_env *env, vklm_status st, const char *what) {
  if (st == VKLM_OK) return;
  fprintf(stderr, "%s: %s failed: %s: %s\n", test_name, what, vklm_status_name(st),
          env->ctx ? vklm_context_error(env->ctx) : "");
  exit(1);
}

void vt_init(vt_env *env, const char *name) {
  memset(env, 0, sizeof *env);
  test_name = name;
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  if (!cfg.validate) cfg.validate = 1; /* VKLM_VALIDATE=sync keeps synchronization validation */
  char err[1024];
  vklm_status st = vklm_context_create(&cfg, &env->ctx, err, sizeof err);
  if (st != VKLM_OK) {
    fprintf(stderr, "%s: no Vulkan context: %s\n", name, err);
    exit(1);
  }
  const vklm_caps *c = vklm_context_caps(env->ctx);
  printf("%s: device %s (%s), subgroup %u, shared %u B, invocations %u%s, validation %s\n", name,
         c->name, c->driver_name, c->subgroup_size, c->max_shared_memory,
         c->max_workgroup_invocations, c->baseline ? ", BASELINE limits" : "",
         vklm_context_validation_enabled(env->ctx) == VKLM_VALIDATE_SYNC ? "on (sync)" : "on");
  vt_ok(env, vklm_arena_create(env->ctx, 0, &env->arena), "arena");
  vt_ok(env, vklm_cmd_create(env->ctx, &env->cmd), "cmd");
}

int vt_env_coopmat(vt_env *env, int coopmat, vt_env *e) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  if (!cfg.validate) cfg.validate = 1;
  cfg.coopmat = coopmat;
  *e = *env;
  e->checks = e->failures = 0;
  char err[512];
  vklm_status st = vklm_context_create(&cfg, &e->ctx, err, sizeof err);
  vt_expect(env, st == VKLM_OK, "a context with cooperative matrices in mode %d: %s", coopmat,
            st == VKLM_OK ? "ok" : err);
  if (st != VKLM_OK) return 0;
  vt_ok(e, vklm_arena_create(e->ctx, 0, &e->arena), "arena");
  vt_ok(e, vklm_cmd_create(e->ctx, &e->cmd), "cmd");
  return 1;
}

void vt_env_end(vt_env *env, vt_env *e) {
  vklm_cmd_destroy(e->cmd);
  vklm_arena_destroy(e->arena);
  vklm_context_destroy(e->ctx);
  env->checks += e->checks;
  env->failures += e->failures;
}

int vt_finish(vt_env *env) {
  vklm_cmd_destroy(env->cmd);
  vklm_arena_destroy(env->arena);
  vklm_context_destroy(env->ctx);
  /* every message of the process: any context the test made, and those raised at teardown */
  uint32_t vmsgs = vklm_validation_messages();
  if (vmsgs) {
    printf("%s: FAIL: %u validation message(s)\n", test_name, vmsgs);
    env->failures++;
  }
  printf("%s: %d checks, %d failed, %u validation messages\n", test_name, env->checks,
         env->failures, vmsgs);
  return env->failures ? 1 : 0;
}

void vt_expect(vt_env *env, int ok, const char *fmt, ...) {
  env->checks++;
  va_list ap;
  va_start(ap, fmt);
  printf("  %s ", ok ? "ok  " : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (!ok) env->failures++;
}

static uint64_t rng_next(uint64_t *s) {
  /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float *vt_randf(size_t n, uint64_t seed, float lo, float hi) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  uint64_t s = seed * 7919 + 17;
  for (size_t i = 0; i < n; i++)
    x[i] = lo + (hi - lo) * (float)((double)(rng_next(&s) >> 11) / 9007199254740992.0);
  return x;
}

int *vt_randi(size_t n, uint64_t seed, int lo, int hi) {
  int *x = malloc((n ? n : 1) * sizeof *x);
  uint64_t s = seed * 104729 + 3;
  for (size_t i = 0; i < n; i++) x[i] = lo + (int)(rng_next(&s) % (uint64_t)(hi - lo));
  return x;
}

float *vt_zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

float *vt_copy(const float *x, size_t n) {
  float *y = malloc((n ? n : 1) * sizeof *y);
  memcpy(y, x, n * sizeof *y);
  return y;
}

vklm_buffer vt_alloc(vt_env *env, size_t bytes) {
  vklm_buffer b;
  vt_ok(env, vklm_arena_alloc(env->arena, bytes ? bytes : 4, &b), "alloc");
  return b;
}

vklm_buffer vt_upload(vt_env *env, const void *data, size_t bytes) {
  vklm_buffer b = vt_alloc(env, bytes);
  vt_ok(env, vklm_buffer_upload(env->ctx, b, 0, data, bytes), "upload");
  return b;
}

float *vt_download(vt_env *env, vklm_buffer b, size_t n) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  vt_ok(env, vklm_buffer_download(env->ctx, b, 0, x, n * sizeof *x), "download");
  return x;
}

void vt_begin(vt_env *env) { vt_ok(env, vklm_cmd_begin(env->cmd), "begin"); }

void vt_run(vt_env *env) {
  vt_ok(env, vklm_cmd_end(env->cmd), "end");
  vt_ok(env, vklm_cmd_run(env->cmd), "run");
}

double vt_compare(vt_env *env, const char *what, const float *got, const float *want, size_t n,
                  double tol) {
  double maxw = 0, worst = 0, maxabs = 0;
  size_t at = 0;
  int nonfinite = 0;
  for (size_t i = 0; i < n; i++) maxw = fmax(maxw, fabs(want[i]));
  double floor = 1e-3 * maxw + 1e-20;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(got[i]) && isfinite(want[i])) nonfinite = 1;
    double d = fabs((double)got[i] - (double)want[i]);
    double r = d / (fabs(want[i]) + floor);
    if (r > worst || isnan(r)) { worst = isnan(r) ? INFINITY : r; at = i; }
    maxabs = fmax(maxabs, d);
  }
  int ok = worst <= tol && !nonfinite;
  vt_expect(env, ok, "%-40s n=%-8zu worst rel err %.3e (tol %.0e) max abs %.3e%s", what, n, worst,
            tol, maxabs, ok ? "" : "");
  if (!ok && n) printf("       at %zu: got %.8g want %.8g\n", at, got[at], want[at]);
  return worst;
}

vklm_buffer vt_alloc16(vt_env *env, size_t n) {
  size_t words = (n + 1) / 2 ? (n + 1) / 2 : 1;
  uint32_t *w = malloc(words * 4);
  for (size_t i = 0; i < words; i++) w[i] = VT_SENTINEL16;
  vklm_buffer b = vt_upload(env, w, words * 4);
  free(w);
  return b;
}

static float half_value(uint16_t h, int fmt) {
  return fmt == 2 ? vklm_bf16_to_f32_ref(h) : vklm_f16_to_f32_ref(h);
}

double vt_compare16(vt_env *env, const char *what, vklm_buffer buf, int fmt, const float *want,
                    size_t n) {
  size_t words = (n + 1) / 2 ? (n + 1) / 2 : 1, exact = 0, at = 0;
  uint32_t *w = (uint32_t *)vt_download(env, buf, words);
  double worst = 0, maxw = 0;
  for (size_t i = 0; i < n; i++) maxw = fmax(maxw, fabs(want[i]));
  /* the unit in the last place of 1e-3 * max|want|: the floor below which an element's error is
   * measured (an fp32 kernel's relative error grows near zero, as vt_compare allows) */
  double floor = 1e-3 * maxw * (fmt == 2 ? 1.0 / 128 : 1.0 / 1024);
  for (size_t i = 0; i < n; i++) {
    uint16_t g = (uint16_t)(w[i / 2] >> (16 * (i & 1)));
    uint16_t r = fmt == 2 ? vklm_f32_to_bf16_ref(want[i]) : vklm_f32_to_f16_ref(want[i]);
    double gv = half_value(g, fmt), rv = half_value(r, fmt);
    double ulp = fmax(fabs((double)half_value((uint16_t)(r + 1), fmt) - rv), floor);
    double e = g == r ? 0 : fabs(gv - rv) / ulp;
    if (fmt == 1 && fabs(rv) < 6.104e-5 && fabs(gv - rv) <= 6.104e-5 && e > 1) e = 1;
    if (!(e <= worst)) { worst = isnan(e) ? INFINITY : e; at = i; }
    exact += g == r;
  }
  int tail = n % 2 == 0 || (w[n / 2] >> 16) == (VT_SENTINEL16 >> 16);
  int ok = worst <= 1.0 && tail;
  vt_expect(env, ok, "%-40s n=%-8zu %s: worst %.2g ulp (tol 1), %.2f%% exact%s", what, n,
            fmt == 2 ? "bf16" : "f16", worst, n ? 100.0 * exact / n : 100.0,
            tail ? "" : ", the last word's high half overwritten");
  if (!ok && n) {
    uint16_t g = (uint16_t)(w[at / 2] >> (16 * (at & 1)));
    printf("       at %zu: got %.8g want %.8g\n", at, half_value(g, fmt), want[at]);
  }
  free(w);
  return worst;
}

double vt_fd_check(vt_env *env, const char *what, vt_loss_fn loss, void *state, float *x, size_t n,
                   const float *grad, size_t max_coords, double eps, double tol) {
  size_t step = n > max_coords ? n / max_coords : 1;
  double num2 = 0, den2 = 0;
  size_t k = 0;
  for (size_t i = 0; i < n; i += step, k++) {
    float orig = x[i];
    x[i] = (float)(orig + eps);
    double lp = loss(state);
    x[i] = (float)(orig - eps);
    double lm = loss(state);
    x[i] = orig;
    double h = ((double)(float)(orig + eps) - (double)(float)(orig - eps));
    double g = (lp - lm) / h;
    num2 += (g - grad[i]) * (g - grad[i]);
    den2 += (double)grad[i] * grad[i];
  }
  double rel = sqrt(num2) / (sqrt(den2) + 1e-12);
  int ok = rel <= tol;
  vt_expect(env, ok, "%-40s fd at %-6zu coords: rel err %.3e (tol %.0e)", what, k, rel, tol);
  return rel;
}

/* ---- reference states ------------------------------------------------------------------- */
static int rd(FILE *f, void *p, size_t bytes) { return fread(p, 1, bytes, f) == bytes; }

static void *rd_alloc(FILE *f, size_t bytes, int *ok) {
  void *p = *ok ? malloc(bytes ? bytes : 1) : NULL;
  if (!p || !rd(f, p, bytes)) *ok = 0;
  return p;
}

int vt_state_load(const char *path, vt_state *s) {
  memset(s, 0, sizeof *s);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return 0;
  }
  char magic[8];
  uint32_t version = 0, u[14];
  float fl[8];
  int ok = rd(f, magic, 8) && memcmp(magic, "VKLMSTAT", 8) == 0 && rd(f, &version, 4) &&
           version == 1 && rd(f, u, sizeof u) && rd(f, fl, sizeof fl) && rd(f, &s->nparams, 8);
  /* sizes a test file can have: guards the allocations below */
  ok = ok && u[13] <= 4096 && s->nparams <= (1ull << 31) && (uint64_t)u[10] * u[11] <= (1u << 24) &&
       (uint64_t)u[10] * u[11] * u[2] <= (1ull << 31) && u[12] <= 100000;
  if (!ok) {
    fprintf(stderr, "%s: not a version-1 VKLMSTAT file\n", path);
    fclose(f);
    return 0;
  }
  s->arch = u[0], s->obj = u[1], s->V = u[2], s->maxT = u[3], s->L = u[4], s->NH = u[5];
  s->NKV = u[6], s->C = u[7], s->F = u[8], s->tie = u[9], s->B = u[10], s->T = u[11];
  s->nsteps = u[12], s->ntensors = u[13];
  s->norm_eps = fl[0], s->rope_theta = fl[1], s->lr = fl[2], s->beta1 = fl[3];
  s->beta2 = fl[4], s->eps = fl[5], s->wd = fl[6], s->clip = fl[7];
  s->dir = calloc(s->ntensors ? s->ntensors : 1, sizeof *s->dir);
  ok = s->dir != NULL;
  for (uint32_t i = 0; i < s->ntensors && ok; i++) {
    vt_state_tensor *t = &s->dir[i];
    uint32_t w[4];
    uint64_t q[2];
    ok = rd(f, t->name, 64) && rd(f, w, sizeof w) && rd(f, q, sizeof q);
    t->name[63] = 0;
    t->ndim = w[0], t->shape[0] = w[1], t->shape[1] = w[2], t->decay = w[3];
    t->offset = q[0], t->count = q[1];
  }
  size_t BT = (size_t)s->B * s->T;
  s->inputs = rd_alloc(f, BT * 4, &ok);
  s->targets = rd_alloc(f, BT * 4, &ok);
  s->params = rd_alloc(f, s->nparams * 4, &ok);
  s->logits = rd_alloc(f, BT * s->V * 4, &ok);
  ok = ok && rd(f, &s->loss, 4);
  s->grads = rd_alloc(f, s->nparams * 4, &ok);
  s->step_losses = rd_alloc(f, s->nsteps * 4, &ok);
  s->step_norms = rd_alloc(f, s->nsteps * 4, &ok);
  char extra;
  if (ok && fread(&extra, 1, 1, f) == 1) ok = 0;
  fclose(f);
  if (!ok) fprintf(stderr, "%s: truncated or has trailing bytes\n", path);
  return ok;
}

void vt_state_free(vt_state *s) {
  free(s->dir);
  free(s->inputs);
  free(s->targets);
  free(s->params);
  free(s->logits);
  free(s->grads);
  free(s->step_losses);
  free(s->step_norms);
  memset(s, 0, sizeof *s);
}

const char *vt_state_path(const char *name, char *buf, size_t n) {
  const char *dir = getenv("VKLM_STATE_DIR");
  if (!dir || !*dir) {
    fprintf(stderr, "%s: VKLM_STATE_DIR is not set (ctest's reference_states fixture sets it)\n",
            test_name);
    return NULL;
  }
  snprintf(buf, n, "%s/%s.state", dir, name);
  return buf;
}

vklm_model_config vt_state_config(const vt_state *s) {
  vklm_model_config cfg = {.arch = s->arch ? VKLM_ARCH_LLAMA : VKLM_ARCH_GPT2,
                           .vocab_size = s->V,
                           .max_seq = s->maxT,
                           .n_layer = s->L,
                           .n_head = s->NH,
                           .n_kv_head = s->NKV,
                           .n_embd = s->C,
                           .ffn_hidden = s->F,
                           .norm_eps = s->norm_eps,
                           .rope_theta = s->rope_theta,
                           .tie_embeddings = (int)s->tie};
  return cfg;
}

int vt_state_table_matches(const vt_state *s, vklm_model *m) {
  int same = vklm_model_param_count(m) == s->ntensors && vklm_model_num_params(m) == s->nparams;
  for (uint32_t i = 0; same && i < s->ntensors; i++) {
    const vklm_param_info *p = vklm_model_param(m, i);
    const vt_state_tensor *t = &s->dir[i];
    same = strcmp(p->name, t->name) == 0 && p->ndim == t->ndim && p->shape[0] == t->shape[0] &&
           (p->ndim < 2 || p->shape[1] == t->shape[1]) && p->offset == t->offset &&
           p->count == t->count && (uint32_t)p->decay == t->decay;
    if (!same)
      printf("  table differs at %u: vklm %s (%u,%u) @%llu decay %d; file %s (%u,%u) @%llu decay %u\n",
             i, p->name, p->shape[0], p->shape[1], (unsigned long long)p->offset, p->decay,
             t->name, t->shape[0], t->shape[1], (unsigned long long)t->offset, t->decay);
  }
  return same;
}

double vt_rel_norm(const float *got, const float *want, size_t n) {
  double d = 0, w = 0;
  for (size_t i = 0; i < n; i++) {
    double e = (double)got[i] - want[i];
    d += e * e;
    w += (double)want[i] * want[i];
  }
  if (!isfinite(d)) return INFINITY;
  return sqrt(d) / (sqrt(w) + 1e-30);
}

double vt_rel(double got, double want) { return fabs(got - want) / (fabs(want) + 1e-30); }

double vt_norm(const float *x, uint64_t n) {
  double s = 0;
  for (uint64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return sqrt(s);
}

cJSON *vt_json_load(vt_env *env, const char *name) {
  const char *dir = getenv("VKLM_STATE_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.json", dir ? dir : ".", name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    vt_expect(env, 0, "%s: reference file %s", name, path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)(len > 0 ? len : 0) + 1);
  size_t got = text && len > 0 ? fread(text, 1, (size_t)len, f) : 0;
  fclose(f);
  cJSON *doc = NULL;
  if (text) {
    text[got] = 0;
    doc = cJSON_Parse(text);
  }
  free(text);
  vt_expect(env, doc != NULL, "%s: the reference file parses", name);
  return doc;
}

float *vt_json_floats(const cJSON *a, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(a);
  float *f = malloc((*n + 1) * sizeof *f);
  size_t i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) f[i++] = (float)e->valuedouble;
  return f;
}

int32_t *vt_json_ints(const cJSON *a, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(a);
  int32_t *v = malloc((*n + 1) * sizeof *v);
  size_t i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) v[i++] = (int32_t)e->valuedouble;
  return v;
}

uint64_t vt_span(uint32_t rows, uint32_t cols, uint32_t ld, uint64_t off, uint64_t stride,
                 uint32_t batch) {
  if (!ld) ld = cols;
  return off + (uint64_t)(batch - 1) * stride + (uint64_t)(rows ? rows - 1 : 0) * ld + cols;
}

void vt_gemm_spans(const vklm_gemm *g, uint64_t *na, uint64_t *nb, uint64_t *nc) {
  uint32_t batch = g->batch ? g->batch : 1;
  *na = g->trans_a ? vt_span(g->K, g->M, g->lda, g->off_a, g->stride_a, batch)
                   : vt_span(g->M, g->K, g->lda, g->off_a, g->stride_a, batch);
  *nb = g->trans_b ? vt_span(g->N, g->K, g->ldb, g->off_b, g->stride_b, batch)
                   : vt_span(g->K, g->N, g->ldb, g->off_b, g->stride_b, batch);
  *nc = vt_span(g->M, g->N, g->ldc, g->off_c, g->stride_c, batch);
}

vklm_gemm vt_gemm_awkward(int t, uint32_t ldc_pad, float beta) {
  vklm_gemm h = vklm_gemm_make(19, 70, 23);
  h.batch = 2;
  h.trans_a = t & 1;
  h.trans_b = t >> 1;
  h.alpha = -1.25f;
  h.beta = beta;
  h.lda = (t & 1 ? 19 : 23) + 3;
  h.ldb = (t >> 1 ? 23 : 70) + 5;
  h.ldc = 70 + ldc_pad;
  h.off_a = 3;
  h.off_b = 1;
  h.off_c = 7;
  h.stride_a = 23 * (uint64_t)h.lda + 1;
  h.stride_b = 0;
  h.stride_c = 19 * (uint64_t)h.ldc + 9;
  return h;
}

vklm_buffer vt_upload_cache(vt_env *env, float *x, size_t n, int f16) {
  if (!f16) return vt_upload(env, x, n * 4);
  uint32_t *h = calloc((n + 1) / 2 ? (n + 1) / 2 : 1, 4);
  vklm_convert_f32_to_f16_ref(h, x, (uint32_t)n);
  vklm_convert_f16_to_f32_ref(x, h, (uint32_t)n);
  vklm_buffer b = vt_upload(env, h, 4 * ((n + 1) / 2));
  free(h);
  return b;
}

uint16_t vt_half_of(const uint32_t *w, uint64_t i) { return (uint16_t)(w[i / 2] >> (16 * (i & 1))); }
float vt_from16(uint16_t h, int fmt) {
  return fmt == VKLM_GEMM_BF16 ? vklm_bf16_to_f32_ref(h) : vklm_f16_to_f32_ref(h);
}
uint16_t vt_to16(float f, int fmt) {
  return fmt == VKLM_GEMM_BF16 ? vklm_f32_to_bf16_ref(f) : vklm_f32_to_f16_ref(f);
}
int vt_ulps16(uint16_t a, uint16_t b) {
  int x = a & 0x8000 ? -(int)(a & 0x7fff) : (int)a, y = b & 0x8000 ? -(int)(b & 0x7fff) : (int)b;
  return abs(x - y);
}

vklm_buffer vt_upload_fmt(vt_env *env, const float *x, uint64_t n, int fmt, void **host) {
  if (fmt == 0) {
    *host = vt_copy(x, n);
    return vt_upload(env, x, n * 4);
  }
  uint64_t words = (n + 1) / 2;
  uint32_t *p = calloc(words ? words : 1, 4);
  if (fmt == 2) vklm_convert_f32_to_bf16_ref(p, x, (uint32_t)n);
  else vklm_convert_f32_to_f16_ref(p, x, (uint32_t)n);
  *host = p;
  return vt_upload(env, p, words * 4);
}

/* Test helpers (see testutil.h). */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  cfg.validate = 1;
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
         vklm_context_validation_enabled(env->ctx) ? "on" : "NOT INSTALLED");
  vt_ok(env, vklm_arena_create(env->ctx, 0, &env->arena), "arena");
  vt_ok(env, vklm_cmd_create(env->ctx, &env->cmd), "cmd");
}

int vt_finish(vt_env *env) {
  uint32_t vmsgs = vklm_context_validation_count(env->ctx);
  vklm_cmd_destroy(env->cmd);
  vklm_arena_destroy(env->arena);
  vmsgs = vklm_context_validation_count(env->ctx);
  vklm_context_destroy(env->ctx);
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

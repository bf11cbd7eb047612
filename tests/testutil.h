/* Helpers shared by the test programs: a context with validation forced on (a missing layer fails
 * the test; VKLM_VALIDATE=sync adds synchronization validation), deterministic random data, GPU-vs-reference comparison that prints the worst
 * relative error, a finite-difference checker for backward references, and the reader of the
 * PyTorch reference states (scripts/reference_model.py) that the model-level tests compare with.
 * A test ends with `return vt_finish(&env);`, which fails if any check failed or any validation
 * message was seen by any context of the process, at teardown included. */
#ifndef VKLM_TESTUTIL_H
#define VKLM_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "model/model.h"
#include "ops/matmul.h"
#include "vklm_runtime.h"

typedef struct vt_env {
  vklm_context *ctx;
  vklm_arena *arena;
  vklm_cmd *cmd;
  int failures;
  int checks;
} vt_env;

/* Creates the context from the environment with validation forced on; exits on failure. */
void vt_init(vt_env *env, const char *name);
/* A second environment e on a context of its own, made as vt_init's with cooperative matrices in
 * mode coopmat (VKLM_COOPMAT_*: VKLM_COOPMAT_EMULATE runs their tiling everywhere); 0 (a failed
 * check in env) when it cannot be made. vt_env_end destroys it and adds its counts to env's. */
int vt_env_coopmat(vt_env *env, int coopmat, vt_env *e);
void vt_env_end(vt_env *env, vt_env *e);
/* Prints a summary; returns the process exit status (0 only when every check passed and no
 * validation message was seen). Destroys everything. */
int vt_finish(vt_env *env);
/* Records a failed (or passed) check with a message. */
void vt_expect(vt_env *env, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Aborts the test with the context's message when st is not VKLM_OK. */
void vt_ok(vt_env *env, vklm_status st, const char *what);

/* Deterministic random floats in [lo, hi) (malloc'd; caller frees). */
float *vt_randf(size_t n, uint64_t seed, float lo, float hi);
int *vt_randi(size_t n, uint64_t seed, int lo, int hi); /* ints in [lo, hi) */
float *vt_zeros(size_t n);
float *vt_copy(const float *x, size_t n);

/* Allocates a buffer in env's arena and uploads n floats (or ints); download allocates. */
vklm_buffer vt_upload(vt_env *env, const void *data, size_t bytes);
/* Uploads n floats as a GEMM operand in format fmt (0 fp32, 1 fp16, 2 bf16: packed pairs,
 * rounded by the reference converters); *host (free it) gets what a reference reads. */
vklm_buffer vt_upload_fmt(vt_env *env, const float *x, uint64_t n, int fmt, void **host);
/* Element i of packed 16-bit words w; its value in fmt (1 fp16, 2 bf16); f rounded to fmt; the
 * distance between two 16-bit values in representable steps (sign-magnitude to a line). */
uint16_t vt_half_of(const uint32_t *w, uint64_t i);
float vt_from16(uint16_t h, int fmt);
uint16_t vt_to16(float f, int fmt);
int vt_ulps16(uint16_t a, uint16_t b);
/* Elements an operand of (rows, cols) with row stride ld (0: cols) spans from element off, over
 * batch items stride apart; and those A, B and C of g span (transposes, strides, batch). */
uint64_t vt_span(uint32_t rows, uint32_t cols, uint32_t ld, uint64_t off, uint64_t stride,
                 uint32_t batch);
void vt_gemm_spans(const vklm_gemm *g, uint64_t *na, uint64_t *nb, uint64_t *nc);
/* The GEMM tests' awkward layout for transposes t (bit 0 A, bit 1 B): (M,N,K) = (19,70,23),
 * batch 2, alpha -1.25, beta, rows padded (C's by ldc_pad), element offsets (odd: 16-bit halves
 * start mid-word), batch strides not multiples of the rows, B shared (stride 0). */
vklm_gemm vt_gemm_awkward(int t, uint32_t ldc_pad, float beta);
/* Uploads n floats of a KV cache, as fp16 halves when f16 (x is then rounded in place to the
 * values the device reads, for the reference), else as fp32. */
vklm_buffer vt_upload_cache(vt_env *env, float *x, size_t n, int f16);
vklm_buffer vt_alloc(vt_env *env, size_t bytes);
float *vt_download(vt_env *env, vklm_buffer b, size_t n);
/* begin + caller records + end + run on env->cmd: vt_begin(env); ...; vt_run(env); */
void vt_begin(vt_env *env);
void vt_run(vt_env *env);

/* Compares got against want: rel_i = |g-w| / (|w| + 1e-3 * max|w| + 1e-20); prints the worst
 * rel_i and max abs error; records failure when worst > tol. Returns the worst. */
double vt_compare(vt_env *env, const char *what, const float *got, const float *want, size_t n,
                  double tol);

/* 16-bit outputs (mixed precision's activations): vt_alloc16 gives a buffer for n elements in
 * ceil(n/2) words, every word VT_SENTINEL16; vt_compare16 downloads n elements of format fmt
 * (1 fp16, 2 bf16; element i in word i/2, low half first) and compares each with want (the fp32
 * reference) rounded to the format by the reference converters: within 1 unit in the last place
 * (the kernel rounds its own fp32 value, which may lie across a rounding boundary from the
 * reference's; elements below 1e-3 of max|want| measured in the ulps of that level, as
 * vt_compare floors its metric; fp16 results below the smallest normal within 2^-14, for
 * drivers that flush),
 * and for an odd n the last word's high half still the sentinel (nothing written past the end).
 * Prints the worst error in ulps and the share of exact matches; returns the worst. */
#define VT_SENTINEL16 0xa5a5a5a5u
vklm_buffer vt_alloc16(vt_env *env, size_t n);
double vt_compare16(vt_env *env, const char *what, vklm_buffer buf, int fmt, const float *want,
                    size_t n);

/* Finite differences: loss(state) is a scalar function of x (n floats, perturbed in place).
 * Central differences at up to max_coords coordinates (evenly strided) are compared with the
 * analytic gradient `grad` by norm-relative error ||num - grad|| / ||grad||. */
typedef double (*vt_loss_fn)(void *state);
double vt_fd_check(vt_env *env, const char *what, vt_loss_fn loss, void *state, float *x, size_t n,
                   const float *grad, size_t max_coords, double eps, double tol);

/* ---- reference states (format: scripts/reference_model.py, docs/formats.md) ---------------- */
typedef struct vt_state_tensor {
  char name[64];
  uint32_t ndim, shape[2], decay;
  uint64_t offset, count;
} vt_state_tensor;

typedef struct vt_state {
  uint32_t arch, obj, V, maxT, L, NH, NKV, C, F, tie, B, T, nsteps, ntensors;
  float norm_eps, rope_theta, lr, beta1, beta2, eps, wd, clip;
  uint64_t nparams;
  vt_state_tensor *dir;
  int32_t *inputs, *targets;  /* (B,T); targets -100 where ignored */
  float *params, *logits, loss, *grads, *step_losses, *step_norms;
} vt_state;

/* Reads a version-1 state file; returns 0 with a message on stderr when it is malformed
 * (vt_state_free is still needed). */
int vt_state_load(const char *path, vt_state *s);
void vt_state_free(vt_state *s);
/* $VKLM_STATE_DIR/<name>.state into buf (NULL with a message when the variable is unset). */
const char *vt_state_path(const char *name, char *buf, size_t n);
/* The model config the state describes. */
vklm_model_config vt_state_config(const vt_state *s);
/* 1 when the file's tensor directory equals the model's parameter table (names, shapes,
 * offsets, counts, decay flags); prints the first difference. */
int vt_state_table_matches(const vt_state *s, vklm_model *m);

/* ||got - want|| / ||want|| (INFINITY when got is not finite); |got - want| / |want|. */
double vt_rel_norm(const float *got, const float *want, size_t n);
double vt_rel(double got, double want);
/* sqrt(sum x^2) */
double vt_norm(const float *x, uint64_t n);

/* ---- JSON reference files (scripts/reference_align.py, reference_ppo.py) ----------------- */
/* $VKLM_STATE_DIR/<name>.json parsed (NULL after a failed check naming the file). */
cJSON *vt_json_load(vt_env *env, const char *name);
/* A JSON array of numbers as a malloc'ed float / int32 array; *n its length. */
float *vt_json_floats(const cJSON *a, size_t *n);
int32_t *vt_json_ints(const cJSON *a, size_t *n);

#endif

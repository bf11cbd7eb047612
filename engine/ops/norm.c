/* LayerNorm and RMSNorm, forward and backward (shaders/layernorm_*.comp, rmsnorm_*.comp,
 * norm_backward_f32_partials.comp, norm_backward_f32_reduce.comp), and their C references. */
#include "norm.h"

#include <math.h>
#include <stdio.h>

#include "op_util.h"

/* Rows are split into at most this many chunks for the two-stage parameter-gradient sums: enough
 * workgroups to fill a GPU (times ceil(C / workgroup) column blocks), few partials to add up. */
#define NORM_MAX_CHUNKS 128u
/* Rows per workgroup of the CPU-type variants (one invocation per row). */
#define NORM_CPU_WG 32u
/* Row chunks of the parameter-gradient partial sums on CPU-type devices: a few per CPU thread
 * (fewer than NORM_MAX_CHUNKS, so the scratch size, set by the GPU chunking, always suffices). */
#define NORM_CPU_CHUNKS 16u

typedef struct norm_fwd_push {
  uint32_t N, C;
  float eps;
} norm_fwd_push;
_Static_assert(sizeof(norm_fwd_push) == 12, "layernorm/rmsnorm_forward_f32.comp push constants");

typedef struct norm_bwd_push {
  uint32_t N, C;
} norm_bwd_push;
_Static_assert(sizeof(norm_bwd_push) == 8, "layernorm/rmsnorm_backward_f32.comp push constants");

typedef struct partials_push {
  uint32_t N, C, rows_per_chunk, chunks, rms;
} partials_push;
_Static_assert(sizeof(partials_push) == 20, "norm_backward_f32_partials.comp push constants");

typedef struct reduce_push {
  uint32_t C, chunks, nparams;
} reduce_push;
_Static_assert(sizeof(reduce_push) == 12, "norm_backward_f32_reduce.comp push constants");

static void chunking(uint32_t N, uint32_t max_chunks, uint32_t *rows_per_chunk,
                     uint32_t *chunks) {
  uint32_t target = N < max_chunks ? N : max_chunks;
  if (target == 0) target = 1;
  *rows_per_chunk = (N + target - 1) / target;
  if (*rows_per_chunk == 0) *rows_per_chunk = 1;
  *chunks = (N + *rows_per_chunk - 1) / *rows_per_chunk;
  if (*chunks == 0) *chunks = 1;
}

uint64_t vklm_norm_backward_scratch_bytes(const vklm_context *ctx, uint32_t N, uint32_t C) {
  (void)ctx;
  uint32_t rpc, chunks; /* the GPU chunking: the CPU variants use fewer chunks */
  chunking(N, NORM_MAX_CHUNKS, &rpc, &chunks);
  return 2ull * chunks * (C ? C : 1) * sizeof(float);
}

static void check_shape(const char *op, uint32_t N, uint32_t C) {
  VKLM_ASSERT((uint64_t)N * C < (1ull << 32), "%s: N*C = %llu exceeds 2^32", op,
              (unsigned long long)N * C);
}

static void check(const char *op, vklm_buffer b, uint64_t n, const char *what) {
  VKLM_ASSERT(b.block && b.size >= n * 4, "%s: %s holds %llu bytes, needs %llu floats", op, what,
              (unsigned long long)b.size, (unsigned long long)n);
}

/* A per-row kernel (vklm_op_dispatch_rows): GPU workgroups of up to 256 threads per row, CPU-type
 * variants NORM_CPU_WG rows per workgroup. */
static vklm_status dispatch_rows(vklm_cmd *cmd, const char *name, const vklm_buffer *b,
                                 uint32_t nb, const void *pc, uint32_t pc_size, uint32_t N,
                                 uint32_t len) {
  return vklm_op_dispatch_rows(cmd, name, b, nb, pc, pc_size, N, len, 256, NORM_CPU_WG);
}

/* Stage 1 and 2 of the parameter gradients (rms: dweight only; else dweight and dbias). */
static vklm_status param_grads(vklm_cmd *cmd, vklm_buffer dweight, vklm_buffer dbias,
                               vklm_buffer scratch, vklm_buffer dout, vklm_buffer inp,
                               vklm_buffer mean, vklm_buffer rstd, uint32_t N, uint32_t C,
                               int rms) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  int cpu = vklm_context_cpu_kernels(ctx) &&
            (N + NORM_CPU_CHUNKS - 1) / NORM_CPU_CHUNKS <= VKLM_CPU_LOOP_BUDGET;
  uint32_t rpc, chunks;
  chunking(N, cpu ? NORM_CPU_CHUNKS : NORM_MAX_CHUNKS, &rpc, &chunks);
  uint32_t nparams = rms ? 1 : 2;
  VKLM_ASSERT(scratch.block && scratch.size >= (uint64_t)nparams * chunks * C * 4,
              "norm backward: scratch holds %llu bytes, needs %llu",
              (unsigned long long)scratch.size, (unsigned long long)nparams * chunks * C * 4);
  uint32_t wg = cpu ? vklm_op_wg_fit(ctx, NORM_CPU_WG, 0) : vklm_op_wg1d(ctx);
  partials_push pp = {N, C, rpc, chunks, (uint32_t)rms};
  vklm_buffer b1[5] = {scratch, dout, inp, mean, rstd};
  vklm_status st = vklm_op_dispatch(cmd, "norm_backward_f32_partials", &wg, 1, b1, 5, &pp,
                                    sizeof pp, (C + wg - 1) / wg, chunks, 1);
  if (st != VKLM_OK) return st;
  reduce_push rp = {C, chunks, nparams};
  vklm_buffer b2[3] = {dweight, dbias, scratch};
  return vklm_op_dispatch_1d(cmd, "norm_backward_f32_reduce", b2, 3, &rp, sizeof rp, C);
}

vklm_status vklm_layernorm_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer mean,
                                   vklm_buffer rstd, vklm_buffer inp, vklm_buffer weight,
                                   vklm_buffer bias, uint32_t N, uint32_t C) {
  const char *op = "layernorm_forward";
  check_shape(op, N, C);
  check(op, out, (uint64_t)N * C, "out");
  check(op, inp, (uint64_t)N * C, "inp");
  check(op, mean, N, "mean");
  check(op, rstd, N, "rstd");
  check(op, weight, C, "weight");
  check(op, bias, C, "bias");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_fwd_push pc = {N, C, VKLM_LAYERNORM_EPS};
  vklm_buffer b[6] = {out, mean, rstd, inp, weight, bias};
  return dispatch_rows(cmd, "layernorm_forward_f32", b, 6, &pc, sizeof pc, N, C);
}

vklm_status vklm_layernorm_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dweight,
                                    vklm_buffer dbias, vklm_buffer scratch, vklm_buffer dout,
                                    vklm_buffer inp, vklm_buffer weight, vklm_buffer mean,
                                    vklm_buffer rstd, uint32_t N, uint32_t C) {
  const char *op = "layernorm_backward";
  check_shape(op, N, C);
  check(op, dinp, (uint64_t)N * C, "dinp");
  check(op, dout, (uint64_t)N * C, "dout");
  check(op, inp, (uint64_t)N * C, "inp");
  int params = dweight.block != NULL; /* a frozen norm: dinp only */
  VKLM_ASSERT(params == (dbias.block != NULL), "%s: give both dweight and dbias, or neither", op);
  if (params) check(op, dweight, C, "dweight");
  if (params) check(op, dbias, C, "dbias");
  check(op, weight, C, "weight");
  check(op, mean, N, "mean");
  check(op, rstd, N, "rstd");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_bwd_push pc = {N, C};
  vklm_buffer b[6] = {dinp, dout, inp, weight, mean, rstd};
  vklm_status st = dispatch_rows(cmd, "layernorm_backward_f32", b, 6, &pc, sizeof pc, N, C);
  if (st != VKLM_OK || !params) return st;
  return param_grads(cmd, dweight, dbias, scratch, dout, inp, mean, rstd, N, C, 0);
}

vklm_status vklm_rmsnorm_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer rstd,
                                 vklm_buffer inp, vklm_buffer weight, uint32_t N, uint32_t C,
                                 float eps) {
  const char *op = "rmsnorm_forward";
  check_shape(op, N, C);
  check(op, out, (uint64_t)N * C, "out");
  check(op, inp, (uint64_t)N * C, "inp");
  check(op, rstd, N, "rstd");
  check(op, weight, C, "weight");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_fwd_push pc = {N, C, eps};
  vklm_buffer b[4] = {out, rstd, inp, weight};
  return dispatch_rows(cmd, "rmsnorm_forward_f32", b, 4, &pc, sizeof pc, N, C);
}

vklm_status vklm_rmsnorm_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dweight,
                                  vklm_buffer scratch, vklm_buffer dout, vklm_buffer inp,
                                  vklm_buffer weight, vklm_buffer rstd, uint32_t N, uint32_t C) {
  const char *op = "rmsnorm_backward";
  check_shape(op, N, C);
  check(op, dinp, (uint64_t)N * C, "dinp");
  check(op, dout, (uint64_t)N * C, "dout");
  check(op, inp, (uint64_t)N * C, "inp");
  if (dweight.block) check(op, dweight, C, "dweight"); /* {0}: a frozen norm, dinp only */
  check(op, weight, C, "weight");
  check(op, rstd, N, "rstd");
  if (N == 0 || C == 0) return VKLM_OK;
  norm_bwd_push pc = {N, C};
  vklm_buffer b[5] = {dinp, dout, inp, weight, rstd};
  vklm_status st = dispatch_rows(cmd, "rmsnorm_backward_f32", b, 5, &pc, sizeof pc, N, C);
  if (st != VKLM_OK || !dweight.block) return st;
  /* rmsnorm has no mean and no bias: rstd and dweight stand in for the unused bindings. */
  return param_grads(cmd, dweight, dweight, scratch, dout, inp, rstd, rstd, N, C, 1);
}

/* ---- references ------------------------------------------------------------------------- */

void vklm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, uint32_t N, uint32_t C) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C;
    double m = 0, v = 0;
    for (uint32_t c = 0; c < C; c++) m += x[c];
    m /= C;
    for (uint32_t c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    double rs = 1.0 / sqrt(v / C + VKLM_LAYERNORM_EPS);
    for (uint32_t c = 0; c < C; c++)
      out[(size_t)r * C + c] = (float)((x[c] - m) * rs * weight[c] + bias[c]);
    mean[r] = (float)m;
    rstd[r] = (float)rs;
  }
}

void vklm_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, uint32_t N, uint32_t C) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
    double m = mean[r], rs = rstd[r], a = 0, b = 0;
    for (uint32_t c = 0; c < C; c++) {
      double g = (double)d[c] * weight[c];
      a += g;
      b += g * (x[c] - m) * rs;
    }
    a /= C;
    b /= C;
    for (uint32_t c = 0; c < C; c++) {
      double n = (x[c] - m) * rs, g = (double)d[c] * weight[c];
      dinp[(size_t)r * C + c] += (float)((g - a - n * b) * rs);
    }
  }
  for (uint32_t c = 0; c < C; c++) {
    double dw = 0, db = 0;
    for (uint32_t r = 0; r < N; r++) {
      double d = dout[(size_t)r * C + c];
      dw += d * (inp[(size_t)r * C + c] - (double)mean[r]) * rstd[r];
      db += d;
    }
    dweight[c] += (float)dw;
    dbias[c] += (float)db;
  }
}

void vklm_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
                              uint32_t N, uint32_t C, float eps) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C;
    double s = 0;
    for (uint32_t c = 0; c < C; c++) s += (double)x[c] * x[c];
    double rs = 1.0 / sqrt(s / C + eps);
    for (uint32_t c = 0; c < C; c++) out[(size_t)r * C + c] = (float)(x[c] * rs * weight[c]);
    rstd[r] = (float)rs;
  }
}

void vklm_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const float *rstd, uint32_t N, uint32_t C) {
  for (uint32_t r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
    double rs = rstd[r], a = 0;
    for (uint32_t c = 0; c < C; c++) a += (double)d[c] * weight[c] * x[c];
    double k = a / C * rs * rs;
    for (uint32_t c = 0; c < C; c++)
      dinp[(size_t)r * C + c] += (float)(rs * ((double)d[c] * weight[c] - x[c] * k));
  }
  for (uint32_t c = 0; c < C; c++) {
    double dw = 0;
    for (uint32_t r = 0; r < N; r++)
      dw += (double)dout[(size_t)r * C + c] * inp[(size_t)r * C + c] * rstd[r];
    dweight[c] += (float)dw;
  }
}

/* Bias add, residual add and fp32 <-> fp16 conversion (shaders/bias_*.comp, residual_*.comp,
 * convert_*.comp), and their C references. */
#include "elementwise.h"

#include <string.h>

#include "op_util.h"

/* Rows are split into at most this many chunks for the two-stage bias gradient: enough
 * workgroups to fill a GPU (times ceil(C / workgroup) column blocks), few partials to add up. */
#define BIAS_MAX_CHUNKS 128u

typedef struct bias_push {
  uint32_t n, C;
} bias_push;
_Static_assert(sizeof(bias_push) == 8, "bias_forward_f32.comp push constants");

typedef struct partials_push {
  uint32_t N, C, rows_per_chunk;
} partials_push;
_Static_assert(sizeof(partials_push) == 12, "bias_backward_f32_partials.comp push constants");

typedef struct reduce_push {
  uint32_t rows, C;
} reduce_push;
_Static_assert(sizeof(reduce_push) == 8, "bias_backward_f32_reduce.comp push constants");

typedef struct n_push {
  uint32_t n;
} n_push;
_Static_assert(sizeof(n_push) == 4, "residual_*_f32.comp, convert_*.comp push constants");

static void check(const char *op, vklm_buffer b, uint64_t bytes, const char *what) {
  VKLM_ASSERT(b.block && b.size >= bytes, "%s: %s holds %llu bytes, needs %llu", op, what,
              (unsigned long long)b.size, (unsigned long long)bytes);
}

static void check_count(const char *op, uint64_t n) {
  VKLM_ASSERT(n < (1ull << 32), "%s: %llu elements exceed 2^32", op, (unsigned long long)n);
}

vklm_status vklm_bias_forward(vklm_cmd *cmd, vklm_buffer x, vklm_buffer bias, uint32_t N,
                              uint32_t C) {
  const char *op = "bias_forward";
  uint64_t n = (uint64_t)N * C;
  check_count(op, n);
  if (n == 0) return VKLM_OK;
  check(op, x, n * 4, "x");
  check(op, bias, (uint64_t)C * 4, "bias");
  bias_push pc = {(uint32_t)n, C};
  vklm_buffer b[2] = {x, bias};
  return vklm_op_dispatch_1d(cmd, "bias_forward_f32", b, 2, &pc, sizeof pc, n);
}

uint64_t vklm_bias_backward_scratch_bytes(uint32_t N, uint32_t C) {
  uint32_t chunks = N < BIAS_MAX_CHUNKS ? N : BIAS_MAX_CHUNKS;
  return (uint64_t)(chunks ? chunks : 1) * (C ? C : 1) * 4;
}

vklm_status vklm_bias_backward(vklm_cmd *cmd, vklm_buffer dbias, vklm_buffer scratch,
                               vklm_buffer dout, uint32_t N, uint32_t C) {
  const char *op = "bias_backward";
  uint64_t n = (uint64_t)N * C;
  check_count(op, n);
  if (C == 0) return VKLM_OK;
  check(op, dbias, (uint64_t)C * 4, "dbias");
  if (N == 0) return VKLM_OK;
  check(op, dout, n * 4, "dout");
  /* As many chunks as the scratch holds, up to BIAS_MAX_CHUNKS and N. */
  uint64_t fit = scratch.block ? scratch.size / ((uint64_t)C * 4) : 0;
  uint32_t chunks = N < BIAS_MAX_CHUNKS ? N : BIAS_MAX_CHUNKS;
  if (fit < chunks) chunks = (uint32_t)fit;
  vklm_buffer src = dout;
  uint32_t rows = N;
  if (chunks > 1) {
    uint32_t rpc = (N + chunks - 1) / chunks;
    chunks = (N + rpc - 1) / rpc;
    vklm_context *ctx = vklm_cmd_context(cmd);
    uint32_t wg = vklm_op_wg1d(ctx);
    partials_push pp = {N, C, rpc};
    vklm_buffer b1[2] = {scratch, dout};
    vklm_status st = vklm_op_dispatch(cmd, "bias_backward_f32_partials", &wg, 1, b1, 2, &pp,
                                      sizeof pp, (C + wg - 1) / wg, chunks, 1);
    if (st != VKLM_OK) return st;
    src = scratch;
    rows = chunks;
  }
  reduce_push rp = {rows, C};
  vklm_buffer b2[2] = {dbias, src};
  return vklm_op_dispatch_1d(cmd, "bias_backward_f32_reduce", b2, 2, &rp, sizeof rp, C);
}

vklm_status vklm_residual_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer a, vklm_buffer b,
                                  uint32_t n) {
  const char *op = "residual_forward";
  if (n == 0) return VKLM_OK;
  check(op, out, (uint64_t)n * 4, "out");
  check(op, a, (uint64_t)n * 4, "a");
  check(op, b, (uint64_t)n * 4, "b");
  n_push pc = {n};
  vklm_buffer bufs[3] = {out, a, b};
  return vklm_op_dispatch_1d(cmd, "residual_forward_f32", bufs, 3, &pc, sizeof pc, n);
}

vklm_status vklm_residual_backward(vklm_cmd *cmd, vklm_buffer da, vklm_buffer db,
                                   vklm_buffer dout, uint32_t n) {
  const char *op = "residual_backward";
  if (n == 0) return VKLM_OK;
  check(op, da, (uint64_t)n * 4, "da");
  check(op, db, (uint64_t)n * 4, "db");
  check(op, dout, (uint64_t)n * 4, "dout");
  n_push pc = {n};
  vklm_buffer bufs[3] = {da, db, dout};
  return vklm_op_dispatch_1d(cmd, "residual_backward_f32", bufs, 3, &pc, sizeof pc, n);
}

vklm_status vklm_convert_f32_to_f16(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp,
                                    uint32_t n) {
  const char *op = "convert_f32_to_f16";
  if (n == 0) return VKLM_OK;
  uint64_t words = ((uint64_t)n + 1) / 2;
  check(op, out, words * 4, "out");
  check(op, inp, (uint64_t)n * 4, "inp");
  n_push pc = {n};
  vklm_buffer bufs[2] = {out, inp};
  return vklm_op_dispatch_1d(cmd, "convert_f32_to_f16", bufs, 2, &pc, sizeof pc, words);
}

vklm_status vklm_convert_f16_to_f32(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp,
                                    uint32_t n) {
  const char *op = "convert_f16_to_f32";
  if (n == 0) return VKLM_OK;
  check(op, out, (uint64_t)n * 4, "out");
  check(op, inp, ((uint64_t)n + 1) / 2 * 4, "inp");
  n_push pc = {n};
  vklm_buffer bufs[2] = {out, inp};
  return vklm_op_dispatch_1d(cmd, "convert_f16_to_f32", bufs, 2, &pc, sizeof pc, n);
}

typedef struct seg_push {
  uint32_t B, T;
} seg_push;
_Static_assert(sizeof(seg_push) == 8, "segment_dot_f32.comp push constants");

vklm_status vklm_segment_dot(vklm_cmd *cmd, vklm_buffer out, vklm_buffer x, vklm_buffer w,
                             uint32_t B, uint32_t T) {
  uint64_t n = (uint64_t)B * T;
  VKLM_ASSERT(n < (1ull << 32), "segment_dot: B*T = %llu past 2^32", (unsigned long long)n);
  VKLM_ASSERT(out.block && out.size >= (uint64_t)B * 4 && x.block && x.size >= n * 4 && w.block &&
                  w.size >= n * 4,
              "segment_dot: out (%u), x and w (%u x %u) too small", B, B, T);
  if (B == 0) return VKLM_OK;
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t wg = vklm_op_wg_fit(ctx, T >= 256 ? 256 : 64, 8), gx, gy;
  vklm_groups_1d(ctx, B, &gx, &gy);
  seg_push pc = {B, T};
  vklm_buffer b[3] = {out, x, w};
  return vklm_op_dispatch(cmd, "segment_dot_f32", &wg, 1, b, 3, &pc, sizeof pc, gx, gy, 1);
}

/* ---- references ------------------------------------------------------------------------- */

void vklm_bias_forward_ref(float *x, const float *bias, uint32_t N, uint32_t C) {
  for (uint32_t r = 0; r < N; r++)
    for (uint32_t c = 0; c < C; c++) x[(size_t)r * C + c] += bias[c];
}

void vklm_bias_backward_ref(float *dbias, const float *dout, uint32_t N, uint32_t C) {
  for (uint32_t c = 0; c < C; c++) {
    double s = 0;
    for (uint32_t r = 0; r < N; r++) s += dout[(size_t)r * C + c];
    dbias[c] += (float)s;
  }
}

void vklm_residual_forward_ref(float *out, const float *a, const float *b, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void vklm_residual_backward_ref(float *da, float *db, const float *dout, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

void vklm_segment_dot_ref(float *out, const float *x, const float *w, uint32_t B, uint32_t T) {
  for (uint32_t b = 0; b < B; b++) {
    double s = 0;
    for (uint32_t t = 0; t < T; t++) s += (double)x[(size_t)b * T + t] * w[(size_t)b * T + t];
    out[b] = (float)s;
  }
}

uint16_t vklm_f32_to_f16_ref(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf, or NaN (kept quiet, top payload bits kept) */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) {                                  /* below 2^-14: a subnormal half */
    if (ax < 0x33000000u) return (uint16_t)sign;           /* <= 2^-25 (a tie) rounds to 0 */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* value = m * 2^(e-150) = (m >> shift) units of 2^-24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu; /* rebias 127 -> 15 */
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;   /* a carry moves the exponent */
  return (uint16_t)(sign | h);
}

float vklm_f16_to_f32_ref(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
  if (e == 0) {
    float v = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
    return sign ? -v : v;
  }
  if (e == 31)
    x = sign | 0x7f800000u | (m << 13);
  else
    x = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* n values converted by conv, packed in pairs (low half first; the last high half 0). */
static void pack16(uint32_t *out, const float *inp, uint32_t n, uint16_t (*conv)(float)) {
  for (uint32_t i = 0; i < n; i += 2) {
    uint32_t lo = conv(inp[i]);
    uint32_t hi = i + 1 < n ? conv(inp[i + 1]) : 0;
    out[i / 2] = lo | hi << 16;
  }
}

void vklm_convert_f32_to_f16_ref(uint32_t *out, const float *inp, uint32_t n) {
  pack16(out, inp, n, vklm_f32_to_f16_ref);
}

uint16_t vklm_f32_to_bf16_ref(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* NaN stays NaN */
  x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even; a carry may give inf */
  return (uint16_t)(x >> 16);
}

float vklm_bf16_to_f32_ref(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

void vklm_convert_f32_to_bf16_ref(uint32_t *out, const float *inp, uint32_t n) {
  pack16(out, inp, n, vklm_f32_to_bf16_ref);
}

void vklm_convert_f16_to_f32_ref(float *out, const uint32_t *inp, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    out[i] = vklm_f16_to_f32_ref((uint16_t)(inp[i / 2] >> (16 * (i & 1))));
}

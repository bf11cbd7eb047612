/* GELU, SiLU, SwiGLU forward and backward (shaders/gelu_*.comp, silu_*.comp, swiglu_*.comp,
 * shaders/activation.glsl) and their C references. */
#include "activation.h"

#include <math.h>

#include "op_util.h"

typedef struct n_push {
  uint32_t n;
} n_push;
_Static_assert(sizeof(n_push) == 4, "gelu/silu_*_f32.comp push constants");

typedef struct nh_push {
  uint32_t N, H;
} nh_push;
_Static_assert(sizeof(nh_push) == 8, "swiglu_*_f32.comp push constants");

static void check(const char *op, vklm_buffer b, uint64_t n, const char *what) {
  VKLM_ASSERT(b.block && b.size >= n * 4, "%s: %s holds %llu bytes, needs %llu floats", op, what,
              (unsigned long long)b.size, (unsigned long long)n);
}

static vklm_status unary(vklm_cmd *cmd, const char *name, vklm_buffer out, vklm_buffer inp,
                         uint32_t n) {
  check(name, out, n, "out");
  check(name, inp, n, "inp");
  if (n == 0) return VKLM_OK;
  n_push pc = {n};
  vklm_buffer b[2] = {out, inp};
  return vklm_op_dispatch_1d(cmd, name, b, 2, &pc, sizeof pc, n);
}

static vklm_status unary_backward(vklm_cmd *cmd, const char *name, vklm_buffer dinp,
                                  vklm_buffer dout, vklm_buffer inp, uint32_t n) {
  check(name, dinp, n, "dinp");
  check(name, dout, n, "dout");
  check(name, inp, n, "inp");
  if (n == 0) return VKLM_OK;
  n_push pc = {n};
  vklm_buffer b[3] = {dinp, dout, inp};
  return vklm_op_dispatch_1d(cmd, name, b, 3, &pc, sizeof pc, n);
}

vklm_status vklm_gelu_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp, uint32_t n) {
  return unary(cmd, "gelu_forward_f32", out, inp, n);
}

/* The forward kernel `name` with out in out_fmt and its input in in_fmt (spec constants 1, 2):
 * a thread per element of an fp32 out, per word of two elements of a 16-bit one. The fp32 /
 * fp32 pipeline keeps its one spec constant (the pipeline it always was). */
static vklm_status dispatch_fmt(vklm_cmd *cmd, const char *name, const vklm_buffer *b,
                                int out_fmt, int in_fmt, const void *pc, uint32_t pc_size,
                                uint64_t n) {
  uint32_t spec[2] = {(uint32_t)out_fmt, (uint32_t)in_fmt};
  return vklm_op_dispatch_1d_spec(cmd, name, b, 2, pc, pc_size, out_fmt ? (n + 1) / 2 : n, spec,
                                  in_fmt ? 2 : out_fmt ? 1 : 0);
}

/* buf holds n elements in format fmt (0 fp32, 1 fp16, 2 bf16). */
static void check_fmt(const char *op, vklm_buffer buf, uint64_t n, int fmt, const char *what) {
  VKLM_ASSERT(fmt >= 0 && fmt <= 2, "%s: %s format %d (0 f32, 1 f16, 2 bf16)", op, what, fmt);
  check(op, buf, fmt ? (n + 1) / 2 : n, what);
}

vklm_status vklm_gelu_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt, vklm_buffer inp,
                                  int in_fmt, uint32_t n) {
  if (out_fmt == 0 && in_fmt == 0) return vklm_gelu_forward(cmd, out, inp, n);
  check_fmt("gelu_forward", out, n, out_fmt, "out");
  check_fmt("gelu_forward", inp, n, in_fmt, "inp");
  if (n == 0) return VKLM_OK;
  n_push pc = {n};
  vklm_buffer b[2] = {out, inp};
  return dispatch_fmt(cmd, "gelu_forward_f32", b, out_fmt, in_fmt, &pc, sizeof pc, n);
}

vklm_status vklm_gelu_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dout,
                               vklm_buffer inp, uint32_t n) {
  return unary_backward(cmd, "gelu_backward_f32", dinp, dout, inp, n);
}

vklm_status vklm_gelu_backward_fmt(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dout,
                                   vklm_buffer inp, int in_fmt, uint32_t n) {
  if (in_fmt == 0) return vklm_gelu_backward(cmd, dinp, dout, inp, n);
  check("gelu_backward", dinp, n, "dinp");
  check("gelu_backward", dout, n, "dout");
  check_fmt("gelu_backward", inp, n, in_fmt, "inp");
  if (n == 0) return VKLM_OK;
  n_push pc = {n};
  vklm_buffer b[3] = {dinp, dout, inp};
  uint32_t spec = (uint32_t)in_fmt; /* spec constant 1: inp's format */
  return vklm_op_dispatch_1d_spec(cmd, "gelu_backward_f32", b, 3, &pc, sizeof pc, n, &spec, 1);
}

vklm_status vklm_silu_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer inp, uint32_t n) {
  return unary(cmd, "silu_forward_f32", out, inp, n);
}

vklm_status vklm_silu_backward(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dout,
                               vklm_buffer inp, uint32_t n) {
  return unary_backward(cmd, "silu_backward_f32", dinp, dout, inp, n);
}

vklm_status vklm_swiglu_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer gu, uint32_t N,
                                uint32_t H) {
  return vklm_swiglu_forward_fmt(cmd, out, 0, gu, 0, N, H);
}

vklm_status vklm_swiglu_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt, vklm_buffer gu,
                                    int gu_fmt, uint32_t N, uint32_t H) {
  uint64_t n = (uint64_t)N * H;
  VKLM_ASSERT(2 * n < (1ull << 32), "swiglu: N*2H = %llu elements exceed 2^32",
              (unsigned long long)(2 * n));
  check_fmt("swiglu_forward", out, n, out_fmt, "out");
  check_fmt("swiglu_forward", gu, 2 * n, gu_fmt, "gu");
  if (n == 0) return VKLM_OK;
  nh_push pc = {N, H};
  vklm_buffer b[2] = {out, gu};
  return dispatch_fmt(cmd, "swiglu_forward_f32", b, out_fmt, gu_fmt, &pc, sizeof pc, n);
}

vklm_status vklm_swiglu_backward(vklm_cmd *cmd, vklm_buffer dgu, vklm_buffer dout,
                                 vklm_buffer gu, uint32_t N, uint32_t H) {
  return vklm_swiglu_backward_fmt(cmd, dgu, dout, gu, 0, N, H);
}

vklm_status vklm_swiglu_backward_fmt(vklm_cmd *cmd, vklm_buffer dgu, vklm_buffer dout,
                                     vklm_buffer gu, int gu_fmt, uint32_t N, uint32_t H) {
  uint64_t n = (uint64_t)N * H;
  VKLM_ASSERT(2 * n < (1ull << 32), "swiglu: N*2H = %llu elements exceed 2^32",
              (unsigned long long)(2 * n));
  check("swiglu_backward", dgu, 2 * n, "dgu");
  check("swiglu_backward", dout, n, "dout");
  check_fmt("swiglu_backward", gu, 2 * n, gu_fmt, "gu");
  if (n == 0) return VKLM_OK;
  nh_push pc = {N, H};
  vklm_buffer b[3] = {dgu, dout, gu};
  uint32_t spec = (uint32_t)gu_fmt; /* spec constant 1: gu's format, only when 16-bit */
  return vklm_op_dispatch_1d_spec(cmd, "swiglu_backward_f32", b, 3, &pc, sizeof pc, n, &spec,
                                  gu_fmt ? 1 : 0);
}

/* ---- references ------------------------------------------------------------------------- */
#define GELU_SCALE 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_CUBE 0.044715

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
/* 0.5 (1 + tanh(u)) = sigmoid(2u) and 1 - tanh(u)^2 = 4 sigmoid(2u) sigmoid(-2u): the same
 * function as the tanh form, without its cancellation in the negative tail. */
static double gelu(double x) {
  return x * sigmoid(2.0 * GELU_SCALE * (x + GELU_CUBE * x * x * x));
}

static double gelu_grad(double x) {
  double u = GELU_SCALE * (x + GELU_CUBE * x * x * x);
  double du = GELU_SCALE * (1.0 + 3.0 * GELU_CUBE * x * x);
  return sigmoid(2 * u) + 2 * x * sigmoid(2 * u) * sigmoid(-2 * u) * du;
}

static double silu(double x) { return x * sigmoid(x); }
static double silu_grad(double x) {
  return sigmoid(x) * (1.0 + x * sigmoid(-x)); /* sigmoid(-x) = 1 - sigmoid(x) */
}

void vklm_gelu_forward_ref(float *out, const float *inp, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) out[i] = (float)gelu(inp[i]);
}

void vklm_gelu_backward_ref(float *dinp, const float *dout, const float *inp, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) dinp[i] = (float)(dout[i] * gelu_grad(inp[i]));
}

void vklm_silu_forward_ref(float *out, const float *inp, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) out[i] = (float)silu(inp[i]);
}

void vklm_silu_backward_ref(float *dinp, const float *dout, const float *inp, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) dinp[i] = (float)(dout[i] * silu_grad(inp[i]));
}

void vklm_swiglu_forward_ref(float *out, const float *gu, uint32_t N, uint32_t H) {
  for (uint32_t r = 0; r < N; r++)
    for (uint32_t j = 0; j < H; j++) {
      const float *g = gu + (size_t)r * 2 * H;
      out[(size_t)r * H + j] = (float)(silu(g[j]) * g[H + j]);
    }
}

void vklm_swiglu_backward_ref(float *dgu, const float *dout, const float *gu, uint32_t N,
                              uint32_t H) {
  for (uint32_t r = 0; r < N; r++)
    for (uint32_t j = 0; j < H; j++) {
      const float *g = gu + (size_t)r * 2 * H;
      double d = dout[(size_t)r * H + j];
      dgu[(size_t)r * 2 * H + j] = (float)(d * g[H + j] * silu_grad(g[j]));
      dgu[(size_t)r * 2 * H + H + j] = (float)(d * silu(g[j]));
    }
}

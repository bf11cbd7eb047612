/* Tensor-level entry points of the layer ops (nn.h): shape and dtype checks, then the
 * buffer-level kernels. */
#include "nn.h"

#include "activation.h"
#include "attention.h"
#include "crossentropy.h"
#include "elementwise.h"
#include "embedding.h"
#include "kvcache.h"
#include "matmul.h"
#include "norm.h"
#include "quant.h"
#include "rope.h"

#define F32 VKLM_DTYPE_F32

/* The buffer of a contiguous tensor of dtype dt at element offset 0. */
static vklm_buffer whole(const char *op, const char *what, const vklm_tensor *t, vklm_dtype dt) {
  char d[96];
  VKLM_ASSERT(!vklm_tensor_is_none(t) && t->dtype == dt && t->offset == 0 &&
                  vklm_tensor_is_contiguous(t),
              "%s: %s is %s, expected a contiguous %s tensor at offset 0", op, what,
              vklm_tensor_describe(t, d, sizeof d), vklm_dtype_name(dt));
  return vklm_tensor_buffer(t, 1);
}
/* An fp32 activation; an int32 one (tokens, targets, rows, plans). */
static vklm_buffer act(const char *op, const char *what, const vklm_tensor *t) {
  return whole(op, what, t, F32);
}
static vklm_buffer ints(const char *op, const char *what, const vklm_tensor *t) {
  return whole(op, what, t, VKLM_DTYPE_I32);
}

/* An optional fp32 tensor: its buffer, or {0} for none. */
static vklm_buffer opt(const char *op, const char *what, const vklm_tensor *t) {
  return vklm_tensor_is_none(t) ? (vklm_buffer){0} : act(op, what, t);
}

/* An activation that mixed-precision training may hold in 16 bits (the inputs of the GEMMs it
 * saves for the backward): F32, F16 or BF16; its buffer, and its format (VKLM_GEMM_*) in *fmt. */
static int fmt_of(vklm_dtype dt) {
  return dt == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : dt == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : 0;
}
static vklm_buffer act16(const char *op, const char *what, const vklm_tensor *t, int *fmt) {
  *fmt = fmt_of(t->dtype);
  return whole(op, what, t, *fmt ? t->dtype : F32);
}

static uint32_t rows_of(const vklm_tensor *t) {
  uint64_t n = vklm_tensor_numel(t), last = t->ndim ? t->shape[t->ndim - 1] : 1;
  return (uint32_t)(last ? n / last : 0);
}

vklm_status vklm_nn_linear(vklm_cmd *cmd, vklm_tensor out, vklm_tensor in, vklm_tensor w,
                           vklm_tensor bias) {
  const char *op = "nn_linear";
  char d1[96], d2[96];
  uint32_t M = rows_of(&in), K = in.shape[in.ndim - 1];
  VKLM_ASSERT(w.ndim == 2 && w.shape[1] == K && w.offset == 0 &&
                  ((unsigned)w.dtype < VKLM_DTYPE_LINEAR_COUNT || w.dtype == VKLM_DTYPE_BF16),
              "%s: weight %s does not take inputs %s", op, vklm_tensor_describe(&w, d1, sizeof d1),
              vklm_tensor_describe(&in, d2, sizeof d2));
  uint32_t N = w.shape[0];
  int cfmt = fmt_of(out.dtype); /* a 16-bit out: contiguous (mixed precision's qkv, fch) */
  VKLM_ASSERT((out.dtype == F32 || (cfmt && vklm_tensor_is_contiguous(&out))) && out.ndim == 2 &&
                  out.shape[0] == M && out.shape[1] == N && out.stride[1] == 1 &&
                  out.stride[0] >= N,
              "%s: out %s, expected f32 (%u,%u) with unit column stride, or a contiguous f16 "
              "or bf16 one", op, vklm_tensor_describe(&out, d1, sizeof d1), M, N);
  if (!vklm_tensor_is_none(&bias))
    vklm_tensor_expect(op, "bias", &bias, F32, 1, N, 0, 0);
  vklm_buffer ob = out.buf;
  if (fmt_of(in.dtype) || cfmt) { /* a 16-bit input or output (mixed precision's saved
                                   * activations): the GEMM with those formats, any rows; the
                                   * weight F32, F16 or BF16 */
    int afmt, wfmt = fmt_of(w.dtype);
    VKLM_ASSERT(w.dtype == F32 || wfmt, "%s: a %s input takes f32, f16 or bf16 weights, not %s",
                op, vklm_dtype_name(in.dtype), vklm_dtype_name(w.dtype));
    vklm_buffer ib = act16(op, "in", &in, &afmt);
    vklm_gemm g = vklm_gemm_make(M, N, K);
    g.trans_b = 1;
    g.ldc = (uint32_t)out.stride[0];
    g.off_c = out.offset;
    return vklm_matmul_fmt(cmd, ob, cfmt, ib, afmt, w.buf, wfmt, opt(op, "bias", &bias), &g);
  }
  return vklm_linear_forward_ex(cmd, ob, (uint32_t)out.stride[0], out.offset, act(op, "in", &in),
                                w.buf, w.dtype, opt(op, "bias", &bias), M, K, N);
}

vklm_status vklm_nn_linear_backward(vklm_cmd *cmd, vklm_tensor dinp, vklm_tensor dw,
                                    vklm_tensor db, vklm_tensor dout, vklm_tensor in,
                                    vklm_tensor w) {
  const char *op = "nn_linear_backward";
  uint32_t M = rows_of(&in), K = in.shape[in.ndim - 1], N = w.shape[0];
  /* w: fp32, or the 16-bit copy a mixed-precision model's GEMMs read (F16 / BF16) */
  int wfmt = w.dtype == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : w.dtype == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : 0;
  vklm_tensor_expect(op, "w", &w, wfmt ? w.dtype : F32, 2, N, K, 0);
  VKLM_ASSERT(rows_of(&dout) == M && dout.shape[dout.ndim - 1] == N,
              "%s: dout is not (%u,%u)", op, M, N);
  if (!vklm_tensor_is_none(&dinp))
    VKLM_ASSERT(rows_of(&dinp) == M && dinp.shape[dinp.ndim - 1] == K, "%s: dinp is not (%u,%u)",
                op, M, K);
  if (!vklm_tensor_is_none(&dw)) vklm_tensor_expect(op, "dw", &dw, F32, 2, N, K, 0);
  if (!vklm_tensor_is_none(&db)) vklm_tensor_expect(op, "db", &db, F32, 1, N, 0, 0);
  if (vklm_tensor_is_none(&dinp) && vklm_tensor_is_none(&dw) && vklm_tensor_is_none(&db))
    return VKLM_OK;
  if (fmt_of(in.dtype)) {
    /* a 16-bit input (mixed precision's saved activations): the fp32 dw (N,K) += dout^T (N,M) @
     * in (M,K) with in read in its 16-bit format and db with it (vklm_matmul_dweight), or db
     * alone; dinp's memory (written after) their scratch; then dinp (M,K) = dout @ w */
    int afmt;
    vklm_buffer ib = act16(op, "in", &in, &afmt), ob = act(op, "dout", &dout);
    vklm_buffer scratch = opt(op, "dinp", &dinp), dbb = opt(op, "db", &db);
    vklm_status st;
    if (!vklm_tensor_is_none(&dw))
      st = vklm_matmul_dweight(cmd, act(op, "dw", &dw), dbb, ob, ib, afmt, scratch, M, K, N);
    else if (dbb.block)
      st = vklm_bias_backward(cmd, dbb,
                              scratch.size >= vklm_bias_backward_scratch_bytes(M, N)
                                  ? scratch
                                  : (vklm_buffer){0},
                              ob, M, N);
    else
      st = VKLM_OK;
    if (st == VKLM_OK && !vklm_tensor_is_none(&dinp)) {
      vklm_gemm g = vklm_gemm_make(M, K, N);
      st = vklm_matmul_fmt(cmd, act(op, "dinp", &dinp), VKLM_GEMM_F32, ob, VKLM_GEMM_F32,
                           wfmt ? whole(op, "w", &w, w.dtype) : act(op, "w", &w), wfmt,
                           (vklm_buffer){0}, &g);
    }
    return st;
  }
  if (wfmt && !vklm_tensor_is_none(&dinp)) {
    /* dinp (M,K) = dout (M,N) @ w (N,K) read in its 16-bit format; then the fp32 weight and
     * bias gradients (the bias gradient's scratch is then not dinp: it is computed first) */
    vklm_gemm g = vklm_gemm_make(M, K, N);
    vklm_status st = vklm_matmul_fmt(cmd, act(op, "dinp", &dinp), VKLM_GEMM_F32,
                                     act(op, "dout", &dout), VKLM_GEMM_F32,
                                     whole(op, "w", &w, w.dtype), wfmt, (vklm_buffer){0}, &g);
    if (st != VKLM_OK) return st;
    dinp = vklm_tensor_none();
  }
  if (vklm_tensor_is_none(&dw) && vklm_tensor_is_none(&db)) return VKLM_OK;
  return vklm_matmul_backward(cmd, opt(op, "dinp", &dinp), opt(op, "dw", &dw),
                              opt(op, "db", &db), act(op, "dout", &dout), act(op, "in", &in),
                              wfmt ? whole(op, "w", &w, w.dtype) : act(op, "w", &w), M, K, N);
}

/* The fused kernels take fp32 or 16-bit (F16 / BF16) weights and, forward, enough rows for the
 * GEMM (vklm_linear_forward's rule: the matrix-vector kernel below that, with its own GELU
 * variant); quantized weights, and 16-bit ones whose GEMM runs on cooperative matrices, run the
 * two ops they fuse. */
vklm_status vklm_nn_linear_gelu(vklm_cmd *cmd, vklm_tensor out, vklm_tensor gelu_out,
                                vklm_tensor in, vklm_tensor w, vklm_tensor bias) {
  const char *op = "nn_linear_gelu";
  uint32_t M = rows_of(&in), K = in.shape[in.ndim - 1], N = w.shape[0];
  char d1[96], d2[96];
  VKLM_ASSERT(w.ndim == 2 && w.shape[1] == K && w.offset == 0 &&
                  ((unsigned)w.dtype < VKLM_DTYPE_LINEAR_COUNT || w.dtype == VKLM_DTYPE_BF16),
              "%s: weight %s does not take inputs %s", op, vklm_tensor_describe(&w, d1, sizeof d1),
              vklm_tensor_describe(&in, d2, sizeof d2));
  if (fmt_of(in.dtype) || fmt_of(gelu_out.dtype) || fmt_of(out.dtype)) {
    /* mixed precision's 16-bit saved activations (in: ln2, gelu_out: act, out: fch): the GEMM's
     * GELU epilogue with those formats, or, where the GEMM runs on cooperative matrices (no
     * epilogue), the linear layer and the activation; both take gelu of out as stored */
    int afmt, gfmt, cfmt, wfmt = fmt_of(w.dtype);
    VKLM_ASSERT(w.dtype == F32 || wfmt, "%s: 16-bit activations take f32, f16 or bf16 weights, "
                "not %s", op, vklm_dtype_name(w.dtype));
    vklm_tensor_expect(op, "out", &out, fmt_of(out.dtype) ? out.dtype : F32, 2, M, N, 0);
    vklm_tensor_expect(op, "act", &gelu_out, gelu_out.dtype, 2, M, N, 0);
    vklm_buffer ib = act16(op, "in", &in, &afmt), gb = act16(op, "act", &gelu_out, &gfmt);
    vklm_buffer cb = act16(op, "out", &out, &cfmt);
    if (!vklm_matmul_epilogue_fuses(vklm_cmd_context(cmd), afmt, wfmt)) {
      vklm_status st = vklm_nn_linear(cmd, out, in, w, bias);
      return st != VKLM_OK ? st : vklm_nn_mlp_act(cmd, 0, gelu_out, out);
    }
    if (!vklm_tensor_is_none(&bias)) vklm_tensor_expect(op, "bias", &bias, F32, 1, N, 0, 0);
    vklm_gemm g = vklm_gemm_make(M, N, K);
    g.trans_b = 1;
    return vklm_matmul_gelu_fmt(cmd, cb, cfmt, gb, gfmt, ib, afmt, w.buf, wfmt,
                                opt(op, "bias", &bias), &g);
  }
  vklm_tensor_expect(op, "out", &out, F32, 2, M, N, 0);
  vklm_tensor_expect(op, "act", &gelu_out, F32, 2, M, N, 0);
  if (!vklm_tensor_is_none(&bias)) vklm_tensor_expect(op, "bias", &bias, F32, 1, N, 0, 0);
  return vklm_linear_forward_gelu(cmd, act(op, "out", &out), act(op, "act", &gelu_out),
                                  act(op, "in", &in), w.buf, w.dtype, opt(op, "bias", &bias), M,
                                  K, N);
}

vklm_status vklm_nn_linear_backward_gelu(vklm_cmd *cmd, vklm_tensor dpre, vklm_tensor dw,
                                         vklm_tensor db, vklm_tensor dout, vklm_tensor in,
                                         vklm_tensor w, vklm_tensor pre) {
  const char *op = "nn_linear_backward_gelu";
  uint32_t M = rows_of(&in), K = in.shape[in.ndim - 1], N = w.shape[0];
  vklm_tensor_expect(op, "dpre", &dpre, F32, 2, M, K, 0);
  /* pre: F32, or F16 / BF16 (mixed precision's saved fch) */
  vklm_tensor_expect(op, "pre", &pre, fmt_of(pre.dtype) ? pre.dtype : F32, 2, M, K, 0);
  int pfmt;
  vklm_buffer pb = act16(op, "pre", &pre, &pfmt);
  if (w.dtype != F32 || pfmt) { /* a 16-bit weight copy (F16 / BF16; nn_linear_backward checks
                                 * it) or a 16-bit pre */
    int wfmt = w.dtype == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : w.dtype == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : 0;
    if ((w.dtype != F32 && !wfmt) ||
        !vklm_matmul_epilogue_fuses(vklm_cmd_context(cmd), VKLM_GEMM_F32, wfmt)) {
      /* the plain backward (on cooperative matrices where they run), then gelu' in place */
      vklm_status st = vklm_nn_linear_backward(cmd, dpre, dw, db, dout, in, w);
      if (st != VKLM_OK) return st;
      vklm_buffer d = act(op, "dpre", &dpre);
      return vklm_gelu_backward_fmt(cmd, d, d, pb, pfmt, M * K);
    }
    /* dpre (M,K) = (dout (M,N) @ w (N,K), read in its 16-bit format) * gelu'(pre) in the GEMM's
     * epilogue; then the fp32 weight and bias gradients */
    vklm_tensor_expect(op, "w", &w, w.dtype, 2, N, K, 0);
    VKLM_ASSERT(rows_of(&dout) == M && dout.shape[dout.ndim - 1] == N,
                "%s: dout is not (%u,%u)", op, M, N);
    vklm_gemm g = vklm_gemm_make(M, K, N);
    vklm_status st = vklm_matmul_dgelu_fmt(cmd, act(op, "dpre", &dpre), act(op, "dout", &dout),
                                           VKLM_GEMM_F32, whole(op, "w", &w, w.dtype), wfmt, pb,
                                           pfmt, &g);
    if (st != VKLM_OK || (vklm_tensor_is_none(&dw) && vklm_tensor_is_none(&db))) return st;
    return vklm_nn_linear_backward(cmd, vklm_tensor_none(), dw, db, dout, in, w);
  }
  vklm_tensor_expect(op, "w", &w, F32, 2, N, K, 0);
  VKLM_ASSERT(rows_of(&dout) == M && dout.shape[dout.ndim - 1] == N,
              "%s: dout is not (%u,%u)", op, M, N);
  if (!vklm_tensor_is_none(&dw)) vklm_tensor_expect(op, "dw", &dw, F32, 2, N, K, 0);
  if (!vklm_tensor_is_none(&db)) vklm_tensor_expect(op, "db", &db, F32, 1, N, 0, 0);
  return vklm_matmul_backward_gelu(cmd, act(op, "dpre", &dpre), opt(op, "dw", &dw),
                                   opt(op, "db", &db), act(op, "dout", &dout), act(op, "in", &in),
                                   act(op, "w", &w), act(op, "pre", &pre), M, K, N);
}

vklm_status vklm_nn_norm(vklm_cmd *cmd, int rms, float eps, vklm_tensor out, vklm_tensor mean,
                         vklm_tensor rstd, vklm_tensor in, vklm_tensor w, vklm_tensor b) {
  const char *op = rms ? "nn_rmsnorm" : "nn_layernorm";
  uint32_t N = rows_of(&in), C = in.shape[in.ndim - 1];
  VKLM_ASSERT(rows_of(&out) == N && out.shape[out.ndim - 1] == C, "%s: out is not (%u,%u)", op,
              N, C);
  vklm_tensor_expect(op, "w", &w, F32, 1, C, 0, 0);
  VKLM_ASSERT(vklm_tensor_numel(&rstd) >= N, "%s: rstd holds fewer than %u rows", op, N);
  int ofmt;
  vklm_buffer ob = act16(op, "out", &out, &ofmt);
  if (rms)
    return vklm_rmsnorm_forward_fmt(cmd, ob, ofmt, act(op, "rstd", &rstd), act(op, "in", &in),
                                    act(op, "w", &w), N, C, eps);
  vklm_tensor_expect(op, "b", &b, F32, 1, C, 0, 0);
  VKLM_ASSERT(vklm_tensor_numel(&mean) >= N, "%s: mean holds fewer than %u rows", op, N);
  return vklm_layernorm_forward_fmt(cmd, ob, ofmt, act(op, "mean", &mean), act(op, "rstd", &rstd),
                                    act(op, "in", &in), act(op, "w", &w), act(op, "b", &b), N, C);
}

vklm_status vklm_nn_add_norm(vklm_cmd *cmd, int rms, float eps, vklm_tensor res,
                             vklm_tensor out, vklm_tensor mean, vklm_tensor rstd, vklm_tensor a,
                             vklm_tensor b, vklm_tensor w, vklm_tensor bias) {
  const char *op = rms ? "nn_add_rmsnorm" : "nn_add_layernorm";
  uint32_t N = rows_of(&res), C = res.shape[res.ndim - 1];
  VKLM_ASSERT(rows_of(&out) == N && out.shape[out.ndim - 1] == C, "%s: out is not (%u,%u)", op,
              N, C);
  VKLM_ASSERT(vklm_tensor_numel(&a) == (uint64_t)N * C && vklm_tensor_numel(&b) == (uint64_t)N * C,
              "%s: a and b are not %u x %u elements", op, N, C);
  vklm_tensor_expect(op, "w", &w, F32, 1, C, 0, 0);
  VKLM_ASSERT(vklm_tensor_numel(&rstd) >= N, "%s: rstd holds fewer than %u rows", op, N);
  int ofmt;
  vklm_buffer ob = act16(op, "out", &out, &ofmt);
  if (rms)
    return vklm_add_rmsnorm_forward_fmt(cmd, act(op, "res", &res), ob, ofmt,
                                        act(op, "rstd", &rstd), act(op, "a", &a),
                                        act(op, "b", &b), act(op, "w", &w), N, C, eps);
  vklm_tensor_expect(op, "bias", &bias, F32, 1, C, 0, 0);
  VKLM_ASSERT(vklm_tensor_numel(&mean) >= N, "%s: mean holds fewer than %u rows", op, N);
  return vklm_add_layernorm_forward_fmt(cmd, act(op, "res", &res), ob, ofmt,
                                        act(op, "mean", &mean), act(op, "rstd", &rstd),
                                        act(op, "a", &a), act(op, "b", &b), act(op, "w", &w),
                                        act(op, "bias", &bias), N, C);
}

vklm_status vklm_nn_norm_backward(vklm_cmd *cmd, int rms, vklm_tensor dinp, vklm_tensor dw,
                                  vklm_tensor db, vklm_buffer part, vklm_tensor dout,
                                  vklm_tensor in, vklm_tensor w, vklm_tensor mean,
                                  vklm_tensor rstd, vklm_norm_grads *pending) {
  const char *op = rms ? "nn_rmsnorm_backward" : "nn_layernorm_backward";
  uint32_t N = rows_of(&in), C = in.shape[in.ndim - 1];
  VKLM_ASSERT(rows_of(&dinp) == N && rows_of(&dout) == N, "%s: dinp, dout are not %u rows", op,
              N);
  if (!vklm_tensor_is_none(&dw)) vklm_tensor_expect(op, "dw", &dw, F32, 1, C, 0, 0);
  if (rms)
    return vklm_rmsnorm_backward(cmd, act(op, "dinp", &dinp), opt(op, "dw", &dw), part,
                                 act(op, "dout", &dout), act(op, "in", &in), act(op, "w", &w),
                                 act(op, "rstd", &rstd), N, C, pending);
  return vklm_layernorm_backward(cmd, act(op, "dinp", &dinp), opt(op, "dw", &dw),
                                 opt(op, "db", &db), part, act(op, "dout", &dout),
                                 act(op, "in", &in), act(op, "w", &w), act(op, "mean", &mean),
                                 act(op, "rstd", &rstd), N, C, pending);
}

vklm_status vklm_nn_add(vklm_cmd *cmd, vklm_tensor out, vklm_tensor a, vklm_tensor b) {
  const char *op = "nn_add";
  uint64_t n = vklm_tensor_numel(&out);
  VKLM_ASSERT(vklm_tensor_numel(&a) == n && vklm_tensor_numel(&b) == n && n < (1ull << 32),
              "%s: %llu, %llu and %llu elements", op, (unsigned long long)n,
              (unsigned long long)vklm_tensor_numel(&a), (unsigned long long)vklm_tensor_numel(&b));
  return vklm_residual_forward(cmd, act(op, "out", &out), act(op, "a", &a), act(op, "b", &b),
                               (uint32_t)n);
}

vklm_status vklm_nn_mlp_act(vklm_cmd *cmd, int swiglu, vklm_tensor out, vklm_tensor in) {
  const char *op = swiglu ? "nn_swiglu" : "nn_gelu";
  uint32_t N = rows_of(&out), F = out.shape[out.ndim - 1];
  VKLM_ASSERT(rows_of(&in) == N && in.shape[in.ndim - 1] == (swiglu ? 2 : 1) * F,
              "%s: in is not (%u,%u)", op, N, (swiglu ? 2 : 1) * F);
  int ofmt, ifmt; /* out and in may be 16-bit (mixed precision's saved activation, fch) */
  vklm_buffer ob = act16(op, "out", &out, &ofmt), ib = act16(op, "in", &in, &ifmt);
  if (swiglu) return vklm_swiglu_forward_fmt(cmd, ob, ofmt, ib, ifmt, N, F);
  return vklm_gelu_forward_fmt(cmd, ob, ofmt, ib, ifmt, N * F);
}

vklm_status vklm_nn_mlp_act_backward(vklm_cmd *cmd, int swiglu, vklm_tensor din,
                                     vklm_tensor dout, vklm_tensor in) {
  const char *op = swiglu ? "nn_swiglu_backward" : "nn_gelu_backward";
  uint32_t N = rows_of(&dout), F = dout.shape[dout.ndim - 1];
  VKLM_ASSERT(rows_of(&in) == N && rows_of(&din) == N &&
                  in.shape[in.ndim - 1] == (swiglu ? 2 : 1) * F &&
                  din.shape[din.ndim - 1] == in.shape[in.ndim - 1],
              "%s: din and in are not (%u,%u)", op, N, (swiglu ? 2 : 1) * F);
  int ifmt; /* in may be 16-bit (mixed precision's saved fch) */
  vklm_buffer ib = act16(op, "in", &in, &ifmt);
  if (swiglu)
    return vklm_swiglu_backward_fmt(cmd, act(op, "din", &din), act(op, "dout", &dout), ib, ifmt,
                                    N, F);
  return vklm_gelu_backward_fmt(cmd, act(op, "din", &din), act(op, "dout", &dout), ib, ifmt,
                                N * F);
}

static void check_attn(const char *op, const vklm_tensor *out, const vklm_tensor *qkv, uint32_t B,
                       uint32_t T, uint32_t NH, uint32_t NKV) {
  uint32_t C = out->shape[out->ndim - 1];
  VKLM_ASSERT(NH && NKV && C % NH == 0, "%s: NH=%u NKV=%u C=%u", op, NH, NKV, C);
  uint32_t HS = C / NH;
  /* out: F32, or F16 / BF16 (mixed precision's saved attention output; an even HS) */
  vklm_tensor_expect(op, "out", out, fmt_of(out->dtype) ? out->dtype : F32, 2, B * T, C, 0);
  /* qkv: F32, or F16 / BF16 (mixed precision's saved qkv; an even HS) */
  vklm_tensor_expect(op, "qkv", qkv, fmt_of(qkv->dtype) ? qkv->dtype : F32, 2, B * T,
                     (NH + 2 * NKV) * HS, 0);
}

vklm_status vklm_nn_attention(vklm_cmd *cmd, vklm_tensor out, vklm_tensor lse, vklm_tensor qkv,
                              uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV, int causal) {
  const char *op = "nn_attention";
  check_attn(op, &out, &qkv, B, T, NH, NKV);
  vklm_tensor_expect(op, "lse", &lse, F32, 3, B, NH, T);
  int ofmt, qfmt;
  vklm_buffer ob = act16(op, "out", &out, &ofmt), qb = act16(op, "qkv", &qkv, &qfmt);
  return vklm_attention_forward_fmt(cmd, ob, ofmt, act(op, "lse", &lse), qb, qfmt, B, T, NH, NKV,
                                    out.shape[1] / NH, causal);
}

vklm_status vklm_nn_attention_backward(vklm_cmd *cmd, vklm_tensor dqkv, vklm_buffer scratch,
                                       vklm_tensor dout, vklm_tensor lse, vklm_tensor qkv,
                                       uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV,
                                       int causal) {
  const char *op = "nn_attention_backward";
  vklm_tensor_expect(op, "dout", &dout, F32, 2, B * T, dout.shape[dout.ndim - 1], 0);
  check_attn(op, &dout, &qkv, B, T, NH, NKV); /* dout has the output's shape */
  vklm_tensor_expect(op, "dqkv", &dqkv, F32, 2, B * T, qkv.shape[1], 0);
  int qfmt;
  vklm_buffer qb = act16(op, "qkv", &qkv, &qfmt);
  return vklm_attention_backward_fmt(cmd, act(op, "dqkv", &dqkv), scratch,
                                     act(op, "dout", &dout), act(op, "lse", &lse), qb, qfmt, B, T,
                                     NH, NKV, dout.shape[1] / NH, causal);
}

/* ---- general matrix product ------------------------------------------------------------------ */
/* A 2-D view as a GEMM operand: rows, columns, leading dimension, element offset. */
static void operand(const char *op, const char *what, const vklm_tensor *t, int f16_ok,
                    uint32_t *rows, uint32_t *cols, uint32_t *ld, uint64_t *off) {
  char d[96];
  VKLM_ASSERT(!vklm_tensor_is_none(t) && t->ndim == 2 && t->stride[1] == 1 &&
                  t->stride[0] >= t->shape[1] && t->stride[0] < (1ull << 32) &&
                  (t->dtype == F32 || (f16_ok && (t->dtype == VKLM_DTYPE_F16 ||
                                                  t->dtype == VKLM_DTYPE_BF16))),
              "%s: %s is %s, expected a 2-D f32%s view with unit column stride", op, what,
              vklm_tensor_describe(t, d, sizeof d), f16_ok ? ", f16 or bf16" : "");
  *rows = t->shape[0];
  *cols = t->shape[1];
  *ld = (uint32_t)t->stride[0];
  *off = t->offset;
}

vklm_status vklm_nn_matmul(vklm_cmd *cmd, vklm_tensor c, vklm_tensor a, int trans_a, vklm_tensor b,
                           int trans_b, float alpha, float beta) {
  const char *op = "nn_matmul";
  uint32_t ar, ac, br, bc, cr, cc;
  vklm_gemm g = vklm_gemm_make(0, 0, 0);
  operand(op, "a", &a, 0, &ar, &ac, &g.lda, &g.off_a);
  operand(op, "b", &b, 1, &br, &bc, &g.ldb, &g.off_b);
  operand(op, "c", &c, 0, &cr, &cc, &g.ldc, &g.off_c);
  g.M = trans_a ? ac : ar;
  g.K = trans_a ? ar : ac;
  g.N = trans_b ? br : bc;
  VKLM_ASSERT((trans_b ? bc : br) == g.K && cr == g.M && cc == g.N,
              "%s: op(a) (%u,%u) @ op(b) (%u,%u) into c (%u,%u)", op, g.M, g.K,
              trans_b ? bc : br, g.N, cr, cc);
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.alpha = alpha;
  g.beta = beta;
  int bf = b.dtype == VKLM_DTYPE_F16 ? VKLM_GEMM_F16 : b.dtype == VKLM_DTYPE_BF16 ? VKLM_GEMM_BF16 : 0;
  return vklm_matmul_ex(cmd, c.buf, a.buf, 0, b.buf, bf, &g, NULL);
}

/* ---- embeddings, positions ------------------------------------------------------------------ */
vklm_status vklm_nn_embed(vklm_cmd *cmd, vklm_tensor out, vklm_tensor tokens, vklm_tensor wte,
                          vklm_tensor wte2, vklm_tensor wpe, uint32_t v0, uint32_t V) {
  const char *op = "nn_embed";
  uint32_t B = tokens.ndim == 2 ? tokens.shape[0] : 1, T = tokens.shape[tokens.ndim - 1];
  uint32_t C = wte.shape[1], vs = v0 + wte.shape[0];
  vklm_tensor_expect(op, "wte", &wte, F32, 2, 0, C, 0);
  int two = !vklm_tensor_is_none(&wte2);
  if (two) vklm_tensor_expect(op, "wte2", &wte2, F32, 2, 0, C, 0);
  vklm_tensor_expect(op, "out", &out, F32, 2, B * T, C, 0);
  if (!vklm_tensor_is_none(&wpe)) vklm_tensor_expect(op, "wpe", &wpe, F32, 2, 0, C, 0);
  return vklm_embedding_forward_range2(
      cmd, act(op, "out", &out), ints(op, "tokens", &tokens), act(op, "wte", &wte),
      two ? act(op, "wte2", &wte2) : (vklm_buffer){0}, opt(op, "wpe", &wpe), B, T, C, V, v0, vs,
      two ? vs + wte2.shape[0] : vs);
}

vklm_status vklm_nn_embed_backward(vklm_cmd *cmd, vklm_tensor dwte, vklm_tensor dwpe,
                                   vklm_tensor plan, vklm_tensor dout, vklm_tensor tokens,
                                   uint32_t v0, uint32_t v1, uint32_t V) {
  const char *op = "nn_embed_backward";
  uint32_t B = tokens.ndim == 2 ? tokens.shape[0] : 1, T = tokens.shape[tokens.ndim - 1];
  uint32_t C = dout.shape[1];
  vklm_tensor_expect(op, "dout", &dout, F32, 2, B * T, 0, 0);
  if (!vklm_tensor_is_none(&dwte)) vklm_tensor_expect(op, "dwte", &dwte, F32, 2, v1 - v0, C, 0);
  if (!vklm_tensor_is_none(&dwpe)) vklm_tensor_expect(op, "dwpe", &dwpe, F32, 2, 0, C, 0);
  if (vklm_tensor_is_none(&dwte) && vklm_tensor_is_none(&dwpe)) return VKLM_OK;
  return vklm_embedding_backward_range(cmd, opt(op, "dwte", &dwte), opt(op, "dwpe", &dwpe),
                                       ints(op, "plan", &plan), act(op, "dout", &dout), B, T, C,
                                       V, v0, v1);
}

vklm_status vklm_nn_rope(vklm_cmd *cmd, vklm_tensor qkv, uint32_t B, uint32_t T, uint32_t NH,
                         uint32_t NKV, float theta, int backward) {
  const char *op = "nn_rope";
  uint32_t QKV = qkv.shape[1], HS = QKV / (NH + 2 * NKV);
  /* qkv: F32, or F16 / BF16 forward (mixed precision's saved qkv; the backward's dqkv is F32) */
  int fmt;
  vklm_tensor_expect(op, "qkv", &qkv, fmt_of(qkv.dtype) && !backward ? qkv.dtype : F32, 2, B * T,
                     (NH + 2 * NKV) * HS, 0);
  vklm_buffer b = act16(op, "qkv", &qkv, &fmt);
  return backward ? vklm_rope_backward(cmd, b, B, T, NH, NKV, HS, 0, theta)
                  : vklm_rope_forward_fmt(cmd, b, fmt, B, T, NH, NKV, HS, 0, theta);
}

/* ---- the KV-cache path ------------------------------------------------------------------------ */
static uint32_t rows_n(const char *op, const vklm_tensor *rows) {
  vklm_tensor_expect(op, "rows", rows, VKLM_DTYPE_I32, 2, 0, 2, 0);
  return rows->shape[0];
}

vklm_status vklm_nn_rope_rows(vklm_cmd *cmd, vklm_tensor qkv, vklm_tensor table, vklm_tensor rows,
                              uint32_t NH, uint32_t NKV) {
  const char *op = "nn_rope_rows";
  uint32_t n = rows_n(op, &rows), HS = table.shape[1];
  vklm_tensor_expect(op, "table", &table, F32, 2, 0, HS, 0);
  vklm_tensor_expect(op, "qkv", &qkv, F32, 2, n, (NH + 2 * NKV) * HS, 0);
  return vklm_rope_cached(cmd, act(op, "qkv", &qkv), act(op, "table", &table),
                          ints(op, "rows", &rows), n, NH, NKV, HS, table.shape[0]);
}

vklm_status vklm_nn_pos_add(vklm_cmd *cmd, vklm_tensor x, vklm_tensor wpe, vklm_tensor rows) {
  const char *op = "nn_pos_add";
  uint32_t n = rows_n(op, &rows), C = wpe.shape[1];
  vklm_tensor_expect(op, "wpe", &wpe, F32, 2, 0, C, 0);
  vklm_tensor_expect(op, "x", &x, F32, 2, n, C, 0);
  return vklm_pos_add(cmd, act(op, "x", &x), act(op, "wpe", &wpe), ints(op, "rows", &rows), n, C,
                      wpe.shape[0]);
}

/* A cache tensor (S*maxT, NKV, HS): its buffer, slots S and dtype checked. */
static vklm_buffer cache(const char *op, const char *what, const vklm_tensor *t, uint32_t maxT,
                         uint32_t *S) {
  char d[96];
  VKLM_ASSERT(!vklm_tensor_is_none(t) && t->ndim == 3 && t->offset == 0 &&
                  (t->dtype == F32 || t->dtype == VKLM_DTYPE_F16) && maxT &&
                  t->shape[0] % maxT == 0 && vklm_tensor_is_contiguous(t),
              "%s: %s is %s, expected an f32 or f16 (S*maxT, NKV, HS) cache, maxT %u", op, what,
              vklm_tensor_describe(t, d, sizeof d), maxT);
  *S = t->shape[0] / maxT;
  return t->buf;
}

vklm_status vklm_nn_kv_store(vklm_cmd *cmd, vklm_tensor k, vklm_tensor v, vklm_tensor qkv,
                             vklm_tensor rows, uint32_t NH, uint32_t maxT) {
  const char *op = "nn_kv_store";
  uint32_t n = rows_n(op, &rows), S, S2, NKV = k.shape[1], HS = k.shape[2];
  vklm_buffer kb = cache(op, "k", &k, maxT, &S), vb = cache(op, "v", &v, maxT, &S2);
  VKLM_ASSERT(S == S2 && k.dtype == v.dtype && v.shape[1] == NKV && v.shape[2] == HS,
              "%s: k and v caches differ", op);
  vklm_tensor_expect(op, "qkv", &qkv, F32, 2, n, (NH + 2 * NKV) * HS, 0);
  return vklm_kv_store(cmd, kb, vb, k.dtype, act(op, "qkv", &qkv), ints(op, "rows", &rows), n, NH,
                       NKV, HS, S, maxT);
}

vklm_status vklm_nn_kv_attention(vklm_cmd *cmd, vklm_tensor out, vklm_buffer scratch,
                                 vklm_tensor qkv, vklm_tensor k, vklm_tensor v, vklm_tensor rows,
                                 uint32_t NH, uint32_t maxT, uint32_t splits) {
  const char *op = "nn_kv_attention";
  uint32_t n = rows_n(op, &rows), S, S2, NKV = k.shape[1], HS = k.shape[2];
  vklm_buffer kb = cache(op, "k", &k, maxT, &S), vb = cache(op, "v", &v, maxT, &S2);
  VKLM_ASSERT(S == S2 && k.dtype == v.dtype, "%s: k and v caches differ", op);
  vklm_tensor_expect(op, "qkv", &qkv, F32, 2, n, (NH + 2 * NKV) * HS, 0);
  vklm_tensor_expect(op, "out", &out, F32, 2, n, NH * HS, 0);
  return vklm_attention_decode(cmd, act(op, "out", &out), scratch, act(op, "qkv", &qkv), kb, vb,
                               k.dtype, ints(op, "rows", &rows), n, NH, NKV, HS, qkv.shape[1], S,
                               maxT, splits);
}

/* ---- losses ----------------------------------------------------------------------------------- */
vklm_status vklm_nn_cross_entropy(vklm_cmd *cmd, vklm_tensor losses, vklm_tensor dlogits,
                                  vklm_tensor logits, vklm_tensor targets, vklm_tensor scale,
                                  int32_t ignore_index) {
  const char *op = "nn_cross_entropy";
  uint32_t N = logits.shape[0], V = logits.shape[1];
  vklm_tensor_expect(op, "logits", &logits, F32, 2, N, V, 0);
  vklm_tensor_expect(op, "losses", &losses, F32, 1, N, 0, 0);
  vklm_tensor_expect(op, "targets", &targets, VKLM_DTYPE_I32, 1, N, 0, 0);
  vklm_buffer lb = act(op, "losses", &losses), xb = act(op, "logits", &logits);
  vklm_buffer tb = ints(op, "targets", &targets);
  if (vklm_tensor_is_none(&dlogits))
    return vklm_crossentropy_forward(cmd, lb, xb, tb, N, V, ignore_index);
  vklm_tensor_expect(op, "dlogits", &dlogits, F32, 2, N, V, 0);
  vklm_tensor_expect(op, "scale", &scale, F32, 1, N, 0, 0);
  return vklm_crossentropy_forward_backward_rows(cmd, lb, act(op, "dlogits", &dlogits), xb, tb,
                                                 act(op, "scale", &scale), N, V, ignore_index);
}

vklm_status vklm_nn_segment_dot(vklm_cmd *cmd, vklm_tensor out, vklm_tensor x, vklm_tensor w) {
  const char *op = "nn_segment_dot";
  uint32_t B = x.shape[0], T = x.shape[1];
  vklm_tensor_expect(op, "x", &x, F32, 2, B, T, 0);
  vklm_tensor_expect(op, "w", &w, F32, 2, B, T, 0);
  vklm_tensor_expect(op, "out", &out, F32, 1, B, 0, 0);
  return vklm_segment_dot(cmd, act(op, "out", &out), act(op, "x", &x), act(op, "w", &w), B, T);
}

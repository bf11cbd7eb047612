/* Tensor-level entry points of the layer ops (nn.h): shape and dtype checks, then the
 * buffer-level kernels. */
#include "nn.h"

#include "activation.h"
#include "attention.h"
#include "elementwise.h"
#include "matmul.h"
#include "norm.h"
#include "quant.h"

#define F32 VKLM_DTYPE_F32

/* The buffer of an fp32 activation tensor (element offset 0, contiguous). */
static vklm_buffer act(const char *op, const char *what, const vklm_tensor *t) {
  char d[96];
  VKLM_ASSERT(!vklm_tensor_is_none(t) && t->dtype == F32 && t->offset == 0 &&
                  vklm_tensor_is_contiguous(t),
              "%s: %s is %s, expected a contiguous f32 tensor at offset 0", op, what,
              vklm_tensor_describe(t, d, sizeof d));
  return vklm_tensor_buffer(t, 1);
}

/* An optional fp32 tensor: its buffer, or {0} for none. */
static vklm_buffer opt(const char *op, const char *what, const vklm_tensor *t) {
  return vklm_tensor_is_none(t) ? (vklm_buffer){0} : act(op, what, t);
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
                  (unsigned)w.dtype < VKLM_DTYPE_LINEAR_COUNT,
              "%s: weight %s does not take inputs %s", op, vklm_tensor_describe(&w, d1, sizeof d1),
              vklm_tensor_describe(&in, d2, sizeof d2));
  uint32_t N = w.shape[0];
  VKLM_ASSERT(out.dtype == F32 && out.ndim == 2 && out.shape[0] == M && out.shape[1] == N &&
                  out.stride[1] == 1 && out.stride[0] >= N,
              "%s: out %s, expected f32 (%u,%u) with unit column stride", op,
              vklm_tensor_describe(&out, d1, sizeof d1), M, N);
  if (!vklm_tensor_is_none(&bias))
    vklm_tensor_expect(op, "bias", &bias, F32, 1, N, 0, 0);
  vklm_buffer ob = out.buf;
  return vklm_linear_forward_ex(cmd, ob, (uint32_t)out.stride[0], out.offset, act(op, "in", &in),
                                w.buf, w.dtype, opt(op, "bias", &bias), M, K, N);
}

vklm_status vklm_nn_linear_backward(vklm_cmd *cmd, vklm_tensor dinp, vklm_tensor dw,
                                    vklm_tensor db, vklm_tensor dout, vklm_tensor in,
                                    vklm_tensor w) {
  const char *op = "nn_linear_backward";
  uint32_t M = rows_of(&in), K = in.shape[in.ndim - 1], N = w.shape[0];
  vklm_tensor_expect(op, "w", &w, F32, 2, N, K, 0);
  VKLM_ASSERT(rows_of(&dout) == M && dout.shape[dout.ndim - 1] == N,
              "%s: dout is not (%u,%u)", op, M, N);
  if (!vklm_tensor_is_none(&dinp))
    VKLM_ASSERT(rows_of(&dinp) == M && dinp.shape[dinp.ndim - 1] == K, "%s: dinp is not (%u,%u)",
                op, M, K);
  if (!vklm_tensor_is_none(&dw)) vklm_tensor_expect(op, "dw", &dw, F32, 2, N, K, 0);
  if (!vklm_tensor_is_none(&db)) vklm_tensor_expect(op, "db", &db, F32, 1, N, 0, 0);
  if (vklm_tensor_is_none(&dinp) && vklm_tensor_is_none(&dw) && vklm_tensor_is_none(&db))
    return VKLM_OK;
  return vklm_matmul_backward(cmd, opt(op, "dinp", &dinp), opt(op, "dw", &dw),
                              opt(op, "db", &db), act(op, "dout", &dout), act(op, "in", &in),
                              act(op, "w", &w), M, K, N);
}

vklm_status vklm_nn_norm(vklm_cmd *cmd, int rms, float eps, vklm_tensor out, vklm_tensor mean,
                         vklm_tensor rstd, vklm_tensor in, vklm_tensor w, vklm_tensor b) {
  const char *op = rms ? "nn_rmsnorm" : "nn_layernorm";
  uint32_t N = rows_of(&in), C = in.shape[in.ndim - 1];
  VKLM_ASSERT(rows_of(&out) == N && out.shape[out.ndim - 1] == C, "%s: out is not (%u,%u)", op,
              N, C);
  vklm_tensor_expect(op, "w", &w, F32, 1, C, 0, 0);
  VKLM_ASSERT(vklm_tensor_numel(&rstd) >= N, "%s: rstd holds fewer than %u rows", op, N);
  if (rms)
    return vklm_rmsnorm_forward(cmd, act(op, "out", &out), act(op, "rstd", &rstd),
                                act(op, "in", &in), act(op, "w", &w), N, C, eps);
  vklm_tensor_expect(op, "b", &b, F32, 1, C, 0, 0);
  VKLM_ASSERT(vklm_tensor_numel(&mean) >= N, "%s: mean holds fewer than %u rows", op, N);
  return vklm_layernorm_forward(cmd, act(op, "out", &out), act(op, "mean", &mean),
                                act(op, "rstd", &rstd), act(op, "in", &in), act(op, "w", &w),
                                act(op, "b", &b), N, C);
}

vklm_status vklm_nn_norm_backward(vklm_cmd *cmd, int rms, vklm_tensor dinp, vklm_tensor dw,
                                  vklm_tensor db, vklm_buffer scratch, vklm_tensor dout,
                                  vklm_tensor in, vklm_tensor w, vklm_tensor mean,
                                  vklm_tensor rstd) {
  const char *op = rms ? "nn_rmsnorm_backward" : "nn_layernorm_backward";
  uint32_t N = rows_of(&in), C = in.shape[in.ndim - 1];
  VKLM_ASSERT(rows_of(&dinp) == N && rows_of(&dout) == N, "%s: dinp, dout are not %u rows", op,
              N);
  if (!vklm_tensor_is_none(&dw)) vklm_tensor_expect(op, "dw", &dw, F32, 1, C, 0, 0);
  if (rms)
    return vklm_rmsnorm_backward(cmd, act(op, "dinp", &dinp), opt(op, "dw", &dw), scratch,
                                 act(op, "dout", &dout), act(op, "in", &in), act(op, "w", &w),
                                 act(op, "rstd", &rstd), N, C);
  return vklm_layernorm_backward(cmd, act(op, "dinp", &dinp), opt(op, "dw", &dw),
                                 opt(op, "db", &db), scratch, act(op, "dout", &dout),
                                 act(op, "in", &in), act(op, "w", &w), act(op, "mean", &mean),
                                 act(op, "rstd", &rstd), N, C);
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
  if (swiglu) return vklm_swiglu_forward(cmd, act(op, "out", &out), act(op, "in", &in), N, F);
  return vklm_gelu_forward(cmd, act(op, "out", &out), act(op, "in", &in), N * F);
}

vklm_status vklm_nn_mlp_act_backward(vklm_cmd *cmd, int swiglu, vklm_tensor din,
                                     vklm_tensor dout, vklm_tensor in) {
  const char *op = swiglu ? "nn_swiglu_backward" : "nn_gelu_backward";
  uint32_t N = rows_of(&dout), F = dout.shape[dout.ndim - 1];
  VKLM_ASSERT(rows_of(&in) == N && rows_of(&din) == N &&
                  in.shape[in.ndim - 1] == (swiglu ? 2 : 1) * F &&
                  din.shape[din.ndim - 1] == in.shape[in.ndim - 1],
              "%s: din and in are not (%u,%u)", op, N, (swiglu ? 2 : 1) * F);
  if (swiglu)
    return vklm_swiglu_backward(cmd, act(op, "din", &din), act(op, "dout", &dout),
                                act(op, "in", &in), N, F);
  return vklm_gelu_backward(cmd, act(op, "din", &din), act(op, "dout", &dout), act(op, "in", &in),
                            N * F);
}

static void check_attn(const char *op, const vklm_tensor *out, const vklm_tensor *qkv, uint32_t B,
                       uint32_t T, uint32_t NH, uint32_t NKV) {
  uint32_t C = out->shape[out->ndim - 1];
  VKLM_ASSERT(NH && NKV && C % NH == 0, "%s: NH=%u NKV=%u C=%u", op, NH, NKV, C);
  uint32_t HS = C / NH;
  vklm_tensor_expect(op, "out", out, F32, 2, B * T, C, 0);
  vklm_tensor_expect(op, "qkv", qkv, F32, 2, B * T, (NH + 2 * NKV) * HS, 0);
}

vklm_status vklm_nn_attention(vklm_cmd *cmd, vklm_tensor out, vklm_tensor lse, vklm_tensor qkv,
                              uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV, int causal) {
  const char *op = "nn_attention";
  check_attn(op, &out, &qkv, B, T, NH, NKV);
  vklm_tensor_expect(op, "lse", &lse, F32, 3, B, NH, T);
  return vklm_attention_forward(cmd, act(op, "out", &out), act(op, "lse", &lse),
                                act(op, "qkv", &qkv), B, T, NH, NKV, out.shape[1] / NH, causal);
}

vklm_status vklm_nn_attention_backward(vklm_cmd *cmd, vklm_tensor dqkv, vklm_buffer scratch,
                                       vklm_tensor dout, vklm_tensor out, vklm_tensor lse,
                                       vklm_tensor qkv, uint32_t B, uint32_t T, uint32_t NH,
                                       uint32_t NKV, int causal) {
  const char *op = "nn_attention_backward";
  check_attn(op, &out, &qkv, B, T, NH, NKV);
  vklm_tensor_expect(op, "dqkv", &dqkv, F32, 2, B * T, qkv.shape[1], 0);
  vklm_tensor_expect(op, "dout", &dout, F32, 2, B * T, out.shape[1], 0);
  return vklm_attention_backward(cmd, act(op, "dqkv", &dqkv), scratch, act(op, "dout", &dout),
                                 act(op, "out", &out), act(op, "lse", &lse), act(op, "qkv", &qkv),
                                 B, T, NH, NKV, out.shape[1] / NH, causal);
}

/* Recording of the (B,T) workspace's forward and heads: the graph (graph.c) as a SEQ pass with
 * the model's own activations, the final norm, then the LM head and the cross-entropy in chunks
 * of R rows (so the logits never need more than one (R,V) buffer: a GPT-2 batch's (B*T,V)
 * logits would exceed the largest bindable buffer and waste memory), with the lm head's backward
 * fused into the same chunk loop; the per-sequence sums of log-probs; and the scalar head. Every
 * buffer is fixed at creation, so a recording is replayed with new tokens, targets and scales. */
#include "model_internal.h"
#include "ops/nn.h"
#include "ops/ops.h"

#define TRY(call) VKLM_MODEL_TRY(m, call)

vklm_status vklm_model_record_forward(vklm_model *m, vklm_cmd *cmd) {
  vklm_workspace *w = &m->w;
  /* the final norm into w.lnf, fused with the last residual add */
  vklm_pass p = {.kind = VKLM_PASS_SEQ, .n = m->B * m->T, .B = m->B, .T = m->T,
                 .causal = m->obj == VKLM_OBJ_CAUSAL, .tokens = w->tokens, .x0 = w->encoded,
                 .la = w->la, .nla = w->nla, .tmp = w->tmp, .lnf = w->lnf,
                 .lnf_mean = w->lnf_mean, .lnf_rstd = w->lnf_rstd};
  vklm_tensor x;
  return vklm_graph_forward(m, cmd, &p, &x);
}

uint32_t vklm_model_logits_rows(const vklm_model_config *cfg, uint32_t B, uint32_t T,
                                uint32_t want, uint64_t max_range) {
  uint64_t BT = (uint64_t)B * T, row = (uint64_t)cfg->vocab_size * 4, R = want;
  if (R == 0) {
    uint64_t budget = 256ull << 20;
    if (max_range && max_range < budget) budget = max_range;
    R = budget / row;
    /* element indices of a chunk stay below 2^32 (crossentropy.h, matmul.h) */
    if (R * cfg->vocab_size >= (1ull << 32)) R = ((1ull << 32) - 1) / cfg->vocab_size;
  }
  if (R >= BT) return (uint32_t)BT;
  R = R / 64 * 64; /* R*4 bytes: a multiple of 256, any device's offset alignment */
  return (uint32_t)(R ? R : 64 < BT ? 64 : BT);
}

/* Columns [v0, v1) of an (n,V) matrix: a strided view. */
static vklm_tensor columns(vklm_tensor x, uint32_t v0, uint32_t v1) {
  x.offset += v0;
  x.shape[1] = v1 - v0;
  return x;
}

/* With dlogits (n,V) (of the scaled logits): dln (n,C) (over)written = sum over the vocabulary
 * chunks, in order, of s * dlogits[:, v0:v1] @ head[v0:v1] (added to dln when accumulate), and
 * dhead[v0:v1] += s * dlogits[:, v0:v1]^T @ lnf per chunk (when the head trains); s the logit
 * scale. */
static vklm_status head_backward(vklm_model *m, vklm_cmd *cmd, vklm_tensor dln,
                                 vklm_tensor dlogits, vklm_tensor lnf, int accumulate) {
  uint32_t v0, v1;
  vklm_param_id hid = vklm_model_head_id(m);
  for (uint32_t j = 0; j < m->nvchunks; j++) {
    vklm_tensor w = vklm_model_headchunk(m, j, &v0, &v1);
    vklm_tensor dw = vklm_model_gchunk(m, hid, j, &v0, &v1);
    VKLM_ASSERT(w.dtype == VKLM_DTYPE_F32 || w.dtype == m->prec,
                "model: a %s head cannot be trained through", vklm_dtype_name(w.dtype));
    vklm_tensor dblk = columns(dlogits, v0, v1);
    TRY(vklm_nn_matmul(cmd, dln, dblk, 0, w, 0, m->lscale, j || accumulate ? 1.0f : 0.0f));
    if (!vklm_tensor_is_none(&dw)) TRY(vklm_nn_matmul(cmd, dw, dblk, 1, lnf, 0, m->lscale, 1.0f));
  }
  return VKLM_OK;
}

/* The chunk's logits: the graph's LM head, or with a logit scale s != 1 the same product as a
 * GEMM with alpha = s, vocabulary chunk by chunk. */
static vklm_status head_logits(vklm_model *m, vklm_cmd *cmd, vklm_tensor logits, vklm_tensor h) {
  if (m->lscale == 1.0f) return vklm_graph_logits(m, cmd, logits, h);
  uint32_t n = h.shape[0], V = m->cfg.vocab_size, v0, v1;
  for (uint32_t k = 0; k < m->nvchunks; k++) {
    vklm_tensor w = vklm_model_headchunk(m, k, &v0, &v1);
    if (w.dtype != VKLM_DTYPE_F32 && w.dtype != VKLM_DTYPE_F16 && w.dtype != VKLM_DTYPE_BF16)
      return vklm_model_fail(m, VKLM_ERROR_UNSUPPORTED, "model: a logit scale needs an F32, "
                             "F16 or BF16 LM head, not %s", vklm_dtype_name(w.dtype));
    vklm_tensor blk = vklm_tensor_2d(logits.buf, VKLM_DTYPE_F32, n, v1 - v0);
    blk.stride[0] = V; /* the column block [v0, v1) of (n, V) */
    blk.offset = logits.offset + v0;
    TRY(vklm_nn_matmul(cmd, blk, h, 0, w, 1, m->lscale, 0.0f));
  }
  return VKLM_OK;
}

vklm_status vklm_model_record_lm_head(vklm_model *m, vklm_cmd *cmd, int with_grad,
                                      int accumulate) {
  vklm_workspace *w = &m->w;
  uint32_t BT = m->B * m->T, R = m->lrows;
  vklm_status st;
  VKLM_ASSERT(!with_grad || m->trainable, "model: a gradient through a frozen model");
  for (uint32_t k = 0; k < m->nchunks; k++) {
    uint32_t r0 = k * R, n = BT - r0 < R ? BT - r0 : R;
    /* chunk views: R is a multiple of 64 rows, so every slice keeps the binding alignment */
    vklm_tensor lnf = vklm_tensor_rows(w->lnf, r0, n), logits = vklm_tensor_rows(w->logits, 0, n);
    vklm_tensor losses = vklm_tensor_rows(w->losses, r0, n);
    vklm_tensor targets = vklm_tensor_rows(w->targets, r0, n);
    lnf.buf = vklm_tensor_buffer(&lnf, 1), lnf.offset = 0;
    losses.buf = vklm_tensor_buffer(&losses, 1), losses.offset = 0;
    targets.buf = vklm_tensor_buffer(&targets, 1), targets.offset = 0;
    if ((st = head_logits(m, cmd, logits, lnf)) != VKLM_OK) return st;
    if (!with_grad) {
      TRY(vklm_nn_cross_entropy(cmd, losses, vklm_tensor_none(), logits, targets,
                                vklm_tensor_none(), VKLM_IGNORE_INDEX));
      continue;
    }
    vklm_tensor scale = vklm_tensor_rows(w->rscale, r0, n), dln = vklm_tensor_rows(w->dln, r0, n);
    scale.buf = vklm_tensor_buffer(&scale, 1), scale.offset = 0;
    dln.buf = vklm_tensor_buffer(&dln, 1), dln.offset = 0;
    TRY(vklm_nn_cross_entropy(cmd, losses, logits, logits, targets, scale, VKLM_IGNORE_INDEX));
    if ((st = head_backward(m, cmd, dln, logits, lnf, accumulate)) != VKLM_OK) return st;
  }
  if (!with_grad)
    TRY(vklm_nn_segment_dot(cmd, w->seq, vklm_tensor_view_2d(w->losses, m->B, m->T), w->rmask));
  return VKLM_OK;
}

vklm_status vklm_model_record_values(vklm_model *m, vklm_cmd *cmd) {
  return vklm_graph_values(m, cmd, m->w.values, m->w.lnf);
}

vklm_status vklm_model_record_values_backward(vklm_model *m, vklm_cmd *cmd) {
  TRY(vklm_nn_linear_backward(cmd, m->w.dln, vklm_model_gw(m, VKLM_P_SCORE_W, 0),
                              vklm_model_gw(m, VKLM_P_SCORE_B, 0), m->w.dvalues, m->w.lnf,
                              vklm_model_w(m, VKLM_P_SCORE_W, 0)));
  return VKLM_OK;
}

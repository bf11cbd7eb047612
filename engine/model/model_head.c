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

static vklm_tensor f32_2d(vklm_buffer b, uint32_t d0, uint32_t d1) {
  return vklm_tensor_2d(b, VKLM_DTYPE_F32, d0, d1);
}

vklm_status vklm_model_record_forward(vklm_model *m, vklm_cmd *cmd) {
  vklm_workspace *w = &m->w;
  uint32_t BT = m->B * m->T, C = m->cfg.n_embd;
  vklm_pass p = {.kind = VKLM_PASS_SEQ, .n = BT, .B = m->B, .T = m->T,
                 .causal = m->obj == VKLM_OBJ_CAUSAL, .tokens = w->tokens, .x0 = w->encoded,
                 .la = w->la, .nla = w->nla, .tmp = w->tmp};
  vklm_tensor x;
  vklm_status st = vklm_graph_forward(m, cmd, &p, &x);
  if (st != VKLM_OK) return st;
  return vklm_graph_final_norm(m, cmd, f32_2d(w->lnf, BT, C),
                               vklm_tensor_1d(w->lnf_mean, VKLM_DTYPE_F32, BT),
                               vklm_tensor_1d(w->lnf_rstd, VKLM_DTYPE_F32, BT), x);
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

/* With dlogits (n,V): dln (n,C) (over)written = sum over the vocabulary chunks, in order, of
 * dlogits[:, v0:v1] @ head[v0:v1] (added to dln when accumulate), and dhead[v0:v1] +=
 * dlogits[:, v0:v1]^T @ lnf per chunk (when the head trains). */
static vklm_status head_backward(vklm_model *m, vklm_cmd *cmd, vklm_buffer dln,
                                 vklm_buffer dlogits, vklm_buffer lnf, uint32_t n,
                                 int accumulate) {
  uint32_t C = m->cfg.n_embd, V = m->cfg.vocab_size, v0, v1;
  vklm_param_id hid = vklm_model_head_id(m);
  for (uint32_t j = 0; j < m->nvchunks; j++) {
    vklm_tensor w = vklm_model_wchunk(m, hid, j, &v0, &v1);
    vklm_tensor dw = vklm_model_gchunk(m, hid, j, &v0, &v1);
    VKLM_ASSERT(w.dtype == VKLM_DTYPE_F32, "model: a %s head cannot be trained through",
                vklm_dtype_name(w.dtype));
    vklm_gemm gx = vklm_gemm_make(n, C, v1 - v0); /* dln (n,C) (+)= dlogits[:, v0:v1] @ w */
    gx.lda = V;
    gx.off_a = v0;
    gx.beta = j || accumulate ? 1.0f : 0.0f;
    TRY(vklm_matmul(cmd, dln, dlogits, w.buf, &gx));
    if (vklm_tensor_is_none(&dw)) continue;
    vklm_gemm gw = vklm_gemm_make(v1 - v0, C, n); /* dw (v1-v0,C) += dlogits[:, v0:v1]^T @ lnf */
    gw.trans_a = 1;
    gw.lda = V;
    gw.off_a = v0;
    gw.beta = 1.0f;
    TRY(vklm_matmul(cmd, dw.buf, dlogits, lnf, &gw));
  }
  return VKLM_OK;
}

vklm_status vklm_model_record_lm_head(vklm_model *m, vklm_cmd *cmd, int with_grad,
                                      int accumulate) {
  vklm_workspace *w = &m->w;
  uint32_t BT = m->B * m->T, C = m->cfg.n_embd, V = m->cfg.vocab_size, R = m->lrows;
  vklm_status st;
  VKLM_ASSERT(!with_grad || m->trainable, "model: a gradient through a frozen model");
  for (uint32_t k = 0; k < m->nchunks; k++) {
    uint32_t r0 = k * R, n = BT - r0 < R ? BT - r0 : R;
    vklm_buffer lnf = vklm_buffer_slice(w->lnf, (uint64_t)r0 * C * 4, (uint64_t)n * C * 4);
    vklm_buffer losses = vklm_buffer_slice(w->losses, (uint64_t)r0 * 4, (uint64_t)n * 4);
    vklm_buffer targets = vklm_buffer_slice(w->targets, (uint64_t)r0 * 4, (uint64_t)n * 4);
    vklm_buffer logits = vklm_buffer_slice(w->logits, 0, (uint64_t)n * V * 4);
    if ((st = vklm_graph_logits(m, cmd, f32_2d(logits, n, V), f32_2d(lnf, n, C))) != VKLM_OK)
      return st;
    if (!with_grad) {
      TRY(vklm_crossentropy_forward(cmd, losses, logits, targets, n, V, VKLM_IGNORE_INDEX));
      continue;
    }
    vklm_buffer scale = vklm_buffer_slice(w->rscale, (uint64_t)r0 * 4, (uint64_t)n * 4);
    vklm_buffer dln = vklm_buffer_slice(w->dln, (uint64_t)r0 * C * 4, (uint64_t)n * C * 4);
    TRY(vklm_crossentropy_forward_backward_rows(cmd, losses, logits, logits, targets, scale, n, V,
                                                VKLM_IGNORE_INDEX));
    if ((st = head_backward(m, cmd, dln, logits, lnf, n, accumulate)) != VKLM_OK) return st;
  }
  TRY(vklm_crossentropy_mean(cmd, w->loss, w->losses, w->targets, BT, VKLM_IGNORE_INDEX));
  if (!with_grad) TRY(vklm_segment_dot(cmd, w->seq, w->losses, w->rmask, m->B, m->T));
  return VKLM_OK;
}

vklm_status vklm_model_record_values(vklm_model *m, vklm_cmd *cmd) {
  uint32_t BT = m->B * m->T;
  return vklm_graph_values(m, cmd, vklm_tensor_1d(m->w.values, VKLM_DTYPE_F32, BT),
                           f32_2d(m->w.lnf, BT, m->cfg.n_embd));
}

vklm_status vklm_model_record_values_backward(vklm_model *m, vklm_cmd *cmd) {
  uint32_t BT = m->B * m->T, C = m->cfg.n_embd;
  TRY(vklm_nn_linear_backward(cmd, f32_2d(m->w.dln, BT, C), vklm_model_gw(m, VKLM_P_SCORE_W, 0),
                              vklm_model_gw(m, VKLM_P_SCORE_B, 0), f32_2d(m->w.dvalues, BT, 1),
                              f32_2d(m->w.lnf, BT, C), vklm_model_w(m, VKLM_P_SCORE_W, 0)));
  return VKLM_OK;
}

/* Recording of the forward pass and the loss: embedding, L pre-norm blocks (norm, qkv, RoPE,
 * attention, projection, residual; norm, MLP, residual), final norm; then the lm head and the
 * cross-entropy in chunks of R rows (so the logits never need more than one (R,V) buffer: a
 * GPT-2 batch's (B*T,V) logits would exceed the largest bindable buffer and waste memory), with
 * the lm head's backward fused into the same chunk loop. Every buffer is fixed at creation, so
 * the recording is replayed with new tokens. */
#include "model_internal.h"
#include "ops/ops.h"

#define TRY(call)                                                                                  \
  do {                                                                                             \
    vklm_status st_ = (call);                                                                      \
    if (st_ != VKLM_OK)                                                                            \
      return vklm_model_fail(m, st_, "model: recording %s failed: %s", #call,                     \
                             vklm_context_error(m->ctx));                                          \
  } while (0)

/* out (BT,C) = norm(inp) with the arch's norm; saves mean (LayerNorm) and rstd. */
static vklm_status norm_fwd(vklm_model *m, vklm_cmd *cmd, vklm_buffer out, vklm_buffer mean,
                            vklm_buffer rstd, vklm_buffer inp, vklm_buffer w, vklm_buffer b) {
  uint32_t BT = m->B * m->T, C = m->cfg.n_embd;
  if (m->cfg.arch == VKLM_ARCH_GPT2)
    TRY(vklm_layernorm_forward(cmd, out, mean, rstd, inp, w, b, BT, C));
  else
    TRY(vklm_rmsnorm_forward(cmd, out, rstd, inp, w, BT, C, m->cfg.norm_eps));
  return VKLM_OK;
}

vklm_status vklm_model_record_forward(vklm_model *m, vklm_cmd *cmd) {
  const vklm_model_config *c = &m->cfg;
  uint32_t B = m->B, T = m->T, BT = B * T, C = c->n_embd, V = c->vocab_size;
  uint32_t NH = c->n_head, NKV = c->n_kv_head, HS = VKLM_MP_HS(c), QKV = VKLM_MP_QKV(c);
  uint32_t F = c->ffn_hidden, FC = VKLM_MP_FC(c);
  int gpt2 = c->arch == VKLM_ARCH_GPT2, causal = m->obj == VKLM_OBJ_CAUSAL;
  vklm_status st;

  TRY(vklm_embedding_forward(cmd, m->encoded, m->tokens, vklm_model_pbuf(m, VKLM_P_WTE, 0),
                             vklm_model_pbuf(m, VKLM_P_WPE, 0), B, T, C, V));
  for (uint32_t l = 0; l < c->n_layer; l++) {
    vklm_layer_acts *la = &m->la[l];
    vklm_buffer x = l == 0 ? m->encoded : m->la[l - 1].res3;
#define P(id) vklm_model_pbuf(m, VKLM_P_##id, l)
    if ((st = norm_fwd(m, cmd, la->ln1, la->ln1_mean, la->ln1_rstd, x, P(LN1_W), P(LN1_B))))
      return st;
    TRY(vklm_matmul_forward(cmd, la->qkv, la->ln1, P(QKV_W), P(QKV_B), BT, C, QKV));
    if (!gpt2) TRY(vklm_rope_forward(cmd, la->qkv, B, T, NH, NKV, HS, 0, c->rope_theta));
    TRY(vklm_attention_forward(cmd, la->atty, la->lse, la->qkv, B, T, NH, NKV, HS, causal));
    TRY(vklm_matmul_forward(cmd, m->tmp, la->atty, P(ATTO_W), P(ATTO_B), BT, C, C));
    TRY(vklm_residual_forward(cmd, la->res2, x, m->tmp, BT * C));
    if ((st = norm_fwd(m, cmd, la->ln2, la->ln2_mean, la->ln2_rstd, la->res2, P(LN2_W),
                       P(LN2_B))))
      return st;
    TRY(vklm_matmul_forward(cmd, la->fch, la->ln2, P(FC_W), P(FC_B), BT, C, FC));
    if (gpt2)
      TRY(vklm_gelu_forward(cmd, la->act, la->fch, BT * F));
    else
      TRY(vklm_swiglu_forward(cmd, la->act, la->fch, BT, F));
    TRY(vklm_matmul_forward(cmd, m->tmp, la->act, P(PROJ_W), P(PROJ_B), BT, F, C));
    TRY(vklm_residual_forward(cmd, la->res3, la->res2, m->tmp, BT * C));
#undef P
  }
  if ((st = norm_fwd(m, cmd, m->lnf, m->lnf_mean, m->lnf_rstd, m->la[c->n_layer - 1].res3,
                     vklm_model_pbuf(m, VKLM_P_LNF_W, 0), vklm_model_pbuf(m, VKLM_P_LNF_B, 0))))
    return st;
  return VKLM_OK;
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

vklm_status vklm_model_record_head(vklm_model *m, vklm_cmd *cmd, int with_grad, float grad_scale) {
  const vklm_model_config *c = &m->cfg;
  uint32_t BT = m->B * m->T, C = c->n_embd, V = c->vocab_size, R = m->lrows;
  vklm_param_id hid = c->tie_embeddings ? VKLM_P_WTE : VKLM_P_LM_HEAD;
  vklm_buffer head = vklm_model_pbuf(m, hid, 0), dhead = vklm_model_gbuf(m, hid, 0);
  for (uint32_t k = 0; k < m->nchunks; k++) {
    uint32_t r0 = k * R, n = BT - r0 < R ? BT - r0 : R;
    vklm_buffer lnf = vklm_buffer_slice(m->lnf, (uint64_t)r0 * C * 4, (uint64_t)n * C * 4);
    vklm_buffer dln = vklm_buffer_slice(m->dln, (uint64_t)r0 * C * 4, (uint64_t)n * C * 4);
    vklm_buffer losses = vklm_buffer_slice(m->losses, (uint64_t)r0 * 4, (uint64_t)n * 4);
    vklm_buffer targets = vklm_buffer_slice(m->targets, (uint64_t)r0 * 4, (uint64_t)n * 4);
    vklm_buffer logits = vklm_buffer_slice(m->logits, 0, (uint64_t)n * V * 4);
    TRY(vklm_matmul_forward(cmd, logits, lnf, head, (vklm_buffer){0}, n, C, V));
    if (!with_grad) {
      TRY(vklm_crossentropy_forward(cmd, losses, logits, targets, n, V, VKLM_IGNORE_INDEX));
      continue;
    }
    TRY(vklm_crossentropy_forward_backward(cmd, losses, logits, m->dloss, logits, targets, n, V,
                                           VKLM_IGNORE_INDEX, grad_scale));
    /* the op scaled by grad_scale / (this chunk's count); make it the batch's count */
    if (m->nchunks > 1)
      TRY(vklm_grad_clip(cmd, logits, n * V,
                         vklm_buffer_slice(m->chunk_scale, (uint64_t)k * m->scale_stride, 8)));
    TRY(vklm_matmul_backward(cmd, dln, dhead, (vklm_buffer){0}, logits, lnf, head, n, C, V));
  }
  TRY(vklm_crossentropy_mean(cmd, m->loss, m->losses, m->targets, BT, VKLM_IGNORE_INDEX));
  return VKLM_OK;
}

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

  for (uint32_t k = 0; k < m->nvchunks; k++) { /* each position is written by its token's chunk */
    uint32_t v0, v1;
    vklm_buffer wte = vklm_model_pchunk(m, VKLM_P_WTE, k, &v0, &v1);
    TRY(vklm_embedding_forward_range(cmd, m->encoded, m->tokens, wte,
                                     vklm_model_pbuf(m, VKLM_P_WPE, 0), B, T, C, V, v0, v1));
  }
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

/* logits (n,V) = lnf (n,C) @ head^T, the head (V,C) in vocabulary chunks: chunk [v0,v1) writes
 * the column block logits[:, v0:v1] (a GEMM with ldc = V). */
static vklm_status head_forward(vklm_model *m, vklm_cmd *cmd, vklm_buffer logits, vklm_buffer lnf,
                                vklm_param_id hid, uint32_t n) {
  uint32_t C = m->cfg.n_embd, V = m->cfg.vocab_size, v0, v1;
  if (m->nvchunks == 1) {
    TRY(vklm_matmul_forward(cmd, logits, lnf, vklm_model_pchunk(m, hid, 0, &v0, &v1),
                            (vklm_buffer){0}, n, C, V));
    return VKLM_OK;
  }
  for (uint32_t j = 0; j < m->nvchunks; j++) {
    vklm_buffer w = vklm_model_pchunk(m, hid, j, &v0, &v1);
    vklm_gemm g = vklm_gemm_make(n, v1 - v0, C);
    g.trans_b = 1; /* w (v1-v0, C) */
    g.ldc = V;
    g.off_c = v0;
    TRY(vklm_matmul(cmd, logits, lnf, w, &g));
  }
  return VKLM_OK;
}

/* With dlogits (n,V): dhead[v0:v1] += dlogits[:, v0:v1]^T @ lnf per chunk, and dln (n,C) (over-
 * written) = sum over the chunks, in order, of dlogits[:, v0:v1] @ head[v0:v1]. */
static vklm_status head_backward(vklm_model *m, vklm_cmd *cmd, vklm_buffer dln,
                                 vklm_buffer dlogits, vklm_buffer lnf, vklm_param_id hid,
                                 uint32_t n) {
  uint32_t C = m->cfg.n_embd, V = m->cfg.vocab_size, v0, v1;
  if (m->nvchunks == 1) {
    TRY(vklm_matmul_backward(cmd, dln, vklm_model_gchunk(m, hid, 0, &v0, &v1), (vklm_buffer){0},
                             dlogits, lnf, vklm_model_pchunk(m, hid, 0, &v0, &v1), n, C, V));
    return VKLM_OK;
  }
  for (uint32_t j = 0; j < m->nvchunks; j++) {
    vklm_buffer w = vklm_model_pchunk(m, hid, j, &v0, &v1);
    vklm_buffer dw = vklm_model_gchunk(m, hid, j, &v0, &v1);
    vklm_gemm gx = vklm_gemm_make(n, C, v1 - v0); /* dln (n,C) (+)= dlogits[:, v0:v1] @ w */
    gx.lda = V;
    gx.off_a = v0;
    gx.beta = j ? 1.0f : 0.0f;
    TRY(vklm_matmul(cmd, dln, dlogits, w, &gx));
    vklm_gemm gw = vklm_gemm_make(v1 - v0, C, n); /* dw (v1-v0,C) += dlogits[:, v0:v1]^T @ lnf */
    gw.trans_a = 1;
    gw.lda = V;
    gw.off_a = v0;
    gw.beta = 1.0f;
    TRY(vklm_matmul(cmd, dw, dlogits, lnf, &gw));
  }
  return VKLM_OK;
}

vklm_status vklm_model_record_head(vklm_model *m, vklm_cmd *cmd, int with_grad, float grad_scale) {
  const vklm_model_config *c = &m->cfg;
  uint32_t BT = m->B * m->T, C = c->n_embd, V = c->vocab_size, R = m->lrows;
  vklm_status st;
  vklm_param_id hid = c->tie_embeddings ? VKLM_P_WTE : VKLM_P_LM_HEAD;
  for (uint32_t k = 0; k < m->nchunks; k++) {
    uint32_t r0 = k * R, n = BT - r0 < R ? BT - r0 : R;
    vklm_buffer lnf = vklm_buffer_slice(m->lnf, (uint64_t)r0 * C * 4, (uint64_t)n * C * 4);
    vklm_buffer dln = vklm_buffer_slice(m->dln, (uint64_t)r0 * C * 4, (uint64_t)n * C * 4);
    vklm_buffer losses = vklm_buffer_slice(m->losses, (uint64_t)r0 * 4, (uint64_t)n * 4);
    vklm_buffer targets = vklm_buffer_slice(m->targets, (uint64_t)r0 * 4, (uint64_t)n * 4);
    vklm_buffer logits = vklm_buffer_slice(m->logits, 0, (uint64_t)n * V * 4);
    if ((st = head_forward(m, cmd, logits, lnf, hid, n)) != VKLM_OK) return st;
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
    if ((st = head_backward(m, cmd, dln, logits, lnf, hid, n)) != VKLM_OK) return st;
  }
  TRY(vklm_crossentropy_mean(cmd, m->loss, m->losses, m->targets, BT, VKLM_IGNORE_INDEX));
  return VKLM_OK;
}

/* Recording of the backward pass, from the final norm's output gradient (dln, written chunk by
 * chunk by the lm head's backward, model_forward.c) down to the embeddings. One residual-stream
 * gradient buffer (dres) accumulates through the whole stack: the norms' backward adds into it
 * (norm.h), the projections read it.
 * Parameter gradients accumulate (ops.h), so micro-batches add up until the update zeroes them. */
#include "model_internal.h"
#include "ops/ops.h"

#define TRY(call)                                                                                  \
  do {                                                                                             \
    vklm_status st_ = (call);                                                                      \
    if (st_ != VKLM_OK)                                                                            \
      return vklm_model_fail(m, st_, "model: recording %s failed: %s", #call,                     \
                             vklm_context_error(m->ctx));                                          \
  } while (0)

/* dinp (BT,C) += norm backward; parameter gradients accumulate. */
static vklm_status norm_bwd(vklm_model *m, vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dw,
                            vklm_buffer db, vklm_buffer dout, vklm_buffer inp, vklm_buffer w,
                            vklm_buffer mean, vklm_buffer rstd) {
  uint32_t BT = m->B * m->T, C = m->cfg.n_embd;
  if (m->cfg.arch == VKLM_ARCH_GPT2)
    TRY(vklm_layernorm_backward(cmd, dinp, dw, db, m->scratch, dout, inp, w, mean, rstd, BT, C));
  else
    TRY(vklm_rmsnorm_backward(cmd, dinp, dw, m->scratch, dout, inp, w, rstd, BT, C));
  return VKLM_OK;
}

vklm_status vklm_model_record_backward(vklm_model *m, vklm_cmd *cmd) {
  const vklm_model_config *c = &m->cfg;
  uint32_t B = m->B, T = m->T, BT = B * T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
  uint32_t NH = c->n_head, NKV = c->n_kv_head, HS = VKLM_MP_HS(c), QKV = VKLM_MP_QKV(c);
  uint32_t F = c->ffn_hidden, FC = VKLM_MP_FC(c);
  int gpt2 = c->arch == VKLM_ARCH_GPT2, causal = m->obj == VKLM_OBJ_CAUSAL;
  vklm_status st;

  TRY(vklm_cmd_fill_words(cmd, m->dres, 0));
  if ((st = norm_bwd(m, cmd, m->dres, vklm_model_gbuf(m, VKLM_P_LNF_W, 0),
                     vklm_model_gbuf(m, VKLM_P_LNF_B, 0), m->dln, m->la[L - 1].res3,
                     vklm_model_pbuf(m, VKLM_P_LNF_W, 0), m->lnf_mean, m->lnf_rstd)))
    return st;
  for (uint32_t l = L; l-- > 0;) {
    vklm_layer_acts *la = &m->la[l];
    vklm_buffer x = l == 0 ? m->encoded : m->la[l - 1].res3;
#define P(id) vklm_model_pbuf(m, VKLM_P_##id, l)
#define G(id) vklm_model_gbuf(m, VKLM_P_##id, l)
    /* MLP: res3 = res2 + proj(act(fc(ln2(res2)))) */
    TRY(vklm_matmul_backward(cmd, m->dact, G(PROJ_W), G(PROJ_B), m->dres, la->act, P(PROJ_W), BT,
                             F, C));
    if (gpt2)
      TRY(vklm_gelu_backward(cmd, m->dfch, m->dact, la->fch, BT * F));
    else
      TRY(vklm_swiglu_backward(cmd, m->dfch, m->dact, la->fch, BT, F));
    TRY(vklm_matmul_backward(cmd, m->dln, G(FC_W), G(FC_B), m->dfch, la->ln2, P(FC_W), BT, C, FC));
    if ((st = norm_bwd(m, cmd, m->dres, G(LN2_W), G(LN2_B), m->dln, la->res2, P(LN2_W),
                       la->ln2_mean, la->ln2_rstd)))
      return st;
    /* attention: res2 = x + proj(attn(rope(qkv(ln1(x))))) */
    TRY(vklm_matmul_backward(cmd, m->datty, G(ATTO_W), G(ATTO_B), m->dres, la->atty, P(ATTO_W),
                             BT, C, C));
    TRY(vklm_attention_backward(cmd, m->dqkv, m->scratch, m->datty, la->atty, la->lse, la->qkv, B,
                                T, NH, NKV, HS, causal));
    if (!gpt2) TRY(vklm_rope_backward(cmd, m->dqkv, B, T, NH, NKV, HS, 0, c->rope_theta));
    TRY(vklm_matmul_backward(cmd, m->dln, G(QKV_W), G(QKV_B), m->dqkv, la->ln1, P(QKV_W), BT, C,
                             QKV));
    if ((st = norm_bwd(m, cmd, m->dres, G(LN1_W), G(LN1_B), m->dln, x, P(LN1_W), la->ln1_mean,
                       la->ln1_rstd)))
      return st;
#undef P
#undef G
  }
  for (uint32_t k = 0; k < m->nvchunks; k++) { /* each chunk: the plan's tokens in its range */
    uint32_t v0, v1;
    vklm_buffer dwte = vklm_model_gchunk(m, VKLM_P_WTE, k, &v0, &v1);
    vklm_buffer dwpe = k == 0 ? vklm_model_gbuf(m, VKLM_P_WPE, 0) : (vklm_buffer){0};
    TRY(vklm_embedding_backward_range(cmd, dwte, dwpe, m->plan, m->dres, B, T, C, V, v0, v1));
  }
  return VKLM_OK;
}

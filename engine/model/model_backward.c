/* Recording of the backward pass, from the final norm's output gradient (w.dln, written by the
 * heads' backward, model_head.c) down to the lowest layer that trains (and the embeddings when
 * they train). One residual-stream gradient buffer (dres) accumulates through the whole stack:
 * the norms' backward adds into it (norm.h), the projections read it. The norms' parameter
 * gradients are added at the end of each part, by one reduce over the norms it covered.
 * Parameter gradients accumulate (ops.h), so micro-batches add up until the update zeroes them.
 * A frozen tensor gets no gradient (its gradient tensor is none: the op skips that part). */
#include "model_internal.h"
#include "ops/nn.h"
#include "ops/ops.h"

#define TRY(call) VKLM_MODEL_TRY(m, call)

/* dinp (BT,C) += the backward of norm k (model_internal.h's numbering); its parameter gradients'
 * partials into w.npart[k], added by the reduce at the end of the part (none when frozen). */
static vklm_status norm_bwd(vklm_model *m, vklm_cmd *cmd, uint32_t k, vklm_tensor dinp,
                            vklm_param_id w, vklm_param_id b, uint32_t l, vklm_tensor dout,
                            vklm_tensor in, vklm_tensor mean, vklm_tensor rstd) {
  int rms = m->cfg.arch != VKLM_ARCH_GPT2;
  TRY(vklm_nn_norm_backward(cmd, rms, dinp, vklm_model_gw(m, w, l),
                            rms ? vklm_tensor_none() : vklm_model_gw(m, b, l), m->w.npart[k],
                            dout, in, vklm_model_w(m, w, l), mean, rstd, &m->w.npend[k]));
  return VKLM_OK;
}

/* The parameter gradients of norms [k0, k1) from their partials: one dispatch. */
static vklm_status norm_reduce(vklm_model *m, vklm_cmd *cmd, uint32_t k0, uint32_t k1) {
  TRY(vklm_norm_grads_reduce(cmd, m->w.ntable, k0, m->w.npend + k0, k1 - k0));
  return VKLM_OK;
}

vklm_status vklm_model_record_backward(vklm_model *m, vklm_cmd *cmd) {
  uint32_t lowest = m->lowest_layer < 0 ? 0 : (uint32_t)m->lowest_layer;
  return vklm_model_record_backward_part(m, cmd, 1, m->cfg.n_layer, lowest,
                                         m->lowest_layer < 0);
}

vklm_status vklm_model_record_backward_part(vklm_model *m, vklm_cmd *cmd, int top, uint32_t hi,
                                            uint32_t lo, int embed) {
  const vklm_model_config *c = &m->cfg;
  vklm_workspace *w = &m->w;
  uint32_t B = m->B, T = m->T, V = c->vocab_size, L = c->n_layer;
  uint32_t NH = c->n_head, NKV = c->n_kv_head;
  int swiglu = c->arch != VKLM_ARCH_GPT2, causal = m->obj == VKLM_OBJ_CAUSAL;
  vklm_status st;
  VKLM_ASSERT(m->trainable && w->nla == L, "model: a backward through a frozen model");
  vklm_tensor dres = w->dres, dln = w->dln, datty = w->datty, dqkv = w->dqkv;
  vklm_tensor dact = w->dact, dfch = w->dfch;
  vklm_tensor lnf_in = L ? w->la[L - 1].res3 : w->encoded;

  VKLM_ASSERT(lo <= hi && hi <= L, "model: backward of layers [%u, %u) of %u", lo, hi, L);
  if (top) {
    TRY(vklm_cmd_fill_words(cmd, w->dres.buf, 0));
    if ((st = norm_bwd(m, cmd, 2 * L, dres, VKLM_P_LNF_W, VKLM_P_LNF_B, 0, dln, lnf_in,
                       w->lnf_mean, w->lnf_rstd)))
      return st;
  }
  for (uint32_t l = hi; l-- > lo;) {
    vklm_layer_acts *a = &w->la[l];
    vklm_tensor x = l == 0 ? w->encoded : w->la[l - 1].res3;
#define P(id) vklm_model_w(m, VKLM_P_##id, l)
#define G(id) vklm_model_gw(m, VKLM_P_##id, l)
    /* MLP: res3 = res2 + proj(act(fc(ln2(res2)))) */
    if (m->recompute) TRY(vklm_nn_mlp_act(cmd, swiglu, a->act, a->fch));
    if (swiglu) {
      TRY(vklm_nn_linear_backward(cmd, dact, G(PROJ_W), G(PROJ_B), dres, a->act, P(PROJ_W)));
      TRY(vklm_nn_mlp_act_backward(cmd, swiglu, dfch, dact, a->fch));
    } else { /* dfch = (dres @ Wproj) * gelu'(fch): one GEMM, dact never written */
      TRY(vklm_nn_linear_backward_gelu(cmd, dfch, G(PROJ_W), G(PROJ_B), dres, a->act, P(PROJ_W),
                                       a->fch));
    }
    if (m->recompute && (st = vklm_graph_norm(m, cmd, a->ln2, a->ln2_mean, a->ln2_rstd,
                                              a->res2, VKLM_P_LN2_W, VKLM_P_LN2_B, l)))
      return st;
    TRY(vklm_nn_linear_backward(cmd, dln, G(FC_W), G(FC_B), dfch, a->ln2, P(FC_W)));
    if ((st = norm_bwd(m, cmd, 2 * l + 1, dres, VKLM_P_LN2_W, VKLM_P_LN2_B, l, dln, a->res2,
                       a->ln2_mean, a->ln2_rstd)))
      return st;
    /* attention: res2 = x + proj(attn(rope(qkv(ln1(x))))) */
    TRY(vklm_nn_linear_backward(cmd, datty, G(ATTO_W), G(ATTO_B), dres, a->atty, P(ATTO_W)));
    TRY(vklm_nn_attention_backward(cmd, dqkv, w->scratch, datty, a->lse, a->qkv, B, T, NH, NKV,
                                   causal));
    if (swiglu) TRY(vklm_nn_rope(cmd, dqkv, B, T, NH, NKV, c->rope_theta, 1));
    if (m->recompute && (st = vklm_graph_norm(m, cmd, a->ln1, a->ln1_mean, a->ln1_rstd, x,
                                              VKLM_P_LN1_W, VKLM_P_LN1_B, l)))
      return st;
    TRY(vklm_nn_linear_backward(cmd, dln, G(QKV_W), G(QKV_B), dqkv, a->ln1, P(QKV_W)));
    if ((st = norm_bwd(m, cmd, 2 * l, dres, VKLM_P_LN1_W, VKLM_P_LN1_B, l, dln, x, a->ln1_mean,
                       a->ln1_rstd)))
      return st;
#undef P
#undef G
  }
  /* the norms' parameter gradients of this part, final from here on */
  if (top && hi == L) {
    if ((st = norm_reduce(m, cmd, 2 * lo, 2 * L + 1))) return st;
  } else {
    if ((st = norm_reduce(m, cmd, 2 * lo, 2 * hi))) return st;
    if (top && (st = norm_reduce(m, cmd, 2 * L, 2 * L + 1))) return st;
  }
  if (!embed) return VKLM_OK;
  VKLM_ASSERT(m->lowest_layer < 0, "model: the embeddings do not train");
  vklm_tensor dwpe = vklm_model_gw(m, VKLM_P_WPE, 0);
  for (uint32_t k = 0; k < m->nvchunks; k++) { /* each chunk: the plan's tokens in its range */
    uint32_t v0, v1;
    vklm_tensor dwte = vklm_model_gchunk(m, VKLM_P_WTE, k, &v0, &v1);
    TRY(vklm_nn_embed_backward(cmd, dwte, k == 0 ? dwpe : vklm_tensor_none(), w->plan, w->dres,
                               w->tokens, v0, v1, V));
  }
  return VKLM_OK;
}

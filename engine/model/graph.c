/* The one forward pass (graph.h): embedding, L pre-norm blocks (norm, qkv, RoPE, attention,
 * projection, residual; norm, MLP, residual), the final norm and the heads, recorded with the
 * tensor-level ops of ops/nn.h. Each residual add and the norm that follows it (the block's ln2,
 * the next block's ln1) are one fused op. SEQ and KV passes differ only in the position source
 * and the attention (see graph.h). */
#include <stdio.h>

#include "model_internal.h"
#include "ops/ops.h"
#include "ops/nn.h"

#define TRY(call) VKLM_MODEL_TRY(m, call)

/* ---- allocation planning ------------------------------------------------------------------ */
vklm_status vklm_plan_take(vklm_planner *pl, int k, uint64_t bytes, vklm_buffer *out,
                           const char *fmt, ...) {
  char what[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (bytes == 0) bytes = 4;
  uint64_t rounded = (bytes + pl->align - 1) / pl->align * pl->align;
  pl->total += rounded;
  pl->arena_bytes[k] += rounded;
  if (bytes > pl->biggest) {
    pl->biggest = bytes;
    snprintf(pl->biggest_name, sizeof pl->biggest_name, "%s", what);
  }
  if (pl->dry) {
    *out = (vklm_buffer){0};
    return VKLM_OK;
  }
  vklm_status st = vklm_arena_alloc(pl->arena[k], bytes, out);
  if (st != VKLM_OK)
    snprintf(pl->err, sizeof pl->err, "allocating %s (%llu bytes) failed: %s", what,
             (unsigned long long)bytes, vklm_context_error(pl->ctx));
  return st;
}

vklm_status vklm_graph_acts_plan(vklm_planner *pl, int k, const vklm_model_config *c, uint32_t B,
                                 uint32_t T, int kv, vklm_dtype prec, const char *what,
                                 uint32_t l, const vklm_layer_acts *share, vklm_layer_acts *a) {
  uint32_t n = B * T, C = c->n_embd, QKV = VKLM_MP_QKV(c), F = c->ffn_hidden;
  uint32_t FC = VKLM_MP_FC(c), NH = c->n_head;
  VKLM_ASSERT(prec == VKLM_DTYPE_F32 || prec == VKLM_DTYPE_F16 || prec == VKLM_DTYPE_BF16,
              "graph: activations in %s (f32, f16 or bf16)", vklm_dtype_name(prec));
  /* h: the saved GEMM inputs and the outputs qkv and fch of the qkv and fc layers (16-bit under
   * mixed precision: PyTorch autocast's rule, a linear layer's output in the training
   * precision), f: everything else */
  const vklm_dtype f = VKLM_DTYPE_F32, h = kv ? f : prec;
  char nm[64];
  snprintf(nm, sizeof nm, what, l);
  vklm_buffer b;
  vklm_status st;
#define ACT_T(field, dt, d0, d1, label)                                                            \
  do {                                                                                             \
    uint64_t e_ = (uint64_t)(d0) * (d1), bytes_ = (dt) == f ? e_ * 4 : (e_ * 2 + 3) / 4 * 4;     \
    if ((st = vklm_plan_take(pl, k, bytes_, &b, "%s %s", nm, label))) return st;                 \
    a->field = (d1) == 1 ? vklm_tensor_1d(b, dt, d0) : vklm_tensor_2d(b, dt, d0, d1);              \
  } while (0)
#define ACT(field, d0, d1, label) ACT_T(field, f, d0, d1, label)
  if (share) a->ln1 = share->ln1;
  else ACT_T(ln1, h, n, C, "ln1 (n,C)");
  ACT(ln1_mean, n, 1, "ln1 mean");
  ACT(ln1_rstd, n, 1, "ln1 rstd");
  /* qkv: the qkv GEMM's 16-bit output, rotated in place (RoPE) and read by the attention
   * kernels in 16 bits; atty: the attention's output, the projection GEMM's input. Both take an
   * even head size in 16 bits. atty's rounding does not reach the attention backward: it takes
   * D = sum_j P_ij dP_ij from P and dP (attention.h), not rowsum(dout * out) from the saved
   * output, whose rounding had turned the key biases' exactly-zero gradient into noise that
   * AdamW scaled up (tests/test_dist.py's f16 ZeRO-1 check measured 2.8e-5 against its 1e-5). */
  const vklm_dtype ha = (C / NH) % 2 == 0 ? h : f;
  ACT_T(qkv, ha, n, QKV, "qkv (n,QKV)");
  ACT_T(atty, ha, n, C, "attention output (n,C)");
  if (!kv) {
    if ((st = vklm_plan_take(pl, k, (uint64_t)B * NH * T * 4, &b, "%s attention lse", nm)))
      return st;
    a->lse = vklm_tensor_3d(b, f, B, NH, T);
  } else {
    a->lse = vklm_tensor_none();
  }
  ACT(res2, n, C, "residual (n,C)");
  if (share) a->ln2 = share->ln2;
  else ACT_T(ln2, h, n, C, "ln2 (n,C)");
  ACT(ln2_mean, n, 1, "ln2 mean");
  ACT(ln2_rstd, n, 1, "ln2 rstd");
  ACT_T(fch, h, n, FC, "MLP hidden (n,FC)"); /* the fc GEMM writes it in 16 bits (its C) */
  if (share) a->act = share->act;
  else ACT_T(act, h, n, F, "MLP activation (n,F)");
  ACT(res3, n, C, "output (n,C)");
#undef ACT
#undef ACT_T
  return VKLM_OK;
}

/* ---- the pass ------------------------------------------------------------------------------ */
vklm_status vklm_graph_norm(vklm_model *m, vklm_cmd *cmd, vklm_tensor out, vklm_tensor mean,
                            vklm_tensor rstd, vklm_tensor in, vklm_param_id w, vklm_param_id b,
                            uint32_t l) {
  int rms = m->cfg.arch != VKLM_ARCH_GPT2;
  TRY(vklm_nn_norm(cmd, rms, m->cfg.norm_eps, out, mean, rstd, in, vklm_model_w(m, w, l),
                   rms ? vklm_tensor_none() : vklm_model_w(m, b, l)));
  return VKLM_OK;
}

/* res = a + b and out = the norm (w, b of layer l) of res, in one dispatch. */
static vklm_status add_norm(vklm_model *m, vklm_cmd *cmd, vklm_tensor res, vklm_tensor out,
                            vklm_tensor mean, vklm_tensor rstd, vklm_tensor a, vklm_tensor b,
                            vklm_param_id w, vklm_param_id bias, uint32_t l) {
  int rms = m->cfg.arch != VKLM_ARCH_GPT2;
  TRY(vklm_nn_add_norm(cmd, rms, m->cfg.norm_eps, res, out, mean, rstd, a, b,
                       vklm_model_w(m, w, l), rms ? vklm_tensor_none() : vklm_model_w(m, bias, l)));
  return VKLM_OK;
}

static vklm_status embed(vklm_model *m, vklm_cmd *cmd, const vklm_pass *p) {
  const vklm_model_config *c = &m->cfg;
  int seq = p->kind == VKLM_PASS_SEQ;
  vklm_tensor wpe = vklm_model_w(m, VKLM_P_WPE, 0);
  /* each row is written by its token's chunk; two chunks per dispatch */
  for (uint32_t k = 0; k < m->nvchunks; k += 2) {
    uint32_t v0, v1, w0, w1;
    vklm_tensor wte = vklm_model_wchunk(m, VKLM_P_WTE, k, &v0, &v1);
    vklm_tensor wte2 = k + 1 < m->nvchunks ? vklm_model_wchunk(m, VKLM_P_WTE, k + 1, &w0, &w1)
                                           : vklm_tensor_none();
    TRY(vklm_nn_embed(cmd, p->x0, p->tokens, wte, wte2, seq ? wpe : vklm_tensor_none(), v0,
                      c->vocab_size));
  }
  if (!seq && !vklm_tensor_is_none(&wpe)) TRY(vklm_nn_pos_add(cmd, p->x0, wpe, p->rows));
  return VKLM_OK;
}

/* The attention of a layer: over the sequences themselves (SEQ) or through the cache (KV). */
static vklm_status attention(vklm_model *m, vklm_cmd *cmd, const vklm_pass *p,
                             const vklm_layer_acts *a, uint32_t l) {
  const vklm_model_config *c = &m->cfg;
  uint32_t NH = c->n_head, NKV = c->n_kv_head;
  int rope = c->arch != VKLM_ARCH_GPT2;
  if (p->kind == VKLM_PASS_SEQ) {
    if (rope) TRY(vklm_nn_rope(cmd, a->qkv, p->B, p->T, NH, NKV, c->rope_theta, 0));
    TRY(vklm_nn_attention(cmd, a->atty, a->lse, a->qkv, p->B, p->T, NH, NKV, p->causal));
    return VKLM_OK;
  }
  const vklm_kv_cache *kv = p->kv;
  if (rope) TRY(vklm_nn_rope_rows(cmd, a->qkv, kv->rope, p->rows, NH, NKV));
  TRY(vklm_nn_kv_store(cmd, kv->k[l], kv->v[l], a->qkv, p->rows, NH, kv->maxT));
  TRY(vklm_nn_kv_attention(cmd, a->atty, p->ascratch, a->qkv, kv->k[l], kv->v[l], p->rows, NH,
                           kv->maxT, p->splits));
  return VKLM_OK;
}

/* The first n rows of a set of activations allocated for more (a KV pass of fewer rows). */
static vklm_layer_acts first_rows(const vklm_layer_acts *a, uint32_t n) {
  vklm_layer_acts r = *a;
  vklm_tensor *t[] = {&r.ln1, &r.ln1_mean, &r.ln1_rstd, &r.qkv, &r.atty, &r.res2,
                      &r.ln2, &r.ln2_mean, &r.ln2_rstd, &r.fch, &r.act, &r.res3};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) *t[i] = vklm_tensor_rows(*t[i], 0, n);
  return r;
}

vklm_status vklm_graph_forward(vklm_model *m, vklm_cmd *cmd, const vklm_pass *p,
                               vklm_tensor *out) {
  const vklm_model_config *c = &m->cfg;
  uint32_t n = p->n;
  int swiglu = c->arch != VKLM_ARCH_GPT2;
  vklm_status st;
  VKLM_ASSERT(p->kind == VKLM_PASS_KV ? p->kv != NULL : p->B * p->T == n,
              "graph: a %s pass of %u rows (B=%u T=%u)", p->kind ? "KV" : "SEQ", n, p->B, p->T);
  if ((st = embed(m, cmd, p)) != VKLM_OK) return st;
  vklm_tensor x = vklm_tensor_rows(p->x0, 0, n);
  vklm_tensor tmp = vklm_tensor_rows(p->tmp, 0, n);
  for (uint32_t l = 0; l < c->n_layer; l++) {
    vklm_layer_acts rows = first_rows(&p->la[p->nla > 1 ? l : 0], n);
    const vklm_layer_acts *a = &rows;
#define W(id) vklm_model_w(m, VKLM_P_##id, l)
    /* ln1: layer 0's here, the others' by the previous layer's residual add */
    if (l == 0 && (st = vklm_graph_norm(m, cmd, a->ln1, a->ln1_mean, a->ln1_rstd, x, VKLM_P_LN1_W,
                                        VKLM_P_LN1_B, l)))
      return st;
    TRY(vklm_nn_linear(cmd, a->qkv, a->ln1, W(QKV_W), W(QKV_B)));
    if ((st = attention(m, cmd, p, a, l)) != VKLM_OK) return st;
    TRY(vklm_nn_linear(cmd, tmp, a->atty, W(ATTO_W), W(ATTO_B)));
    if ((st = add_norm(m, cmd, a->res2, a->ln2, a->ln2_mean, a->ln2_rstd, x, tmp, VKLM_P_LN2_W,
                       VKLM_P_LN2_B, l)))
      return st;
    if (swiglu) { /* the SwiGLU of the fused [gate | up] projection */
      TRY(vklm_nn_linear(cmd, a->fch, a->ln2, W(FC_W), W(FC_B)));
      TRY(vklm_nn_mlp_act(cmd, swiglu, a->act, a->fch));
    } else { /* fch and its GELU from one GEMM (the epilogue writes both) */
      TRY(vklm_nn_linear_gelu(cmd, a->fch, a->act, a->ln2, W(FC_W), W(FC_B)));
    }
    TRY(vklm_nn_linear(cmd, tmp, a->act, W(PROJ_W), W(PROJ_B)));
    if (l + 1 < c->n_layer) { /* res3 and the next layer's ln1 of it */
      vklm_layer_acts next = first_rows(&p->la[p->nla > 1 ? l + 1 : 0], n);
      if ((st = add_norm(m, cmd, a->res3, next.ln1, next.ln1_mean, next.ln1_rstd, a->res2, tmp,
                         VKLM_P_LN1_W, VKLM_P_LN1_B, l + 1)))
        return st;
    } else if (!vklm_tensor_is_none(&p->lnf)) { /* res3 and the final norm of it */
      if ((st = add_norm(m, cmd, a->res3, p->lnf, p->lnf_mean, p->lnf_rstd, a->res2, tmp,
                         VKLM_P_LNF_W, VKLM_P_LNF_B, 0)))
        return st;
    } else { /* the final norm is the callers' (vklm_graph_final_norm) */
      TRY(vklm_nn_add(cmd, a->res3, a->res2, tmp));
    }
#undef W
    x = a->res3;
  }
  *out = x;
  return VKLM_OK;
}

vklm_status vklm_graph_final_norm(vklm_model *m, vklm_cmd *cmd, vklm_tensor out,
                                  vklm_tensor mean, vklm_tensor rstd, vklm_tensor x) {
  return vklm_graph_norm(m, cmd, out, mean, rstd, x, VKLM_P_LNF_W, VKLM_P_LNF_B, 0);
}

vklm_status vklm_graph_logits(vklm_model *m, vklm_cmd *cmd, vklm_tensor logits, vklm_tensor h) {
  uint32_t n = h.shape[0], V = m->cfg.vocab_size, v0, v1;
  for (uint32_t k = 0; k < m->nvchunks; k++) {
    vklm_tensor w = vklm_model_headchunk(m, k, &v0, &v1);
    vklm_tensor blk = vklm_tensor_2d(logits.buf, VKLM_DTYPE_F32, n, v1 - v0);
    blk.stride[0] = V; /* the column block [v0, v1) of (n, V) */
    blk.offset = logits.offset + v0;
    TRY(vklm_nn_linear(cmd, blk, h, w, vklm_tensor_none()));
  }
  return VKLM_OK;
}

vklm_status vklm_graph_values(vklm_model *m, vklm_cmd *cmd, vklm_tensor values, vklm_tensor h) {
  VKLM_ASSERT(m->cfg.scalar_head, "graph: the model has no scalar head");
  vklm_tensor v2 = vklm_tensor_view_2d(values, h.shape[0], 1);
  TRY(vklm_nn_linear(cmd, v2, h, vklm_model_w(m, VKLM_P_SCORE_W, 0),
                     vklm_model_w(m, VKLM_P_SCORE_B, 0)));
  return VKLM_OK;
}

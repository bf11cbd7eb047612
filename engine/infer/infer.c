/* The inference session: weights, KV cache, prefill (recorded per call) and the decode step
 * (recorded once, replayed). See infer.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "model/model_params.h"
#include "ops/ops.h"

#define MAX_VCHUNKS 64

typedef struct layer_w {
  vklm_buffer ln1_w, ln1_b, qkv_w, qkv_b, atto_w, atto_b, ln2_w, ln2_b, fc_w, fc_b, proj_w,
      proj_b;
  vklm_dtype qkv_t, atto_t, fc_t, proj_t;
  vklm_buffer kc, vc; /* (maxT, NKV, HS) */
} layer_w;

/* the n rows of one pass: buffers of P rows (prefill) or 1 row (decode) */
typedef struct acts {
  vklm_buffer x, res, ln, qkv, atty, tmp, fch, act, mean, rstd, tokens;
} acts;

struct vklm_infer {
  vklm_context *ctx; /* borrowed */
  vklm_model_config cfg;
  uint32_t maxT, P, pos;
  vklm_arena *arena; /* owned: every buffer below */
  layer_w *lw;       /* owned, L entries */
  uint32_t nvc;      /* vocabulary chunks of wte / the head */
  uint32_t vc0[MAX_VCHUNKS + 1];
  vklm_buffer wte[MAX_VCHUNKS], head[MAX_VCHUNKS]; /* head == wte when tied */
  vklm_dtype head_t;
  vklm_buffer wpe, lnf_w, lnf_b, rope_tab;
  acts pre, dec;
  vklm_buffer last, lnf, lnf_mean, lnf_rstd, logits, next, info;
  uint32_t dsplits;  /* split-K slices of the decode attention */
  vklm_buffer ascratch; /* (1, NH, dsplits, HS+2) */
  vklm_cmd *pcmd, *dcmd; /* owned */
  int dec_recorded;
  char err[512];
};

static vklm_status fail(vklm_infer *s, vklm_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, sizeof s->err, fmt, ap);
  va_end(ap);
  return st;
}

#define TRY(call)                                                                                  \
  do {                                                                                             \
    vklm_status st_ = (call);                                                                      \
    if (st_ != VKLM_OK)                                                                            \
      return fail(s, st_, "infer: %s failed: %s", #call, vklm_context_error(s->ctx));              \
  } while (0)

const char *vklm_infer_error(const vklm_infer *s) { return s ? s->err : "no session"; }
const vklm_model_config *vklm_infer_config(const vklm_infer *s) { return &s->cfg; }
uint32_t vklm_infer_ctx(const vklm_infer *s) { return s->maxT; }
uint32_t vklm_infer_pos(const vklm_infer *s) { return s->pos; }
void vklm_infer_rewind(vklm_infer *s, uint32_t pos) {
  VKLM_ASSERT(pos <= s->pos, "infer_rewind: %u past the position %u", pos, s->pos);
  s->pos = pos;
}

void vklm_infer_destroy(vklm_infer *s) {
  if (!s) return;
  vklm_cmd_destroy(s->dcmd);
  vklm_cmd_destroy(s->pcmd);
  vklm_arena_destroy(s->arena);
  free(s->lw);
  free(s);
}

static vklm_status alloc(vklm_infer *s, uint64_t bytes, vklm_buffer *out) {
  TRY(vklm_arena_alloc(s->arena, bytes ? bytes : 4, out));
  return VKLM_OK;
}

/* Uploads one tensor (rows [r0, r1) of a 2-D one when r1 > r0, else the whole) into a new buffer. */
static vklm_status put(vklm_infer *s, const vklm_param_info *pi, const vklm_infer_tensor *t,
                       uint32_t r0, uint32_t r1, vklm_buffer *out) {
  uint32_t N = pi->shape[0], K = pi->ndim == 2 ? pi->shape[1] : 1;
  if (r1 <= r0) r0 = 0, r1 = N;
  uint64_t row = vklm_dtype_bytes(t->type, 1, K);
  uint64_t bytes = row * (r1 - r0), buf = (bytes + 3) / 4 * 4;
  vklm_status st = alloc(s, buf, out);
  if (st) return st;
  TRY(vklm_buffer_upload(s->ctx, *out, 0, (const uint8_t *)t->data + row * r0, bytes));
  return VKLM_OK;
}

static vklm_status alloc_acts(vklm_infer *s, acts *a, uint32_t n) {
  const vklm_model_config *c = &s->cfg;
  uint64_t C = c->n_embd, r = n;
  vklm_status st;
  if ((st = alloc(s, r * C * 4, &a->x)) || (st = alloc(s, r * C * 4, &a->res)) ||
      (st = alloc(s, r * C * 4, &a->ln)) || (st = alloc(s, r * VKLM_MP_QKV(c) * 4, &a->qkv)) ||
      (st = alloc(s, r * C * 4, &a->atty)) || (st = alloc(s, r * C * 4, &a->tmp)) ||
      (st = alloc(s, r * VKLM_MP_FC(c) * 4, &a->fch)) ||
      (st = alloc(s, r * c->ffn_hidden * 4, &a->act)) || (st = alloc(s, r * 4, &a->mean)) ||
      (st = alloc(s, r * 4, &a->rstd)) || (st = alloc(s, r * 4, &a->tokens)))
    return st;
  return VKLM_OK;
}

/* RoPE's cos|sin table (maxT, HS), made by the rope op itself on unit vectors so the angles are
 * exactly the training forward's: a (maxT, 3*HS) buffer with NH = NKV = 1 whose query head holds
 * 1 in its first half and 0 in its second rotates into (cos, sin). */
static vklm_status make_rope_table(vklm_infer *s) {
  uint32_t HS = VKLM_MP_HS(&s->cfg), T = s->maxT, R = 3 * HS;
  float *h = calloc((size_t)T * R, sizeof(float));
  if (!h) return fail(s, VKLM_ERROR_OUT_OF_HOST_MEMORY, "infer: out of host memory");
  for (uint32_t t = 0; t < T; t++)
    for (uint32_t k = 0; k < HS / 2; k++) h[(size_t)t * R + k] = 1.0f;
  vklm_arena *tmpa = NULL;
  vklm_buffer tmp;
  vklm_status st = vklm_arena_create(s->ctx, 0, &tmpa);
  if (!st) st = vklm_arena_alloc(tmpa, (uint64_t)T * R * 4, &tmp);
  if (!st) st = vklm_buffer_upload(s->ctx, tmp, 0, h, (uint64_t)T * R * 4);
  if (!st) st = vklm_cmd_begin(s->pcmd);
  if (!st) st = vklm_rope_forward(s->pcmd, tmp, 1, T, 1, 1, HS, 0, s->cfg.rope_theta);
  if (!st) st = vklm_cmd_end(s->pcmd);
  if (!st) st = vklm_cmd_run(s->pcmd);
  if (!st) st = vklm_buffer_download(s->ctx, tmp, 0, h, (uint64_t)T * R * 4);
  vklm_arena_destroy(tmpa);
  if (!st) {
    for (uint32_t t = 0; t < T; t++) memmove(h + (size_t)t * HS, h + (size_t)t * R, HS * 4);
    st = alloc(s, (uint64_t)T * HS * 4, &s->rope_tab);
    if (!st) st = vklm_buffer_upload(s->ctx, s->rope_tab, 0, h, (uint64_t)T * HS * 4);
  }
  free(h);
  if (st && !s->err[0]) fail(s, st, "infer: RoPE table: %s", vklm_context_error(s->ctx));
  return st;
}

vklm_status vklm_infer_create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                              const vklm_infer_options *opt, vklm_infer_tensor_fn get,
                              void *user, vklm_infer **out, char *err, size_t errlen) {
  vklm_infer_options o = {0};
  if (opt) o = *opt;
  uint32_t prefill_rows = o.prefill_rows;
  *out = NULL;
  if (vklm_model_config_check(cfg, err, errlen) != VKLM_OK) return VKLM_ERROR_INVALID;
  if (n_ctx == 0 || (cfg->arch == VKLM_ARCH_GPT2 && n_ctx > cfg->max_seq)) {
    snprintf(err, errlen, "infer: context length %u: must be 1..%u (the model's learned positions)",
             n_ctx, cfg->max_seq);
    return VKLM_ERROR_INVALID;
  }
  if (VKLM_MP_HS(cfg) > 256) {
    snprintf(err, errlen, "infer: head size %u > 256 is not supported", VKLM_MP_HS(cfg));
    return VKLM_ERROR_UNSUPPORTED;
  }
  vklm_infer *s = calloc(1, sizeof *s);
  if (!s) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  s->ctx = ctx;
  s->cfg = *cfg;
  s->maxT = n_ctx;
  s->P = prefill_rows ? prefill_rows : n_ctx < 256 ? n_ctx : 256;
  if (s->P > n_ctx) s->P = n_ctx;
  uint32_t L = cfg->n_layer, C = cfg->n_embd, V = cfg->vocab_size, HS = VKLM_MP_HS(cfg);
  int gpt2 = cfg->arch == VKLM_ARCH_GPT2;
  vklm_status st = VKLM_OK;
  uint32_t n = vklm_model_table_max(cfg);
  vklm_param_info *info = calloc(n, sizeof *info);
  uint8_t *init = calloc(n, 1), *ids = calloc(n, 1);
  s->lw = calloc(L, sizeof *s->lw);
  if (!info || !init || !ids || !s->lw) {
    st = fail(s, VKLM_ERROR_OUT_OF_HOST_MEMORY, "infer: out of host memory");
    goto done;
  }
  vklm_model_table(cfg, info, init, ids, &n);
  if ((st = vklm_arena_create(ctx, 0, &s->arena)) || (st = vklm_cmd_create(ctx, &s->pcmd)) ||
      (st = vklm_cmd_create(ctx, &s->dcmd))) {
    fail(s, st, "infer: %s", vklm_context_error(ctx));
    goto done;
  }
  /* vocabulary chunks: rows per chunk a multiple of 64 (logit slices stay aligned) */
  uint64_t range = vklm_context_caps(ctx)->max_storage_buffer_range;
  if (o.max_tensor_bytes && o.max_tensor_bytes < range) range = o.max_tensor_bytes;
  uint64_t rows = range / ((uint64_t)C * 4) / 64 * 64;
  if (rows == 0) rows = 64;
  s->nvc = (uint32_t)((V + rows - 1) / rows);
  if (s->nvc > MAX_VCHUNKS) {
    st = fail(s, VKLM_ERROR_UNSUPPORTED, "infer: vocabulary %u needs too many chunks", V);
    goto done;
  }
  for (uint32_t k = 0; k <= s->nvc; k++) s->vc0[k] = (uint32_t)(k * rows < V ? k * rows : V);
  s->head_t = VKLM_DTYPE_F32;
  for (uint32_t i = 0; i < n && !st; i++) {
    vklm_infer_tensor t = {0};
    const vklm_param_info *pi = &info[i];
    if ((st = get(user, pi, &t, s->err, sizeof s->err))) break;
    int linear = ids[i] == VKLM_P_QKV_W || ids[i] == VKLM_P_ATTO_W || ids[i] == VKLM_P_FC_W ||
                 ids[i] == VKLM_P_PROJ_W || ids[i] == VKLM_P_LM_HEAD;
    if (t.type != VKLM_DTYPE_F32 &&
        (!linear || t.type >= VKLM_DTYPE_LINEAR_COUNT ||
         ((t.type == VKLM_DTYPE_Q8_0 || t.type == VKLM_DTYPE_Q4_0) && pi->shape[1] % 32))) {
      st = fail(s, VKLM_ERROR_UNSUPPORTED, "infer: tensor %s cannot be %s", pi->name,
                vklm_dtype_name(t.type));
      break;
    }
    layer_w *w = pi->layer >= 0 ? &s->lw[pi->layer] : NULL;
    switch (ids[i]) {
    case VKLM_P_WTE:
    case VKLM_P_LM_HEAD:
      for (uint32_t k = 0; k < s->nvc && !st; k++)
        st = put(s, pi, &t, s->vc0[k], s->vc0[k + 1],
                 ids[i] == VKLM_P_WTE ? &s->wte[k] : &s->head[k]);
      if (ids[i] == VKLM_P_LM_HEAD) s->head_t = t.type;
      break;
#define W(id, f)                                                                                   \
  case VKLM_P_##id:                                                                                \
    st = put(s, pi, &t, 0, 0, &w->f);                                                              \
    break;
      W(LN1_W, ln1_w) W(LN1_B, ln1_b) W(QKV_B, qkv_b) W(ATTO_B, atto_b) W(LN2_W, ln2_w)
      W(LN2_B, ln2_b) W(FC_B, fc_b) W(PROJ_B, proj_b)
#undef W
    case VKLM_P_QKV_W: st = put(s, pi, &t, 0, 0, &w->qkv_w), w->qkv_t = t.type; break;
    case VKLM_P_ATTO_W: st = put(s, pi, &t, 0, 0, &w->atto_w), w->atto_t = t.type; break;
    case VKLM_P_FC_W: st = put(s, pi, &t, 0, 0, &w->fc_w), w->fc_t = t.type; break;
    case VKLM_P_PROJ_W: st = put(s, pi, &t, 0, 0, &w->proj_w), w->proj_t = t.type; break;
    case VKLM_P_WPE: st = put(s, pi, &t, 0, 0, &s->wpe); break;
    case VKLM_P_LNF_W: st = put(s, pi, &t, 0, 0, &s->lnf_w); break;
    case VKLM_P_LNF_B: st = put(s, pi, &t, 0, 0, &s->lnf_b); break;
    default: break;
    }
  }
  if (st) goto done;
  if (cfg->tie_embeddings)
    for (uint32_t k = 0; k < s->nvc; k++) s->head[k] = s->wte[k];
  uint64_t kvb = (uint64_t)s->maxT * cfg->n_kv_head * HS * 4;
  for (uint32_t l = 0; l < L && !st; l++)
    if (!(st = alloc(s, kvb, &s->lw[l].kc))) st = alloc(s, kvb, &s->lw[l].vc);
  if (!st) st = alloc_acts(s, &s->pre, s->P);
  if (!st) st = alloc_acts(s, &s->dec, 1);
  if (!st) st = alloc(s, (uint64_t)C * 4, &s->last);
  if (!st) st = alloc(s, (uint64_t)C * 4, &s->lnf);
  if (!st) st = alloc(s, 4, &s->lnf_mean);
  if (!st) st = alloc(s, 4, &s->lnf_rstd);
  if (!st) st = alloc(s, (uint64_t)V * 4, &s->logits);
  if (!st) st = alloc(s, 4, &s->next);
  if (!st) st = alloc(s, 4, &s->info);
  s->dsplits = o.decode_splits ? o.decode_splits : (s->maxT + 255) / 256;
  if (s->dsplits > 16 && !o.decode_splits) s->dsplits = 16;
  if (!st) st = alloc(s, vklm_attention_decode_scratch_bytes(1, cfg->n_head, HS, s->dsplits),
                      &s->ascratch);
  if (!st && !gpt2) st = make_rope_table(s);
done:
  free(info);
  free(init);
  free(ids);
  if (st) {
    snprintf(err, errlen, "%s", s->err[0] ? s->err : vklm_status_name(st));
    vklm_infer_destroy(s);
    return st;
  }
  *out = s;
  return VKLM_OK;
}

typedef struct flat_src {
  const float *params;
} flat_src;

static vklm_status flat_get(void *user, const vklm_param_info *info, vklm_infer_tensor *out,
                            char *err, size_t errlen) {
  (void)err, (void)errlen;
  out->data = ((flat_src *)user)->params + info->offset;
  out->type = VKLM_DTYPE_F32;
  return VKLM_OK;
}

vklm_status vklm_infer_create_f32(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                                  const float *params, vklm_infer **out, char *err,
                                  size_t errlen) {
  flat_src src = {params};
  return vklm_infer_create(ctx, cfg, n_ctx, NULL, flat_get, &src, out, err, errlen);
}

static vklm_status norm(vklm_infer *s, vklm_cmd *cmd, vklm_buffer out, vklm_buffer mean,
                        vklm_buffer rstd, vklm_buffer inp, vklm_buffer w, vklm_buffer b,
                        uint32_t n) {
  if (s->cfg.arch == VKLM_ARCH_GPT2)
    TRY(vklm_layernorm_forward(cmd, out, mean, rstd, inp, w, b, n, s->cfg.n_embd));
  else
    TRY(vklm_rmsnorm_forward(cmd, out, rstd, inp, w, n, s->cfg.n_embd, s->cfg.norm_eps));
  return VKLM_OK;
}

/* Records one pass over n rows (tokens in a->tokens, position in s->info), ending with the
 * logits of the last row and their argmax. */
static vklm_status record(vklm_infer *s, vklm_cmd *cmd, acts *a, uint32_t n) {
  const vklm_model_config *c = &s->cfg;
  uint32_t C = c->n_embd, V = c->vocab_size, NH = c->n_head, NKV = c->n_kv_head;
  uint32_t HS = VKLM_MP_HS(c), QKV = VKLM_MP_QKV(c), F = c->ffn_hidden, FC = VKLM_MP_FC(c);
  int gpt2 = c->arch == VKLM_ARCH_GPT2;
  vklm_status st;
  TRY(vklm_cmd_begin(cmd));
  for (uint32_t k = 0; k < s->nvc; k++)
    TRY(vklm_embedding_forward_range(cmd, a->x, a->tokens, s->wte[k], (vklm_buffer){0}, 1, n, C,
                                     V, s->vc0[k], s->vc0[k + 1]));
  if (gpt2) TRY(vklm_pos_add(cmd, a->x, s->wpe, s->info, n, C, c->max_seq));
  for (uint32_t l = 0; l < c->n_layer; l++) {
    layer_w *w = &s->lw[l];
    if ((st = norm(s, cmd, a->ln, a->mean, a->rstd, a->x, w->ln1_w, w->ln1_b, n))) return st;
    TRY(vklm_linear_forward(cmd, a->qkv, a->ln, w->qkv_w, w->qkv_t, w->qkv_b, n, C, QKV));
    if (!gpt2) TRY(vklm_rope_cached(cmd, a->qkv, s->rope_tab, s->info, n, NH, NKV, HS, s->maxT));
    TRY(vklm_kv_store(cmd, w->kc, w->vc, a->qkv, s->info, n, NH, NKV, HS, s->maxT));
    TRY(vklm_attention_decode(cmd, a->atty, s->ascratch, a->qkv, w->kc, w->vc, s->info, n, NH,
                              NKV, HS, QKV, n == 1 ? s->dsplits : 1));
    TRY(vklm_linear_forward(cmd, a->tmp, a->atty, w->atto_w, w->atto_t, w->atto_b, n, C, C));
    TRY(vklm_residual_forward(cmd, a->res, a->x, a->tmp, n * C));
    if ((st = norm(s, cmd, a->ln, a->mean, a->rstd, a->res, w->ln2_w, w->ln2_b, n))) return st;
    TRY(vklm_linear_forward(cmd, a->fch, a->ln, w->fc_w, w->fc_t, w->fc_b, n, C, FC));
    if (gpt2)
      TRY(vklm_gelu_forward(cmd, a->act, a->fch, n * F));
    else
      TRY(vklm_swiglu_forward(cmd, a->act, a->fch, n, F));
    TRY(vklm_linear_forward(cmd, a->tmp, a->act, w->proj_w, w->proj_t, w->proj_b, n, F, C));
    TRY(vklm_residual_forward(cmd, a->x, a->res, a->tmp, n * C));
  }
  /* the last row (a copy: its offset need not meet the binding alignment) */
  vklm_buffer src = {a->x.block, a->x.offset + (uint64_t)(n - 1) * C * 4, (uint64_t)C * 4};
  TRY(vklm_cmd_copy(cmd, src, s->last, (uint64_t)C * 4));
  if ((st = norm(s, cmd, s->lnf, s->lnf_mean, s->lnf_rstd, s->last, s->lnf_w, s->lnf_b, 1)))
    return st;
  for (uint32_t k = 0; k < s->nvc; k++) {
    uint32_t v0 = s->vc0[k], v1 = s->vc0[k + 1];
    vklm_buffer lg = vklm_buffer_slice(s->logits, (uint64_t)v0 * 4, (uint64_t)(v1 - v0) * 4);
    TRY(vklm_linear_forward(cmd, lg, s->lnf, s->head[k], s->head_t, (vklm_buffer){0}, 1, C,
                            v1 - v0));
  }
  TRY(vklm_argmax(cmd, s->next, s->logits, V));
  TRY(vklm_cmd_end(cmd));
  return VKLM_OK;
}

static vklm_status finish(vklm_infer *s, vklm_cmd *cmd, float *logits, int32_t *next) {
  TRY(vklm_cmd_run(cmd));
  if (logits)
    TRY(vklm_buffer_download(s->ctx, s->logits, 0, logits, (uint64_t)s->cfg.vocab_size * 4));
  if (next) TRY(vklm_buffer_download(s->ctx, s->next, 0, next, 4));
  return VKLM_OK;
}

static vklm_status check(vklm_infer *s, const int32_t *tokens, uint32_t n) {
  if (s->pos + n > s->maxT)
    return fail(s, VKLM_ERROR_INVALID,
                "context full: %u tokens in the cache + %u new > the context length %u "
                "(raise -c, or use --ctx-shift)",
                s->pos, n, s->maxT);
  if (vklm_embedding_check_tokens(tokens, n, s->cfg.vocab_size, s->err, sizeof s->err))
    return VKLM_ERROR_INVALID;
  return VKLM_OK;
}

vklm_status vklm_infer_prefill(vklm_infer *s, const int32_t *tokens, uint32_t n, float *logits,
                               int32_t *next) {
  vklm_status st;
  VKLM_ASSERT(n >= 1, "infer_prefill: no tokens");
  if ((st = check(s, tokens, n))) return st;
  for (uint32_t i = 0; i < n; i += s->P) {
    uint32_t m = n - i < s->P ? n - i : s->P, pos = s->pos;
    TRY(vklm_buffer_upload(s->ctx, s->pre.tokens, 0, tokens + i, (uint64_t)m * 4));
    TRY(vklm_buffer_upload(s->ctx, s->info, 0, &pos, 4));
    if ((st = record(s, s->pcmd, &s->pre, m))) return st;
    int lastc = i + m == n;
    if ((st = finish(s, s->pcmd, lastc ? logits : NULL, lastc ? next : NULL))) return st;
    s->pos += m;
  }
  return VKLM_OK;
}

vklm_status vklm_infer_decode(vklm_infer *s, int32_t token, float *logits, int32_t *next) {
  vklm_status st;
  if ((st = check(s, &token, 1))) return st;
  if (!s->dec_recorded) {
    if ((st = record(s, s->dcmd, &s->dec, 1))) return st;
    s->dec_recorded = 1;
  }
  uint32_t pos = s->pos;
  TRY(vklm_buffer_upload(s->ctx, s->dec.tokens, 0, &token, 4));
  TRY(vklm_buffer_upload(s->ctx, s->info, 0, &pos, 4));
  if ((st = finish(s, s->dcmd, logits, next))) return st;
  s->pos++;
  return VKLM_OK;
}

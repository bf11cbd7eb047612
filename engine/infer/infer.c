/* Generation sessions (infer.h): the KV cache, the passes of a batched step recorded with the
 * model's one forward graph (model/graph.h) in KV mode, and the outputs (GPU argmax, or logits
 * for a sampler). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "infer/sample_gpu.h"
#include "model/model_internal.h"
#include "ops/nn.h"
#include "ops/ops.h"

#define MAX_DECODE_CMDS 64 /* recorded decode steps are cached for batches up to this size */

struct vklm_infer {
  vklm_context *ctx;      /* borrowed */
  vklm_model *m;          /* borrowed, or owned when own_model */
  int own_model;
  uint32_t maxT, S, P;    /* positions per sequence, slots, rows per pass */
  uint32_t K;             /* output rows per pass at most: min(P, S) */
  uint32_t *pos;          /* owned, S */
  uint8_t *open;          /* owned, S */
  vklm_arena *arena;      /* owned: everything below */
  vklm_arena *harena;     /* owned: host-visible (tokens, rows, next, srows, spen): a pass's
                             inputs are written and its sampled ids read through the mapping, so
                             a decode step is one submission and no staged copy */
  vklm_tensor *kt, *vt;   /* owned arrays of L: the cache, (S*maxT, NKV, HS) */
  vklm_dtype kv_dtype;
  vklm_kv_cache kv;
  vklm_layer_acts la;     /* one shared set for P rows */
  vklm_tensor x0, tmp;    /* (P,C) */
  vklm_tensor tokens;     /* (1,P) I32 */
  vklm_tensor rows;       /* (P,2) I32: (position, slot) */
  vklm_buffer ascratch;
  vklm_tensor last, lnf, lnf_mean, lnf_rstd, logits; /* (K,C), (K,C), (K), (K), (K,V) */
  vklm_buffer next;       /* (K) int32 sampled ids */
  vklm_buffer srows, spen, sscratch; /* the GPU sampler's per-row parameters, penalties, scratch */
  uint32_t max_pen;
  uint32_t dsplits;
  vklm_cmd *pcmd;                           /* owned: passes recorded per call */
  vklm_cmd *dcmd[MAX_DECODE_CMDS + 1];      /* owned: decode steps of n rows, recorded once */
  int32_t *htok;          /* owned host scratch: P tokens */
  uint32_t *hrows;        /* owned host scratch: 2P */
  vklm_sample_row *hsrows; /* owned host scratch: K */
  int32_t *hpen;          /* owned host scratch: K * max_pen */
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
      return fail(s, st_, "infer: %s failed: %s", #call,                                           \
                  s->m->err[0] ? s->m->err : vklm_context_error(s->ctx));                          \
  } while (0)

const char *vklm_infer_error(const vklm_infer *s) { return s ? s->err : "no session"; }
const vklm_model_config *vklm_infer_config(const vklm_infer *s) { return &s->m->cfg; }
vklm_model *vklm_infer_model(const vklm_infer *s) { return s->m; }
uint32_t vklm_infer_ctx(const vklm_infer *s) { return s->maxT; }
uint32_t vklm_infer_slots(const vklm_infer *s) { return s->S; }
vklm_dtype vklm_infer_kv_dtype(const vklm_infer *s) { return s->kv_dtype; }
vklm_dtype vklm_infer_weights_dtype(const vklm_infer *s) {
  return vklm_model_w(s->m, VKLM_P_QKV_W, 0).dtype;
}
uint64_t vklm_infer_memory(const vklm_infer *s) {
  return vklm_arena_used(s->arena) + vklm_arena_used(s->harena);
}

int vklm_infer_seq_open(vklm_infer *s) {
  for (uint32_t i = 0; i < s->S; i++)
    if (!s->open[i]) {
      s->open[i] = 1;
      s->pos[i] = 0;
      return (int)i;
    }
  return -1;
}
void vklm_infer_seq_close(vklm_infer *s, uint32_t slot) {
  VKLM_ASSERT(slot < s->S, "infer: slot %u of %u", slot, s->S);
  s->open[slot] = 0;
  s->pos[slot] = 0;
}
uint32_t vklm_infer_seq_pos(const vklm_infer *s, uint32_t slot) {
  VKLM_ASSERT(slot < s->S, "infer: slot %u of %u", slot, s->S);
  return s->pos[slot];
}
void vklm_infer_seq_rewind(vklm_infer *s, uint32_t slot, uint32_t pos) {
  VKLM_ASSERT(slot < s->S && pos <= s->pos[slot], "infer_rewind: slot %u to %u past %u", slot,
              pos, slot < s->S ? s->pos[slot] : 0);
  s->pos[slot] = pos;
}
uint32_t vklm_infer_pos(const vklm_infer *s) { return s->pos[0]; }
void vklm_infer_rewind(vklm_infer *s, uint32_t pos) { vklm_infer_seq_rewind(s, 0, pos); }

void vklm_infer_destroy(vklm_infer *s) {
  if (!s) return;
  for (uint32_t i = 0; i <= MAX_DECODE_CMDS; i++) vklm_cmd_destroy(s->dcmd[i]);
  vklm_cmd_destroy(s->pcmd);
  vklm_arena_destroy(s->harena);
  vklm_arena_destroy(s->arena);
  if (s->own_model) vklm_model_destroy(s->m);
  free(s->kt);
  free(s->vt);
  free(s->pos);
  free(s->open);
  free(s->htok);
  free(s->hrows);
  free(s->hsrows);
  free(s->hpen);
  free(s);
}

/* RoPE's cos|sin table (maxT, HS), made by the rope op itself on unit vectors so the angles are
 * exactly the training forward's: a (maxT, 3*HS) buffer with NH = NKV = 1 whose query head holds
 * 1 in its first half and 0 in its second rotates into (cos, sin). */
static vklm_status make_rope_table(vklm_infer *s, vklm_planner *pl) {
  uint32_t HS = VKLM_MP_HS(&s->m->cfg), T = s->maxT, R = 3 * HS;
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
  if (!st)
    st = vklm_nn_rope(s->pcmd, vklm_tensor_2d(tmp, VKLM_DTYPE_F32, T, R), 1, T, 1, 1,
                      s->m->cfg.rope_theta, 0);
  if (!st) st = vklm_cmd_end(s->pcmd);
  if (!st) st = vklm_cmd_run(s->pcmd);
  if (!st) st = vklm_buffer_download(s->ctx, tmp, 0, h, (uint64_t)T * R * 4);
  vklm_arena_destroy(tmpa);
  if (!st) {
    for (uint32_t t = 0; t < T; t++) memmove(h + (size_t)t * HS, h + (size_t)t * R, HS * 4);
    vklm_buffer rb;
    st = vklm_plan_take(pl, 0, (uint64_t)T * HS * 4, &rb, "RoPE table");
    s->kv.rope = vklm_tensor_2d(rb, VKLM_DTYPE_F32, T, HS);
    if (!st) st = vklm_buffer_upload(s->ctx, rb, 0, h, (uint64_t)T * HS * 4);
  }
  free(h);
  if (st) fail(s, st, "infer: RoPE table: %s", pl->err[0] ? pl->err : vklm_context_error(s->ctx));
  return st;
}

/* The session's buffers (dry: sizes only). */
static vklm_status layout(vklm_infer *s, vklm_planner *pl) {
  const vklm_model_config *c = &s->m->cfg;
  uint32_t L = c->n_layer, C = c->n_embd, V = c->vocab_size, HS = VKLM_MP_HS(c);
  uint32_t NKV = c->n_kv_head, rows = s->S * s->maxT;
  uint64_t kvb = vklm_dtype_bytes(s->kv_dtype, 1, rows * NKV * HS);
  const vklm_dtype f = VKLM_DTYPE_F32, i32 = VKLM_DTYPE_I32;
  vklm_buffer b;
  vklm_status st;
#define TAKE_IN(k, bytes, out, ...)                                                                \
  do {                                                                                             \
    if ((st = vklm_plan_take(pl, k, bytes, out, __VA_ARGS__)) != VKLM_OK) return st;               \
  } while (0)
#define TAKE(bytes, out, ...) TAKE_IN(0, bytes, out, __VA_ARGS__)
#define HOST 1 /* the host-visible arena */
#define TENSOR(out, dt, d0, d1, ...)                                                               \
  do {                                                                                             \
    TAKE((uint64_t)(d0) * ((d1) ? (d1) : 1) * 4, &b, __VA_ARGS__);                                 \
    out = (d1) ? vklm_tensor_2d(b, dt, d0, d1) : vklm_tensor_1d(b, dt, d0);                        \
  } while (0)
  for (uint32_t l = 0; l < L; l++) {
    TAKE(kvb, &b, "h.%u key cache", l);
    s->kt[l] = vklm_tensor_3d(b, s->kv_dtype, rows, NKV, HS);
    TAKE(kvb, &b, "h.%u value cache", l);
    s->vt[l] = vklm_tensor_3d(b, s->kv_dtype, rows, NKV, HS);
  }
  if ((st = vklm_graph_acts_plan(pl, 0, c, s->P, 1, 1, VKLM_DTYPE_F32, "layers", 0, NULL,
                                  &s->la)) != VKLM_OK)
    return st;
  TENSOR(s->x0, f, s->P, C, "embedding output (P,C)");
  TENSOR(s->tmp, f, s->P, C, "projection output (P,C)");
  TAKE_IN(HOST, (uint64_t)s->P * 4, &b, "tokens (P)");
  s->tokens = vklm_tensor_2d(b, i32, 1, s->P);
  TAKE_IN(HOST, (uint64_t)s->P * 8, &b, "rows (P)");
  s->rows = vklm_tensor_2d(b, i32, s->P, 2);
  TAKE(vklm_attention_decode_scratch_bytes(s->K, c->n_head, HS, s->dsplits), &s->ascratch,
       "split attention scratch");
  TENSOR(s->last, f, s->K, C, "output rows (K,C)");
  TENSOR(s->lnf, f, s->K, C, "final norm (K,C)");
  TENSOR(s->lnf_mean, f, s->K, 0, "final norm mean");
  TENSOR(s->lnf_rstd, f, s->K, 0, "final norm rstd");
  TENSOR(s->logits, f, s->K, V, "logits (K,V)");
  TAKE_IN(HOST, (uint64_t)s->K * 4, &s->next, "next tokens (K)");
  TAKE_IN(HOST, (uint64_t)s->K * sizeof(vklm_sample_row), &s->srows, "sampler rows (K)");
  TAKE_IN(HOST, (uint64_t)s->K * (s->max_pen ? s->max_pen : 1) * 4, &s->spen, "penalty lists (K)");
  TAKE(vklm_sample_rows_scratch_bytes(s->K, V), &s->sscratch, "sampler scratch (K,V)");
#undef TENSOR
#undef TAKE
#undef TAKE_IN
#undef HOST
  return VKLM_OK;
}

static vklm_status setup(vklm_infer *s, uint32_t n_ctx, const vklm_infer_options *opt) {
  vklm_infer_options o = {0};
  if (opt) o = *opt;
  const vklm_model_config *c = &s->m->cfg;
  const vklm_caps *caps = vklm_context_caps(s->ctx);
  if (n_ctx == 0 || (c->arch == VKLM_ARCH_GPT2 && n_ctx > c->max_seq))
    return fail(s, VKLM_ERROR_INVALID,
                "infer: context length %u: must be 1..%u (the model's learned positions)", n_ctx,
                c->max_seq);
  s->maxT = n_ctx;
  s->S = o.n_seq ? o.n_seq : 1;
  uint64_t rows = (uint64_t)n_ctx * s->S;
  s->P = o.prefill_rows ? o.prefill_rows : rows < 256 ? (uint32_t)rows : 256;
  if (s->P > rows) s->P = (uint32_t)rows;
  s->K = s->P < s->S ? s->P : s->S;
  if (o.kv_type == VKLM_DTYPE_F16 + 1 && !caps->storage_16bit)
    return fail(s, VKLM_ERROR_UNSUPPORTED, "infer: an fp16 KV cache needs 16-bit storage, which "
                "%s lacks", caps->name);
  s->kv_dtype = o.kv_type ? (vklm_dtype)(o.kv_type - 1)
                          : caps->storage_16bit ? VKLM_DTYPE_F16 : VKLM_DTYPE_F32;
  if (s->kv_dtype != VKLM_DTYPE_F16 && s->kv_dtype != VKLM_DTYPE_F32)
    return fail(s, VKLM_ERROR_INVALID, "infer: kv_type %d", o.kv_type);
  uint64_t cache_elems = rows * c->n_kv_head * VKLM_MP_HS(c);
  if (cache_elems >= (1ull << 32))
    return fail(s, VKLM_ERROR_INVALID, "infer: a KV cache of %u sequences x %u positions is "
                "%llu elements per layer, past 2^32: fewer sequences or a shorter context",
                s->S, n_ctx, (unsigned long long)cache_elems);
  s->dsplits = o.decode_splits ? o.decode_splits : (n_ctx + 255) / 256;
  if (s->dsplits > 16 && !o.decode_splits) s->dsplits = 16;
  if (s->dsplits > caps->max_workgroup_count[2]) s->dsplits = caps->max_workgroup_count[2];
  uint32_t L = c->n_layer;
  s->pos = calloc(s->S, sizeof *s->pos);
  s->open = calloc(s->S, 1);
  s->kt = calloc(L, sizeof *s->kt);
  s->vt = calloc(L, sizeof *s->vt);
  s->max_pen = o.max_penalty ? o.max_penalty : 256;
  s->htok = calloc(s->P, sizeof *s->htok);
  s->hrows = calloc(2 * (size_t)s->P, sizeof *s->hrows);
  s->hsrows = calloc(s->K, sizeof *s->hsrows);
  s->hpen = calloc((size_t)s->K * s->max_pen, sizeof *s->hpen);
  if (!s->pos || !s->open || !s->kt || !s->vt || !s->htok || !s->hrows || !s->hsrows ||
      !s->hpen)
    return fail(s, VKLM_ERROR_OUT_OF_HOST_MEMORY, "infer: out of host memory");
  s->kv.S = s->S;
  s->kv.maxT = s->maxT;
  s->kv.k = s->kt;
  s->kv.v = s->vt;
  vklm_status st;
  vklm_planner dry = {.ctx = s->ctx, .dry = 1, .align = vklm_buffer_alignment(s->ctx)};
  if ((st = layout(s, &dry)) != VKLM_OK) return st;
  if (dry.biggest > caps->max_storage_buffer_range)
    return fail(s, VKLM_ERROR_UNSUPPORTED, "infer: %s needs %.1f MiB in one buffer, more than the "
                "device's maxStorageBufferRange (%.1f MiB): fewer sequences or a shorter context",
                dry.biggest_name, dry.biggest / 1048576.0,
                caps->max_storage_buffer_range / 1048576.0);
  if ((st = vklm_arena_create(s->ctx, dry.arena_bytes[0], &s->arena)) != VKLM_OK ||
      (st = vklm_arena_create_host(s->ctx, dry.arena_bytes[1], &s->harena)) != VKLM_OK ||
      (st = vklm_cmd_create(s->ctx, &s->pcmd)) != VKLM_OK)
    return fail(s, st, "infer: %s", vklm_context_error(s->ctx));
  vklm_planner pl = {.ctx = s->ctx, .dry = 0, .align = dry.align};
  pl.arena[0] = s->arena;
  pl.arena[1] = s->harena;
  if ((st = layout(s, &pl)) != VKLM_OK) return fail(s, st, "infer: %s", pl.err);
  if (c->arch != VKLM_ARCH_GPT2 && (st = make_rope_table(s, &pl)) != VKLM_OK) return st;
  s->open[0] = 1; /* slot 0 is the single-sequence calls' */
  return VKLM_OK;
}

static vklm_status finish_create(vklm_infer *s, uint32_t n_ctx, const vklm_infer_options *opt,
                                 vklm_infer **out, char *err, size_t errlen) {
  vklm_status st = setup(s, n_ctx, opt);
  if (st != VKLM_OK) {
    snprintf(err, errlen, "%s", s->err[0] ? s->err : vklm_status_name(st));
    vklm_infer_destroy(s);
    return st;
  }
  *out = s;
  return VKLM_OK;
}

/* A session over m (owned when own): allocates it and finishes the creation. On failure an owned
 * model is destroyed too. */
static vklm_status start(vklm_model *m, int own, uint32_t n_ctx, const vklm_infer_options *opt,
                         vklm_infer **out, char *err, size_t errlen) {
  vklm_infer *s = calloc(1, sizeof *s);
  if (!s) {
    if (own) vklm_model_destroy(m);
    return snprintf(err, errlen, "out of host memory"), VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  s->ctx = m->ctx;
  s->m = m;
  s->own_model = own;
  return finish_create(s, n_ctx, opt, out, err, errlen);
}

vklm_status vklm_infer_create_for(vklm_model *m, uint32_t n_ctx, const vklm_infer_options *opt,
                                  vklm_infer **out, char *err, size_t errlen) {
  *out = NULL;
  return start(m, 0, n_ctx, opt, out, err, errlen);
}

vklm_dtype vklm_infer_weight_dtype(const vklm_context *ctx, const vklm_infer_options *opt) {
  int wt = opt ? opt->weight_type : 0;
  if (wt) return (vklm_dtype)(wt - 1);
  return vklm_context_cpu_kernels(ctx) ? VKLM_DTYPE_F32 : VKLM_DTYPE_F16;
}

vklm_status vklm_infer_create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                              const vklm_infer_options *opt, vklm_model_tensor_fn get, void *user,
                              vklm_infer **out, char *err, size_t errlen) {
  *out = NULL;
  vklm_model_options mo = {.frozen = 1, .max_tensor_bytes = opt ? opt->max_tensor_bytes : 0,
                           .weight_dtype = vklm_infer_weight_dtype(ctx, opt)};
  vklm_model *m = NULL;
  vklm_status st = vklm_model_create_from(ctx, cfg, 0, 0, VKLM_OBJ_CAUSAL, &mo, get, user, &m,
                                          err, errlen);
  return st != VKLM_OK ? st : start(m, 1, n_ctx, opt, out, err, errlen);
}

vklm_status vklm_infer_create_f32(vklm_context *ctx, const vklm_model_config *cfg, uint32_t n_ctx,
                                  const float *params, vklm_infer **out, char *err,
                                  size_t errlen) {
  *out = NULL;
  vklm_model *m = NULL;
  vklm_model_options mo = {.frozen = 1, .weight_dtype = vklm_infer_weight_dtype(ctx, NULL)};
  vklm_status st = vklm_model_create_f32(ctx, cfg, 0, 0, VKLM_OBJ_CAUSAL, &mo, params, &m, err,
                                         errlen);
  return st != VKLM_OK ? st : start(m, 1, n_ctx, NULL, out, err, errlen);
}

/* ---- steps ---------------------------------------------------------------------------------- */

/* Records one pass over n rows (tokens, rows uploaded before each run): the graph in KV mode,
 * then for the output rows (out_rows[0..k), or all n rows when out_rows is NULL) the final norm,
 * the logits and the GPU sampler (each row's parameters uploaded before each run; a greedy row
 * is the argmax). */
static vklm_status record_pass(vklm_infer *s, vklm_cmd *cmd, uint32_t n, const uint32_t *out_rows,
                               uint32_t k, uint32_t splits) {
  vklm_model *m = s->m;
  uint32_t C = m->cfg.n_embd, V = m->cfg.vocab_size;
  vklm_status st;
  m->err[0] = 0;
  TRY(vklm_cmd_begin(cmd));
  vklm_tensor tokens = s->tokens;
  tokens.shape[1] = n;
  vklm_pass p = {.kind = VKLM_PASS_KV, .n = n, .B = n, .T = 1, .tokens = tokens,
                 .x0 = vklm_tensor_rows(s->x0, 0, n), .la = &s->la, .nla = 1,
                 .tmp = vklm_tensor_rows(s->tmp, 0, n), .rows = vklm_tensor_rows(s->rows, 0, n),
                 .kv = &s->kv, .ascratch = s->ascratch, .splits = splits};
  vklm_tensor lnf = vklm_tensor_rows(s->lnf, 0, k);
  if (!out_rows) { /* every row is an output row: the final norm fused with the last add */
    p.lnf = lnf;
    p.lnf_mean = vklm_tensor_rows(s->lnf_mean, 0, k);
    p.lnf_rstd = vklm_tensor_rows(s->lnf_rstd, 0, k);
  }
  vklm_tensor x, src;
  if ((st = vklm_graph_forward(m, cmd, &p, &x)) != VKLM_OK) goto graph_fail;
  src = vklm_tensor_rows(x, 0, k);
  if (out_rows) { /* gather (a copy: a row's offset need not meet the binding alignment) */
    for (uint32_t j = 0; j < k; j++) {
      vklm_buffer row = {x.buf.block, x.buf.offset + (uint64_t)out_rows[j] * C * 4,
                         (uint64_t)C * 4};
      vklm_buffer dst = {s->last.buf.block, s->last.buf.offset + (uint64_t)j * C * 4,
                         (uint64_t)C * 4};
      TRY(vklm_cmd_copy(cmd, row, dst, (uint64_t)C * 4));
    }
    src = vklm_tensor_rows(s->last, 0, k);
  }
  if ((out_rows && (st = vklm_graph_final_norm(m, cmd, lnf, vklm_tensor_rows(s->lnf_mean, 0, k),
                                               vklm_tensor_rows(s->lnf_rstd, 0, k), src)) !=
                      VKLM_OK) ||
      (st = vklm_graph_logits(m, cmd, vklm_tensor_rows(s->logits, 0, k), lnf)) != VKLM_OK)
    goto graph_fail;
  TRY(vklm_sample_rows(cmd, s->next, s->logits.buf, s->srows, s->spen, s->sscratch, k, V,
                       s->max_pen));
  TRY(vklm_cmd_end(cmd));
  return VKLM_OK;
graph_fail:
  return fail(s, st, "infer: %s", m->err);
}

/* Validates a step's requests: slots open and distinct, tokens in range, room in the context. */
static vklm_status check_reqs(vklm_infer *s, const vklm_infer_req *reqs, uint32_t count) {
  uint32_t V = s->m->cfg.vocab_size;
  if (count == 0) return fail(s, VKLM_ERROR_INVALID, "infer: a step with no requests");
  for (uint32_t i = 0; i < count; i++) {
    const vklm_infer_req *r = &reqs[i];
    if (r->slot >= s->S || !s->open[r->slot])
      return fail(s, VKLM_ERROR_INVALID, "infer: request %u: slot %u is not an open sequence "
                  "(%u slots)", i, r->slot, s->S);
    for (uint32_t j = 0; j < i; j++)
      if (reqs[j].slot == r->slot)
        return fail(s, VKLM_ERROR_INVALID, "infer: slot %u appears twice in one step", r->slot);
    if (r->n == 0 || !r->tokens)
      return fail(s, VKLM_ERROR_INVALID, "infer: request %u has no tokens", i);
    if ((uint64_t)s->pos[r->slot] + r->n > s->maxT)
      return fail(s, VKLM_ERROR_INVALID,
                  "context full: %u tokens in the cache + %u new > the context length %u "
                  "(raise -c, or use --ctx-shift)",
                  s->pos[r->slot], r->n, s->maxT);
    if (vklm_embedding_check_tokens(r->tokens, r->n, V, s->err, sizeof s->err))
      return VKLM_ERROR_INVALID;
  }
  return VKLM_OK;
}

vklm_status vklm_infer_step(vklm_infer *s, const vklm_infer_req *reqs, uint32_t count,
                            int32_t *next, float *logits) {
  uint32_t V = s->m->cfg.vocab_size;
  vklm_status st;
  if ((st = check_reqs(s, reqs, count)) != VKLM_OK) return st;
  uint32_t oreq[MAX_DECODE_CMDS], outs[MAX_DECODE_CMDS]; /* per output row: request, row */
  if (next)
    for (uint32_t i = 0; i < count; i++) next[i] = -1;
  /* walk the requests' rows in order, cutting passes of at most P rows */
  uint32_t ri = 0, off = 0; /* the next row: request ri, its token off */
  while (ri < count) {
    uint32_t n = 0, k = 0;
    while (ri < count && n < s->P) {
      const vklm_infer_req *r = &reqs[ri];
      uint32_t take = r->n - off < s->P - n ? r->n - off : s->P - n;
      for (uint32_t t = 0; t < take; t++) {
        s->htok[n + t] = r->tokens[off + t];
        s->hrows[2 * (n + t)] = s->pos[r->slot] + off + t;
        s->hrows[2 * (n + t) + 1] = r->slot;
      }
      n += take;
      off += take;
      if (off == r->n) {
        if (r->want) {
          if (k == MAX_DECODE_CMDS || k == s->K) { /* more outputs than a pass holds: cut */
            n -= take;
            off -= take;
            break;
          }
          outs[k] = n - 1;
          oreq[k++] = ri;
        }
        ri++;
        off = 0;
      }
    }
    if (n == 0) return fail(s, VKLM_ERROR_INVALID, "infer: internal: an empty pass");
    /* each output row's sampling parameters (greedy for requests without a sampler) */
    for (uint32_t j = 0; j < (k ? k : 1); j++) {
      vklm_sampler *smp = k ? reqs[oreq[j]].sampler : NULL;
      if (smp) {
        if ((st = vklm_sampler_fill_row(smp, &s->hsrows[j], s->hpen + (size_t)j * s->max_pen,
                                        s->max_pen)) != VKLM_OK)
          return fail(s, st, "infer: request %u: its repetition-penalty window has more "
                      "distinct tokens than the session's max_penalty (%u)", oreq[j], s->max_pen);
      } else {
        vklm_sampler_params g;
        vklm_sampler_params_default(&g);
        g.temp = 0, g.repeat_penalty = 1.0f;
        vklm_sample_row_set(&s->hsrows[j], &g, 0, 0);
      }
    }
    uint32_t kr = k ? k : 1, pen_rows = 0; /* penalty lists: only up to the last row with one */
    for (uint32_t j = 0; j < kr; j++)
      if (s->hsrows[j].n_pen) pen_rows = j + 1;
    TRY(vklm_buffer_upload(s->ctx, s->srows, 0, s->hsrows, (uint64_t)kr * sizeof *s->hsrows));
    if (pen_rows)
      TRY(vklm_buffer_upload(s->ctx, s->spen, 0, s->hpen, (uint64_t)pen_rows * s->max_pen * 4));
    TRY(vklm_buffer_upload(s->ctx, s->tokens.buf, 0, s->htok, (uint64_t)n * 4));
    TRY(vklm_buffer_upload(s->ctx, s->rows.buf, 0, s->hrows, (uint64_t)n * 8));
    int decode = k == n && n <= MAX_DECODE_CMDS; /* every row an output: a replayable step */
    vklm_cmd *cmd = s->pcmd;
    uint32_t kk = k ? k : 1; /* a pass with no output still norms one row (cheap, unread) */
    if (decode) {
      if (!s->dcmd[n]) {
        TRY(vklm_cmd_create(s->ctx, &s->dcmd[n]));
        /* one row per sequence: the one-row attention kernel (splits 0), never the tiled one */
        uint32_t dsp = s->dsplits > 1 ? s->dsplits : 0;
        if ((st = record_pass(s, s->dcmd[n], n, NULL, n, dsp)) != VKLM_OK) {
          vklm_cmd_destroy(s->dcmd[n]);
          s->dcmd[n] = NULL;
          return st;
        }
      }
      cmd = s->dcmd[n];
    } else {
      uint32_t last = n - 1;
      if ((st = record_pass(s, cmd, n, k ? outs : &last, kk, n <= s->K ? s->dsplits : 1)))
        return st;
    }
    TRY(vklm_cmd_run(cmd));
    if (k) {
      int32_t ids[MAX_DECODE_CMDS];
      TRY(vklm_buffer_download(s->ctx, s->next, 0, ids, (uint64_t)k * 4));
      for (uint32_t j = 0; j < k; j++) {
        if (logits) {
          uint32_t idx = 0; /* this request's rank among those wanting output */
          for (uint32_t q = 0; q < oreq[j]; q++) idx += reqs[q].want != 0;
          TRY(vklm_buffer_download(s->ctx, s->logits.buf, (uint64_t)j * V * 4,
                                   logits + (size_t)idx * V, (uint64_t)V * 4));
        }
        if (next) next[oreq[j]] = ids[j];
      }
    }
  }
  for (uint32_t i = 0; i < count; i++) s->pos[reqs[i].slot] += reqs[i].n;
  return VKLM_OK;
}

vklm_status vklm_infer_prefill(vklm_infer *s, const int32_t *tokens, uint32_t n, float *logits,
                               int32_t *next) {
  VKLM_ASSERT(n >= 1, "infer_prefill: no tokens");
  vklm_infer_req r = {.slot = 0, .tokens = tokens, .n = n, .want = 1};
  int32_t id;
  vklm_status st = vklm_infer_step(s, &r, 1, &id, logits);
  if (st == VKLM_OK && next) *next = id;
  return st;
}

vklm_status vklm_infer_decode(vklm_infer *s, int32_t token, float *logits, int32_t *next) {
  return vklm_infer_prefill(s, &token, 1, logits, next);
}

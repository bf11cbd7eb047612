/* The model object: memory layout (weights, gradients, AdamW moments and the (B,T) workspace in
 * four arenas, one buffer per tensor as the parameter table says), trainable / frozen tensors,
 * creation with its size checks (from scratch or from a tensor source keeping quantized
 * weights), GPT-2 initialisation, and host copies of the flat vectors. */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "ops/ops.h"

static _Thread_local char create_err[512];

vklm_status vklm_model_fail(vklm_model *m, vklm_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m ? m->err : create_err, m ? sizeof m->err : sizeof create_err, fmt, ap);
  va_end(ap);
  return st;
}

const char *vklm_model_error(const vklm_model *m) { return m ? m->err : create_err; }

const vklm_model_config *vklm_model_get_config(const vklm_model *m) { return &m->cfg; }
vklm_context *vklm_model_context(const vklm_model *m) { return m->ctx; }
uint32_t vklm_model_param_count(const vklm_model *m) { return m->ntensors; }
const vklm_param_info *vklm_model_param(const vklm_model *m, uint32_t i) {
  VKLM_ASSERT(i < m->ntensors, "parameter %u of %u", i, m->ntensors);
  return &m->info[i];
}
int vklm_model_param_trainable(const vklm_model *m, uint32_t i) {
  VKLM_ASSERT(i < m->ntensors, "parameter %u of %u", i, m->ntensors);
  return m->trains[i];
}
vklm_dtype vklm_model_param_dtype(const vklm_model *m, uint32_t i) {
  VKLM_ASSERT(i < m->ntensors, "parameter %u of %u", i, m->ntensors);
  return m->dtype[i];
}
int vklm_model_is_frozen(const vklm_model *m) { return !m->trainable; }
uint64_t vklm_model_num_params(const vklm_model *m) { return m->nparams; }
uint32_t vklm_model_batch(const vklm_model *m) { return m->B; }
uint32_t vklm_model_seq(const vklm_model *m) { return m->T; }
vklm_objective vklm_model_objective(const vklm_model *m) { return m->obj; }
int32_t vklm_model_mask_id(const vklm_model_config *cfg) { return (int32_t)cfg->vocab_size - 1; }

void vklm_model_config_from_table(vklm_model_config *cfg, const vklm_param_info *table,
                                  uint32_t n) {
  cfg->scalar_head = 0;
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(table[i].name, "score.weight")) cfg->scalar_head = 1;
}

void vklm_model_memory_get(const vklm_model *m, vklm_model_memory *out) {
  out->weights = vklm_arena_used(m->arena[A_PARAM]) +
                 (m->arena[A_HALF] ? vklm_arena_used(m->arena[A_HALF]) : 0);
  out->grads = m->arena[A_GRAD] ? vklm_arena_used(m->arena[A_GRAD]) : 0;
  out->moments = (m->arena[A_OPT] ? vklm_arena_used(m->arena[A_OPT]) : 0) +
                 (m->arena[A_VEL] ? vklm_arena_used(m->arena[A_VEL]) : 0);
  out->activations = m->arena[A_ACT] ? vklm_arena_used(m->arena[A_ACT]) : 0;
}

/* ---- tensors ------------------------------------------------------------------------------ */
uint32_t vklm_model_index(const vklm_model *m, vklm_param_id id, uint32_t l) {
  uint32_t i = m->first[id];
  if (i == UINT32_MAX) return i;
  if (m->info[i].layer >= 0) {
    VKLM_ASSERT(l < m->cfg.n_layer, "layer %u of %u", l, m->cfg.n_layer);
    i += l * m->layer_stride;
  }
  return i;
}

static vklm_tensor view(const vklm_model *m, uint32_t i, vklm_buffer b, uint32_t rows) {
  const vklm_param_info *t = &m->info[i];
  if (!b.block) return vklm_tensor_none();
  if (t->ndim == 1) return vklm_tensor_1d(b, m->dtype[i], t->shape[0]);
  return vklm_tensor_2d(b, m->dtype[i], rows, t->shape[1]);
}

static vklm_tensor one_slot(const vklm_model *m, const vklm_buffer *bufs, vklm_param_id id,
                            uint32_t l, int grad) {
  uint32_t i = vklm_model_index(m, id, l);
  if (i == UINT32_MAX || (grad && !m->trains[i])) return vklm_tensor_none();
  VKLM_ASSERT(m->slot_of[i + 1] - m->slot_of[i] == 1, "model: %s is split into %u chunks",
              m->info[i].name, m->slot_of[i + 1] - m->slot_of[i]);
  vklm_tensor t = view(m, i, bufs[m->slot_of[i]], m->info[i].shape[0]);
  if (grad) t.dtype = VKLM_DTYPE_F32;
  return t;
}
/* 16-bit copies are viewed in their dtype */
static vklm_tensor as_copy(const vklm_model *m, vklm_tensor t) {
  t.dtype = m->prec;
  return t;
}
vklm_tensor vklm_model_w(const vklm_model *m, vklm_param_id id, uint32_t l) {
  uint32_t i = vklm_model_index(m, id, l);
  if (i != UINT32_MAX && m->h && m->h[m->slot_of[i]].block)
    return as_copy(m, one_slot(m, m->h, id, l, 0));
  return one_slot(m, m->p, id, l, 0);
}
vklm_tensor vklm_model_gw(const vklm_model *m, vklm_param_id id, uint32_t l) {
  return one_slot(m, m->g, id, l, 1);
}

static vklm_tensor chunk(const vklm_model *m, const vklm_buffer *bufs, vklm_param_id id,
                         uint32_t k, uint32_t *v0, uint32_t *v1, int grad) {
  VKLM_ASSERT(id == VKLM_P_WTE || id == VKLM_P_LM_HEAD, "model: %d is no vocabulary matrix", id);
  uint32_t i = vklm_model_index(m, id, 0), V = m->cfg.vocab_size;
  VKLM_ASSERT(i != UINT32_MAX && k < m->nvchunks, "model: chunk %u of %u", k, m->nvchunks);
  VKLM_ASSERT(m->slot_of[i + 1] - m->slot_of[i] == m->nvchunks, "model: %s has %u slots",
              m->info[i].name, m->slot_of[i + 1] - m->slot_of[i]);
  uint64_t a = (uint64_t)k * m->vrows, b = a + m->vrows < V ? a + m->vrows : V;
  *v0 = (uint32_t)a;
  *v1 = (uint32_t)b;
  if (grad && !m->trains[i]) return vklm_tensor_none();
  vklm_tensor t = view(m, i, bufs[m->slot_of[i] + k], (uint32_t)(b - a));
  if (grad) t.dtype = VKLM_DTYPE_F32;
  return t;
}
vklm_tensor vklm_model_wchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1) {
  return chunk(m, m->p, id, k, v0, v1, 0);
}
vklm_tensor vklm_model_gchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1) {
  return chunk(m, m->g, id, k, v0, v1, 1);
}
vklm_tensor vklm_model_headchunk(const vklm_model *m, uint32_t k, uint32_t *v0, uint32_t *v1) {
  vklm_param_id id = vklm_model_head_id(m);
  uint32_t i = vklm_model_index(m, id, 0);
  if (i != UINT32_MAX && m->h && m->h[m->slot_of[i]].block)
    return as_copy(m, chunk(m, m->h, id, k, v0, v1, 0));
  return chunk(m, m->p, id, k, v0, v1, 0);
}
vklm_param_id vklm_model_head_id(const vklm_model *m) {
  return m->cfg.tie_embeddings ? VKLM_P_WTE : VKLM_P_LM_HEAD;
}

uint32_t vklm_model_vocab_rows(const vklm_model_config *cfg, uint64_t max_bytes) {
  uint64_t row = (uint64_t)cfg->n_embd * 4, V = cfg->vocab_size;
  if (max_bytes == 0 || row == 0 || V * row <= max_bytes) return (uint32_t)V;
  uint64_t r = max_bytes / row;
  return (uint32_t)(r ? r : 1);
}

/* ---- layout ------------------------------------------------------------------------------- */
static int linear_weight(const vklm_model *m, uint32_t i);
/* Tensors with a 16-bit copy under mixed precision: what the GEMMs read as weights. */
static int has_copy(const vklm_model *m, uint32_t i) {
  return linear_weight(m, i) || (m->pid[i] == VKLM_P_WTE && m->cfg.tie_embeddings);
}

static uint64_t slot_bytes(const vklm_model *m, uint32_t i, uint32_t s) {
  const vklm_param_info *t = &m->info[i];
  uint32_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
  uint32_t rows = t->ndim == 2 ? m->slot_count[s] / cols : 1;
  return vklm_dtype_buffer_bytes(m->dtype[i], rows, cols);
}

static vklm_status layout(vklm_planner *pl, vklm_model *m) {
  const vklm_model_config *c = &m->cfg;
  uint64_t B = m->B, T = m->T, BT = B * T, C = c->n_embd, V = c->vocab_size;
  uint64_t QKV = VKLM_MP_QKV(c), F = c->ffn_hidden, FC = VKLM_MP_FC(c);
  vklm_status st;
#define TAKE(k, bytes, out, ...)                                                                   \
  do {                                                                                             \
    if ((st = vklm_plan_take(pl, k, bytes, out, __VA_ARGS__)) != VKLM_OK) return st;               \
  } while (0)
  for (uint32_t i = 0; i < m->ntensors; i++)
    for (uint32_t s = m->slot_of[i], k = 0; s < m->slot_of[i + 1]; s++, k++) {
      const char *nm = m->info[i].name;
      char part[32] = "";
      if (m->slot_of[i + 1] - m->slot_of[i] > 1)
        snprintf(part, sizeof part, " (chunk %u of %u)", k, m->slot_of[i + 1] - m->slot_of[i]);
      TAKE(A_PARAM, slot_bytes(m, i, s), &m->p[s], "parameter %s%s", nm, part);
      if (m->prec != VKLM_DTYPE_F32 && has_copy(m, i))
        TAKE(A_HALF, ((uint64_t)m->slot_count[s] + 1) / 2 * 4, &m->h[s], "%s copy of %s%s",
             vklm_dtype_name(m->prec), nm, part);
      if (!m->trains[i]) continue;
      uint64_t fb = (uint64_t)m->slot_count[s] * 4;
      TAKE(A_GRAD, fb, &m->g[s], "gradient of %s%s", nm, part);
      if (m->no_moments) continue;
      TAKE(A_OPT, fb, &m->mom[s], "AdamW m of %s%s", nm, part);
      TAKE(A_VEL, fb, &m->vel[s], "AdamW v of %s%s", nm, part);
    }
  if (m->trainable) {
    TAKE(A_HOST, sizeof(vklm_adamw_step), &m->step_buf, "AdamW step values");
    TAKE(A_HOST, 16, &m->norm_buf, "gradient norm, clip scale, 1 / loss scale");
    uint64_t ns = 0;
    if (pl->ctx) {
      ns = vklm_grad_norm_scratch_size(pl->ctx, m->tcount, m->ntslots);
    } else {
      for (uint32_t s = 0; s < m->ntslots; s++) ns += ((uint64_t)m->tcount[s] / 128 + 64) * 4;
    }
    TAKE(A_OPT, ns, &m->norm_scratch, "gradient norm partials");
  }
  if (BT == 0) return VKLM_OK;
  vklm_workspace *w = &m->w;
  const int a = A_ACT;
  const vklm_dtype f = VKLM_DTYPE_F32, i32 = VKLM_DTYPE_I32;
  vklm_buffer b;
  const int h = A_HOST; /* uploaded or read every call: through the mapping */
  /* a (d0,d1) tensor of dtype dt (d1 == 0: 1-D) in arena k: TENSOR the activations', HTENSOR
   * the host-visible one */
#define TENSOR_IN(k, out, dt, d0, d1, ...)                                                         \
  do {                                                                                             \
    TAKE(k, (uint64_t)(d0) * ((d1) ? (d1) : 1) * 4, &b, __VA_ARGS__);                              \
    out = (d1) ? vklm_tensor_2d(b, dt, (uint32_t)(d0), (uint32_t)(d1))                             \
               : vklm_tensor_1d(b, dt, (uint32_t)(d0));                                            \
  } while (0)
#define TENSOR(...) TENSOR_IN(a, __VA_ARGS__)
#define HTENSOR(...) TENSOR_IN(h, __VA_ARGS__)
  HTENSOR(w->tokens, i32, B, T, "tokens (B,T)");
  HTENSOR(w->targets, i32, BT, 0, "targets (B,T)");
  HTENSOR(w->plan, i32, vklm_embedding_plan_size((uint32_t)BT), 0, "embedding plan");
  TENSOR(w->encoded, f, BT, C, "embedding output (B,T,C)");
  for (uint32_t l = 0; l < w->nla; l++)
    if ((st = vklm_graph_acts_plan(pl, a, c, m->B, m->T, 0, m->trainable ? m->prec : f,
                                   w->nla > 1 ? "h.%u" : "layers", l,
                                   m->recompute && l > 0 ? &w->la[0] : NULL, &w->la[l])) !=
        VKLM_OK)
      return st;
  TENSOR(w->lnf, f, BT, C, "lnf (B,T,C)");
  TENSOR(w->lnf_mean, f, BT, 0, "lnf mean");
  TENSOR(w->lnf_rstd, f, BT, 0, "lnf rstd");
  TENSOR(w->logits, f, m->lrows, V, "logits chunk (R,V)");
  HTENSOR(w->losses, f, BT, 0, "losses (B,T)");
  HTENSOR(w->rscale, f, BT, 0, "per-row loss scales (B,T)");
  HTENSOR(w->rmask, f, B, T, "sequence masks (B,T)");
  HTENSOR(w->seq, f, B, 0, "sequence log-probs (B)");
#undef HTENSOR
  if (c->scalar_head) {
    TENSOR(w->values, f, BT, 0, "scalar head values (B,T)");
    TENSOR(w->dvalues, f, BT, 1, "scalar head gradient (B,T)");
  }
  TENSOR(w->tmp, f, BT, C, "projection output (B,T,C)");
  if (!m->trainable) return VKLM_OK;
  TENSOR(w->dres, f, BT, C, "residual gradient (B,T,C)");
  TENSOR(w->dln, f, BT, C, "norm gradient (B,T,C)");
  TENSOR(w->datty, f, BT, C, "attention output gradient (B,T,C)");
  TENSOR(w->dqkv, f, BT, QKV, "qkv gradient (B,T,QKV)");
  if (c->arch != VKLM_ARCH_GPT2) /* GPT-2's GELU backward runs in the GEMM's epilogue */
    TENSOR(w->dact, f, BT, F, "MLP activation gradient (B,T,F)");
  else
    w->dact = vklm_tensor_none();
  TENSOR(w->dfch, f, BT, FC, "MLP hidden gradient (B,T,FC)");
  TAKE(a, B * c->n_head * T * 4, &w->scratch, "backward scratch");
  for (uint32_t k = 0; k <= 2 * c->n_layer; k++) { /* dry: the GPU chunking's estimate */
    uint64_t np = pl->ctx ? vklm_norm_partials_bytes(pl->ctx, (uint32_t)BT, (uint32_t)C,
                                                     c->arch != VKLM_ARCH_GPT2)
                          : 2ull * (BT < 256 ? BT : 256) * C * 4;
    TAKE(a, np, pl->dry ? &b : &w->npart[k], "norm %u gradient partials", k);
  }
  TAKE(a, vklm_norm_grads_table_bytes(2 * c->n_layer + 1), &w->ntable, "norm gradient table");
#undef TENSOR
#undef TENSOR_IN
#undef TAKE
  return VKLM_OK;
}

/* The storage slots of m's table (see model_internal.h). */
static vklm_status setup_slots(vklm_model *m) {
  uint32_t V = m->cfg.vocab_size;
  if (m->vrows == 0 || m->vrows > V) m->vrows = V;
  m->nvchunks = (V + m->vrows - 1) / m->vrows;
  m->nslots = 0;
  for (uint32_t i = 0; i < m->ntensors; i++)
    m->nslots += m->pid[i] == VKLM_P_WTE || m->pid[i] == VKLM_P_LM_HEAD ? m->nvchunks : 1;
  m->slot_of = calloc(m->ntensors + 1, sizeof *m->slot_of);
  m->slot_off = calloc(m->nslots, sizeof *m->slot_off);
  m->slot_count = calloc(m->nslots, sizeof *m->slot_count);
  m->p = calloc(m->nslots, sizeof *m->p);
  m->g = calloc(m->nslots, sizeof *m->g);
  m->mom = calloc(m->nslots, sizeof *m->mom);
  m->vel = calloc(m->nslots, sizeof *m->vel);
  m->tslots = calloc(m->nslots, sizeof *m->tslots);
  m->tcount = calloc(m->nslots, sizeof *m->tcount);
  m->tg = calloc(m->nslots, sizeof *m->tg);
  m->h = calloc(m->nslots, sizeof *m->h);
  if (!m->slot_of || !m->slot_off || !m->slot_count || !m->p || !m->g || !m->mom || !m->vel ||
      !m->tslots || !m->tcount || !m->tg || !m->h)
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
  uint32_t s = 0;
  for (uint32_t i = 0; i < m->ntensors; i++) {
    m->slot_of[i] = s;
    const vklm_param_info *t = &m->info[i];
    uint32_t first = s;
    if (m->pid[i] == VKLM_P_WTE || m->pid[i] == VKLM_P_LM_HEAD) {
      uint64_t C = t->shape[1];
      for (uint32_t k = 0; k < m->nvchunks; k++, s++) {
        uint64_t v0 = (uint64_t)k * m->vrows, v1 = v0 + m->vrows < V ? v0 + m->vrows : V;
        m->slot_off[s] = t->offset + v0 * C;
        m->slot_count[s] = (uint32_t)((v1 - v0) * C);
      }
    } else {
      m->slot_off[s] = t->offset;
      m->slot_count[s++] = (uint32_t)t->count;
    }
    if (m->trains[i])
      for (uint32_t k = first; k < s; k++) {
        m->tslots[m->ntslots] = k;
        m->tcount[m->ntslots++] = m->slot_count[k];
      }
  }
  m->slot_of[m->ntensors] = s;
  return VKLM_OK;
}

/* Applies the freeze / train patterns of opt to m->trains. */
static vklm_status apply_patterns(vklm_model *m, const char *list, int value) {
  char buf[1024];
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= sizeof buf)
      return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: a tensor pattern is too long");
    memcpy(buf, p, n);
    buf[n] = 0;
    if (n) {
      uint32_t hits = 0;
      for (uint32_t i = 0; i < m->ntensors; i++)
        if (fnmatch(buf, m->info[i].name, 0) == 0) m->trains[i] = (uint8_t)value, hits++;
      if (!hits)
        return vklm_model_fail(m, VKLM_ERROR_INVALID,
                               "model: the pattern '%s' matches no tensor (names look like "
                               "wte.weight, h.0.attn.qkv.weight, lnf.weight%s)",
                               buf, m->cfg.scalar_head ? ", score.weight" : "");
    }
    p += n + (e ? 1 : 0);
  }
  return VKLM_OK;
}

/* Fills the table part of m (cfg, B, T, vrows set); allocates the host arrays. */
static vklm_status setup_table(vklm_model *m, const vklm_model_options *opt) {
  uint32_t max = vklm_model_table_max(&m->cfg);
  m->info = calloc(max, sizeof *m->info);
  m->init = calloc(max, 1);
  m->pid = calloc(max, 1);
  m->trains = calloc(max, 1);
  m->dtype = calloc(max, sizeof *m->dtype);
  if (!m->info || !m->init || !m->pid || !m->trains || !m->dtype)
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
  m->nparams = vklm_model_table(&m->cfg, m->info, m->init, m->pid, &m->ntensors);
  int frozen = opt && opt->frozen;
  m->no_moments = opt && opt->no_moments;
  for (uint32_t i = 0; i < m->ntensors; i++) m->trains[i] = !frozen && !(opt && opt->train);
  vklm_status st;
  if (!frozen && opt && opt->train && (st = apply_patterns(m, opt->train, 1)) != VKLM_OK)
    return st;
  if (!frozen && opt && opt->freeze && (st = apply_patterns(m, opt->freeze, 0)) != VKLM_OK)
    return st;
  for (uint32_t i = 0; i + 1 < m->ntensors; i++) { /* LayerNorm: weight and bias together */
    int id = m->pid[i];
    if ((id == VKLM_P_LN1_W || id == VKLM_P_LN2_W || id == VKLM_P_LNF_W) &&
        m->pid[i + 1] == id + 1 && m->trains[i] != m->trains[i + 1])
      return vklm_model_fail(m, VKLM_ERROR_INVALID,
                             "model: %s and %s must train or stay frozen together",
                             m->info[i].name, m->info[i + 1].name);
  }
  m->trainable = 0;
  m->lowest_layer = (int)m->cfg.n_layer;
  for (uint32_t i = 0; i < m->ntensors; i++) {
    if (!m->trains[i]) continue;
    m->trainable = 1;
    int l = m->info[i].layer >= 0 ? m->info[i].layer : m->pid[i] == VKLM_P_WTE ||
                                                              m->pid[i] == VKLM_P_WPE
                                                          ? -1
                                                          : (int)m->cfg.n_layer;
    if (l < m->lowest_layer) m->lowest_layer = l;
  }
  if ((st = setup_slots(m)) != VKLM_OK) return st;
  m->prec = opt ? opt->precision : VKLM_DTYPE_F32;
  if (m->prec != VKLM_DTYPE_F32 && m->prec != VKLM_DTYPE_F16 && m->prec != VKLM_DTYPE_BF16)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: precision %s: f32, f16 or bf16",
                           vklm_dtype_name(m->prec));
  if (m->prec != VKLM_DTYPE_F32 && !m->trainable)
    return vklm_model_fail(m, VKLM_ERROR_INVALID,
                           "model: mixed precision (%s) is for training: a frozen model keeps "
                           "its weights in the dtype they are loaded in",
                           vklm_dtype_name(m->prec));
  m->loss_scale = 1.0f;
  m->w.nla = m->trainable ? m->cfg.n_layer : 1;
  m->recompute = opt && opt->recompute && m->trainable;
  m->w.la = calloc(m->w.nla, sizeof *m->w.la);
  if (!m->w.la) return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  if (m->trainable) { /* the norms' partials (model_internal.h) */
    m->w.npart = calloc(2 * (size_t)m->cfg.n_layer + 1, sizeof *m->w.npart);
    m->w.npend = calloc(2 * (size_t)m->cfg.n_layer + 1, sizeof *m->w.npend);
    if (!m->w.npart || !m->w.npend)
      return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  }
  uint32_t BT = m->B * m->T;
  m->nchunks = BT ? (BT + m->lrows - 1) / m->lrows : 0;
  m->host_f = calloc(BT ? BT : 1, sizeof *m->host_f);
  if (!m->host_f) return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  for (int i = 0; i < VKLM_P_COUNT; i++) m->first[i] = UINT32_MAX;
  m->layer_stride = 0;
  for (uint32_t i = 0; i < m->ntensors; i++) {
    if (m->first[m->pid[i]] == UINT32_MAX) m->first[m->pid[i]] = i;
    if (m->info[i].layer == 0) m->layer_stride++;
  }
  return VKLM_OK;
}

static void free_host(vklm_model *m) {
  free(m->info);
  free(m->init);
  free(m->pid);
  free(m->trains);
  free(m->dtype);
  free(m->p);
  free(m->g);
  free(m->mom);
  free(m->vel);
  free(m->tslots);
  free(m->tcount);
  free(m->tg);
  free(m->h);
  free(m->slot_of);
  free(m->slot_off);
  free(m->slot_count);
  free(m->w.la);
  free(m->w.npart);
  free(m->w.npend);
  free(m->host_f);
  free(m->st_tok);
  free(m->st_tg);
  free(m->st_plan);
}

uint64_t vklm_model_config_bytes(const vklm_model_config *cfg, uint32_t B, uint32_t T) {
  if (B == 0 || T == 0 || vklm_model_config_check(cfg, NULL, 0) != VKLM_OK) return 0;
  vklm_model tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.cfg = *cfg;
  tmp.B = B;
  tmp.T = T;
  tmp.lrows = vklm_model_logits_rows(cfg, B, T, 0, 0);
  uint64_t total = 0;
  if (setup_table(&tmp, NULL) == VKLM_OK) {
    vklm_planner pl = {.dry = 1, .align = 256};
    if (layout(&pl, &tmp) == VKLM_OK) total = pl.total;
  }
  free_host(&tmp);
  return total;
}

void vklm_model_destroy(vklm_model *m) {
  if (!m) return;
  for (int i = CMD_COUNT; i-- > 0;) vklm_cmd_destroy(m->cmd[i]);
  vklm_model_parts_free(m);
  for (int k = A_COUNT; k-- > 0;) vklm_arena_destroy(m->arena[k]);
  free_host(m);
  free(m);
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

/* A linear layer's weight (the only tensors that may be held in another dtype). */
static int linear_weight(const vklm_model *m, uint32_t i) {
  int id = m->pid[i];
  return id == VKLM_P_QKV_W || id == VKLM_P_ATTO_W || id == VKLM_P_FC_W || id == VKLM_P_PROJ_W ||
         id == VKLM_P_LM_HEAD;
}

/* Uploads every tensor from the sources read_sources collected; conv[i]: the source holds fp32
 * and the device fp16 (options.weight_dtype), converted slot by slot. */
static vklm_status upload_from(vklm_model *m, const void *const *src, const uint8_t *conv) {
  for (uint32_t i = 0; i < m->ntensors; i++) {
    const vklm_param_info *t = &m->info[i];
    uint32_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
    for (uint32_t s = m->slot_of[i]; s < m->slot_of[i + 1]; s++) {
      uint32_t r0 = (uint32_t)((m->slot_off[s] - t->offset) / cols);
      uint64_t off = vklm_dtype_bytes(conv[i] ? VKLM_DTYPE_F32 : m->dtype[i], r0, cols);
      uint64_t bytes = vklm_dtype_bytes(m->dtype[i], t->ndim == 2 ? m->slot_count[s] / cols : 1,
                                        cols);
      const void *from = (const uint8_t *)src[i] + off;
      uint32_t *half = NULL;
      if (conv[i]) {
        if (!(half = malloc(((size_t)m->slot_count[s] + 1) / 2 * 4)))
          return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
        vklm_convert_f32_to_f16_ref(half, from, m->slot_count[s]);
        from = half;
      }
      vklm_status st = vklm_buffer_upload(m->ctx, m->p[s], 0, from, bytes);
      free(half);
      if (st != VKLM_OK)
        return vklm_model_fail(m, st, "model: uploading %s failed: %s", t->name,
                               vklm_context_error(m->ctx));
    }
  }
  return VKLM_OK;
}

/* Asks get() once for every tensor: its data (into src) and dtype (before the layout, which sizes
 * the weight buffers by them), checked. */
static vklm_status read_sources(vklm_model *m, vklm_model_tensor_fn get, void *user,
                                vklm_dtype convert, const void **src, uint8_t *conv) {
  char e2[400];
  for (uint32_t i = 0; i < m->ntensors; i++) {
    const vklm_param_info *t = &m->info[i];
    vklm_model_tensor one = {0};
    e2[0] = 0;
    vklm_status st = get(user, t, &one, e2, sizeof e2);
    if (st != VKLM_OK)
      return vklm_model_fail(m, st, "model: tensor %s: %s", t->name, e2[0] ? e2 : "missing");
    if (!one.data) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: %s has no data", t->name);
    vklm_dtype dt = one.dtype;
    int ok = dt == VKLM_DTYPE_F32 ||
             (linear_weight(m, i) && (unsigned)dt < VKLM_DTYPE_LINEAR_COUNT &&
              (!vklm_dtype_is_block(dt) || t->shape[1] % 32 == 0));
    if (!ok)
      return vklm_model_fail(m, VKLM_ERROR_INVALID,
                             "model: %s in %s: only linear weights may be other than f32 (f16, "
                             "q8_0, q4_0 with rows a multiple of 32)",
                             t->name, vklm_dtype_name(dt));
    if (convert == VKLM_DTYPE_F16 && dt == VKLM_DTYPE_F32 && linear_weight(m, i))
      dt = VKLM_DTYPE_F16, conv[i] = 1;
    m->dtype[i] = dt;
    src[i] = one.data;
  }
  return VKLM_OK;
}

static vklm_status create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                          uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                          vklm_model_tensor_fn get, void *user, vklm_model **out) {
  *out = NULL;
  create_err[0] = 0;
  char err[256];
  vklm_status st = vklm_model_config_check(cfg, err, sizeof err);
  if (st != VKLM_OK) return vklm_model_fail(NULL, st, "%s", err);
  if ((B == 0) != (T == 0) || T > cfg->max_seq)
    return vklm_model_fail(NULL, VKLM_ERROR_INVALID,
                           "model: batch B=%u T=%u invalid (need B >= 1, 1 <= T <= max_seq %u; "
                           "or both 0 for weights alone)", B, T, cfg->max_seq);
  if (obj != VKLM_OBJ_CAUSAL && obj != VKLM_OBJ_MLM)
    return vklm_model_fail(NULL, VKLM_ERROR_INVALID, "model: unknown objective %d", (int)obj);
  uint64_t BT = (uint64_t)B * T;
  if (BT * VKLM_MP_FC(cfg) >= (1ull << 32) || BT * VKLM_MP_QKV(cfg) >= (1ull << 32) ||
      BT >= (1u << 24))
    return vklm_model_fail(NULL, VKLM_ERROR_INVALID,
                           "model: B*T = %llu too large: B*T*%u (the MLP's hidden activations) "
                           "must be < 2^32 elements and B*T < 2^24",
                           (unsigned long long)BT, VKLM_MP_FC(cfg));
  const vklm_caps *caps = vklm_context_caps(ctx);
  vklm_model *m = calloc(1, sizeof *m);
  if (!m) return vklm_model_fail(NULL, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  const void **src = NULL; /* the tensor source's data, by table index */
  uint8_t *conv = NULL;     /* and whether it is converted to fp16 on upload */
  m->ctx = ctx;
  m->cfg = *cfg;
  m->B = B;
  m->T = T;
  m->obj = obj;
  float ls = opt && opt->logit_scale != 0.0f ? opt->logit_scale : 1.0f;
  if (!(ls > 0.0f) || !isfinite(ls)) {
    free(m);
    return vklm_model_fail(NULL, VKLM_ERROR_INVALID, "model: logit_scale %g is not a positive "
                           "number", (double)ls);
  }
  m->lscale = ls;
  m->lrows = BT ? vklm_model_logits_rows(cfg, B, T, opt ? opt->logits_rows : 0,
                                         caps->max_storage_buffer_range)
                : 0;
  /* vocabulary matrices larger than one bindable buffer (or opt's cap) go in row chunks */
  uint64_t vmax = caps->max_storage_buffer_range < caps->max_allocation_size
                      ? caps->max_storage_buffer_range
                      : caps->max_allocation_size;
  if (opt && opt->max_tensor_bytes && opt->max_tensor_bytes < vmax) vmax = opt->max_tensor_bytes;
  m->vrows = vklm_model_vocab_rows(cfg, vmax);
  vklm_model_options o = opt ? *opt : (vklm_model_options){0};
  if (get) o.frozen = 1;
  if ((st = setup_table(m, &o)) != VKLM_OK) goto fail;
  if (o.weight_dtype != VKLM_DTYPE_F32 && (o.weight_dtype != VKLM_DTYPE_F16 || !get)) {
    st = vklm_model_fail(m, VKLM_ERROR_INVALID, "model: weight_dtype %s: f16 (converted on "
                         "load, from a tensor source) or f32", vklm_dtype_name(o.weight_dtype));
    goto fail;
  }
  if (get && (!(src = calloc(m->ntensors, sizeof *src)) || !(conv = calloc(m->ntensors, 1)))) {
    st = vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
    goto fail;
  }
  if (get && (st = read_sources(m, get, user, o.weight_dtype, src, conv)) != VKLM_OK) goto fail;
  /* Size checks before any allocation. */
  vklm_planner dry = {.ctx = ctx, .dry = 1, .align = vklm_buffer_alignment(ctx)};
  if (dry.align < 4) dry.align = 4;
  if ((st = layout(&dry, m)) != VKLM_OK) goto fail;
  if (dry.total > caps->device_local_bytes) {
    st = vklm_model_fail(m, VKLM_ERROR_OUT_OF_DEVICE_MEMORY,
                         "model: %llu parameters with B=%u T=%u need %.1f MiB of device memory "
                         "(weights %.1f, gradients %.1f, AdamW moments %.1f, activations %.1f); "
                         "the device %s has %.1f MiB",
                         (unsigned long long)m->nparams, B, T, mib(dry.total),
                         mib(dry.arena_bytes[A_PARAM] + dry.arena_bytes[A_HALF]),
                         mib(dry.arena_bytes[A_GRAD]),
                         mib(dry.arena_bytes[A_OPT] + dry.arena_bytes[A_VEL]),
                         mib(dry.arena_bytes[A_ACT]), caps->name,
                         mib(caps->device_local_bytes));
    goto fail;
  }
  if (dry.biggest > caps->max_storage_buffer_range || dry.biggest > caps->max_allocation_size) {
    st = vklm_model_fail(m, VKLM_ERROR_UNSUPPORTED,
                         "model: %s needs %.1f MiB in one buffer, more than the device's "
                         "maxStorageBufferRange (%.1f MiB) / maxMemoryAllocationSize (%.1f MiB); "
                         "only the logits and the (V,C) vocabulary matrices are split into "
                         "chunks: use a smaller n_embd, MLP size or B*T",
                         dry.biggest_name, mib(dry.biggest), mib(caps->max_storage_buffer_range),
                         mib(caps->max_allocation_size));
    goto fail;
  }
  /* Each arena's blocks are as large as the arena needs in all (the runtime clamps them to the
   * largest bindable range): a small model takes exactly its size, a large one few blocks. */
  for (int k = 0; k < A_COUNT; k++) {
    if (!dry.arena_bytes[k]) continue;
    if ((st = k == A_HOST ? vklm_arena_create_host(ctx, dry.arena_bytes[k], &m->arena[k])
                          : vklm_arena_create(ctx, dry.arena_bytes[k], &m->arena[k])) != VKLM_OK) {
      st = vklm_model_fail(m, st, "model: creating an arena failed: %s", vklm_context_error(ctx));
      goto fail;
    }
  }
  for (int k = 0; k < CMD_COUNT; k++)
    if ((st = vklm_cmd_create(ctx, &m->cmd[k])) != VKLM_OK) {
      st = vklm_model_fail(m, st, "model: creating a command buffer failed: %s",
                           vklm_context_error(ctx));
      goto fail;
    }
  vklm_planner pl = {.ctx = ctx, .dry = 0, .align = dry.align};
  memcpy(pl.arena, m->arena, sizeof pl.arena);
  if ((st = layout(&pl, m)) != VKLM_OK) {
    vklm_model_fail(m, st, "%s", pl.err);
    goto fail;
  }
  for (uint32_t k = 0; k < m->ntslots; k++) m->tg[k] = m->g[m->tslots[k]];
  if (get) {
    if ((st = upload_from(m, src, conv)) != VKLM_OK) goto fail;
  } else {
    /* zero weights, gradients and moments */
    vklm_cmd *c = m->cmd[CMD_UPDATE];
    if ((st = vklm_cmd_begin(c)) != VKLM_OK) goto vkfail;
    for (uint32_t s = 0; s < m->nslots; s++) {
      vklm_buffer bs[4] = {m->p[s], m->g[s], m->mom[s], m->vel[s]};
      for (int k = 0; k < 4; k++)
        if (bs[k].block && (st = vklm_cmd_fill_words(c, bs[k], 0)) != VKLM_OK) goto vkfail;
    }
    if ((st = vklm_cmd_end(c)) != VKLM_OK || (st = vklm_cmd_run(c)) != VKLM_OK) goto vkfail;
  }
  free(src);
  free(conv);
  *out = m;
  return VKLM_OK;
vkfail:
  vklm_model_fail(m, st, "model: clearing buffers failed: %s", vklm_context_error(ctx));
fail:
  free(src);
  free(conv);
  snprintf(create_err, sizeof create_err, "%s", m->err);
  vklm_model_destroy(m);
  return st;
}

vklm_status vklm_model_create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                              uint32_t T, vklm_objective obj, vklm_model **out) {
  return create(ctx, cfg, B, T, obj, NULL, NULL, NULL, out);
}

vklm_status vklm_model_create_ex(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                 uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                 vklm_model **out) {
  return create(ctx, cfg, B, T, obj, opt, NULL, NULL, out);
}

vklm_status vklm_model_create_from(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                   uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                   vklm_model_tensor_fn get, void *user, vklm_model **out,
                                   char *err, size_t errlen) {
  vklm_status st = create(ctx, cfg, B, T, obj, opt, get, user, out);
  if (st != VKLM_OK && err) snprintf(err, errlen, "%s", create_err);
  return st;
}

static vklm_status flat_get(void *user, const vklm_param_info *info, vklm_model_tensor *out,
                            char *err, size_t errlen) {
  (void)err, (void)errlen;
  out->data = (const float *)user + info->offset;
  out->dtype = VKLM_DTYPE_F32;
  return VKLM_OK;
}

vklm_status vklm_model_create_f32(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                  uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                  const float *params, vklm_model **out, char *err,
                                  size_t errlen) {
  return vklm_model_create_from(ctx, cfg, B, T, obj, opt, flat_get, (void *)params, out, err,
                                errlen);
}

/* ---- initialisation ----------------------------------------------------------------------- */
static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double uniform01(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0; }

vklm_status vklm_model_init(vklm_model *m, uint64_t seed) {
  float *x = malloc(m->nparams * sizeof *x);
  if (!x) return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model init: out of memory");
  uint64_t s = seed ^ 0x5eed5eed5eedull;
  double resid = 0.02 / sqrt(2.0 * m->cfg.n_layer);
  for (uint32_t i = 0; i < m->ntensors; i++) {
    float *p = x + m->info[i].offset;
    uint64_t n = m->info[i].count;
    double std = m->init[i] == VKLM_INIT_RESID ? resid : 0.02;
    switch (m->init[i]) {
    case VKLM_INIT_ONE:
      for (uint64_t k = 0; k < n; k++) p[k] = 1.0f;
      break;
    case VKLM_INIT_ZERO:
      memset(p, 0, n * sizeof *p);
      break;
    default:
      for (uint64_t k = 0; k < n; k += 2) { /* Box-Muller, two normals per pair of uniforms */
        double u1 = uniform01(&s), u2 = uniform01(&s), r = sqrt(-2.0 * log(u1));
        p[k] = (float)(std * r * cos(2 * M_PI * u2));
        if (k + 1 < n) p[k + 1] = (float)(std * r * sin(2 * M_PI * u2));
      }
    }
  }
  vklm_status st = vklm_model_set_params(m, x);
  free(x);
  return st;
}

/* ---- host copies -------------------------------------------------------------------------- */
static vklm_status copy_vec(vklm_model *m, vklm_buffer *bufs, float *host, int up,
                            const char *what) {
  vklm_status st0 = vklm_model_settle(m); /* a pipelined step still running */
  if (st0 != VKLM_OK) return st0;
  for (uint32_t i = 0; i < m->ntensors; i++) {
    if (m->dtype[i] != VKLM_DTYPE_F32)
      return vklm_model_fail(m, VKLM_ERROR_UNSUPPORTED,
                             "model: %s is held in %s: no fp32 %s vector", m->info[i].name,
                             vklm_dtype_name(m->dtype[i]), what);
    for (uint32_t s = m->slot_of[i]; s < m->slot_of[i + 1]; s++) { /* chunks gather/scatter */
      float *h = host + m->slot_off[s];
      uint64_t bytes = (uint64_t)m->slot_count[s] * 4;
      if (!bufs[s].block) { /* a frozen tensor's gradient or moment */
        if (!up) memset(h, 0, bytes);
        continue;
      }
      vklm_status st = up ? vklm_buffer_upload(m->ctx, bufs[s], 0, h, bytes)
                          : vklm_buffer_download(m->ctx, bufs[s], 0, h, bytes);
      if (st != VKLM_OK)
        return vklm_model_fail(m, st, "model: %s %s of %s failed: %s",
                               up ? "upload" : "download", what, m->info[i].name,
                               vklm_context_error(m->ctx));
    }
  }
  return VKLM_OK;
}

vklm_status vklm_model_get_params(vklm_model *m, float *out) {
  return copy_vec(m, m->p, out, 0, "parameters");
}
/* The 16-bit copies of the weights in (the flat vector), converted as AdamW converts. */
static vklm_status upload_copies(vklm_model *m, const float *in) {
  if (m->prec == VKLM_DTYPE_F32) return VKLM_OK;
  uint32_t most = 0;
  for (uint32_t s = 0; s < m->nslots; s++)
    if (m->h[s].block && m->slot_count[s] > most) most = m->slot_count[s];
  uint32_t *tmp = malloc(((size_t)most + 2) / 2 * 4);
  if (!tmp) return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  vklm_status st = VKLM_OK;
  for (uint32_t s = 0; s < m->nslots && st == VKLM_OK; s++) {
    if (!m->h[s].block) continue;
    uint32_t n = m->slot_count[s];
    if (m->prec == VKLM_DTYPE_BF16) vklm_convert_f32_to_bf16_ref(tmp, in + m->slot_off[s], n);
    else vklm_convert_f32_to_f16_ref(tmp, in + m->slot_off[s], n);
    st = vklm_buffer_upload(m->ctx, m->h[s], 0, tmp, ((uint64_t)n + 1) / 2 * 4);
    if (st != VKLM_OK)
      vklm_model_fail(m, st, "model: uploading the %s weight copies failed: %s",
                      vklm_dtype_name(m->prec), vklm_context_error(m->ctx));
  }
  free(tmp);
  return st;
}
vklm_status vklm_model_set_params(vklm_model *m, const float *in) {
  vklm_status st = copy_vec(m, m->p, (float *)in, 1, "parameters");
  return st != VKLM_OK ? st : upload_copies(m, in);
}
vklm_status vklm_model_get_grads(vklm_model *m, float *out) {
  return copy_vec(m, m->g, out, 0, "gradients");
}
vklm_status vklm_model_set_grads(vklm_model *m, const float *in) {
  return copy_vec(m, m->g, (float *)in, 1, "gradients");
}
vklm_status vklm_model_get_moments(vklm_model *m, float *m_out, float *v_out) {
  vklm_status st = copy_vec(m, m->mom, m_out, 0, "AdamW m");
  return st != VKLM_OK ? st : copy_vec(m, m->vel, v_out, 0, "AdamW v");
}
vklm_status vklm_model_set_moments(vklm_model *m, const float *m_in, const float *v_in) {
  vklm_status st = copy_vec(m, m->mom, (float *)m_in, 1, "AdamW m");
  return st != VKLM_OK ? st : copy_vec(m, m->vel, (float *)v_in, 1, "AdamW v");
}

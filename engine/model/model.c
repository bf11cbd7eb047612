/* The model object: memory layout (parameters, gradients, AdamW moments and activations in four
 * arenas, one buffer per tensor as the parameter table says), creation with its size checks,
 * GPT-2 initialisation, and host copies of the flat vectors. */
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
uint32_t vklm_model_param_count(const vklm_model *m) { return m->ntensors; }
const vklm_param_info *vklm_model_param(const vklm_model *m, uint32_t i) {
  VKLM_ASSERT(i < m->ntensors, "parameter %u of %u", i, m->ntensors);
  return &m->info[i];
}
uint64_t vklm_model_num_params(const vklm_model *m) { return m->nparams; }
uint32_t vklm_model_batch(const vklm_model *m) { return m->B; }
uint32_t vklm_model_seq(const vklm_model *m) { return m->T; }
vklm_objective vklm_model_objective(const vklm_model *m) { return m->obj; }
int32_t vklm_model_mask_id(const vklm_model_config *cfg) { return (int32_t)cfg->vocab_size - 1; }

static uint32_t index_of(const vklm_model *m, vklm_param_id id, uint32_t l) {
  uint32_t i = m->first[id];
  if (i == UINT32_MAX) return i;
  if (m->info[i].layer >= 0) {
    VKLM_ASSERT(l < m->cfg.n_layer, "layer %u of %u", l, m->cfg.n_layer);
    i += l * m->layer_stride;
  }
  return i;
}
static vklm_buffer one_slot(const vklm_model *m, const vklm_buffer *bufs, vklm_param_id id,
                            uint32_t l) {
  uint32_t i = index_of(m, id, l);
  if (i == UINT32_MAX) return (vklm_buffer){0};
  VKLM_ASSERT(m->slot_of[i + 1] - m->slot_of[i] == 1, "model: %s is split into %u chunks",
              m->info[i].name, m->slot_of[i + 1] - m->slot_of[i]);
  return bufs[m->slot_of[i]];
}
vklm_buffer vklm_model_pbuf(const vklm_model *m, vklm_param_id id, uint32_t l) {
  return one_slot(m, m->p, id, l);
}
vklm_buffer vklm_model_gbuf(const vklm_model *m, vklm_param_id id, uint32_t l) {
  return one_slot(m, m->g, id, l);
}

static vklm_buffer chunk(const vklm_model *m, const vklm_buffer *bufs, vklm_param_id id,
                         uint32_t k, uint32_t *v0, uint32_t *v1) {
  VKLM_ASSERT(id == VKLM_P_WTE || id == VKLM_P_LM_HEAD, "model: %d is no vocabulary matrix", id);
  uint32_t i = index_of(m, id, 0), V = m->cfg.vocab_size;
  VKLM_ASSERT(i != UINT32_MAX && k < m->nvchunks, "model: chunk %u of %u", k, m->nvchunks);
  VKLM_ASSERT(m->slot_of[i + 1] - m->slot_of[i] == m->nvchunks, "model: %s has %u slots",
              m->info[i].name, m->slot_of[i + 1] - m->slot_of[i]);
  uint64_t a = (uint64_t)k * m->vrows, b = a + m->vrows < V ? a + m->vrows : V;
  *v0 = (uint32_t)a;
  *v1 = (uint32_t)b;
  return bufs[m->slot_of[i] + k];
}
vklm_buffer vklm_model_pchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1) {
  return chunk(m, m->p, id, k, v0, v1);
}
vklm_buffer vklm_model_gchunk(const vklm_model *m, vklm_param_id id, uint32_t k, uint32_t *v0,
                              uint32_t *v1) {
  return chunk(m, m->g, id, k, v0, v1);
}

uint32_t vklm_model_vocab_rows(const vklm_model_config *cfg, uint64_t max_bytes) {
  uint64_t row = (uint64_t)cfg->n_embd * 4, V = cfg->vocab_size;
  if (max_bytes == 0 || row == 0 || V * row <= max_bytes) return (uint32_t)V;
  uint64_t r = max_bytes / row;
  return (uint32_t)(r ? r : 1);
}

/* ---- layout: one walk serves the size estimate (dry) and the allocation ------------------- */
enum { A_PARAM, A_GRAD, A_OPT, A_ACT, A_COUNT };

typedef struct planner {
  vklm_model *m;
  int dry;
  uint32_t align;
  uint64_t total;
  uint64_t arena_bytes[A_COUNT];
  uint64_t biggest;
  char biggest_name[80];
} planner;

static vklm_status take(planner *pl, int kind, uint64_t bytes, vklm_buffer *out,
                        const char *what) {
  if (bytes == 0) bytes = 4;
  uint64_t rounded = (bytes + pl->align - 1) / pl->align * pl->align;
  pl->total += rounded;
  pl->arena_bytes[kind] += rounded;
  vklm_arena *arenas[A_COUNT] = {pl->m->a_param, pl->m->a_grad, pl->m->a_opt, pl->m->a_act};
  vklm_arena *a = arenas[kind];
  if (bytes > pl->biggest) {
    pl->biggest = bytes;
    snprintf(pl->biggest_name, sizeof pl->biggest_name, "%s", what);
  }
  if (pl->dry) {
    *out = (vklm_buffer){0};
    return VKLM_OK;
  }
  vklm_status st = vklm_arena_alloc(a, bytes, out);
  if (st != VKLM_OK)
    return vklm_model_fail(pl->m, st, "model: allocating %s (%llu bytes) failed: %s", what,
                           (unsigned long long)bytes, vklm_context_error(pl->m->ctx));
  return VKLM_OK;
}

static vklm_status layout(planner *pl) {
  vklm_model *m = pl->m;
  const vklm_model_config *c = &m->cfg;
  uint64_t B = m->B, T = m->T, BT = B * T, C = c->n_embd, V = c->vocab_size;
  uint64_t QKV = VKLM_MP_QKV(c), F = c->ffn_hidden, FC = VKLM_MP_FC(c), NH = c->n_head;
  vklm_status st;
  char what[96];
#define TAKE(arena, bytes, out, ...)                                                               \
  do {                                                                                             \
    snprintf(what, sizeof what, __VA_ARGS__);                                                      \
    if ((st = take(pl, arena, bytes, out, what)) != VKLM_OK) return st;                            \
  } while (0)
  for (uint32_t i = 0; i < m->ntensors; i++)
    for (uint32_t s = m->slot_of[i], k = 0; s < m->slot_of[i + 1]; s++, k++) {
      uint64_t bytes = (uint64_t)m->slot_count[s] * 4;
      const char *nm = m->info[i].name;
      char part[32] = "";
      if (m->slot_of[i + 1] - m->slot_of[i] > 1)
        snprintf(part, sizeof part, " (chunk %u of %u)", k, m->slot_of[i + 1] - m->slot_of[i]);
      TAKE(A_PARAM, bytes, &m->p[s], "parameter %s%s", nm, part);
      TAKE(A_GRAD, bytes, &m->g[s], "gradient of %s%s", nm, part);
      TAKE(A_OPT, bytes, &m->mom[s], "AdamW m of %s%s", nm, part);
      TAKE(A_OPT, bytes, &m->vel[s], "AdamW v of %s%s", nm, part);
    }
  const int a = A_ACT;
  TAKE(a, BT * 4, &m->tokens, "tokens (B,T)");
  TAKE(a, BT * 4, &m->targets, "targets (B,T)");
  TAKE(a, vklm_embedding_plan_size((uint32_t)BT) * 4, &m->plan, "embedding plan");
  TAKE(a, BT * C * 4, &m->encoded, "embedding output (B,T,C)");
  for (uint32_t l = 0; l < c->n_layer; l++) {
    vklm_layer_acts *la = &m->la[l];
    TAKE(a, BT * C * 4, &la->ln1, "h.%u ln1 (B,T,C)", l);
    TAKE(a, BT * 4, &la->ln1_mean, "h.%u ln1 mean", l);
    TAKE(a, BT * 4, &la->ln1_rstd, "h.%u ln1 rstd", l);
    TAKE(a, BT * QKV * 4, &la->qkv, "h.%u qkv (B,T,QKV)", l);
    TAKE(a, BT * C * 4, &la->atty, "h.%u attention output (B,T,C)", l);
    TAKE(a, B * NH * T * 4, &la->lse, "h.%u attention lse (B,NH,T)", l);
    TAKE(a, BT * C * 4, &la->res2, "h.%u residual (B,T,C)", l);
    TAKE(a, BT * C * 4, &la->ln2, "h.%u ln2 (B,T,C)", l);
    TAKE(a, BT * 4, &la->ln2_mean, "h.%u ln2 mean", l);
    TAKE(a, BT * 4, &la->ln2_rstd, "h.%u ln2 rstd", l);
    TAKE(a, BT * FC * 4, &la->fch, "h.%u MLP hidden (B,T,FC)", l);
    TAKE(a, BT * F * 4, &la->act, "h.%u MLP activation (B,T,F)", l);
    TAKE(a, BT * C * 4, &la->res3, "h.%u output (B,T,C)", l);
  }
  TAKE(a, BT * C * 4, &m->lnf, "lnf (B,T,C)");
  TAKE(a, BT * 4, &m->lnf_mean, "lnf mean");
  TAKE(a, BT * 4, &m->lnf_rstd, "lnf rstd");
  TAKE(a, (uint64_t)m->lrows * V * 4, &m->logits, "logits chunk (R,V)");
  TAKE(a, BT * 4, &m->losses, "losses (B,T)");
  TAKE(a, 4, &m->dloss, "dloss");
  TAKE(a, 4, &m->loss, "loss");
  TAKE(a, BT * C * 4, &m->tmp, "projection output (B,T,C)");
  TAKE(a, BT * C * 4, &m->dres, "residual gradient (B,T,C)");
  TAKE(a, BT * C * 4, &m->dln, "norm gradient (B,T,C)");
  TAKE(a, BT * C * 4, &m->datty, "attention output gradient (B,T,C)");
  TAKE(a, BT * QKV * 4, &m->dqkv, "qkv gradient (B,T,QKV)");
  TAKE(a, BT * F * 4, &m->dact, "MLP activation gradient (B,T,F)");
  TAKE(a, BT * FC * 4, &m->dfch, "MLP hidden gradient (B,T,FC)");
  uint64_t s1 = vklm_norm_backward_scratch_bytes(m->ctx, (uint32_t)BT, (uint32_t)C);
  uint64_t s2 = B * NH * T * 4;
  TAKE(a, s1 > s2 ? s1 : s2, &m->scratch, "backward scratch");
  TAKE(a, sizeof(vklm_adamw_step), &m->step_buf, "AdamW step values");
  TAKE(a, 8, &m->norm_buf, "gradient norm");
  TAKE(a, (uint64_t)m->nchunks * m->scale_stride, &m->chunk_scale, "logits chunk scales");
  uint64_t ns = 0;
  if (m->ctx) {
    ns = vklm_grad_norm_scratch_size(m->ctx, m->slot_count, m->nslots);
  } else {
    for (uint32_t s = 0; s < m->nslots; s++) ns += ((uint64_t)m->slot_count[s] / 128 + 64) * 4;
  }
  TAKE(a, ns, &m->norm_scratch, "gradient norm partials");
#undef TAKE
  return VKLM_OK;
}

/* The storage slots of m's table (see model_internal.h), with m->vrows rows per vocabulary
 * chunk (0: no split). */
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
  if (!m->slot_of || !m->slot_off || !m->slot_count || !m->p || !m->g || !m->mom || !m->vel)
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
  uint32_t s = 0;
  for (uint32_t i = 0; i < m->ntensors; i++) {
    m->slot_of[i] = s;
    const vklm_param_info *t = &m->info[i];
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
  }
  m->slot_of[m->ntensors] = s;
  return VKLM_OK;
}

/* Fills the table part of m (cfg, B, T, vrows set); allocates the host arrays. */
static vklm_status setup_table(vklm_model *m) {
  uint32_t max = vklm_model_table_max(&m->cfg);
  m->info = calloc(max, sizeof *m->info);
  m->init = calloc(max, 1);
  m->pid = calloc(max, 1);
  m->la = calloc(m->cfg.n_layer, sizeof *m->la);
  if (!m->info || !m->init || !m->pid || !m->la)
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
  m->nparams = vklm_model_table(&m->cfg, m->info, m->init, m->pid, &m->ntensors);
  vklm_status st = setup_slots(m);
  if (st != VKLM_OK) return st;
  uint32_t BT = m->B * m->T;
  m->nchunks = (BT + m->lrows - 1) / m->lrows;
  m->scale_stride = 256; /* >= any device's offset alignment (the spec's maximum is 256) */
  m->host_scale = calloc(2 * (size_t)m->nchunks, sizeof *m->host_scale);
  if (!m->host_scale)
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
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
  free(m->p);
  free(m->g);
  free(m->mom);
  free(m->vel);
  free(m->slot_of);
  free(m->slot_off);
  free(m->slot_count);
  free(m->la);
  free(m->host_scale);
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
  if (setup_table(&tmp) == VKLM_OK) {
    planner pl = {.m = &tmp, .dry = 1, .align = 256};
    if (layout(&pl) == VKLM_OK) total = pl.total;
  }
  free_host(&tmp);
  return total;
}

void vklm_model_destroy(vklm_model *m) {
  if (!m) return;
  vklm_cmd_destroy(m->c_zero);
  vklm_cmd_destroy(m->c_upd);
  vklm_cmd_destroy(m->c_fb);
  vklm_cmd_destroy(m->c_fwd);
  vklm_arena_destroy(m->a_act);
  vklm_arena_destroy(m->a_opt);
  vklm_arena_destroy(m->a_grad);
  vklm_arena_destroy(m->a_param);
  free_host(m);
  free(m);
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

vklm_status vklm_model_create(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                              uint32_t T, vklm_objective obj, vklm_model **out) {
  return vklm_model_create_ex(ctx, cfg, B, T, obj, NULL, out);
}

vklm_status vklm_model_create_ex(vklm_context *ctx, const vklm_model_config *cfg, uint32_t B,
                                 uint32_t T, vklm_objective obj, const vklm_model_options *opt,
                                 vklm_model **out) {
  *out = NULL;
  create_err[0] = 0;
  char err[256];
  vklm_status st = vklm_model_config_check(cfg, err, sizeof err);
  if (st != VKLM_OK) return vklm_model_fail(NULL, st, "%s", err);
  if (B == 0 || T == 0 || T > cfg->max_seq)
    return vklm_model_fail(NULL, VKLM_ERROR_INVALID,
                           "model: batch B=%u T=%u invalid (need B >= 1, 1 <= T <= max_seq %u)", B,
                           T, cfg->max_seq);
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
  uint32_t want = opt ? opt->logits_rows : 0;
  vklm_model *m = calloc(1, sizeof *m);
  if (!m) return vklm_model_fail(NULL, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  m->ctx = ctx;
  m->cfg = *cfg;
  m->B = B;
  m->T = T;
  m->obj = obj;
  m->lrows = vklm_model_logits_rows(cfg, B, T, want, caps->max_storage_buffer_range);
  /* vocabulary matrices larger than one bindable buffer (or opt's cap) go in row chunks */
  uint64_t vmax = caps->max_storage_buffer_range < caps->max_allocation_size
                      ? caps->max_storage_buffer_range
                      : caps->max_allocation_size;
  if (opt && opt->max_tensor_bytes && opt->max_tensor_bytes < vmax) vmax = opt->max_tensor_bytes;
  m->vrows = vklm_model_vocab_rows(cfg, vmax);
  if ((st = setup_table(m)) != VKLM_OK) goto fail;
  /* Size checks before any allocation. */
  planner dry = {.m = m, .dry = 1, .align = vklm_buffer_alignment(ctx)};
  if (dry.align < 4) dry.align = 4;
  if ((st = layout(&dry)) != VKLM_OK) goto fail;
  if (dry.total > caps->device_local_bytes) {
    st = vklm_model_fail(m, VKLM_ERROR_OUT_OF_DEVICE_MEMORY,
                         "model: %llu parameters with B=%u T=%u need %.1f MiB of device memory "
                         "(parameters, gradients, AdamW moments, activations); the device %s has "
                         "%.1f MiB",
                         (unsigned long long)m->nparams, B, T, mib(dry.total), caps->name,
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
  const char *what = "arena";
  if ((st = vklm_arena_create(ctx, dry.arena_bytes[A_PARAM], &m->a_param)) != VKLM_OK ||
      (st = vklm_arena_create(ctx, dry.arena_bytes[A_GRAD], &m->a_grad)) != VKLM_OK ||
      (st = vklm_arena_create(ctx, dry.arena_bytes[A_OPT], &m->a_opt)) != VKLM_OK ||
      (st = vklm_arena_create(ctx, dry.arena_bytes[A_ACT], &m->a_act)) != VKLM_OK ||
      (what = "command buffer", (st = vklm_cmd_create(ctx, &m->c_fwd)) != VKLM_OK) ||
      (st = vklm_cmd_create(ctx, &m->c_fb)) != VKLM_OK ||
      (st = vklm_cmd_create(ctx, &m->c_upd)) != VKLM_OK ||
      (st = vklm_cmd_create(ctx, &m->c_zero)) != VKLM_OK) {
    st = vklm_model_fail(m, st, "model: creating an %s failed: %s", what, vklm_context_error(ctx));
    goto fail;
  }
  planner pl = {.m = m, .dry = 0, .align = dry.align};
  if ((st = layout(&pl)) != VKLM_OK) goto fail;
  if ((st = vklm_model_zero_grads(m)) != VKLM_OK) goto fail;
  /* zero moments */
  vklm_cmd *c = m->c_upd;
  if ((st = vklm_cmd_begin(c)) != VKLM_OK) goto vkfail;
  for (uint32_t s = 0; s < m->nslots; s++) {
    if ((st = vklm_cmd_fill_words(c, m->mom[s], 0)) != VKLM_OK) goto vkfail;
    if ((st = vklm_cmd_fill_words(c, m->vel[s], 0)) != VKLM_OK) goto vkfail;
    if ((st = vklm_cmd_fill_words(c, m->p[s], 0)) != VKLM_OK) goto vkfail;
  }
  if ((st = vklm_cmd_end(c)) != VKLM_OK || (st = vklm_cmd_run(c)) != VKLM_OK) goto vkfail;
  *out = m;
  return VKLM_OK;
vkfail:
  vklm_model_fail(m, st, "model: clearing buffers failed: %s", vklm_context_error(ctx));
fail:
  snprintf(create_err, sizeof create_err, "%s", m->err);
  vklm_model_destroy(m);
  return st;
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
  for (uint32_t i = 0; i < m->ntensors; i++)
    for (uint32_t s = m->slot_of[i]; s < m->slot_of[i + 1]; s++) { /* chunks gather/scatter */
      float *h = host + m->slot_off[s];
      uint64_t bytes = (uint64_t)m->slot_count[s] * 4;
      vklm_status st = up ? vklm_buffer_upload(m->ctx, bufs[s], 0, h, bytes)
                          : vklm_buffer_download(m->ctx, bufs[s], 0, h, bytes);
      if (st != VKLM_OK)
        return vklm_model_fail(m, st, "model: %s %s of %s failed: %s",
                               up ? "upload" : "download", what, m->info[i].name,
                               vklm_context_error(m->ctx));
    }
  return VKLM_OK;
}

vklm_status vklm_model_get_params(vklm_model *m, float *out) {
  return copy_vec(m, m->p, out, 0, "parameters");
}
vklm_status vklm_model_set_params(vklm_model *m, const float *in) {
  return copy_vec(m, m->p, (float *)in, 1, "parameters");
}
vklm_status vklm_model_get_grads(vklm_model *m, float *out) {
  return copy_vec(m, m->g, out, 0, "gradients");
}
vklm_status vklm_model_get_moments(vklm_model *m, float *m_out, float *v_out) {
  vklm_status st = copy_vec(m, m->mom, m_out, 0, "AdamW m");
  return st != VKLM_OK ? st : copy_vec(m, m->vel, v_out, 0, "AdamW v");
}
vklm_status vklm_model_set_moments(vklm_model *m, const float *m_in, const float *v_in) {
  vklm_status st = copy_vec(m, m->mom, (float *)m_in, 1, "AdamW m");
  return st != VKLM_OK ? st : copy_vec(m, m->vel, (float *)v_in, 1, "AdamW v");
}

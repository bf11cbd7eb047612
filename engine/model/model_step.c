/* Running the model: input checks and uploads, then replay of the recorded command buffers
 * (the forward with its heads; forward + backward; the heads' backward; update = gradient norm +
 * AdamW on every trainable tensor + zeroed gradients). Each is recorded on first use and
 * replayed after; the per-row loss scales, masks and value gradients are uploaded, never
 * recorded, so nothing re-records when they change. The host reads back only what it asks for. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "ops/ops.h"

static vklm_status vkfail(vklm_model *m, vklm_status st, const char *what) {
  return vklm_model_fail(m, st, "model: %s failed: %s", what, vklm_context_error(m->ctx));
}

static vklm_status need_batch(vklm_model *m) {
  if (m->B == 0)
    return vklm_model_fail(m, VKLM_ERROR_INVALID,
                           "model: created without a batch workspace (B = T = 0): it only runs "
                           "through inference sessions");
  return VKLM_OK;
}

static int plan_needed(const vklm_model *m) { return m->trainable && m->lowest_layer < 0; }

/* Host work only: checks inputs and targets (NULL: all ignored), the targets into tg (BT) and,
 * when the embeddings train, the embedding plan into plan (vklm_embedding_plan_size(BT)). */
static vklm_status check_batch(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                               int32_t *plan, int32_t *tg) {
  uint32_t BT = m->B * m->T, V = m->cfg.vocab_size;
  vklm_status st;
  if ((st = need_batch(m)) != VKLM_OK) return st;
  if (!inputs) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: inputs are NULL");
  char err[256];
  st = plan_needed(m) ? vklm_embedding_plan(plan, NULL, inputs, BT, V, err, sizeof err)
                      : vklm_embedding_check_tokens(inputs, BT, V, err, sizeof err);
  if (st != VKLM_OK)
    return vklm_model_fail(m, st, "model: bad input token: %s (batch of B=%u x T=%u)", err, m->B,
                           m->T);
  for (uint32_t i = 0; i < BT; i++) {
    int32_t t = targets ? targets[i] : VKLM_IGNORE_INDEX;
    if (t != VKLM_IGNORE_INDEX && (t < 0 || (uint32_t)t >= V))
      return vklm_model_fail(m, VKLM_ERROR_INVALID,
                             "model: target id %d at position %u (b=%u, t=%u) is outside [0,%u) "
                             "and is not the ignore index %d",
                             t, i, i / m->T, i % m->T, V, VKLM_IGNORE_INDEX);
    tg[i] = t;
  }
  return VKLM_OK;
}

/* A checked batch into the host-visible inputs (nothing may be running that reads them). */
static vklm_status put_batch(vklm_model *m, const int32_t *inputs, const int32_t *tg,
                             const int32_t *plan) {
  uint32_t BT = m->B * m->T;
  vklm_status st;
  if ((st = vklm_buffer_upload(m->ctx, m->w.tokens.buf, 0, inputs, (uint64_t)BT * 4)) != VKLM_OK ||
      (st = vklm_buffer_upload(m->ctx, m->w.targets.buf, 0, tg, (uint64_t)BT * 4)) != VKLM_OK ||
      (plan_needed(m) && (st = vklm_buffer_upload(m->ctx, m->w.plan.buf, 0, plan,
                                                  vklm_embedding_plan_size(BT) * 4)) != VKLM_OK))
    return vkfail(m, st, "uploading the batch");
  return VKLM_OK;
}

/* Checks inputs and targets and uploads both, and the embedding plan when the embeddings train.
 * A submitted step still running is waited for first (settle). */
static vklm_status upload_batch(vklm_model *m, const int32_t *inputs, const int32_t *targets) {
  uint32_t BT = m->B * m->T;
  vklm_status st;
  if ((st = need_batch(m)) != VKLM_OK || (st = vklm_model_settle(m)) != VKLM_OK) return st;
  size_t np = plan_needed(m) ? vklm_embedding_plan_size(BT) : 1;
  int32_t *plan = malloc(np * sizeof *plan), *tg = malloc((size_t)BT * sizeof *tg);
  if (!plan || !tg)
    st = vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
  else if ((st = check_batch(m, inputs, targets, plan, tg)) == VKLM_OK)
    st = put_batch(m, inputs, tg, plan);
  free(plan);
  free(tg);
  return st;
}

static vklm_status upload_f(vklm_model *m, vklm_tensor t, const float *x, uint32_t n,
                            const char *what) {
  vklm_status st = vklm_model_settle(m);
  if (st != VKLM_OK) return st;
  st = vklm_buffer_upload(m->ctx, t.buf, 0, x, (uint64_t)n * 4);
  return st == VKLM_OK ? st : vkfail(m, st, what);
}

static vklm_status download_f(vklm_model *m, vklm_tensor t, float *x, uint64_t n,
                              const char *what) {
  vklm_status st = vklm_model_settle(m);
  if (st != VKLM_OK) return st;
  st = vklm_buffer_download(m->ctx, t.buf, 0, x, n * 4);
  return st == VKLM_OK ? st : vkfail(m, st, what);
}

vklm_status vklm_model_read_loss(vklm_model *m, float *loss) {
  uint32_t BT = m->B * m->T;
  vklm_status st0 = vklm_model_settle(m);
  if (st0 != VKLM_OK) return st0;
  float *l = malloc((size_t)BT * sizeof *l);
  int32_t *t = malloc((size_t)BT * sizeof *t);
  vklm_status st = !l || !t ? VKLM_ERROR_OUT_OF_HOST_MEMORY : VKLM_OK;
  if (st == VKLM_OK &&
      ((st = vklm_buffer_download(m->ctx, m->w.losses.buf, 0, l, (uint64_t)BT * 4)) != VKLM_OK ||
       (st = vklm_buffer_download(m->ctx, m->w.targets.buf, 0, t, (uint64_t)BT * 4)) != VKLM_OK))
    vkfail(m, st, "reading the loss");
  if (st == VKLM_OK) {
    double sum = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < BT; i++)
      if (t[i] != VKLM_IGNORE_INDEX) sum += l[i], n++;
    *loss = n ? (float)(sum / n) : 0.0f;
  } else if (st == VKLM_ERROR_OUT_OF_HOST_MEMORY) {
    vklm_model_fail(m, st, "model: out of host memory");
  }
  free(l);
  free(t);
  return st;
}

/* Records command buffer `which` once. */
static vklm_status ensure_recorded(vklm_model *m, int which) {
  vklm_status st;
  vklm_cmd *c = m->cmd[which];
  if (!m->recorded[which]) {
    if ((st = vklm_cmd_begin(c)) != VKLM_OK) return vkfail(m, st, "begin");
    int sh = m->cfg.scalar_head;
    switch (which) {
    case CMD_RUN_LM:
    case CMD_RUN_NOLM:
      if ((st = vklm_model_record_forward(m, c)) != VKLM_OK) return st;
      if (which == CMD_RUN_LM && (st = vklm_model_record_lm_head(m, c, 0, 0)) != VKLM_OK)
        return st;
      if (sh && (st = vklm_model_record_values(m, c)) != VKLM_OK) return st;
      break;
    case CMD_FB:
      if ((st = vklm_model_record_forward(m, c)) != VKLM_OK ||
          (st = vklm_model_record_lm_head(m, c, 1, 0)) != VKLM_OK ||
          (st = vklm_model_record_backward(m, c)) != VKLM_OK)
        return st;
      break;
    case CMD_BWD_TOK:
    case CMD_BWD_VAL:
    case CMD_BWD_BOTH:
      if (which != CMD_BWD_TOK && (st = vklm_model_record_values_backward(m, c)) != VKLM_OK)
        return st;
      if (which != CMD_BWD_VAL &&
          (st = vklm_model_record_lm_head(m, c, 1, which == CMD_BWD_BOTH)) != VKLM_OK)
        return st;
      if ((st = vklm_model_record_backward(m, c)) != VKLM_OK) return st;
      break;
    default: VKLM_ASSERT(0, "model: no recording %d", which);
    }
    if ((st = vklm_cmd_end(c)) != VKLM_OK) return vkfail(m, st, "end");
    m->recorded[which] = 1;
  }
  return VKLM_OK;
}

/* Records command buffer `which` (once) and runs it. */
static vklm_status replay(vklm_model *m, int which) {
  vklm_status st = vklm_model_settle(m);
  if (st == VKLM_OK) st = ensure_recorded(m, which);
  if (st != VKLM_OK) return st;
  if ((st = vklm_cmd_run(m->cmd[which])) != VKLM_OK) return vkfail(m, st, "running a recorded pass");
  return VKLM_OK;
}

vklm_status vklm_model_run(vklm_model *m, const vklm_model_io *io) {
  uint32_t B = m->B, T = m->T, BT = B * T;
  vklm_status st;
  m->have_run = 0;
  if ((st = upload_batch(m, io->inputs, io->targets)) != VKLM_OK) return st;
  int lm = io->targets != NULL;
  if (!lm && (io->token_logp || io->seq_logp || io->loss))
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: log-probs and losses need targets");
  if (io->values && !m->cfg.scalar_head)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: no scalar head (cfg.scalar_head 0)");
  if (lm) { /* the per-sequence sums are of -losses over the mask */
    for (uint32_t i = 0; i < BT; i++)
      m->host_f[i] = io->mask ? -io->mask[i] : io->targets[i] != VKLM_IGNORE_INDEX ? -1.0f : 0.0f;
    if ((st = upload_f(m, m->w.rmask, m->host_f, BT, "uploading the mask")) != VKLM_OK) return st;
  }
  if ((st = replay(m, lm ? CMD_RUN_LM : CMD_RUN_NOLM)) != VKLM_OK) return st;
  m->have_logits = lm;
  m->have_run = 1;
  m->run_had_lm = lm;
  if (io->token_logp) {
    if ((st = download_f(m, m->w.losses, io->token_logp, BT, "reading the log-probs"))) return st;
    for (uint32_t i = 0; i < BT; i++) io->token_logp[i] = -io->token_logp[i] + 0.0f;
  }
  if (io->seq_logp &&
      (st = download_f(m, m->w.seq, io->seq_logp, B, "reading the sequence log-probs")))
    return st;
  if (io->values && (st = download_f(m, m->w.values, io->values, BT, "reading the values")))
    return st;
  if (io->hidden && (st = download_f(m, m->w.lnf, io->hidden, (uint64_t)BT * m->cfg.n_embd,
                                     "reading the hidden states")))
    return st;
  if (io->loss && (st = vklm_model_read_loss(m, io->loss))) return st;
  return VKLM_OK;
}

vklm_status vklm_model_forward(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                               float *loss) {
  vklm_status st;
  if ((st = need_batch(m)) != VKLM_OK) return st;
  if (!targets) { /* logits only: the LM head with every target ignored */
    int32_t *ig = malloc((size_t)m->B * m->T * sizeof *ig);
    if (!ig) return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
    for (uint32_t i = 0; i < m->B * m->T; i++) ig[i] = VKLM_IGNORE_INDEX;
    vklm_model_io io = {.inputs = inputs, .targets = ig};
    st = vklm_model_run(m, &io);
    free(ig);
    if (loss) *loss = 0;
    return st;
  }
  vklm_model_io io = {.inputs = inputs, .targets = targets, .loss = loss};
  return vklm_model_run(m, &io);
}

vklm_status vklm_model_get_logits(vklm_model *m, float *out) {
  if (m->nchunks > 1)
    return vklm_model_fail(m, VKLM_ERROR_UNSUPPORTED,
                           "model: the logits are computed in %u chunks of %u rows and not kept",
                           m->nchunks, m->lrows);
  if (!m->have_logits)
    return vklm_model_fail(m, VKLM_ERROR_INVALID,
                           "model: no logits: the last run was a forward_backward, which "
                           "overwrites them with their gradient; call vklm_model_forward");
  return download_f(m, m->w.logits, out, (uint64_t)m->B * m->T * m->cfg.vocab_size,
                    "reading the logits");
}

static vklm_status need_trainable(vklm_model *m) {
  if (!m->trainable)
    return vklm_model_fail(m, VKLM_ERROR_INVALID,
                           "model: it is frozen (no tensor trains): no gradients to compute");
  return VKLM_OK;
}

/* The per-row loss scales of a training pass: grad_scale * S / (targets not ignored) where the
 * target is not ignored, else 0; the pass's logits and activations are then the gradients'. */
static vklm_status put_scales(vklm_model *m, const int32_t *targets, float grad_scale) {
  uint32_t BT = m->B * m->T, count = 0;
  for (uint32_t i = 0; i < BT; i++) count += targets[i] != VKLM_IGNORE_INDEX;
  float s = count ? grad_scale * m->loss_scale / (float)count : 0.0f;
  for (uint32_t i = 0; i < BT; i++) m->host_f[i] = targets[i] != VKLM_IGNORE_INDEX ? s : 0.0f;
  vklm_status st = upload_f(m, m->w.rscale, m->host_f, BT, "uploading the loss scales");
  if (st != VKLM_OK) return st;
  m->have_logits = 0;
  m->have_run = 0;
  return VKLM_OK;
}

vklm_status vklm_model_fb_prepare(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                                  float grad_scale) {
  vklm_status st;
  if ((st = need_trainable(m)) != VKLM_OK) return st;
  if (!targets) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: forward_backward needs targets");
  if ((st = upload_batch(m, inputs, targets)) != VKLM_OK) return st;
  return put_scales(m, targets, grad_scale);
}

vklm_status vklm_model_forward_backward(vklm_model *m, const int32_t *inputs,
                                        const int32_t *targets, float grad_scale, float *loss) {
  vklm_status st;
  if ((st = vklm_model_fb_prepare(m, inputs, targets, grad_scale)) != VKLM_OK) return st;
  if ((st = replay(m, CMD_FB)) != VKLM_OK) return st;
  return loss ? vklm_model_read_loss(m, loss) : VKLM_OK;
}

/* What a backward of the last run with these weights needs. */
static vklm_status backward_ok(vklm_model *m, int token, int value) {
  vklm_status st;
  if ((st = need_trainable(m)) != VKLM_OK) return st;
  if (!m->have_run)
    return vklm_model_fail(m, VKLM_ERROR_INVALID,
                           "model: backward needs a vklm_model_run of the same batch just before");
  if (token && !m->run_had_lm)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: token weights need a run with targets");
  if (value && !m->cfg.scalar_head)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: value weights need a scalar head");
  return VKLM_OK;
}

void vklm_model_rows_get(vklm_model *m, vklm_model_rows *out) {
  const vklm_workspace *w = &m->w;
  memset(out, 0, sizeof *out);
  /* each is a whole arena allocation (TENSOR in model.c): its view starts at element 0 */
  out->neg_logp = w->losses.buf;
  out->neg_token_w = w->rscale.buf;
  if (m->cfg.scalar_head) out->values = w->values.buf, out->value_w = w->dvalues.buf;
}

static vklm_status rows_backward(vklm_model *m, int token, int value) {
  vklm_status st;
  if ((st = backward_ok(m, token, value)) != VKLM_OK || (!token && !value)) return st;
  m->have_logits = 0;
  m->have_run = 0; /* the heads' buffers now hold gradients */
  return replay(m, token && value ? CMD_BWD_BOTH : token ? CMD_BWD_TOK : CMD_BWD_VAL);
}

vklm_status vklm_model_backward_rows(vklm_model *m, int token, int value) {
  if (m->loss_scale != 1.0f)
    return vklm_model_fail(m, VKLM_ERROR_UNSUPPORTED, "model: the per-row weights written on the "
                           "device are not loss-scaled: set the loss scale to 1 first");
  return rows_backward(m, token, value);
}

vklm_status vklm_model_backward(vklm_model *m, const float *token_w, const float *value_w) {
  vklm_status st;
  uint32_t BT = m->B * m->T;
  if ((st = backward_ok(m, token_w != NULL, value_w != NULL)) != VKLM_OK) return st;
  if (!token_w && !value_w) return VKLM_OK;
  float S = m->loss_scale;
  if (token_w) { /* d(sum w logp) = d(sum -w loss): per-row scale -w (times the loss scale) */
    for (uint32_t i = 0; i < BT; i++) m->host_f[i] = -token_w[i] * S + 0.0f;
    if ((st = upload_f(m, m->w.rscale, m->host_f, BT, "uploading the token weights"))) return st;
  }
  if (value_w) {
    for (uint32_t i = 0; i < BT; i++) m->host_f[i] = value_w[i] * S;
    if ((st = upload_f(m, m->w.dvalues, m->host_f, BT, "uploading the value weights"))) return st;
  }
  return rows_backward(m, token_w != NULL, value_w != NULL);
}

vklm_status vklm_model_backward_seq(vklm_model *m, const float *coef, const float *mask) {
  uint32_t B = m->B, T = m->T;
  vklm_status st;
  if ((st = need_batch(m)) != VKLM_OK) return st;
  float *w = malloc((size_t)B * T * sizeof *w);
  int32_t *tg = malloc((size_t)B * T * sizeof *tg);
  if (!w || !tg) {
    free(w);
    free(tg);
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  }
  if (!mask && (st = vklm_buffer_download(m->ctx, m->w.targets.buf, 0, tg, (uint64_t)B * T * 4)))
    vkfail(m, st, "reading the targets");
  for (uint32_t b = 0; b < B && !st; b++)
    for (uint32_t t = 0; t < T; t++) {
      size_t i = (size_t)b * T + t;
      w[i] = coef[b] * (mask ? mask[i] : tg[i] != VKLM_IGNORE_INDEX ? 1.0f : 0.0f);
    }
  if (!st) st = vklm_model_backward(m, w, NULL);
  free(w);
  free(tg);
  return st;
}

vklm_status vklm_model_zero_grads(vklm_model *m) {
  vklm_status st;
  if (!m->trainable) return VKLM_OK;
  if ((st = vklm_model_settle(m)) != VKLM_OK) return st;
  vklm_cmd *c = m->cmd[CMD_ZERO];
  if (!m->recorded[CMD_ZERO]) {
    if ((st = vklm_cmd_begin(c)) != VKLM_OK) return vkfail(m, st, "begin");
    for (uint32_t k = 0; k < m->ntslots; k++)
      if ((st = vklm_cmd_fill_words(c, m->tg[k], 0)) != VKLM_OK)
        return vkfail(m, st, "recording the gradient zeroing");
    if ((st = vklm_cmd_end(c)) != VKLM_OK) return vkfail(m, st, "end");
    m->recorded[CMD_ZERO] = 1;
  }
  st = vklm_cmd_run(c);
  return st == VKLM_OK ? st : vkfail(m, st, "zeroing the gradients");
}

static vklm_status record_update(vklm_model *m, float clip) {
  vklm_status st;
  vklm_cmd *c = m->cmd[CMD_UPDATE];
  /* every trainable storage slot (a split vocabulary matrix's chunks too) is a tensor here, in
   * the order of m->tg: the norm, AdamW and the zeroing are multi-tensor (a dispatch or fill per
   * distinct arena block, not per tensor), and share norm_scratch for their tables */
  vklm_optim_slot *sl = calloc(m->ntslots ? m->ntslots : 1, sizeof *sl);
  if (!sl) {
    m->recorded[CMD_UPDATE] = 0;
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
  }
  uint32_t k = 0;
  for (uint32_t i = 0; i < m->ntensors; i++) {
    if (!m->trains[i]) continue;
    for (uint32_t s = m->slot_of[i]; s < m->slot_of[i + 1]; s++)
      sl[k++] = (vklm_optim_slot){m->p[s], m->mom[s], m->vel[s], m->g[s], m->slot_count[s],
                                  m->info[i].decay, m->h[s],
                                  m->prec == VKLM_DTYPE_BF16 ? VKLM_OPTIM_BF16 : VKLM_OPTIM_F16};
  }
  VKLM_ASSERT(k == m->ntslots, "model: %u trainable slots, %u listed", k, m->ntslots);
  /* F16: the gradients come loss-scaled: unscaled in the norm, the step skipped on overflow */
  int scaled = m->prec == VKLM_DTYPE_F16;
  if ((st = vklm_cmd_begin(c)) != VKLM_OK ||
      (st = vklm_grad_norm_multi_ex(c, m->norm_buf, m->norm_scratch, m->tg, m->tcount,
                                    m->ntslots, clip, scaled)) != VKLM_OK ||
      (st = vklm_adamw_multi_ex(c, sl, k, m->norm_scratch, m->step_buf, m->norm_buf, scaled,
                                NULL)) != VKLM_OK ||
      (st = vklm_grad_zero(c, m->tg, m->ntslots, NULL)) != VKLM_OK ||
      (st = vklm_cmd_end(c)) != VKLM_OK) {
    free(sl);
    goto fail;
  }
  free(sl);
  m->recorded[CMD_UPDATE] = 1;
  m->upd_clip = clip;
  return VKLM_OK;
fail:
  m->recorded[CMD_UPDATE] = 0;
  return vkfail(m, st, "recording the update");
}

/* The update's checks, its recording (again when the clip changes) and its step values. */
static vklm_status update_prepare(vklm_model *m, const vklm_optim_config *oc, uint32_t step) {
  vklm_status st;
  if ((st = need_trainable(m)) != VKLM_OK || (st = vklm_model_settle(m)) != VKLM_OK) return st;
  if (step == 0) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: update step counts from 1");
  if (m->no_moments)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: created without AdamW moments "
                           "(options.no_moments): its optimizer lives elsewhere");
  float clip = oc->grad_clip > 0 ? oc->grad_clip : 0.0f;
  if (!m->recorded[CMD_UPDATE] || m->upd_clip != clip)
    if ((st = record_update(m, clip)) != VKLM_OK) return st;
  vklm_adamw_step s;
  vklm_adamw_step_fill(&s, oc->lr, oc->beta1, oc->beta2, oc->eps, oc->weight_decay, step);
  if ((st = vklm_buffer_upload(m->ctx, m->step_buf, 0, &s, sizeof s)) != VKLM_OK)
    return vkfail(m, st, "uploading the step values");
  float inv = 1.0f / m->loss_scale; /* exact: S is a power of two */
  if (m->prec == VKLM_DTYPE_F16 &&
      (st = vklm_buffer_upload(m->ctx, m->norm_buf, 8, &inv, sizeof inv)) != VKLM_OK)
    return vkfail(m, st, "uploading the loss scale");
  return VKLM_OK;
}

vklm_status vklm_model_set_loss_scale(vklm_model *m, float scale) {
  int e;
  if (!(scale > 0.0f) || !isfinite(scale) || frexpf(scale, &e) != 0.5f)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: loss scale %g is not a positive power "
                           "of two", (double)scale);
  if (scale != 1.0f && m->prec != VKLM_DTYPE_F16)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: loss scaling is for F16 precision "
                           "(this model: %s)", vklm_dtype_name(m->prec));
  m->loss_scale = scale;
  return VKLM_OK;
}
float vklm_model_loss_scale(const vklm_model *m) { return m->loss_scale; }
vklm_dtype vklm_model_precision(const vklm_model *m) { return m->prec; }

static vklm_status read_norm(vklm_model *m, float *grad_norm) {
  if (!grad_norm) return VKLM_OK;
  vklm_status st0 = vklm_model_settle(m);
  if (st0 != VKLM_OK) return st0;
  float nb[2];
  vklm_status st = vklm_buffer_download(m->ctx, m->norm_buf, 0, nb, sizeof nb);
  if (st != VKLM_OK) return vkfail(m, st, "reading the gradient norm");
  *grad_norm = nb[0];
  return VKLM_OK;
}

vklm_status vklm_model_update(vklm_model *m, const vklm_optim_config *oc, uint32_t step,
                              float *grad_norm) {
  vklm_status st;
  if ((st = update_prepare(m, oc, step)) != VKLM_OK) return st;
  if ((st = vklm_cmd_run(m->cmd[CMD_UPDATE])) != VKLM_OK) return vkfail(m, st, "running the update");
  return read_norm(m, grad_norm);
}

vklm_status vklm_model_train_step(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                                  float grad_scale, const vklm_optim_config *oc, uint32_t step,
                                  float *loss, float *grad_norm) {
  vklm_status st;
  if ((st = vklm_model_train_step_stage(m, inputs, targets, grad_scale)) != VKLM_OK ||
      (st = vklm_model_train_step_submit(m, oc, step)) != VKLM_OK)
    return st;
  return vklm_model_train_step_wait(m, loss, grad_norm);
}

/* ---- the pipelined step: stage (host), submit (no wait), wait (its loss and norm) ---------- */
vklm_status vklm_model_train_step_stage(vklm_model *m, const int32_t *inputs,
                                        const int32_t *targets, float grad_scale) {
  vklm_status st;
  uint32_t BT = m->B * m->T;
  if ((st = need_batch(m)) != VKLM_OK || (st = need_trainable(m)) != VKLM_OK) return st;
  if (!targets) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: a training step needs targets");
  if (!m->st_tok) { /* the staging memory, kept for the model's life */
    m->st_tok = malloc((size_t)BT * sizeof *m->st_tok);
    m->st_tg = malloc((size_t)BT * sizeof *m->st_tg);
    m->st_plan = malloc((plan_needed(m) ? vklm_embedding_plan_size(BT) : 1) * sizeof *m->st_plan);
    if (!m->st_tok || !m->st_tg || !m->st_plan) {
      free(m->st_tok), free(m->st_tg), free(m->st_plan);
      m->st_tok = m->st_tg = m->st_plan = NULL;
      return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
    }
  }
  m->staged = 0;
  if ((st = check_batch(m, inputs, targets, m->st_plan, m->st_tg)) != VKLM_OK) return st;
  memcpy(m->st_tok, inputs, (size_t)BT * sizeof *m->st_tok);
  m->st_scale = grad_scale;
  m->staged = 1;
  return VKLM_OK;
}

vklm_status vklm_model_train_step_submit(vklm_model *m, const vklm_optim_config *oc,
                                         uint32_t step) {
  vklm_status st;
  if (!m->staged)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: no staged batch to submit "
                           "(vklm_model_train_step_stage first)");
  if ((st = vklm_model_settle(m)) != VKLM_OK) return st;
  if (m->fl_ready)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: the previous step's results were not "
                           "taken (vklm_model_train_step_wait)");
  m->staged = 0;
  if ((st = put_batch(m, m->st_tok, m->st_tg, m->st_plan)) != VKLM_OK ||
      (st = put_scales(m, m->st_tg, m->st_scale)) != VKLM_OK ||
      (st = update_prepare(m, oc, step)) != VKLM_OK || (st = ensure_recorded(m, CMD_FB)) != VKLM_OK)
    return st;
  vklm_cmd *both[2] = {m->cmd[CMD_FB], m->cmd[CMD_UPDATE]};
  if ((st = vklm_cmd_submit_many(both, 2)) != VKLM_OK) return vkfail(m, st, "running the step");
  m->flight = 1;
  return VKLM_OK;
}

vklm_status vklm_model_settle(vklm_model *m) {
  if (!m->flight) return VKLM_OK;
  m->flight = 0; /* before the reads below, which settle too */
  vklm_status st = vklm_cmd_wait(m->cmd[CMD_UPDATE]);
  if (st != VKLM_OK) return vkfail(m, st, "running the step");
  if ((st = vklm_model_read_loss(m, &m->fl_loss)) != VKLM_OK ||
      (st = read_norm(m, &m->fl_norm)) != VKLM_OK)
    return st;
  m->fl_ready = 1;
  return VKLM_OK;
}

vklm_status vklm_model_train_step_wait(vklm_model *m, float *loss, float *grad_norm) {
  vklm_status st = vklm_model_settle(m);
  if (st != VKLM_OK) return st;
  if (!m->fl_ready)
    return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: no submitted step to wait for");
  m->fl_ready = 0;
  if (loss) *loss = m->fl_loss;
  if (grad_norm) *grad_norm = m->fl_norm;
  return VKLM_OK;
}

void vklm_model_step_counts(const vklm_model *m, uint32_t *dispatches, uint32_t *barriers) {
  uint32_t d = 0, b = 0;
  const int which[] = {CMD_FB, CMD_UPDATE};
  for (int i = 0; i < 2; i++)
    if (m->recorded[which[i]]) {
      d += vklm_cmd_dispatch_count(m->cmd[which[i]]);
      b += vklm_cmd_barrier_count(m->cmd[which[i]]);
    }
  if (!m->recorded[CMD_FB]) /* the training pass ran in parts */
    for (uint32_t k = 0; k < m->nparts; k++) {
      d += vklm_cmd_dispatch_count(m->parts[k]);
      b += vklm_cmd_barrier_count(m->parts[k]);
    }
  *dispatches = d;
  *barriers = b;
}

/* Running the model: input checks and upload, then replay of the recorded command buffers
 * (forward; forward + backward; update = gradient norm + AdamW on every tensor + zeroed
 * gradients). Each is recorded on first use and replayed after; the host reads back the loss
 * (4 bytes) and the gradient norm (8 bytes) only. */
#include <stdio.h>
#include <stdlib.h>

#include "model_internal.h"
#include "ops/ops.h"

static vklm_status vkfail(vklm_model *m, vklm_status st, const char *what) {
  return vklm_model_fail(m, st, "model: %s failed: %s", what, vklm_context_error(m->ctx));
}

/* Checks inputs and targets, builds the embedding plan, uploads all three. */
static vklm_status upload_batch(vklm_model *m, const int32_t *inputs, const int32_t *targets) {
  uint32_t BT = m->B * m->T, V = m->cfg.vocab_size;
  vklm_status st;
  if (!inputs) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: inputs are NULL");
  size_t np = vklm_embedding_plan_size(BT);
  int32_t *plan = malloc(np * sizeof *plan), *tg = malloc((size_t)BT * sizeof *tg);
  if (!plan || !tg) {
    free(plan);
    free(tg);
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
  }
  char err[256];
  st = vklm_embedding_plan(plan, NULL, inputs, BT, V, err, sizeof err);
  if (st != VKLM_OK) {
    vklm_model_fail(m, st, "model: bad input token: %s (batch of B=%u x T=%u)", err, m->B, m->T);
    goto done;
  }
  for (uint32_t i = 0; i < BT; i++) {
    int32_t t = targets ? targets[i] : VKLM_IGNORE_INDEX;
    if (t != VKLM_IGNORE_INDEX && (t < 0 || (uint32_t)t >= V)) {
      st = vklm_model_fail(m, VKLM_ERROR_INVALID,
                           "model: target id %d at position %u (b=%u, t=%u) is outside [0,%u) "
                           "and is not the ignore index %d",
                           t, i, i / m->T, i % m->T, V, VKLM_IGNORE_INDEX);
      goto done;
    }
    tg[i] = t;
  }
  if ((st = vklm_buffer_upload(m->ctx, m->tokens, 0, inputs, (uint64_t)BT * 4)) != VKLM_OK ||
      (st = vklm_buffer_upload(m->ctx, m->targets, 0, tg, (uint64_t)BT * 4)) != VKLM_OK ||
      (st = vklm_buffer_upload(m->ctx, m->plan, 0, plan, np * 4)) != VKLM_OK)
    vkfail(m, st, "uploading the batch");
done:
  free(plan);
  free(tg);
  return st;
}

/* With several logits chunks: chunk k's dlogits are rescaled by count_k / count (the op divides
 * by its chunk's count of non-ignored targets, the loss is the mean over the batch's). */
static vklm_status upload_chunk_scales(vklm_model *m, const int32_t *targets) {
  if (m->nchunks <= 1) return VKLM_OK;
  uint32_t BT = m->B * m->T, total = 0;
  for (uint32_t i = 0; i < BT; i++) total += targets[i] != VKLM_IGNORE_INDEX;
  for (uint32_t k = 0; k < m->nchunks; k++) {
    uint32_t r0 = k * m->lrows, r1 = r0 + m->lrows < BT ? r0 + m->lrows : BT, n = 0;
    for (uint32_t i = r0; i < r1; i++) n += targets[i] != VKLM_IGNORE_INDEX;
    m->host_scale[2 * k] = 0;
    m->host_scale[2 * k + 1] = total ? (float)((double)n / total) : 0.0f;
    vklm_status st = vklm_buffer_upload(m->ctx, m->chunk_scale, (uint64_t)k * m->scale_stride,
                                        &m->host_scale[2 * k], 8);
    if (st != VKLM_OK) return vkfail(m, st, "uploading the chunk scales");
  }
  return VKLM_OK;
}

static vklm_status read_loss(vklm_model *m, float *loss) {
  if (!loss) return VKLM_OK;
  vklm_status st = vklm_buffer_download(m->ctx, m->loss, 0, loss, 4);
  return st == VKLM_OK ? st : vkfail(m, st, "reading the loss");
}

vklm_status vklm_model_forward(vklm_model *m, const int32_t *inputs, const int32_t *targets,
                               float *loss) {
  vklm_status st;
  if ((st = upload_batch(m, inputs, targets)) != VKLM_OK) return st;
  if (!m->fwd_rec) {
    if ((st = vklm_cmd_begin(m->c_fwd)) != VKLM_OK) return vkfail(m, st, "begin");
    if ((st = vklm_model_record_forward(m, m->c_fwd)) != VKLM_OK ||
        (st = vklm_model_record_head(m, m->c_fwd, 0, 1.0f)) != VKLM_OK)
      return st;
    if ((st = vklm_cmd_end(m->c_fwd)) != VKLM_OK) return vkfail(m, st, "end");
    m->fwd_rec = 1;
  }
  if ((st = vklm_cmd_run(m->c_fwd)) != VKLM_OK) return vkfail(m, st, "running the forward");
  m->have_logits = 1;
  if (loss && !targets) {
    *loss = 0;
    return VKLM_OK;
  }
  return read_loss(m, loss);
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
  uint64_t bytes = (uint64_t)m->B * m->T * m->cfg.vocab_size * 4;
  vklm_status st = vklm_buffer_download(m->ctx, m->logits, 0, out, bytes);
  return st == VKLM_OK ? st : vkfail(m, st, "reading the logits");
}

vklm_status vklm_model_forward_backward(vklm_model *m, const int32_t *inputs,
                                        const int32_t *targets, float grad_scale, float *loss) {
  vklm_status st;
  if (!targets) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: forward_backward needs targets");
  if ((st = upload_batch(m, inputs, targets)) != VKLM_OK) return st;
  if ((st = upload_chunk_scales(m, targets)) != VKLM_OK) return st;
  if (!m->fb_rec || m->fb_scale != grad_scale) {
    /* grad_scale is a push constant of the cross-entropy: a new value re-records (rare). */
    if ((st = vklm_cmd_begin(m->c_fb)) != VKLM_OK) return vkfail(m, st, "begin");
    if ((st = vklm_model_record_forward(m, m->c_fb)) != VKLM_OK ||
        (st = vklm_model_record_head(m, m->c_fb, 1, grad_scale)) != VKLM_OK ||
        (st = vklm_model_record_backward(m, m->c_fb)) != VKLM_OK)
      return st;
    if ((st = vklm_cmd_end(m->c_fb)) != VKLM_OK) return vkfail(m, st, "end");
    m->fb_rec = 1;
    m->fb_scale = grad_scale;
  }
  m->have_logits = 0;
  if ((st = vklm_cmd_run(m->c_fb)) != VKLM_OK) return vkfail(m, st, "running forward+backward");
  return read_loss(m, loss);
}

vklm_status vklm_model_zero_grads(vklm_model *m) {
  vklm_status st;
  if (!m->zero_rec) {
    if ((st = vklm_cmd_begin(m->c_zero)) != VKLM_OK) return vkfail(m, st, "begin");
    for (uint32_t s = 0; s < m->nslots; s++)
      if ((st = vklm_cmd_fill_words(m->c_zero, m->g[s], 0)) != VKLM_OK)
        return vkfail(m, st, "recording the gradient zeroing");
    if ((st = vklm_cmd_end(m->c_zero)) != VKLM_OK) return vkfail(m, st, "end");
    m->zero_rec = 1;
  }
  st = vklm_cmd_run(m->c_zero);
  return st == VKLM_OK ? st : vkfail(m, st, "zeroing the gradients");
}

static vklm_status record_update(vklm_model *m, float clip) {
  vklm_status st;
  vklm_cmd *c = m->c_upd;
  /* every storage slot (a split vocabulary matrix's chunks too) is a tensor of its own here */
  const uint32_t *counts = m->slot_count;
  if ((st = vklm_cmd_begin(c)) != VKLM_OK) goto fail;
  if ((st = vklm_grad_norm(c, m->norm_buf, m->norm_scratch, m->g, counts, m->nslots, clip)) !=
      VKLM_OK)
    goto fail;
  for (uint32_t i = 0; i < m->ntensors; i++)
    for (uint32_t s = m->slot_of[i]; s < m->slot_of[i + 1]; s++)
      if ((st = vklm_adamw(c, m->p[s], m->mom[s], m->vel[s], m->g[s], counts[s], m->step_buf,
                           m->norm_buf, m->info[i].decay)) != VKLM_OK)
        goto fail;
  for (uint32_t s = 0; s < m->nslots; s++)
    if ((st = vklm_cmd_fill_words(c, m->g[s], 0)) != VKLM_OK) goto fail;
  if ((st = vklm_cmd_end(c)) != VKLM_OK) goto fail;
  m->upd_rec = 1;
  m->upd_clip = clip;
  return VKLM_OK;
fail:
  m->upd_rec = 0;
  return vkfail(m, st, "recording the update");
}

vklm_status vklm_model_update(vklm_model *m, const vklm_optim_config *oc, uint32_t step,
                              float *grad_norm) {
  vklm_status st;
  if (step == 0) return vklm_model_fail(m, VKLM_ERROR_INVALID, "model: update step counts from 1");
  float clip = oc->grad_clip > 0 ? oc->grad_clip : 0.0f;
  if (!m->upd_rec || m->upd_clip != clip)
    if ((st = record_update(m, clip)) != VKLM_OK) return st;
  vklm_adamw_step s;
  vklm_adamw_step_fill(&s, oc->lr, oc->beta1, oc->beta2, oc->eps, oc->weight_decay, step);
  if ((st = vklm_buffer_upload(m->ctx, m->step_buf, 0, &s, sizeof s)) != VKLM_OK)
    return vkfail(m, st, "uploading the step values");
  if ((st = vklm_cmd_run(m->c_upd)) != VKLM_OK) return vkfail(m, st, "running the update");
  if (grad_norm) {
    float nb[2];
    if ((st = vklm_buffer_download(m->ctx, m->norm_buf, 0, nb, sizeof nb)) != VKLM_OK)
      return vkfail(m, st, "reading the gradient norm");
    *grad_norm = nb[0];
  }
  return VKLM_OK;
}

/* ZeRO-1: this rank's shard of the optimizer state on its device, the sharded AdamW step, and the
 * all-gather of the parameters (zero.h). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/optim.h"
#include "train/zero.h"

typedef struct piece {
  uint64_t off;  /* floats from the start of the flat vector */
  uint32_t n;    /* floats */
  int wd;        /* weight decay applies (the tensor's table entry) */
  vklm_buffer p, g, m, v;
} piece;

struct vklm_zero {
  vklm_model *model; /* borrowed */
  vklm_dist *dist;   /* borrowed */
  vklm_context *ctx; /* borrowed: the model's */
  uint64_t n, lo, hi;
  piece *pieces; /* owned */
  uint32_t npieces;
  float *shard;  /* owned: the shard's parameters on the host, hi - lo floats */
  vklm_arena *arena;
  vklm_cmd *cmd;
  vklm_buffer step_buf, clip_buf;
  vklm_buffer scratch; /* the multi-tensor AdamW's table (vklm_adamw_multi) */
  int recorded;
};

static vklm_status vkerr(vklm_zero *z, vklm_status st, const char *what, char *err,
                         size_t errlen) {
  snprintf(err, errlen, "ZeRO-1: %s: %s", what, vklm_context_error(z->ctx));
  return st;
}

vklm_status vklm_zero_create(vklm_model *m, vklm_dist *d, vklm_zero **out, char *err,
                             size_t errlen) {
  *out = NULL;
  vklm_zero *z = calloc(1, sizeof *z);
  if (!z) {
    snprintf(err, errlen, "ZeRO-1: out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  z->model = m;
  z->dist = d;
  z->ctx = vklm_model_context(m);
  z->n = vklm_model_num_params(m);
  vklm_dist_shard(d, z->n, &z->lo, &z->hi);
  uint32_t nt = vklm_model_param_count(m);
  z->pieces = calloc(nt ? nt : 1, sizeof *z->pieces);
  z->shard = malloc((z->hi - z->lo + 1) * sizeof(float));
  vklm_status st = VKLM_OK;
  if (!z->pieces || !z->shard) {
    snprintf(err, errlen, "ZeRO-1: out of host memory");
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    goto fail;
  }
  if ((st = vklm_arena_create(z->ctx, 0, &z->arena)) != VKLM_OK ||
      (st = vklm_cmd_create(z->ctx, &z->cmd)) != VKLM_OK ||
      (st = vklm_arena_alloc(z->arena, sizeof(vklm_adamw_step), &z->step_buf)) != VKLM_OK ||
      (st = vklm_arena_alloc(z->arena, 8, &z->clip_buf)) != VKLM_OK) {
    vkerr(z, st, "set-up", err, errlen);
    goto fail;
  }
  for (uint32_t i = 0; i < nt; i++) { /* the trainable parts of the shard, tensor by tensor */
    const vklm_param_info *info = vklm_model_param(m, i);
    if (!vklm_model_param_trainable(m, i)) continue;
    uint64_t a = info->offset > z->lo ? info->offset : z->lo;
    uint64_t b = info->offset + info->count < z->hi ? info->offset + info->count : z->hi;
    if (a >= b) continue;
    piece *pc = &z->pieces[z->npieces++];
    pc->off = a;
    pc->n = (uint32_t)(b - a);
    pc->wd = info->decay;
  }
  /* each role's pieces one after another (parameters, then gradients, m, v), so that one AdamW
   * dispatch spans them all where they share a block */
  uint32_t *counts = malloc((z->npieces ? z->npieces : 1) * sizeof *counts);
  if (!counts) {
    snprintf(err, errlen, "ZeRO-1: out of host memory");
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    goto fail;
  }
  for (uint32_t k = 0; k < z->npieces; k++) counts[k] = z->pieces[k].n;
  uint64_t ss = vklm_grad_norm_scratch_size(z->ctx, counts, z->npieces);
  free(counts);
  for (int r = 0; r < 4; r++)
    for (uint32_t k = 0; k < z->npieces; k++) {
      piece *pc = &z->pieces[k];
      vklm_buffer *b = r == 0 ? &pc->p : r == 1 ? &pc->g : r == 2 ? &pc->m : &pc->v;
      if ((st = vklm_arena_alloc(z->arena, (uint64_t)pc->n * 4, b)) != VKLM_OK) {
        vkerr(z, st, "the shard's buffers", err, errlen);
        goto fail;
      }
    }
  if ((st = vklm_arena_alloc(z->arena, ss, &z->scratch)) != VKLM_OK) {
    vkerr(z, st, "the optimizer's table", err, errlen);
    goto fail;
  }
  *out = z;
  return VKLM_OK;
fail:
  vklm_zero_destroy(z);
  return st;
}

void vklm_zero_destroy(vklm_zero *z) {
  if (!z) return;
  vklm_cmd_destroy(z->cmd);
  vklm_arena_destroy(z->arena);
  free(z->pieces);
  free(z->shard);
  free(z);
}

vklm_status vklm_zero_load(vklm_zero *z, const float *params, const float *m, const float *v,
                           char *err, size_t errlen) {
  memcpy(z->shard, params + z->lo, (z->hi - z->lo) * sizeof(float));
  float *zeros = NULL;
  if (!m || !v) {
    uint32_t most = 0;
    for (uint32_t k = 0; k < z->npieces; k++)
      if (z->pieces[k].n > most) most = z->pieces[k].n;
    zeros = calloc(most ? most : 1, sizeof(float));
    if (!zeros) {
      snprintf(err, errlen, "ZeRO-1: out of host memory");
      return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    }
  }
  vklm_status st = VKLM_OK;
  for (uint32_t k = 0; k < z->npieces && st == VKLM_OK; k++) {
    piece *pc = &z->pieces[k];
    uint64_t bytes = (uint64_t)pc->n * 4;
    if ((st = vklm_buffer_upload(z->ctx, pc->p, 0, params + pc->off, bytes)) != VKLM_OK ||
        (st = vklm_buffer_upload(z->ctx, pc->m, 0, m ? m + pc->off : zeros, bytes)) != VKLM_OK ||
        (st = vklm_buffer_upload(z->ctx, pc->v, 0, v ? v + pc->off : zeros, bytes)) != VKLM_OK)
      vkerr(z, st, "loading the shard", err, errlen);
  }
  free(zeros);
  return st;
}

static vklm_status record(vklm_zero *z) {
  vklm_status st;
  vklm_optim_slot *sl = calloc(z->npieces ? z->npieces : 1, sizeof *sl);
  if (!sl) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint32_t k = 0; k < z->npieces; k++) {
    piece *pc = &z->pieces[k];
    sl[k] = (vklm_optim_slot){pc->p, pc->m, pc->v, pc->g, pc->n, pc->wd};
  }
  /* one multi-tensor AdamW over every piece (a dispatch per distinct block combination) */
  if ((st = vklm_cmd_begin(z->cmd)) == VKLM_OK)
    st = vklm_adamw_multi(z->cmd, sl, z->npieces, z->scratch, z->step_buf, z->clip_buf, NULL);
  free(sl);
  if (st != VKLM_OK || (st = vklm_cmd_end(z->cmd)) != VKLM_OK) return st;
  z->recorded = 1;
  return VKLM_OK;
}

vklm_status vklm_zero_step(vklm_zero *z, float *g, const vklm_optim_config *oc, uint32_t step,
                           float *grad_norm, char *err, size_t errlen) {
  vklm_status st;
  /* the global norm: the shards' sums of squares (in double), summed in rank order */
  double ss[1] = {0};
  for (uint64_t i = z->lo; i < z->hi; i++) ss[0] += (double)g[i] * (double)g[i];
  if ((st = vklm_dist_exchange(z->dist, "the gradient norm", 1, VKLM_OK, NULL, 0, ss, 1, NULL,
                               NULL, err, errlen)) != VKLM_OK)
    return st;
  /* loss scaling (f16): the gradients are S times the true ones; the norm and the multiplier
   * are the true ones, and an overflow skips the step (as vklm_model_update does) */
  double S = vklm_model_loss_scale(z->model);
  /* as on the device: a sum of squares past fp32's range is an overflow */
  float norm = ss[0] > FLT_MAX ? INFINITY : (float)(sqrt(ss[0]) / S);
  float clip[2] = {norm, 1.0f};
  if (oc->grad_clip > 0) {
    double s = (double)oc->grad_clip / ((double)norm + 1e-6);
    clip[1] = (float)(s < 1 ? s : 1);
  }
  clip[1] = (float)(clip[1] / S);
  if (!isfinite(norm)) clip[1] = NAN;
  if (grad_norm) *grad_norm = norm;
  if (!isfinite(norm) && S != 1.0) { /* skipped: the weights stay, the gradients are dropped */
    if ((st = vklm_model_zero_grads(z->model)) != VKLM_OK) {
      snprintf(err, errlen, "ZeRO-1: zeroing the gradients: %s", vklm_model_error(z->model));
      return st;
    }
    return VKLM_OK;
  }
  vklm_adamw_step s;
  vklm_adamw_step_fill(&s, oc->lr, oc->beta1, oc->beta2, oc->eps, oc->weight_decay, step);
  if ((st = vklm_buffer_upload(z->ctx, z->step_buf, 0, &s, sizeof s)) != VKLM_OK ||
      (st = vklm_buffer_upload(z->ctx, z->clip_buf, 0, clip, sizeof clip)) != VKLM_OK)
    return vkerr(z, st, "uploading the step values", err, errlen);
  for (uint32_t k = 0; k < z->npieces; k++) {
    piece *pc = &z->pieces[k];
    if ((st = vklm_buffer_upload(z->ctx, pc->g, 0, g + pc->off, (uint64_t)pc->n * 4)) != VKLM_OK)
      return vkerr(z, st, "uploading the shard's gradients", err, errlen);
  }
  if ((!z->recorded && (st = record(z)) != VKLM_OK) || (st = vklm_cmd_run(z->cmd)) != VKLM_OK)
    return vkerr(z, st, "the AdamW step", err, errlen);
  for (uint32_t k = 0; k < z->npieces; k++) {
    piece *pc = &z->pieces[k];
    if ((st = vklm_buffer_download(z->ctx, pc->p, 0, z->shard + (pc->off - z->lo),
                                   (uint64_t)pc->n * 4)) != VKLM_OK)
      return vkerr(z, st, "reading the shard's parameters", err, errlen);
  }
  memcpy(g + z->lo, z->shard, (z->hi - z->lo) * sizeof(float));
  if ((st = vklm_dist_allgather_f32(z->dist, g, z->n, err, errlen)) != VKLM_OK) return st;
  if ((st = vklm_model_set_params(z->model, g)) != VKLM_OK ||
      (st = vklm_model_zero_grads(z->model)) != VKLM_OK) {
    snprintf(err, errlen, "ZeRO-1: updating the model: %s", vklm_model_error(z->model));
    return st;
  }
  return VKLM_OK;
}

vklm_status vklm_zero_gather_moments(vklm_zero *z, float *m, float *v, char *err,
                                     size_t errlen) {
  memset(m + z->lo, 0, (z->hi - z->lo) * sizeof(float));
  memset(v + z->lo, 0, (z->hi - z->lo) * sizeof(float));
  vklm_status st;
  for (uint32_t k = 0; k < z->npieces; k++) {
    piece *pc = &z->pieces[k];
    uint64_t bytes = (uint64_t)pc->n * 4;
    if ((st = vklm_buffer_download(z->ctx, pc->m, 0, m + pc->off, bytes)) != VKLM_OK ||
        (st = vklm_buffer_download(z->ctx, pc->v, 0, v + pc->off, bytes)) != VKLM_OK)
      return vkerr(z, st, "reading the shard's moments", err, errlen);
  }
  if ((st = vklm_dist_allgather_f32(z->dist, m, z->n, err, errlen)) != VKLM_OK) return st;
  return vklm_dist_allgather_f32(z->dist, v, z->n, err, errlen);
}

vklm_status vklm_zero_save(vklm_zero *z, const char *path, const vklm_ckpt_state *st, char *err,
                           size_t errlen) {
  uint64_t n = z->n;
  uint32_t nt = vklm_model_param_count(z->model);
  float *p = malloc(3 * n * sizeof(float) + 4);
  vklm_param_info *tab = malloc((nt ? nt : 1) * sizeof *tab);
  vklm_status rc = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (!p || !tab) {
    snprintf(err, errlen, "ZeRO-1: out of host memory for a checkpoint of %llu parameters",
             (unsigned long long)n);
    goto done;
  }
  if ((rc = vklm_zero_gather_moments(z, p + n, p + 2 * n, err, errlen)) != VKLM_OK) goto done;
  if (vklm_dist_rank(z->dist) != 0) goto done;
  for (uint32_t i = 0; i < nt; i++) tab[i] = *vklm_model_param(z->model, i);
  if ((rc = vklm_model_get_params(z->model, p)) != VKLM_OK) {
    snprintf(err, errlen, "cannot download the parameters for the checkpoint: %s",
             vklm_model_error(z->model));
    goto done;
  }
  rc = vklm_ckpt_write(path, st, tab, nt, p, p + n, p + 2 * n, n, err, errlen);
done:
  free(p);
  free(tab);
  return rc;
}

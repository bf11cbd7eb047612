/* Models for alignment: a trainable model from another model's weights (a reward model gets a
 * new scalar head), checkpoints of aligned models, and sequences into right-padded batch rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "align/align.h"

static double gauss(uint64_t *s) { /* Box-Muller over splitmix64 */
  double u1 = ((vklm_train_rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  double u2 = (vklm_train_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

vklm_status vklm_align_model(vklm_context *ctx, const vklm_ckpt *src, int scalar_head, uint32_t B,
                             uint32_t T, const vklm_model_options *opt, uint64_t seed,
                             vklm_model **out, char *err, size_t errlen) {
  *out = NULL;
  vklm_model_config cfg = src->st.model;
  cfg.scalar_head = scalar_head ? 1 : 0;
  if (T > cfg.max_seq) {
    snprintf(err, errlen, "T=%u is longer than the model's context (%u positions)", T, cfg.max_seq);
    return VKLM_ERROR_INVALID;
  }
  vklm_model *m = NULL;
  vklm_status st = vklm_model_create_ex(ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, opt, &m);
  if (st != VKLM_OK) {
    snprintf(err, errlen, "cannot create the model: %s", vklm_model_error(NULL));
    return st;
  }
  uint64_t n = vklm_model_num_params(m);
  float *p = malloc(n * sizeof(float) + 4);
  if (!p) {
    vklm_model_destroy(m);
    snprintf(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  uint64_t rng = seed ^ 0x5C0BEull;
  for (uint32_t i = 0; i < vklm_model_param_count(m) && st == VKLM_OK; i++) {
    const vklm_param_info *pi = vklm_model_param(m, i);
    const vklm_param_info *from = NULL;
    for (uint32_t j = 0; j < src->ntensors; j++)
      if (!strcmp(src->table[j].name, pi->name)) from = &src->table[j];
    if (from && from->count == pi->count && from->offset + from->count <= src->nparams) {
      memcpy(p + pi->offset, src->params + from->offset, pi->count * sizeof(float));
    } else if (!strcmp(pi->name, "score.weight")) {
      double sd = 1.0 / sqrt((double)cfg.n_embd + 1.0);
      for (uint64_t k = 0; k < pi->count; k++) p[pi->offset + k] = (float)(sd * gauss(&rng));
    } else if (!strcmp(pi->name, "score.bias")) {
      memset(p + pi->offset, 0, pi->count * sizeof(float));
    } else {
      snprintf(err, errlen, "the source model has no tensor '%s' of %llu values", pi->name,
               (unsigned long long)pi->count);
      st = VKLM_ERROR_INVALID;
    }
  }
  if (st == VKLM_OK && (st = vklm_model_set_params(m, p)) != VKLM_OK)
    snprintf(err, errlen, "cannot upload the weights: %s", vklm_model_error(m));
  free(p);
  if (st != VKLM_OK) {
    vklm_model_destroy(m);
    return st;
  }
  *out = m;
  return VKLM_OK;
}

vklm_status vklm_align_save(const char *path, vklm_model *m, uint32_t step,
                            const vklm_optim_config *oc, char *err, size_t errlen) {
  vklm_ckpt_state cs;
  memset(&cs, 0, sizeof cs);
  cs.model = *vklm_model_get_config(m);
  cs.objective = VKLM_OBJ_CAUSAL;
  cs.B = vklm_model_batch(m);
  cs.T = vklm_model_seq(m);
  cs.grad_accum = 1;
  cs.step = step;
  cs.total_steps = step;
  cs.data_order = VKLM_DATA_SHUFFLED;
  cs.lr = oc->lr;
  cs.min_lr = oc->lr;
  cs.opt = *oc;
  cs.mask_id = vklm_model_mask_id(&cs.model);
  return vklm_ckpt_save_model(path, m, &cs, err, errlen);
}

vklm_status vklm_align_row(const int32_t *prompt, uint32_t np, const int32_t *resp, uint32_t nr,
                           uint32_t T, int32_t *inputs, int32_t *targets, float *mask,
                           uint32_t *last) {
  uint32_t L = np + nr;                 /* the whole sequence */
  uint32_t nin = targets ? L - 1 : L;   /* with targets the last token is only predicted */
  if (L < (targets ? 2u : 1u) || nin > T) return VKLM_ERROR_INVALID;
  for (uint32_t t = 0; t < T; t++) {
    int32_t cur = t < np ? prompt[t] : t < L ? resp[t - np] : 0;
    inputs[t] = t < nin ? cur : 0;
    if (targets) {
      uint32_t nx = t + 1;
      targets[t] = t < nin ? (nx < np ? prompt[nx] : resp[nx - np]) : VKLM_IGNORE_INDEX;
      if (mask) mask[t] = t < nin && nx >= np ? 1.0f : 0.0f;
    } else if (mask) {
      mask[t] = 0;
    }
  }
  if (last) *last = nin - 1;
  return VKLM_OK;
}

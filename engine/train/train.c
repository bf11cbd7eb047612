/* The training loop: batches -> forward_backward (gradient accumulation normalised by the step's
 * target tokens) -> AdamW update, with validation, the metrics log, the plot, checkpoints and the
 * progress line. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "train/train.h"
#include "train/zero.h"

void vklm_train_options_default(vklm_train_options *o) {
  memset(o, 0, sizeof *o);
  vklm_model_config_preset("gpt2-tiny", &o->model);
  o->objective = VKLM_OBJ_CAUSAL;
  o->B = 4;
  o->T = 64;
  o->grad_accum = 1;
  o->steps = 100;
  o->warmup = 10;
  o->lr = 6e-4f;
  o->min_lr = 6e-5f;
  o->weight_decay = 0.1f;
  o->grad_clip = 1.0f;
  o->beta1 = 0.9f;
  o->beta2 = 0.95f;
  o->eps = 1e-8f;
  o->val_every = 50;
  o->val_batches = 8;
  o->ckpt_every = 100;
  o->log_every = 10;
  o->seed = 1337;
  o->mask_id = -1;
  o->data_order = VKLM_DATA_SHUFFLED;
  o->out_dir = "out";
  o->progress = 1;
  o->plot = 1;
}

void vklm_train_result_free(vklm_train_result *r) {
  free(r->losses);
  r->losses = NULL;
}

static void fmt_time(char *buf, size_t n, double s) {
  if (!(s >= 0) || s > 1e8) snprintf(buf, n, "?");
  else if (s < 60) snprintf(buf, n, "%.0fs", s);
  else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

typedef struct loop {
  vklm_context *ctx;
  vklm_model *model;
  const vklm_train_options *o;
  vklm_objective obj;
  uint32_t V, B, T, GA;
  int32_t mask_id;
  int32_t *buf;                       /* B*T+1 tokens of scratch for the batcher */
  int32_t *inputs, *targets, *masked; /* GA micro-batches of (B,T) each */
  const int32_t **in, **tg;           /* GA pointers: what each micro-batch feeds the model */
  char ckpt_path[4096], log_path[4096], png_path[4096];
  /* data parallel (o->dist): this rank's micro-batches of a step are [mb0, mb0 + nmb) of GA */
  vklm_dist *dist;
  int rank, nranks, lead; /* lead: rank 0, which writes files and prints */
  uint32_t mb0, nmb;
  float *gbuf;            /* num_params floats: host staging of the gradients */
  vklm_zero *zero;        /* ZeRO-1 (o->zero1 with several ranks): this rank's optimizer shard */
  int reported;           /* a failure was already shared with the other ranks */
  uint32_t cur_step;      /* for messages; 0 during set-up */
} loop;

/* Micro-batch g's inputs and targets for the objective (MLM masks its inputs with a seed). */
static void objective_batch(loop *l, uint32_t g, uint64_t mask_seed) {
  size_t n = (size_t)l->B * l->T;
  int32_t *inputs = l->inputs + g * n, *targets = l->targets + g * n;
  if (l->obj == VKLM_OBJ_MLM) {
    vklm_mlm_mask(inputs, (uint32_t)n, l->V, l->mask_id, mask_seed, l->masked + g * n, targets);
    l->in[g] = l->masked + g * n;
  } else {
    l->in[g] = inputs;
  }
  l->tg[g] = targets;
}

uint64_t vklm_train_count_targets(const int32_t *targets, size_t n) {
  uint64_t c = 0;
  for (size_t i = 0; i < n; i++) c += targets[i] != VKLM_IGNORE_INDEX;
  return c;
}

/* The step's target count; an error when there is none. */
static vklm_status step_targets(vklm_model *m, uint32_t nmb, const int32_t *const *targets,
                                uint64_t *total, char *err, size_t errlen) {
  size_t bt = (size_t)vklm_model_batch(m) * vklm_model_seq(m);
  *total = 0;
  for (uint32_t i = 0; i < nmb; i++) *total += vklm_train_count_targets(targets[i], bt);
  if (*total) return VKLM_OK;
  snprintf(err, errlen, "no target tokens: every target of the step's %u micro-batch(es) of "
           "%zu is the ignore index", nmb, bt);
  return VKLM_ERROR_INVALID;
}

/* The micro-batches' passes; with oc, the last one with targets runs with the update in one
 * submission (vklm_model_train_step). */
static vklm_status passes(vklm_model *m, uint32_t nmb, const int32_t *const *inputs,
                          const int32_t *const *targets, uint64_t total,
                          const vklm_optim_config *oc, uint32_t step, float *grad_norm,
                          double *loss_sum, char *err, size_t errlen) {
  size_t bt = (size_t)vklm_model_batch(m) * vklm_model_seq(m);
  double sum = 0;
  uint32_t last = nmb; /* the last micro-batch with targets (the update rides on it) */
  for (uint32_t i = nmb; oc && i-- > 0;)
    if (vklm_train_count_targets(targets[i], bt)) {
      last = i;
      break;
    }
  for (uint32_t i = 0; i < nmb; i++) {
    uint64_t c = vklm_train_count_targets(targets[i], bt);
    if (c == 0) continue; /* no gradient, and its mean loss is undefined */
    float l = 0, scale = (float)((double)c / (double)total);
    vklm_status st = oc && i == last
                         ? vklm_model_train_step(m, inputs[i], targets[i], scale, oc, step, &l,
                                                 grad_norm)
                         : vklm_model_forward_backward(m, inputs[i], targets[i], scale, &l);
    if (st != VKLM_OK) {
      snprintf(err, errlen, "micro-batch %u: %s", i, vklm_model_error(m));
      return st;
    }
    sum += (double)l * (double)c;
  }
  *loss_sum = sum;
  return VKLM_OK;
}

vklm_status vklm_train_accumulate(vklm_model *m, uint32_t nmb, const int32_t *const *inputs,
                                  const int32_t *const *targets, float *loss, uint64_t *ntargets,
                                  char *err, size_t errlen) {
  uint64_t total;
  vklm_status st = step_targets(m, nmb, targets, &total, err, errlen);
  if (ntargets) *ntargets = total;
  if (st != VKLM_OK) return st;
  double sum = 0;
  st = passes(m, nmb, inputs, targets, total, NULL, 0, NULL, &sum, err, errlen);
  if (st == VKLM_OK) *loss = (float)(sum / (double)total);
  return st;
}

vklm_status vklm_train_step(vklm_model *m, uint32_t nmb, const int32_t *const *inputs,
                            const int32_t *const *targets, const vklm_optim_config *oc,
                            uint32_t step, float *loss, float *grad_norm, char *err,
                            size_t errlen) {
  uint64_t total;
  double sum = 0;
  vklm_status st = step_targets(m, nmb, targets, &total, err, errlen);
  if (st == VKLM_OK)
    st = passes(m, nmb, inputs, targets, total, oc, step, grad_norm, &sum, err, errlen);
  if (st == VKLM_OK) *loss = (float)(sum / (double)total);
  return st;
}

vklm_status vklm_train_accumulate_part(vklm_model *m, uint32_t nmb, const int32_t *const *inputs,
                                       const int32_t *const *targets, uint64_t total,
                                       double *loss_sum, char *err, size_t errlen) {
  return passes(m, nmb, inputs, targets, total, NULL, 0, NULL, loss_sum, err, errlen);
}

static vklm_status agree(loop *l, vklm_train_result *res, int flag, double *vals, int n,
                         int *any_flag, char *err, size_t errlen);

static void poison(vklm_model *m);

/* The step's GA micro-batches from the data. Every rank walks the whole global batch (the data
 * position and the generator stay in step) and reads its own run of micro-batches. */
static vklm_status read_step(loop *l, vklm_batcher *tb, uint64_t *rng, char *err, size_t errlen) {
  size_t bt = (size_t)l->B * l->T;
  for (uint32_t g = 0; g < l->GA; g++) {
    uint64_t mask_seed = vklm_train_rng_next(rng);
    if (g < l->mb0 || g >= l->mb0 + l->nmb) {
      vklm_batcher_skip(tb);
      continue;
    }
    uint32_t j = g - l->mb0;
    vklm_status st = vklm_batcher_next(tb, l->V, l->buf, l->inputs + j * bt, l->targets + j * bt,
                                       err, errlen);
    if (st != VKLM_OK) return st;
    objective_batch(l, j, mask_seed);
  }
  return VKLM_OK;
}

/* The pipelined step (one process, one micro-batch): the batch checked and staged (host work
 * only), then submitted with the update at the current loss scale and learning rate. */
static vklm_status stage_step(loop *l, char *e2, size_t n) {
  uint64_t total;
  vklm_status st = step_targets(l->model, 1, l->tg, &total, e2, n);
  if (st == VKLM_OK && (st = vklm_model_train_step_stage(l->model, l->in[0], l->tg[0], 1.0f)))
    snprintf(e2, n, "micro-batch 0: %s", vklm_model_error(l->model));
  return st;
}

static vklm_status submit_step(loop *l, const vklm_ckpt_state *cs, uint32_t step, char *e2,
                               size_t n) {
  vklm_status st;
  if (l->o->nan_step == step) poison(l->model);
  vklm_optim_config oc = cs->opt;
  oc.lr = vklm_train_lr(step, (uint32_t)cs->warmup, (uint32_t)cs->total_steps, cs->lr, cs->min_lr);
  if ((cs->precision == VKLM_DTYPE_F16 &&
       (st = vklm_model_set_loss_scale(l->model, cs->loss_scale)) != VKLM_OK) ||
      /* AdamW's step count leaves out the steps the loss scaler skipped */
      (st = vklm_model_train_step_submit(l->model, &oc, step - cs->skipped)) != VKLM_OK)
    snprintf(e2, n, "%s", vklm_model_error(l->model));
  return st;
}

/* The mean loss over the target tokens of the first nb batches of the validation data (fixed
 * sequential batches, fixed masks). Data parallel: rank r evaluates batches r, r+N, ... and the
 * ranks' sums are added in rank order. */
static vklm_status eval_val(loop *l, vklm_train_result *res, const vklm_tokens *val, uint32_t nb,
                            uint64_t seed, float *out, char *err, size_t errlen) {
  vklm_batcher vb;
  vklm_status st = vklm_batcher_init(&vb, val, l->B, l->T, err, errlen);
  size_t bt = (size_t)l->B * l->T;
  double sum = 0, count = 0;
  for (uint32_t i = 0; i < nb && st == VKLM_OK; i++) {
    if (l->nranks > 1 && i % (uint32_t)l->nranks != (uint32_t)l->rank) { /* another rank's */
      vklm_batcher_skip(&vb);
      continue;
    }
    st = vklm_batcher_next(&vb, l->V, l->buf, l->inputs, l->targets, err, errlen);
    if (st != VKLM_OK) break;
    objective_batch(l, 0, seed ^ (0x5A17ull + i));
    uint64_t c = vklm_train_count_targets(l->tg[0], bt);
    if (!c) continue;
    float loss = 0;
    st = vklm_model_forward(l->model, l->in[0], l->tg[0], &loss);
    if (st != VKLM_OK) snprintf(err, errlen, "validation forward: %s", vklm_model_error(l->model));
    sum += (double)loss * (double)c;
    count += (double)c;
  }
  if (st == VKLM_OK && l->nranks > 1) {
    double v[2] = {sum, count};
    if ((st = agree(l, res, 0, v, 2, NULL, err, errlen)) != VKLM_OK) return st;
    sum = v[0];
    count = v[1];
  }
  *out = count > 0 ? (float)(sum / count) : NAN;
  return st;
}

static vklm_status make_dir(const char *dir, char *err, size_t errlen) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create the output directory '%s': %s", dir, strerror(errno));
    return VKLM_ERROR_IO;
  }
  return VKLM_OK;
}

/* The NaN test hook: a NaN in the final norm's weight (or parameter 0). */
static void poison(vklm_model *m) {
  uint64_t n = vklm_model_num_params(m), at = 0;
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++)
    if (!strcmp(vklm_model_param(m, i)->name, "lnf.weight")) at = vklm_model_param(m, i)->offset;
  float *p = malloc(n * sizeof(float));
  if (p && vklm_model_get_params(m, p) == VKLM_OK) {
    p[at] = NAN;
    vklm_model_set_params(m, p);
  }
  free(p);
}

/* ---- data parallel ------------------------------------------------------------------------- */
static void phase(const loop *l, char *buf, size_t n) {
  if (l->cur_step) snprintf(buf, n, "step %u", l->cur_step);
  else snprintf(buf, n, "set-up");
}

/* One status exchange (see vklm_dist_exchange): a failure anywhere becomes this rank's error. */
static vklm_status agree(loop *l, vklm_train_result *res, int flag, double *vals, int n,
                         int *any_flag, char *err, size_t errlen) {
  char what[64];
  int failed = -1;
  phase(l, what, sizeof what);
  vklm_status st = vklm_dist_exchange(l->dist, what, 1, VKLM_OK, NULL, flag, vals, n, any_flag,
                                      &failed, err, errlen);
  if (st != VKLM_OK) {
    l->reported = 1;
    res->peer_failed = failed != l->rank;
  }
  return st;
}

/* Rank 0's parameters and AdamW moments into every rank's model: every replica is then exactly
 * what rank 0 checkpoints, whatever rounding differences between devices. */
static vklm_status sync_model(loop *l, vklm_train_result *res, char *err, size_t errlen) {
  uint64_t n = vklm_model_num_params(l->model);
  float *mv = malloc(2 * n * sizeof(float));
  vklm_status st = mv ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (!mv) snprintf(err, errlen, "out of host memory for the model's moments");
  if (st == VKLM_OK && l->lead &&
      ((st = vklm_model_get_params(l->model, l->gbuf)) != VKLM_OK ||
       (st = vklm_model_get_moments(l->model, mv, mv + n)) != VKLM_OK))
    snprintf(err, errlen, "reading the model for the other ranks: %s", vklm_model_error(l->model));
  if (st != VKLM_OK) goto out;
  if ((st = agree(l, res, 0, NULL, 0, NULL, err, errlen)) != VKLM_OK) goto out;
  if ((st = vklm_dist_bcast(l->dist, l->gbuf, n * sizeof(float), err, errlen)) != VKLM_OK ||
      (st = vklm_dist_bcast(l->dist, mv, 2 * n * sizeof(float), err, errlen)) != VKLM_OK)
    goto out;
  if (!l->lead && ((st = vklm_model_set_params(l->model, l->gbuf)) != VKLM_OK ||
                   (st = vklm_model_set_moments(l->model, mv, mv + n)) != VKLM_OK))
    snprintf(err, errlen, "taking rank 0's model: %s", vklm_model_error(l->model));
out:
  free(mv);
  return st;
}

/* The gradient reduction of one part of the backward (vklm_model_forward_backward_parts): the
 * range summed over the ranks in rank order, or with ZeRO-1 reduce-scattered to the ranks owning
 * it; each range as soon as the device has finished it, while it computes the layers below. */
typedef struct reduce_ctx {
  loop *l;
  char *err;
  size_t errlen;
} reduce_ctx;

static vklm_status reduce_part(void *user, float *grads, uint64_t lo, uint64_t hi) {
  reduce_ctx *r = user;
  uint64_t n = vklm_model_num_params(r->l->model);
  if (r->l->zero)
    return vklm_dist_reduce_scatter_range_f32(r->l->dist, grads, n, lo, hi, r->err, r->errlen);
  return vklm_dist_sum_range_f32(r->l->dist, grads, n, lo, hi, r->err, r->errlen);
}

/* This rank's share of a step: forward + backward of its micro-batches scaled by the step's
 * target count over all ranks; the last micro-batch's backward runs in parts, and the gradients
 * each part finishes are reduced over the ranks (in rank order: the same bits as reducing the
 * whole vector afterwards) while the device computes the next. A rank that fails inside the
 * pass, where the others wait in a reduction, ends the job naming itself (vklm_dist_abort).
 * *stop: any rank asked to stop. */
static vklm_status dist_step(loop *l, vklm_train_result *res, int want_stop, float *loss,
                             int *stop, char *err, size_t errlen) {
  size_t bt = (size_t)l->B * l->T;
  double v[1] = {0};
  for (uint32_t i = 0; i < l->nmb; i++) v[0] += (double)vklm_train_count_targets(l->tg[i], bt);
  vklm_status st = agree(l, res, 0, v, 1, NULL, err, errlen);
  if (st != VKLM_OK) return st;
  uint64_t total = (uint64_t)v[0];
  if (total == 0) {
    snprintf(err, errlen, "no target tokens: every target of the step's %u micro-batch(es) of "
             "%zu is the ignore index", l->GA, bt);
    l->reported = 1; /* every rank sees the same total */
    return VKLM_ERROR_INVALID;
  }
  double sum = 0;
  uint32_t last = l->nmb - 1;
  err[0] = 0;
  st = vklm_train_accumulate_part(l->model, last, l->in, l->tg, total, &sum, err, errlen);
  if (st == VKLM_OK) {
    /* every rank runs its last micro-batch in parts, even without targets (scale 0): the
     * reductions must be the same on all */
    uint64_t c = vklm_train_count_targets(l->tg[last], bt);
    float lv = 0;
    reduce_ctx rc = {l, err, errlen};
    st = vklm_model_forward_backward_parts(l->model, l->in[last], l->tg[last],
                                           (float)((double)c / (double)total), &lv, l->gbuf,
                                           reduce_part, &rc, &res->overlap);
    if (st != VKLM_OK && !err[0]) /* else the reduction's message */
      snprintf(err, errlen, "micro-batch %u: %s", last, vklm_model_error(l->model));
    if (c) sum += (double)lv * (double)c;
  }
  if (st != VKLM_OK) {
    char msg[1200];
    snprintf(msg, sizeof msg, "step %u: %s", l->cur_step, err);
    vklm_dist_abort(l->dist, msg); /* the others wait in a reduction: end the job now */
    return st;
  }
  v[0] = sum;
  if ((st = agree(l, res, want_stop, v, 1, stop, err, errlen)) != VKLM_OK) return st;
  *loss = (float)(v[0] / (double)total);
  if (l->zero) return VKLM_OK; /* vklm_zero_step takes the reduce-scattered gradients */
  if ((st = vklm_model_set_grads(l->model, l->gbuf)) != VKLM_OK)
    snprintf(err, errlen, "writing the summed gradients: %s", vklm_model_error(l->model));
  return st;
}

vklm_status vklm_train_run(vklm_context *ctx, const vklm_train_options *o,
                           const vklm_tokens *train, const vklm_tokens *val,
                           vklm_train_result *res, char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  res->last_val_loss = NAN;
  res->first_step = 1;
  loop l = {.ctx = ctx, .o = o, .dist = o->dist, .rank = vklm_dist_rank(o->dist),
            .nranks = vklm_dist_size(o->dist)};
  l.lead = l.rank == 0;
  vklm_train_options oo = *o; /* a fresh data-parallel run without --grad-accum: one per rank */
  if (l.nranks > 1 && !(o->given & VKLM_GIVEN_GRAD_ACCUM) && !o->resume &&
      o->grad_accum % (uint32_t)l.nranks)
    oo.grad_accum = (o->grad_accum + (uint32_t)l.nranks - 1) / (uint32_t)l.nranks * (uint32_t)l.nranks;
  vklm_ckpt *ck = NULL, *init = NULL;
  vklm_metrics hist = {0};
  vklm_status st = VKLM_OK;
  int line_open = 0; /* a progress line without its newline is on the terminal */
  char summary[2600] = "", init_kind[16] = "";
  snprintf(l.ckpt_path, sizeof l.ckpt_path, "%s/checkpoint.bin", o->out_dir);
  snprintf(l.log_path, sizeof l.log_path, "%s/metrics.jsonl", o->out_dir);
  snprintf(l.png_path, sizeof l.png_path, "%s/loss.png", o->out_dir);

  /* 1. Everything that can fail on bad input is checked before anything is written. */
  if (o->resume && o->init) {
    snprintf(err, errlen, "--resume continues a run, --init starts a new one: give one of them");
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  if (o->resume) {
    if ((st = vklm_ckpt_read(o->resume, 1, &ck, err, errlen)) != VKLM_OK) goto done;
  } else {
    struct stat sb;
    if (l.lead && !o->force && stat(l.ckpt_path, &sb) == 0) {
      snprintf(err, errlen, "'%s' exists: resume it (--resume) or allow replacing it (--force)",
               l.ckpt_path);
      st = VKLM_ERROR_INVALID;
      goto done;
    }
    if (o->init &&
        (st = vklm_train_open_init(o->init, &init, init_kind, sizeof init_kind, err, errlen)) !=
            VKLM_OK)
      goto done;
  }
  vklm_ckpt_state cs;
  if ((st = vklm_train_resolve(&oo, ck ? &ck->st : NULL, init ? &init->st.model : NULL,
                               vklm_tokens_vocab(train), vklm_tokens_count(train), &cs, summary,
                               sizeof summary, err, errlen)) != VKLM_OK)
    goto done;
  vklm_model_config cfg = cs.model;
  uint32_t B = cs.B, T = cs.T, GA = cs.grad_accum;
  uint64_t start = ck ? ck->st.step : 0;
  if (GA % (uint32_t)l.nranks) {
    snprintf(err, errlen, "%u micro-batches per step (--grad-accum) cannot be split over %d ranks: "
             "give a multiple of %d", GA, l.nranks, l.nranks);
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  l.nmb = GA / (uint32_t)l.nranks;
  l.mb0 = (uint32_t)l.rank * l.nmb;
  const vklm_tokens *srcs[2] = {train, val};
  for (int k = 0; k < 2; k++) {
    if (!srcs[k]) continue;
    uint64_t dv = vklm_tokens_vocab(srcs[k]);
    if (dv > cfg.vocab_size) {
      snprintf(err, errlen, "the %s data's vocabulary has %llu ids, the model's only %u: the "
               "data and the model do not match", k ? "validation" : "training",
               (unsigned long long)dv, cfg.vocab_size);
      st = VKLM_ERROR_INVALID;
      goto done;
    }
    vklm_batcher tmp;
    char e2[512];
    if ((st = vklm_batcher_init(&tmp, srcs[k], B, T, e2, sizeof e2)) != VKLM_OK) {
      snprintf(err, errlen, "%s data: %s", k ? "validation" : "training", e2);
      goto done;
    }
  }
  uint32_t total = (uint32_t)cs.total_steps;
  uint32_t end = o->stop_at && o->stop_at < total ? o->stop_at : total;
  if (start >= end) {
    snprintf(err, errlen, "nothing to do: the checkpoint is at step %llu of %u (give --steps "
             "above it to extend the run)", (unsigned long long)start, end);
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  {
    uint64_t need = vklm_model_config_bytes(&cfg, B, T);
    uint64_t have = vklm_context_caps(ctx)->device_local_bytes;
    if (have > 0 && need > have) {
      snprintf(err, errlen, "the model (%llu parameters) with B=%u T=%u needs %.2f GiB of device "
               "memory; %s has %.2f GiB", (unsigned long long)vklm_model_config_params(&cfg), B,
               T, need / 1073741824.0, vklm_context_caps(ctx)->name, have / 1073741824.0);
      st = VKLM_ERROR_OUT_OF_DEVICE_MEMORY;
      goto done;
    }
  }
  vklm_model_options mopt = {.no_moments = o->zero1 && l.nranks > 1, .recompute = o->recompute,
                             .precision = cs.precision};
  if ((st = vklm_model_create_ex(ctx, &cfg, B, T, cs.objective, &mopt, &l.model)) != VKLM_OK) {
    snprintf(err, errlen, "cannot create the model: %s", vklm_model_error(NULL));
    goto done;
  }
  if (ck) st = vklm_ckpt_load_model(ck, l.model, err, errlen);
  else if (init) {
    char e2[1024];
    if ((st = vklm_ckpt_load_model(init, l.model, e2, sizeof e2)) != VKLM_OK)
      snprintf(err, errlen, "init model '%s': %s", o->init, e2);
  } else if ((st = vklm_model_init(l.model, o->seed)) != VKLM_OK)
    snprintf(err, errlen, "model init: %s", vklm_model_error(l.model));
  if (st != VKLM_OK) goto done;
  if (l.lead && (st = make_dir(o->out_dir, err, errlen)) != VKLM_OK) goto done;
  if (o->progress && l.lead && ck)
    fprintf(stderr, "vklm train: resuming '%s' at step %llu of %u: %s\n", o->resume,
            (unsigned long long)start, total, summary);
  else if (o->progress && l.lead && init)
    fprintf(stderr, "vklm train: a new run from the weights of '%s' (%s, %s: V %u, ctx %u, L %u, "
            "C %u), fresh schedule and AdamW moments: %s\n", o->init, init_kind,
            cfg.arch == VKLM_ARCH_LLAMA ? "llama" : "gpt2", cfg.vocab_size, cfg.max_seq,
            cfg.n_layer, cfg.n_embd, summary);

  /* 2. Set-up. */
  l.V = cfg.vocab_size;
  l.B = B;
  l.T = T;
  l.GA = GA;
  l.obj = cs.objective;
  l.mask_id = cs.mask_id;
  size_t bt = (size_t)B * T;
  l.buf = malloc((bt + 1) * sizeof(int32_t));
  l.inputs = malloc(bt * l.nmb * sizeof(int32_t));
  l.targets = malloc(bt * l.nmb * sizeof(int32_t));
  l.masked = malloc(bt * l.nmb * sizeof(int32_t));
  l.in = malloc(l.nmb * sizeof *l.in);
  l.tg = malloc(l.nmb * sizeof *l.tg);
  res->losses = malloc((size_t)(end + 1) * sizeof(float));
  if (l.nranks > 1) l.gbuf = malloc(vklm_model_num_params(l.model) * sizeof(float));
  if (!l.buf || !l.inputs || !l.targets || !l.masked || !l.in || !l.tg || !res->losses ||
      (l.nranks > 1 && !l.gbuf)) {
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    snprintf(err, errlen, "out of host memory");
    goto done;
  }
  for (uint32_t i = 0; i <= end; i++) res->losses[i] = NAN;
  vklm_batcher tb;
  vklm_batcher_init(&tb, train, B, T, err, errlen);
  vklm_batcher_seek(&tb, cs.data_order, cs.seed, cs.data_pos, cs.data_epoch);
  uint32_t val_nb = 0;
  if (val && o->val_batches) {
    uint64_t windows = vklm_tokens_batches(val, B, T);
    val_nb = o->val_batches < windows ? o->val_batches : (uint32_t)windows;
  }
  uint64_t rng = cs.rng, tokens = cs.tokens_seen;
  double elapsed0 = cs.elapsed_s;
  if (l.lead && ck) { /* metrics and files are rank 0's */
    if ((st = vklm_metrics_load(&hist, l.log_path, (uint32_t)start, err, errlen)) != VKLM_OK ||
        (st = vklm_metrics_save(&hist, l.log_path, err, errlen)) != VKLM_OK)
      goto done;
  } else if (l.lead && (st = vklm_metrics_save(&hist, l.log_path, err, errlen)) != VKLM_OK) {
    goto done;
  }
  if (!ck && val_nb) { /* every rank evaluates its share */
    vklm_metric r = {.step = 0, .train_loss = NAN, .grad_norm = NAN, .lr = 0};
    if ((st = eval_val(&l, res, val, val_nb, cs.seed, &r.val_loss, err, errlen)) != VKLM_OK)
      goto done;
    res->last_val_loss = r.val_loss;
    if (l.lead) vklm_metrics_add(&hist, &r);
    if (l.lead && (st = vklm_metrics_append(&r, l.log_path, err, errlen)) != VKLM_OK) goto done;
  }
  char title[160];
  snprintf(title, sizeof title, "%s L=%u C=%u V=%u  B=%u T=%u", cfg.arch == VKLM_ARCH_LLAMA ?
           "llama" : "gpt2", cfg.n_layer, cfg.n_embd, cfg.vocab_size, B, T);
  int tty = o->progress && l.lead && isatty(2);
  if (l.nranks > 1 && (st = sync_model(&l, res, err, errlen)) != VKLM_OK) goto done;
  if (mopt.no_moments) { /* ZeRO-1: this rank's shard of the weights and the moments */
    if ((st = vklm_zero_create(l.model, l.dist, &l.zero, err, errlen)) != VKLM_OK ||
        (st = vklm_model_get_params(l.model, l.gbuf)) != VKLM_OK ||
        (st = vklm_zero_load(l.zero, l.gbuf, ck ? ck->m : NULL, ck ? ck->v : NULL, err,
                             errlen)) != VKLM_OK)
      goto done;
  }
  uint32_t log_every = o->log_every ? o->log_every : 10;

  /* 3. The loop. */
  double t_run = vklm_train_now_s(), t_train = 0;
  long long last_ckpt = ck ? (long long)start : -1;
  res->first_step = (uint32_t)start + 1;
  res->last_step = (uint32_t)start;
  /* One process with one micro-batch pipelines its steps: while the device runs step n, the
   * host reads and stages step n+1's batch; step n+1 is submitted as soon as step n's loss and
   * norm are in (the f16 scaler needs them), before step n is logged. Steps that validate,
   * checkpoint, stop or end the run drain instead (nothing is staged ahead, so the saved data
   * position and generator are step n's). */
  int pipe = l.nranks == 1 && GA == 1;
  int ahead = 0;   /* this step was read, staged and submitted by the previous iteration */
  double t_sub = 0; /* when it was submitted */
  for (uint32_t step = (uint32_t)start + 1; step <= end; step++) {
    double t0 = ahead ? t_sub : vklm_train_now_s();
    l.cur_step = step;
    float loss = 0;
    char e2[1024];
    int stopping = o->stop && *o->stop;
    float lr = vklm_train_lr(step, (uint32_t)cs.warmup, (uint32_t)cs.total_steps, cs.lr, cs.min_lr);
    float gn = NAN;
    int f16 = cs.precision == VKLM_DTYPE_F16;
    int val_now = val_nb && ((o->val_every && step % o->val_every == 0) || step == end);
    int ckpt_now = (o->ckpt_every && step % o->ckpt_every == 0) || step == end || stopping;
    int staged = 0; /* step + 1 is staged */
    if (ahead) {
      st = VKLM_OK;
    } else if ((st = read_step(&l, &tb, &rng, err, errlen)) != VKLM_OK) {
      goto done;
    } else if (pipe) {
      if ((st = stage_step(&l, e2, sizeof e2)) == VKLM_OK)
        st = submit_step(&l, &cs, step, e2, sizeof e2);
    } else {
      if (o->nan_step == step) poison(l.model);
      vklm_optim_config oc = cs.opt;
      oc.lr = lr;
      if (f16 && vklm_model_set_loss_scale(l.model, cs.loss_scale) != VKLM_OK) {
        snprintf(err, errlen, "step %u: %s", step, vklm_model_error(l.model));
        st = VKLM_ERROR_INVALID;
        goto done;
      }
      if (l.nranks > 1) {
        st = dist_step(&l, res, stopping, &loss, &stopping, e2, sizeof e2);
      } else { /* passes and update: the last micro-batch's pass and the update in one submission */
        /* AdamW's step count leaves out the steps the loss scaler skipped */
        st = vklm_train_step(l.model, GA, l.in, l.tg, &oc, step - cs.skipped, &loss, &gn, e2,
                             sizeof e2);
      }
    }
    if (st == VKLM_OK && pipe) {
      if (!val_now && !ckpt_now && step < end) { /* the next batch, while this step runs */
        if ((st = read_step(&l, &tb, &rng, err, errlen)) != VKLM_OK) goto done;
        if ((st = stage_step(&l, e2, sizeof e2)) != VKLM_OK) {
          snprintf(err, errlen, "step %u: %s", step + 1, e2);
          goto done;
        }
        staged = 1;
      }
      if ((st = vklm_model_train_step_wait(l.model, &loss, &gn)) != VKLM_OK)
        snprintf(e2, sizeof e2, "%s", vklm_model_error(l.model));
    }
    ahead = 0;
    if (st != VKLM_OK) {
      if (l.reported) snprintf(err, errlen, "%s", e2); /* names the rank and the step */
      else snprintf(err, errlen, "step %u: %s", step, e2);
      goto done;
    }
    if (l.nranks > 1 && isfinite(loss)) {
      vklm_optim_config oc = cs.opt;
      oc.lr = lr;
      uint32_t ostep = step - cs.skipped; /* leaves out the steps the loss scaler skipped */
      if (l.zero) {
        if ((st = vklm_zero_step(l.zero, l.gbuf, &oc, ostep, &gn, e2, sizeof e2)) != VKLM_OK) {
          snprintf(err, errlen, "step %u update: %s", step, e2);
          goto done;
        }
      } else if ((st = vklm_model_update(l.model, &oc, ostep, &gn)) != VKLM_OK) {
        snprintf(err, errlen, "step %u update: %s", step, vklm_model_error(l.model));
        goto done;
      }
    }
    int skipped = 0;
    if (f16 && isfinite(loss) && !isfinite(gn)) {
      /* an overflow in the loss-scaled gradients: the update was a no-op; halve the scale */
      skipped = 1;
      cs.skipped++;
      cs.scale_good = 0;
      if (cs.loss_scale <= 1.0f) {
        snprintf(err, errlen, "the gradient norm is %s at step %u with loss scale 1: the "
                 "gradients overflow without scaling; stopping", isnan(gn) ? "NaN" : "infinite",
                 step);
        st = VKLM_ERROR_INVALID;
        goto done;
      }
      cs.loss_scale *= 0.5f;
      if (o->progress && l.lead)
        fprintf(stderr, "%sstep %u: gradient overflow in f16, step skipped; loss scale now %g\n",
                line_open ? "\n" : "", step, (double)cs.loss_scale);
      line_open = 0;
    } else if (f16 && ++cs.scale_good >= VKLM_TRAIN_SCALE_INTERVAL) {
      cs.scale_good = 0;
      if (cs.loss_scale < 1.6e38f) cs.loss_scale *= 2.0f;
    }
    if (!isfinite(loss) || (!isfinite(gn) && !skipped)) {
      char kept[4400];
      if (last_ckpt >= 0)
        snprintf(kept, sizeof kept, "the last good checkpoint (step %lld) is kept in '%s'",
                 last_ckpt, l.ckpt_path);
      else
        snprintf(kept, sizeof kept, "no checkpoint was written by this run");
      snprintf(err, errlen, "the %s is %s at step %u: stopping; %s",
               isfinite(loss) ? "gradient norm" : "loss",
               isnan(isfinite(loss) ? gn : loss) ? "NaN" : "infinite", step, kept);
      st = VKLM_ERROR_INVALID;
      goto done;
    }
    double dt = vklm_train_now_s() - t0;
    if (staged) { /* step + 1 goes now, at the scale this step left */
      if ((st = submit_step(&l, &cs, step + 1, e2, sizeof e2)) != VKLM_OK) {
        snprintf(err, errlen, "step %u: %s", step + 1, e2);
        goto done;
      }
      t_sub = vklm_train_now_s();
      ahead = 1;
    }
    t_train += dt;
    tokens += (uint64_t)bt * GA;
    res->losses[step] = loss;
    res->last_step = step;
    vklm_metric r = {.step = step, .train_loss = loss, .val_loss = NAN, .lr = lr,
                     .grad_norm = skipped ? NAN : gn, /* a skipped step's norm is an overflow */
                     .tokens_per_s = bt * GA / dt, .elapsed_s = elapsed0 + (vklm_train_now_s() - t_run)};
    if (val_now) {
      if ((st = eval_val(&l, res, val, val_nb, cs.seed, &r.val_loss, err, errlen)) != VKLM_OK)
        goto done;
      res->last_val_loss = r.val_loss;
    }
    if (l.lead) vklm_metrics_add(&hist, &r);
    if (l.lead && (st = vklm_metrics_append(&r, l.log_path, err, errlen)) != VKLM_OK) goto done;
    if (o->progress && l.lead) {
      double per = t_train / (step - res->first_step + 1);
      char eta[32], vl[48] = "";
      fmt_time(eta, sizeof eta, per * (end - step));
      if (!isnan(r.val_loss)) snprintf(vl, sizeof vl, " | val %.4f", r.val_loss);
      if (tty || step % log_every == 0 || step == end || step == start + 1 || !isnan(r.val_loss)) {
        fprintf(stderr, "%sstep %u/%u | loss %.4f%s | lr %.2e | norm %.3f | %.0f tok/s | ETA %s%s",
                tty ? "\r\033[K" : "", step, end, loss, vl, lr, gn, bt * GA / per, eta,
                tty ? "" : "\n");
        line_open = tty;
      }
    }
    if (ckpt_now || stopping) { /* stopping: dist_step may set it */
      cs.step = step;
      cs.data_pos = tb.pos;
      cs.data_epoch = tb.epoch;
      cs.rng = rng;
      cs.tokens_seen = tokens;
      cs.elapsed_s = r.elapsed_s;
      cs.opt.lr = lr;
      if (l.zero) {
        if ((st = vklm_zero_save(l.zero, l.ckpt_path, &cs, err, errlen)) != VKLM_OK) goto done;
      } else if (l.lead &&
                 (st = vklm_ckpt_save_model(l.ckpt_path, l.model, &cs, err, errlen)) != VKLM_OK) {
        goto done;
      }
      last_ckpt = step; /* the last good checkpoint, for the NaN message */
      if (l.lead && o->plot &&
          (st = vklm_plot_loss(&hist, title, l.png_path, 800, 500, err, errlen)) != VKLM_OK)
        goto done;
      /* every replica becomes the checkpointed model (rank 0's); ZeRO-1's already are */
      if (l.nranks > 1 && !l.zero && (st = sync_model(&l, res, err, errlen)) != VKLM_OK)
        goto done;
      if (l.zero && (st = agree(&l, res, 0, NULL, 0, NULL, err, errlen)) != VKLM_OK) goto done;
    }
    if (stopping) {
      res->interrupted = 1;
      break;
    }
  }
  res->ms_per_step = t_train * 1e3 / (res->last_step - res->first_step + 1);
  res->tokens_per_s = (double)bt * GA * (res->last_step - res->first_step + 1) / t_train;
done:
  if (st != VKLM_OK && l.nranks > 1 && !l.reported) {
    /* tell the other ranks, at the exchange they are waiting in */
    char what[64], mine[2048];
    int failed = -1;
    phase(&l, what, sizeof what);
    snprintf(mine, sizeof mine, "%s", err);
    vklm_dist_exchange(l.dist, what, 0, st, mine, 0, NULL, 0, NULL, &failed, err, errlen);
    res->peer_failed = failed != l.rank;
  }
  if (line_open) fputc('\n', stderr); /* end the in-place progress line */
  free(l.buf);
  free(l.inputs);
  free(l.targets);
  free(l.masked);
  free(l.in);
  free(l.tg);
  free(l.gbuf);
  vklm_zero_destroy(l.zero);
  vklm_model_destroy(l.model);
  vklm_ckpt_free(ck);
  vklm_ckpt_free(init);
  vklm_metrics_free(&hist);
  return st;
}

/* The training loop: batches -> forward_backward (with gradient accumulation) -> AdamW update,
 * with validation, the metrics log, the plot, checkpoints and the progress line. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "train/train.h"

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
  o->out_dir = "out";
  o->progress = 1;
  o->plot = 1;
}

void vklm_train_result_free(vklm_train_result *r) {
  free(r->losses);
  r->losses = NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
  uint32_t V, B, T;
  int32_t mask_id;
  int32_t *buf, *inputs, *targets, *masked;
  char ckpt_path[4096], log_path[4096], png_path[4096];
} loop;

/* The inputs and targets of one micro-batch for the objective (MLM masks with a seed). */
static void objective_batch(loop *l, uint64_t mask_seed, const int32_t **in, const int32_t **tg) {
  uint32_t n = l->B * l->T;
  if (l->o->objective == VKLM_OBJ_MLM) {
    vklm_mlm_mask(l->buf, n, l->V, l->mask_id, mask_seed, l->masked, l->targets);
    *in = l->masked;
  } else {
    *in = l->inputs;
  }
  *tg = l->targets;
}

/* Mean loss over the first nb batches of the validation data (fixed batches, fixed masks). */
static vklm_status eval_val(loop *l, const vklm_tokens *val, uint32_t nb, uint64_t seed,
                            float *out, char *err, size_t errlen) {
  vklm_batcher vb;
  vklm_status st = vklm_batcher_init(&vb, val, l->B, l->T, err, errlen);
  double sum = 0;
  for (uint32_t i = 0; i < nb && st == VKLM_OK; i++) {
    st = vklm_batcher_next(&vb, l->V, l->buf, l->inputs, l->targets, err, errlen);
    if (st != VKLM_OK) break;
    const int32_t *in, *tg;
    objective_batch(l, seed ^ (0x5A17ull + i), &in, &tg);
    float loss = 0;
    st = vklm_model_forward(l->model, in, tg, &loss);
    if (st != VKLM_OK) snprintf(err, errlen, "validation forward: %s", vklm_model_error(l->model));
    sum += loss;
  }
  *out = (float)(sum / nb);
  return st;
}

static vklm_status make_dir(const char *dir, char *err, size_t errlen) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create the output directory '%s': %s", dir, strerror(errno));
    return VKLM_ERROR_IO;
  }
  return VKLM_OK;
}

vklm_status vklm_train_run(vklm_context *ctx, const vklm_train_options *o,
                           const vklm_tokens *train, const vklm_tokens *val,
                           vklm_train_result *res, char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  res->last_val_loss = NAN;
  res->first_step = 1;
  loop l = {.ctx = ctx, .o = o};
  vklm_ckpt *ck = NULL;
  vklm_metrics hist = {0};
  vklm_status st = VKLM_OK;
  int line_open = 0; /* a progress line without its newline is on the terminal */
  snprintf(l.ckpt_path, sizeof l.ckpt_path, "%s/checkpoint.bin", o->out_dir);
  snprintf(l.log_path, sizeof l.log_path, "%s/metrics.jsonl", o->out_dir);
  snprintf(l.png_path, sizeof l.png_path, "%s/loss.png", o->out_dir);

  /* 1. Everything that can fail on bad input is checked before anything is written. */
  vklm_model_config cfg = o->model;
  vklm_objective obj = o->objective;
  uint32_t B = o->B, T = o->T, GA = o->grad_accum ? o->grad_accum : 1;
  uint64_t start = 0, rng = o->seed ^ 0x7261696E21ull, data_pos = 0, data_epoch = 0, tokens = 0;
  double elapsed0 = 0;
  if (o->resume) {
    if ((st = vklm_ckpt_read(o->resume, 1, &ck, err, errlen)) != VKLM_OK) goto done;
    cfg = ck->st.model;
    obj = ck->st.objective;
    B = ck->st.B;
    T = ck->st.T;
    GA = ck->st.grad_accum;
    start = ck->st.step;
    rng = ck->st.rng;
    data_pos = ck->st.data_pos;
    data_epoch = ck->st.data_epoch;
    tokens = ck->st.tokens_seen;
    elapsed0 = ck->st.elapsed_s;
  } else {
    struct stat sb;
    if (!o->force && stat(l.ckpt_path, &sb) == 0) {
      snprintf(err, errlen, "'%s' exists: resume it (--resume) or allow replacing it (--force)",
               l.ckpt_path);
      st = VKLM_ERROR_INVALID;
      goto done;
    }
  }
  if (cfg.vocab_size == 0) cfg.vocab_size = (uint32_t)vklm_tokens_vocab(train);
  if (T > cfg.max_seq) cfg.max_seq = ck ? cfg.max_seq : T;
  if (vklm_model_config_check(&cfg, err, errlen) != VKLM_OK) {
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  if (T > cfg.max_seq) {
    snprintf(err, errlen, "sequence length T=%u exceeds the model's %u positions", T, cfg.max_seq);
    st = VKLM_ERROR_INVALID;
    goto done;
  }
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
  uint32_t total = o->steps ? o->steps : (uint32_t)(ck ? ck->st.total_steps : 0);
  uint32_t end = o->stop_at && o->stop_at < total ? o->stop_at : total;
  if (start >= end) {
    snprintf(err, errlen, "nothing to do: the checkpoint is at step %llu of %u",
             (unsigned long long)start, end);
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
  if ((st = vklm_model_create(ctx, &cfg, B, T, obj, &l.model)) != VKLM_OK) {
    snprintf(err, errlen, "cannot create the model: %s", vklm_model_error(NULL));
    goto done;
  }
  if (ck) st = vklm_ckpt_load_model(ck, l.model, err, errlen);
  else if ((st = vklm_model_init(l.model, o->seed)) != VKLM_OK)
    snprintf(err, errlen, "model init: %s", vklm_model_error(l.model));
  if (st != VKLM_OK) goto done;
  if ((st = make_dir(o->out_dir, err, errlen)) != VKLM_OK) goto done;

  /* 2. Set-up. */
  l.V = cfg.vocab_size;
  l.B = B;
  l.T = T;
  l.mask_id = ck ? ck->st.mask_id : (o->mask_id >= 0 ? o->mask_id : vklm_model_mask_id(&cfg));
  size_t bt = (size_t)B * T;
  l.buf = malloc((bt + 1) * sizeof(int32_t));
  l.inputs = malloc(bt * sizeof(int32_t));
  l.targets = malloc(bt * sizeof(int32_t));
  l.masked = malloc(bt * sizeof(int32_t));
  res->losses = malloc((size_t)(end + 1) * sizeof(float));
  if (!l.buf || !l.inputs || !l.targets || !l.masked || !res->losses) {
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    snprintf(err, errlen, "out of host memory");
    goto done;
  }
  for (uint32_t i = 0; i <= end; i++) res->losses[i] = NAN;
  vklm_batcher tb;
  vklm_batcher_init(&tb, train, B, T, err, errlen);
  tb.pos = data_pos;
  tb.epoch = data_epoch;
  uint32_t val_nb = 0;
  if (val && o->val_batches) {
    uint64_t windows = (vklm_tokens_count(val) - 1) / bt;
    val_nb = o->val_batches < windows ? o->val_batches : (uint32_t)windows;
  }
  vklm_ckpt_state cs = {.model = cfg, .objective = obj, .B = B, .T = T, .grad_accum = GA,
                        .total_steps = total, .warmup = ck ? ck->st.warmup : o->warmup,
                        .seed = ck ? ck->st.seed : o->seed, .lr = ck ? ck->st.lr : o->lr,
                        .min_lr = ck ? ck->st.min_lr : o->min_lr, .mask_id = l.mask_id};
  if (ck) cs.opt = ck->st.opt;
  else cs.opt = (vklm_optim_config){.lr = o->lr, .beta1 = o->beta1, .beta2 = o->beta2,
                                    .eps = o->eps, .weight_decay = o->weight_decay,
                                    .grad_clip = o->grad_clip};
  if (o->steps && ck) cs.total_steps = o->steps; /* a resume may extend the run */
  if (ck) {
    if ((st = vklm_metrics_load(&hist, l.log_path, (uint32_t)start, err, errlen)) != VKLM_OK ||
        (st = vklm_metrics_save(&hist, l.log_path, err, errlen)) != VKLM_OK)
      goto done;
  } else {
    if ((st = vklm_metrics_save(&hist, l.log_path, err, errlen)) != VKLM_OK) goto done;
    if (val_nb) {
      vklm_metric r = {.step = 0, .train_loss = NAN, .grad_norm = NAN, .lr = 0};
      if ((st = eval_val(&l, val, val_nb, cs.seed, &r.val_loss, err, errlen)) != VKLM_OK) goto done;
      res->last_val_loss = r.val_loss;
      vklm_metrics_add(&hist, &r);
      if ((st = vklm_metrics_append(&r, l.log_path, err, errlen)) != VKLM_OK) goto done;
    }
  }
  char title[160];
  snprintf(title, sizeof title, "%s L=%u C=%u V=%u  B=%u T=%u", cfg.arch == VKLM_ARCH_LLAMA ?
           "llama" : "gpt2", cfg.n_layer, cfg.n_embd, cfg.vocab_size, B, T);
  int tty = o->progress && isatty(2);
  uint32_t log_every = o->log_every ? o->log_every : 10;

  /* 3. The loop. */
  double t_run = now_s(), t_train = 0;
  long long last_ckpt = ck ? (long long)start : -1;
  res->first_step = (uint32_t)start + 1;
  res->last_step = (uint32_t)start;
  for (uint32_t step = (uint32_t)start + 1; step <= end; step++) {
    double t0 = now_s();
    if (o->nan_step == step) { /* test hook: a NaN in the final norm's weight (or parameter 0) */
      uint64_t n = vklm_model_num_params(l.model), at = 0;
      for (uint32_t i = 0; i < vklm_model_param_count(l.model); i++)
        if (!strcmp(vklm_model_param(l.model, i)->name, "lnf.weight"))
          at = vklm_model_param(l.model, i)->offset;
      float *p = malloc(n * sizeof(float));
      if (p && vklm_model_get_params(l.model, p) == VKLM_OK) {
        p[at] = NAN;
        vklm_model_set_params(l.model, p);
      }
      free(p);
    }
    double lsum = 0;
    for (uint32_t g = 0; g < GA; g++) {
      if ((st = vklm_batcher_next(&tb, l.V, l.buf, l.inputs, l.targets, err, errlen)) != VKLM_OK)
        goto done;
      const int32_t *in, *tg;
      uint64_t mseed = vklm_train_rng_next(&rng);
      objective_batch(&l, mseed, &in, &tg);
      float loss = 0;
      if ((st = vklm_model_forward_backward(l.model, in, tg, 1.0f / GA, &loss)) != VKLM_OK) {
        snprintf(err, errlen, "step %u: %s", step, vklm_model_error(l.model));
        goto done;
      }
      lsum += loss;
    }
    float loss = (float)(lsum / GA);
    float lr = vklm_train_lr(step, (uint32_t)cs.warmup, (uint32_t)cs.total_steps, cs.lr, cs.min_lr);
    float gn = NAN;
    if (isfinite(loss)) {
      vklm_optim_config oc = cs.opt;
      oc.lr = lr;
      if ((st = vklm_model_update(l.model, &oc, step, &gn)) != VKLM_OK) {
        snprintf(err, errlen, "step %u update: %s", step, vklm_model_error(l.model));
        goto done;
      }
    }
    if (!isfinite(loss) || !isfinite(gn)) {
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
    double dt = now_s() - t0;
    t_train += dt;
    tokens += (uint64_t)bt * GA;
    res->losses[step] = loss;
    res->last_step = step;
    vklm_metric r = {.step = step, .train_loss = loss, .val_loss = NAN, .lr = lr, .grad_norm = gn,
                     .tokens_per_s = bt * GA / dt, .elapsed_s = elapsed0 + (now_s() - t_run)};
    if (val_nb && ((o->val_every && step % o->val_every == 0) || step == end)) {
      if ((st = eval_val(&l, val, val_nb, cs.seed, &r.val_loss, err, errlen)) != VKLM_OK) goto done;
      res->last_val_loss = r.val_loss;
    }
    vklm_metrics_add(&hist, &r);
    if ((st = vklm_metrics_append(&r, l.log_path, err, errlen)) != VKLM_OK) goto done;
    if (o->progress) {
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
    int stopping = o->stop && *o->stop;
    if ((o->ckpt_every && step % o->ckpt_every == 0) || step == end || stopping) {
      cs.step = step;
      cs.data_pos = tb.pos;
      cs.data_epoch = tb.epoch;
      cs.rng = rng;
      cs.tokens_seen = tokens;
      cs.elapsed_s = r.elapsed_s;
      cs.opt.lr = lr;
      if ((st = vklm_ckpt_save_model(l.ckpt_path, l.model, &cs, err, errlen)) != VKLM_OK) goto done;
      last_ckpt = step; /* the last good checkpoint, for the NaN message */
      if (o->plot && (st = vklm_plot_loss(&hist, title, l.png_path, 800, 500, err, errlen)) != VKLM_OK)
        goto done;
    }
    if (stopping) {
      res->interrupted = 1;
      break;
    }
  }
  res->ms_per_step = t_train * 1e3 / (res->last_step - res->first_step + 1);
  res->tokens_per_s = (double)bt * GA * (res->last_step - res->first_step + 1) / t_train;
done:
  if (line_open) fputc('\n', stderr); /* end the in-place progress line */
  free(l.buf);
  free(l.inputs);
  free(l.targets);
  free(l.masked);
  vklm_model_destroy(l.model);
  vklm_ckpt_free(ck);
  vklm_metrics_free(&hist);
  return st;
}

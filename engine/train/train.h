/* train: the pretraining loop around engine/model — data batches, the learning-rate schedule,
 * checkpoints (atomic, CRC-checked, bit-identical resume), the metrics log, the loss-curve PNG
 * and the safetensors export.
 *
 * Owns: the token sources (shards or an in-memory token array), the host copies of the
 * parameters and moments while a checkpoint is written or read, the metrics history. Borrows the
 * context and the model.
 *
 * Invariants: batches are sequential and deterministic: a micro-batch is the B*T+1 tokens at the
 * data position (row b of inputs = tokens[pos + b*T, +T), targets shifted by one), the position
 * then advances by B*T and wraps to 0 (epoch + 1) when the next window would not fit. The data
 * position, the step and the generator state are in the checkpoint, so a resumed run replays
 * exactly what an uninterrupted one would have done.
 *
 * Does not: parse command lines (apps/cmd_train.c), shuffle data, or run on the CPU: the model
 * computes everything on the GPU. Formats: docs/checkpoint.md, docs/training.md. */
#ifndef VKLM_TRAIN_H
#define VKLM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* ---- token sources (data.c) --------------------------------------------------------------- */
typedef struct vklm_tokens vklm_tokens;

/* Shards: a glob pattern (train_*.bin), one file, or a directory (then its `prefix`*.bin files,
 * prefix "train_" or "val_"), concatenated in name order. Fails with a message when nothing
 * matches or a shard is corrupt. */
vklm_status vklm_tokens_open_shards(const char *pattern, const char *prefix, vklm_tokens **out,
                                    char *err, size_t errlen);
/* An in-memory copy of ids[0..n) with vocabulary size vocab. */
vklm_status vklm_tokens_from_array(const int32_t *ids, uint64_t n, uint64_t vocab,
                                   vklm_tokens **out);
/* A text file encoded with a tokenizer (tokenizer.json or a directory), split into the first
 * (1 - val_fraction) of the tokens for training and the rest for validation (*val NULL when
 * val_fraction is 0). */
vklm_status vklm_tokens_from_text(const char *text_path, const char *tokenizer_path,
                                  double val_fraction, vklm_tokens **train, vklm_tokens **val,
                                  char *err, size_t errlen);
void vklm_tokens_destroy(vklm_tokens *t); /* accepts NULL */
uint64_t vklm_tokens_count(const vklm_tokens *t);
uint64_t vklm_tokens_vocab(const vklm_tokens *t); /* ids are < this (from the shard headers) */
/* Tokens [start, start+n) into dst; checks every id < V (the model's vocabulary). */
vklm_status vklm_tokens_read(const vklm_tokens *t, uint64_t start, uint64_t n, uint32_t V,
                             int32_t *dst, char *err, size_t errlen);

/* The sequential batch reader. */
typedef struct vklm_batcher {
  const vklm_tokens *src; /* borrowed */
  uint32_t B, T;
  uint64_t pos, epoch;
} vklm_batcher;
/* Fails (with the sizes in the message) when the source holds fewer than B*T+1 tokens. */
vklm_status vklm_batcher_init(vklm_batcher *b, const vklm_tokens *src, uint32_t B, uint32_t T,
                              char *err, size_t errlen);
/* The next micro-batch: inputs and targets (B,T) int32; buf holds B*T+1 tokens of scratch. */
vklm_status vklm_batcher_next(vklm_batcher *b, uint32_t V, int32_t *buf, int32_t *inputs,
                              int32_t *targets, char *err, size_t errlen);

/* ---- learning-rate schedule (schedule.c) ------------------------------------------------ */
/* Linear warmup over steps 1..warmup to lr, then cosine decay to min_lr at step `total`
 * (steps count from 1; min_lr after total). */
float vklm_train_lr(uint32_t step, uint32_t warmup, uint32_t total, float lr, float min_lr);
/* splitmix64: the seeded generator (its state is checkpointed). */
uint64_t vklm_train_rng_next(uint64_t *state);

/* ---- checkpoints (checkpoint.c, format in docs/checkpoint.md) ----------------------------- */
#define VKLM_CKPT_MAGIC "VKLMCKPT"
#define VKLM_CKPT_VERSION 1u

typedef struct vklm_ckpt_state {
  vklm_model_config model;
  vklm_objective objective;
  uint32_t B, T, grad_accum;
  uint64_t step;                  /* optimizer steps done */
  uint64_t total_steps, warmup;
  uint64_t data_pos, data_epoch;  /* the training batcher's position */
  uint64_t rng;                   /* generator state after `step` steps */
  uint64_t seed;
  uint64_t tokens_seen;
  double elapsed_s;               /* training time so far */
  float lr, min_lr;               /* schedule: peak and final */
  vklm_optim_config opt;          /* beta1, beta2, eps, weight decay, clip (lr: of the last step) */
  int32_t mask_id;                /* MLM mask token */
} vklm_ckpt_state;

typedef struct vklm_ckpt {
  vklm_ckpt_state st;
  uint32_t ntensors;
  vklm_param_info *table; /* owned */
  uint64_t nparams;
  float *params, *m, *v;  /* owned; m and v NULL unless read with moments */
} vklm_ckpt;

/* Writes path atomically: path.tmp, fsync, rename, fsync of the directory. */
vklm_status vklm_ckpt_write(const char *path, const vklm_ckpt_state *st,
                            const vklm_param_info *table, uint32_t ntensors, const float *params,
                            const float *m, const float *v, uint64_t nparams, char *err,
                            size_t errlen);
/* Reads and verifies (magic, version, sizes, both CRCs) a checkpoint. */
vklm_status vklm_ckpt_read(const char *path, int with_moments, vklm_ckpt **out, char *err,
                           size_t errlen);
void vklm_ckpt_free(vklm_ckpt *c); /* accepts NULL */
/* Writes the model's parameters and moments with state st. */
vklm_status vklm_ckpt_save_model(const char *path, vklm_model *m, const vklm_ckpt_state *st,
                                 char *err, size_t errlen);
/* Loads c into the model after checking that its parameter table matches the model's. */
vklm_status vklm_ckpt_load_model(const vklm_ckpt *c, vklm_model *m, char *err, size_t errlen);

/* ---- metrics and plot (metrics.c, plot.c) ------------------------------------------------ */
typedef struct vklm_metric {
  uint32_t step;
  float train_loss, val_loss; /* val_loss NaN when not measured at this step */
  float lr, grad_norm;
  double tokens_per_s, elapsed_s;
} vklm_metric;

typedef struct vklm_metrics {
  vklm_metric *rows; /* owned */
  size_t n, cap;
} vklm_metrics;
void vklm_metrics_add(vklm_metrics *h, const vklm_metric *r);
void vklm_metrics_free(vklm_metrics *h);
/* Reads a JSONL log, keeping the rows with step <= max_step (a missing file is an empty log). */
vklm_status vklm_metrics_load(vklm_metrics *h, const char *path, uint32_t max_step, char *err,
                              size_t errlen);
/* Rewrites the whole log (atomically), or appends one row. */
vklm_status vklm_metrics_save(const vklm_metrics *h, const char *path, char *err, size_t errlen);
vklm_status vklm_metrics_append(const vklm_metric *r, const char *path, char *err, size_t errlen);
/* One JSON object for a row (no newline) into buf. */
void vklm_metric_json(const vklm_metric *r, char *buf, size_t n);

/* Draws the train and validation loss curves (axes with tick values, labels, a legend) into a
 * width x height PNG. */
vklm_status vklm_plot_loss(const vklm_metrics *h, const char *title, const char *path,
                           int width, int height, char *err, size_t errlen);

/* ---- the loop (train.c) ----------------------------------------------------------------- */
typedef struct vklm_train_options {
  vklm_model_config model;
  vklm_objective objective;
  uint32_t B, T, grad_accum, steps, warmup;
  float lr, min_lr, weight_decay, grad_clip, beta1, beta2, eps;
  uint32_t val_every, val_batches, ckpt_every, log_every;
  uint64_t seed;
  int32_t mask_id;        /* MLM: the mask token (-1: V-1) */
  const char *out_dir;    /* checkpoint.bin, metrics.jsonl, loss.png */
  const char *resume;     /* a checkpoint to continue from, or NULL */
  int progress;           /* 0 quiet, 1 progress on stderr (in place on a terminal) */
  int plot;               /* write loss.png */
  int force;              /* a fresh run may replace an existing checkpoint in out_dir */
  uint32_t stop_at;       /* stop (with a checkpoint) after this step, as if killed (0: steps) */
  uint32_t nan_step;      /* test hook: poison a parameter with NaN before this step (0: off) */
  volatile int *stop;     /* when set (e.g. by a SIGINT handler in the app), the loop ends after
                             the current step with a checkpoint; NULL: never */
} vklm_train_options;

/* The defaults: gpt2-tiny, causal, B 4, T 64, 100 steps, lr 6e-4 to 6e-5, warmup 10, wd 0.1,
 * clip 1.0, AdamW (0.9, 0.95, 1e-8), val every 50 steps over 8 batches, checkpoint every 100. */
void vklm_train_options_default(vklm_train_options *o);

typedef struct vklm_train_result {
  uint32_t first_step, last_step; /* steps run by this call (first_step > last_step: none) */
  float *losses;                  /* owned; losses[s] = train loss of step s, [0..last_step] */
  float last_val_loss;            /* NaN when never measured */
  double tokens_per_s;            /* mean over this call */
  double ms_per_step;
  int interrupted;                /* ended early by *o->stop (a checkpoint was written) */
} vklm_train_result;
void vklm_train_result_free(vklm_train_result *r);

/* Trains: fresh (init with the seed) or from o->resume; val may be NULL. Checkpoints every
 * ckpt_every steps and at the end. A non-finite loss or gradient norm stops with
 * VKLM_ERROR_INVALID and a message naming the step; the last good checkpoint stays. */
vklm_status vklm_train_run(vklm_context *ctx, const vklm_train_options *o,
                           const vklm_tokens *train, const vklm_tokens *val,
                           vklm_train_result *res, char *err, size_t errlen);

/* ---- export (export.c) ------------------------------------------------------------------ */
/* Writes the checkpoint's parameters as safetensors with Hugging Face's names (GPT2LMHeadModel
 * or LlamaForCausalLM) and, when config_path is not NULL, HF's config.json. */
vklm_status vklm_export_safetensors(const vklm_ckpt *c, const char *path, const char *config_path,
                                    char *err, size_t errlen);

#endif

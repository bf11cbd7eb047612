/* train: the training loop around engine/model — data batches, the learning-rate schedule,
 * checkpoints (atomic, CRC-checked, bit-identical resume), the metrics log, the loss-curve PNG
 * and the safetensors export. A run is fresh (random init), continues a checkpoint (resume), or
 * starts fresh from the weights of another model (init: a checkpoint, an HF directory or a GGUF).
 *
 * Owns: the token sources (shards or an in-memory token array), the host copies of the
 * parameters and moments while a checkpoint is written or read, the metrics history. Borrows the
 * context and the model.
 *
 * Invariants: batches are deterministic. Shuffled order (the default): the training data is cut
 * into non-overlapping windows of T+1 tokens at stride T; each epoch draws them in the order of a
 * bijective keyed permutation of (seed, epoch) (a Feistel network, nothing stored), B windows per
 * micro-batch. Sequential order: a micro-batch is the B*T+1 tokens at the data position. Either
 * way the position (tokens of the epoch consumed), the epoch, the step and the generator state
 * are in the checkpoint, so a resumed run replays exactly what an uninterrupted one would have
 * done. The gradient of a step is the gradient of the mean loss over all its non-ignored target
 * tokens, however they fall into micro-batches. Validation batches are fixed and sequential.
 *
 * Does not: parse command lines (apps/cmd_train.c) or run on the CPU: the model computes
 * everything on the GPU. Formats: docs/checkpoint.md, docs/training.md. */
#ifndef VKLM_TRAIN_H
#define VKLM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dist/dist.h"
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
/* Examples (supervised fine-tuning): example e is ids[off[e], off[e+1]) (at least 2 tokens),
 * target[j] 1 where token j is predicted (its loss counts: a completion), 0 where it is only
 * context (a prompt). A batch holds one example per row, right-padded to T (inputs 0, targets
 * ignored there), the targets of non-target tokens ignored: examples never share a row, so they
 * cannot see each other. Shuffled order permutes examples as windows are permuted; sequential
 * takes them in order; pos counts examples drawn times T either way. Copies everything. */
vklm_status vklm_tokens_from_examples(const int32_t *ids, const uint8_t *target,
                                      const uint64_t *off, uint64_t nex, uint64_t vocab,
                                      vklm_tokens **out);
uint64_t vklm_tokens_examples(const vklm_tokens *t); /* 0 for a token stream */
/* Whole (B,T) batches in the source: examples / B, or windows of B*T+1 tokens. */
uint64_t vklm_tokens_batches(const vklm_tokens *t, uint32_t B, uint32_t T);
void vklm_tokens_destroy(vklm_tokens *t); /* accepts NULL */
uint64_t vklm_tokens_count(const vklm_tokens *t);
uint64_t vklm_tokens_vocab(const vklm_tokens *t); /* ids are < this (from the shard headers) */
/* Tokens [start, start+n) into dst; checks every id < V (the model's vocabulary). */
vklm_status vklm_tokens_read(const vklm_tokens *t, uint64_t start, uint64_t n, uint32_t V,
                             int32_t *dst, char *err, size_t errlen);

/* The batch reader. pos counts the tokens of the current epoch already consumed: sequential, the
 * token index of the next micro-batch; shuffled, the windows drawn so far times T (so a change of
 * B keeps the exact place in the epoch, and a change of T or of the order keeps the fraction). */
typedef enum vklm_data_order { VKLM_DATA_SEQUENTIAL = 0, VKLM_DATA_SHUFFLED = 1 } vklm_data_order;
typedef struct vklm_batcher {
  const vklm_tokens *src; /* borrowed */
  uint32_t B, T;
  vklm_data_order order;
  uint64_t seed;          /* shuffled: the permutation's key, with the epoch */
  uint64_t nwin;          /* shuffled: windows of T+1 tokens at stride T, floor((n-1)/T) */
  uint64_t pos, epoch;
} vklm_batcher;
/* Sequential order, position 0. Fails (with the sizes in the message) when the source holds
 * fewer than B*T+1 tokens. */
vklm_status vklm_batcher_init(vklm_batcher *b, const vklm_tokens *src, uint32_t B, uint32_t T,
                              char *err, size_t errlen);
/* Chooses the order (and the shuffle's seed); then places the batcher at (pos, epoch) — a
 * shuffled position is rounded down to a whole number of windows. Any values are safe: a
 * position past the end starts the next epoch at the next read. */
void vklm_batcher_seek(vklm_batcher *b, vklm_data_order order, uint64_t seed, uint64_t pos,
                       uint64_t epoch);
/* Moves past the next micro-batch without reading it (exactly as vklm_batcher_next moves):
 * data-parallel ranks step over the micro-batches of the other ranks. */
void vklm_batcher_skip(vklm_batcher *b);
/* The next micro-batch: inputs and targets (B,T) int32; buf holds B*T+1 tokens of scratch. */
vklm_status vklm_batcher_next(vklm_batcher *b, uint32_t V, int32_t *buf, int32_t *inputs,
                              int32_t *targets, char *err, size_t errlen);
/* The shuffle: a bijection of [0, n) keyed by (seed, epoch); i < n. O(1) memory, a few hash
 * rounds per call (cycle-walking a Feistel network over the next even power of two). */
uint64_t vklm_data_permute(uint64_t i, uint64_t n, uint64_t seed, uint64_t epoch);
const char *vklm_data_order_name(vklm_data_order o); /* "sequential", "shuffled" */

/* ---- learning-rate schedule (schedule.c) ------------------------------------------------ */
/* Linear warmup over steps 1..warmup to lr, then cosine decay to min_lr at step `total`
 * (steps count from 1; min_lr after total). */
float vklm_train_lr(uint32_t step, uint32_t warmup, uint32_t total, float lr, float min_lr);
/* splitmix64: the seeded generator (its state is checkpointed). */
uint64_t vklm_train_rng_next(uint64_t *state);
/* Monotonic seconds (for rates and ETAs). */
double vklm_train_now_s(void);

/* ---- checkpoints (checkpoint.c, format in docs/checkpoint.md) ----------------------------- */
#define VKLM_CKPT_MAGIC "VKLMCKPT"
#define VKLM_CKPT_VERSION 3u /* written; versions 1 (read as sequential order) to 3 are read */

typedef struct vklm_ckpt_state {
  vklm_model_config model;
  vklm_objective objective;
  uint32_t B, T, grad_accum;
  uint64_t step;                  /* optimizer steps done */
  uint64_t total_steps, warmup;
  uint64_t data_pos, data_epoch;  /* the training batcher's position (vklm_batcher.pos, epoch) */
  vklm_data_order data_order;     /* version 1 files: sequential */
  uint64_t data_tokens;           /* tokens in the training data the run read (0: unknown) */
  uint64_t rng;                   /* generator state after `step` steps */
  uint64_t seed;
  uint64_t tokens_seen;
  double elapsed_s;               /* training time so far */
  float lr, min_lr;               /* schedule: peak and final */
  vklm_optim_config opt;          /* beta1, beta2, eps, weight decay, clip (lr: of the last step) */
  int32_t mask_id;                /* MLM mask token */
  /* mixed precision (version 3; older files: f32, scale 1, nothing skipped) */
  vklm_dtype precision;           /* the GEMMs' weight dtype: F32, F16 or BF16 */
  float loss_scale;               /* F16's dynamic loss scale S (1 otherwise) */
  uint32_t scale_good;            /* steps since S last changed (S doubles at 2000) */
  uint32_t skipped;               /* steps skipped on overflow: AdamW's t is step - skipped */
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
/* Reads and verifies (magic, version, sizes, both CRCs, enum fields) a checkpoint. */
/* Whether path is a file that starts with the checkpoint magic (a cheap sniff, no validation). */
int vklm_ckpt_sniff(const char *path);
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
/* The same for any two series: train_loss as name0 (rows of step 0 skipped), val_loss as name1
 * (PPO: mean reward and KL per iteration), on one y axis labelled ylabel. */
vklm_status vklm_plot_curves(const vklm_metrics *h, const char *title, const char *ylabel,
                             const char *name0, const char *name1, const char *path, int width,
                             int height, char *err, size_t errlen);

/* ---- the loop (train.c) ----------------------------------------------------------------- */
/* vklm_train_options.given: the values the caller set explicitly (command-line flags). A fresh
 * run uses the options whatever the bits. On resume, a training value comes from the options
 * when its bit is set, else from the checkpoint; model values, the objective, the mask id and the
 * seed must agree with the checkpoint when their bit is set. With init, the training values come
 * from the options and the model from the init model, which model bits must agree with. */
enum {
  VKLM_GIVEN_B = 1u << 0, VKLM_GIVEN_T = 1u << 1, VKLM_GIVEN_GRAD_ACCUM = 1u << 2,
  VKLM_GIVEN_STEPS = 1u << 3, VKLM_GIVEN_LR = 1u << 4, VKLM_GIVEN_MIN_LR = 1u << 5,
  VKLM_GIVEN_WARMUP = 1u << 6, VKLM_GIVEN_WD = 1u << 7, VKLM_GIVEN_CLIP = 1u << 8,
  VKLM_GIVEN_DATA_ORDER = 1u << 9, VKLM_GIVEN_SEED = 1u << 10, VKLM_GIVEN_OBJECTIVE = 1u << 11,
  VKLM_GIVEN_MASK_ID = 1u << 12, VKLM_GIVEN_PRECISION = 1u << 13,
  /* model shape (--model sets all of ARCH..TIE) */
  VKLM_GIVEN_ARCH = 1u << 16, VKLM_GIVEN_LAYERS = 1u << 17, VKLM_GIVEN_HEADS = 1u << 18,
  VKLM_GIVEN_KV_HEADS = 1u << 19, VKLM_GIVEN_EMBD = 1u << 20, VKLM_GIVEN_FFN = 1u << 21,
  VKLM_GIVEN_TIE = 1u << 22, VKLM_GIVEN_CTX = 1u << 23, VKLM_GIVEN_VOCAB = 1u << 24,
};

/* F16's dynamic loss scaling (torch.cuda.amp.GradScaler's defaults): the scale starts at 2^16,
 * halves on a step whose gradients overflow (the step is skipped) and doubles after 2000
 * consecutive good steps. */
#define VKLM_TRAIN_LOSS_SCALE0 65536.0f
#define VKLM_TRAIN_SCALE_INTERVAL 2000u

typedef struct vklm_train_options {
  vklm_model_config model;
  vklm_objective objective;
  uint32_t B, T, grad_accum, steps, warmup;
  float lr, min_lr, weight_decay, grad_clip, beta1, beta2, eps;
  uint32_t val_every, val_batches, ckpt_every, log_every;
  uint64_t seed;
  int32_t mask_id;        /* MLM: the mask token (-1: V-1) */
  vklm_data_order data_order;
  uint32_t given;         /* VKLM_GIVEN_* bits: see above */
  const char *out_dir;    /* checkpoint.bin, metrics.jsonl, loss.png */
  const char *resume;     /* a checkpoint to continue from, or NULL */
  const char *init;       /* or: a new run from these weights (checkpoint, run directory, HF
                             directory or GGUF), fresh schedule and moments; NULL */
  int progress;           /* 0 quiet, 1 progress on stderr (in place on a terminal) */
  int plot;               /* write loss.png */
  int force;              /* a fresh run may replace an existing checkpoint in out_dir */
  uint32_t stop_at;       /* stop (with a checkpoint) after this step, as if killed (0: steps) */
  uint32_t nan_step;      /* test hook: poison a parameter with NaN before this step (0: off) */
  volatile int *stop;     /* when set (e.g. by a SIGINT handler in the app), the loop ends after
                             the current step with a checkpoint; NULL: never */
  vklm_dist *dist;        /* data parallel (engine/dist, docs/distributed.md): the group this
                             process belongs to, or NULL for one process. Each step's grad_accum
                             micro-batches (the global batch) are split over the ranks, rank r
                             taking the r-th run of grad_accum/size consecutive ones (grad_accum
                             must be a multiple of the size; a fresh run without --grad-accum
                             takes the size); gradients are summed in rank order, so the result
                             is that of one process with the same global batch. Rank 0 alone
                             writes the checkpoint, the metrics, the plot and the progress. */
  int zero1;              /* data parallel: ZeRO-1, the AdamW moments and master weights sharded
                             over the ranks (train/zero.h); the checkpoint is the same */
  int recompute;          /* recompute the norms' outputs and the MLP activation in the
                             backward instead of keeping them (vklm_model_options.recompute):
                             less activation memory, the same bits */
  vklm_dtype precision;   /* F32 (default), BF16 or F16 (vklm_model_options.precision): mixed
                             precision; F16 with dynamic loss scaling (S from 65536, halved and
                             the step skipped on an overflow, doubled after 2000 good steps) */
  float loss_scale;       /* F16: the loss scale to start from (a power of two; 0: 65536 on a
                             fresh run, the checkpoint's on a resume) */
} vklm_train_options;

/* The defaults: gpt2-tiny, causal, B 4, T 64, 100 steps, lr 6e-4 to 6e-5, warmup 10, wd 0.1,
 * clip 1.0, AdamW (0.9, 0.95, 1e-8), shuffled data, val every 50 steps over 8 batches,
 * checkpoint every 100. */
void vklm_train_options_default(vklm_train_options *o);

/* The run's state before its first step (resolve.c): a fresh run from o (model->vocab_size 0:
 * data_vocab; max_seq raised to T), a resume from *ck (the checkpoint's state with o's given
 * training values), or an init run from the model *init (o's values, fresh state). Checks every
 * value (a hostile checkpoint's too) and that given model values agree; on success, *summary
 * (when summary_len > 0) says which values came from flags, the checkpoint or the defaults. */
vklm_status vklm_train_resolve(const vklm_train_options *o, const vklm_ckpt_state *ck,
                               const vklm_model_config *init, uint64_t data_vocab,
                               uint64_t data_tokens, vklm_ckpt_state *out, char *summary,
                               size_t summary_len, char *err, size_t errlen);
/* The weights of an init model (resolve.c): a vklm checkpoint (or a directory holding
 * checkpoint.bin) without its moments, or an HF directory / GGUF through vklm_model_load,
 * as a vklm_ckpt whose st holds only the model config. *what names the kind ("checkpoint",
 * "hf", "gguf"). */
vklm_status vklm_train_open_init(const char *path, vklm_ckpt **out, char *what, size_t what_len,
                                 char *err, size_t errlen);

/* The non-ignored targets (!= VKLM_IGNORE_INDEX) among n. */
uint64_t vklm_train_count_targets(const int32_t *targets, size_t n);
/* One optimizer step's forward + backward over nmb micro-batches (inputs[i], targets[i]: (B,T)
 * each, the model's B and T): micro-batch i runs vklm_model_forward_backward with grad_scale =
 * count_i / count (count_i its non-ignored targets, count the step's), so the accumulated
 * gradient is that of the mean loss over all the step's target tokens, as one large batch would
 * give; *loss = sum_i loss_i * count_i / count, *ntargets = count. A micro-batch without targets
 * is skipped; a step without any is VKLM_ERROR_INVALID. Gradients accumulate into the model's;
 * vklm_model_update applies and zeroes them. */
vklm_status vklm_train_accumulate(vklm_model *m, uint32_t nmb, const int32_t *const *inputs,
                                  const int32_t *const *targets, float *loss, uint64_t *ntargets,
                                  char *err, size_t errlen);
/* A whole optimizer step: the passes of vklm_train_accumulate, the last micro-batch with targets
 * and the update (oc, step; vklm_model_train_step) in one submission. The update runs whatever
 * the loss; *loss and *grad_norm (NULL: not read) for the caller's checks. */
vklm_status vklm_train_step(vklm_model *m, uint32_t nmb, const int32_t *const *inputs,
                            const int32_t *const *targets, const vklm_optim_config *oc,
                            uint32_t step, float *loss, float *grad_norm, char *err,
                            size_t errlen);
/* The same for this rank's share of a data-parallel step: grad_scale = count_i / total, total
 * the target tokens of the whole step over every rank (> 0); *loss_sum = sum_i loss_i * count_i
 * (the ranks' sums over total give the step's loss). Micro-batches without targets are skipped. */
vklm_status vklm_train_accumulate_part(vklm_model *m, uint32_t nmb, const int32_t *const *inputs,
                                       const int32_t *const *targets, uint64_t total,
                                       double *loss_sum, char *err, size_t errlen);

typedef struct vklm_train_result {
  uint32_t first_step, last_step; /* steps run by this call (first_step > last_step: none) */
  float *losses;                  /* owned; losses[s] = train loss of step s, [0..last_step] */
  float last_val_loss;            /* NaN when never measured */
  double tokens_per_s;            /* mean over this call */
  double ms_per_step;
  int interrupted;                /* ended early by *o->stop (a checkpoint was written) */
  int peer_failed;                /* data parallel: ended because another rank failed (err
                                     names it) */
  vklm_overlap_stats overlap;     /* data parallel: the last step's gradient reduction, part by
                                     part while the backward ran (model.h) */
} vklm_train_result;
void vklm_train_result_free(vklm_train_result *r);

/* Trains: fresh (init with the seed), from o->resume or from o->init's weights; val may be NULL.
 * Checkpoints every ckpt_every steps and at the end. A non-finite loss or gradient norm stops
 * with VKLM_ERROR_INVALID and a message naming the step; the last good checkpoint stays. With
 * o->progress, a resume or init run first prints where each setting came from (stderr). */
vklm_status vklm_train_run(vklm_context *ctx, const vklm_train_options *o,
                           const vklm_tokens *train, const vklm_tokens *val,
                           vklm_train_result *res, char *err, size_t errlen);

/* ---- export (export.c) ------------------------------------------------------------------ */
/* Writes the checkpoint's parameters as safetensors with Hugging Face's names (GPT2LMHeadModel
 * or LlamaForCausalLM) and, when config_path is not NULL, HF's config.json. */
vklm_status vklm_export_safetensors(const vklm_ckpt *c, const char *path, const char *config_path,
                                    char *err, size_t errlen);

#endif

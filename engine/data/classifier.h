/* classifier: a learned document filter for `vklm data classifier` and `vklm data prepare
 * --classifier`: the engine's transformer (engine/model) with a scalar head, read at the last
 * position of  tokens(text)[:T-1] + <|endoftext|>  and trained with binary cross-entropy on
 * labelled JSONL ({"text": ..., "label": 0|1}; true/false too). The score of a document is
 * sigmoid(value): the probability of label 1 ("harmful", "low quality", or, for an
 * educational-quality filter, "educational": what 1 means is the data's). Training and scoring
 * run on the GPU in batches (B rows of T tokens, right-padded; causal attention, so padding
 * never changes a row's score).
 * A classifier is a directory: model.bin (a vklm checkpoint, docs/checkpoint.md), tokenizer.json
 * (the tokenizer it was trained with) and classifier.json (T, the end-of-text id, the
 * tokenizer's fingerprint and vocabulary size, held-out metrics). Loading checks that the
 * directory's tokenizer is the one the model was trained with (fingerprint, vocabulary size,
 * the model's vocabulary) and refuses a mismatch. */
#ifndef VKLM_DATA_CLASSIFIER_H
#define VKLM_DATA_CLASSIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

typedef struct vklm_classifier_train_opts {
  const char *data;      /* labelled JSONL */
  const char *tokenizer; /* tokenizer.json; needs the end-of-text special token */
  const char *init;      /* a checkpoint to start from (its vocabulary must be the tokenizer's);
                            NULL: a new GPT-2 style model of the sizes below */
  const char *out_dir;   /* created if missing */
  const char *eot;       /* "<|endoftext|>" */
  uint32_t T, B;         /* 64, 16 */
  uint32_t layers, heads, embd; /* 2, 2, 64 (a new model) */
  uint32_t epochs, steps;       /* 4; steps > 0 overrides epochs */
  float lr, min_lr, weight_decay, grad_clip; /* 1e-3, 1e-4, 0.0, 1.0 */
  uint32_t warmup;                           /* 10 */
  double val_fraction;                       /* 0.2 */
  uint64_t seed;                             /* 1 */
  int progress;
} vklm_classifier_train_opts;

typedef struct vklm_classifier_metrics {
  uint64_t n, tp, fp, tn, fn;
  double loss, accuracy, precision, recall; /* at probability 0.5; NaN when undefined */
} vklm_classifier_metrics;

typedef struct vklm_classifier_result {
  uint64_t train_docs, val_docs, truncated; /* truncated: documents longer than T-1 tokens */
  uint32_t steps;
  double first_loss, last_loss, seconds, docs_per_s;
  vklm_classifier_metrics train, val;
} vklm_classifier_result;

void vklm_classifier_train_default(vklm_classifier_train_opts *o);
/* Trains and writes the classifier directory. Returns VKLM_OK, or a status with a message in err
 * (bad labels name their line; a single class, too few documents, a tokenizer without the
 * end-of-text token, an --init checkpoint with another vocabulary are refused before training). */
vklm_status vklm_classifier_train(vklm_context *ctx, const vklm_classifier_train_opts *o,
                                  vklm_classifier_result *res, char *err, size_t errlen);

typedef struct vklm_classifier vklm_classifier;
/* Loads a classifier directory as a frozen model scoring B documents per GPU batch (0: 32).
 * Refuses a directory whose tokenizer is not the one the model was trained with. */
vklm_status vklm_classifier_load(vklm_context *ctx, const char *dir, uint32_t B,
                                 vklm_classifier **out, char *err, size_t errlen);
void vklm_classifier_destroy(vklm_classifier *c); /* accepts NULL */
uint32_t vklm_classifier_seq(const vklm_classifier *c); /* T */
/* The token row a text is scored on: ids[0..*len) (ids holds T). Returns 0 or -1. */
int vklm_classifier_encode(vklm_classifier *c, const char *text, size_t n, int32_t *ids,
                           uint32_t *len);
/* Probabilities (and raw values when values != NULL) of n texts, in GPU batches of B. */
vklm_status vklm_classifier_score(vklm_classifier *c, const char *const *texts,
                                  const size_t *lens, uint32_t n, float *prob, float *values,
                                  char *err, size_t errlen);
/* A prepare scorer (prepare.h's vklm_doc_scorer.score) over a loaded classifier (user). */
int vklm_classifier_scorer(void *user, const char *const *texts, const size_t *lens, int n,
                           float *out, char *err, size_t errlen);

#endif

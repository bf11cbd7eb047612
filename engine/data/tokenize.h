/* tokenize: cleaned JSONL -> token shards (`vklm data tokenize`). Every document is encoded with
 * a byte-level BPE tokenizer (engine/text/tokenizer.h) and preceded by the end-of-text token, so
 * each document starts with one and a shard reads as  EOT doc EOT doc ...  (a document may run
 * on into the next shard). Documents go to validation when a hash of their text (with a seed)
 * falls under val_fraction, else to training: the split is by document, deterministic and
 * independent of the order or of the number of threads. Shards are outdir/train_NNNNNN.bin and
 * outdir/val_NNNNNN.bin, each holding shard_tokens tokens except the last of each split.
 * Input is read by the prepare reader (files or directories of .jsonl, gzip or not); encoding
 * runs on a thread pool with one encoder per thread; output order is input order. */
#ifndef VKLM_DATA_TOKENIZE_H
#define VKLM_DATA_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

typedef struct vklm_tokenize_opts {
  const char *tokenizer; /* tokenizer.json (or anything vklm_tokenizer_load accepts) */
  const char *const *inputs;
  int ninputs;
  const char *outdir;     /* created if missing */
  const char *text_field; /* "text" */
  const char *eot;        /* "<|endoftext|>": a special token of the tokenizer */
  uint64_t shard_tokens;  /* 100,000,000 */
  double val_fraction;    /* 0.01 */
  uint64_t seed;
  int threads; /* 0: one per core */
  int progress;
  /* --shard i/N: only documents i, i+N, i+2N, ... of the input (reader order), written to
   * train_<i>of<N>_NNNNNN.bin / val_<i>of<N>_NNNNNN.bin, so N runs (or MPI ranks) can share one
   * output directory; together they hold every document once, each in the split one run would
   * give it. nshards 0 or 1: everything, train_NNNNNN.bin. */
  uint32_t shard, nshards;
} vklm_tokenize_opts;

typedef struct vklm_tokenize_stats {
  uint64_t docs, docs_train, docs_val;
  uint64_t tokens_train, tokens_val;
  uint64_t shards_train, shards_val;
  uint64_t lines_malformed, bytes;
  uint32_t vocab_size, width;
  double seconds;
} vklm_tokenize_stats;

void vklm_tokenize_default(vklm_tokenize_opts *o);
/* Returns 0, or -1 with a message in err. */
int vklm_tokenize_run(const vklm_tokenize_opts *o, vklm_tokenize_stats *st, char *err,
                      size_t errlen);

#endif

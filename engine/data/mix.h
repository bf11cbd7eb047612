/* mix: `vklm data mix`, sampling prepared documents (JSONL from `vklm data prepare`, whose lines
 * carry "source", "lang" and "topic" tags) to target weights by one of those keys, and writing
 * the token shards `vklm train` reads.
 * Weights are shares of tokens (normalised to sum 1). The output size is the natural size of the
 * weighted keys (or total_tokens), lowered where a key would otherwise need more than max_repeat
 * copies of its documents. Each document of a key is taken floor(r) times, r = target / natural
 * tokens of the key, and a seeded random subset of its documents once more, until the key's
 * target is met to within one document; so no document is taken more than ceil(max_repeat)
 * times and a key's share lands within one document's tokens of its target. Documents whose
 * key has no weight are left out (counted). The chosen copies are shuffled (seeded, through
 * bucket files: memory holds about 1/64 of the output) into <outdir>/mix.jsonl, which the
 * tokenize step (tokenize.h: same shards, same train/validation split by document) turns into
 * <outdir>/train_*.bin and val_*.bin. The same inputs, options and seed give the same bytes.
 * The mixture before and after (documents, bytes, tokens by key) goes to <outdir>/mixture.json
 * and, as a bar chart, <outdir>/mixture.png. Token counts include each document's end-of-text
 * token, as in the shards. */
#ifndef VKLM_DATA_MIX_H
#define VKLM_DATA_MIX_H

#include <stdint.h>
#include <stdio.h>

#include "data/tokenize.h"

#define VKLM_MIX_MAX_KEYS 64

typedef struct vklm_mix_opts {
  const char *const *inputs; /* borrowed: prepared JSONL files or directories */
  int ninputs;
  const char *outdir;
  const char *tokenizer;
  const char *by;      /* "source", "lang" or "topic" */
  const char *weights; /* "web=0.6,code=0.2,books=0.2" */
  uint64_t seed;       /* 1 */
  double max_repeat;   /* 4: at most this many copies of a document (rounded up) */
  uint64_t total_tokens; /* 0: the natural size of the weighted keys */
  uint64_t shard_tokens; /* tokenize: 100,000,000 */
  double val_fraction;   /* tokenize: 0.01 */
  const char *eot;       /* tokenize: "<|endoftext|>" */
  int threads;           /* tokenize threads; 0: one per core */
  int plot;              /* write mixture.png (1) */
  int progress;
} vklm_mix_opts;

typedef struct vklm_mix_key {
  char name[32];
  double weight; /* normalised target share of tokens */
  uint64_t docs_in, bytes_in, tokens_in;
  uint64_t docs_out, bytes_out, tokens_out;
  uint32_t max_copies; /* the most copies of one document taken */
} vklm_mix_key;

typedef struct vklm_mix_stats {
  vklm_mix_key key[VKLM_MIX_MAX_KEYS];
  int nkeys;
  uint64_t docs_unweighted, bytes_unweighted, tokens_unweighted; /* keys with no weight */
  uint64_t docs_untagged;                                        /* lines without the key */
  uint64_t docs_in, docs_out, tokens_out;
  vklm_tokenize_stats tok;
  double seconds, count_seconds;
} vklm_mix_stats;

void vklm_mix_default(vklm_mix_opts *o);
/* Parses "name=w,name=w,..." into st's keys (names, raw weights normalised to sum 1). Every
 * weight must be a finite number >= 0, their sum > 0, names unique, 1-31 characters. Returns 0,
 * or -1 with a message. vklm_mix_run calls it first; apps may call it to check flags early. */
int vklm_mix_parse_weights(const char *s, vklm_mix_stats *st, char *err, size_t errlen);
/* Returns 0, or -1 with a message (bad options and a weighted key without documents are reported
 * before anything is written). */
int vklm_mix_run(const vklm_mix_opts *o, vklm_mix_stats *st, char *err, size_t errlen);
void vklm_mix_stats_print(const vklm_mix_stats *st, FILE *f);
int vklm_mix_stats_write(const vklm_mix_stats *st, const vklm_mix_opts *o, const char *path);
/* A bar chart of the token shares before and after, per key (PNG). Returns 0 or -1. */
int vklm_mix_plot(const vklm_mix_stats *st, const char *title, const char *path);

#endif

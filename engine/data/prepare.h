/* prepare: the text pipeline behind `vklm data prepare`. Reads .txt/.md/.html/.jsonl files
 * (gzip or not), extracts text from HTML, repairs UTF-8, normalises to NFC, tidies whitespace,
 * applies the Gopher quality, Gopher repetition, C4 and FineWeb filters, optionally scrubs e-mail
 * and IP addresses, removes exact and near duplicates, and writes cleaned JSONL (one
 * {"text": ...} per line) plus statistics of what each step removed.
 *
 * Streaming: documents flow through in batches; per-document steps run on a pthread pool; the
 * dedup steps keep 128-bit hashes and MinHash signatures only (signatures and the pre-dedup
 * output go to temp files next to the output, removed at the end). Memory is bounded by the
 * batch size and max_doc_bytes, plus a few tens of bytes per surviving document.
 * The output file appears atomically (written as <output>.tmp, then renamed). */
#ifndef VKLM_DATA_PREPARE_H
#define VKLM_DATA_PREPARE_H

#include <stdio.h>

#include "data/blocklist.h"
#include "data/dedup.h"
#include "data/langid.h"
#include "data/reader.h"
#include "data/steps.h"

typedef enum vklm_step {
  VKLM_STEP_HTML,
  VKLM_STEP_CLEAN,
  VKLM_STEP_LANG,  /* language identification, --languages, --min-lang-score */
  VKLM_STEP_BLOCK, /* word/phrase and URL block lists */
  VKLM_STEP_GOPHER_QUALITY, /* before repetition: it rejects very long documents cheaply */
  VKLM_STEP_GOPHER_REP,
  VKLM_STEP_C4,
  VKLM_STEP_FINEWEB,
  VKLM_STEP_SCRUB,
  VKLM_STEP_EXACT,
  VKLM_STEP_CLASSIFIER, /* the learned filter, in GPU batches on the main thread */
  VKLM_STEP_NEAR,
  VKLM_STEP_COUNT
} vklm_step;

const char *vklm_step_name(vklm_step s);

/* A document scorer run on the kept documents in batches, on the main thread (a GPU classifier,
 * classifier.h's vklm_classifier_scorer): score(user, texts, lens, n, out, err, errlen) writes n
 * scores and returns 0, or -1 with a message. Documents scoring above threshold are dropped, or
 * with tag kept and marked "classifier_flagged": true; every kept document then carries
 * "classifier_score". */
typedef struct vklm_doc_scorer {
  int (*score)(void *user, const char *const *texts, const size_t *lens, int n, float *out,
               char *err, size_t errlen);
  void *user;
  double threshold;
  int tag;
} vklm_doc_scorer;

typedef struct vklm_prepare_opts {
  const char *const *inputs; /* borrowed: files and directories */
  int ninputs;
  const char *output;     /* cleaned JSONL */
  const char *stats_path; /* JSON statistics; NULL: <output>.stats.json; "" for none */
  const char *text_field; /* JSONL field holding the text: "text" */
  const char *tmp_dir;    /* temp files; NULL: next to the output */
  int threads;            /* worker threads; 0: one per core */
  int progress;           /* progress line on stderr */
  size_t max_doc_bytes;   /* longer documents (or JSONL lines) are skipped: 16 MiB */
  int html;               /* extract text from HTML documents */
  int nfc, whitespace;    /* clean step parts (UTF-8 repair always runs) */
  vklm_gopher_rep_opts gopher_rep;
  vklm_gopher_quality_opts gopher_quality;
  vklm_c4_opts c4;
  vklm_fineweb_opts fineweb;
  int scrub_emails, scrub_ips;
  int exact_dedup;
  vklm_minhash_opts near;
  /* language (langid.h): detection on by default; its code and score go into each kept line */
  int langid;                  /* 1 */
  const char *lang_models;     /* model directory; NULL: VKLM_LANGID_DEFAULT_DIR */
  const char *lang_candidates; /* comma list of languages to consider; NULL: every model */
  const char *languages;       /* comma list of languages to keep; NULL: all */
  double min_lang_score;       /* drop documents whose language score is lower: 0 */
  int lang_rules;              /* per-language stop words and word lengths (1; langrules.c) */
  /* block lists (blocklist.h): "FILE" or "LANG:FILE" word lists, URL/domain lists */
  const char *const *block_words;
  int nblock_words;
  const char *const *block_urls;
  int nblock_urls;
  long block_min_matches; /* word-list matches that remove a document: 1 */
  /* tags: a source name per input (NULL entries or array: none), a keyword topic map */
  const char *const *sources;
  const char *topics;
  const vklm_doc_scorer *scorer; /* borrowed, or NULL */
  /* --shard i/N (shard_merge.h): only documents i, i+N, i+2N, ... of the input (in reader
   * order) are processed, each output line ends with its index in the whole input
   * ("doc_index"), and near-dedup must be off (exact dedup may stay on): the merge dedups
   * across the shards. nshards 0 or 1: the whole input. */
  uint32_t shard, nshards;
} vklm_prepare_opts;

/* Documents and bytes written, by one key (a language, a source or a topic). */
typedef struct vklm_key_count {
  char name[32];
  uint64_t docs, bytes; /* written */
  uint64_t docs_in;     /* read (sources only) */
} vklm_key_count;

#define VKLM_PREPARE_MAX_KEYS 256

typedef struct vklm_step_stats {
  uint64_t docs_in, docs_out, bytes_in, bytes_out;
} vklm_step_stats;

typedef struct vklm_prepare_stats {
  vklm_reader_counts input;
  uint64_t docs_read, bytes_read; /* documents handed to the steps, and their bytes */
  vklm_step_stats step[VKLM_STEP_COUNT];
  int step_on[VKLM_STEP_COUNT];
  uint64_t drops[VKLM_DROP_COUNT]; /* documents removed, by rule */
  vklm_clean_counts clean;
  uint64_t html_failed; /* HTML documents the parser could not read */
  uint64_t c4_lines_in, c4_lines_kept;
  uint64_t emails, ips; /* replacements made */
  vklm_minhash_result near;
  uint64_t docs_out, bytes_out; /* documents written and their text bytes */
  double seconds;
  /* kept documents by language (detector order, "und" last), by source and by topic */
  vklm_key_count langs[VKLM_PREPARE_MAX_KEYS], sources[VKLM_PREPARE_MAX_KEYS],
      topics[VKLM_TOPIC_MAX + 1];
  int nlangs, nsources, ntopics;
  /* documents removed by each block list */
  char block_names[VKLM_BLOCK_MAX_LISTS][256];
  uint64_t block_removed[VKLM_BLOCK_MAX_LISTS];
  int nblock;
  uint64_t scored, flagged; /* documents the classifier scored, and those above the threshold */
  double score_seconds;     /* time in the scorer */
} vklm_prepare_stats;

void vklm_prepare_default(vklm_prepare_opts *o);
/* Runs the pipeline. Returns 0, or -1 with a message in err (I/O error, no memory, bad
 * options). Bad input is never an error: it is counted in *st. */
int vklm_prepare_run(const vklm_prepare_opts *o, vklm_prepare_stats *st, char *err, size_t errlen);
/* The per-step table and the counters, human readable. */
void vklm_prepare_stats_print(const vklm_prepare_stats *st, FILE *f);
/* The same as JSON (cJSON). Returns 0 or -1. */
int vklm_prepare_stats_write(const vklm_prepare_stats *st, const char *path);

#endif

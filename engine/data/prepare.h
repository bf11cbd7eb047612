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

#include "data/dedup.h"
#include "data/reader.h"
#include "data/steps.h"

typedef enum vklm_step {
  VKLM_STEP_HTML,
  VKLM_STEP_CLEAN,
  VKLM_STEP_GOPHER_QUALITY, /* before repetition: it rejects very long documents cheaply */
  VKLM_STEP_GOPHER_REP,
  VKLM_STEP_C4,
  VKLM_STEP_FINEWEB,
  VKLM_STEP_SCRUB,
  VKLM_STEP_EXACT,
  VKLM_STEP_NEAR,
  VKLM_STEP_COUNT
} vklm_step;

const char *vklm_step_name(vklm_step s);

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
} vklm_prepare_opts;

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

/* Reports of the prepare pipeline: a table of documents and bytes in and out per step, the
 * removal reasons and the bad-input counters; the same numbers as JSON. */
#include <inttypes.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "data/prepare.h"

static const char *const step_names[VKLM_STEP_COUNT] = {
    "html",  "clean",   "language", "block_lists", "gopher_quality", "gopher_repetition",
    "c4",    "fineweb", "scrub",    "exact_dedup", "classifier", "near_dedup"};

const char *vklm_step_name(vklm_step s) {
  return (unsigned)s < VKLM_STEP_COUNT ? step_names[s] : "unknown";
}

/* Kept documents and bytes by key, largest first (keys with no document left out). */
static void keys_print(FILE *f, const char *what, const vklm_key_count *k, int n, uint64_t total) {
  int idx[VKLM_PREPARE_MAX_KEYS], m = 0;
  for (int i = 0; i < n; i++)
    if (k[i].docs) idx[m++] = i;
  if (!m) return;
  for (int i = 1; i < m; i++) /* insertion sort by bytes, descending; stable */
    for (int j = i; j > 0 && k[idx[j]].bytes > k[idx[j - 1]].bytes; j--) {
      int t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  fprintf(f, "%-18s %12s %12s %9s\n", what, "docs", "MB", "share");
  for (int i = 0; i < m; i++)
    fprintf(f, "  %-16s %12" PRIu64 " %12.3f %8.1f%%\n", k[idx[i]].name, k[idx[i]].docs,
            (double)k[idx[i]].bytes / 1e6, total ? 100.0 * (double)k[idx[i]].bytes / (double)total : 0.0);
}

static void keys_json(cJSON *root, const char *name, const vklm_key_count *k, int n) {
  if (!n) return;
  cJSON *o = cJSON_AddObjectToObject(root, name);
  for (int i = 0; o && i < n; i++) {
    if (!k[i].docs) continue;
    cJSON *e = cJSON_AddObjectToObject(o, k[i].name);
    if (!e) continue;
    cJSON_AddNumberToObject(e, "docs", (double)k[i].docs);
    cJSON_AddNumberToObject(e, "bytes", (double)k[i].bytes);
  }
}

void vklm_prepare_stats_print(const vklm_prepare_stats *st, FILE *f) {
  const vklm_reader_counts *in = &st->input;
  fprintf(f, "input: %" PRIu64 " files, %" PRIu64 " docs, %.2f MB read in %.2f s (%.1f MB/s)\n",
          in->files, st->docs_read, (double)in->bytes / 1e6, st->seconds,
          st->seconds > 0 ? (double)in->bytes / 1e6 / st->seconds : 0.0);
  fprintf(f,
          "bad input: %" PRIu64 " skipped files, %" PRIu64 " empty, %" PRIu64 " binary, %" PRIu64
          " unreadable, %" PRIu64 " malformed JSONL lines, %" PRIu64 " oversize docs, %" PRIu64
          " invalid UTF-8 sequences, %" PRIu64 " NUL bytes, %" PRIu64 " unparsable HTML\n",
          in->files_skipped, in->files_empty, in->files_binary, in->files_unreadable,
          in->lines_malformed, in->docs_oversize, st->clean.invalid_sequences, st->clean.nul_bytes,
          st->html_failed);
  fprintf(f, "%-18s %12s %12s %12s %12s %12s\n", "step", "docs in", "docs out", "MB in", "MB out",
          "removed");
  for (int s = 0; s < VKLM_STEP_COUNT; s++) {
    const vklm_step_stats *x = &st->step[s];
    if (!st->step_on[s]) {
      fprintf(f, "%-18s %12s\n", step_names[s], "(off)");
      continue;
    }
    fprintf(f, "%-18s %12" PRIu64 " %12" PRIu64 " %12.2f %12.2f %12" PRIu64 "\n", step_names[s],
            x->docs_in, x->docs_out, (double)x->bytes_in / 1e6, (double)x->bytes_out / 1e6,
            x->docs_in - x->docs_out);
  }
  fprintf(f, "output: %" PRIu64 " docs, %.2f MB\n", st->docs_out, (double)st->bytes_out / 1e6);
  fprintf(f, "removed by rule:\n");
  for (int d = 1; d < VKLM_DROP_COUNT; d++)
    if (st->drops[d]) fprintf(f, "  %-32s %12" PRIu64 "\n", vklm_drop_name(d), st->drops[d]);
  if (st->step_on[VKLM_STEP_C4])
    fprintf(f, "c4 lines: %" PRIu64 " in, %" PRIu64 " kept\n", st->c4_lines_in, st->c4_lines_kept);
  if (st->step_on[VKLM_STEP_SCRUB])
    fprintf(f, "scrubbed: %" PRIu64 " e-mail addresses, %" PRIu64 " IP addresses\n", st->emails,
            st->ips);
  if (st->step_on[VKLM_STEP_NEAR])
    fprintf(f, "near-dedup: %" PRIu64 " candidate pairs checked, %" PRIu64 " merged\n",
            st->near.candidates, st->near.merged);
  if (st->step_on[VKLM_STEP_CLASSIFIER])
    fprintf(f, "classifier: %" PRIu64 " docs scored, %" PRIu64 " above the threshold, %.2f s (%.1f docs/s)\n",
            st->scored, st->flagged, st->score_seconds,
            st->score_seconds > 0 ? (double)st->scored / st->score_seconds : 0.0);
  for (int i = 0; i < st->nblock; i++)
    fprintf(f, "block list %-40s removed %12" PRIu64 "\n", st->block_names[i], st->block_removed[i]);
  keys_print(f, "language", st->langs, st->nlangs, st->bytes_out);
  keys_print(f, "source", st->sources, st->nsources, st->bytes_out);
  keys_print(f, "topic", st->topics, st->ntopics, st->bytes_out);
}

static void num(cJSON *o, const char *k, uint64_t v) { cJSON_AddNumberToObject(o, k, (double)v); }

int vklm_prepare_stats_write(const vklm_prepare_stats *st, const char *path) {
  cJSON *root = cJSON_CreateObject(), *in = cJSON_AddObjectToObject(root, "input");
  cJSON *steps = cJSON_AddArrayToObject(root, "steps"),
        *drops = cJSON_AddObjectToObject(root, "removed");
  if (!root || !in || !steps || !drops) {
    cJSON_Delete(root);
    return -1;
  }
  const vklm_reader_counts *c = &st->input;
  num(in, "files", c->files);
  num(in, "files_skipped", c->files_skipped);
  num(in, "files_empty", c->files_empty);
  num(in, "files_binary", c->files_binary);
  num(in, "files_unreadable", c->files_unreadable);
  num(in, "lines_malformed", c->lines_malformed);
  num(in, "lines_blank", c->lines_blank);
  num(in, "docs_oversize", c->docs_oversize);
  num(in, "bytes", c->bytes);
  num(in, "docs", st->docs_read);
  num(in, "doc_bytes", st->bytes_read);
  num(in, "invalid_utf8_sequences", st->clean.invalid_sequences);
  num(in, "nul_bytes", st->clean.nul_bytes);
  num(in, "html_unparsable", st->html_failed);
  for (int s = 0; s < VKLM_STEP_COUNT; s++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "step", step_names[s]);
    cJSON_AddBoolToObject(o, "enabled", st->step_on[s]);
    num(o, "docs_in", st->step[s].docs_in);
    num(o, "docs_out", st->step[s].docs_out);
    num(o, "bytes_in", st->step[s].bytes_in);
    num(o, "bytes_out", st->step[s].bytes_out);
    cJSON_AddItemToArray(steps, o);
  }
  for (int d = 1; d < VKLM_DROP_COUNT; d++)
    num(drops, vklm_drop_name(d), st->drops[d]);
  num(root, "c4_lines_in", st->c4_lines_in);
  num(root, "c4_lines_kept", st->c4_lines_kept);
  num(root, "emails_scrubbed", st->emails);
  num(root, "ips_scrubbed", st->ips);
  num(root, "near_candidates", st->near.candidates);
  num(root, "near_merged", st->near.merged);
  num(root, "docs_out", st->docs_out);
  num(root, "bytes_out", st->bytes_out);
  cJSON_AddNumberToObject(root, "seconds", st->seconds);
  keys_json(root, "languages", st->langs, st->nlangs);
  num(root, "classifier_scored", st->scored);
  num(root, "classifier_flagged", st->flagged);
  cJSON_AddNumberToObject(root, "classifier_seconds", st->score_seconds);
  keys_json(root, "sources", st->sources, st->nsources);
  keys_json(root, "topics", st->topics, st->ntopics);
  if (st->nblock) {
    cJSON *bl = cJSON_AddObjectToObject(root, "block_lists");
    for (int i = 0; bl && i < st->nblock; i++)
      cJSON_AddNumberToObject(bl, st->block_names[i], (double)st->block_removed[i]);
  }
  char *s = cJSON_Print(root);
  cJSON_Delete(root);
  if (!s) return -1;
  FILE *f = fopen(path, "w");
  int rc = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF ? 0 : -1;
  if (f && fclose(f)) rc = -1;
  cJSON_free(s);
  return rc;
}

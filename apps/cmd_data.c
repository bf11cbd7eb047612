/* `vklm data`: the text pipeline front end. `prepare` cleans, filters and deduplicates raw
 * text into JSONL; `tokenize` turns that JSONL into token shards. Flags are table-driven: each
 * row names a flag, the kind of value it takes and the option field it sets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "data/prepare.h"
#include "data/tokenize.h"

typedef enum { F_ON, F_OFF, F_INT, F_LONG, F_U64, F_SIZE, F_DBL, F_STR } ftype;

typedef struct flag {
  const char *name;
  ftype type;
  void *p;
  const char *help;
} flag;

static int parse(const flag *f, const char *v) {
  char *end = NULL;
  switch (f->type) {
  case F_INT: *(int *)f->p = (int)strtol(v, &end, 10); break;
  case F_LONG: *(long *)f->p = strtol(v, &end, 10); break;
  case F_U64: *(uint64_t *)f->p = strtoull(v, &end, 10); break;
  case F_SIZE: *(size_t *)f->p = (size_t)strtoull(v, &end, 10); break;
  case F_DBL: *(double *)f->p = strtod(v, &end); break;
  case F_STR: *(const char **)f->p = v; return 0;
  default: return -1;
  }
  return end && *end == 0 && end != v ? 0 : -1;
}

static void print_flags(const flag *fl, FILE *out) {
  for (const flag *f = fl; f->name; f++) {
    const char *arg = f->type == F_ON || f->type == F_OFF ? ""
                      : f->type == F_STR                  ? " S"
                      : f->type == F_DBL                  ? " F"
                                                          : " N";
    char buf[64];
    snprintf(buf, sizeof buf, "%s%s", f->name, arg);
    fprintf(out, "  %-30s %s\n", buf, f->help);
  }
}

/* Parses argv against the table; positional arguments go to pos (argv order). Returns 0, 1 for
 * --help, or 2 on a usage error (after printing it). */
static int parse_args(int argc, char **argv, const flag *fl, const char **pos, int *npos,
                      const char *cmd) {
  *npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
    if (a[0] != '-' || !a[1]) {
      pos[(*npos)++] = a;
      continue;
    }
    const flag *f = fl;
    while (f->name && strcmp(f->name, a))
      f++;
    if (!f->name) {
      fprintf(stderr, "vklm data %s: unknown flag %s (see --help)\n", cmd, a);
      return 2;
    }
    if (f->type == F_ON || f->type == F_OFF) {
      *(int *)f->p = f->type == F_ON;
      continue;
    }
    if (i + 1 >= argc || parse(f, argv[i + 1])) {
      fprintf(stderr, "vklm data %s: %s needs a %s value\n", cmd, a,
              f->type == F_STR ? "string" : "numeric");
      return 2;
    }
    i++;
  }
  return 0;
}

static int cmd_prepare(int argc, char **argv) {
  vklm_prepare_opts o;
  vklm_prepare_default(&o);
  int quiet = 0;
  o.progress = isatty(2);
  vklm_gopher_rep_opts *gr = &o.gopher_rep;
  vklm_gopher_quality_opts *gq = &o.gopher_quality;
  const flag fl[] = {
      {"-o", F_STR, &o.output, "output JSONL (required)"},
      {"--output", F_STR, &o.output, "same as -o"},
      {"--stats", F_STR, &o.stats_path, "stats JSON (default <output>.stats.json; \"\": none)"},
      {"--text-field", F_STR, &o.text_field, "JSONL field holding the text (text)"},
      {"--threads", F_INT, &o.threads, "worker threads (0: one per core)"},
      {"--tmp-dir", F_STR, &o.tmp_dir, "directory for temp files (default: next to output)"},
      {"--max-doc-bytes", F_SIZE, &o.max_doc_bytes, "skip longer documents/lines (16777216)"},
      {"--quiet", F_ON, &quiet, "no progress line, no table"},
      {"--progress", F_ON, &o.progress, "progress line even when stderr is not a terminal"},
      {"--no-html", F_OFF, &o.html, "keep .html files as they are (no text extraction)"},
      {"--no-nfc", F_OFF, &o.nfc, "skip Unicode NFC normalisation"},
      {"--no-whitespace", F_OFF, &o.whitespace, "skip whitespace clean-up"},
      {"--no-gopher-repetition", F_OFF, &gr->enabled, "skip the Gopher repetition rules"},
      {"--rep-dup-line-frac", F_DBL, &gr->dup_line_frac, "duplicate line fraction (0.3)"},
      {"--rep-dup-para-frac", F_DBL, &gr->dup_para_frac, "duplicate paragraph fraction (0.3)"},
      {"--rep-dup-line-char-frac", F_DBL, &gr->dup_line_char_frac, "(0.2)"},
      {"--rep-dup-para-char-frac", F_DBL, &gr->dup_para_char_frac, "(0.2)"},
      {"--rep-top-2gram", F_DBL, &gr->top_ngram[0], "top 2-gram char fraction (0.20)"},
      {"--rep-top-3gram", F_DBL, &gr->top_ngram[1], "(0.18)"},
      {"--rep-top-4gram", F_DBL, &gr->top_ngram[2], "(0.16)"},
      {"--rep-dup-5gram", F_DBL, &gr->dup_ngram[0], "duplicated 5-gram char fraction (0.15)"},
      {"--rep-dup-6gram", F_DBL, &gr->dup_ngram[1], "(0.14)"},
      {"--rep-dup-7gram", F_DBL, &gr->dup_ngram[2], "(0.13)"},
      {"--rep-dup-8gram", F_DBL, &gr->dup_ngram[3], "(0.12)"},
      {"--rep-dup-9gram", F_DBL, &gr->dup_ngram[4], "(0.11)"},
      {"--rep-dup-10gram", F_DBL, &gr->dup_ngram[5], "(0.10)"},
      {"--no-gopher-quality", F_OFF, &gq->enabled, "skip the Gopher quality rules"},
      {"--gq-min-words", F_LONG, &gq->min_words, "(50)"},
      {"--gq-max-words", F_LONG, &gq->max_words, "(100000)"},
      {"--gq-min-mean-word-len", F_DBL, &gq->min_mean_word_len, "(3)"},
      {"--gq-max-mean-word-len", F_DBL, &gq->max_mean_word_len, "(10)"},
      {"--gq-max-symbol-ratio", F_DBL, &gq->max_symbol_ratio, "'#' or ellipses per word (0.1)"},
      {"--gq-max-bullet-lines", F_DBL, &gq->max_bullet_lines, "(0.9)"},
      {"--gq-max-ellipsis-lines", F_DBL, &gq->max_ellipsis_lines, "(0.3)"},
      {"--gq-min-alpha-words", F_DBL, &gq->min_alpha_words, "(0.8)"},
      {"--gq-min-stop-words", F_LONG, &gq->min_stop_words, "(2)"},
      {"--no-c4", F_OFF, &o.c4.enabled, "skip the C4 rules"},
      {"--c4-min-words-per-line", F_LONG, &o.c4.min_words_per_line, "(3)"},
      {"--c4-min-sentences", F_LONG, &o.c4.min_sentences, "(5)"},
      {"--c4-max-word-length", F_LONG, &o.c4.max_word_length, "(1000)"},
      {"--c4-keep-citations", F_OFF, &o.c4.remove_citations, "keep [1], [edit], ..."},
      {"--c4-keep-unpunctuated", F_OFF, &o.c4.terminal_punct, "keep lines without end mark"},
      {"--c4-keep-lorem-ipsum", F_OFF, &o.c4.lorem_ipsum, "keep documents with lorem ipsum"},
      {"--c4-keep-javascript", F_OFF, &o.c4.javascript, "keep lines mentioning javascript"},
      {"--c4-keep-curly", F_OFF, &o.c4.curly_bracket, "keep documents with '{'"},
      {"--c4-keep-policy", F_OFF, &o.c4.policy, "keep cookie/privacy/terms lines"},
      {"--no-fineweb", F_OFF, &o.fineweb.enabled, "skip the FineWeb rules"},
      {"--fw-line-punct", F_DBL, &o.fineweb.line_punct_thr, "(0.12)"},
      {"--fw-short-line-ratio", F_DBL, &o.fineweb.short_line_thr, "(0.67)"},
      {"--fw-short-line-length", F_LONG, &o.fineweb.short_line_length, "(30)"},
      {"--fw-char-dup", F_DBL, &o.fineweb.char_dup_ratio, "(0.01)"},
      {"--fw-newline-ratio", F_DBL, &o.fineweb.new_line_ratio, "(0.3)"},
      {"--scrub-emails", F_ON, &o.scrub_emails, "replace e-mail addresses"},
      {"--scrub-ips", F_ON, &o.scrub_ips, "replace IPv4/IPv6 addresses"},
      {"--no-exact-dedup", F_OFF, &o.exact_dedup, "keep exact duplicates"},
      {"--no-near-dedup", F_OFF, &o.near.enabled, "keep near duplicates"},
      {"--minhash-bands", F_INT, &o.near.bands, "(14)"},
      {"--minhash-rows", F_INT, &o.near.rows, "(8)"},
      {"--minhash-ngram", F_INT, &o.near.ngram, "words per shingle (5)"},
      {"--minhash-threshold", F_DBL, &o.near.threshold, "estimated Jaccard to merge (0.7)"},
      {"--minhash-seed", F_U64, &o.near.seed, "(1)"},
      {NULL, F_ON, NULL, NULL}};
  const char **pos = calloc((size_t)argc + 1, sizeof *pos);
  int npos = 0;
  if (!pos) return 1;
  int rc = parse_args(argc, argv, fl, pos, &npos, "prepare");
  if (rc == 1 || (!rc && (!o.output || !npos))) {
    FILE *f = rc == 1 ? stdout : stderr;
    fprintf(f, "usage: vklm data prepare -o cleaned.jsonl [flags] INPUT...\n"
               "INPUT: files or directories of .txt .md .html .jsonl (optionally .gz)\n");
    print_flags(fl, f);
    free(pos);
    return rc == 1 ? 0 : 2;
  }
  if (rc) {
    free(pos);
    return rc;
  }
  if (quiet) o.progress = 0;
  o.inputs = pos;
  o.ninputs = npos;
  vklm_prepare_stats st;
  char err[512] = "";
  rc = vklm_prepare_run(&o, &st, err, sizeof err);
  if (!quiet) vklm_prepare_stats_print(&st, stdout);
  if (rc) fprintf(stderr, "vklm data: %s\n", err);
  free(pos);
  return rc ? 1 : 0;
}

static int cmd_tokenize(int argc, char **argv) {
  vklm_tokenize_opts o;
  vklm_tokenize_default(&o);
  const char *input = NULL;
  int quiet = 0;
  o.progress = isatty(2);
  const flag fl[] = {
      {"-t", F_STR, &o.tokenizer, "tokenizer.json (required)"},
      {"--tokenizer", F_STR, &o.tokenizer, "same as -t"},
      {"-i", F_STR, &input, "cleaned JSONL file or directory (or give them as arguments)"},
      {"--input", F_STR, &input, "same as -i"},
      {"-o", F_STR, &o.outdir, "output directory (required)"},
      {"--output", F_STR, &o.outdir, "same as -o"},
      {"--shard-tokens", F_U64, &o.shard_tokens, "tokens per shard (100000000)"},
      {"--val-fraction", F_DBL, &o.val_fraction, "share of documents for validation (0.01)"},
      {"--eot", F_STR, &o.eot, "end-of-text token (<|endoftext|>)"},
      {"--text-field", F_STR, &o.text_field, "JSONL field holding the text (text)"},
      {"--seed", F_U64, &o.seed, "seed of the train/validation split (1)"},
      {"--threads", F_INT, &o.threads, "encoder threads (0: one per core)"},
      {"--quiet", F_ON, &quiet, "no progress, no summary"},
      {NULL, F_ON, NULL, NULL}};
  const char **pos = calloc((size_t)argc + 2, sizeof *pos);
  int npos = 0;
  if (!pos) return 1;
  int rc = parse_args(argc, argv, fl, pos, &npos, "tokenize");
  if (!rc && input) pos[npos++] = input;
  if (rc == 1 || (!rc && (!o.tokenizer || !o.outdir || !npos))) {
    FILE *f = rc == 1 ? stdout : stderr;
    fprintf(f, "usage: vklm data tokenize -t tokenizer.json -i cleaned.jsonl -o outdir "
               "[--shard-tokens N] [--val-fraction F]\n");
    print_flags(fl, f);
    free(pos);
    return rc == 1 ? 0 : 2;
  }
  if (rc) {
    free(pos);
    return rc;
  }
  if (quiet) o.progress = 0;
  o.inputs = pos;
  o.ninputs = npos;
  vklm_tokenize_stats st;
  char err[512] = "";
  rc = vklm_tokenize_run(&o, &st, err, sizeof err);
  if (rc)
    fprintf(stderr, "vklm data: %s\n", err);
  else if (!quiet)
    printf("tokenize: %llu docs (%llu train, %llu val), %llu malformed lines skipped\n"
           "  train: %llu tokens in %llu shards; val: %llu tokens in %llu shards\n"
           "  vocab %u, %u bytes per token, %.2f MB of text in %.2f s\n",
           (unsigned long long)st.docs, (unsigned long long)st.docs_train,
           (unsigned long long)st.docs_val, (unsigned long long)st.lines_malformed,
           (unsigned long long)st.tokens_train, (unsigned long long)st.shards_train,
           (unsigned long long)st.tokens_val, (unsigned long long)st.shards_val, st.vocab_size,
           st.width, (double)st.bytes / 1e6, st.seconds);
  free(pos);
  return rc ? 1 : 0;
}

int cmd_data(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "prepare")) return cmd_prepare(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
  FILE *f = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr;
  fprintf(f, "usage: vklm data prepare -o cleaned.jsonl [flags] INPUT...\n"
             "       vklm data tokenize -t tokenizer.json -i cleaned.jsonl -o outdir [flags]\n"
             "`vklm data <sub-command> --help` lists the flags.\n");
  return f == stdout ? 0 : 2;
}

/* `vklm data`: the text pipeline front end. `prepare` cleans, filters, identifies languages and
 * deduplicates raw text into JSONL; `tokenize` turns that JSONL into token shards, `mix` samples
 * prepared documents to target weights into shards; `merge` and `classifier` live in
 * cmd_data_shard.c and cmd_data_classifier.c. Flags come from tables (apps/flags.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "data/classifier.h"
#include "data/mix.h"
#include "data/prepare.h"
#include "data/tokenize.h"
#include "data_cmds.h"
#include "flags.h"

static int cmd_prepare(int argc, char **argv) {
  vklm_prepare_opts o;
  vklm_prepare_default(&o);
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  const char *classifier = NULL, *action = "drop";
  int cbatch = 32;
  vklm_doc_scorer scorer = {vklm_classifier_scorer, NULL, 0.5, 0};
  int quiet = 0;
  const char *shard = NULL;
  o.progress = isatty(2);
  vklm_gopher_rep_opts *gr = &o.gopher_rep;
  vklm_gopher_quality_opts *gq = &o.gopher_quality;
  const char **lists = calloc(3 * ((size_t)argc + 1), sizeof *lists);
  if (!lists) return 1;
  app_strlist srcs = {lists, 0, argc}, bw = {lists + argc + 1, 0, argc},
              bu = {lists + 2 * (argc + 1), 0, argc};
  const app_flag fl[] = {
      AF_STRING("--output", "-o", &o.output, "S", "output JSONL (required)"),
      AF_STRING("--stats", NULL, &o.stats_path, "S", "stats JSON (default <output>.stats.json; \"\": none)"),
      AF_STRING("--text-field", NULL, &o.text_field, "S", "JSONL field holding the text (text)"),
      AF_FLAG("--threads", NULL, AF_I32, &o.threads, 0, 1024, "N", "worker threads (0: one per core)"),
      AF_STRING("--tmp-dir", NULL, &o.tmp_dir, "S", "directory for temp files (default: next to output)"),
      AF_FLAG("--max-doc-bytes", NULL, AF_SIZE, &o.max_doc_bytes, 1, 1099511627776.0, "N", "skip longer documents/lines (16777216)"),
      AF_FLAG("--quiet", NULL, AF_ON, &quiet, 0, 0, NULL, "no progress line, no table"),
      AF_FLAG("--progress", NULL, AF_ON, &o.progress, 0, 0, NULL, "progress line even when stderr is not a terminal"),
      AF_FLAG("--no-html", NULL, AF_OFF, &o.html, 0, 0, NULL, "keep .html files as they are (no text extraction)"),
      AF_FLAG("--no-nfc", NULL, AF_OFF, &o.nfc, 0, 0, NULL, "skip Unicode NFC normalisation"),
      AF_FLAG("--no-whitespace", NULL, AF_OFF, &o.whitespace, 0, 0, NULL, "skip whitespace clean-up"),
      AF_FLAG("--no-gopher-repetition", NULL, AF_OFF, &gr->enabled, 0, 0, NULL, "skip the Gopher repetition rules"),
      AF_FLAG("--rep-dup-line-frac", NULL, AF_F64, &gr->dup_line_frac, 0, 1, "X", "duplicate line fraction (0.3)"),
      AF_FLAG("--rep-dup-para-frac", NULL, AF_F64, &gr->dup_para_frac, 0, 1, "X", "duplicate paragraph fraction (0.3)"),
      AF_FLAG("--rep-dup-line-char-frac", NULL, AF_F64, &gr->dup_line_char_frac, 0, 1, "X", "(0.2)"),
      AF_FLAG("--rep-dup-para-char-frac", NULL, AF_F64, &gr->dup_para_char_frac, 0, 1, "X", "(0.2)"),
      AF_FLAG("--rep-top-2gram", NULL, AF_F64, &gr->top_ngram[0], 0, 1, "X", "top 2-gram char fraction (0.20)"),
      AF_FLAG("--rep-top-3gram", NULL, AF_F64, &gr->top_ngram[1], 0, 1, "X", "(0.18)"),
      AF_FLAG("--rep-top-4gram", NULL, AF_F64, &gr->top_ngram[2], 0, 1, "X", "(0.16)"),
      AF_FLAG("--rep-dup-5gram", NULL, AF_F64, &gr->dup_ngram[0], 0, 1, "X", "duplicated 5-gram char fraction (0.15)"),
      AF_FLAG("--rep-dup-6gram", NULL, AF_F64, &gr->dup_ngram[1], 0, 1, "X", "(0.14)"),
      AF_FLAG("--rep-dup-7gram", NULL, AF_F64, &gr->dup_ngram[2], 0, 1, "X", "(0.13)"),
      AF_FLAG("--rep-dup-8gram", NULL, AF_F64, &gr->dup_ngram[3], 0, 1, "X", "(0.12)"),
      AF_FLAG("--rep-dup-9gram", NULL, AF_F64, &gr->dup_ngram[4], 0, 1, "X", "(0.11)"),
      AF_FLAG("--rep-dup-10gram", NULL, AF_F64, &gr->dup_ngram[5], 0, 1, "X", "(0.10)"),
      AF_FLAG("--no-gopher-quality", NULL, AF_OFF, &gq->enabled, 0, 0, NULL, "skip the Gopher quality rules"),
      AF_FLAG("--gq-min-words", NULL, AF_LONG, &gq->min_words, 0, 1e9, "N", "(50)"),
      AF_FLAG("--gq-max-words", NULL, AF_LONG, &gq->max_words, 0, 1e9, "N", "(100000)"),
      AF_FLAG("--gq-min-mean-word-len", NULL, AF_F64, &gq->min_mean_word_len, 0, 1e6, "X", "(3)"),
      AF_FLAG("--gq-max-mean-word-len", NULL, AF_F64, &gq->max_mean_word_len, 0, 1e6, "X", "(10)"),
      AF_FLAG("--gq-max-symbol-ratio", NULL, AF_F64, &gq->max_symbol_ratio, 0, 1e6, "X", "'#' or ellipses per word (0.1)"),
      AF_FLAG("--gq-max-bullet-lines", NULL, AF_F64, &gq->max_bullet_lines, 0, 1, "X", "(0.9)"),
      AF_FLAG("--gq-max-ellipsis-lines", NULL, AF_F64, &gq->max_ellipsis_lines, 0, 1, "X", "(0.3)"),
      AF_FLAG("--gq-min-alpha-words", NULL, AF_F64, &gq->min_alpha_words, 0, 1, "X", "(0.8)"),
      AF_FLAG("--gq-min-stop-words", NULL, AF_LONG, &gq->min_stop_words, 0, 1e9, "N", "(2)"),
      AF_FLAG("--no-c4", NULL, AF_OFF, &o.c4.enabled, 0, 0, NULL, "skip the C4 rules"),
      AF_FLAG("--c4-min-words-per-line", NULL, AF_LONG, &o.c4.min_words_per_line, 0, 1e9, "N", "(3)"),
      AF_FLAG("--c4-min-sentences", NULL, AF_LONG, &o.c4.min_sentences, 0, 1e9, "N", "(5)"),
      AF_FLAG("--c4-max-word-length", NULL, AF_LONG, &o.c4.max_word_length, 0, 1e9, "N", "(1000)"),
      AF_FLAG("--c4-keep-citations", NULL, AF_OFF, &o.c4.remove_citations, 0, 0, NULL, "keep [1], [edit], ..."),
      AF_FLAG("--c4-keep-unpunctuated", NULL, AF_OFF, &o.c4.terminal_punct, 0, 0, NULL, "keep lines without end mark"),
      AF_FLAG("--c4-keep-lorem-ipsum", NULL, AF_OFF, &o.c4.lorem_ipsum, 0, 0, NULL, "keep documents with lorem ipsum"),
      AF_FLAG("--c4-keep-javascript", NULL, AF_OFF, &o.c4.javascript, 0, 0, NULL, "keep lines mentioning javascript"),
      AF_FLAG("--c4-keep-curly", NULL, AF_OFF, &o.c4.curly_bracket, 0, 0, NULL, "keep documents with '{'"),
      AF_FLAG("--c4-keep-policy", NULL, AF_OFF, &o.c4.policy, 0, 0, NULL, "keep cookie/privacy/terms lines"),
      AF_FLAG("--no-fineweb", NULL, AF_OFF, &o.fineweb.enabled, 0, 0, NULL, "skip the FineWeb rules"),
      AF_FLAG("--fw-line-punct", NULL, AF_F64, &o.fineweb.line_punct_thr, 0, 1, "X", "(0.12)"),
      AF_FLAG("--fw-short-line-ratio", NULL, AF_F64, &o.fineweb.short_line_thr, 0, 1, "X", "(0.67)"),
      AF_FLAG("--fw-short-line-length", NULL, AF_LONG, &o.fineweb.short_line_length, 0, 1e9, "N", "(30)"),
      AF_FLAG("--fw-char-dup", NULL, AF_F64, &o.fineweb.char_dup_ratio, 0, 1, "X", "(0.01)"),
      AF_FLAG("--fw-newline-ratio", NULL, AF_F64, &o.fineweb.new_line_ratio, 0, 1e6, "X", "(0.3)"),
      AF_FLAG("--scrub-emails", NULL, AF_ON, &o.scrub_emails, 0, 0, NULL, "replace e-mail addresses"),
      AF_FLAG("--scrub-ips", NULL, AF_ON, &o.scrub_ips, 0, 0, NULL, "replace IPv4/IPv6 addresses"),
      AF_FLAG("--no-exact-dedup", NULL, AF_OFF, &o.exact_dedup, 0, 0, NULL, "keep exact duplicates"),
      AF_FLAG("--no-near-dedup", NULL, AF_OFF, &o.near.enabled, 0, 0, NULL, "keep near duplicates"),
      AF_FLAG("--minhash-bands", NULL, AF_I32, &o.near.bands, 1, 1024, "N", "(20)"),
      AF_FLAG("--minhash-rows", NULL, AF_I32, &o.near.rows, 1, 256, "N", "(6)"),
      AF_FLAG("--minhash-ngram", NULL, AF_I32, &o.near.ngram, 1, 1024, "N", "words per shingle (5)"),
      AF_FLAG("--minhash-threshold", NULL, AF_F64, &o.near.threshold, 0, 1, "X", "estimated Jaccard to merge (0.7)"),
      AF_FLAG("--minhash-seed", NULL, AF_U64, &o.near.seed, 0, 18446744073709551615.0, "N", "(1)"),
      AF_FLAG("--no-langid", NULL, AF_OFF, &o.langid, 0, 0, NULL, "no language identification (no lang/lang_score fields)"),
      AF_STRING("--lang-models", NULL, &o.lang_models, "S", "directory of .lm models (/usr/share/libexttextcat)"),
      AF_STRING("--lang-candidates", NULL, &o.lang_candidates, "S", "languages to consider, e.g. en,de,fr (all)"),
      AF_STRING("--languages", NULL, &o.languages, "S", "keep only these languages, e.g. en,de (all)"),
      AF_FLAG("--min-lang-score", NULL, AF_F64, &o.min_lang_score, 0, 1, "X", "drop documents whose language score is lower (0)"),
      AF_FLAG("--no-lang-rules", NULL, AF_OFF, &o.lang_rules, 0, 0, NULL, "English stop words/word lengths for every language"),
      AF_FLAG("--block-words", NULL, AF_LIST, &bw, 0, 0, "S", "word/phrase block list: FILE or LANG:FILE"),
      AF_FLAG("--block-urls", NULL, AF_LIST, &bu, 0, 0, "S", "URL/domain block list FILE (JSONL \"url\" field)"),
      AF_FLAG("--block-min-matches", NULL, AF_LONG, &o.block_min_matches, 1, 1e9, "N", "list matches that remove a document (1)"),
      AF_FLAG("--source", NULL, AF_LIST, &srcs, 0, 0, "S", "NAME=PATH: input tagged \"source\": NAME"),
      AF_STRING("--topics", NULL, &o.topics, "S", "keyword topic map FILE: lines \"TOPIC keyword or phrase\""),
      AF_STRING("--classifier", NULL, &classifier, "S", "classifier DIR (vklm data classifier train): GPU scoring"),
      AF_FLAG("--threshold", NULL, AF_F64, &scorer.threshold, 0, 1, "X", "classifier score above which a document goes (0.5)"),
      AF_STRING("--classifier-action", NULL, &action, "S", "drop, or tag (keep, mark classifier_flagged) (drop)"),
      AF_FLAG("--classifier-batch", NULL, AF_I32, &cbatch, 1, 4096, "N", "documents per GPU batch (32)"),
      AF_STRING("--shard", NULL, &shard, "S", "i/N: documents i, i+N, ... only, for `vklm data merge` (mpirun: one per rank)"),
      AF_LAST};
  vklm_context *ctx = NULL;
  vklm_classifier *cls = NULL;
  const char **pos = calloc(2 * (size_t)argc + 2, sizeof *pos);
  const char **srcname = pos ? pos + argc + 1 : NULL;
  int npos = 0;
  if (!pos) {
    free(lists);
    return 1;
  }
  const app_command cmd = {"data prepare", "data prepare -o cleaned.jsonl [flags] INPUT... "
                           "[--source NAME=PATH]...",
                           "INPUT: files or directories of .txt .md .html .jsonl (optionally .gz).\n"
                           "The runtime flags serve --classifier's GPU scoring.",
                           fl, 0, argc, 1};
  int rc = app_flags_parse(&cmd, argc, argv, &cfg, pos, &npos);
  for (int i = 0; !rc && i < srcs.n; i++) { /* named inputs after the positional ones */
    const char *eq = strchr(srcs.v[i], '=');
    if (!eq || eq == srcs.v[i] || !eq[1]) {
      fprintf(stderr, "vklm data prepare: --source needs NAME=PATH, not '%s'\n", srcs.v[i]);
      rc = 2;
      break;
    }
    char *name = strndup(srcs.v[i], (size_t)(eq - srcs.v[i]));
    if (!name) rc = 2;
    srcname[npos] = name;
    pos[npos++] = eq + 1;
  }
  o.block_words = bw.v;
  o.nblock_words = bw.n;
  o.block_urls = bu.v;
  o.nblock_urls = bu.n;
  if (srcs.n) o.sources = srcname;
  if (rc == 1) { /* --help, --version */
    rc = 0;
    goto out;
  }
  if (!rc && (!o.output || !npos))
    rc = app_flags_missing(&cmd, "give -o OUTPUT and at least one INPUT (or --source)");
  if (rc) goto out;
  if (strcmp(action, "drop") && strcmp(action, "tag")) {
    fprintf(stderr, "vklm data prepare: --classifier-action is drop or tag, not '%s'\n", action);
    rc = 2;
    goto out;
  }
  scorer.tag = !strcmp(action, "tag");
  if (classifier) {
    if (data_classifier_open(&cfg, classifier, (uint32_t)cbatch, &ctx, &cls)) {
      rc = 1;
      goto out;
    }
    scorer.user = cls;
    o.scorer = &scorer;
  }
  if (quiet) o.progress = 0;
  o.inputs = pos;
  o.ninputs = npos;
  vklm_prepare_stats st;
  memset(&st, 0, sizeof st);
  rc = data_prepare_run(&o, shard, &st, &quiet); /* prints its errors */
  if (!quiet && (!rc || st.docs_read)) vklm_prepare_stats_print(&st, stdout);
out:
  vklm_classifier_destroy(cls);
  vklm_context_destroy(ctx);
  for (int i = 0; i < npos; i++)
    free((char *)srcname[i]);
  free(pos);
  free(lists);
  return rc;
}

static int cmd_tokenize(int argc, char **argv) {
  vklm_tokenize_opts o;
  vklm_tokenize_default(&o);
  const char *input = NULL, *shard = NULL;
  int quiet = 0;
  o.progress = isatty(2);
  const app_flag fl[] = {
      AF_STRING("--tokenizer", "-t", &o.tokenizer, "S", "tokenizer.json (required)"),
      AF_STRING("--shard", NULL, &shard, "S", "i/N: documents i, i+N, ... only (mpirun: one shard per rank)"),
      AF_STRING("--input", "-i", &input, "S", "cleaned JSONL file or directory (or give them as arguments)"),
      AF_STRING("--output", "-o", &o.outdir, "S", "output directory (required)"),
      AF_FLAG("--shard-tokens", NULL, AF_U64, &o.shard_tokens, 1, 1e15, "N", "tokens per shard (100000000)"),
      AF_FLAG("--val-fraction", NULL, AF_F64, &o.val_fraction, 0, 1, "X", "share of documents for validation (0.01)"),
      AF_STRING("--eot", NULL, &o.eot, "S", "end-of-text token (<|endoftext|>)"),
      AF_STRING("--text-field", NULL, &o.text_field, "S", "JSONL field holding the text (text)"),
      AF_FLAG("--seed", NULL, AF_U64, &o.seed, 0, 18446744073709551615.0, "N", "seed of the train/validation split (1)"),
      AF_FLAG("--threads", NULL, AF_I32, &o.threads, 0, 1024, "N", "encoder threads (0: one per core)"),
      AF_FLAG("--quiet", NULL, AF_ON, &quiet, 0, 0, NULL, "no progress, no summary"),
      AF_LAST};
  const char **pos = calloc((size_t)argc + 2, sizeof *pos);
  int npos = 0;
  if (!pos) return 1;
  const app_command cmd = {"data tokenize", "data tokenize -t tokenizer.json -i cleaned.jsonl -o "
                           "outdir [flags]", NULL, fl, 0, argc, 0};
  int rc = app_flags_parse(&cmd, argc, argv, NULL, pos, &npos);
  if (!rc && input) pos[npos++] = input;
  if (!rc && (!o.tokenizer || !o.outdir || !npos))
    rc = app_flags_missing(&cmd, "give -t TOKENIZER, -o OUTDIR and the input (-i or arguments)");
  if (rc) {
    free(pos);
    return rc == 1 ? 0 : rc;
  }
  if (quiet) o.progress = 0;
  o.inputs = pos;
  o.ninputs = npos;
  vklm_tokenize_stats st;
  memset(&st, 0, sizeof st);
  rc = data_tokenize_run(&o, shard, &st, &quiet); /* prints its errors */
  if (!rc && !quiet)
    printf("tokenize: %llu docs (%llu train, %llu val), %llu malformed lines skipped\n"
           "  train: %llu tokens in %llu shards; val: %llu tokens in %llu shards\n"
           "  vocab %u, %u bytes per token, %.2f MB of text in %.2f s\n",
           (unsigned long long)st.docs, (unsigned long long)st.docs_train,
           (unsigned long long)st.docs_val, (unsigned long long)st.lines_malformed,
           (unsigned long long)st.tokens_train, (unsigned long long)st.shards_train,
           (unsigned long long)st.tokens_val, (unsigned long long)st.shards_val, st.vocab_size,
           st.width, (double)st.bytes / 1e6, st.seconds);
  free(pos);
  return rc;
}

static int cmd_mix(int argc, char **argv) {
  vklm_mix_opts o;
  vklm_mix_default(&o);
  int quiet = 0;
  o.progress = isatty(2);
  const app_flag fl[] = {
      AF_STRING("--tokenizer", "-t", &o.tokenizer, "S", "tokenizer.json (required)"),
      AF_STRING("--output", "-o", &o.outdir, "S", "output directory: mix.jsonl, shards, mixture.json/.png (required)"),
      AF_STRING("--by", NULL, &o.by, "S", "the key the weights name: source, lang or topic (source)"),
      AF_STRING("--weights", NULL, &o.weights, "S", "target token shares, e.g. web=0.6,code=0.2,books=0.2 (required)"),
      AF_FLAG("--seed", NULL, AF_U64, &o.seed, 0, 18446744073709551615.0, "N", "sampling and shuffling seed (1)"),
      AF_FLAG("--max-repeat", NULL, AF_F64, &o.max_repeat, 1, 65535, "X", "most copies of one document (4)"),
      AF_FLAG("--total-tokens", NULL, AF_U64, &o.total_tokens, 0, 18446744073709551615.0, "N", "output size in tokens (0: the input's size)"),
      AF_FLAG("--shard-tokens", NULL, AF_U64, &o.shard_tokens, 1, 1e15, "N", "tokens per shard (100000000)"),
      AF_FLAG("--val-fraction", NULL, AF_F64, &o.val_fraction, 0, 1, "X", "share of documents for validation (0.01)"),
      AF_STRING("--eot", NULL, &o.eot, "S", "end-of-text token (<|endoftext|>)"),
      AF_FLAG("--threads", NULL, AF_I32, &o.threads, 0, 1024, "N", "tokenizer threads (0: one per core)"),
      AF_FLAG("--no-plot", NULL, AF_OFF, &o.plot, 0, 0, NULL, "no mixture.png"),
      AF_FLAG("--quiet", NULL, AF_ON, &quiet, 0, 0, NULL, "no progress, no table"),
      AF_LAST};
  const char **pos = calloc((size_t)argc + 1, sizeof *pos);
  int npos = 0;
  if (!pos) return 1;
  const app_command cmd = {"data mix", "data mix -t tokenizer.json -o outdir --weights k=w,... "
                           "[--by source|lang|topic] PREPARED.jsonl...", NULL, fl, 0, argc, 0};
  int rc = app_flags_parse(&cmd, argc, argv, NULL, pos, &npos);
  if (!rc && (!o.tokenizer || !o.outdir || !o.weights || !npos))
    rc = app_flags_missing(&cmd, "give -t TOKENIZER, -o OUTDIR, --weights and the inputs");
  if (rc) {
    free(pos);
    return rc == 1 ? 0 : rc;
  }
  vklm_mix_stats *st = calloc(1, sizeof *st);
  char err[512] = "";
  if (!rc && (!st || vklm_mix_parse_weights(o.weights, st, err, sizeof err))) { /* before work */
    fprintf(stderr, "vklm data mix: %s\n", st ? err : "out of memory");
    rc = 2;
  }
  if (!rc) {
    if (quiet) o.progress = 0;
    o.inputs = pos;
    o.ninputs = npos;
    rc = vklm_mix_run(&o, st, err, sizeof err);
    if (rc)
      fprintf(stderr, "vklm data: %s\n", err);
    else if (!quiet) {
      vklm_mix_stats_print(st, stdout);
      printf("wrote %s/mix.jsonl, %s/train_*.bin, val_*.bin, mixture.json%s\n", o.outdir, o.outdir,
             o.plot ? ", mixture.png" : "");
    }
    rc = rc ? 1 : 0;
  }
  free(st);
  free(pos);
  return rc;
}

int cmd_data(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "prepare")) return cmd_prepare(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "mix")) return cmd_mix(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "merge")) return cmd_data_merge(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "classifier")) return data_classifier_cmd(argc - 1, argv + 1);
  FILE *f = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr;
  fprintf(f, "usage: vklm data prepare -o cleaned.jsonl [flags] INPUT...\n"
             "       vklm data tokenize -t tokenizer.json -i cleaned.jsonl -o outdir [flags]\n"
             "       vklm data mix -t tokenizer.json -o outdir --weights k=w,... PREPARED.jsonl...\n"
             "       vklm data merge -o cleaned.jsonl SHARD_OUTPUT...  (of prepare --shard i/N)\n"
             "       vklm data classifier train|score ...\n"
             "`vklm data <sub-command> --help` lists the flags.\n");
  return f == stdout ? 0 : 2;
}

/* `vklm tokenizer`: train, encode, decode, convert, info, bench — a thin front end over
 * engine/text/tokenizer.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "flags.h"
#include "gen_common.h"
#include "io/file.h"
#include "text/tokenizer.h"

/* The actions, shown by `vklm tokenizer --help` and each action's --help. */
static const char actions[] =
          "  train   -o OUT.json --vocab-size N [--pattern gpt2|cl100k|llama3|o200k] [--regex RE]\n"
          "          [--special TOKEN]... [--min-frequency N] [-v] FILE...\n"
          "          (text files: one sequence per line; *.jsonl: the \"text\" field of each line)\n"
          "  encode  TOKENIZER (-p TEXT | FILE | -) [--no-specials]     prints ids\n"
          "  encode  TOKENIZER --jsonl FILE [--no-specials]  one line of ids per {\"text\": ...} line\n"
          "  encode  TOKENIZER --lines FILE [--no-specials]  one line of ids per line (\\n included)\n"
          "  decode  TOKENIZER (IDS... | -i FILE | -) [--skip-specials] writes the bytes\n"
          "  convert TOKENIZER -o OUT.json                              writes tokenizer.json\n"
          "  info    TOKENIZER\n"
          "  bench   see `vklm tokenizer bench --help`\n\n"
          "TOKENIZER is one of: -t tokenizer.json | -t DIR (tokenizer.json or vocab.json+merges.txt)\n"
          "  | --vocab vocab.json --merges merges.txt | --tiktoken FILE --pattern P|--regex RE\n"
          "    [--special TOKEN]... (ids after the largest rank) | [--special-id TOKEN=ID]...\n";

static void usage(FILE *f) {
  fprintf(f, "usage: vklm tokenizer <action> [flags]\n\n%s", actions);
}

typedef struct opts {
  const char *tok, *vocab, *merges, *tiktoken, *pattern, *regex, *out, *text, *input, *jsonl, *lines;
  const char **specials;
  int32_t *special_ids; /* -1: after the largest rank (tiktoken), or not given */
  size_t n_specials;
  size_t vocab_size;
  unsigned long long min_freq;
  int verbose, no_specials, skip_specials;
  const char **rest;
  size_t n_rest;
} opts;

static int special_flag(void *p, const char *v, char *err, size_t errlen) {
  opts *o = p;
  if (!*v) return snprintf(err, errlen, "wants a token's text"), 1;
  o->special_ids[o->n_specials] = -1;
  o->specials[o->n_specials++] = v;
  return 0;
}

/* --special-id TOKEN=ID: a tiktoken special token with its real id (cl100k's <|endoftext|> is
 * 100257, not the largest rank + 1). The id follows the last '='. */
static int special_id_flag(void *p, const char *v, char *err, size_t errlen) {
  opts *o = p;
  const char *eq = strrchr(v, '=');
  char *end = NULL;
  long id = eq && eq[1] >= '0' && eq[1] <= '9' ? strtol(eq + 1, &end, 10) : -1;
  if (!eq || eq == v || !end || *end || id < 0 || id >= (1l << 24)) {
    snprintf(err, errlen, "wants TOKEN=ID with ID in [0, 16777215], not '%s'", v);
    return 1;
  }
  char *tok = strndup(v, (size_t)(eq - v));
  if (!tok) return snprintf(err, errlen, "out of memory"), 1;
  o->special_ids[o->n_specials] = (int32_t)id;
  o->specials[o->n_specials++] = tok; /* a copy: freed with the options */
  return 0;
}

/* Parses the action's flags (argv[1] is the action); 0, 1 after --help/--version, or 2 on bad
 * usage (message printed). */
static int parse(int argc, char **argv, opts *o) {
  o->specials = calloc((size_t)argc + 1, sizeof *o->specials);
  o->special_ids = calloc((size_t)argc + 1, sizeof *o->special_ids);
  o->rest = calloc((size_t)argc + 1, sizeof *o->rest);
  if (!o->specials || !o->special_ids || !o->rest) return 2;
  uint32_t vocab = 0;
  const app_flag flags[] = {
      AF_STRING("--tokenizer", "-t", &o->tok, "F", "tokenizer.json, or a directory holding it\n"
                "(or vocab.json + merges.txt)"),
      AF_STRING("--vocab", NULL, &o->vocab, "F", "GPT-2 vocab.json (with --merges)"),
      AF_STRING("--merges", NULL, &o->merges, "F", "GPT-2 merges.txt (with --vocab)"),
      AF_STRING("--tiktoken", NULL, &o->tiktoken, "F", "a tiktoken rank file (with --pattern or --regex)"),
      AF_STRING("--pattern", NULL, &o->pattern, "P", "pre-tokenizer: gpt2 | cl100k | llama3 | o200k"),
      AF_STRING("--regex", NULL, &o->regex, "RE", "pre-tokenizer: a PCRE2 pattern"),
      {"--special", NULL, AF_FN, o, 0, 0, "TOKEN", "a special token (repeatable; tiktoken: ids after\n"
       "the largest rank)", special_flag},
      {"--special-id", NULL, AF_FN, o, 0, 0, "TOKEN=ID",
       "a tiktoken special token with its id (repeatable; e.g.\n"
       "'<|endoftext|>=100257' for cl100k)", special_id_flag},
      AF_STRING("--out", "-o", &o->out, "OUT.json", "the output (train, convert)"),
      AF_STRING("--prompt", "-p", &o->text, "TEXT", "the text to encode"),
      AF_STRING("--input", "-i", &o->input, "FILE", "decode: ids from a file"),
      AF_STRING("--jsonl", NULL, &o->jsonl, "FILE", "encode: one line of ids per {\"text\": ...} line"),
      AF_STRING("--lines", NULL, &o->lines, "FILE", "encode: one line of ids per line (\\n included)"),
      AF_FLAG("--vocab-size", NULL, AF_U32, &vocab, 256, 1u << 24, "N", "train: the vocabulary size"),
      AF_FLAG("--min-frequency", NULL, AF_U64, &o->min_freq, 0, 18446744073709551615.0, "N",
              "train: merges seen fewer times are not made"),
      AF_FLAG("--verbose", "-v", AF_ON, &o->verbose, 0, 0, NULL, "train: progress"),
      AF_BOOL("--no-specials", &o->no_specials, "encode: special-token text is plain text"),
      AF_BOOL("--skip-specials", &o->skip_specials, "decode: leave special tokens out"),
      AF_LAST};
  char usage_line[64];
  snprintf(usage_line, sizeof usage_line, "tokenizer %.20s [flags]", argv[1]);
  char name[48];
  snprintf(name, sizeof name, "tokenizer %.20s", argv[1]);
  const app_command cmd = {name, usage_line, actions, flags, 0, argc, 0};
  int n = 0, r = app_flags_parse(&cmd, argc - 1, argv + 1, NULL, o->rest, &n);
  o->n_rest = (size_t)n;
  o->vocab_size = vocab;
  return r;
}

static const char *pattern_of(const opts *o) {
  if (o->regex) return o->regex;
  if (!o->pattern) return NULL;
  int p = vklm_pretok_pattern_from_name(o->pattern);
  return p < 0 ? NULL : vklm_pretok_pattern_regex((vklm_pretok_pattern)p);
}

static vklm_tokenizer *load(const opts *o) {
  char err[512] = "";
  vklm_tokenizer *tk = NULL;
  int rc;
  if (o->pattern && vklm_pretok_pattern_from_name(o->pattern) < 0) {
    fprintf(stderr, "vklm tokenizer: unknown pattern '%s' (gpt2, cl100k, llama3, o200k)\n", o->pattern);
    return NULL;
  }
  size_t with_id = 0;
  for (size_t i = 0; i < o->n_specials; i++) with_id += o->special_ids[i] >= 0;
  if (with_id && (!o->tiktoken || with_id != o->n_specials)) {
    fprintf(stderr, "vklm tokenizer: --special-id is for tiktoken files, and then every special "
            "token needs its id (give them all with --special-id)\n");
    return NULL;
  }
  if (o->tiktoken)
    rc = vklm_tokenizer_load_tiktoken(o->tiktoken, pattern_of(o), o->specials,
                                      with_id ? o->special_ids : NULL, o->n_specials, &tk, err,
                                      sizeof err);
  else if (o->vocab && o->merges)
    rc = vklm_tokenizer_load_gpt2(o->vocab, o->merges, pattern_of(o), &tk, err, sizeof err);
  else if (o->tok)
    rc = vklm_tokenizer_load(o->tok, &tk, err, sizeof err);
  else {
    fprintf(stderr, "vklm tokenizer: no tokenizer given (-t, --vocab/--merges or --tiktoken)\n");
    return NULL;
  }
  if (rc) {
    fprintf(stderr, "vklm tokenizer: %s\n", err);
    return NULL;
  }
  gen_tokenizer_warn("vklm tokenizer", tk, o->tiktoken ? o->tiktoken : o->tok ? o->tok : o->vocab);
  return tk;
}

/* The text to encode or the ids to decode: a regular file or "-" (stdin), bounded. */
static int read_all(const char *path, char **buf, size_t *len) {
  char err[512];
  if (vklm_file_read(path, VKLM_FILE_MAX_TEXT, VKLM_FILE_STDIN, buf, len, err, sizeof err)) {
    fprintf(stderr, "vklm tokenizer: %s\n", err);
    return 1;
  }
  return 0;
}

static int do_train(const opts *o) {
  if (!o->out || !o->vocab_size || !o->n_rest) {
    fprintf(stderr, "vklm tokenizer train: need -o, --vocab-size and input files\n");
    return 2;
  }
  if (o->pattern && vklm_pretok_pattern_from_name(o->pattern) < 0) {
    fprintf(stderr, "vklm tokenizer train: unknown pattern '%s'\n", o->pattern);
    return 2;
  }
  vklm_bpe_train_config cfg = {o->vocab_size, pattern_of(o), o->specials, o->n_specials,
                               o->min_freq, o->verbose};
  char err[512] = "";
  vklm_bpe_trainer *tr = NULL;
  vklm_tokenizer *tk = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc = vklm_bpe_trainer_create(&cfg, &tr, err, sizeof err);
  for (size_t i = 0; i < o->n_rest && !rc; i++)
    rc = vklm_bpe_trainer_feed_file(tr, o->rest[i], err, sizeof err);
  if (!rc) rc = vklm_bpe_trainer_finish(tr, &tk, err, sizeof err);
  vklm_bpe_trainer_destroy(tr);
  if (!rc) rc = vklm_tokenizer_save_json(tk, o->out, err, sizeof err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc) {
    fprintf(stderr, "vklm tokenizer train: %s\n", err);
    vklm_tokenizer_destroy(tk);
    return 1;
  }
  fprintf(stderr, "trained %zu tokens (%zu merges) in %.2f s -> %s\n", vklm_tokenizer_vocab_size(tk),
          vklm_tokenizer_n_merges(tk), (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9,
          o->out);
  vklm_tokenizer_destroy(tk);
  return 0;
}

static void print_ids(const vklm_token_ids *ids) {
  for (size_t i = 0; i < ids->n; i++) printf(i ? " %d" : "%d", (int)ids->ids[i]);
  printf("\n");
}

/* One line of ids per line of FILE holding a JSON object with a string "text" (an empty line of
 * output for a line that has none). */
static int encode_jsonl(vklm_tokenizer *tk, const char *path, unsigned flags) {
  char *buf;
  size_t len;
  if (read_all(path, &buf, &len)) return 1;
  vklm_token_ids ids = {0};
  int rc = 0;
  for (char *p = buf, *end = buf + len; p < end && !rc;) {
    char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
    cJSON *o = cJSON_ParseWithLength(p, (size_t)(e - p));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
    ids.n = 0;
    if (cJSON_IsString(t)) rc = vklm_tokenizer_encode(tk, t->valuestring, strlen(t->valuestring), flags, &ids);
    cJSON_Delete(o);
    if (!rc) print_ids(&ids);
    p = e + 1;
  }
  vklm_token_ids_free(&ids);
  free(buf);
  return rc ? 1 : 0;
}

/* One line of ids per line of FILE (the newline is part of the text; any bytes). */
static int encode_lines(vklm_tokenizer *tk, const char *path, unsigned flags) {
  char *buf;
  size_t len;
  if (read_all(path, &buf, &len)) return 1;
  vklm_token_ids ids = {0};
  int rc = 0;
  for (char *p = buf, *end = buf + len; p < end && !rc;) {
    char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl + 1 : end;
    ids.n = 0;
    rc = vklm_tokenizer_encode(tk, p, (size_t)(e - p), flags, &ids);
    if (!rc) print_ids(&ids);
    p = e;
  }
  vklm_token_ids_free(&ids);
  free(buf);
  return rc ? 1 : 0;
}

static int do_encode(const opts *o) {
  char *buf = NULL;
  size_t len = 0;
  if (o->jsonl || o->lines) {
    vklm_tokenizer *tk = load(o);
    if (!tk) return 1;
    unsigned flags = o->no_specials ? 0 : VKLM_ENCODE_SPECIALS;
    int rc = o->jsonl ? encode_jsonl(tk, o->jsonl, flags) : encode_lines(tk, o->lines, flags);
    vklm_tokenizer_destroy(tk);
    return rc;
  }
  if (o->text) {
    len = strlen(o->text);
  } else if (o->n_rest == 1 || o->input) {
    if (read_all(o->input ? o->input : o->rest[0], &buf, &len)) return 1;
  } else {
    fprintf(stderr, "vklm tokenizer encode: give -p TEXT or one file (- for stdin)\n");
    return 2;
  }
  vklm_tokenizer *tk = load(o);
  if (!tk) {
    free(buf);
    return 1;
  }
  vklm_token_ids ids = {0};
  int rc = vklm_tokenizer_encode(tk, buf ? buf : o->text, len, o->no_specials ? 0 : VKLM_ENCODE_SPECIALS,
                                 &ids);
  if (rc) fprintf(stderr, "vklm tokenizer encode: failed (%d)\n", rc);
  if (!rc) print_ids(&ids);
  vklm_token_ids_free(&ids);
  vklm_tokenizer_destroy(tk);
  free(buf);
  return rc ? 1 : 0;
}

static int do_decode(const opts *o) {
  vklm_token_ids ids = {0};
  char *buf = NULL;
  size_t len = 0;
  if (o->input || (o->n_rest == 1 && !strcmp(o->rest[0], "-"))) {
    if (read_all(o->input ? o->input : "-", &buf, &len)) return 1;
  }
  int rc = 0;
  const char *const *words = o->rest;
  size_t nw = buf ? 0 : o->n_rest;
  char *p = buf;
  for (size_t i = 0;; i++) {
    const char *w;
    if (buf) {
      while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',') p++;
      if (!*p) break;
      w = p;
      while (*p && !(*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',')) p++;
      if (*p) *p++ = 0;
    } else {
      if (i >= nw) break;
      w = words[i];
    }
    char *end;
    errno = 0;
    long v = strtol(w, &end, 10);
    if (errno || *end || v < 0 || v > INT32_MAX) {
      fprintf(stderr, "vklm tokenizer decode: '%s' is not a token id\n", w);
      rc = 2;
      break;
    }
    vklm_token_ids one = ids;
    if (ids.n == ids.cap) {
      size_t cap = ids.cap ? ids.cap * 2 : 256;
      int32_t *q = realloc(ids.ids, cap * sizeof *q);
      if (!q) {
        rc = 1;
        break;
      }
      one.ids = q;
      one.cap = cap;
    }
    one.ids[one.n++] = (int32_t)v;
    ids = one;
  }
  free(buf);
  vklm_tokenizer *tk = rc ? NULL : load(o);
  if (!rc && !tk) rc = 1;
  if (!rc) {
    vklm_bytes out = {0};
    if (vklm_tokenizer_decode(tk, ids.ids, ids.n, o->skip_specials ? VKLM_DECODE_SKIP_SPECIALS : 0, &out)) {
      fprintf(stderr, "vklm tokenizer decode: unknown token id in the input\n");
      rc = 1;
    } else {
      fwrite(out.data, 1, out.n, stdout);
    }
    vklm_bytes_free(&out);
  }
  vklm_tokenizer_destroy(tk);
  vklm_token_ids_free(&ids);
  return rc;
}

int cmd_tokenizer(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "bench")) return bench_tokenizer(argc - 1, argv + 1);
  opts o = {0};
  int rc = parse(argc, argv, &o);
  if (rc) {
    if (rc == 1) rc = 0; /* --help / --version */
  } else if (!strcmp(argv[1], "train")) {
    rc = do_train(&o);
  } else if (!strcmp(argv[1], "encode")) {
    rc = do_encode(&o);
  } else if (!strcmp(argv[1], "decode")) {
    rc = do_decode(&o);
  } else if (!strcmp(argv[1], "convert") || !strcmp(argv[1], "info")) {
    vklm_tokenizer *tk = load(&o);
    char err[512] = "";
    if (!tk) {
      rc = 1;
    } else if (!strcmp(argv[1], "info")) {
      const char *pat = vklm_tokenizer_pattern(tk);
      printf("vocab_size %zu\nmerges %zu\npattern %s\n", vklm_tokenizer_vocab_size(tk),
             vklm_tokenizer_n_merges(tk), pat ? pat : "(none)");
    } else if (!o.out) {
      fprintf(stderr, "vklm tokenizer convert: need -o OUT.json\n");
      rc = 2;
    } else if (vklm_tokenizer_save_json(tk, o.out, err, sizeof err)) {
      fprintf(stderr, "vklm tokenizer convert: %s\n", err);
      rc = 1;
    }
    vklm_tokenizer_destroy(tk);
  } else {
    fprintf(stderr, "vklm tokenizer: unknown action '%s'\n", argv[1]);
    usage(stderr);
    rc = 2;
  }
  for (size_t i = 0; i < o.n_specials; i++) /* --special-id's token texts are copies */
    if (o.special_ids[i] >= 0) free((char *)o.specials[i]);
  free(o.specials);
  free(o.special_ids);
  free(o.rest);
  return rc;
}

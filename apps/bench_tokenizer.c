/* `vklm tokenizer bench`: training time and single-thread encode MB/s of the byte-level BPE on a
 * corpus (a file, or one it generates: Zipf-distributed made-up words, punctuation, numbers, code
 * lines, a few non-Latin scripts and emoji, deterministic for a given size). Each line is one
 * document, for training and for encoding, as scripts/bench_tokenizer_hf.py does with tokenizers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "flags.h"
#include "text/tokenizer.h"

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU time of this thread: the honest single-thread figure on a shared machine */
static double cpu(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng_state >> 33);
}
static double rndf(void) { return rnd() / 2147483648.0; }

typedef struct sbuf {
  char *p;
  size_t n, cap;
} sbuf;
static int put_n(sbuf *b, const char *s, size_t l) {
  if (b->n + l + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1 << 20;
    while (cap < b->n + l + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return 1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, l);
  b->n += l;
  b->p[b->n] = 0;
  return 0;
}
static int put(sbuf *b, const char *s) { return put_n(b, s, strlen(s)); }

static int generate(size_t bytes, sbuf *out) {
  static const char *syl[] = {"ka", "to", "ri", "en", "the", "ing", "an", "mo", "sa", "le", "ver",
                              "con", "str", "ab", "qu", "ion", "er", "pe", "li", "or", "tu", "is",
                              "ment", "pro", "de", "un", "ex", "al", "it", "ou"};
  static const char *foreign[] = {"привет", "мир", "язык", "κόσμος", "λόγος", "東京", "日本語",
                                  "中文", "한국어", "مرحبا", "שלום", "हिन्दी", "café", "naïve",
                                  "Straße", "😀", "🚀🚀", "👍🏽", "—", "…", "«ok»"};
  static const char *code[] = {
      "    for (int i = 0; i < n; i++) { x[i] = y[i] * 2; }",
      "def f(x):\n        return x ** 2 + 3*x - 1",
      "\tif (err != NULL) return -1; // TODO(vklm): check",
      "  {\"id\": 12345, \"name\": \"value\", \"ok\": true}",
      "#include <stdio.h>", "    let v: Vec<u32> = (0..10).map(|i| i * i).collect();"};
  enum { NW = 4000 };
  static char words[NW][24];
  rng_state = 0x9E3779B97F4A7C15ull ^ bytes;
  for (int w = 0; w < NW; w++) {
    int ns = 1 + (int)(rnd() % 4);
    words[w][0] = 0;
    for (int k = 0; k < ns; k++) strcat(words[w], syl[rnd() % (sizeof syl / sizeof syl[0])]);
  }
  char tmp[64];
  while (out->n < bytes) {
    uint32_t kind = rnd() % 100;
    if (kind < 6) {
      if (put(out, code[rnd() % (sizeof code / sizeof code[0])]) || put(out, "\n")) return 1;
      continue;
    }
    if (kind < 9) {
      if (put(out, "\n")) return 1;
      continue;
    }
    int ns = 1 + (int)(rnd() % 5);
    for (int s = 0; s < ns; s++) {
      int nw = 4 + (int)(rnd() % 16);
      for (int i = 0; i < nw; i++) {
        uint32_t r = rnd() % 100;
        const char *w;
        if (r < 3) {
          snprintf(tmp, sizeof tmp, "%u", rnd() % (r == 0 ? 10000000u : 2100u));
          w = tmp;
        } else if (r < 6) {
          w = foreign[rnd() % (sizeof foreign / sizeof foreign[0])];
        } else {
          int idx = (int)floor(pow((double)NW, rndf())) - 1;
          strcpy(tmp, words[idx < 0 ? 0 : idx]);
          if (i == 0) tmp[0] = (char)(tmp[0] - 32);
          if (r < 8) strcat(tmp, "'s");
          w = tmp;
        }
        if ((i && put(out, rnd() % 25 ? " " : "  ")) || put(out, w)) return 1;
        if (i + 1 < nw && rnd() % 12 == 0 && put(out, ",")) return 1;
      }
      if (put(out, (const char *[]){". ", "? ", "! ", ": "}[rnd() % 4 == 0 ? rnd() % 4 : 0])) return 1;
    }
    if (put(out, "\n")) return 1;
  }
  return 0;
}

int bench_tokenizer(int argc, char **argv) {
  const char *corpus = NULL, *tokfile = NULL, *keep = NULL, *pattern = "llama3";
  uint32_t mb = 16, vocab = 16384;
  int json = 0, pat = 0;
  const app_flag flags[] = {
      AF_STRING("--corpus", NULL, &corpus, "FILE",
                "the text (default: a generated corpus of --mb MB)"),
      AF_FLAG("--mb", NULL, AF_U32, &mb, 1, 4096, "N", "the generated corpus's size (16)"),
      AF_STRING("--tokenizer", "-t", &tokfile, "F", "a tokenizer.json instead of training one"),
      AF_FLAG("--vocab-size", NULL, AF_U32, &vocab, 256, 1u << 24, "N",
              "trained vocabulary (16384)"),
      AF_FLAG("--pattern", NULL, AF_CHOICE, &pat, 0, 0, "llama3|gpt2|cl100k|o200k",
              "the pre-tokenizer (llama3)"),
      AF_STRING("--keep", NULL, &keep, "DIR",
                "write DIR/corpus.txt and DIR/tokenizer.json for\n"
                "scripts/bench_tokenizer_hf.py"),
      AF_BOOL("--json", &json, "JSON instead of text"),
      AF_LAST};
  const app_command c = {"tokenizer bench", "tokenizer bench [--corpus FILE | --mb N] [flags]",
                         "Trains a tokenizer on the corpus (unless -t), then encodes it line by "
                         "line on one thread.", flags, 0, 0, 0};
  int pr = app_flags_parse(&c, argc, argv, NULL, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  static const char *const pats[] = {"llama3", "gpt2", "cl100k", "o200k"};
  pattern = pats[pat];
  pat = vklm_pretok_pattern_from_name(pattern);
  if (pat < 0) {
    fprintf(stderr, "vklm tokenizer bench: unknown pattern %s\n", pattern);
    return 2;
  }
  sbuf text = {0};
  if (corpus) {
    FILE *f = fopen(corpus, "rb");
    char chunk[1 << 16];
    size_t got;
    while (f && (got = fread(chunk, 1, sizeof chunk - 1, f)) > 0) {
      if (put_n(&text, chunk, got)) break;
    }
    if (!f) {
      fprintf(stderr, "vklm tokenizer bench: cannot open %s\n", corpus);
      return 1;
    }
    fclose(f);
  } else if (generate(mb << 20, &text)) {
    fprintf(stderr, "vklm tokenizer bench: out of memory\n");
    return 1;
  }
  char err[512] = "";
  vklm_tokenizer *tk = NULL;
  double train_s = -1, train_cpu = -1;
  int rc = 0;
  if (tokfile) {
    rc = vklm_tokenizer_load(tokfile, &tk, err, sizeof err);
  } else {
    const char *specials[] = {"<|endoftext|>"};
    vklm_bpe_train_config cfg = {vocab, vklm_pretok_pattern_regex((vklm_pretok_pattern)pat),
                                 specials, 1, 0, 0};
    vklm_bpe_trainer *tr = NULL;
    double t0 = now(), c0 = cpu();
    rc = vklm_bpe_trainer_create(&cfg, &tr, err, sizeof err);
    for (char *p = text.p, *end = text.p + text.n; !rc && p < end;) {
      char *nl = memchr(p, '\n', (size_t)(end - p));
      char *e = nl ? nl + 1 : end;
      rc = vklm_bpe_trainer_feed(tr, p, (size_t)(e - p));
      p = e;
    }
    if (!rc) rc = vklm_bpe_trainer_finish(tr, &tk, err, sizeof err);
    vklm_bpe_trainer_destroy(tr);
    train_s = now() - t0;
    train_cpu = cpu() - c0;
  }
  if (rc) {
    fprintf(stderr, "vklm tokenizer bench: %s\n", err);
    free(text.p);
    return 1;
  }
  if (keep) {
    char path[4096];
    mkdir(keep, 0755);
    snprintf(path, sizeof path, "%s/corpus.txt", keep);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text.p, 1, text.n, f) != text.n) rc = 1;
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/tokenizer.json", keep);
    if (!rc && vklm_tokenizer_save_json(tk, path, err, sizeof err)) rc = 1;
    if (rc) fprintf(stderr, "vklm tokenizer bench: cannot write to %s %s\n", keep, err);
  }
  vklm_tokenizer_encoder *enc = NULL;
  vklm_token_ids ids = {0};
  size_t ntok = 0, lines = 0;
  double t0 = now(), c0 = cpu();
  if (!rc) rc = vklm_tokenizer_encoder_create(tk, &enc);
  for (char *p = text.p, *end = text.p + text.n; !rc && p < end; lines++) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *e = nl ? nl + 1 : end;
    ids.n = 0;
    rc = vklm_tokenizer_encoder_encode(enc, p, (size_t)(e - p), VKLM_ENCODE_SPECIALS, &ids);
    ntok += ids.n;
    p = e;
  }
  double enc_s = now() - t0, enc_cpu = cpu() - c0;
  double mbps = enc_s > 0 ? (double)text.n / 1e6 / enc_s : 0;
  double mbps_cpu = enc_cpu > 0 ? (double)text.n / 1e6 / enc_cpu : 0;
  if (!rc) {
    if (json)
      printf("{\"corpus_bytes\": %zu, \"lines\": %zu, \"vocab_size\": %zu, \"train_s\": %.3f, "
             "\"train_cpu_s\": %.3f, \"encode_s\": %.3f, \"encode_cpu_s\": %.3f, \"encode_mb_s\": %.2f, "
             "\"encode_mb_s_cpu\": %.2f, \"tokens\": %zu, \"bytes_per_token\": %.3f}\n",
             text.n, lines, vklm_tokenizer_vocab_size(tk), train_s, train_cpu, enc_s, enc_cpu, mbps,
             mbps_cpu, ntok, ntok ? (double)text.n / ntok : 0);
    else
      printf("corpus %.1f MB (%zu lines), vocabulary %zu\ntrain  %.2f s wall, %.2f s CPU\n"
             "encode %.2f MB/s wall, %.2f MB/s CPU time (1 thread, %zu tokens, %.2f bytes/token)\n",
             text.n / 1e6, lines, vklm_tokenizer_vocab_size(tk), train_s, train_cpu, mbps, mbps_cpu,
             ntok, ntok ? (double)text.n / ntok : 0);
  } else {
    fprintf(stderr, "vklm tokenizer bench: encoding failed\n");
  }
  vklm_token_ids_free(&ids);
  vklm_tokenizer_encoder_destroy(enc);
  vklm_tokenizer_destroy(tk);
  free(text.p);
  return rc ? 1 : 0;
}

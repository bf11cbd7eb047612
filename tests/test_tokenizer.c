/* test_tokenizer: the byte-level BPE (engine/text/). Checks, each printed with its outcome:
 *   - decode(encode(x)) == x on random byte strings (invalid UTF-8, NULs) for every built-in
 *     pattern, with and without special tokens, and on long inputs (1 MiB line, a 300 KiB word
 *     that takes the heap merge path);
 *   - the short-piece and long-piece merge paths agree with a naive reference BPE;
 *   - special tokens: matched with VKLM_ENCODE_SPECIALS, plain text without, skipped on request;
 *   - each built-in pattern splits a tricky text exactly as Hugging Face tokenizers does (the
 *     expected pieces were produced by tokenizers 0.23 and are pasted below);
 *   - corrupt tokenizer.json inputs give an error message, never a crash, including every
 *     truncation of a valid file;
 *   - training is deterministic (same corpus -> byte-identical tokenizer.json), and a saved
 *     tokenizer loads back with identical ids; tiktoken rank files load and round-trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"

static int failures;
#define CHECK(cond, ...)                     \
  do {                                       \
    int ok_ = (cond);                        \
    printf(ok_ ? "ok    " : "FAIL  ");       \
    printf(__VA_ARGS__);                     \
    printf("\n");                            \
    if (!ok_) failures++;                    \
  } while (0)

static const char tricky[] = "Hello  world's THEY'RE\x0a""\x0a""  x 1234567 \xc2""\xbd""\xc2""\xb2""\xc2""\xb3"" \xef""\xbd""\xb1""\xef""\xbd""\xb2"" \xf0""\x9f""\x98""\x80""\xf0""\x9f""\x91""\x8d""\xf0""\x9f""\x8f""\xbd"" caf\xc3""\xa9""\xc2""\xa0""\xc2""\x85""z \xe3""\x80""\x80"" \x09""\x0a""end   \x0d""\x0a""\x0d""\x0a""foo/bar  \x0a""  \xc3""\x80""B \xc3""\x87""aSe";
static const char *const pieces_gpt2[] = {"Hello", " ", " world", "'s", " THEY", "'", "RE", "\x0a""\x0a"" ", " x", " 1234567", " \xc2""\xbd""\xc2""\xb2""\xc2""\xb3""", " \xef""\xbd""\xb1""\xef""\xbd""\xb2""", " \xf0""\x9f""\x98""\x80""\xf0""\x9f""\x91""\x8d""\xf0""\x9f""\x8f""\xbd""", " caf\xc3""\xa9""", "\xc2""\xa0""", "\xc2""\x85""", "z", " \xe3""\x80""\x80"" \x09""", "\x0a""", "end", "   \x0d""\x0a""\x0d""", "\x0a""", "foo", "/", "bar", "  \x0a"" ", " \xc3""\x80""B", " \xc3""\x87""aSe", NULL};
static const char *const pieces_cl100k[] = {"Hello", " ", " world", "'s", " THEY", "'RE", "\x0a""\x0a""", " ", " x", " ", "123", "456", "7", " ", "\xc2""\xbd""\xc2""\xb2""\xc2""\xb3""", " \xef""\xbd""\xb1""\xef""\xbd""\xb2""", " \xf0""\x9f""\x98""\x80""\xf0""\x9f""\x91""\x8d""\xf0""\x9f""\x8f""\xbd""", " caf\xc3""\xa9""", "\xc2""\xa0""", "\xc2""\x85""z", " \xe3""\x80""\x80"" \x09""\x0a""", "end", "   \x0d""\x0a""\x0d""\x0a""", "foo", "/bar", "  \x0a""", " ", " \xc3""\x80""B", " \xc3""\x87""aSe", NULL};
static const char *const pieces_llama3[] = {"Hello", " ", " world", "'s", " THEY", "'RE", "\x0a""\x0a""", " ", " x", " ", "123", "456", "7", " ", "\xc2""\xbd""\xc2""\xb2""\xc2""\xb3""", " \xef""\xbd""\xb1""\xef""\xbd""\xb2""", " \xf0""\x9f""\x98""\x80""\xf0""\x9f""\x91""\x8d""\xf0""\x9f""\x8f""\xbd""", " caf\xc3""\xa9""", "\xc2""\xa0""", "\xc2""\x85""z", " \xe3""\x80""\x80"" \x09""\x0a""", "end", "   \x0d""\x0a""\x0d""\x0a""", "foo", "/bar", "  \x0a""", " ", " \xc3""\x80""B", " \xc3""\x87""aSe", NULL};
static const char *const pieces_o200k[] = {"Hello", " ", " world's", " THEY'RE", "\x0a""\x0a""", " ", " x", " ", "123", "456", "7", " ", "\xc2""\xbd""\xc2""\xb2""\xc2""\xb3""", " \xef""\xbd""\xb1""\xef""\xbd""\xb2""", " \xf0""\x9f""\x98""\x80""\xf0""\x9f""\x91""\x8d""\xf0""\x9f""\x8f""\xbd""", " caf\xc3""\xa9""", "\xc2""\xa0""", "\xc2""\x85""z", " \xe3""\x80""\x80"" \x09""\x0a""", "end", "   \x0d""\x0a""\x0d""\x0a""", "foo", "/bar", "  \x0a""", " ", " \xc3""\x80""B", " \xc3""\x87""a", "Se", NULL};

static const char *const *expected_pieces[VKLM_PRETOK_COUNT] = {pieces_gpt2, pieces_cl100k,
                                                                pieces_llama3, pieces_o200k};
static const char *const pattern_names[VKLM_PRETOK_COUNT] = {"gpt2", "cl100k", "llama3", "o200k"};

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

static const char *corpus_docs[] = {
    "The quick brown fox jumps over the lazy dog. It's 2024 and they're here!\n",
    "def main():\n    print('hello world')  # 123\n\n",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. 中文文本 😀👍🏽\n",
    "   spaces   and\ttabs\n\n\nnewlines 1234567890 <|endoftext|> again\n",
};

static vklm_tokenizer *train(const char *pattern, size_t vocab, int reps) {
  const char *specials[] = {"<|endoftext|>", "<|pad|>"};
  vklm_bpe_train_config cfg = {vocab, pattern, specials, 2, 0, 0};
  vklm_bpe_trainer *tr;
  vklm_tokenizer *tk = NULL;
  char err[256];
  if (vklm_bpe_trainer_create(&cfg, &tr, err, sizeof err)) {
    printf("trainer: %s\n", err);
    return NULL;
  }
  char buf[64];
  for (int r = 0; r < reps; r++) {
    for (size_t i = 0; i < sizeof corpus_docs / sizeof *corpus_docs; i++)
      vklm_bpe_trainer_feed(tr, corpus_docs[i], strlen(corpus_docs[i]));
    snprintf(buf, sizeof buf, "doc %d: word%d and value %d.\n", r, r % 37, r * 7919);
    vklm_bpe_trainer_feed(tr, buf, strlen(buf));
  }
  if (vklm_bpe_trainer_finish(tr, &tk, err, sizeof err)) printf("finish: %s\n", err);
  vklm_bpe_trainer_destroy(tr);
  return tk;
}

static int roundtrip(vklm_tokenizer *tk, const char *s, size_t n, unsigned flags) {
  vklm_token_ids ids = {0};
  vklm_bytes out = {0};
  int ok = !vklm_tokenizer_encode(tk, s, n, flags, &ids) && !vklm_tokenizer_decode(tk, ids.ids, ids.n, 0, &out) &&
           out.n == n && (n == 0 || !memcmp(out.data, s, n));
  vklm_token_ids_free(&ids);
  vklm_bytes_free(&out);
  return ok;
}

static void test_roundtrip(void) {
  for (int p = 0; p < VKLM_PRETOK_COUNT; p++) {
    vklm_tokenizer *tk = train(vklm_pretok_pattern_regex((vklm_pretok_pattern)p), 700, 200);
    if (!tk) {
      CHECK(0, "%s: training", pattern_names[p]);
      continue;
    }
    int ok = 0, total = 2000;
    char buf[600];
    for (int i = 0; i < total; i++) {
      size_t n = rnd() % sizeof buf;
      int mode = i % 4;
      for (size_t k = 0; k < n; k++) {
        uint32_t r = rnd();
        if (mode == 0) buf[k] = (char)r; /* any byte */
        else if (mode == 1) buf[k] = " \n\t\rab'1\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\x00"[r % 19];
        else if (mode == 2) buf[k] = (char)(0x80 + r % 64); /* continuation bytes only */
        else buf[k] = "<|endoftext|> x"[r % 15];
      }
      ok += roundtrip(tk, buf, n, (i & 1) ? VKLM_ENCODE_SPECIALS : 0);
    }
    CHECK(ok == total, "%s: decode(encode(x)) == x on %d/%d random byte strings", pattern_names[p], ok, total);
    /* long inputs: a 1 MiB line of mixed text and a 300 KiB single word (heap merge path) */
    size_t big = 1 << 20;
    char *s = malloc(big);
    for (size_t k = 0; k < big; k++) s[k] = "the fox, 12 \xd0\xb6\xd0\xb5 ab\xff"[rnd() % 20];
    CHECK(roundtrip(tk, s, big, VKLM_ENCODE_SPECIALS), "%s: 1 MiB single line round-trips", pattern_names[p]);
    for (size_t k = 0; k < 300000; k++) s[k] = "abcde"[rnd() % 5];
    CHECK(roundtrip(tk, s, 300000, 0), "%s: 300 KB single word round-trips", pattern_names[p]);
    CHECK(roundtrip(tk, "", 0, 0), "%s: empty input", pattern_names[p]);
    free(s);
    vklm_tokenizer_destroy(tk);
  }
}

/* Naive BPE: repeatedly merge the leftmost lowest-rank pair (ranks by index, last duplicate wins). */
static size_t naive_bpe(const vklm_tokenizer *tk, const char *s, size_t n, int32_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) out[m++] = tk->byte_id[(uint8_t)s[i]];
  for (;;) {
    size_t best = 0;
    uint32_t br = UINT32_MAX, rk;
    int32_t nid, bid = -1;
    for (size_t i = 0; i + 1 < m; i++)
      if (tk_pairmap_get(&tk->merge_map, out[i], out[i + 1], &rk, &nid) && rk < br) br = rk, best = i, bid = nid;
    if (bid < 0) break;
    out[best] = bid;
    memmove(out + best + 1, out + best + 2, (m - best - 2) * sizeof *out);
    m--;
  }
  return m;
}

static void test_merge_paths(void) {
  vklm_tokenizer *tk = train(vklm_pretok_pattern_regex(VKLM_PRETOK_GPT2), 600, 100);
  if (!tk) return;
  vklm_tokenizer_encoder *enc;
  vklm_tokenizer_encoder_create(tk, &enc);
  int ok = 0, total = 400;
  char s[200];
  int32_t ref[200];
  vklm_token_ids ids = {0};
  for (int i = 0; i < total; i++) {
    size_t n = 1 + rnd() % 150; /* both sides of the 48-symbol switch to the heap */
    for (size_t k = 0; k < n; k++) s[k] = "theoqurickbwn"[rnd() % (i % 2 ? 3 : 13)];
    size_t m = naive_bpe(tk, s, n, ref);
    ids.n = 0;
    vklm_tokenizer_encoder_encode(enc, s, n, 0, &ids);
    ok += ids.n == m && !memcmp(ids.ids, ref, m * sizeof *ref);
  }
  CHECK(ok == total, "merge loop and heap paths equal a naive BPE on %d/%d words", ok, total);
  vklm_token_ids_free(&ids);
  vklm_tokenizer_encoder_destroy(enc);
  vklm_tokenizer_destroy(tk);
}

static void test_specials(void) {
  vklm_tokenizer *tk = train(NULL, 500, 50);
  if (!tk) return;
  int32_t eot = vklm_tokenizer_special_id(tk, "<|endoftext|>");
  CHECK(eot == 0 && vklm_tokenizer_special_id(tk, "<|pad|>") == 1 && vklm_tokenizer_is_special(tk, eot),
        "specials get ids 0 and 1 (got %d)", (int)eot);
  const char *t = "a<|endoftext|>b<|pad|>";
  vklm_token_ids ids = {0};
  vklm_tokenizer_encode(tk, t, strlen(t), VKLM_ENCODE_SPECIALS, &ids);
  int found = 0;
  for (size_t i = 0; i < ids.n; i++) found += ids.ids[i] == eot || ids.ids[i] == 1;
  CHECK(found == 2, "with VKLM_ENCODE_SPECIALS both specials become their ids (%zu ids)", ids.n);
  ids.n = 0;
  vklm_tokenizer_encode(tk, t, strlen(t), 0, &ids);
  found = 0;
  for (size_t i = 0; i < ids.n; i++) found += ids.ids[i] == eot || ids.ids[i] == 1;
  CHECK(found == 0, "without it they are plain text (%zu ids)", ids.n);
  ids.n = 0;
  vklm_tokenizer_encode(tk, t, strlen(t), VKLM_ENCODE_SPECIALS, &ids);
  vklm_bytes out = {0};
  vklm_tokenizer_decode(tk, ids.ids, ids.n, VKLM_DECODE_SKIP_SPECIALS, &out);
  CHECK(out.n == 2 && !memcmp(out.data, "ab", 2), "decode skipping specials gives \"ab\"");
  int32_t bad = (int32_t)vklm_tokenizer_vocab_size(tk);
  CHECK(vklm_tokenizer_decode(tk, &bad, 1, 0, &out) == VKLM_TOK_ERR_ARG, "decode of an unknown id fails");
  vklm_bytes_free(&out);
  vklm_token_ids_free(&ids);
  vklm_tokenizer_destroy(tk);
}

typedef struct collect {
  const char *pieces[256];
  size_t len[256], n;
} collect;

static int on_piece(void *ctx, const char *p, size_t n) {
  collect *c = ctx;
  if (c->n < 256) c->pieces[c->n] = p, c->len[c->n] = n;
  c->n++;
  return 0;
}

static void test_patterns(void) {
  for (int p = 0; p < VKLM_PRETOK_COUNT; p++) {
    vklm_tokenizer *tk;
    tk_step st;
    char err[256];
    tk_build_begin(&tk, 0);
    if (tk_step_split(&st, vklm_pretok_pattern_regex((vklm_pretok_pattern)p), 0, TK_SPLIT_ISOLATED, 0, err,
                      sizeof err)) {
      CHECK(0, "%s: compile: %s", pattern_names[p], err);
      continue;
    }
    tk_build_step(tk, &st);
    tk_build_finish(tk, err, sizeof err);
    tk_pretok_scratch s = {0};
    collect c = {0};
    tk_pretokenize(tk, &s, tricky, strlen(tricky), on_piece, &c);
    size_t n = 0, bad = (size_t)-1;
    while (expected_pieces[p][n]) n++;
    for (size_t i = 0; i < n && i < c.n && bad == (size_t)-1; i++)
      if (c.len[i] != strlen(expected_pieces[p][i]) || memcmp(c.pieces[i], expected_pieces[p][i], c.len[i]))
        bad = i;
    if (c.n != n && bad == (size_t)-1) bad = c.n < n ? c.n : n;
    CHECK(bad == (size_t)-1, "%s: tricky text splits into tokenizers' %zu pieces (got %zu%s)", pattern_names[p], n,
          c.n, bad == (size_t)-1 ? "" : ", first difference below");
    if (bad != (size_t)-1 && bad < c.n && bad < n)
      printf("      piece %zu: got '%.*s' want '%s'\n", bad, (int)c.len[bad], c.pieces[bad], expected_pieces[p][bad]);
    tk_pretok_scratch_free(&s);
    vklm_tokenizer_destroy(tk);
  }
}

static const char *valid_json =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":true}],"
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
    "\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
    "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"<s>\":3},\"merges\":[\"a b\"]}}";

static void test_corrupt_json(void) {
  char err[256];
  vklm_tokenizer *tk = NULL;
  int rc = vklm_tokenizer_load_json_buffer(valid_json, strlen(valid_json), &tk, err, sizeof err);
  CHECK(rc == 0, "a minimal valid tokenizer.json loads (%s)", rc ? err : "ok");
  vklm_tokenizer_destroy(tk);
  static const struct {
    const char *what, *json;
  } bad[] = {
      {"empty", ""},
      {"not JSON", "hello"},
      {"array root", "[1,2]"},
      {"no model", "{\"version\":\"1.0\"}"},
      {"WordPiece model", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}"},
      {"vocab not object", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}"},
      {"negative id", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":-1},\"merges\":[]}}"},
      {"fractional id", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":1.5},\"merges\":[]}}"},
      {"huge id", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":4000000000},\"merges\":[]}}"},
      {"string id", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":\"0\"},\"merges\":[]}}"},
      {"duplicate id", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}"},
      {"merge of unknown token", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":[\"a z\"]}}"},
      {"merge result missing", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\",\"b\"]]}}"},
      {"merge not a pair", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":[[\"a\"]]}}"},
      {"merge with 3 parts", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":[\"a a a\"]}}"},
      {"merges not array", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":5}}"},
      {"added token bad id", "{\"added_tokens\":[{\"id\":-3,\"content\":\"x\"}],\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{},\"merges\":[]}}"},
      {"added token no content", "{\"added_tokens\":[{\"id\":3}],\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{},\"merges\":[]}}"},
      {"added token empty", "{\"added_tokens\":[{\"id\":0,\"content\":\"\"}],\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{},\"merges\":[]}}"},
      {"bad regex", "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]},\"model\":{\"vocab\":{},\"merges\":[]}}"},
      {"unknown behavior", "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"},{\"type\":\"ByteLevel\"}]},\"model\":{\"vocab\":{},\"merges\":[]}}"},
      {"unsupported pre-tokenizer", "{\"pre_tokenizer\":{\"type\":\"Metaspace\"},\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{},\"merges\":[]}}"},
      {"normalizer Lowercase", "{\"normalizer\":{\"type\":\"Lowercase\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{},\"merges\":[]}}"},
      {"not byte-level", "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}"},
      {"subword prefix", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{},\"merges\":[],\"continuing_subword_prefix\":\"##\"}}"},
      {"binary garbage", "\x7f\x45\x4c\x46\x02\x01\x01\x00\xff\xfe"},
  };
  int ok = 0, n = (int)(sizeof bad / sizeof bad[0]);
  for (int i = 0; i < n; i++) {
    err[0] = 0;
    tk = NULL;
    rc = vklm_tokenizer_load_json_buffer(bad[i].json, strlen(bad[i].json), &tk, err, sizeof err);
    int good = rc != 0 && tk == NULL && err[0];
    ok += good;
    printf("      %-26s -> %s\n", bad[i].what, good ? err : "NOT REJECTED");
    vklm_tokenizer_destroy(tk);
  }
  CHECK(ok == n, "corrupt tokenizer.json rejected with a message: %d/%d", ok, n);
  size_t len = strlen(valid_json);
  int clean = 0;
  for (size_t cut = 0; cut < len; cut++) {
    err[0] = 0;
    tk = NULL;
    rc = vklm_tokenizer_load_json_buffer(valid_json, cut, &tk, err, sizeof err);
    clean += rc != 0 && err[0] && !tk;
    vklm_tokenizer_destroy(tk);
  }
  CHECK(clean == (int)len, "every truncation of a valid file is rejected cleanly: %d/%zu", clean, len);
  CHECK(vklm_tokenizer_load_json("/nonexistent/tokenizer.json", &tk, err, sizeof err) == VKLM_TOK_ERR_IO,
        "a missing file: %s", err);
}

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long l = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)l + 1);
  *n = fread(b, 1, (size_t)l, f);
  fclose(f);
  return b;
}

static void test_determinism_and_save(void) {
  char dir[] = "/tmp/vklm_tok_XXXXXX", a[64], b[64], err[256];
  if (!mkdtemp(dir)) return;
  snprintf(a, sizeof a, "%s/a.json", dir);
  snprintf(b, sizeof b, "%s/b.json", dir);
  vklm_tokenizer *t1 = train(vklm_pretok_pattern_regex(VKLM_PRETOK_LLAMA3), 800, 300);
  vklm_tokenizer *t2 = train(vklm_pretok_pattern_regex(VKLM_PRETOK_LLAMA3), 800, 300);
  int saved = t1 && t2 && !vklm_tokenizer_save_json(t1, a, err, sizeof err) &&
              !vklm_tokenizer_save_json(t2, b, err, sizeof err);
  size_t na = 0, nb = 0;
  char *ja = saved ? slurp(a, &na) : NULL, *jb = saved ? slurp(b, &nb) : NULL;
  CHECK(ja && jb && na == nb && !memcmp(ja, jb, na), "training twice gives byte-identical tokenizer.json (%zu bytes, %zu merges)",
        na, t1 ? vklm_tokenizer_n_merges(t1) : 0);
  vklm_tokenizer *t3 = NULL;
  int loaded = saved && !vklm_tokenizer_load_json(a, &t3, err, sizeof err);
  int same = loaded && vklm_tokenizer_vocab_size(t3) == vklm_tokenizer_vocab_size(t1);
  vklm_token_ids x = {0}, y = {0};
  for (size_t i = 0; same && i < sizeof corpus_docs / sizeof *corpus_docs; i++) {
    x.n = y.n = 0;
    vklm_tokenizer_encode(t1, corpus_docs[i], strlen(corpus_docs[i]), VKLM_ENCODE_SPECIALS, &x);
    vklm_tokenizer_encode(t3, corpus_docs[i], strlen(corpus_docs[i]), VKLM_ENCODE_SPECIALS, &y);
    same = x.n == y.n && !memcmp(x.ids, y.ids, x.n * sizeof *x.ids);
  }
  CHECK(same, "save + load gives identical ids");
  /* tiktoken: write the trained vocabulary as a rank file */
  snprintf(b, sizeof b, "%s/t.tiktoken", dir);
  FILE *f = fopen(b, "w");
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t id = 2; f && t1 && id < vklm_tokenizer_vocab_size(t1); id++) {
    size_t n;
    const unsigned char *p = (const unsigned char *)vklm_tokenizer_token_bytes(t1, (int32_t)id, &n);
    for (size_t i = 0; i < n; i += 3) {
      uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
      fputc(b64[v >> 18], f);
      fputc(b64[(v >> 12) & 63], f);
      fputc(i + 1 < n ? b64[(v >> 6) & 63] : '=', f);
      fputc(i + 2 < n ? b64[v & 63] : '=', f);
    }
    fprintf(f, " %zu\n", id - 2);
  }
  if (f) fclose(f);
  const char *sp[] = {"<|endoftext|>"};
  vklm_tokenizer *tt = NULL;
  int rc = vklm_tokenizer_load_tiktoken(b, vklm_pretok_pattern_regex(VKLM_PRETOK_LLAMA3), sp, NULL, 1, &tt, err, sizeof err);
  int ok = !rc;
  for (size_t i = 0; ok && i < sizeof corpus_docs / sizeof *corpus_docs; i++)
    ok = roundtrip(tt, corpus_docs[i], strlen(corpus_docs[i]), VKLM_ENCODE_SPECIALS);
  CHECK(ok, "tiktoken rank file loads and round-trips (%s)", rc ? err : "ok");
  vklm_token_ids_free(&x);
  vklm_token_ids_free(&y);
  vklm_tokenizer_destroy(tt);
  vklm_tokenizer_destroy(t1);
  vklm_tokenizer_destroy(t2);
  vklm_tokenizer_destroy(t3);
  free(ja);
  free(jb);
  unlink(a);
  unlink(b);
  snprintf(a, sizeof a, "%s/b.json", dir);
  unlink(a);
  rmdir(dir);
}

int main(void) {
  test_patterns();
  test_specials();
  test_merge_paths();
  test_corrupt_json();
  test_determinism_and_save();
  test_roundtrip();
  printf("%s: %d failing checks\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}

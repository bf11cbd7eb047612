/* Stream tests (engine/infer/stream.h), no GPU. A tiny tokenizer holds the 256 single bytes, every
 * substring of the test strings, and a special token. Checks, each printed with its counts:
 *   - every way of splitting a text into tokens (all 2^(L-1) splits) gives, after each push,
 *     exactly the text a whole-buffer reference allows so far (whole UTF-8 characters, nothing
 *     that could begin a stop), the same stop, and the same final text: multi-byte characters
 *     split everywhere, stops spanning tokens, a stop at the very start, overlapping stops,
 *     several stops, a stop prefix that never completes, invalid UTF-8 (U+FFFD);
 *   - special tokens kept or skipped;
 *   - long random token sequences: emitted + held == the cleaned vklm_tokenizer_decode of the
 *     ids pushed so far at every step, and == the decode itself when that is valid UTF-8;
 *   - bad arguments: an unknown id, an empty or invalid stop string;
 *   - the cost is linear: the last quarter of a long run with stops that keep almost matching
 *     costs about what the first quarter does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/stream.h"
#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"

static int failures, checks;
static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void check(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf(ok ? "  ok   " : "  FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  checks++;
  if (!ok) failures++;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* ---- the tokenizer ---- */
static const char *SPECIAL = "<|eot|>";
static int32_t special_id;

/* 256 bytes, every substring (2+ bytes) of texts[], a few words, and SPECIAL (special). */
static vklm_tokenizer *make_tokenizer(const char *const *texts, size_t ntexts) {
  size_t cap = 4096, n = 0;
  char **tok = malloc(cap * sizeof *tok);
  size_t *len = malloc(cap * sizeof *len);
  static const char *words[] = {"ab", "ba", "abc", "STOP", "ST", "OP", "\n\n", "User:", " wor",
                                "ld", "\xE2\x82", "\xAC\xF0\x9F", "\x98\x80", "h\xC3", "\xA9!"};
  for (size_t w = 0; w < sizeof words / sizeof *words; w++)
    tok[n] = (char *)words[w], len[n++] = strlen(words[w]);
  for (size_t t = 0; t < ntexts; t++) {
    size_t L = strlen(texts[t]);
    for (size_t i = 0; i < L; i++)
      for (size_t j = i + 2; j <= L; j++) tok[n] = (char *)texts[t] + i, len[n++] = j - i;
  }
  /* drop duplicates */
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    int dup = 0;
    for (size_t k = 0; k < m && !dup; k++) dup = len[k] == len[i] && !memcmp(tok[k], tok[i], len[i]);
    if (!dup) tok[m] = tok[i], len[m++] = len[i];
  }
  vklm_tokenizer *tk;
  char err[256];
  if (tk_build_begin(&tk, 256 + m + 1)) return NULL;
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    tk_build_set(tk, b, &c, 1, TK_TOK_PRESENT | TK_TOK_MODEL, err, sizeof err);
  }
  for (size_t i = 0; i < m; i++)
    tk_build_set(tk, (int32_t)(256 + i), tok[i], len[i], TK_TOK_PRESENT | TK_TOK_MODEL, err,
                 sizeof err);
  special_id = (int32_t)(256 + m);
  tk_build_set(tk, special_id, SPECIAL, strlen(SPECIAL),
               TK_TOK_PRESENT | TK_TOK_ADDED | TK_TOK_SPECIAL, err, sizeof err);
  if (tk_build_finish(tk, err, sizeof err)) {
    printf("tokenizer: %s\n", err);
    return NULL;
  }
  free(tok), free(len);
  return tk;
}

static int32_t id_of(const vklm_tokenizer *tk, const char *s, size_t n) {
  int32_t id = vklm_tokenizer_token_id(tk, s, n);
  if (id < 0) printf("  (no token for '%.*s')\n", (int)n, s);
  return id;
}

/* ---- whole-buffer references ---- */
typedef struct buf {
  char *p;
  size_t n;
} buf;

/* The reference cleaning of raw[0..n): whole characters; an incomplete one at the end is dropped
 * unless final (then U+FFFD per byte). */
static buf clean(const char *raw, size_t n, int final) {
  buf b = {malloc(3 * n + 1), 0};
  const unsigned char *s = (const unsigned char *)raw;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    /* strict UTF-8 (Unicode table 3-7): no C0/C1/F5-FF leads, no overlong 3- and 4-byte
     * forms, no surrogates, nothing past U+10FFFF */
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    size_t k = 1;
    while (len && k < len && i + k < n && (s[i + k] & 0xC0) == 0x80 &&
           (k > 1 || ((c != 0xE0 || s[i + 1] >= 0xA0) && (c != 0xED || s[i + 1] <= 0x9F) &&
                      (c != 0xF0 || s[i + 1] >= 0x90) && (c != 0xF4 || s[i + 1] <= 0x8F))))
      k++;
    if (len && k == len) {
      memcpy(b.p + b.n, s + i, len), b.n += len, i += len;
    } else if (len && i + k == n && !final) {
      break;
    } else {
      memcpy(b.p + b.n, "\xEF\xBF\xBD", 3), b.n += 3, i += 1;
    }
  }
  return b;
}

/* Over cleaned text t[0..n): the first stop to complete (the longest at that byte) -> *stop and
 * its start (returned); else -1 and the start of the longest suffix that is a proper prefix of a
 * stop (or n) in *safe. */
static long ref_stop(const char *t, size_t n, const char *const *stops, int ns, int *stop,
                     size_t *safe) {
  for (size_t p = 1; p <= n; p++) {
    int best = -1;
    size_t bl = 0;
    for (int k = 0; k < ns; k++) {
      size_t L = strlen(stops[k]);
      if (L <= p && L > bl && !memcmp(t + p - L, stops[k], L)) best = k, bl = L;
    }
    if (best >= 0) {
      *stop = best;
      return (long)(p - bl);
    }
  }
  *stop = -1;
  *safe = n;
  for (size_t st = 0; st < n; st++) { /* the earliest start whose suffix is a stop prefix */
    int pre = 0;
    for (int k = 0; k < ns && !pre; k++) {
      size_t L = strlen(stops[k]);
      pre = n - st < L && !memcmp(t + st, stops[k], n - st);
    }
    if (pre) {
      *safe = st;
      break;
    }
  }
  return -1;
}

/* ---- every split of a text ---- */
typedef struct split_case {
  const char *what, *text;
  const char *stops[4];
  int nstops;
} split_case;

/* Pushes text in the pieces given by the bits of mask (bit i: a cut after byte i); compares each
 * step with the references. Returns 0 when all agree; prints the first difference. */
static int run_split(const vklm_tokenizer *tk, const split_case *c, uint32_t mask, int verbose) {
  size_t L = strlen(c->text);
  vklm_stream_options o = {c->stops, NULL, (uint32_t)c->nstops, 0};
  vklm_stream *s;
  if (vklm_stream_create(tk, &o, &s)) return 1;
  char out[256];
  size_t nout = 0, start = 0;
  int bad = 0, stop = -1;
  for (size_t i = 0; i < L && !bad && stop < 0; i++) {
    if (i + 1 < L && !(mask >> i & 1)) continue;
    vklm_stream_piece pc;
    int32_t id = id_of(tk, c->text + start, i + 1 - start);
    if (id < 0 || vklm_stream_push(s, id, &pc)) return 1;
    memcpy(out + nout, pc.text, pc.n), nout += pc.n;
    stop = pc.stop;
    /* the reference after text[0..i] */
    buf t = clean(c->text, i + 1, 0);
    int rs;
    size_t safe = 0;
    long at = ref_stop(t.p, t.n, c->stops, c->nstops, &rs, &safe);
    size_t want = at >= 0 ? (size_t)at : safe, tn;
    const char *txt = vklm_stream_text(s, &tn);
    bad = rs != stop || nout != want || memcmp(out, t.p, want) || tn != (at >= 0 ? want : t.n) ||
          memcmp(txt, t.p, tn);
    if (bad && verbose)
      printf("    %s, split mask %#x, after byte %zu: emitted %zu bytes (want %zu), stop %d "
             "(want %d), text %zu bytes (want %zu)\n", c->what, mask, i, nout, want, stop, rs, tn,
             at >= 0 ? want : t.n);
    free(t.p);
    start = i + 1;
  }
  if (!bad && stop < 0) { /* finish: everything, the held prefix and an incomplete character */
    vklm_stream_piece pc;
    vklm_stream_finish(s, &pc);
    memcpy(out + nout, pc.text, pc.n), nout += pc.n;
    buf t = clean(c->text, L, 1);
    int rs;
    size_t safe;
    long at = ref_stop(t.p, t.n, c->stops, c->nstops, &rs, &safe);
    size_t want = at >= 0 ? (size_t)at : t.n;
    bad = pc.stop != rs || nout != want || memcmp(out, t.p, want);
    if (bad && verbose)
      printf("    %s, split mask %#x, finish: emitted %zu bytes (want %zu), stop %d (want %d)\n",
             c->what, mask, nout, want, pc.stop, rs);
    free(t.p);
  }
  vklm_stream_destroy(s);
  return bad;
}

static const split_case SPLITS[] = {
    {"multi-byte characters, no stop", "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xE4\xB8\xAD" "b", {0}, 0},
    {"a stop spanning characters", "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xE4\xB8\xAD" "b",
     {"\xE2\x82\xAC\xF0\x9F\x98\x80", "\xE4\xB8\xAD"}, 2},
    {"a stop at the very start", "\xC3\xA9" "abcdef", {"\xC3\xA9" "a", "zz"}, 2},
    {"overlapping stops", "abababcab", {"ababc", "bab", "abc"}, 3},
    {"overlapping stops, the longest completes", "xabababcx", {"ababc", "abd", "babd"}, 3},
    {"several stops, the first to complete wins", "User: hi\n\nUser:", {"\n\nUser:", "hi\n\n"}, 2},
    {"a stop prefix that never completes", "hello wor", {"world", "lo!"}, 2},
    {"a stop made of the replacement character", "ab\xFF" "cd", {"\xEF\xBF\xBD" "c"}, 1},
    {"invalid UTF-8", "a\xC3(\x80\xFF" "b\xE2\x82" "c\xF0\x9F\x98", {0}, 0},
    {"invalid UTF-8 and a stop", "x\xE2\x82" "ab\xC3", {"b\xEF\xBF\xBD"}, 1},
};
#define NSPLITS (sizeof SPLITS / sizeof *SPLITS)

static void test_splits(const vklm_tokenizer *tk) {
  for (size_t c = 0; c < NSPLITS; c++) {
    size_t L = strlen(SPLITS[c].text);
    uint32_t nmask = 1u << (L - 1), bad = 0, first = 0;
    for (uint32_t m = 0; m < nmask; m++)
      if (run_split(tk, &SPLITS[c], m, !bad) && !bad++) first = m;
    check(bad == 0, "%s: %u splits of %zu bytes into tokens, %u differ from the reference%s",
          SPLITS[c].what, nmask, L, bad, bad ? " (first shown above)" : "");
    (void)first;
  }
}

static void test_specials(const vklm_tokenizer *tk) {
  int32_t ids[3] = {id_of(tk, "ab", 2), special_id, id_of(tk, "ba", 2)};
  const char *stops[] = {"<|eot"};
  for (int skip = 0; skip < 2; skip++) {
    vklm_stream_options o = {stops, NULL, 1, skip ? VKLM_STREAM_SKIP_SPECIALS : 0};
    vklm_stream *s;
    vklm_stream_create(tk, &o, &s);
    char out[64];
    size_t n = 0;
    int stop = -1;
    for (int i = 0; i < 3; i++) {
      vklm_stream_piece pc;
      vklm_stream_push(s, ids[i], &pc);
      memcpy(out + n, pc.text, pc.n), n += pc.n;
      if (pc.stop >= 0) stop = pc.stop;
    }
    vklm_stream_piece pc;
    vklm_stream_finish(s, &pc);
    memcpy(out + n, pc.text, pc.n), n += pc.n;
    const char *want = skip ? "abba" : "ab";
    check(n == strlen(want) && !memcmp(out, want, n) && stop == (skip ? -1 : 0),
          "special token %s: text '%.*s' (want '%s'), stop %d", skip ? "skipped" : "kept", (int)n,
          out, want, stop);
    vklm_stream_destroy(s);
  }
}

static uint64_t rng = 0x1234567;
static uint32_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)rng;
}

/* Random ids, no stops: emitted + held == the cleaned decode of the ids so far, every step. */
static void test_decode_equivalence(const vklm_tokenizer *tk) {
  size_t V = vklm_tokenizer_vocab_size(tk);
  int runs = 200, bad = 0, valid_runs = 0, valid_same = 0;
  size_t steps = 0;
  for (int r = 0; r < runs; r++) {
    vklm_stream *s;
    vklm_stream_create(tk, NULL, &s);
    int32_t ids[64];
    int n = 8 + rnd() % 56;
    /* half of the runs use only whole-character tokens around the split ones: valid UTF-8 */
    int ascii = r % 2;
    char out[4096];
    size_t nout = 0;
    for (int i = 0; i < n; i++) {
      ids[i] = ascii ? (int32_t)(32 + rnd() % 90) : (int32_t)(rnd() % V);
      if (ascii && i + 3 <= n && rnd() % 4 == 0) { /* a character split over three tokens */
        const char *parts[3] = {"\xE2\x82", "\xAC\xF0\x9F", "\x98\x80"};
        for (int k = 0; k < 3; k++, i++) ids[i] = id_of(tk, parts[k], strlen(parts[k]));
        i--;
      }
    }
    for (int i = 0; i < n && !bad; i++) {
      vklm_stream_piece pc;
      vklm_stream_push(s, ids[i], &pc);
      memcpy(out + nout, pc.text, pc.n), nout += pc.n;
      vklm_bytes d = {0};
      vklm_tokenizer_decode(tk, ids, (size_t)i + 1, 0, &d);
      buf c = clean(d.data, d.n, 0);
      size_t tn;
      const char *t = vklm_stream_text(s, &tn);
      if (tn != c.n || memcmp(t, c.p, tn) || nout != tn || memcmp(out, t, tn)) {
        if (!bad++) printf("    run %d step %d: text %zu bytes, emitted %zu, cleaned decode %zu\n",
                           r, i, tn, nout, c.n);
      }
      free(c.p), vklm_bytes_free(&d);
      steps++;
    }
    vklm_stream_piece pc;
    vklm_stream_finish(s, &pc);
    memcpy(out + nout, pc.text, pc.n), nout += pc.n;
    vklm_bytes d = {0};
    vklm_tokenizer_decode(tk, ids, (size_t)n, 0, &d);
    buf c = clean(d.data, d.n, 1);
    if (nout != c.n || memcmp(out, c.p, nout)) bad++;
    if (tk_utf8_valid(d.data, d.n)) valid_runs++, valid_same += nout == d.n && !memcmp(out, d.data, d.n);
    free(c.p), vklm_bytes_free(&d);
    vklm_stream_destroy(s);
  }
  check(bad == 0 && valid_runs > 0 && valid_same == valid_runs,
        "decode equivalence: %d runs, %zu pushes, %d differences from the cleaned decode; %d of "
        "%d runs with valid UTF-8 equal vklm_tokenizer_decode byte for byte", runs, steps, bad,
        valid_same, valid_runs);
}

static void test_errors(const vklm_tokenizer *tk) {
  vklm_stream *s = NULL;
  const char *empty[] = {""}, *bad[] = {"a\x80"}, *trunc[] = {"\xE2\x82"};
  vklm_status e1 = vklm_stream_create(tk, &(vklm_stream_options){empty, NULL, 1, 0}, &s);
  vklm_status e2 = vklm_stream_create(tk, &(vklm_stream_options){bad, NULL, 1, 0}, &s);
  vklm_status e3 = vklm_stream_create(tk, &(vklm_stream_options){trunc, NULL, 1, 0}, &s);
  vklm_stream_create(tk, NULL, &s);
  vklm_stream_piece pc;
  vklm_status e4 = vklm_stream_push(s, -1, &pc);
  vklm_status e5 = vklm_stream_push(s, (int32_t)vklm_tokenizer_vocab_size(tk), &pc);
  vklm_stream_push(s, 'x', &pc);
  size_t n;
  vklm_stream_text(s, &n);
  check(e1 == VKLM_ERROR_INVALID && e2 == VKLM_ERROR_INVALID && e3 == VKLM_ERROR_INVALID &&
            e4 == VKLM_ERROR_INVALID && e5 == VKLM_ERROR_INVALID && n == 1 && pc.n == 1,
        "errors: empty stop %s, invalid stop %s, truncated stop %s, id -1 %s, id V %s; the "
        "stream goes on (%zu byte)", vklm_status_name(e1), vklm_status_name(e2),
        vklm_status_name(e3), vklm_status_name(e4), vklm_status_name(e5), n);
  /* after a stop, pushes do nothing; reset starts over */
  const char *st[] = {"x"};
  vklm_stream_destroy(s);
  vklm_stream_create(tk, &(vklm_stream_options){st, NULL, 1, 0}, &s);
  vklm_stream_push(s, 'a', &pc);
  vklm_stream_push(s, 'x', &pc);
  int stop = pc.stop;
  vklm_stream_push(s, 'b', &pc);
  size_t after = pc.n;
  vklm_stream_reset(s);
  vklm_stream_push(s, 'b', &pc);
  check(stop == 0 && after == 0 && pc.n == 1 && vklm_stream_stopped(s) == -1,
        "after a stop a push adds nothing (%zu bytes); reset starts a new sequence", after);
  vklm_stream_destroy(s);
}

/* The cost of a push does not grow with the text: time per quarter of a long run. */
static void test_linear(const vklm_tokenizer *tk) {
  const char *stops[] = {"abababababababababababababababababababx", "bbbb", "\n\nUser:x"};
  vklm_stream *s;
  vklm_stream_create(tk, &(vklm_stream_options){stops, NULL, 3, 0}, &s);
  int32_t ab = id_of(tk, "ab", 2), nl = id_of(tk, "\n\n", 2), us = id_of(tk, "User:", 5);
  uint32_t N = 2000000;
  double q[4];
  size_t emitted = 0;
  for (int k = 0; k < 4; k++) {
    double t0 = now_ms();
    for (uint32_t i = 0; i < N / 4; i++) {
      vklm_stream_piece pc;
      uint32_t r = i % 40;
      vklm_stream_push(s, r == 38 ? nl : r == 39 ? us : ab, &pc);
      emitted += pc.n;
    }
    q[k] = now_ms() - t0;
  }
  size_t n;
  vklm_stream_text(s, &n);
  double worst = q[1] > q[2] ? q[1] : q[2];
  worst = worst > q[3] ? worst : q[3];
  check(vklm_stream_stopped(s) < 0 && worst < 3 * q[0] + 20 && n - emitted < 64,
        "linear cost: %u pushes (%zu bytes, %zu held), quarters %.1f %.1f %.1f %.1f ms (a "
        "quadratic scan would make the last quarter 7x the first)", N, n,
        n - emitted, q[0], q[1], q[2], q[3]);
  vklm_stream_destroy(s);
}

int main(void) {
  const char *texts[NSPLITS];
  for (size_t c = 0; c < NSPLITS; c++) texts[c] = SPLITS[c].text;
  vklm_tokenizer *tk = make_tokenizer(texts, NSPLITS);
  if (!tk) return 1;
  printf("test_stream: tokenizer of %zu ids\n", vklm_tokenizer_vocab_size(tk));
  test_splits(tk);
  test_specials(tk);
  test_decode_equivalence(tk);
  test_errors(tk);
  test_linear(tk);
  vklm_tokenizer_destroy(tk);
  printf("test_stream: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}

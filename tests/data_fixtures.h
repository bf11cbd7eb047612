/* Fixtures of tests/test_data.c: the check counter, deterministic documents (prose that passes
 * every filter, random-word texts for near-dedup), and temp-file helpers. Included by that one
 * test program only, so everything here is static. */
#ifndef VKLM_TESTS_DATA_FIXTURES_H
#define VKLM_TESTS_DATA_FIXTURES_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data/buf.h"

#include "check_util.h"

/* ---- deterministic text generation ------------------------------------------------------ */

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static const char *const vocab[] = {
    "the",      "of",       "and",      "to",        "with",     "that",     "have",    "be",
    "river",    "mountain", "village",  "people",    "history",  "ancient",  "market",  "winter",
    "summer",   "garden",   "library",  "music",     "language", "science",  "bridge",  "harbor",
    "forest",   "morning",  "evening",  "travelers", "students", "farmers",  "stories", "pictures",
    "records",  "journey",  "festival", "kitchen",   "painting", "weather",  "station", "windows",
    "building", "letters",  "numbers",  "children",  "teacher",  "museum",   "valley",  "islands",
    "coffee",   "bakery",   "sailors",  "engines",   "maps",     "lanterns", "orchard", "meadow",
    "castle",   "chapel",   "tower",    "street",    "square",   "fountain"};
#define NVOCAB (sizeof vocab / sizeof *vocab)

/* A document that passes every filter with its defaults: paragraphs of sentences of common
 * words, each paragraph one line ending in a period. */
static void good_doc(vklm_buf *b, int paragraphs) {
  vklm_buf_clear(b);
  for (int p = 0; p < paragraphs; p++) {
    if (p) vklm_buf_append(b, "\n\n", 2);
    int sentences = 3 + (int)(rnd() % 3);
    for (int s = 0; s < sentences; s++) {
      int words = 9 + (int)(rnd() % 7);
      for (int w = 0; w < words; w++) {
        const char *x = w % 4 == 1 ? vocab[rnd() % 8] : vocab[8 + rnd() % (NVOCAB - 8)];
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%s%s", w ? " " : (s ? " " : ""), x);
        if (!w) tmp[s ? 1 : 0] = (char)(tmp[s ? 1 : 0] - 32);
        vklm_buf_append(b, tmp, strlen(tmp));
      }
      vklm_buf_putc(b, '.');
    }
  }
}

/* Random "words" from a large synthetic vocabulary, for near-duplicate tests. */
static void random_words(uint32_t *w, int n) {
  for (int i = 0; i < n; i++)
    w[i] = (uint32_t)(rnd() % 20000);
}

static void words_text(vklm_buf *b, const uint32_t *w, int n) {
  vklm_buf_clear(b);
  for (int i = 0; i < n; i++) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%sw%u", i ? " " : "", w[i]);
    vklm_buf_append(b, tmp, strlen(tmp));
  }
}

static int streq(const vklm_buf *b, const char *s) {
  return b->n == strlen(s) && !memcmp(b->p ? b->p : "", s, b->n);
}

static void rep(vklm_buf *b, const char *s, int n) {
  for (int i = 0; i < n; i++) {
    if (b->n) vklm_buf_putc(b, ' ');
    vklm_buf_append(b, s, strlen(s));
  }
}

/* ---- files --------------------------------------------------------------------------------- */

static char tmpdir[256];

static void write_file(const char *name, const void *data, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(data, 1, n, f);
    fclose(f);
  }
}

static void write_gz(const char *name, const char *data) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  gzFile g = gzopen(path, "wb");
  if (g) {
    gzwrite(g, data, (unsigned)strlen(data));
    gzclose(g);
  }
}

static long count_lines(const char *path) {
  FILE *f = fopen(path, "rb");
  long n = 0;
  int c;
  if (!f) return -1;
  while ((c = fgetc(f)) != EOF)
    n += c == '\n';
  fclose(f);
  return n;
}

static void jsonl_line(vklm_buf *out, const vklm_buf *text) {
  vklm_buf_append(out, "{\"text\": \"", 10);
  for (size_t i = 0; i < text->n; i++) {
    char c = text->p[i];
    if (c == '\n')
      vklm_buf_append(out, "\\n", 2);
    else if (c == '"' || c == '\\')
      vklm_buf_putc(out, '\\'), vklm_buf_putc(out, c);
    else
      vklm_buf_putc(out, c);
  }
  vklm_buf_append(out, "\", \"id\": 1}\n", 12);
}

#endif

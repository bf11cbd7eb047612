/* Word splitting, character classes and hashes shared by the filters and the dedup steps. */
#include <string.h>
#include <utf8proc.h>

#include "data/steps.h"

static const char *const drop_names[VKLM_DROP_COUNT] = {
    [VKLM_DROP_NONE] = "kept",
    [VKLM_DROP_EMPTY] = "empty",
    [VKLM_DROP_GOPHER_SHORT] = "gopher_short_doc",
    [VKLM_DROP_GOPHER_LONG] = "gopher_long_doc",
    [VKLM_DROP_GOPHER_WORDLEN_LOW] = "gopher_below_avg_word_length",
    [VKLM_DROP_GOPHER_WORDLEN_HIGH] = "gopher_above_avg_word_length",
    [VKLM_DROP_GOPHER_HASHES] = "gopher_too_many_hashes",
    [VKLM_DROP_GOPHER_ELLIPSES] = "gopher_too_many_ellipsis",
    [VKLM_DROP_GOPHER_BULLETS] = "gopher_too_many_bullets",
    [VKLM_DROP_GOPHER_END_ELLIPSIS] = "gopher_too_many_end_ellipsis",
    [VKLM_DROP_GOPHER_ALPHA] = "gopher_below_alpha_threshold",
    [VKLM_DROP_GOPHER_STOP_WORDS] = "gopher_not_enough_stop_words",
    [VKLM_DROP_REP_DUP_PARA] = "rep_dup_para_frac",
    [VKLM_DROP_REP_DUP_PARA_CHAR] = "rep_dup_para_char_frac",
    [VKLM_DROP_REP_DUP_LINE] = "rep_dup_line_frac",
    [VKLM_DROP_REP_DUP_LINE_CHAR] = "rep_dup_line_char_frac",
    [VKLM_DROP_REP_TOP_2GRAM] = "rep_top_2_gram",
    [VKLM_DROP_REP_TOP_3GRAM] = "rep_top_3_gram",
    [VKLM_DROP_REP_TOP_4GRAM] = "rep_top_4_gram",
    [VKLM_DROP_REP_DUP_5GRAM] = "rep_duplicated_5_n_grams",
    [VKLM_DROP_REP_DUP_6GRAM] = "rep_duplicated_6_n_grams",
    [VKLM_DROP_REP_DUP_7GRAM] = "rep_duplicated_7_n_grams",
    [VKLM_DROP_REP_DUP_8GRAM] = "rep_duplicated_8_n_grams",
    [VKLM_DROP_REP_DUP_9GRAM] = "rep_duplicated_9_n_grams",
    [VKLM_DROP_REP_DUP_10GRAM] = "rep_duplicated_10_n_grams",
    [VKLM_DROP_C4_LOREM_IPSUM] = "c4_lorem_ipsum",
    [VKLM_DROP_C4_CURLY_BRACKET] = "c4_curly_bracket",
    [VKLM_DROP_C4_FEW_SENTENCES] = "c4_too_few_sentences",
    [VKLM_DROP_FW_LINE_PUNCT] = "fineweb_line_punct_ratio",
    [VKLM_DROP_FW_SHORT_LINES] = "fineweb_short_line_ratio",
    [VKLM_DROP_FW_CHAR_DUP] = "fineweb_char_dup_ratio",
    [VKLM_DROP_FW_LIST] = "fineweb_list_ratio",
    [VKLM_DROP_EXACT_DUP] = "exact_duplicate",
    [VKLM_DROP_NEAR_DUP] = "near_duplicate",
    [VKLM_DROP_LANG] = "language_not_wanted",
    [VKLM_DROP_LANG_SCORE] = "language_score_low",
    [VKLM_DROP_BLOCK_WORDS] = "block_list_words",
    [VKLM_DROP_BLOCK_URL] = "block_list_url",
    [VKLM_DROP_CLASSIFIER] = "classifier",
};

const char *vklm_drop_name(vklm_drop d) {
  return (unsigned)d < VKLM_DROP_COUNT ? drop_names[d] : "unknown";
}

static int is_space(unsigned char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int is_punct(unsigned char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
         (c >= '{' && c <= '~');
}

int vklm_words_is_punct(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_punct((unsigned char)s[i])) return 0;
  return n > 0;
}

int vklm_words_has_alpha(const char *s, size_t n) {
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      if ((c | 32) >= 'a' && (c | 32) <= 'z') return 1;
      i++;
      continue;
    }
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0) {
      i++;
      continue;
    }
    utf8proc_category_t cat = utf8proc_category(cp);
    if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) return 1;
    i += (size_t)k;
  }
  return 0;
}

size_t vklm_words_codepoints(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += ((unsigned char)s[i] & 0xC0) != 0x80;
  return c;
}

static int push(vklm_span **out, size_t *cap, size_t *k, size_t off, size_t len) {
  if (*k == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    vklm_span *p = realloc(*out, nc * sizeof *p);
    if (!p) return -1;
    *out = p;
    *cap = nc;
  }
  (*out)[*k].off = (uint32_t)off;
  (*out)[*k].len = (uint32_t)len;
  (*k)++;
  return 0;
}

long vklm_words_split(const char *s, size_t n, vklm_span **out, size_t *cap) {
  size_t k = 0, i = 0;
  if (n > UINT32_MAX)
    n = UINT32_MAX; /* offsets are 32-bit; longer texts are cut (never happens
                       below the prepare step's document size limit) */
  while (i < n) {
    while (i < n && is_space((unsigned char)s[i]))
      i++;
    size_t b = i;
    while (i < n && !is_space((unsigned char)s[i]))
      i++;
    size_t e = i;
    if (b == e) break;
    size_t lb = b, te = e;
    while (lb < e && is_punct((unsigned char)s[lb]))
      lb++;
    if (lb == e) { /* all punctuation: one token ("...", "--") */
      if (push(out, cap, &k, b, e - b)) return -1;
      continue;
    }
    while (te > lb && is_punct((unsigned char)s[te - 1]))
      te--;
    for (size_t j = b; j < lb; j++)
      if (push(out, cap, &k, j, 1)) return -1;
    if (push(out, cap, &k, lb, te - lb)) return -1;
    for (size_t j = te; j < e; j++)
      if (push(out, cap, &k, j, 1)) return -1;
  }
  return (long)k;
}

/* ---- hashing: 8 bytes at a time, multiply-xorshift mixing --------------------------------- */

static inline uint64_t rd64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v; /* little-endian hosts only give the same values across machines; all targets are */
}

static inline uint64_t mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ULL;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ULL;
  h ^= h >> 32;
  return h;
}

uint64_t vklm_hash64(const void *data, size_t n, uint64_t seed) {
  const unsigned char *p = data;
  uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    h = (h ^ rd64(p + i)) * 0xff51afd7ed558ccdULL + 0x2545f4914f6cdd1dULL;
    h ^= h >> 29;
  }
  uint64_t t = 0;
  for (size_t j = 0; i + j < n; j++)
    t |= (uint64_t)p[i + j] << (8 * j);
  h ^= t;
  return mix(h);
}

void vklm_hash128(const void *p, size_t n, uint64_t out[2]) {
  out[0] = vklm_hash64(p, n, 0x243f6a8885a308d3ULL);
  out[1] = vklm_hash64(p, n, 0x13198a2e03707344ULL);
}

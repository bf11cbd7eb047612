/* FineWeb's own quality rules (Penedo et al. 2024, section 3.3), with the defaults of datatrove's
 * FineWebQualityFilter: share of non-empty lines ending in terminal punctuation >= 0.12, share of
 * lines of <= 30 characters <= 0.67, characters in repeated lines <= 0.01 of all non-newline
 * characters, newlines per word <= 0.3. */
#include <string.h>

#include "data/steps.h"

void vklm_fineweb_default(vklm_fineweb_opts *o) {
  *o = (vklm_fineweb_opts){.enabled = 1,
                           .line_punct_thr = 0.12,
                           .short_line_thr = 0.67,
                           .short_line_length = 30,
                           .char_dup_ratio = 0.01,
                           .new_line_ratio = 0.3};
}

/* Terminal punctuation, a subset of datatrove's TERMINAL_PUNCTUATION covering the common
 * scripts: ASCII . ! ? " ' plus these UTF-8 encoded marks. */
static const char *const terminal[] = {"\xE2\x80\xA6" /* … */,
                                       "\xE2\x80\x9D" /* ” */,
                                       "\xE2\x80\x99" /* ’ */,
                                       "\xE3\x80\x82" /* 。 */,
                                       "\xEF\xBC\x81" /* ！ */,
                                       "\xEF\xBC\x9F" /* ？ */,
                                       "\xEF\xBC\x8E" /* ． */,
                                       "\xD8\x9F" /* ؟ */,
                                       "\xDB\x94" /* ۔ */,
                                       "\xE0\xA5\xA4" /* । */,
                                       "\xE0\xA5\xA5" /* ॥ */,
                                       "\xE1\x8D\xA2" /* ። */,
                                       "\xE2\x80\xBC" /* ‼ */,
                                       "\xE2\x80\xBD" /* ‽ */,
                                       "\xE2\x81\x87" /* ⁇ */,
                                       "\xE2\x81\x88" /* ⁈ */,
                                       "\xE2\x81\x89" /* ⁉ */,
                                       "\xC2\xBB" /* » */,
                                       NULL};

static int ends_terminal(const char *l, size_t n) {
  if (!n) return 0;
  char c = l[n - 1];
  if (c == '.' || c == '!' || c == '?' || c == '"' || c == '\'') return 1;
  for (int i = 0; terminal[i]; i++) {
    size_t m = strlen(terminal[i]);
    if (n >= m && !memcmp(l + n - m, terminal[i], m)) return 1;
  }
  return 0;
}

static int blank(const char *l, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (l[i] != ' ' && l[i] != '\t' && l[i] != '\r') return 0;
  return 1;
}

typedef struct lset {
  uint64_t *k;
  size_t mask;
} lset;

vklm_drop vklm_fineweb_filter(const vklm_fineweb_opts *o, const char *s, size_t n) {
  long lines = 0, punct = 0, shorts = 0, newlines = 0;
  double dup_chars = 0, chars = 0;
  size_t est = 2;
  for (size_t i = 0; i < n; i++)
    est += s[i] == '\n';
  lset set;
  size_t cap = 16;
  while (cap < est * 2)
    cap *= 2;
  set.k = calloc(cap, sizeof *set.k);
  set.mask = cap - 1;
  if (!set.k) return VKLM_DROP_EMPTY;
  for (size_t i = 0; i < n;) {
    const char *e = memchr(s + i, '\n', n - i);
    size_t len = e ? (size_t)(e - (s + i)) : n - i;
    const char *l = s + i;
    if (e) newlines++;
    i += len + 1;
    size_t cp = vklm_words_codepoints(l, len);
    chars += (double)cp;
    if (blank(l, len)) continue;
    lines++;
    punct += ends_terminal(l, len);
    shorts += (long)cp <= o->short_line_length;
    uint64_t h = vklm_hash64(l, len, 11) | 1; /* 0 marks an empty slot */
    size_t j = (size_t)h & set.mask;
    while (set.k[j] && set.k[j] != h)
      j = (j + 1) & set.mask;
    if (set.k[j])
      dup_chars += (double)cp;
    else
      set.k[j] = h;
  }
  free(set.k);
  if (!lines) return VKLM_DROP_EMPTY;
  if (o->line_punct_thr > 0 && (double)punct / lines < o->line_punct_thr)
    return VKLM_DROP_FW_LINE_PUNCT;
  if (o->short_line_thr > 0 && (double)shorts / lines > o->short_line_thr)
    return VKLM_DROP_FW_SHORT_LINES;
  if (o->char_dup_ratio > 0 && chars > 0 && dup_chars / chars > o->char_dup_ratio)
    return VKLM_DROP_FW_CHAR_DUP;
  if (o->new_line_ratio > 0) {
    vklm_span *w = NULL;
    size_t wc = 0;
    long nt = vklm_words_split(s, n, &w, &wc), nw = 0;
    for (long k = 0; k < nt; k++)
      nw += !vklm_words_is_punct(s + w[k].off, w[k].len);
    free(w);
    if (nt < 0) return VKLM_DROP_EMPTY;
    if (nw == 0 || (double)newlines / nw > o->new_line_ratio) return VKLM_DROP_FW_LIST;
  }
  return VKLM_DROP_NONE;
}

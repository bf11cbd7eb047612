/* Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models", Table A1),
 * with the defaults and the exact arithmetic of datatrove's GopherQualityFilter and
 * GopherRepetitionFilter. Lengths are counted in code points, as Python's len() does. Repeated
 * strings are compared by 64-bit hash (a collision can only make a text look more repetitive,
 * with odds of about n^2 / 2^64). */
#include <string.h>

#include "data/steps.h"

void vklm_gopher_quality_default(vklm_gopher_quality_opts *o) {
  *o = (vklm_gopher_quality_opts){.enabled = 1,
                                  .min_words = 50,
                                  .max_words = 100000,
                                  .min_mean_word_len = 3,
                                  .max_mean_word_len = 10,
                                  .max_symbol_ratio = 0.1,
                                  .max_bullet_lines = 0.9,
                                  .max_ellipsis_lines = 0.3,
                                  .min_alpha_words = 0.8,
                                  .min_stop_words = 2};
}

void vklm_gopher_rep_default(vklm_gopher_rep_opts *o) {
  *o = (vklm_gopher_rep_opts){.enabled = 1,
                              .dup_line_frac = 0.3,
                              .dup_para_frac = 0.3,
                              .dup_line_char_frac = 0.2,
                              .dup_para_char_frac = 0.2,
                              .top_ngram = {0.20, 0.18, 0.16},
                              .dup_ngram = {0.15, 0.14, 0.13, 0.12, 0.11, 0.10}};
}

static size_t count_sub(const char *s, size_t n, const char *pat) {
  size_t m = strlen(pat), c = 0;
  for (size_t i = 0; i + m <= n;) {
    const char *f = memmem(s + i, n - i, pat, m);
    if (!f) break;
    c++;
    i = (size_t)(f - s) + m;
  }
  return c;
}

static int is_stop(const char *const *stop, const char *w, size_t n) {
  if (!stop || n > 16) return 0;
  for (; *stop; stop++)
    if (!strncmp(*stop, w, n) && (*stop)[n] == 0) return 1;
  return 0;
}

static int starts_with(const char *s, size_t n, const char *p) {
  size_t m = strlen(p);
  return n >= m && !memcmp(s, p, m);
}

static int ends_with(const char *s, size_t n, const char *p) {
  size_t m = strlen(p);
  return n >= m && !memcmp(s + n - m, p, m);
}

vklm_drop vklm_gopher_quality(const vklm_gopher_quality_opts *o, const char *s, size_t n) {
  return vklm_gopher_quality_lang(o, NULL, s, n);
}

vklm_drop vklm_gopher_quality_lang(const vklm_gopher_quality_opts *o, const char *lang,
                                   const char *s, size_t n) {
  const vklm_lang_rules *lr = vklm_lang_rules_get(lang);
  int en = !lang || !strcmp(lang, "en"), unspaced = lr && lr->unspaced;
  const char *const *stop = lr ? lr->stop_words : NULL;
  double min_len = o->min_mean_word_len, max_len = o->max_mean_word_len;
  if (!en && lr && !unspaced) { /* the language's bounds, unless the rule is off */
    if (min_len > 0) min_len = lr->min_mean_word_len;
    if (max_len > 0) max_len = lr->max_mean_word_len;
  }
  vklm_span *w = NULL;
  size_t cap = 0;
  long nt = vklm_words_split(s, n, &w, &cap);
  vklm_drop d = VKLM_DROP_NONE;
  if (nt < 0) {
    free(w);
    return VKLM_DROP_EMPTY;
  }
  long nw = 0, alpha = 0, stops = 0;
  double chars = 0;
  for (long i = 0; i < nt; i++) {
    const char *t = s + w[i].off;
    if (!vklm_words_is_punct(t, w[i].len)) {
      nw++;
      chars += (double)vklm_words_codepoints(t, w[i].len);
    }
    alpha += vklm_words_has_alpha(t, w[i].len);
    stops += is_stop(stop, t, w[i].len);
  }
  free(w);
  if (nw == 0) return VKLM_DROP_GOPHER_SHORT;
  if (!unspaced) {
    if (nw < o->min_words) return VKLM_DROP_GOPHER_SHORT;
    if (o->max_words > 0 && nw > o->max_words) return VKLM_DROP_GOPHER_LONG;
    double mean = chars / (double)nw;
    if (min_len > 0 && mean < min_len) return VKLM_DROP_GOPHER_WORDLEN_LOW;
    if (max_len > 0 && mean > max_len) return VKLM_DROP_GOPHER_WORDLEN_HIGH;
  }
  if (o->max_symbol_ratio > 0) {
    if ((double)count_sub(s, n, "#") / (double)nw > o->max_symbol_ratio)
      return VKLM_DROP_GOPHER_HASHES;
    double ell = (double)(count_sub(s, n, "...") + count_sub(s, n, "\xE2\x80\xA6"));
    if (ell / (double)nw > o->max_symbol_ratio) return VKLM_DROP_GOPHER_ELLIPSES;
  }
  /* lines as Python's splitlines(): the text is "\n"-separated after the clean step */
  long lines = 0, bullets = 0, ellipsis = 0;
  for (size_t i = 0; i < n;) {
    const char *e = memchr(s + i, '\n', n - i);
    size_t len = e ? (size_t)(e - (s + i)) : n - i;
    const char *l = s + i;
    size_t a = 0, b = len;
    while (a < len && (l[a] == ' ' || l[a] == '\t'))
      a++;
    while (b > a && (l[b - 1] == ' ' || l[b - 1] == '\t'))
      b--;
    lines++;
    bullets += starts_with(l + a, b - a, "\xE2\x80\xA2") || starts_with(l + a, b - a, "-");
    ellipsis += ends_with(l + a, b - a, "...") || ends_with(l + a, b - a, "\xE2\x80\xA6");
    i += len + 1;
  }
  if (lines && o->max_bullet_lines > 0 && (double)bullets / lines > o->max_bullet_lines)
    return VKLM_DROP_GOPHER_BULLETS;
  if (lines && o->max_ellipsis_lines > 0 && (double)ellipsis / lines > o->max_ellipsis_lines)
    return VKLM_DROP_GOPHER_END_ELLIPSIS;
  if (o->min_alpha_words > 0 && (double)alpha / (double)nw < o->min_alpha_words)
    return VKLM_DROP_GOPHER_ALPHA;
  if (stop && !unspaced && o->min_stop_words > 0 && stops < o->min_stop_words)
    return VKLM_DROP_GOPHER_STOP_WORDS;
  return d;
}

/* ---- repetition ------------------------------------------------------------------------- */

/* Open-addressing map from 64-bit hash to count; sized for a known number of insertions. */
typedef struct hmap {
  uint64_t *key;
  uint32_t *cnt;
  size_t mask;
} hmap;

static int hmap_init(hmap *m, size_t items) {
  size_t cap = 16;
  while (cap < items * 2)
    cap *= 2;
  m->key = calloc(cap, sizeof *m->key);
  m->cnt = calloc(cap, sizeof *m->cnt);
  m->mask = cap - 1;
  return m->key && m->cnt ? 0 : -1;
}

static void hmap_free(hmap *m) {
  free(m->key);
  free(m->cnt);
}

/* Adds one to key's count and returns the new count. */
static uint32_t hmap_add(hmap *m, uint64_t k) {
  size_t i = (size_t)k & m->mask;
  while (m->cnt[i] && m->key[i] != k)
    i = (i + 1) & m->mask;
  m->key[i] = k;
  return ++m->cnt[i];
}

static uint32_t hmap_get(const hmap *m, uint64_t k) {
  size_t i = (size_t)k & m->mask;
  while (m->cnt[i] && m->key[i] != k)
    i = (i + 1) & m->mask;
  return m->cnt[i];
}

/* Splits s into pieces at runs of >= min_nl newlines (after stripping the text), counts pieces
 * that repeat an earlier one and their characters. Returns the piece count, -1 on no memory. */
static long find_dups(const char *s, size_t n, int min_nl, long *dups, double *dup_chars) {
  size_t a = 0, b = n;
  while (a < b && (s[a] == ' ' || s[a] == '\n'))
    a++;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\n'))
    b--;
  long pieces = 0;
  size_t est = 1;
  for (size_t i = a; i < b; i++)
    est += s[i] == '\n';
  hmap m;
  if (hmap_init(&m, est)) {
    hmap_free(&m);
    return -1;
  }
  *dups = 0;
  *dup_chars = 0;
  size_t i = a;
  while (i <= b) {
    size_t e = i;
    for (;;) { /* find the next separator: a run of >= min_nl newlines */
      const char *f = e < b ? memchr(s + e, '\n', b - e) : NULL;
      if (!f) {
        e = b;
        break;
      }
      size_t k = (size_t)(f - s), r = k;
      while (r < b && s[r] == '\n')
        r++;
      if (r - k >= (size_t)min_nl) {
        e = k;
        break;
      }
      e = r;
    }
    pieces++;
    if (hmap_add(&m, vklm_hash64(s + i, e - i, 7)) > 1) {
      (*dups)++;
      *dup_chars += (double)vklm_words_codepoints(s + i, e - i);
    }
    if (e >= b) break;
    i = e;
    while (i < b && s[i] == '\n')
      i++;
  }
  hmap_free(&m);
  return pieces;
}

/* Extends the n-gram hashes h[i] (tokens [i, i+n)) and char counts c[i] to n+1 tokens, in place:
 * the n-gram at i gains token i+n. Entries past the last (n+1)-gram are left stale. */
static void ngram_extend(uint64_t *h, double *c, const uint64_t *th, const double *tc, long nt,
                         int n) {
  for (long i = 0; i + n < nt; i++) {
    uint64_t x = (h[i] ^ th[i + n]) * 0xff51afd7ed558ccdULL;
    h[i] = x ^ (x >> 31);
    c[i] += tc[i + n] + 1; /* joined by one space */
  }
}

vklm_drop vklm_gopher_repetition(const vklm_gopher_rep_opts *o, const char *s, size_t n) {
  double len = (double)vklm_words_codepoints(s, n);
  if (len == 0) return VKLM_DROP_EMPTY;
  long dups;
  double dchars;
  long np = find_dups(s, n, 2, &dups, &dchars);
  if (np < 0) return VKLM_DROP_EMPTY;
  if (o->dup_para_frac > 0 && np && (double)dups / np > o->dup_para_frac)
    return VKLM_DROP_REP_DUP_PARA;
  if (o->dup_para_char_frac > 0 && dchars / len > o->dup_para_char_frac)
    return VKLM_DROP_REP_DUP_PARA_CHAR;
  long nl = find_dups(s, n, 1, &dups, &dchars);
  if (nl < 0) return VKLM_DROP_EMPTY;
  if (o->dup_line_frac > 0 && nl && (double)dups / nl > o->dup_line_frac)
    return VKLM_DROP_REP_DUP_LINE;
  if (o->dup_line_char_frac > 0 && dchars / len > o->dup_line_char_frac)
    return VKLM_DROP_REP_DUP_LINE_CHAR;

  vklm_span *w = NULL;
  size_t cap = 0;
  long nt = vklm_words_split(s, n, &w, &cap);
  uint64_t *th = nt > 0 ? malloc((size_t)nt * sizeof *th) : NULL;
  double *tc = nt > 0 ? malloc((size_t)nt * sizeof *tc) : NULL;
  uint64_t *gh = nt > 0 ? malloc((size_t)nt * sizeof *gh) : NULL;
  double *gc = nt > 0 ? malloc((size_t)nt * sizeof *gc) : NULL;
  hmap m = {0};
  vklm_drop d = VKLM_DROP_NONE;
  if (nt <= 0) goto done;
  if (!th || !tc || !gh || !gc || hmap_init(&m, (size_t)nt)) {
    d = VKLM_DROP_EMPTY;
    goto done;
  }
  for (long i = 0; i < nt; i++) {
    th[i] = vklm_hash64(s + w[i].off, w[i].len, 3);
    tc[i] = (double)vklm_words_codepoints(s + w[i].off, w[i].len);
    gh[i] = th[i];
    gc[i] = tc[i];
  }
  for (int ng = 2; ng <= 10 && d == VKLM_DROP_NONE && nt >= ng; ng++) {
    ngram_extend(gh, gc, th, tc, nt, ng - 1); /* gh, gc now hold ng-grams */
    double frac = ng <= 4 ? o->top_ngram[ng - 2] : o->dup_ngram[ng - 5];
    if (frac <= 0) continue;
    memset(m.cnt, 0, (m.mask + 1) * sizeof *m.cnt);
    long count = nt - ng + 1;
    if (ng <= 4) { /* top n-gram, n = 2, 3, 4 */
      uint32_t best = 0;
      for (long i = 0; i < count; i++) {
        uint32_t c = hmap_add(&m, gh[i]);
        if (c > best) best = c;
      }
      double top = 0; /* the first n-gram reaching the top count, as Counter.most_common does */
      for (long i = 0; i < count; i++)
        if (hmap_get(&m, gh[i]) == best) {
          top = gc[i] * best;
          break;
        }
      if (top / len > frac) d = (vklm_drop)(VKLM_DROP_REP_TOP_2GRAM + ng - 2);
    } else { /* duplicated n-grams, n = 5..10: a repeat skips its n tokens */
      double rep = 0;
      for (long i = 0; i < count;) {
        if (hmap_add(&m, gh[i]) > 1) {
          rep += gc[i];
          i += ng;
        } else
          i++;
      }
      if (rep / len > frac) d = (vklm_drop)(VKLM_DROP_REP_DUP_5GRAM + ng - 5);
      /* no repeated n-gram: no longer one repeats either (it would contain a repeated n-gram) */
      if (rep == 0) break;
    }
  }
done:
  hmap_free(&m);
  free(th);
  free(tc);
  free(gh);
  free(gc);
  free(w);
  return d;
}

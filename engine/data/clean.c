/* The clean step: UTF-8 repair (U+FFFD for invalid sequences, NULs removed), Unicode NFC through
 * utf8proc, whitespace clean-up. Each function appends its result to an empty out buffer. */
#include <utf8proc.h>

#include "data/steps.h"

static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

/* Length of the valid sequence at p (1..4), or 0 when it is invalid; *sub gets the length of
 * the maximal valid prefix (at least 1) so the caller skips exactly that much. */
static size_t seq_len(const unsigned char *p, size_t n, size_t *sub) {
  unsigned char c = p[0];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  *sub = 1;
  if (c >= 0xC2 && c <= 0xDF)
    need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90; /* no overlongs */
    if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
  } else
    return 0;
  for (size_t k = 1; k <= need; k++) {
    if (k >= n) return 0;
    unsigned char d = p[k];
    if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return 0;
    *sub = k + 1;
  }
  return need + 1;
}

int vklm_clean_utf8(const char *s, size_t n, vklm_buf *out, vklm_clean_counts *c) {
  const unsigned char *p = (const unsigned char *)s;
  if (vklm_buf_reserve(out, n + 16)) return -1;
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && p[run] < 0x80 && p[run])
      run++;
    if (run > i && vklm_buf_append(out, s + i, run - i)) return -1;
    i = run;
    if (i >= n) break;
    if (p[i] == 0) {
      c->nul_bytes++;
      i++;
      continue;
    }
    size_t sub, k = seq_len(p + i, n - i, &sub);
    if (k) {
      if (vklm_buf_append(out, s + i, k)) return -1;
      i += k;
    } else {
      c->invalid_sequences++;
      if (vklm_buf_append(out, repl, 3)) return -1;
      i += sub;
    }
  }
  return 0;
}

int vklm_clean_nfc(const char *s, size_t n, vklm_buf *out) {
  size_t i = 0;
  while (i < n && (unsigned char)s[i] < 0x80)
    i++;
  if (i == n) return vklm_buf_append(out, s, n);
  utf8proc_uint8_t *res = NULL;
  utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res,
                                    UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (r < 0) { /* only on invalid input or no memory: keep the text as it is */
    free(res);
    return vklm_buf_append(out, s, n);
  }
  int rc = vklm_buf_append(out, (const char *)res, (size_t)r);
  free(res);
  return rc;
}

enum { WS_KEEP, WS_SPACE, WS_NEWLINE, WS_DROP };

static int classify(utf8proc_int32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\v' || cp == '\f') return WS_SPACE;
  if (cp == '\n' || cp == 0x85 || cp == 0x2028 || cp == 0x2029) return WS_NEWLINE;
  if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) return WS_DROP;
  if (cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
      cp == 0x205F || cp == 0x3000)
    return WS_SPACE;
  if (cp == 0x200B || cp == 0x2060 || cp == 0xFEFF) return WS_DROP;
  return WS_KEEP;
}

int vklm_clean_whitespace(const char *s, size_t n, vklm_buf *out) {
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  size_t start = out->n;
  int space = 0, newlines = 0;
  size_t i = 0;
  if (vklm_buf_reserve(out, n + 1)) return -1;
  while (i < n) {
    utf8proc_int32_t cp;
    size_t k = 1;
    if (p[i] < 0x80) {
      cp = p[i];
      if (cp == '\r') { /* \r\n and lone \r both end a line */
        cp = '\n';
        if (i + 1 < n && p[i + 1] == '\n') k = 2;
      }
    } else {
      utf8proc_ssize_t r = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
      if (r <= 0) cp = 0xFFFD, r = 1;
      k = (size_t)r;
    }
    if (cp > 0x20 && cp < 0x7F) /* a run of printable ASCII goes out in one piece */
      while (i + k < n && p[i + k] > 0x20 && p[i + k] < 0x7F)
        k++;
    int cls = cp > 0x20 && cp < 0x7F ? WS_KEEP : classify(cp);
    if (cls == WS_SPACE)
      space = 1;
    else if (cls == WS_NEWLINE)
      newlines++, space = 0;
    else if (cls == WS_KEEP) {
      if (out->n > start) {
        if (newlines) {
          if (vklm_buf_append(out, "\n\n", newlines > 1 ? 2 : 1)) return -1;
        } else if (space && vklm_buf_putc(out, ' '))
          return -1;
      }
      space = newlines = 0;
      if (vklm_buf_append(out, s + i, k)) return -1;
    }
    i += k;
  }
  return 0;
}

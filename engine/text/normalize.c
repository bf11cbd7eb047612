/* normalize.c: the Unicode normalizers a tokenizer.json may name (NFC, NFD, NFKC, NFKD, or a
 * Sequence of them), through utf8proc. Valid UTF-8 runs are normalized; invalid bytes pass through
 * untouched (tokenizers never sees them: it takes str). A normalizer changes text, so
 * decode(encode(x)) == x holds only for text already in that form. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_internal.h"

int tk_norm_from_name(const char *name) {
  if (!strcmp(name, "NFC")) return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (!strcmp(name, "NFD")) return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
  if (!strcmp(name, "NFKC")) return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  if (!strcmp(name, "NFKD")) return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  return -1;
}

const char *tk_norm_name(int form) {
  int compat = (form & UTF8PROC_COMPAT) != 0;
  if (form & UTF8PROC_COMPOSE) return compat ? "NFKC" : "NFC";
  return compat ? "NFKD" : "NFD";
}

/* Normalizes one valid run, appending to out. */
static int norm_run(const char *s, size_t n, int form, vklm_bytes *out) {
  if (!n) return 0;
  utf8proc_uint8_t *dst = NULL;
  utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                    (utf8proc_option_t)form);
  int rc;
  if (m < 0) rc = tk_bytes_append(out, s, n); /* cannot happen on valid UTF-8: keep the text */
  else rc = tk_bytes_append(out, dst, (size_t)m);
  free(dst);
  return rc;
}

static int norm_once(const char *s, size_t n, int form, vklm_bytes *out) {
  out->n = 0;
  int rc = tk_bytes_append(out, "", 0);
  size_t i = 0, start = 0;
  while (!rc && i < n) {
    int l = tk_utf8_seq_len((const unsigned char *)s + i, n - i);
    if (l) {
      i += (size_t)l;
      continue;
    }
    rc = norm_run(s + start, i - start, form, out);
    if (!rc) rc = tk_bytes_append(out, s + i, 1);
    start = ++i;
  }
  if (!rc) rc = norm_run(s + start, n - start, form, out);
  return rc;
}

int tk_normalize(const vklm_tokenizer *tk, const char *s, size_t n, vklm_bytes *out,
                 vklm_bytes *tmp) {
  int rc = 0;
  for (size_t k = 0; k < tk->n_norm && !rc; k++) {
    if (k) {
      vklm_bytes t = *tmp;
      *tmp = *out;
      *out = t;
      s = tmp->data;
      n = tmp->n;
    }
    rc = norm_once(s, n, tk->norm[k], out);
  }
  return rc;
}

/* eval metrics: the per-item and aggregate definitions of docs/eval.md as pure functions
 * (multiple-choice accuracies with character and byte normalisation, means with standard errors,
 * Wilson intervals, perplexity figures, exact-match normalisation and answer extraction). No
 * model, no I/O: tests/test_eval.c checks each against hand-computed cases. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

size_t vklm_eval_utf8_chars(const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
  return n;
}

static int argmax(const double *x, uint32_t n) {
  int b = 0;
  for (uint32_t i = 1; i < n; i++)
    if (x[i] > x[b]) b = (int)i; /* the first maximum wins a tie (numpy's argmax) */
  return b;
}

void vklm_eval_mc_score(const double *ll, const char *const *choices, uint32_t n, int gold,
                        vklm_mc_score *out) {
  double nc[64], nb[64];
  memset(out, 0, sizeof *out);
  if (n == 0 || n > 64) { out->pred = out->pred_norm = out->pred_bytes = -1; return; }
  for (uint32_t i = 0; i < n; i++) {
    size_t c = vklm_eval_utf8_chars(choices[i]), b = strlen(choices[i]);
    nc[i] = ll[i] / (double)(c ? c : 1);
    nb[i] = ll[i] / (double)(b ? b : 1);
  }
  out->pred = argmax(ll, n);
  out->pred_norm = argmax(nc, n);
  out->pred_bytes = argmax(nb, n);
  out->acc = out->pred == gold;
  out->acc_norm = out->pred_norm == gold;
  out->acc_bytes = out->pred_bytes == gold;
}

void vklm_eval_mean_stderr(const double *x, size_t n, double *mean, double *se) {
  double s = 0, v = 0;
  for (size_t i = 0; i < n; i++) s += x[i];
  double m = n ? s / (double)n : 0;
  for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
  *mean = m;
  *se = n > 1 ? sqrt(v / (double)(n - 1) / (double)n) : 0;
}

void vklm_eval_wilson(uint64_t k, uint64_t n, double *lo, double *hi) {
  if (n == 0) { *lo = 0, *hi = 1; return; }
  const double z = 1.96, p = (double)k / (double)n, N = (double)n;
  double den = 1 + z * z / N, mid = (p + z * z / (2 * N)) / den;
  double half = z * sqrt(p * (1 - p) / N + z * z / (4 * N * N)) / den;
  *lo = mid - half < 0 ? 0 : mid - half;
  *hi = mid + half > 1 ? 1 : mid + half;
}

/* Python's \s over ASCII text: space, \t \n \v \f \r (and the 0x1c-0x1f separators). */
static int py_space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31); }

uint64_t vklm_eval_count_words(const char *text) {
  uint64_t n = 1;
  for (const unsigned char *p = (const unsigned char *)text; *p;) {
    if (py_space(*p)) {
      n++;
      while (*p && py_space(*p)) p++;
    } else {
      p++;
    }
  }
  return n;
}

void vklm_eval_ppl_finish(vklm_ppl *p) {
  p->token_ppl = p->tokens ? exp(-p->ll / (double)p->tokens) : NAN;
  p->word_ppl = p->words ? exp(-p->ll / (double)p->words) : NAN;
  p->byte_ppl = p->bytes ? exp(-p->ll / (double)p->bytes) : NAN;
  p->bits_per_byte = p->bytes ? -p->ll / (double)p->bytes / log(2.0) : NAN;
}

char *vklm_eval_normalize(const char *s) {
  size_t n = strlen(s);
  char *t = malloc(n + 1), *o = malloc(n + 2);
  if (!t || !o) { free(t), free(o); return NULL; }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 128 && ispunct(c)) continue;
    t[k++] = c < 128 ? (char)tolower(c) : (char)c;
  }
  t[k] = 0;
  /* words, dropping the articles, joined by one space */
  size_t w = 0;
  for (char *p = t; *p;) {
    while (*p && py_space((unsigned char)*p)) p++;
    char *q = p;
    while (*q && !py_space((unsigned char)*q)) q++;
    size_t len = (size_t)(q - p);
    if (len && !(len == 1 && *p == 'a') && !(len == 2 && !strncmp(p, "an", 2)) &&
        !(len == 3 && !strncmp(p, "the", 3))) {
      if (w) o[w++] = ' ';
      memcpy(o + w, p, len);
      w += len;
    }
    p = q;
  }
  o[w] = 0;
  free(t);
  return o;
}

static char *trimmed(const char *s, size_t n) {
  while (n && py_space((unsigned char)*s)) s++, n--;
  while (n && py_space((unsigned char)s[n - 1])) n--;
  char *o = malloc(n + 1);
  if (o) memcpy(o, s, n), o[n] = 0;
  return o;
}

int vklm_eval_extract(const char *gen, const char *stop, const char *regex, char **out,
                      char *err, size_t errlen) {
  *out = NULL;
  size_t n = strlen(gen);
  if (stop && *stop) {
    const char *p = strstr(gen, stop);
    if (p) n = (size_t)(p - gen);
  }
  if (!regex || !*regex) {
    *out = trimmed(gen, n);
    return 0;
  }
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ec, msg, sizeof msg);
    snprintf(err, errlen, "bad regex '%s' at offset %zu: %s", regex, (size_t)eo, (char *)msg);
    return -1;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  int rc = md ? pcre2_match(re, (PCRE2_SPTR)gen, n, 0, 0, md, NULL) : -1;
  if (rc > 0) {
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    int g = rc > 1 && ov[2] != PCRE2_UNSET ? 1 : 0;
    *out = trimmed(gen + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
  }
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return 0;
}

const vklm_eval_metric *vklm_eval_find_metric(const vklm_eval_result *r, const char *name) {
  for (uint32_t i = 0; i < r->nm; i++)
    if (!strcmp(r->m[i].name, name)) return &r->m[i];
  return NULL;
}

const vklm_eval_metric *vklm_eval_main_metric(const vklm_eval_result *r) {
  static const char *main_of[] = {"acc", "exact_match", "bits_per_byte", "pct_stereotype"};
  return r->kind <= VKLM_TASK_BIAS ? vklm_eval_find_metric(r, main_of[r->kind]) : NULL;
}

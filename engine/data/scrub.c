/* Scrubbing of personal data with PCRE2: e-mail addresses become "email@example.com", IPv4
 * addresses "0.0.0.0", full (eight-group) IPv6 addresses "::". The patterns are ASCII-only, so
 * they run in byte mode and a replacement can never split a UTF-8 sequence. The compiled code
 * is shared read-only between threads; each call makes its own match data. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "data/steps.h"

struct vklm_scrubber {
  pcre2_code *email; /* owned; NULL when e-mails are not scrubbed */
  pcre2_code *ip;    /* owned; NULL when IP addresses are not scrubbed */
  pcre2_code *ip6;   /* owned */
};

static const char email_re[] =
    "[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\\.)+[A-Za-z]{2,}";
static const char ip4_re[] = "(?<![0-9.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}"
                             "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![0-9]|\\.[0-9])";
static const char ip6_re[] =
    "(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![0-9A-Fa-f:])";

static pcre2_code *compile(const char *re) {
  int err;
  PCRE2_SIZE off;
  pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
  if (c) pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if absent */
  return c;
}

void vklm_scrub_destroy(vklm_scrubber *s) {
  if (!s) return;
  pcre2_code_free(s->email);
  pcre2_code_free(s->ip);
  pcre2_code_free(s->ip6);
  free(s);
}

int vklm_scrub_create(int emails, int ips, vklm_scrubber **out) {
  vklm_scrubber *s = calloc(1, sizeof *s);
  *out = NULL;
  if (!s) return -1;
  if ((emails && !(s->email = compile(email_re))) || (ips && !(s->ip = compile(ip4_re))) ||
      (ips && !(s->ip6 = compile(ip6_re)))) {
    vklm_scrub_destroy(s);
    return -1;
  }
  *out = s;
  return 0;
}

/* Replaces every match of c in (s, n) by rep, writing to out; adds the count to *count. */
static int substitute(const pcre2_code *c, const char *s, size_t n, const char *rep, vklm_buf *out,
                      uint64_t *count) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
  if (!md) return -1;
  size_t pos = 0, replen = strlen(rep);
  int rc = 0;
  while (pos <= n) {
    int r = pcre2_match(c, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
    if (r < 0) break; /* no match (or a match limit hit: the rest is kept as is) */
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (vklm_buf_append(out, s + pos, ov[0] - pos) || vklm_buf_append(out, rep, replen)) {
      rc = -1;
      break;
    }
    (*count)++;
    pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
  }
  if (!rc && pos < n && vklm_buf_append(out, s + pos, n - pos)) rc = -1;
  pcre2_match_data_free(md);
  return rc;
}

int vklm_scrub_apply(const vklm_scrubber *sc, const char *s, size_t n, vklm_buf *out,
                     uint64_t *emails, uint64_t *ips) {
  vklm_buf a = {0}, b = {0};
  int rc = vklm_buf_append(&a, s, n);
  if (!rc && sc->email && a.n && memchr(a.p, '@', a.n)) {
    rc = substitute(sc->email, a.p, a.n, "email@example.com", &b, emails);
    vklm_buf_swap(&a, &b);
    vklm_buf_clear(&b);
  }
  if (!rc && sc->ip) {
    rc = substitute(sc->ip, a.p, a.n, "0.0.0.0", &b, ips);
    vklm_buf_swap(&a, &b);
    vklm_buf_clear(&b);
  }
  if (!rc && sc->ip6 && a.n && memchr(a.p, ':', a.n)) {
    rc = substitute(sc->ip6, a.p, a.n, "::", &b, ips);
    vklm_buf_swap(&a, &b);
    vklm_buf_clear(&b);
  }
  if (!rc) rc = vklm_buf_append(out, a.p ? a.p : "", a.n);
  vklm_buf_free(&a);
  vklm_buf_free(&b);
  return rc;
}

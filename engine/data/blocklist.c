/* Word/phrase lists, URL/domain lists and topic maps (see blocklist.h). Phrases are kept as
 * 64-bit hashes of their normalised word sequence in an open-addressing map whose value is a
 * bit mask of the lists (or topics) holding the phrase; a collision could only add a match,
 * with odds of about entries * words / 2^64. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <utf8proc.h>

#include "data/blocklist.h"
#include "data/langid.h"

/* ---- normalised words --------------------------------------------------------------------- */

long vklm_norm_words(const char *s, size_t n, vklm_buf *norm, vklm_span **w, size_t *cap) {
  vklm_buf_clear(norm);
  utf8proc_uint8_t *dst = NULL;
  utf8proc_ssize_t m =
      n ? utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                       UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD |
                           UTF8PROC_IGNORE)
        : 0;
  if (m < 0) return -1;
  int rc = vklm_buf_append(norm, dst ? (const char *)dst : "", (size_t)m);
  free(dst);
  if (rc) return -1;
  long nw = 0;
  size_t start = 0;
  int in = 0;
  for (size_t i = 0; i <= norm->n;) {
    utf8proc_int32_t cp = -1;
    utf8proc_ssize_t k = 1;
    if (i < norm->n) {
      k = utf8proc_iterate((const utf8proc_uint8_t *)norm->p + i, (utf8proc_ssize_t)(norm->n - i), &cp);
      if (k < 1) return -1;
    }
    utf8proc_category_t c = cp < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(cp);
    int word = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO;
    if (word && !in) {
      start = i;
      in = 1;
    } else if (!word && in) {
      if ((size_t)nw == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        vklm_span *q = realloc(*w, nc * sizeof *q);
        if (!q) return -1;
        *w = q;
        *cap = nc;
      }
      (*w)[nw++] = (vklm_span){(uint32_t)start, (uint32_t)(i - start)};
      in = 0;
    }
    i += (size_t)k;
  }
  return nw;
}

/* ---- hash map: 64-bit key -> 64-bit mask ------------------------------------------------------ */

typedef struct hmap {
  uint64_t *key, *val; /* key 0: empty */
  size_t cap, n;
} hmap;

static uint64_t fix(uint64_t h) { return h ? h : 1; }

static int hmap_put(hmap *m, uint64_t k, uint64_t bits) {
  k = fix(k);
  if ((m->n + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 1024;
    hmap t = {calloc(nc, 8), calloc(nc, 8), nc, 0};
    if (!t.key || !t.val) {
      free(t.key);
      free(t.val);
      return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
      if (m->key[i]) {
        size_t j = m->key[i] & (nc - 1);
        while (t.key[j])
          j = (j + 1) & (nc - 1);
        t.key[j] = m->key[i];
        t.val[j] = m->val[i];
        t.n++;
      }
    free(m->key);
    free(m->val);
    *m = t;
  }
  size_t j = k & (m->cap - 1);
  while (m->key[j] && m->key[j] != k)
    j = (j + 1) & (m->cap - 1);
  if (!m->key[j]) {
    m->key[j] = k;
    m->n++;
  }
  m->val[j] |= bits;
  return 0;
}

static uint64_t hmap_get(const hmap *m, uint64_t k) {
  if (!m->cap) return 0;
  k = fix(k);
  size_t j = k & (m->cap - 1);
  while (m->key[j]) {
    if (m->key[j] == k) return m->val[j];
    j = (j + 1) & (m->cap - 1);
  }
  return 0;
}

static void hmap_free(hmap *m) {
  free(m->key);
  free(m->val);
}

/* ---- phrases ------------------------------------------------------------------------------- */

struct vklm_phrases {
  hmap map;
  int max_words;
  uint64_t count;
};

static uint64_t step_hash(uint64_t h, const char *w, size_t n) {
  uint64_t x = vklm_hash64(w, n, 0x9e3779b97f4a7c15ULL);
  return vklm_hash64(&x, sizeof x, h);
}

int vklm_phrases_create(vklm_phrases **out) { return (*out = calloc(1, sizeof **out)) ? 0 : -1; }

void vklm_phrases_destroy(vklm_phrases *p) {
  if (!p) return;
  hmap_free(&p->map);
  free(p);
}

uint64_t vklm_phrases_count(const vklm_phrases *p) { return p->count; }

int vklm_phrases_add(vklm_phrases *p, const char *s, size_t n, int value) {
  vklm_buf norm = {0};
  vklm_span *w = NULL;
  size_t cap = 0;
  long nw = vklm_norm_words(s, n, &norm, &w, &cap);
  int rc = nw < 0 || nw > VKLM_PHRASE_MAX_WORDS || value < 0 || value > 63 ? -1 : nw == 0 ? 0 : 1;
  if (rc == 1) {
    uint64_t h = 1;
    for (long i = 0; i < nw; i++)
      h = step_hash(h, norm.p + w[i].off, w[i].len);
    if (hmap_put(&p->map, h, 1ULL << value))
      rc = -1;
    else {
      p->count++;
      if (nw > p->max_words) p->max_words = (int)nw;
    }
  }
  vklm_buf_free(&norm);
  free(w);
  return rc;
}

void vklm_phrases_match(const vklm_phrases *p, const char *norm, const vklm_span *w, long nw,
                        uint32_t *counts, int nvalues) {
  if (!p->count) return;
  for (long i = 0; i < nw; i++) {
    uint64_t h = 1;
    for (long k = 0; k < p->max_words && i + k < nw; k++) {
      h = step_hash(h, norm + w[i + k].off, w[i + k].len);
      uint64_t bits = hmap_get(&p->map, h);
      for (int v = 0; bits && v < nvalues; v++, bits >>= 1)
        counts[v] += (uint32_t)(bits & 1);
    }
  }
}

/* ---- list files ------------------------------------------------------------------------------ */

/* Calls fn on every entry line (trimmed, not blank, not a comment). Returns 0 or -1 (message). */
static int each_line(const char *path, int (*fn)(void *, const char *, size_t, long), void *arg,
                     char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) return vklm_data_fail(err, errlen, "cannot read the list %s: %s", path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  long no = 0, entries = 0;
  int rc = 0;
  while (!rc && (got = getline(&line, &cap, f)) >= 0) {
    no++;
    size_t a = 0, b = (size_t)got;
    while (a < b && isspace((unsigned char)line[a]))
      a++;
    while (b > a && isspace((unsigned char)line[b - 1]))
      b--;
    if (a == b || line[a] == '#') continue;
    if (fn(arg, line + a, b - a, no)) {
      rc = vklm_data_fail(err, errlen, "%s:%ld: bad entry '%.*s' (at most %d words of valid "
                          "UTF-8; see docs/data.md)", path, no, (int)(b - a > 60 ? 60 : b - a),
                          line + a, VKLM_PHRASE_MAX_WORDS);
      break;
    }
    entries++;
  }
  if (!rc && ferror(f)) rc = vklm_data_fail(err, errlen, "reading %s failed", path);
  if (!rc && !entries) rc = vklm_data_fail(err, errlen, "the list %s has no entries", path);
  free(line);
  fclose(f);
  return rc;
}

typedef struct list {
  char name[256];
  char lang[16]; /* word lists: "" for every language */
  int urls;
} list;

struct vklm_blocklists {
  list l[VKLM_BLOCK_MAX_LISTS];
  int n;
  vklm_phrases *words;
  hmap urls;
};

int vklm_blocklists_create(vklm_blocklists **out) {
  vklm_blocklists *b = calloc(1, sizeof *b);
  if (!b || vklm_phrases_create(&b->words)) {
    free(b);
    return -1;
  }
  *out = b;
  return 0;
}

void vklm_blocklists_destroy(vklm_blocklists *b) {
  if (!b) return;
  vklm_phrases_destroy(b->words);
  hmap_free(&b->urls);
  free(b);
}

int vklm_blocklists_count(const vklm_blocklists *b) { return b->n; }
const char *vklm_blocklists_name(const vklm_blocklists *b, int i) { return b->l[i].name; }

typedef struct add_arg {
  vklm_blocklists *b;
  int idx;
} add_arg;

static int add_word(void *p, const char *s, size_t n, long no) {
  (void)no;
  add_arg *a = p;
  return vklm_phrases_add(a->b->words, s, n, a->idx) == 1 ? 0 : -1;
}

int vklm_blocklists_add_words(vklm_blocklists *b, const char *spec, char *err, size_t errlen) {
  if (b->n >= VKLM_BLOCK_MAX_LISTS)
    return vklm_data_fail(err, errlen, "too many block lists (at most %d)", VKLM_BLOCK_MAX_LISTS);
  const char *path = spec, *colon = strchr(spec, ':');
  list *l = &b->l[b->n];
  memset(l, 0, sizeof *l);
  if (colon && access(spec, F_OK) && vklm_lang_code_valid(spec, (size_t)(colon - spec))) {
    memcpy(l->lang, spec, (size_t)(colon - spec));
    path = colon + 1;
  }
  char lang[sizeof l->lang];
  memcpy(lang, l->lang, sizeof lang);
  snprintf(l->name, sizeof l->name, "words%s%s:%s", lang[0] ? "/" : "", lang, path);
  add_arg a = {b, b->n};
  if (each_line(path, add_word, &a, err, errlen)) return -1;
  b->n++;
  return 0;
}

/* "https://user@www.Example.COM:8080/a/b?q" -> "example.com/a/b?q" into out (host lower case). */
static size_t url_norm(const char *s, size_t n, char *out, size_t cap) {
  const char *e = s + n, *p = s;
  for (const char *q = s; q + 2 < e && q < s + 16; q++)
    if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
      p = q + 3;
      break;
    }
  const char *host_end = p;
  while (host_end < e && *host_end != '/' && *host_end != '?' && *host_end != '#')
    host_end++;
  const char *at = memchr(p, '@', (size_t)(host_end - p));
  if (at) p = at + 1;
  const char *hs = p, *he = host_end;
  const char *colon = memchr(hs, ':', (size_t)(he - hs));
  if (colon) he = colon;
  if (he - hs > 4 && !strncasecmp(hs, "www.", 4)) hs += 4;
  size_t m = 0;
  for (const char *q = hs; q < he && m + 1 < cap; q++)
    out[m++] = (char)tolower((unsigned char)*q);
  while (m && out[m - 1] == '.')
    m--;
  if (!(e - host_end == 1 && *host_end == '/')) /* a lone "/" path is the domain itself */
    for (const char *q = host_end; q < e && m + 1 < cap; q++)
      out[m++] = *q;
  out[m] = 0;
  return m;
}

static int add_url(void *p, const char *s, size_t n, long no) {
  (void)no;
  add_arg *a = p;
  char u[2048];
  size_t m = url_norm(s, n, u, sizeof u);
  if (!m || u[0] == '/' || memchr(u, ' ', m)) return -1;
  return hmap_put(&a->b->urls, vklm_hash64(u, m, 7), 1ULL << a->idx);
}

int vklm_blocklists_add_urls(vklm_blocklists *b, const char *path, char *err, size_t errlen) {
  if (b->n >= VKLM_BLOCK_MAX_LISTS)
    return vklm_data_fail(err, errlen, "too many block lists (at most %d)", VKLM_BLOCK_MAX_LISTS);
  list *l = &b->l[b->n];
  memset(l, 0, sizeof *l);
  l->urls = 1;
  snprintf(l->name, sizeof l->name, "urls:%s", path);
  add_arg a = {b, b->n};
  if (each_line(path, add_url, &a, err, errlen)) return -1;
  b->n++;
  return 0;
}

/* Bit mask of the URL lists matching url: each parent domain, alone and with each path prefix
 * that ends at a '/' (and the whole path). */
static uint64_t url_lists(const vklm_blocklists *b, const char *url) {
  if (!b->urls.n || !url || !url[0]) return 0;
  char u[2048];
  size_t m = url_norm(url, strlen(url), u, sizeof u);
  size_t hl = strcspn(u, "/?#");
  uint64_t bits = 0;
  for (size_t d = 0; d < hl; d++) {
    if (d && u[d - 1] != '.') continue;
    bits |= hmap_get(&b->urls, vklm_hash64(u + d, hl - d, 7));
    for (size_t k = hl + 1; k <= m; k++)
      if (k == m || u[k - 1] == '/') bits |= hmap_get(&b->urls, vklm_hash64(u + d, k - d, 7));
  }
  return bits;
}

int vklm_blocklists_check(const vklm_blocklists *b, const char *lang, const char *url,
                          const char *s, size_t n, long min_matches, vklm_drop *why) {
  uint64_t ub = url_lists(b, url);
  for (int i = 0; i < b->n; i++)
    if (b->l[i].urls && (ub >> i & 1)) {
      *why = VKLM_DROP_BLOCK_URL;
      return i;
    }
  if (!vklm_phrases_count(b->words)) return -1;
  vklm_buf norm = {0};
  vklm_span *w = NULL;
  size_t cap = 0;
  long nw = vklm_norm_words(s, n, &norm, &w, &cap);
  uint32_t counts[VKLM_BLOCK_MAX_LISTS] = {0};
  if (nw > 0) vklm_phrases_match(b->words, norm.p, w, nw, counts, b->n);
  vklm_buf_free(&norm);
  free(w);
  if (nw < 0) return -2;
  if (min_matches < 1) min_matches = 1;
  for (int i = 0; i < b->n; i++) {
    const list *l = &b->l[i];
    if (l->urls || (l->lang[0] && (!lang || strcmp(l->lang, lang)))) continue;
    if (counts[i] >= (uint32_t)min_matches) {
      *why = VKLM_DROP_BLOCK_WORDS;
      return i;
    }
  }
  return -1;
}

/* ---- topics ---------------------------------------------------------------------------------- */

struct vklm_topics {
  vklm_phrases *ph;
  char name[VKLM_TOPIC_MAX][VKLM_TOPIC_NAME_MAX];
  int n;
  char *bad; /* set by add_topic on a bad topic name */
};

static int add_topic(void *p, const char *s, size_t n, long no) {
  (void)no;
  vklm_topics *t = p;
  size_t k = 0;
  while (k < n && !isspace((unsigned char)s[k]))
    k++;
  if (k == 0 || k >= VKLM_TOPIC_NAME_MAX || k == n) return -1;
  for (size_t i = 0; i < k; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return -1;
  int idx = -1;
  for (int i = 0; i < t->n; i++)
    if (strlen(t->name[i]) == k && !memcmp(t->name[i], s, k)) idx = i;
  if (idx < 0) {
    if (t->n >= VKLM_TOPIC_MAX) return -1;
    idx = t->n++;
    memcpy(t->name[idx], s, k);
    t->name[idx][k] = 0;
  }
  return vklm_phrases_add(t->ph, s + k, n - k, idx) == 1 ? 0 : -1;
}

int vklm_topics_read(const char *path, vklm_topics **out, char *err, size_t errlen) {
  *out = NULL;
  vklm_topics *t = calloc(1, sizeof *t);
  if (!t || vklm_phrases_create(&t->ph)) {
    free(t);
    return vklm_data_fail(err, errlen, "topics: out of memory");
  }
  if (each_line(path, add_topic, t, err, errlen)) {
    vklm_topics_destroy(t);
    return -1;
  }
  *out = t;
  return 0;
}

void vklm_topics_destroy(vklm_topics *t) {
  if (!t) return;
  vklm_phrases_destroy(t->ph);
  free(t);
}

int vklm_topics_count(const vklm_topics *t) { return t->n; }
const char *vklm_topics_name(const vklm_topics *t, int i) { return t->name[i]; }

int vklm_topics_classify(const vklm_topics *t, const char *s, size_t n) {
  vklm_buf norm = {0};
  vklm_span *w = NULL;
  size_t cap = 0;
  long nw = vklm_norm_words(s, n, &norm, &w, &cap);
  uint32_t counts[VKLM_TOPIC_MAX] = {0};
  if (nw > 0) vklm_phrases_match(t->ph, norm.p, w, nw, counts, t->n);
  vklm_buf_free(&norm);
  free(w);
  if (nw < 0) return -2;
  int best = -1;
  for (int i = 0; i < t->n; i++)
    if (counts[i] && (best < 0 || counts[i] > counts[best])) best = i;
  return best;
}

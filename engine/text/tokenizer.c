/* tokenizer.c: the vklm_tokenizer object — building (used by every loader and the trainer),
 * queries, destruction — and the small containers the text module shares (hash maps, buffers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

/* ---- buffers and errors ---- */

void tk_seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int tk_bytes_append(vklm_bytes *b, const void *p, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return VKLM_TOK_ERR_NOMEM;
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->n, p, n);
  b->n += n;
  b->data[b->n] = 0;
  return 0;
}

int tk_bytes_printf(vklm_bytes *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return VKLM_TOK_ERR_ARG;
  if ((size_t)n < sizeof small) return tk_bytes_append(b, small, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (!big) return VKLM_TOK_ERR_NOMEM;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = tk_bytes_append(b, big, (size_t)n);
  free(big);
  return rc;
}

int tk_ids_push(vklm_token_ids *v, int32_t id) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 256;
    int32_t *p = realloc(v->ids, cap * sizeof *p);
    if (!p) return VKLM_TOK_ERR_NOMEM;
    v->ids = p;
    v->cap = cap;
  }
  v->ids[v->n++] = id;
  return 0;
}

void vklm_token_ids_free(vklm_token_ids *v) {
  if (!v) return;
  free(v->ids);
  memset(v, 0, sizeof *v);
}

void vklm_bytes_free(vklm_bytes *b) {
  if (!b) return;
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* ---- UTF-8 ---- */

int tk_utf8_seq_len(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (avail >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
    return 3;
  }
  if (c < 0xF5) {
    if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
      return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0;
    if (c == 0xF4 && s[1] >= 0x90) return 0;
    return 4;
  }
  return 0;
}

int tk_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *e = p + n;
  while (p < e) {
    /* fast path: 8 ASCII bytes at a time */
    while (e - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      if (w & 0x8080808080808080ull) break;
      p += 8;
    }
    if (p >= e) break;
    if (*p < 0x80) {
      p++;
      continue;
    }
    int l = tk_utf8_seq_len(p, (size_t)(e - p));
    if (!l) return 0;
    p += l;
  }
  return 1;
}

/* ---- hash maps ---- */

uint64_t tk_hash_bytes(const char *s, size_t n) {
  uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
  const unsigned char *p = (const unsigned char *)s;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
  h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 29;
  h *= 0x9E3779B97F4A7C15ull;
  h ^= h >> 32;
  return h ? h : 1;
}

static int strmap_grow(tk_strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  tk_strmap nm = {0};
  nm.cap = cap;
  nm.hash = calloc(cap, sizeof *nm.hash);
  nm.val = malloc(cap * sizeof *nm.val);
  nm.key = malloc(cap * sizeof *nm.key);
  nm.klen = malloc(cap * sizeof *nm.klen);
  if (!nm.hash || !nm.val || !nm.key || !nm.klen) {
    tk_strmap_free(&nm);
    return VKLM_TOK_ERR_NOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->hash[i]) continue;
    size_t j = (size_t)m->hash[i] & (cap - 1);
    while (nm.hash[j]) j = (j + 1) & (cap - 1);
    nm.hash[j] = m->hash[i];
    nm.val[j] = m->val[i];
    nm.key[j] = m->key[i];
    nm.klen[j] = m->klen[i];
  }
  nm.n = m->n;
  tk_strmap_free(m);
  *m = nm;
  return 0;
}

int tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v) {
  if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return VKLM_TOK_ERR_NOMEM;
  uint64_t h = tk_hash_bytes(k, n);
  size_t mask = m->cap - 1, i = (size_t)h & mask;
  while (m->hash[i]) {
    if (m->hash[i] == h && m->klen[i] == n && !memcmp(m->key[i], k, n)) return 0;
    i = (i + 1) & mask;
  }
  m->hash[i] = h;
  m->val[i] = v;
  m->key[i] = k;
  m->klen[i] = (uint32_t)n;
  m->n++;
  return 0;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n) {
  if (!m->cap) return -1;
  uint64_t h = tk_hash_bytes(k, n);
  size_t mask = m->cap - 1, i = (size_t)h & mask;
  while (m->hash[i]) {
    if (m->hash[i] == h && m->klen[i] == n && !memcmp(m->key[i], k, n)) return m->val[i];
    i = (i + 1) & mask;
  }
  return -1;
}

void tk_strmap_free(tk_strmap *m) {
  free(m->hash);
  free(m->val);
  free(m->key);
  free(m->klen);
  memset(m, 0, sizeof *m);
}

static int pairmap_grow(tk_pairmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  tk_pairmap nm = {0};
  nm.cap = cap;
  nm.key = calloc(cap, sizeof *nm.key);
  nm.rank = malloc(cap * sizeof *nm.rank);
  nm.id = malloc(cap * sizeof *nm.id);
  if (!nm.key || !nm.rank || !nm.id) {
    tk_pairmap_free(&nm);
    return VKLM_TOK_ERR_NOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->key[i]) continue;
    size_t j = (size_t)((m->key[i] * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
    while (nm.key[j]) j = (j + 1) & (cap - 1);
    nm.key[j] = m->key[i];
    nm.rank[j] = m->rank[i];
    nm.id[j] = m->id[i];
  }
  nm.n = m->n;
  tk_pairmap_free(m);
  *m = nm;
  return 0;
}

int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id) {
  if ((m->n + 1) * 2 > m->cap && pairmap_grow(m)) return VKLM_TOK_ERR_NOMEM;
  uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  size_t mask = m->cap - 1, i = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & mask;
  while (m->key[i] && m->key[i] != k) i = (i + 1) & mask;
  if (!m->key[i]) m->n++;
  m->key[i] = k;
  m->rank[i] = rank;
  m->id[i] = id;
  return 0;
}

void tk_pairmap_free(tk_pairmap *m) {
  free(m->key);
  free(m->rank);
  free(m->id);
  memset(m, 0, sizeof *m);
}

/* ---- building ---- */

int tk_build_begin(vklm_tokenizer **out, size_t n_ids) {
  *out = NULL;
  if (n_ids > (size_t)INT32_MAX) return VKLM_TOK_ERR_ARG;
  vklm_tokenizer *tk = calloc(1, sizeof *tk);
  if (!tk) return VKLM_TOK_ERR_NOMEM;
  tk->n_ids = n_ids;
  tk->flags = calloc(n_ids ? n_ids : 1, 1);
  tk->bstr = calloc(n_ids ? n_ids : 1, sizeof *tk->bstr);
  tk->blen = calloc(n_ids ? n_ids : 1, sizeof *tk->blen);
  tk->unk_id = -1;
  if (!tk->flags || !tk->bstr || !tk->blen) {
    vklm_tokenizer_destroy(tk);
    return VKLM_TOK_ERR_NOMEM;
  }
  *out = tk;
  return 0;
}

int tk_build_set(vklm_tokenizer *tk, int32_t id, const char *bytes, size_t n, unsigned flags,
                 char *err, size_t errlen) {
  if (id < 0 || (size_t)id >= tk->n_ids) {
    tk_seterr(err, errlen, "token id %ld out of range [0, %zu)", (long)id, tk->n_ids);
    return VKLM_TOK_ERR_FORMAT;
  }
  if (tk->flags[id] & TK_TOK_PRESENT) {
    /* an added token may name an id the model already has: keep the model's bytes */
    if ((flags & TK_TOK_ADDED) && (tk->flags[id] & TK_TOK_MODEL)) {
      tk->flags[id] |= (uint8_t)(flags & (TK_TOK_ADDED | TK_TOK_SPECIAL));
      return 0;
    }
    if ((flags & TK_TOK_MODEL) && (tk->flags[id] & TK_TOK_ADDED)) {
      tk->flags[id] |= (uint8_t)(flags & (TK_TOK_MODEL | TK_TOK_RAW));
      free(tk->bstr[id]); /* the model's bytes win: decode follows the model */
    } else {
      tk_seterr(err, errlen, "token id %ld used twice", (long)id);
      return VKLM_TOK_ERR_FORMAT;
    }
  }
  char *copy = malloc(n + 1);
  if (!copy) return VKLM_TOK_ERR_NOMEM;
  if (n) memcpy(copy, bytes, n);
  copy[n] = 0;
  tk->bstr[id] = copy;
  tk->blen[id] = n;
  tk->flags[id] |= (uint8_t)(flags | TK_TOK_PRESENT);
  return 0;
}

int tk_build_merge(vklm_tokenizer *tk, int32_t a, int32_t b, char *err, size_t errlen) {
  if (a < 0 || b < 0 || (size_t)a >= tk->n_ids || (size_t)b >= tk->n_ids) {
    tk_seterr(err, errlen, "merge #%zu refers to id out of range", tk->n_merges);
    return VKLM_TOK_ERR_FORMAT;
  }
  if (tk->n_merges == tk->cap_merges) {
    size_t cap = tk->cap_merges ? tk->cap_merges * 2 : 1024;
    void *p = realloc(tk->merges, cap * sizeof *tk->merges);
    if (!p) return VKLM_TOK_ERR_NOMEM;
    tk->merges = p;
    tk->cap_merges = cap;
  }
  tk->merges[tk->n_merges][0] = a;
  tk->merges[tk->n_merges][1] = b;
  tk->n_merges++;
  return 0;
}

int tk_build_merge_ranked(vklm_tokenizer *tk, int32_t a, int32_t b, uint32_t rank) {
  if (!tk->mrank && tk->n_merges) return VKLM_TOK_ERR_ARG; /* all merges ranked, or none */
  size_t n = tk->n_merges;
  int rc = tk_build_merge(tk, a, b, NULL, 0);
  if (rc) return rc;
  uint32_t *p = realloc(tk->mrank, tk->cap_merges * sizeof *p);
  if (!p) return VKLM_TOK_ERR_NOMEM;
  tk->mrank = p;
  tk->mrank[n] = rank;
  return 0;
}

int tk_build_added(vklm_tokenizer *tk, const tk_added *a, char *err, size_t errlen) {
  if (!a->len) {
    tk_seterr(err, errlen, "added token %ld has empty content", (long)a->id);
    return VKLM_TOK_ERR_FORMAT;
  }
  unsigned flags = TK_TOK_ADDED | (a->special ? TK_TOK_SPECIAL : 0);
  int rc = tk_build_set(tk, a->id, a->content, a->len, flags, err, errlen);
  if (rc) return rc;
  if (tk->n_added == tk->cap_added) {
    size_t cap = tk->cap_added ? tk->cap_added * 2 : 16;
    void *p = realloc(tk->added, cap * sizeof *tk->added);
    if (!p) return VKLM_TOK_ERR_NOMEM;
    tk->added = p;
    tk->cap_added = cap;
  }
  tk_added *d = &tk->added[tk->n_added];
  *d = *a;
  d->content = malloc(a->len + 1);
  if (!d->content) return VKLM_TOK_ERR_NOMEM;
  memcpy(d->content, a->content, a->len);
  d->content[a->len] = 0;
  tk->n_added++;
  tk->added_first[(uint8_t)a->content[0]] = 1;
  return 0;
}

int tk_build_step(vklm_tokenizer *tk, const tk_step *st) {
  tk_step *p = realloc(tk->steps, (tk->n_steps + 1) * sizeof *p);
  if (!p) return VKLM_TOK_ERR_NOMEM;
  tk->steps = p;
  tk->steps[tk->n_steps++] = *st;
  return 0;
}

/* Added tokens are matched longest first: sort by length, descending, then by content. */
static int added_cmp(const void *x, const void *y) {
  const tk_added *a = x, *b = y;
  if (a->len != b->len) return a->len > b->len ? -1 : 1;
  int c = memcmp(a->content, b->content, a->len);
  return c ? c : (a->id < b->id ? -1 : a->id > b->id);
}

int tk_build_finish(vklm_tokenizer *tk, char *err, size_t errlen) {
  size_t total = 0;
  for (size_t i = 0; i < tk->n_ids; i++) total += tk->blen[i];
  tk->off = malloc((tk->n_ids + 1) * sizeof *tk->off);
  tk->blob = malloc(total + 1);
  if (!tk->off || !tk->blob) return VKLM_TOK_ERR_NOMEM;
  size_t pos = 0;
  for (size_t i = 0; i < tk->n_ids; i++) {
    tk->off[i] = pos;
    if (tk->blen[i]) memcpy(tk->blob + pos, tk->bstr[i], tk->blen[i]);
    pos += tk->blen[i];
    free(tk->bstr[i]);
  }
  tk->off[tk->n_ids] = pos;
  free(tk->bstr);
  free(tk->blen);
  tk->bstr = NULL;
  tk->blen = NULL;
  for (int b = 0; b < 256; b++) tk->byte_id[b] = -1;
  for (size_t i = 0; i < tk->n_ids; i++) {
    if (!(tk->flags[i] & TK_TOK_MODEL)) continue;
    size_t n = tk->off[i + 1] - tk->off[i];
    if (tk_strmap_put(&tk->model_map, tk->blob + tk->off[i], n, (int32_t)i)) return VKLM_TOK_ERR_NOMEM;
    if (n == 1 && tk->byte_id[(uint8_t)tk->blob[tk->off[i]]] < 0)
      tk->byte_id[(uint8_t)tk->blob[tk->off[i]]] = (int32_t)i;
  }
  /* merges: (a, b) -> (rank, id of bytes(a)+bytes(b)); a later duplicate overwrites an earlier
   * one, as Hugging Face's map does */
  vklm_bytes cat = {0};
  for (size_t r = 0; r < tk->n_merges; r++) {
    int32_t a = tk->merges[r][0], b = tk->merges[r][1];
    if (!(tk->flags[a] & TK_TOK_MODEL) || !(tk->flags[b] & TK_TOK_MODEL)) {
      tk_seterr(err, errlen, "merge #%zu uses id %ld/%ld that is not in the vocabulary", r,
                (long)a, (long)b);
      vklm_bytes_free(&cat);
      return VKLM_TOK_ERR_FORMAT;
    }
    cat.n = 0;
    if (tk_bytes_append(&cat, tk->blob + tk->off[a], tk->off[a + 1] - tk->off[a]) ||
        tk_bytes_append(&cat, tk->blob + tk->off[b], tk->off[b + 1] - tk->off[b])) {
      vklm_bytes_free(&cat);
      return VKLM_TOK_ERR_NOMEM;
    }
    int32_t id = tk_strmap_get(&tk->model_map, cat.data, cat.n);
    if (id < 0) {
      tk_seterr(err, errlen, "merge #%zu: the merged token is not in the vocabulary", r);
      vklm_bytes_free(&cat);
      return VKLM_TOK_ERR_FORMAT;
    }
    if (tk_pairmap_put(&tk->merge_map, a, b, tk->mrank ? tk->mrank[r] : (uint32_t)r, id)) {
      vklm_bytes_free(&cat);
      return VKLM_TOK_ERR_NOMEM;
    }
  }
  vklm_bytes_free(&cat);
  if (tk->n_added) qsort(tk->added, tk->n_added, sizeof *tk->added, added_cmp);
  return 0;
}

/* ---- queries ---- */

size_t vklm_tokenizer_vocab_size(const vklm_tokenizer *tk) { return tk->n_ids; }
size_t vklm_tokenizer_n_merges(const vklm_tokenizer *tk) { return tk->n_merges; }

int32_t vklm_tokenizer_special_id(const vklm_tokenizer *tk, const char *text) {
  size_t n = strlen(text);
  for (size_t i = 0; i < tk->n_added; i++)
    if (tk->added[i].len == n && !memcmp(tk->added[i].content, text, n)) return tk->added[i].id;
  return -1;
}

int32_t vklm_tokenizer_token_id(const vklm_tokenizer *tk, const char *s, size_t len) {
  for (size_t i = 0; i < tk->n_added; i++)
    if (tk->added[i].len == len && !memcmp(tk->added[i].content, s, len)) return tk->added[i].id;
  return tk_strmap_get(&tk->model_map, s, len);
}

const char *vklm_tokenizer_token_bytes(const vklm_tokenizer *tk, int32_t id, size_t *len) {
  if (id < 0 || (size_t)id >= tk->n_ids || !(tk->flags[id] & TK_TOK_PRESENT) || !tk->off) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = tk->off[id + 1] - tk->off[id];
  return tk->blob + tk->off[id];
}

int vklm_tokenizer_is_special(const vklm_tokenizer *tk, int32_t id) {
  return id >= 0 && (size_t)id < tk->n_ids && (tk->flags[id] & TK_TOK_SPECIAL) != 0;
}

int vklm_tokenizer_missing_bytes(const vklm_tokenizer *tk, int *first) {
  int n = 0;
  if (first) *first = -1;
  for (int b = 0; b < 256 && tk->unk_id < 0; b++)
    if (tk->byte_id[b] < 0) {
      if (first && *first < 0) *first = b;
      n++;
    }
  return n;
}

const char *vklm_tokenizer_pattern(const vklm_tokenizer *tk) {
  for (size_t i = 0; i < tk->n_steps; i++) {
    if (tk->steps[i].kind == TK_STEP_SPLIT && !tk->steps[i].literal) return tk->steps[i].pattern;
    if (tk->steps[i].kind == TK_STEP_BYTELEVEL && tk->steps[i].use_regex)
      return vklm_pretok_pattern_regex(VKLM_PRETOK_GPT2);
  }
  return NULL;
}

void vklm_tokenizer_destroy(vklm_tokenizer *tk) {
  if (!tk) return;
  vklm_tokenizer_encoder_destroy(tk->own);
  if (tk->bstr)
    for (size_t i = 0; i < tk->n_ids; i++) free(tk->bstr[i]);
  free(tk->bstr);
  free(tk->blen);
  free(tk->flags);
  free(tk->off);
  free(tk->blob);
  tk_strmap_free(&tk->model_map);
  tk_pairmap_free(&tk->merge_map);
  free(tk->merges);
  free(tk->mrank);
  for (size_t i = 0; i < tk->n_added; i++) free(tk->added[i].content);
  free(tk->added);
  for (size_t i = 0; i < tk->n_steps; i++) {
    free(tk->steps[i].pattern);
    pcre2_code_free(tk->steps[i].re);
  }
  free(tk->steps);
  free(tk);
}

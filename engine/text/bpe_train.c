/* bpe_train.c: byte-level BPE training, incremental, with the same choices as Hugging Face's
 * BpeTrainer so that the same corpus gives the same merges:
 *   - words are the unique pre-tokens with their counts; symbols start as single bytes;
 *   - ids: special tokens first, then the 256 bytes ordered by their byte-level code point, then
 *     one id per new merged string (a merge whose string already exists reuses its id);
 *   - pair counts live in a hash map, and a max-heap holds (count, pair, list of words where the
 *     pair appeared) entries, ties to the smallest (left id, right id); an entry whose count went
 *     stale is pushed back with the fresh count (lazy update);
 *   - merging a pair touches only the words in the popped entry's list; each new pair gets an
 *     entry with the words where it appeared in this step. (tokenizers does this too: when a
 *     pair can appear in two entries, both fire, and the later one gives the merge its rank.)
 * Unlike tokenizers, which rescans each listed word from its start, vklm keeps words as linked
 * lists of symbols and each pair's occurrences (symbol positions), so a merge costs its
 * occurrences, not the length of the words they are in: a 100 MB single "word" (DNA, a run of
 * letters) trains in O(n log n), the same merges in the same order. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"
#include "text/tokenizer_internal.h"

enum { ARENA_BLOCK = 1 << 22 };
#define NONE UINT32_MAX

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  char data[];
} arena_block;

typedef struct wlist {
  uint32_t *w;
  uint32_t n, cap;
} wlist;

typedef struct hentry {
  uint64_t count;
  int32_t a, b;
  uint32_t list;
} hentry;

/* pair -> int64 (open addressing, key (a<<32|b)+1) */
typedef struct pmap {
  uint64_t *key;
  int64_t *val;
  size_t cap, n;
} pmap;

struct vklm_bpe_trainer {
  vklm_bpe_train_config cfg;
  vklm_tokenizer *pre; /* owns the pre-tokenizer steps */
  tk_pretok_scratch ps;
  arena_block *arena;
  tk_strmap words; /* word bytes -> index */
  uint64_t *wcount;
  size_t n_words, cap_words;
  char **specials; /* owned copies */
  size_t skipped_lines;
};

static void *arena_copy(vklm_bpe_trainer *t, const char *p, size_t n) {
  if (!t->arena || t->arena->used + n > t->arena->cap) {
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    arena_block *b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->next = t->arena;
    b->used = 0;
    b->cap = cap;
    t->arena = b;
  }
  char *d = t->arena->data + t->arena->used;
  memcpy(d, p, n);
  t->arena->used += n;
  return d;
}

int vklm_bpe_trainer_create(const vklm_bpe_train_config *cfg, vklm_bpe_trainer **out, char *err,
                            size_t errlen) {
  *out = NULL;
  if (cfg->vocab_size < 256 + cfg->n_specials || cfg->vocab_size > (1u << 24)) {
    tk_seterr(err, errlen, "vocab_size %zu must lie in [256 + specials, 2^24]", cfg->vocab_size);
    return VKLM_TOK_ERR_ARG;
  }
  for (size_t i = 0; i < cfg->n_specials; i++)
    if (!cfg->specials[i] || !cfg->specials[i][0] ||
        !tk_utf8_valid(cfg->specials[i], strlen(cfg->specials[i]))) {
      tk_seterr(err, errlen, "special token #%zu is empty or not UTF-8", i);
      return VKLM_TOK_ERR_ARG;
    }
  vklm_bpe_trainer *t = calloc(1, sizeof *t);
  if (!t) return VKLM_TOK_ERR_NOMEM;
  t->cfg = *cfg;
  int rc = VKLM_TOK_ERR_NOMEM;
  t->specials = calloc(cfg->n_specials + 1, sizeof *t->specials);
  if (!t->specials) goto fail;
  for (size_t i = 0; i < cfg->n_specials; i++)
    if (!(t->specials[i] = strdup(cfg->specials[i]))) goto fail;
  t->cfg.specials = (const char *const *)t->specials;
  const char *pat = cfg->pattern ? cfg->pattern : vklm_pretok_pattern_regex(VKLM_PRETOK_GPT2);
  tk_step st;
  if ((rc = tk_build_begin(&t->pre, 0))) goto fail;
  if (!strcmp(pat, vklm_pretok_pattern_regex(VKLM_PRETOK_GPT2))) {
    /* GPT-2's own regex: written as ByteLevel(use_regex) as tokenizers does */
    if ((rc = tk_step_bytelevel(&st, 0, 1, err, errlen))) goto fail;
    if ((rc = tk_build_step(t->pre, &st))) goto fail;
  } else {
    if ((rc = tk_step_split(&st, pat, 0, TK_SPLIT_ISOLATED, 0, err, errlen))) goto fail;
    if ((rc = tk_build_step(t->pre, &st))) {
      tk_step_free(&st);
      goto fail;
    }
    if ((rc = tk_step_bytelevel(&st, 0, 0, err, errlen)) || (rc = tk_build_step(t->pre, &st)))
      goto fail;
  }
  if ((rc = tk_build_finish(t->pre, err, errlen))) goto fail;
  *out = t;
  return 0;
fail:
  vklm_bpe_trainer_destroy(t);
  return rc;
}

static int count_word(vklm_bpe_trainer *t, const char *p, size_t n) {
  int32_t idx = tk_strmap_get(&t->words, p, n);
  if (idx >= 0) {
    t->wcount[idx]++;
    return 0;
  }
  if (t->n_words == t->cap_words) {
    size_t cap = t->cap_words ? t->cap_words * 2 : 4096;
    if (cap > (size_t)INT32_MAX) return VKLM_TOK_ERR_NOMEM;
    uint64_t *c = realloc(t->wcount, cap * sizeof *c);
    if (!c) return VKLM_TOK_ERR_NOMEM;
    t->wcount = c;
    t->cap_words = cap;
  }
  const char *k = arena_copy(t, p, n);
  if (!k || tk_strmap_put(&t->words, k, n, (int32_t)t->n_words)) return VKLM_TOK_ERR_NOMEM;
  t->wcount[t->n_words++] = 1;
  return 0;
}

static int on_word(void *ctx, const char *p, size_t n) {
  return n >= UINT32_MAX ? VKLM_TOK_ERR_NOMEM : count_word(ctx, p, n);
}

int vklm_bpe_trainer_feed(vklm_bpe_trainer *t, const char *text, size_t len) {
  return tk_pretokenize(t->pre, &t->ps, text, len, on_word, t);
}

static int feed_line(vklm_bpe_trainer *t, const char *p, size_t n, int jsonl) {
  if (!jsonl) return vklm_bpe_trainer_feed(t, p, n);
  if (n <= 1) return 0;
  /* a text holding \u0000 would be cut at it (cJSON's strings end at a NUL): skipped whole */
  cJSON *o = vklm_json_has_nul(p, n) ? NULL : cJSON_ParseWithLength(p, n);
  const cJSON *txt = cJSON_GetObjectItemCaseSensitive(o, "text");
  int rc = 0;
  if (cJSON_IsString(txt)) rc = vklm_bpe_trainer_feed(t, txt->valuestring, strlen(txt->valuestring));
  else t->skipped_lines++;
  cJSON_Delete(o);
  return rc;
}

/* Streams the file in blocks (memory: the largest line, at least 16 MiB), one sequence per line,
 * the newline included, as tokenizers' train(files) reads text files. */
int vklm_bpe_trainer_feed_file(vklm_bpe_trainer *t, const char *path, char *err, size_t errlen) {
  if (vklm_file_check(path, err, errlen) != VKLM_OK) return VKLM_TOK_ERR_IO; /* a directory... */
  FILE *f = fopen(path, "rb");
  if (!f) {
    tk_seterr(err, errlen, "%s: %s", path, strerror(errno));
    return VKLM_TOK_ERR_IO;
  }
  size_t pl = strlen(path), cap = 16u << 20, have = 0;
  int jsonl = pl >= 6 && !strcmp(path + pl - 6, ".jsonl");
  char *buf = malloc(cap);
  int rc = buf ? 0 : VKLM_TOK_ERR_NOMEM, eof = 0;
  while (!rc && !eof) {
    if (have == cap) { /* a line longer than the buffer */
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        rc = VKLM_TOK_ERR_NOMEM;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + have, 1, cap - have, f);
    if (got < cap - have) {
      eof = 1;
      if (ferror(f)) {
        tk_seterr(err, errlen, "%s: read error", path);
        free(buf);
        fclose(f);
        return VKLM_TOK_ERR_IO;
      }
    }
    have += got;
    char *p = buf, *end = buf + have;
    while (!rc && p < end) {
      char *nl = memchr(p, '\n', (size_t)(end - p));
      if (!nl && !eof) break; /* incomplete line: read more */
      char *e = nl ? nl + 1 : end;
      rc = feed_line(t, p, (size_t)(e - p), jsonl);
      p = e;
    }
    have = (size_t)(end - p);
    memmove(buf, p, have);
  }
  free(buf);
  fclose(f);
  if (rc) tk_seterr(err, errlen, "%s: out of memory while counting words", path);
  return rc;
}

/* ---- pair map ---- */
static int pmap_grow(pmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  uint64_t *k = calloc(cap, sizeof *k);
  int64_t *v = malloc(cap * sizeof *v);
  if (!k || !v) {
    free(k);
    free(v);
    return VKLM_TOK_ERR_NOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->key[i]) continue;
    size_t j = (size_t)((m->key[i] * 0x9E3779B97F4A7C15ull) >> 24) & (cap - 1);
    while (k[j]) j = (j + 1) & (cap - 1);
    k[j] = m->key[i];
    v[j] = m->val[i];
  }
  free(m->key);
  free(m->val);
  m->key = k;
  m->val = v;
  m->cap = cap;
  return 0;
}

/* Slot of pair (a,b), inserted with value 0 if absent; NULL on allocation failure. */
static int64_t *pmap_slot(pmap *m, int32_t a, int32_t b) {
  if ((m->n + 1) * 2 > m->cap && pmap_grow(m)) return NULL;
  uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  size_t mask = m->cap - 1, i = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 24) & mask;
  while (m->key[i] && m->key[i] != k) i = (i + 1) & mask;
  if (!m->key[i]) {
    m->key[i] = k;
    m->val[i] = 0;
    m->n++;
  }
  return &m->val[i];
}

static void pmap_clear(pmap *m) {
  if (m->n) memset(m->key, 0, m->cap * sizeof *m->key);
  m->n = 0;
}

/* ---- training state ---- */
typedef struct train {
  vklm_bpe_trainer *t;
  /* all words' symbols as linked lists: symbol g of word word_of[g]; sym -1 once merged away */
  int32_t *sym;
  uint32_t *nxt, *prv, *word_of;
  uint32_t *stamp;  /* per word: the merge that listed it last */
  pmap counts;      /* pair -> count */
  pmap step;        /* pair -> word list index + 1, for this step's new heap entries */
  pmap occ;         /* pair -> occurrence list index + 1 */
  wlist *lists;     /* word lists (heap entries) */
  size_t n_lists, cap_lists;
  wlist *occs;      /* occurrence lists: positions g of the pair's left symbol */
  size_t n_occs, cap_occs;
  hentry *heap;
  size_t n_heap, cap_heap;
  int32_t *step_pairs; /* pairs touched by this step, 2 ints each */
  size_t n_step_pairs, cap_step_pairs;
} train;

static int better(const hentry *x, const hentry *y) {
  if (x->count != y->count) return x->count > y->count;
  if (x->a != y->a) return x->a < y->a;
  return x->b < y->b;
}

static int heap_push(train *s, hentry e) {
  if (s->n_heap == s->cap_heap) {
    size_t cap = s->cap_heap ? s->cap_heap * 2 : 64;
    hentry *h = realloc(s->heap, cap * sizeof *h);
    if (!h) return VKLM_TOK_ERR_NOMEM;
    s->heap = h;
    s->cap_heap = cap;
  }
  size_t i = s->n_heap++;
  while (i) {
    size_t p = (i - 1) / 2;
    if (!better(&e, &s->heap[p])) break;
    s->heap[i] = s->heap[p];
    i = p;
  }
  s->heap[i] = e;
  return 0;
}

static hentry heap_pop(train *s) {
  hentry top = s->heap[0], e = s->heap[--s->n_heap];
  size_t i = 0, n = s->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && better(&s->heap[c + 1], &s->heap[c])) c++;
    if (!better(&s->heap[c], &e)) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (n) s->heap[i] = e;
  return top;
}

static int list_new(wlist **lists, size_t *n, size_t *cap, uint32_t *idx) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    wlist *l = realloc(*lists, c * sizeof *l);
    if (!l) return VKLM_TOK_ERR_NOMEM;
    *lists = l;
    *cap = c;
  }
  (*lists)[*n] = (wlist){0};
  *idx = (uint32_t)(*n)++;
  return 0;
}

static int list_add(wlist *l, uint32_t w) {
  if (l->n == l->cap) {
    uint32_t cap = l->cap ? l->cap * 2 : 4;
    uint32_t *p = realloc(l->w, cap * sizeof *p);
    if (!p) return VKLM_TOK_ERR_NOMEM;
    l->w = p;
    l->cap = cap;
  }
  l->w[l->n++] = w;
  return 0;
}

/* Records that pair (a,b) appeared in word w during this step (tokenizers' where_to_update). */
static int step_add(train *s, int32_t a, int32_t b, uint32_t w) {
  int64_t *slot = pmap_slot(&s->step, a, b);
  if (!slot) return VKLM_TOK_ERR_NOMEM;
  if (!*slot) {
    uint32_t li;
    if (list_new(&s->lists, &s->n_lists, &s->cap_lists, &li)) return VKLM_TOK_ERR_NOMEM;
    *slot = (int64_t)li + 1;
    if (s->n_step_pairs == s->cap_step_pairs) {
      size_t cap = s->cap_step_pairs ? s->cap_step_pairs * 2 : 1024;
      int32_t *p = realloc(s->step_pairs, cap * 2 * sizeof *p);
      if (!p) return VKLM_TOK_ERR_NOMEM;
      s->step_pairs = p;
      s->cap_step_pairs = cap;
    }
    s->step_pairs[2 * s->n_step_pairs] = a;
    s->step_pairs[2 * s->n_step_pairs + 1] = b;
    s->n_step_pairs++;
  }
  wlist *l = &s->lists[*slot - 1];
  if (l->n && l->w[l->n - 1] == w) return 0; /* a word's changes arrive together */
  return list_add(l, w);
}

/* Records an occurrence of (a,b) at symbol g. */
static int occ_add(train *s, int32_t a, int32_t b, uint32_t g) {
  int64_t *slot = pmap_slot(&s->occ, a, b);
  if (!slot) return VKLM_TOK_ERR_NOMEM;
  if (!*slot) {
    uint32_t li;
    if (list_new(&s->occs, &s->n_occs, &s->cap_occs, &li)) return VKLM_TOK_ERR_NOMEM;
    *slot = (int64_t)li + 1;
  }
  return list_add(&s->occs[*slot - 1], g);
}

/* Pair (a,b) gained (delta > 0, at symbol g) or lost an occurrence in word w. */
static int change(train *s, int32_t a, int32_t b, int delta, uint32_t w, uint32_t g) {
  int64_t *c = pmap_slot(&s->counts, a, b);
  if (!c) return VKLM_TOK_ERR_NOMEM;
  *c += (int64_t)delta * (int64_t)s->t->wcount[w];
  if (delta < 0) return 0;
  return step_add(s, a, b, w) || occ_add(s, a, b, g) ? VKLM_TOK_ERR_NOMEM : 0;
}

/* Pushes one heap entry per pair recorded in this step (count > 0), then clears the step. */
static int flush_step(train *s) {
  for (size_t i = 0; i < s->n_step_pairs; i++) {
    int32_t a = s->step_pairs[2 * i], b = s->step_pairs[2 * i + 1];
    int64_t li = *pmap_slot(&s->step, a, b), c = *pmap_slot(&s->counts, a, b);
    if (c > 0 && heap_push(s, (hentry){(uint64_t)c, a, b, (uint32_t)(li - 1)})) return VKLM_TOK_ERR_NOMEM;
  }
  s->n_step_pairs = 0;
  pmap_clear(&s->step);
  return 0;
}

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return a < b ? -1 : a > b;
}

/* Merges (a,b) -> nid at every occurrence in the words listed in entry `words` (stamped with
 * `stamp`), left to right within a word, as tokenizers' Word::merge does, with the same count
 * changes: the pair before loses (prev, a) and gains (prev, nid); the pair after loses (b, next)
 * and gains (nid, next); (a, b) itself is not decremented. Occurrences in other words stay. */
static int merge_pair(train *s, int32_t a, int32_t b, int32_t nid, uint32_t stamp) {
  int64_t *slot = pmap_slot(&s->occ, a, b);
  if (!slot) return VKLM_TOK_ERR_NOMEM;
  if (!*slot) return 0;
  size_t oi = (size_t)(*slot - 1);
  wlist o = s->occs[oi]; /* taken out: merging adds lists (and may move the array) */
  s->occs[oi] = (wlist){0};
  qsort(o.w, o.n, sizeof *o.w, cmp_u32); /* positions grow within a word, words are contiguous */
  uint32_t keep = 0, last = NONE;
  int rc = 0;
  for (uint32_t k = 0; k < o.n && !rc; k++) {
    uint32_t g = o.w[k];
    if (g == last) continue;
    last = g;
    uint32_t r = s->nxt[g];
    if (s->sym[g] != a || r == NONE || s->sym[r] != b) continue; /* no longer there */
    uint32_t w = s->word_of[g];
    if (s->stamp[w] != stamp) { /* a word this entry does not list: later */
      o.w[keep++] = g;
      continue;
    }
    uint32_t pg = s->prv[g], nr = s->nxt[r];
    if (pg != NONE) rc = change(s, s->sym[pg], a, -1, w, pg) || change(s, s->sym[pg], nid, 1, w, pg);
    s->sym[g] = nid;
    s->nxt[g] = nr;
    if (nr != NONE) s->prv[nr] = g;
    s->sym[r] = -1;
    if (!rc && nr != NONE) rc = change(s, b, s->sym[nr], -1, w, g) || change(s, nid, s->sym[nr], 1, w, g);
  }
  o.n = keep;
  if (rc || !keep) {
    free(o.w);
    o = (wlist){0};
  }
  s->occs[*pmap_slot(&s->occ, a, b) - 1] = o;
  return rc ? VKLM_TOK_ERR_NOMEM : 0;
}

static void train_free(train *s) {
  free(s->sym);
  free(s->nxt);
  free(s->prv);
  free(s->word_of);
  free(s->stamp);
  free(s->counts.key);
  free(s->counts.val);
  free(s->step.key);
  free(s->step.val);
  free(s->occ.key);
  free(s->occ.val);
  for (size_t i = 0; i < s->n_lists; i++) free(s->lists[i].w);
  free(s->lists);
  for (size_t i = 0; i < s->n_occs; i++) free(s->occs[i].w);
  free(s->occs);
  free(s->heap);
  free(s->step_pairs);
}

/* vocabulary strings (byte-level form, as tokenizers keys them) */
typedef struct vocab {
  vklm_bytes *str;
  size_t n, cap;
  tk_strmap map;
} vocab;

static int vocab_add(vocab *v, const char *s, size_t n, int32_t *id) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 1024;
    vklm_bytes *p = realloc(v->str, cap * sizeof *p);
    if (!p) return VKLM_TOK_ERR_NOMEM;
    /* the map points into the strings' own buffers, which do not move */
    v->str = p;
    v->cap = cap;
  }
  v->str[v->n] = (vklm_bytes){0};
  if (tk_bytes_append(&v->str[v->n], s, n)) return VKLM_TOK_ERR_NOMEM;
  *id = (int32_t)v->n;
  if (tk_strmap_put(&v->map, v->str[v->n].data, n, *id)) return VKLM_TOK_ERR_NOMEM;
  v->n++;
  return 0;
}

static void vocab_free(vocab *v) {
  for (size_t i = 0; i < v->n; i++) vklm_bytes_free(&v->str[i]);
  free(v->str);
  tk_strmap_free(&v->map);
}


int vklm_bpe_trainer_finish(vklm_bpe_trainer *t, vklm_tokenizer **out, char *err, size_t errlen) {
  *out = NULL;
  if (!t->pre || !t->pre->steps) {
    tk_seterr(err, errlen, "trainer already finished");
    return VKLM_TOK_ERR_ARG;
  }
  train s = {0};
  s.t = t;
  vocab v = {0};
  vklm_bytes tmp = {0};
  vklm_tokenizer *tk = NULL;
  int rc = VKLM_TOK_ERR_NOMEM;
  int32_t id, byte_tok[256];
  uint32_t stamp = 0;
  /* 1. specials, 2. the byte alphabet in code point order */
  for (size_t i = 0; i < t->cfg.n_specials; i++) {
    const char *sp = t->cfg.specials[i];
    if (tk_strmap_get(&v.map, sp, strlen(sp)) < 0 && vocab_add(&v, sp, strlen(sp), &id)) goto done;
  }
  int order[256];
  for (int b = 0; b < 256; b++) order[b] = b;
  for (int i = 1; i < 256; i++) /* insertion sort by code point */
    for (int j = i; j > 0 && tk_bytelevel_char((uint8_t)order[j]) < tk_bytelevel_char((uint8_t)order[j - 1]); j--) {
      int x = order[j];
      order[j] = order[j - 1];
      order[j - 1] = x;
    }
  for (int i = 0; i < 256; i++) {
    char c = (char)order[i];
    tmp.n = 0;
    if (tk_bytelevel_encode(&c, 1, &tmp)) goto done;
    id = tk_strmap_get(&v.map, tmp.data, tmp.n);
    if (id < 0 && vocab_add(&v, tmp.data, tmp.n, &id)) goto done;
    byte_tok[(uint8_t)c] = id;
  }
  /* 3. words as linked lists of symbols */
  size_t total = 0;
  const char **wp = calloc(t->n_words + 1, sizeof *wp);
  uint32_t *wl = calloc(t->n_words + 1, sizeof *wl);
  if (!wp || !wl) {
    free(wp);
    free(wl);
    goto done;
  }
  for (size_t i = 0; i < t->words.cap; i++)
    if (t->words.hash[i]) {
      wp[t->words.val[i]] = t->words.key[i];
      wl[t->words.val[i]] = t->words.klen[i];
    }
  for (size_t w = 0; w < t->n_words; w++) total += wl[w];
  if (total >= NONE) {
    free(wp);
    free(wl);
    tk_seterr(err, errlen, "the corpus has more than 4 GB of distinct words");
    rc = VKLM_TOK_ERR_ARG;
    goto done;
  }
  s.sym = malloc((total + 1) * sizeof *s.sym);
  s.nxt = malloc((total + 1) * sizeof *s.nxt);
  s.prv = malloc((total + 1) * sizeof *s.prv);
  s.word_of = malloc((total + 1) * sizeof *s.word_of);
  s.stamp = calloc(t->n_words + 1, sizeof *s.stamp);
  if (!s.sym || !s.nxt || !s.prv || !s.word_of || !s.stamp) {
    free(wp);
    free(wl);
    goto done;
  }
  size_t g = 0;
  for (size_t w = 0; w < t->n_words; w++)
    for (uint32_t i = 0; i < wl[w]; i++, g++) {
      s.sym[g] = byte_tok[(uint8_t)wp[w][i]];
      s.word_of[g] = (uint32_t)w;
      s.prv[g] = i ? (uint32_t)g - 1 : NONE;
      s.nxt[g] = i + 1 < wl[w] ? (uint32_t)g + 1 : NONE;
    }
  free(wp);
  free(wl);
  /* 4. pair counts, the words each pair occurs in, and its occurrences */
  for (size_t k = 0; k + 1 < total; k++)
    if (s.nxt[k] != NONE && change(&s, s.sym[k], s.sym[k + 1], 1, s.word_of[k], (uint32_t)k)) goto done;
  if (flush_step(&s)) goto done;
  /* 5. merges */
  while (v.n < t->cfg.vocab_size && s.n_heap) {
    hentry top = heap_pop(&s);
    int64_t cur = *pmap_slot(&s.counts, top.a, top.b);
    if (top.count != (uint64_t)cur) {
      top.count = (uint64_t)cur;
      if (heap_push(&s, top)) goto done;
      continue;
    }
    if (top.count < 1 || t->cfg.min_frequency > top.count) break;
    tmp.n = 0;
    if (tk_bytes_append(&tmp, v.str[top.a].data, v.str[top.a].n) ||
        tk_bytes_append(&tmp, v.str[top.b].data, v.str[top.b].n))
      goto done;
    id = tk_strmap_get(&v.map, tmp.data, tmp.n);
    if (id < 0 && vocab_add(&v, tmp.data, tmp.n, &id)) goto done;
    if (!tk) { /* merges are collected straight into the tokenizer being built */
      if (tk_build_begin(&tk, t->cfg.vocab_size)) goto done;
    }
    if (tk_build_merge(tk, top.a, top.b, NULL, 0)) goto done;
    stamp++;
    wlist *l = &s.lists[top.list];
    for (uint32_t k = 0; k < l->n; k++) s.stamp[l->w[k]] = stamp;
    free(l->w);
    *l = (wlist){0};
    if (merge_pair(&s, top.a, top.b, id, stamp)) goto done;
    if (flush_step(&s)) goto done;
    if (t->cfg.verbose && tk->n_merges % 1000 == 0)
      fprintf(stderr, "bpe: %zu merges, vocabulary %zu\n", tk->n_merges, v.n);
  }
  /* 6. the tokenizer: ids as assigned; specials are added tokens and model tokens */
  if (!tk && tk_build_begin(&tk, v.n)) goto done;
  tk->n_ids = v.n; /* vocab_size was an upper bound */
  for (size_t i = 0; i < v.n; i++) {
    unsigned fl = TK_TOK_MODEL;
    tmp.n = 0;
    if (!tk_bytelevel_decode(v.str[i].data, v.str[i].n, &tmp)) {
      tmp.n = 0;
      if (tk_bytes_append(&tmp, v.str[i].data, v.str[i].n)) {
        rc = VKLM_TOK_ERR_NOMEM;
        goto done;
      }
      fl |= TK_TOK_RAW;
    }
    if ((rc = tk_build_set(tk, (int32_t)i, tmp.data ? tmp.data : "", tmp.n, fl, err, errlen))) goto done;
  }
  for (size_t i = 0; i < t->cfg.n_specials; i++) {
    const char *sp = t->cfg.specials[i];
    tk_added a = {tk_strmap_get(&v.map, sp, strlen(sp)), (char *)sp, strlen(sp), 1, 0, 0, 0, 0};
    int dup = 0;
    for (size_t j = 0; j < i; j++) dup |= !strcmp(t->cfg.specials[j], sp);
    if (dup) continue;
    if ((rc = tk_build_added(tk, &a, err, errlen))) goto done;
  }
  tk->steps = t->pre->steps; /* the trainer's pre-tokenizer moves to the tokenizer */
  tk->n_steps = t->pre->n_steps;
  t->pre->steps = NULL;
  t->pre->n_steps = 0;
  if ((rc = tk_build_finish(tk, err, errlen))) goto done;
  *out = tk;
  tk = NULL;
  rc = 0;
done:
  if (rc == VKLM_TOK_ERR_NOMEM) tk_seterr(err, errlen, "out of memory while training");
  vklm_tokenizer_destroy(tk);
  vocab_free(&v);
  vklm_bytes_free(&tmp);
  train_free(&s);
  return rc;
}

void vklm_bpe_trainer_destroy(vklm_bpe_trainer *t) {
  if (!t) return;
  vklm_tokenizer_destroy(t->pre);
  tk_pretok_scratch_free(&t->ps);
  while (t->arena) {
    arena_block *n = t->arena->next;
    free(t->arena);
    t->arena = n;
  }
  tk_strmap_free(&t->words);
  free(t->wcount);
  if (t->specials)
    for (size_t i = 0; i < t->cfg.n_specials; i++) free(t->specials[i]);
  free(t->specials);
  free(t);
}

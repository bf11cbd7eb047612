/* bpe_encode.c: text -> ids and ids -> bytes.
 *
 * Encoding: added tokens are cut out first (leftmost-longest, as tokenizers' AddedVocabulary), the
 * text between them is pre-tokenized, and each piece goes through a cache (piece bytes -> ids) or
 * BPE: short pieces use the rank-lookup loop (merge the leftmost lowest-rank pair until none is
 * left), long ones a linked list and a min-heap of (rank, position) with lazy deletion, so a
 * 100 MB piece costs O(n log n), not O(n^2). Both give tokenizers' Word::merge_all result. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

enum { CACHE_MAX_PIECE = 128, CACHE_SLOTS = 1 << 16, SMALL_PIECE = 48 };

typedef struct cache_slot {
  uint64_t hash; /* 0 = empty */
  uint32_t key_off, key_len, ids_off, ids_len;
} cache_slot;

struct vklm_tokenizer_encoder {
  const vklm_tokenizer *tk;
  tk_pretok_scratch ps;
  cache_slot *slots; /* CACHE_SLOTS; cleared when full */
  size_t used;
  vklm_bytes keys;
  vklm_token_ids ids;
  /* BPE scratch */
  int32_t *sym, *prev, *next;
  uint32_t *rank;
  uint64_t *heap;
  size_t cap_sym, cap_heap;
  vklm_token_ids *out;
  vklm_bytes norm, norm_tmp; /* normalized text */
};

int vklm_tokenizer_encoder_create(const vklm_tokenizer *tk, vklm_tokenizer_encoder **out) {
  *out = NULL;
  vklm_tokenizer_encoder *e = calloc(1, sizeof *e);
  if (!e) return VKLM_TOK_ERR_NOMEM;
  e->tk = tk;
  e->slots = calloc(CACHE_SLOTS, sizeof *e->slots);
  if (!e->slots) {
    free(e);
    return VKLM_TOK_ERR_NOMEM;
  }
  *out = e;
  return 0;
}

void vklm_tokenizer_encoder_destroy(vklm_tokenizer_encoder *e) {
  if (!e) return;
  tk_pretok_scratch_free(&e->ps);
  free(e->slots);
  vklm_bytes_free(&e->keys);
  vklm_token_ids_free(&e->ids);
  free(e->sym);
  free(e->prev);
  free(e->next);
  free(e->rank);
  free(e->heap);
  vklm_bytes_free(&e->norm);
  vklm_bytes_free(&e->norm_tmp);
  free(e);
}

static int ensure_sym(vklm_tokenizer_encoder *e, size_t n) {
  if (n <= e->cap_sym) return 0;
  size_t cap = e->cap_sym ? e->cap_sym : 64;
  while (cap < n) cap *= 2;
  int32_t *a = realloc(e->sym, cap * sizeof *a);
  if (a) e->sym = a;
  int32_t *b = realloc(e->prev, cap * sizeof *b);
  if (b) e->prev = b;
  int32_t *c = realloc(e->next, cap * sizeof *c);
  if (c) e->next = c;
  uint32_t *d = realloc(e->rank, cap * sizeof *d);
  if (d) e->rank = d;
  if (!a || !b || !c || !d) return VKLM_TOK_ERR_NOMEM;
  e->cap_sym = cap;
  return 0;
}

/* ---- min-heap of (rank << 32 | position) ---- */
static int heap_push(vklm_tokenizer_encoder *e, size_t *n, uint64_t v) {
  if (*n == e->cap_heap) {
    size_t cap = e->cap_heap ? e->cap_heap * 2 : 256;
    uint64_t *h = realloc(e->heap, cap * sizeof *h);
    if (!h) return VKLM_TOK_ERR_NOMEM;
    e->heap = h;
    e->cap_heap = cap;
  }
  uint64_t *h = e->heap;
  size_t i = (*n)++;
  while (i) {
    size_t p = (i - 1) / 2;
    if (h[p] <= v) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
  return 0;
}

static uint64_t heap_pop(vklm_tokenizer_encoder *e, size_t *n) {
  uint64_t *h = e->heap, top = h[0], v = h[--*n];
  size_t i = 0, m = *n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && h[c + 1] < h[c]) c++;
    if (h[c] >= v) break;
    h[i] = h[c];
    i = c;
  }
  if (m) h[i] = v;
  return top;
}

/* BPE over symbols e->sym[0..n); appends the result to out. */
static int merge_small(vklm_tokenizer_encoder *e, size_t n, vklm_token_ids *out) {
  const tk_pairmap *mm = &e->tk->merge_map;
  int32_t *s = e->sym, nid = -1;
  uint32_t *r = e->rank, rk = 0;
  for (size_t i = 0; i + 1 < n; i++) r[i] = tk_pairmap_get(mm, s[i], s[i + 1], &rk, &nid) ? rk : UINT32_MAX;
  while (n > 1) {
    size_t best = 0;
    uint32_t br = UINT32_MAX;
    for (size_t i = 0; i + 1 < n; i++)
      if (r[i] < br) br = r[i], best = i;
    if (br == UINT32_MAX) break;
    tk_pairmap_get(mm, s[best], s[best + 1], &rk, &nid);
    s[best] = nid;
    memmove(s + best + 1, s + best + 2, (n - best - 2) * sizeof *s);
    memmove(r + best + 1, r + best + 2, (n - best > 2 ? n - best - 3 : 0) * sizeof *r);
    n--;
    if (best > 0) r[best - 1] = tk_pairmap_get(mm, s[best - 1], s[best], &rk, &nid) ? rk : UINT32_MAX;
    if (best + 1 < n) r[best] = tk_pairmap_get(mm, s[best], s[best + 1], &rk, &nid) ? rk : UINT32_MAX;
  }
  for (size_t i = 0; i < n; i++)
    if (tk_ids_push(out, s[i])) return VKLM_TOK_ERR_NOMEM;
  return 0;
}

static int merge_large(vklm_tokenizer_encoder *e, size_t n, vklm_token_ids *out) {
  const tk_pairmap *mm = &e->tk->merge_map;
  int32_t *s = e->sym, *pv = e->prev, *nx = e->next, nid;
  uint32_t rk;
  size_t hn = 0;
  for (size_t i = 0; i < n; i++) {
    pv[i] = (int32_t)i - 1;
    nx[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    if (i + 1 < n && tk_pairmap_get(mm, s[i], s[i + 1], &rk, &nid) &&
        heap_push(e, &hn, ((uint64_t)rk << 32) | i))
      return VKLM_TOK_ERR_NOMEM;
  }
  while (hn) {
    uint64_t top = heap_pop(e, &hn);
    uint32_t r = (uint32_t)(top >> 32);
    int32_t i = (int32_t)(uint32_t)top;
    if (s[i] < 0 || nx[i] < 0) continue;
    int32_t j = nx[i];
    if (!tk_pairmap_get(mm, s[i], s[j], &rk, &nid) || rk != r) continue; /* stale */
    s[i] = nid;
    s[j] = -1;
    nx[i] = nx[j];
    if (nx[j] >= 0) pv[nx[j]] = i;
    if (pv[i] >= 0 && tk_pairmap_get(mm, s[pv[i]], s[i], &rk, &nid) &&
        heap_push(e, &hn, ((uint64_t)rk << 32) | (uint32_t)pv[i]))
      return VKLM_TOK_ERR_NOMEM;
    if (nx[i] >= 0 && tk_pairmap_get(mm, s[i], s[nx[i]], &rk, &nid) &&
        heap_push(e, &hn, ((uint64_t)rk << 32) | (uint32_t)i))
      return VKLM_TOK_ERR_NOMEM;
  }
  for (int32_t i = 0; i >= 0; i = nx[i])
    if (tk_ids_push(out, s[i])) return VKLM_TOK_ERR_NOMEM;
  return 0;
}

/* BPE of one piece, appended to out. */
static int bpe_piece(vklm_tokenizer_encoder *e, const char *p, size_t len, vklm_token_ids *out) {
  const vklm_tokenizer *tk = e->tk;
  if (len == 1 && tk->byte_id[(uint8_t)p[0]] >= 0) return tk_ids_push(out, tk->byte_id[(uint8_t)p[0]]);
  if (tk->ignore_merges) {
    int32_t id = tk_strmap_get(&tk->model_map, p, len);
    if (id >= 0) return tk_ids_push(out, id);
  }
  if (len >= (size_t)INT32_MAX) return VKLM_TOK_ERR_ARG;
  if (ensure_sym(e, len)) return VKLM_TOK_ERR_NOMEM;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    int32_t id = tk->byte_id[(uint8_t)p[i]];
    if (id < 0) id = tk->unk_id; /* no unk: the byte is dropped, as tokenizers does */
    if (id >= 0) e->sym[n++] = id;
  }
  return n <= SMALL_PIECE ? merge_small(e, n, out) : merge_large(e, n, out);
}

static void cache_clear(vklm_tokenizer_encoder *e) {
  memset(e->slots, 0, CACHE_SLOTS * sizeof *e->slots);
  e->used = 0;
  e->keys.n = 0;
  e->ids.n = 0;
}

static int on_piece(void *ctx, const char *p, size_t len) {
  vklm_tokenizer_encoder *e = ctx;
  if (len > CACHE_MAX_PIECE) return bpe_piece(e, p, len, e->out);
  uint64_t h = tk_hash_bytes(p, len);
  size_t i = (size_t)h & (CACHE_SLOTS - 1);
  for (;;) {
    cache_slot *c = &e->slots[i];
    if (!c->hash) break;
    if (c->hash == h && c->key_len == len && !memcmp(e->keys.data + c->key_off, p, len)) {
      for (uint32_t k = 0; k < c->ids_len; k++)
        if (tk_ids_push(e->out, e->ids.ids[c->ids_off + k])) return VKLM_TOK_ERR_NOMEM;
      return 0;
    }
    i = (i + 1) & (CACHE_SLOTS - 1);
  }
  size_t before = e->out->n;
  int rc = bpe_piece(e, p, len, e->out);
  if (rc) return rc;
  if (e->used * 4 >= CACHE_SLOTS * 3 || e->keys.n > (64u << 20)) {
    cache_clear(e);
    i = (size_t)h & (CACHE_SLOTS - 1);
    while (e->slots[i].hash) i = (i + 1) & (CACHE_SLOTS - 1);
  }
  size_t nids = e->out->n - before, koff = e->keys.n, ioff = e->ids.n;
  if (tk_bytes_append(&e->keys, p, len)) return 0; /* cache is optional */
  for (size_t k = 0; k < nids; k++)
    if (tk_ids_push(&e->ids, e->out->ids[before + k])) {
      e->keys.n = koff;
      e->ids.n = ioff;
      return 0;
    }
  e->slots[i] = (cache_slot){h, (uint32_t)koff, (uint32_t)len, (uint32_t)ioff, (uint32_t)nids};
  e->used++;
  return 0;
}

static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_wordc(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c >= 0x80;
}

/* The added token matching at text[i] (longest first), or NULL. */
static const tk_added *match_added(const vklm_tokenizer *tk, const char *text, size_t len, size_t i,
                                   unsigned flags) {
  for (size_t k = 0; k < tk->n_added; k++) {
    const tk_added *a = &tk->added[k];
    if (a->special && !(flags & VKLM_ENCODE_SPECIALS)) continue;
    if (a->len > len - i || memcmp(text + i, a->content, a->len)) continue;
    if (a->single_word && ((i > 0 && is_wordc((unsigned char)text[i - 1])) ||
                           (i + a->len < len && is_wordc((unsigned char)text[i + a->len]))))
      continue;
    return a;
  }
  return NULL;
}

static int encode_text(vklm_tokenizer_encoder *e, const char *text, size_t len) {
  if (e->tk->n_norm && len) {
    int rc = tk_normalize(e->tk, text, len, &e->norm, &e->norm_tmp);
    if (rc) return rc;
    text = e->norm.data;
    len = e->norm.n;
  }
  return tk_pretokenize(e->tk, &e->ps, text, len, on_piece, e);
}

int vklm_tokenizer_encoder_encode(vklm_tokenizer_encoder *e, const char *text, size_t len,
                                  unsigned flags, vklm_token_ids *out) {
  const vklm_tokenizer *tk = e->tk;
  size_t n0 = out->n;
  e->out = out;
  int any = 0;
  for (size_t k = 0; k < tk->n_added && !any; k++)
    any = !tk->added[k].special || (flags & VKLM_ENCODE_SPECIALS);
  int rc = 0;
  if (!any) {
    rc = encode_text(e, text, len);
  } else {
    size_t seg = 0;
    for (size_t i = 0; i < len && !rc;) {
      if (!tk->added_first[(uint8_t)text[i]]) {
        i++;
        continue;
      }
      const tk_added *a = match_added(tk, text, len, i, flags);
      if (!a) {
        i++;
        continue;
      }
      size_t s = i, t = i + a->len;
      if (a->lstrip)
        while (s > seg && is_space((unsigned char)text[s - 1])) s--;
      if (a->rstrip)
        while (t < len && is_space((unsigned char)text[t])) t++;
      rc = encode_text(e, text + seg, s - seg);
      if (!rc) rc = tk_ids_push(out, a->id);
      seg = i = t;
    }
    if (!rc && seg < len) rc = encode_text(e, text + seg, len - seg);
  }
  e->out = NULL;
  if (rc) out->n = n0;
  return rc;
}

int vklm_tokenizer_encode(vklm_tokenizer *tk, const char *text, size_t len, unsigned flags,
                          vklm_token_ids *out) {
  if (!tk->own) {
    int rc = vklm_tokenizer_encoder_create(tk, &tk->own);
    if (rc) return rc;
  }
  return vklm_tokenizer_encoder_encode(tk->own, text, len, flags, out);
}

int vklm_tokenizer_decode(const vklm_tokenizer *tk, const int32_t *ids, size_t n, unsigned flags,
                          vklm_bytes *out) {
  size_t n0 = out->n;
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0 || (size_t)id >= tk->n_ids || !(tk->flags[id] & TK_TOK_PRESENT)) {
      out->n = n0;
      if (out->data) out->data[n0] = 0;
      return VKLM_TOK_ERR_ARG;
    }
    if ((flags & VKLM_DECODE_SKIP_SPECIALS) && (tk->flags[id] & TK_TOK_SPECIAL)) continue;
    if (tk_bytes_append(out, tk->blob + tk->off[id], tk->off[id + 1] - tk->off[id])) {
      out->n = n0;
      return VKLM_TOK_ERR_NOMEM;
    }
  }
  if (tk_bytes_append(out, "", 0)) return VKLM_TOK_ERR_NOMEM;
  return 0;
}

/* Incremental detokenization with stop strings (stream.h): a UTF-8 cleaner feeding an
 * Aho-Corasick automaton, over one growing text buffer. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

/* A node of the stops' trie; its string is the path from the root. */
typedef struct acnode {
  int32_t child, sib; /* first child, next sibling (-1: none) */
  int32_t fail;       /* the longest proper suffix of this string that is a node */
  int32_t term;       /* the stop whose whole string this is, or -1 */
  int32_t out;        /* the longest stop that is a suffix of this string, or -1 */
  uint32_t depth;     /* the string's length */
  uint8_t c;          /* the byte on the edge from the parent */
} acnode;

struct vklm_stream {
  const vklm_tokenizer *tk; /* borrowed */
  unsigned flags;
  acnode *nodes; /* owned; nodes[0] is the root */
  uint32_t nnodes;
  uint32_t *stop_len; /* owned, per stop */
  uint32_t nstops;
  /* the sequence */
  char *text; /* owned: the cleaned text so far */
  size_t n, cap;
  size_t emitted;
  int32_t state;    /* the automaton's node: the longest suffix of text that is a stop prefix */
  uint8_t pend[4];  /* an incomplete character's bytes */
  uint32_t npend, need;
  int stopped;      /* the stop that ended the sequence, or -1 */
  int finished;
};

static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* The length of the character a byte starts, 0 when it starts none: a continuation byte, C0 and
 * C1 (which could only start overlong forms), F5-FF (past U+10FFFF) become U+FFFD. */
static uint32_t utf8_len(uint8_t c) {
  return c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                      : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
}

/* Whether c may follow lead as its second byte (Unicode's table 3-7: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
static int second_ok(uint8_t lead, uint8_t c) {
  if ((c & 0xC0) != 0x80) return 0;
  switch (lead) {
  case 0xE0: return c >= 0xA0;
  case 0xED: return c <= 0x9F;
  case 0xF0: return c >= 0x90;
  case 0xF4: return c <= 0x8F;
  default: return 1;
  }
}

static int valid_utf8(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n;) {
    uint32_t len = utf8_len(s[i]);
    if (!len || i + len > n) return 0;
    if (len > 1 && !second_ok(s[i], s[i + 1])) return 0;
    for (uint32_t k = 2; k < len; k++)
      if ((s[i + k] & 0xC0) != 0x80) return 0;
    i += len;
  }
  return 1;
}

static int32_t find_child(const vklm_stream *s, int32_t v, uint8_t c) {
  for (int32_t ch = s->nodes[v].child; ch >= 0; ch = s->nodes[ch].sib)
    if (s->nodes[ch].c == c) return ch;
  return -1;
}

/* The automaton's move from v on byte c: amortized O(1) per byte over a text. */
static int32_t next_state(const vklm_stream *s, int32_t v, uint8_t c) {
  for (;;) {
    int32_t ch = find_child(s, v, c);
    if (ch >= 0) return ch;
    if (v == 0) return 0;
    v = s->nodes[v].fail;
  }
}

/* The trie of the stops, then fail and out links in breadth-first order. */
static vklm_status build(vklm_stream *s, const vklm_stream_options *o) {
  size_t total = 1;
  for (uint32_t k = 0; k < o->nstops; k++) {
    size_t len = o->stop_lens ? o->stop_lens[k] : strlen(o->stops[k]);
    if (!len || !valid_utf8((const uint8_t *)o->stops[k], len) || len > UINT32_MAX / 2)
      return VKLM_ERROR_INVALID;
    total += len;
  }
  if (total > INT32_MAX) return VKLM_ERROR_INVALID;
  s->nodes = malloc(sizeof *s->nodes * total);
  s->stop_len = malloc(sizeof *s->stop_len * (o->nstops ? o->nstops : 1));
  int32_t *queue = malloc(sizeof *queue * total);
  if (!s->nodes || !s->stop_len || !queue) {
    free(queue);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  s->nodes[0] = (acnode){-1, -1, 0, -1, -1, 0, 0};
  s->nnodes = 1;
  s->nstops = o->nstops;
  for (uint32_t k = 0; k < o->nstops; k++) {
    const uint8_t *p = (const uint8_t *)o->stops[k];
    size_t len = o->stop_lens ? o->stop_lens[k] : strlen(o->stops[k]);
    int32_t v = 0;
    for (size_t i = 0; i < len; i++) {
      int32_t ch = find_child(s, v, p[i]);
      if (ch < 0) {
        ch = (int32_t)s->nnodes++;
        s->nodes[ch] = (acnode){-1, s->nodes[v].child, 0, -1, -1, s->nodes[v].depth + 1, p[i]};
        s->nodes[v].child = ch;
      }
      v = ch;
    }
    if (s->nodes[v].term < 0) s->nodes[v].term = (int32_t)k; /* a repeated stop: the first */
    s->stop_len[k] = (uint32_t)len;
  }
  size_t qh = 0, qt = 0;
  queue[qt++] = 0;
  while (qh < qt) {
    int32_t u = queue[qh++];
    for (int32_t v = s->nodes[u].child; v >= 0; v = s->nodes[v].sib) {
      int32_t f = 0;
      if (u != 0) {
        f = s->nodes[u].fail;
        int32_t g;
        while ((g = find_child(s, f, s->nodes[v].c)) < 0 && f != 0) f = s->nodes[f].fail;
        f = g >= 0 ? g : 0;
      }
      s->nodes[v].fail = f;
      s->nodes[v].out = s->nodes[v].term >= 0 ? s->nodes[v].term : s->nodes[f].out;
      queue[qt++] = v;
    }
  }
  free(queue);
  return VKLM_OK;
}

vklm_status vklm_stream_create(const vklm_tokenizer *tk, const vklm_stream_options *o,
                               vklm_stream **out) {
  static const vklm_stream_options none = {NULL, NULL, 0, 0};
  if (!o) o = &none;
  *out = NULL;
  vklm_stream *s = calloc(1, sizeof *s);
  if (!s) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  s->tk = tk;
  s->flags = o->flags;
  s->cap = 256;
  s->text = malloc(s->cap);
  vklm_status st = s->text ? build(s, o) : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (st != VKLM_OK) {
    vklm_stream_destroy(s);
    return st;
  }
  vklm_stream_reset(s);
  *out = s;
  return VKLM_OK;
}

void vklm_stream_destroy(vklm_stream *s) {
  if (!s) return;
  free(s->nodes);
  free(s->stop_len);
  free(s->text);
  free(s);
}

void vklm_stream_reset(vklm_stream *s) {
  s->n = s->emitted = 0;
  s->state = 0;
  s->npend = s->need = 0;
  s->stopped = -1;
  s->finished = 0;
}

static int reserve(vklm_stream *s, size_t more) {
  if (s->n + more <= s->cap) return 0;
  size_t cap = s->cap * 2 > s->n + more ? s->cap * 2 : s->n + more;
  char *p = realloc(s->text, cap);
  if (!p) return -1;
  s->text = p;
  s->cap = cap;
  return 0;
}

/* Appends cleaned bytes (room reserved), stepping the automaton; 1 when a stop completed: the
 * text then ends where it began. */
static int put(vklm_stream *s, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    s->text[s->n++] = b[i];
    if (!s->nstops) continue;
    s->state = next_state(s, s->state, (uint8_t)b[i]);
    int32_t k = s->nodes[s->state].out;
    if (k >= 0) {
      s->n -= s->stop_len[k];
      s->stopped = k;
      return 1;
    }
  }
  return 0;
}

/* The held incomplete character is not one: U+FFFD for its lead byte and for each of the
 * continuation bytes after it (each starts no character). */
static int flush_pending(vklm_stream *s) {
  uint32_t np = s->npend;
  s->npend = 0;
  for (uint32_t i = 0; i < np; i++)
    if (put(s, FFFD, 3)) return 1;
  return 0;
}

/* One raw byte through the cleaner. */
static int feed(vklm_stream *s, uint8_t c) {
  if (s->npend) {
    if (s->npend == 1 ? second_ok(s->pend[0], c) : (c & 0xC0) == 0x80) {
      s->pend[s->npend++] = c;
      if (s->npend < s->need) return 0;
      s->npend = 0;
      return put(s, (const char *)s->pend, s->need);
    }
    if (flush_pending(s)) return 1;
  }
  uint32_t len = utf8_len(c);
  if (len == 1) return put(s, (const char *)&c, 1);
  if (len == 0) return put(s, FFFD, 3);
  s->pend[0] = c;
  s->npend = 1;
  s->need = len;
  return 0;
}

/* Hands out text[emitted, final): everything when the sequence ended, else all but the
 * automaton's state (a suffix that may begin a stop). */
static void emit(vklm_stream *s, vklm_stream_piece *out, int stop) {
  size_t final = stop || s->finished ? s->n : s->n - s->nodes[s->state].depth;
  VKLM_ASSERT(final >= s->emitted, "stream: final %zu < emitted %zu", final, s->emitted);
  out->text = s->text + s->emitted;
  out->n = final - s->emitted;
  out->stop = stop ? s->stopped : -1;
  s->emitted = final;
}

vklm_status vklm_stream_push(vklm_stream *s, int32_t id, vklm_stream_piece *out) {
  *out = (vklm_stream_piece){s->text + s->emitted, 0, -1};
  if (s->stopped >= 0 || s->finished) return VKLM_OK;
  size_t len;
  const char *b = vklm_tokenizer_token_bytes(s->tk, id, &len);
  if (!b) return VKLM_ERROR_INVALID;
  if ((s->flags & VKLM_STREAM_SKIP_SPECIALS) && vklm_tokenizer_is_special(s->tk, id)) len = 0;
  /* each byte adds at most 3 (U+FFFD), plus a held character's flush */
  if (len > (SIZE_MAX - 16) / 3 || reserve(s, 3 * len + 16)) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  int stop = 0;
  for (size_t i = 0; i < len && !stop; i++) stop = feed(s, (uint8_t)b[i]);
  emit(s, out, stop);
  return VKLM_OK;
}

vklm_status vklm_stream_finish(vklm_stream *s, vklm_stream_piece *out) {
  *out = (vklm_stream_piece){s->text + s->emitted, 0, -1};
  if (s->stopped >= 0 || s->finished) return VKLM_OK;
  if (reserve(s, 16)) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  int stop = flush_pending(s);
  s->finished = 1;
  emit(s, out, stop);
  return VKLM_OK;
}

const char *vklm_stream_text(const vklm_stream *s, size_t *n) {
  *n = s->n;
  return s->text;
}

size_t vklm_stream_emitted(const vklm_stream *s) { return s->emitted; }

int vklm_stream_stopped(const vklm_stream *s) { return s->stopped; }

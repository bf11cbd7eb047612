/* buf: a growable byte buffer used by every step of the text pipeline (engine/data/).
 * Owns its bytes; always keeps a NUL after the last byte so C string calls are safe on it
 * (the text itself may still hold NULs before repair). Allocation failure is reported by a
 * nonzero return and leaves the buffer unchanged; nothing here aborts. */
#ifndef VKLM_DATA_BUF_H
#define VKLM_DATA_BUF_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vklm_buf {
  char *p;    /* owned; NULL until the first append */
  size_t n;   /* bytes in use */
  size_t cap; /* bytes allocated, > n when p != NULL */
} vklm_buf;

static inline int vklm_buf_reserve(vklm_buf *b, size_t extra) {
  if (b->p && b->n + extra < b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap <= b->n + extra) {
    if (cap > ((size_t)-1) / 2) return -1;
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static inline int vklm_buf_append(vklm_buf *b, const void *s, size_t n) {
  if (vklm_buf_reserve(b, n)) return -1;
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}

static inline int vklm_buf_putc(vklm_buf *b, char c) { return vklm_buf_append(b, &c, 1); }

static inline void vklm_buf_clear(vklm_buf *b) {
  b->n = 0;
  if (b->p) b->p[0] = 0;
}

static inline void vklm_buf_free(vklm_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* Exchanges the contents of two buffers (steps write into a scratch buffer, then swap). */
static inline void vklm_buf_swap(vklm_buf *a, vklm_buf *b) {
  vklm_buf t = *a;
  *a = *b;
  *b = t;
}

/* Formats an error message into err (when given) and returns -1: the failure convention of the
 * pipeline's file-level functions (shards, prepare, tokenize). */
static inline int vklm_data_fail(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int vklm_data_fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && n) vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

#endif

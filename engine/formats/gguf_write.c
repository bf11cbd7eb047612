/* gguf_write: the GGUF writer (version 3). Metadata is serialized into a byte buffer as it is
 * added; tensors are converted from fp32 when added; finish lays out and writes the file. */
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct wtensor {
  char *name;     /* owned */
  uint32_t type, n_dims;
  int64_t ne[VKLM_GGUF_MAX_DIMS];
  uint64_t nbytes;
  uint8_t *data;  /* owned, nbytes */
} wtensor;

struct vklm_gguf_writer {
  uint32_t alignment;
  uint8_t *meta; /* owned: serialized key/value pairs */
  size_t meta_len, meta_cap;
  char **keys;   /* owned: the keys added, for duplicate checks */
  size_t n_kv, keys_cap;
  wtensor *tensors; /* owned */
  size_t n_tensors, tensors_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > SIZE_MAX / 2 / elem) return -1;
    c *= 2;
  }
  void *q = realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

static int put(vklm_gguf_writer *w, const void *src, size_t n) {
  if (n > SIZE_MAX - w->meta_len) return -1;
  if (grow((void **)&w->meta, &w->meta_cap, w->meta_len + n, 1)) return -1;
  if (n) memcpy(w->meta + w->meta_len, src, n);
  w->meta_len += n;
  return 0;
}
static int put_le(vklm_gguf_writer *w, uint64_t v, int n) {
  uint8_t b[8];
  for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
  return put(w, b, (size_t)n);
}
static int put_str(vklm_gguf_writer *w, const char *s, size_t len) {
  return put_le(w, len, 8) || put(w, s, len) ? -1 : 0;
}

/* Starts an entry: checks the key, records it, writes key and type. On failure the buffer is
 * rolled back by the caller through *mark. */
static int begin(vklm_gguf_writer *w, const char *key, uint32_t type, size_t *mark) {
  size_t len = key ? strlen(key) : 0;
  if (len == 0 || len > VKLM_GGUF_MAX_KEY) return -1;
  for (size_t i = 0; i < w->n_kv; i++)
    if (!strcmp(w->keys[i], key)) return -1;
  if (grow((void **)&w->keys, &w->keys_cap, w->n_kv + 1, sizeof *w->keys)) return -1;
  *mark = w->meta_len;
  if (put_str(w, key, len) || put_le(w, type, 4)) {
    w->meta_len = *mark;
    return -1;
  }
  return 0;
}
static int end(vklm_gguf_writer *w, const char *key, int rc, size_t mark) {
  char *k = rc ? NULL : strdup(key);
  if (rc || !k) {
    w->meta_len = mark;
    return -1;
  }
  w->keys[w->n_kv++] = k;
  return 0;
}

static int add_scalar(vklm_gguf_writer *w, const char *key, uint32_t type, uint64_t bits) {
  size_t mark;
  if (begin(w, key, type, &mark)) return -1;
  return end(w, key, put_le(w, bits, (int)vklm_gguf_type_size(type)), mark);
}

int vklm_gguf_writer_add_u8(vklm_gguf_writer *w, const char *k, uint8_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_UINT8, v);
}
int vklm_gguf_writer_add_i8(vklm_gguf_writer *w, const char *k, int8_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_INT8, (uint8_t)v);
}
int vklm_gguf_writer_add_u16(vklm_gguf_writer *w, const char *k, uint16_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_UINT16, v);
}
int vklm_gguf_writer_add_i16(vklm_gguf_writer *w, const char *k, int16_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_INT16, (uint16_t)v);
}
int vklm_gguf_writer_add_u32(vklm_gguf_writer *w, const char *k, uint32_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_UINT32, v);
}
int vklm_gguf_writer_add_i32(vklm_gguf_writer *w, const char *k, int32_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_INT32, (uint32_t)v);
}
int vklm_gguf_writer_add_u64(vklm_gguf_writer *w, const char *k, uint64_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_UINT64, v);
}
int vklm_gguf_writer_add_i64(vklm_gguf_writer *w, const char *k, int64_t v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_INT64, (uint64_t)v);
}
int vklm_gguf_writer_add_f32(vklm_gguf_writer *w, const char *k, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return add_scalar(w, k, VKLM_GGUF_TYPE_FLOAT32, u);
}
int vklm_gguf_writer_add_f64(vklm_gguf_writer *w, const char *k, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  return add_scalar(w, k, VKLM_GGUF_TYPE_FLOAT64, u);
}
int vklm_gguf_writer_add_bool(vklm_gguf_writer *w, const char *k, int v) {
  return add_scalar(w, k, VKLM_GGUF_TYPE_BOOL, v ? 1 : 0);
}
int vklm_gguf_writer_add_str(vklm_gguf_writer *w, const char *k, const char *s) {
  size_t mark;
  if (!s || begin(w, k, VKLM_GGUF_TYPE_STRING, &mark)) return -1;
  return end(w, k, put_str(w, s, strlen(s)), mark);
}

int vklm_gguf_writer_add_array(vklm_gguf_writer *w, const char *key, uint32_t type,
                               const void *data, uint64_t n) {
  uint32_t es = vklm_gguf_type_size(type);
  size_t mark;
  if (!es || (n && !data) || n > SIZE_MAX / es) return -1;
  if (type == VKLM_GGUF_TYPE_BOOL)
    for (uint64_t i = 0; i < n; i++)
      if (((const uint8_t *)data)[i] > 1) return -1;
  if (begin(w, key, VKLM_GGUF_TYPE_ARRAY, &mark)) return -1;
  int rc = put_le(w, type, 4) || put_le(w, n, 8);
  const uint8_t *p = data; /* host values, written little-endian one by one */
  for (uint64_t i = 0; i < n && !rc; i++) {
    uint64_t v = 0;
    if (es == 1) v = p[i];
    else if (es == 2) { uint16_t x; memcpy(&x, p + i * 2, 2); v = x; }
    else if (es == 4) { uint32_t x; memcpy(&x, p + i * 4, 4); v = x; }
    else memcpy(&v, p + i * 8, 8);
    rc = put_le(w, v, (int)es);
  }
  return end(w, key, rc, mark);
}

int vklm_gguf_writer_add_array_str(vklm_gguf_writer *w, const char *key,
                                   const char *const *strs, uint64_t n) {
  size_t mark;
  for (uint64_t i = 0; i < n; i++)
    if (!strs[i]) return -1;
  if (begin(w, key, VKLM_GGUF_TYPE_ARRAY, &mark)) return -1;
  int rc = put_le(w, VKLM_GGUF_TYPE_STRING, 4) || put_le(w, n, 8);
  for (uint64_t i = 0; i < n && !rc; i++) rc = put_str(w, strs[i], strlen(strs[i]));
  return end(w, key, rc, mark);
}

int vklm_gguf_writer_add_tensor(vklm_gguf_writer *w, const char *name, uint32_t type,
                                uint32_t n_dims, const int64_t *ne, const float *src) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len > VKLM_GGUF_MAX_NAME || n_dims > VKLM_GGUF_MAX_DIMS) return -1;
  if (type != VKLM_GGML_TYPE_F32 && type != VKLM_GGML_TYPE_F16 && type != VKLM_GGML_TYPE_BF16 &&
      type != VKLM_GGML_TYPE_Q8_0 && type != VKLM_GGML_TYPE_Q4_0)
    return -1;
  for (size_t i = 0; i < w->n_tensors; i++)
    if (!strcmp(w->tensors[i].name, name)) return -1;
  wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
  uint64_t nelem = 1;
  for (uint32_t d = 0; d < n_dims; d++) {
    if (ne[d] < 1 || (uint64_t)ne[d] > SIZE_MAX / 4 / nelem) return -1; /* fp32 source fits */
    nelem *= (uint64_t)ne[d];
    t.ne[d] = ne[d];
  }
  int64_t row = vklm_ggml_row_bytes(type, t.ne[0]);
  if (row < 0) return -1;
  t.nbytes = (uint64_t)row * (nelem / (uint64_t)t.ne[0]); /* <= 4 * nelem: fits */
  if (grow((void **)&w->tensors, &w->tensors_cap, w->n_tensors + 1, sizeof *w->tensors)) return -1;
  t.name = strdup(name);
  t.data = malloc(t.nbytes ? (size_t)t.nbytes : 1);
  if (!t.name || !t.data || vklm_ggml_from_f32(type, t.data, src, (size_t)nelem)) {
    free(t.name);
    free(t.data);
    return -1;
  }
  w->tensors[w->n_tensors++] = t;
  return 0;
}

int vklm_gguf_writer_create(uint32_t alignment, vklm_gguf_writer **out) {
  *out = NULL;
  if (alignment == 0) alignment = VKLM_GGUF_DEFAULT_ALIGNMENT;
  if (alignment & (alignment - 1)) return -1;
  vklm_gguf_writer *w = calloc(1, sizeof *w);
  if (!w) return -1;
  w->alignment = alignment;
  if (alignment != VKLM_GGUF_DEFAULT_ALIGNMENT &&
      vklm_gguf_writer_add_u32(w, "general.alignment", alignment)) {
    vklm_gguf_writer_destroy(w);
    return -1;
  }
  *out = w;
  return 0;
}

void vklm_gguf_writer_destroy(vklm_gguf_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
  for (size_t i = 0; i < w->n_tensors; i++) {
    free(w->tensors[i].name);
    free(w->tensors[i].data);
  }
  free(w->keys);
  free(w->tensors);
  free(w->meta);
  free(w);
}

static int wr(FILE *f, const void *p, size_t n) { return n && fwrite(p, 1, n, f) != n ? -1 : 0; }
static int wr_le(FILE *f, uint64_t v, int n) {
  uint8_t b[8];
  for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
  return wr(f, b, (size_t)n);
}
static int wr_pad(FILE *f, uint64_t pos, uint32_t align) {
  static const uint8_t zero[256];
  uint64_t pad = (align - pos % align) % align;
  while (pad) {
    size_t n = pad < sizeof zero ? (size_t)pad : sizeof zero;
    if (wr(f, zero, n)) return -1;
    pad -= n;
  }
  return 0;
}
static uint64_t align_up(uint64_t x, uint32_t a) { return x + (a - x % a) % a; }

int vklm_gguf_writer_finish(vklm_gguf_writer *w, const char *path, char *err, size_t errlen) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 5);
  FILE *f = NULL;
  int rc = -1;
  const char *what = "out of memory";
  if (!tmp) goto done;
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  what = "create";
  if (!(f = fopen(tmp, "wb"))) goto done;
  what = "write";
  uint64_t pos = 24 + w->meta_len;
  if (wr(f, "GGUF", 4) || wr_le(f, 3, 4) || wr_le(f, w->n_tensors, 8) || wr_le(f, w->n_kv, 8) ||
      wr(f, w->meta, w->meta_len))
    goto done;
  uint64_t off = 0;
  for (size_t i = 0; i < w->n_tensors; i++) {
    const wtensor *t = &w->tensors[i];
    size_t nl = strlen(t->name);
    if (wr_le(f, nl, 8) || wr(f, t->name, nl) || wr_le(f, t->n_dims, 4)) goto done;
    for (uint32_t d = 0; d < t->n_dims; d++)
      if (wr_le(f, (uint64_t)t->ne[d], 8)) goto done;
    if (wr_le(f, t->type, 4) || wr_le(f, off, 8)) goto done;
    pos += 8 + nl + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
    off = align_up(off + t->nbytes, w->alignment);
  }
  if (w->n_tensors && wr_pad(f, pos, w->alignment)) goto done;
  off = 0;
  for (size_t i = 0; i < w->n_tensors; i++) {
    const wtensor *t = &w->tensors[i];
    if (wr(f, t->data, (size_t)t->nbytes)) goto done;
    off += t->nbytes;
    if (wr_pad(f, off, w->alignment)) goto done; /* after the last too, as gguf-py does */
    off = align_up(off, w->alignment);
  }
  what = "flush";
  if (fflush(f) || fsync(fileno(f))) goto done;
  what = "close";
  int c = fclose(f);
  f = NULL;
  if (c) goto done;
  what = "rename";
  if (rename(tmp, path)) goto done;
  rc = 0;
done:
  if (rc && err && errlen) snprintf(err, errlen, "%s: %s: %s", tmp ? tmp : path, what, strerror(errno));
  if (f) fclose(f);
  if (rc && tmp) unlink(tmp);
  free(tmp);
  vklm_gguf_writer_destroy(w);
  return rc;
}

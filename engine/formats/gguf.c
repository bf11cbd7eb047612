/* gguf: the GGUF reader. The whole file is validated in vklm_gguf_open; see gguf.h. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ref ref;
typedef struct kv {
  char *key; /* owned, NUL-terminated */
  vklm_gguf_value v; /* v.str owned (STRING); v.arr.str_off owned (array of strings) */
} kv;

struct vklm_gguf {
  const uint8_t *base; /* the file image: owned mapping or borrowed memory */
  uint64_t size;
  int mapped;
  uint32_t version, alignment;
  uint64_t data_offset;
  kv *kvs;        /* owned, n_kv, file order */
  size_t n_kv;
  ref *kv_sorted; /* owned: keys sorted */
  vklm_gguf_tensor *tensors; /* owned, n_tensors, file order; names owned */
  size_t n_tensors;
  ref *t_sorted;  /* owned: tensor names sorted */
};

static const char *type_names[VKLM_GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64"};
static const uint8_t type_sizes[VKLM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *vklm_gguf_type_name(uint32_t type) {
  return type < VKLM_GGUF_TYPE_COUNT ? type_names[type] : NULL;
}
uint32_t vklm_gguf_type_size(uint32_t type) {
  return type < VKLM_GGUF_TYPE_COUNT ? type_sizes[type] : 0;
}

/* ---- the cursor: every read is checked against the bytes left ---- */
typedef struct rd {
  const uint8_t *p;
  uint64_t size, pos;
  char *err;
  size_t errlen;
} rd;

static int fail(rd *r, const char *fmt, ...) {
  if (r->err && r->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static uint64_t left(const rd *r) { return r->size - r->pos; }

static int need(rd *r, uint64_t n, const char *what) {
  if (n > left(r))
    return fail(r, "%s at offset %" PRIu64 ": needs %" PRIu64 " bytes, only %" PRIu64
                   " left in the file (%" PRIu64 " bytes): truncated or corrupt",
                what, r->pos, n, left(r), r->size);
  return 0;
}

static uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static int rd_u32(rd *r, uint32_t *v, const char *what) {
  if (need(r, 4, what)) return -1;
  *v = (uint32_t)le(r->p + r->pos, 4);
  r->pos += 4;
  return 0;
}
static int rd_u64(rd *r, uint64_t *v, const char *what) {
  if (need(r, 8, what)) return -1;
  *v = le(r->p + r->pos, 8);
  r->pos += 8;
  return 0;
}
/* A length-prefixed string: *s points into the file. */
static int rd_str(rd *r, const uint8_t **s, uint64_t *len, const char *what) {
  if (rd_u64(r, len, what)) return -1;
  if (*len > left(r))
    return fail(r, "%s at offset %" PRIu64 ": string length %" PRIu64 " exceeds the %" PRIu64
                   " bytes left in the file",
                what, r->pos - 8, *len, left(r));
  *s = r->p + r->pos;
  r->pos += *len;
  return 0;
}

static char *dup_bytes(const uint8_t *s, uint64_t len) {
  char *c = malloc((size_t)len + 1); /* len <= file size, which fits size_t */
  if (!c) return NULL;
  memcpy(c, s, (size_t)len);
  c[len] = 0;
  return c;
}

static double f32_at(const uint8_t *p) {
  uint32_t u = (uint32_t)le(p, 4);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static double f64_at(const uint8_t *p) {
  uint64_t u = le(p, 8);
  double f;
  memcpy(&f, &u, 8);
  return f;
}

/* A scalar of type t at p into v (u for unsigned and bool, i for signed, f for floats). */
static void scalar_at(uint32_t t, const uint8_t *p, vklm_gguf_value *v) {
  v->type = t;
  switch (t) {
  case VKLM_GGUF_TYPE_UINT8: case VKLM_GGUF_TYPE_BOOL: v->u = p[0]; break;
  case VKLM_GGUF_TYPE_UINT16: v->u = le(p, 2); break;
  case VKLM_GGUF_TYPE_UINT32: v->u = le(p, 4); break;
  case VKLM_GGUF_TYPE_UINT64: v->u = le(p, 8); break;
  case VKLM_GGUF_TYPE_INT8: v->i = (int8_t)p[0]; break;
  case VKLM_GGUF_TYPE_INT16: v->i = (int16_t)le(p, 2); break;
  case VKLM_GGUF_TYPE_INT32: v->i = (int32_t)le(p, 4); break;
  case VKLM_GGUF_TYPE_INT64: v->i = (int64_t)le(p, 8); break;
  case VKLM_GGUF_TYPE_FLOAT32: v->f = f32_at(p); break;
  case VKLM_GGUF_TYPE_FLOAT64: v->f = f64_at(p); break;
  default: break;
  }
}

static int is_signed(uint32_t t) {
  return t == VKLM_GGUF_TYPE_INT8 || t == VKLM_GGUF_TYPE_INT16 || t == VKLM_GGUF_TYPE_INT32 ||
         t == VKLM_GGUF_TYPE_INT64;
}
static int is_unsigned(uint32_t t) {
  return t == VKLM_GGUF_TYPE_UINT8 || t == VKLM_GGUF_TYPE_UINT16 || t == VKLM_GGUF_TYPE_UINT32 ||
         t == VKLM_GGUF_TYPE_UINT64;
}

/* The value of metadata entry `idx` (its key already read) of type t. */
static int rd_value(rd *r, uint32_t t, kv *e, size_t idx) {
  e->v.type = t;
  if (t >= VKLM_GGUF_TYPE_COUNT)
    return fail(r, "metadata '%s' (#%zu): unknown value type %" PRIu32 " (0..12)", e->key, idx, t);
  if (t == VKLM_GGUF_TYPE_STRING) {
    const uint8_t *s;
    if (rd_str(r, &s, &e->v.len, "metadata string value")) return -1;
    if (!(e->v.str = dup_bytes(s, e->v.len))) return fail(r, "out of memory");
    return 0;
  }
  if (t != VKLM_GGUF_TYPE_ARRAY) {
    if (need(r, type_sizes[t], "metadata value")) return -1;
    scalar_at(t, r->p + r->pos, &e->v);
    if (t == VKLM_GGUF_TYPE_BOOL && e->v.u > 1)
      return fail(r, "metadata '%s' (#%zu): bool value %" PRIu64 " is not 0 or 1", e->key, idx,
                  e->v.u);
    r->pos += type_sizes[t];
    return 0;
  }
  vklm_gguf_array *a = &e->v.arr;
  if (rd_u32(r, &a->type, "array element type") || rd_u64(r, &a->n, "array length")) return -1;
  if (a->type >= VKLM_GGUF_TYPE_COUNT)
    return fail(r, "metadata '%s' (#%zu): unknown array element type %" PRIu32, e->key, idx, a->type);
  if (a->type == VKLM_GGUF_TYPE_ARRAY)
    return fail(r, "metadata '%s' (#%zu): nested arrays are not supported", e->key, idx);
  a->data = r->p + r->pos;
  if (a->type != VKLM_GGUF_TYPE_STRING) {
    uint32_t es = type_sizes[a->type];
    if (a->n > left(r) / es)
      return fail(r, "metadata '%s' (#%zu): array of %" PRIu64 " %s (%" PRIu32
                     " bytes each) exceeds the %" PRIu64 " bytes left in the file",
                  e->key, idx, a->n, type_names[a->type], es, left(r));
    if (a->type == VKLM_GGUF_TYPE_BOOL)
      for (uint64_t i = 0; i < a->n; i++)
        if (a->data[i] > 1)
          return fail(r, "metadata '%s' (#%zu): bool element %" PRIu64 " is %u, not 0 or 1",
                      e->key, idx, i, a->data[i]);
    r->pos += a->n * es;
    return 0;
  }
  /* strings: each at least its 8-byte length, so n is bounded before the index is allocated */
  if (a->n > left(r) / 8)
    return fail(r, "metadata '%s' (#%zu): array of %" PRIu64 " strings cannot fit in the %" PRIu64
                   " bytes left in the file (8 bytes each at least)",
                e->key, idx, a->n, left(r));
  uint64_t *off = malloc(a->n ? (size_t)a->n * sizeof *off : 1);
  if (!off) return fail(r, "out of memory for an array of %" PRIu64 " strings", a->n);
  a->str_off = off;
  for (uint64_t i = 0; i < a->n; i++) {
    const uint8_t *s;
    uint64_t len;
    off[i] = r->pos - (uint64_t)(a->data - r->p);
    if (rd_str(r, &s, &len, "array string element"))
      return fail(r, "metadata '%s' (#%zu): string element %" PRIu64 " of %" PRIu64
                     " runs past the end of the file (offset %" PRIu64 ", file %" PRIu64 " bytes)",
                  e->key, idx, i, a->n, r->pos, r->size);
  }
  return 0;
}

/* ---- sorting for lookup and duplicate checks (no globals: open may run on several threads) ---- */
struct ref {
  const char *s; /* key or tensor name */
  uint64_t off;  /* tensor offset */
  size_t i;      /* index in file order */
};
static int cmp_s(const void *a, const void *b) {
  return strcmp(((const ref *)a)->s, ((const ref *)b)->s);
}
static int cmp_off(const void *a, const void *b) {
  uint64_t x = ((const ref *)a)->off, y = ((const ref *)b)->off;
  return x < y ? -1 : x > y;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  if (a && b > UINT64_MAX / a) return -1;
  *out = a * b;
  return 0;
}

/* ---- tensor infos ---- */
static int rd_tensor(rd *r, vklm_gguf *g, size_t idx) {
  vklm_gguf_tensor *t = &g->tensors[idx];
  const uint8_t *s;
  uint64_t len;
  if (rd_str(r, &s, &len, "tensor name")) return -1;
  if (len == 0 || len > VKLM_GGUF_MAX_NAME)
    return fail(r, "tensor #%zu: name length %" PRIu64 " (must be 1..%d)", idx, len,
                VKLM_GGUF_MAX_NAME);
  if (memchr(s, 0, (size_t)len)) return fail(r, "tensor #%zu: name contains a NUL byte", idx);
  if (!(t->name = dup_bytes(s, len))) return fail(r, "out of memory");
  if (rd_u32(r, &t->n_dims, "tensor n_dims")) return -1;
  if (t->n_dims > VKLM_GGUF_MAX_DIMS)
    return fail(r, "tensor '%s' (#%zu): n_dims %" PRIu32 " exceeds the limit %d", t->name, idx,
                t->n_dims, VKLM_GGUF_MAX_DIMS);
  uint64_t nelem = 1;
  for (int d = 0; d < VKLM_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
  for (uint32_t d = 0; d < t->n_dims; d++) {
    uint64_t v;
    if (rd_u64(r, &v, "tensor dim")) return -1;
    if (v == 0 || v > (uint64_t)INT64_MAX)
      return fail(r, "tensor '%s' (#%zu): dim %" PRIu32 " is %" PRIu64 " (must be 1..2^63-1)",
                  t->name, idx, d, v);
    if (mul_u64(nelem, v, &nelem) || nelem > (uint64_t)INT64_MAX)
      return fail(r, "tensor '%s' (#%zu): element count overflows at dim %" PRIu32 " (%" PRIu64 ")",
                  t->name, idx, d, v);
    t->ne[d] = (int64_t)v;
  }
  t->nelem = (int64_t)nelem;
  if (rd_u32(r, &t->type, "tensor type")) return -1;
  const char *tn = vklm_ggml_type_name(t->type);
  if (!tn)
    return fail(r, "tensor '%s' (#%zu): unknown ggml type %" PRIu32, t->name, idx, t->type);
  uint32_t blk = vklm_ggml_type_block(t->type);
  uint64_t row;
  if ((uint64_t)t->ne[0] % blk)
    return fail(r, "tensor '%s' (#%zu): row length ne[0]=%" PRId64
                   " is not a multiple of the %s block size %" PRIu32,
                t->name, idx, t->ne[0], tn, blk);
  if (mul_u64((uint64_t)t->ne[0] / blk, vklm_ggml_type_block_bytes(t->type), &row) ||
      mul_u64(row, nelem / (uint64_t)t->ne[0], &t->nbytes) || t->nbytes > r->size)
    return fail(r, "tensor '%s' (#%zu): %" PRId64 "x%" PRId64 "x%" PRId64 "x%" PRId64
                   " %s needs more bytes than the file holds (%" PRIu64 ")",
                t->name, idx, t->ne[0], t->ne[1], t->ne[2], t->ne[3], tn, r->size);
  if (rd_u64(r, &t->offset, "tensor offset")) return -1;
  if (t->offset % g->alignment)
    return fail(r, "tensor '%s' (#%zu): data offset %" PRIu64 " is not a multiple of the alignment %"
                   PRIu32, t->name, idx, t->offset, g->alignment);
  return 0;
}

static int parse(vklm_gguf *g, char *err, size_t errlen) {
  rd r = {g->base, g->size, 0, err, errlen};
  if (g->size < 4 || memcmp(g->base, "GGUF", 4))
    return fail(&r, "not a GGUF file: bad magic (want \"GGUF\", file has %" PRIu64 " bytes)", g->size);
  r.pos = 4;
  uint64_t n_tensors, n_kv;
  if (rd_u32(&r, &g->version, "version")) return -1;
  if (g->version != 2 && g->version != 3)
    return fail(&r, "GGUF version %" PRIu32 " is not supported (2 or 3)", g->version);
  if (rd_u64(&r, &n_tensors, "tensor count") || rd_u64(&r, &n_kv, "metadata count")) return -1;
  /* smallest entries: a kv is 8 (key length) + 1 + 4 (type) + 1; a tensor info 8 + 1 + 4 + 4 + 8 */
  if (n_kv > left(&r) / 14)
    return fail(&r, "metadata count %" PRIu64 " cannot fit in the %" PRIu64
                    " bytes after the header (at most %" PRIu64 ")", n_kv, left(&r), left(&r) / 14);
  if (n_tensors > left(&r) / 25)
    return fail(&r, "tensor count %" PRIu64 " cannot fit in the %" PRIu64
                    " bytes after the header (at most %" PRIu64 ")", n_tensors, left(&r), left(&r) / 25);
  g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kvs);
  g->kv_sorted = malloc((n_kv ? (size_t)n_kv : 1) * sizeof *g->kv_sorted);
  if (!g->kvs || !g->kv_sorted) return fail(&r, "out of memory for %" PRIu64 " metadata entries", n_kv);
  for (size_t i = 0; i < n_kv; i++) {
    kv *e = &g->kvs[i];
    const uint8_t *s;
    uint64_t len;
    uint32_t t;
    if (rd_str(&r, &s, &len, "metadata key")) return -1;
    g->n_kv = i + 1; /* from here on e is owned by g */
    if (len == 0 || len > VKLM_GGUF_MAX_KEY)
      return fail(&r, "metadata #%zu: key length %" PRIu64 " (must be 1..%u)", i, len,
                  VKLM_GGUF_MAX_KEY);
    if (memchr(s, 0, (size_t)len)) return fail(&r, "metadata #%zu: key contains a NUL byte", i);
    if (!(e->key = dup_bytes(s, len))) return fail(&r, "out of memory");
    if (rd_u32(&r, &t, "metadata value type") || rd_value(&r, t, e, i)) return -1;
  }
  for (size_t i = 0; i < g->n_kv; i++) g->kv_sorted[i] = (ref){g->kvs[i].key, 0, i};
  qsort(g->kv_sorted, g->n_kv, sizeof(ref), cmp_s);
  for (size_t i = 1; i < g->n_kv; i++)
    if (!strcmp(g->kv_sorted[i].s, g->kv_sorted[i - 1].s))
      return fail(&r, "duplicate metadata key '%s' (#%zu and #%zu)", g->kv_sorted[i].s,
                  g->kv_sorted[i - 1].i, g->kv_sorted[i].i);

  g->alignment = VKLM_GGUF_DEFAULT_ALIGNMENT;
  if (vklm_gguf_kv_find(g, "general.alignment") >= 0) {
    uint32_t a;
    if (vklm_gguf_get_u32(g, "general.alignment", &a) || a == 0 || (a & (a - 1)))
      return fail(&r, "general.alignment must be a power of two that fits uint32");
    g->alignment = a;
  }

  if (n_tensors > left(&r) / 25)
    return fail(&r, "tensor count %" PRIu64 " cannot fit in the %" PRIu64
                    " bytes after the metadata (at most %" PRIu64 ")", n_tensors, left(&r), left(&r) / 25);
  g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
  g->t_sorted = malloc((n_tensors ? (size_t)n_tensors : 1) * sizeof *g->t_sorted);
  if (!g->tensors || !g->t_sorted) return fail(&r, "out of memory for %" PRIu64 " tensors", n_tensors);
  g->n_tensors = (size_t)n_tensors;
  for (size_t i = 0; i < g->n_tensors; i++)
    if (rd_tensor(&r, g, i)) return -1;

  uint64_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
  g->data_offset = r.pos + pad; /* r.pos <= size < 2^64 - 2^32: no overflow */
  uint64_t data_size = g->data_offset <= g->size ? g->size - g->data_offset : 0;
  if (g->n_tensors && g->data_offset > g->size)
    return fail(&r, "data section would start at offset %" PRIu64 ", past the end of the file (%"
                    PRIu64 " bytes)", g->data_offset, g->size);
  for (size_t i = 0; i < g->n_tensors; i++) {
    vklm_gguf_tensor *t = &g->tensors[i];
    if (t->offset > data_size || t->nbytes > data_size - t->offset)
      return fail(&r, "tensor '%s' (#%zu): data [%" PRIu64 ", %" PRIu64 "+%" PRIu64
                      ") lies outside the data section (%" PRIu64 " bytes)",
                  t->name, i, t->offset, t->offset, t->nbytes, data_size);
    t->data = g->base + g->data_offset + t->offset;
  }
  for (size_t i = 0; i < g->n_tensors; i++)
    g->t_sorted[i] = (ref){g->tensors[i].name, g->tensors[i].offset, i};
  qsort(g->t_sorted, g->n_tensors, sizeof(ref), cmp_off);
  for (size_t i = 1; i < g->n_tensors; i++) {
    const vklm_gguf_tensor *a = &g->tensors[g->t_sorted[i - 1].i], *b = &g->tensors[g->t_sorted[i].i];
    if (b->offset < a->offset + a->nbytes)
      return fail(&r, "tensors '%s' [%" PRIu64 ", +%" PRIu64 ") and '%s' [%" PRIu64 ", +%" PRIu64
                      ") overlap", a->name, a->offset, a->nbytes, b->name, b->offset, b->nbytes);
  }
  qsort(g->t_sorted, g->n_tensors, sizeof(ref), cmp_s);
  for (size_t i = 1; i < g->n_tensors; i++)
    if (!strcmp(g->t_sorted[i].s, g->t_sorted[i - 1].s))
      return fail(&r, "duplicate tensor name '%s' (#%zu and #%zu)", g->t_sorted[i].s,
                  g->t_sorted[i - 1].i, g->t_sorted[i].i);
  return 0;
}

static int finish_open(vklm_gguf *g, vklm_gguf **out, const char *path, char *err, size_t errlen) {
  char msg[512] = "";
  if (parse(g, msg, sizeof msg)) {
    if (err && errlen) snprintf(err, errlen, "%s: %s", path, msg);
    vklm_gguf_close(g);
    return -1;
  }
  *out = g;
  return 0;
}

int vklm_gguf_open_memory(const void *data, size_t size, vklm_gguf **out, char *err, size_t errlen) {
  *out = NULL;
  vklm_gguf *g = calloc(1, sizeof *g);
  if (!g) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -1;
  }
  g->base = data;
  g->size = size;
  return finish_open(g, out, "(memory)", err, errlen);
}

int vklm_gguf_open(const char *path, vklm_gguf **out, char *err, size_t errlen) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode) || st.st_size < 24) {
    if (err && errlen)
      snprintf(err, errlen, "%s: %s (%lld bytes; a GGUF header is 24)", path,
               S_ISREG(st.st_mode) ? "too short to be a GGUF file" : "not a regular file",
               (long long)st.st_size);
    close(fd);
    return -1;
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    if (err && errlen) snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
    return -1;
  }
  vklm_gguf *g = calloc(1, sizeof *g);
  if (!g) {
    munmap(p, (size_t)st.st_size);
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -1;
  }
  g->base = p;
  g->size = (uint64_t)st.st_size;
  g->mapped = 1;
  return finish_open(g, out, path, err, errlen);
}

void vklm_gguf_close(vklm_gguf *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n_kv; i++) {
    free(g->kvs[i].key);
    free((char *)g->kvs[i].v.str);
    free((uint64_t *)g->kvs[i].v.arr.str_off);
  }
  for (size_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
  free(g->kvs);
  free(g->kv_sorted);
  free(g->tensors);
  free(g->t_sorted);
  if (g->mapped) munmap((void *)g->base, (size_t)g->size);
  free(g);
}

uint32_t vklm_gguf_version(const vklm_gguf *g) { return g->version; }
uint32_t vklm_gguf_alignment(const vklm_gguf *g) { return g->alignment; }
uint64_t vklm_gguf_data_offset(const vklm_gguf *g) { return g->data_offset; }
size_t vklm_gguf_kv_count(const vklm_gguf *g) { return g->n_kv; }

void vklm_gguf_kv_get(const vklm_gguf *g, size_t i, const char **key, vklm_gguf_value *v) {
  if (key) *key = g->kvs[i].key;
  if (v) *v = g->kvs[i].v;
}

int64_t vklm_gguf_kv_find(const vklm_gguf *g, const char *key) {
  size_t lo = 0, hi = g->n_kv;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(g->kv_sorted[mid].s, key);
    if (c == 0) return (int64_t)g->kv_sorted[mid].i;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

static const vklm_gguf_value *find(const vklm_gguf *g, const char *key) {
  int64_t i = vklm_gguf_kv_find(g, key);
  return i < 0 ? NULL : &g->kvs[i].v;
}

/* Integer value as (neg, magnitude): signed negatives set neg. -1 when not an integer. */
static int int_of(const vklm_gguf_value *v, int *neg, uint64_t *mag) {
  if (!v) return -1;
  if (is_unsigned(v->type)) {
    *neg = 0;
    *mag = v->u;
  } else if (is_signed(v->type)) {
    *neg = v->i < 0;
    *mag = v->i < 0 ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i;
  } else {
    return -1;
  }
  return 0;
}

int vklm_gguf_get_u64(const vklm_gguf *g, const char *key, uint64_t *v) {
  int neg;
  uint64_t m;
  if (int_of(find(g, key), &neg, &m) || neg) return -1;
  *v = m;
  return 0;
}
int vklm_gguf_get_u32(const vklm_gguf *g, const char *key, uint32_t *v) {
  uint64_t m;
  if (vklm_gguf_get_u64(g, key, &m) || m > UINT32_MAX) return -1;
  *v = (uint32_t)m;
  return 0;
}
int vklm_gguf_get_i64(const vklm_gguf *g, const char *key, int64_t *v) {
  int neg;
  uint64_t m;
  if (int_of(find(g, key), &neg, &m)) return -1;
  if (neg ? m > (uint64_t)INT64_MAX + 1 : m > (uint64_t)INT64_MAX) return -1;
  *v = neg ? (int64_t)(0 - m) : (int64_t)m; /* two's complement, fine for INT64_MIN */
  return 0;
}
int vklm_gguf_get_i32(const vklm_gguf *g, const char *key, int32_t *v) {
  int64_t x;
  if (vklm_gguf_get_i64(g, key, &x) || x < INT32_MIN || x > INT32_MAX) return -1;
  *v = (int32_t)x;
  return 0;
}
int vklm_gguf_get_f32(const vklm_gguf *g, const char *key, float *v) {
  const vklm_gguf_value *x = find(g, key);
  if (!x || (x->type != VKLM_GGUF_TYPE_FLOAT32 && x->type != VKLM_GGUF_TYPE_FLOAT64)) return -1;
  *v = (float)x->f;
  return 0;
}
int vklm_gguf_get_bool(const vklm_gguf *g, const char *key, int *v) {
  const vklm_gguf_value *x = find(g, key);
  if (!x || x->type != VKLM_GGUF_TYPE_BOOL) return -1;
  *v = (int)x->u;
  return 0;
}
int vklm_gguf_get_str(const vklm_gguf *g, const char *key, const char **s, uint64_t *len) {
  const vklm_gguf_value *x = find(g, key);
  if (!x || x->type != VKLM_GGUF_TYPE_STRING) return -1;
  *s = x->str;
  if (len) *len = x->len;
  return 0;
}
int vklm_gguf_get_array(const vklm_gguf *g, const char *key, vklm_gguf_array *a) {
  const vklm_gguf_value *x = find(g, key);
  if (!x || x->type != VKLM_GGUF_TYPE_ARRAY) return -1;
  *a = x->arr;
  return 0;
}

int vklm_gguf_array_int(const vklm_gguf_array *a, uint64_t i, int64_t *v) {
  if (i >= a->n || !(is_signed(a->type) || is_unsigned(a->type) || a->type == VKLM_GGUF_TYPE_BOOL))
    return -1;
  vklm_gguf_value x;
  scalar_at(a->type, a->data + i * type_sizes[a->type], &x);
  if (is_signed(a->type)) {
    *v = x.i;
  } else {
    if (x.u > (uint64_t)INT64_MAX) return -1;
    *v = (int64_t)x.u;
  }
  return 0;
}
int vklm_gguf_array_num(const vklm_gguf_array *a, uint64_t i, double *v) {
  if (i >= a->n || a->type == VKLM_GGUF_TYPE_STRING || a->type >= VKLM_GGUF_TYPE_COUNT) return -1;
  vklm_gguf_value x;
  scalar_at(a->type, a->data + i * type_sizes[a->type], &x);
  *v = is_signed(a->type) ? (double)x.i
       : (a->type == VKLM_GGUF_TYPE_FLOAT32 || a->type == VKLM_GGUF_TYPE_FLOAT64) ? x.f
                                                                                  : (double)x.u;
  return 0;
}
int vklm_gguf_array_str(const vklm_gguf_array *a, uint64_t i, const char **s, uint64_t *len) {
  if (i >= a->n || a->type != VKLM_GGUF_TYPE_STRING) return -1;
  const uint8_t *p = a->data + a->str_off[i];
  *len = le(p, 8); /* validated at open */
  *s = (const char *)p + 8;
  return 0;
}
int vklm_gguf_array_copy_i64(const vklm_gguf_array *a, int64_t *dst) {
  for (uint64_t i = 0; i < a->n; i++) { /* check all first: fail without writing */
    int64_t v;
    if (vklm_gguf_array_int(a, i, &v)) return -1;
  }
  for (uint64_t i = 0; i < a->n; i++) vklm_gguf_array_int(a, i, &dst[i]);
  return 0;
}
int vklm_gguf_array_copy_f32(const vklm_gguf_array *a, float *dst) {
  if (a->type == VKLM_GGUF_TYPE_STRING || a->type >= VKLM_GGUF_TYPE_COUNT) return -1;
  for (uint64_t i = 0; i < a->n; i++) {
    double v;
    vklm_gguf_array_num(a, i, &v);
    dst[i] = (float)v;
  }
  return 0;
}

size_t vklm_gguf_tensor_count(const vklm_gguf *g) { return g->n_tensors; }
const vklm_gguf_tensor *vklm_gguf_tensor_get(const vklm_gguf *g, size_t i) {
  return i < g->n_tensors ? &g->tensors[i] : NULL;
}
const vklm_gguf_tensor *vklm_gguf_tensor_find(const vklm_gguf *g, const char *name) {
  size_t lo = 0, hi = g->n_tensors;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(g->t_sorted[mid].s, name);
    if (c == 0) return &g->tensors[g->t_sorted[mid].i];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

int vklm_gguf_tensor_to_f32(const vklm_gguf_tensor *t, float *dst, char *err, size_t errlen) {
  if (!vklm_ggml_type_supported(t->type) ||
      vklm_ggml_to_f32(t->type, dst, t->data, (size_t)t->nelem)) {
    const char *n = vklm_ggml_type_name(t->type);
    if (err && errlen)
      snprintf(err, errlen, "tensor '%s': type %s (%" PRIu32 ") is not supported (F32, F16, BF16, "
               "Q8_0, Q4_0 are)", t->name, n ? n : "?", t->type);
    return -1;
  }
  return 0;
}

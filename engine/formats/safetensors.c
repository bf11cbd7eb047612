/* safetensors: the reader; the whole header is validated at open (see safetensors.h). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

typedef struct meta {
  char *key, *value; /* owned */
} meta;

struct vklm_safetensors {
  const uint8_t *base; /* owned mapping or borrowed memory */
  uint64_t size;
  int mapped;
  uint64_t data_offset, data_size;
  vklm_st_tensor *tensors; /* owned (names owned), sorted by offset */
  size_t n;
  const vklm_st_tensor **by_name; /* owned: pointers into tensors, sorted by name */
  meta *meta;      /* owned */
  size_t n_meta;
};

static const struct {
  const char *name;
  uint32_t size;
} dtypes[] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
    {"U8", 1}, {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int exact_u64(const cJSON *j, uint64_t *v) {
  if (!cJSON_IsNumber(j)) return -1;
  double d = j->valuedouble;
  if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || d != floor(d)) return -1;
  *v = (uint64_t)d;
  return 0;
}

static int parse_tensor(vklm_safetensors *st, const cJSON *j, vklm_st_tensor *t, char *err,
                        size_t errlen) {
  const char *name = j->string;
  if (!cJSON_IsObject(j)) return fail(err, errlen, "tensor '%s': entry is not a JSON object", name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
  const cJSON *of = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
  if (!cJSON_IsString(dt)) return fail(err, errlen, "tensor '%s': \"dtype\" missing or not a string", name);
  if (!cJSON_IsArray(sh)) return fail(err, errlen, "tensor '%s': \"shape\" missing or not an array", name);
  if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
    return fail(err, errlen, "tensor '%s': \"data_offsets\" missing or not [begin, end]", name);
  t->dtype = NULL;
  for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
    if (!strcmp(dt->valuestring, dtypes[i].name)) {
      t->dtype = dtypes[i].name;
      t->dtype_size = dtypes[i].size;
    }
  if (!t->dtype) return fail(err, errlen, "tensor '%s': unknown dtype \"%.32s\"", name, dt->valuestring);
  t->supported = !strcmp(t->dtype, "F32") || !strcmp(t->dtype, "F16") || !strcmp(t->dtype, "BF16");
  int nd = cJSON_GetArraySize(sh);
  if (nd > VKLM_SAFETENSORS_MAX_DIMS)
    return fail(err, errlen, "tensor '%s': %d dims exceed the limit %d", name, nd,
                VKLM_SAFETENSORS_MAX_DIMS);
  t->n_dims = (uint32_t)nd;
  t->nelem = 1;
  int d = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, sh) {
    uint64_t v;
    if (exact_u64(e, &v))
      return fail(err, errlen, "tensor '%s': shape[%d] is not a non-negative integer below 2^53", name, d);
    t->shape[d] = v;
    if (v && t->nelem > UINT64_MAX / v)
      return fail(err, errlen, "tensor '%s': element count overflows at shape[%d] = %" PRIu64, name, d, v);
    t->nelem *= v;
    d++;
  }
  if (t->nelem > UINT64_MAX / t->dtype_size)
    return fail(err, errlen, "tensor '%s': byte size overflows (%" PRIu64 " elements of %s)", name,
                t->nelem, t->dtype);
  t->nbytes = t->nelem * t->dtype_size;
  uint64_t begin, end;
  if (exact_u64(cJSON_GetArrayItem(of, 0), &begin) || exact_u64(cJSON_GetArrayItem(of, 1), &end))
    return fail(err, errlen, "tensor '%s': data_offsets are not non-negative integers below 2^53", name);
  if (begin > end || end > st->data_size)
    return fail(err, errlen, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                "] are not inside the data section (%" PRIu64 " bytes)", name, begin, end, st->data_size);
  if (end - begin != t->nbytes)
    return fail(err, errlen, "tensor '%s': data_offsets span %" PRIu64 " bytes but shape and dtype %s"
                " need %" PRIu64, name, end - begin, t->dtype, t->nbytes);
  t->offset = begin;
  t->data = st->base + st->data_offset + begin;
  if (!(t->name = strdup(name))) return fail(err, errlen, "out of memory");
  return 0;
}

static int cmp_off(const void *a, const void *b) {
  const vklm_st_tensor *x = a, *y = b;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}
static int cmp_name(const void *a, const void *b) {
  return strcmp((*(const vklm_st_tensor *const *)a)->name, (*(const vklm_st_tensor *const *)b)->name);
}

static int parse(vklm_safetensors *st, char *err, size_t errlen) {
  if (st->size < 8)
    return fail(err, errlen, "file too short for a safetensors header (%" PRIu64 " bytes, need 8)", st->size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | st->base[i];
  if (n > st->size - 8)
    return fail(err, errlen, "header size %" PRIu64 " exceeds the %" PRIu64 " bytes after it", n,
                st->size - 8);
  if (n > VKLM_SAFETENSORS_MAX_HEADER)
    return fail(err, errlen, "header size %" PRIu64 " exceeds the limit %u", n, VKLM_SAFETENSORS_MAX_HEADER);
  if (n < 2) return fail(err, errlen, "header size %" PRIu64 " is too small for a JSON object", n);
  st->data_offset = 8 + n;
  st->data_size = st->size - st->data_offset;
  const char *json = (const char *)st->base + 8, *endp = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)n, &endp, 0);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    return fail(err, errlen, "header is not valid JSON (near byte %td of %" PRIu64 ")",
                at && at >= json && at <= json + n ? at - json : (ptrdiff_t)-1, n);
  }
  int rc = -1;
  for (const char *p = endp; p && p < json + n; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      fail(err, errlen, "header has bytes after the JSON object (at byte %td)", p - json);
      goto done;
    }
  if (!cJSON_IsObject(root)) {
    fail(err, errlen, "header is not a JSON object");
    goto done;
  }
  size_t count = (size_t)cJSON_GetArraySize(root); /* bounded by the header's size */
  st->tensors = calloc(count ? count : 1, sizeof *st->tensors);
  st->by_name = malloc((count ? count : 1) * sizeof *st->by_name);
  if (!st->tensors || !st->by_name) {
    fail(err, errlen, "out of memory");
    goto done;
  }
  const cJSON *j;
  cJSON_ArrayForEach(j, root) {
    if (!j->string || !*j->string) {
      fail(err, errlen, "header has an entry with an empty name");
      goto done;
    }
    if (!strcmp(j->string, "__metadata__")) {
      if (st->meta || !cJSON_IsObject(j)) {
        fail(err, errlen, "__metadata__ is repeated or not an object");
        goto done;
      }
      size_t m = (size_t)cJSON_GetArraySize(j);
      if (!(st->meta = calloc(m ? m : 1, sizeof *st->meta))) {
        fail(err, errlen, "out of memory");
        goto done;
      }
      const cJSON *e;
      cJSON_ArrayForEach(e, j) {
        if (!cJSON_IsString(e)) {
          fail(err, errlen, "__metadata__ value for '%s' is not a string", e->string);
          goto done;
        }
        meta *mt = &st->meta[st->n_meta++];
        mt->key = strdup(e->string);
        mt->value = strdup(e->valuestring);
        if (!mt->key || !mt->value) {
          fail(err, errlen, "out of memory");
          goto done;
        }
      }
      continue;
    }
    if (parse_tensor(st, j, &st->tensors[st->n], err, errlen)) {
      free((char *)st->tensors[st->n].name);
      st->tensors[st->n].name = NULL;
      goto done;
    }
    st->n++;
  }
  qsort(st->tensors, st->n, sizeof *st->tensors, cmp_off);
  const vklm_st_tensor *prev = NULL;
  for (size_t i = 0; i < st->n; i++) {
    const vklm_st_tensor *t = &st->tensors[i];
    if (!t->nbytes) continue; /* empty tensors take no bytes */
    if (prev && t->offset < prev->offset + prev->nbytes) {
      fail(err, errlen, "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64 ") overlap",
           prev->name, prev->offset, prev->offset + prev->nbytes, t->name, t->offset,
           t->offset + t->nbytes);
      goto done;
    }
    prev = t;
  }
  for (size_t i = 0; i < st->n; i++) st->by_name[i] = &st->tensors[i];
  qsort(st->by_name, st->n, sizeof *st->by_name, cmp_name);
  for (size_t i = 1; i < st->n; i++)
    if (!strcmp(st->by_name[i]->name, st->by_name[i - 1]->name)) {
      fail(err, errlen, "duplicate tensor name '%s'", st->by_name[i]->name);
      goto done;
    }
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

static int finish_open(vklm_safetensors *st, vklm_safetensors **out, const char *path, char *err,
                       size_t errlen) {
  char msg[512] = "";
  if (parse(st, msg, sizeof msg)) {
    if (err && errlen) snprintf(err, errlen, "%s: %s", path, msg);
    vklm_safetensors_close(st);
    return -1;
  }
  *out = st;
  return 0;
}

int vklm_safetensors_open_memory(const void *data, size_t size, vklm_safetensors **out, char *err,
                                 size_t errlen) {
  *out = NULL;
  vklm_safetensors *st = calloc(1, sizeof *st);
  if (!st) return fail(err, errlen, "out of memory");
  st->base = data;
  st->size = size;
  return finish_open(st, out, "(memory)", err, errlen);
}

int vklm_safetensors_open(const char *path, vklm_safetensors **out, char *err, size_t errlen) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb)) {
    fail(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (!S_ISREG(sb.st_mode) || sb.st_size < 8) {
    close(fd);
    return fail(err, errlen, "%s: %s (%lld bytes)", path,
                S_ISREG(sb.st_mode) ? "too short to be a safetensors file" : "not a regular file",
                (long long)sb.st_size);
  }
  void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return fail(err, errlen, "%s: mmap: %s", path, strerror(errno));
  vklm_safetensors *st = calloc(1, sizeof *st);
  if (!st) {
    munmap(p, (size_t)sb.st_size);
    return fail(err, errlen, "out of memory");
  }
  st->base = p;
  st->size = (uint64_t)sb.st_size;
  st->mapped = 1;
  return finish_open(st, out, path, err, errlen);
}

void vklm_safetensors_close(vklm_safetensors *st) {
  if (!st) return;
  for (size_t i = 0; i < st->n; i++) free((char *)st->tensors[i].name);
  for (size_t i = 0; i < st->n_meta; i++) {
    free(st->meta[i].key);
    free(st->meta[i].value);
  }
  free(st->tensors);
  free((void *)st->by_name);
  free(st->meta);
  if (st->mapped) munmap((void *)st->base, (size_t)st->size);
  free(st);
}

size_t vklm_safetensors_count(const vklm_safetensors *st) { return st->n; }
const vklm_st_tensor *vklm_safetensors_get(const vklm_safetensors *st, size_t i) {
  return i < st->n ? &st->tensors[i] : NULL;
}
const vklm_st_tensor *vklm_safetensors_find(const vklm_safetensors *st, const char *name) {
  size_t lo = 0, hi = st->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(st->by_name[mid]->name, name);
    if (c == 0) return st->by_name[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}
size_t vklm_safetensors_meta_count(const vklm_safetensors *st) { return st->n_meta; }
void vklm_safetensors_meta_get(const vklm_safetensors *st, size_t i, const char **key,
                               const char **value) {
  *key = st->meta[i].key;
  *value = st->meta[i].value;
}
const char *vklm_safetensors_meta_find(const vklm_safetensors *st, const char *key) {
  for (size_t i = 0; i < st->n_meta; i++)
    if (!strcmp(st->meta[i].key, key)) return st->meta[i].value;
  return NULL;
}

int vklm_safetensors_to_f32(const vklm_st_tensor *t, float *dst, char *err, size_t errlen) {
  uint32_t type = !strcmp(t->dtype, "F32")  ? VKLM_GGML_TYPE_F32
                  : !strcmp(t->dtype, "F16") ? VKLM_GGML_TYPE_F16
                  : !strcmp(t->dtype, "BF16") ? VKLM_GGML_TYPE_BF16
                                              : UINT32_MAX;
  if (type == UINT32_MAX || vklm_ggml_to_f32(type, dst, t->data, (size_t)t->nelem))
    return fail(err, errlen, "tensor '%s': dtype %s is not supported (F32, F16, BF16 are)", t->name,
                t->dtype);
  return 0;
}

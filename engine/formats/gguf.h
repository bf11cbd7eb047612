/* gguf: reading and writing GGUF model files (versions 2 and 3; layout in docs/formats.md).
 * A GGUF file is a header (magic "GGUF", version, tensor count, metadata count), typed metadata
 * key/value pairs, tensor infos (name, dims, ggml type, offset), padding to the alignment
 * (metadata "general.alignment", default 32), then the tensor data.
 * Reader: maps the file read-only and checks all of it at open, so every later lookup is a plain
 * index: every count, length and offset is bounded by the bytes left in the file before anything
 * is allocated from it, every size product is checked for overflow, tensors must lie inside the
 * data section, be aligned, not overlap, and have unique names; keys must be unique. A bad file
 * gives -1 and a message naming the field, the item and the offending value vs its limit.
 * Strings and arrays handed out are views into the mapping (valid until close); metadata keys
 * and scalar string values are also NUL-terminated copies. Tensor dims are in GGUF order:
 * ne[0] is the row length (contiguous), unused dims are 1.
 * Writer: builds metadata and tensor list in memory, then writes <path>.tmp, fsyncs, renames.
 * Not here: a file that changes while mapped (SIGBUS), big-endian hosts, nested arrays. */
#ifndef VKLM_FORMATS_GGUF_H
#define VKLM_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

#define VKLM_GGUF_DEFAULT_ALIGNMENT 32u
#define VKLM_GGUF_MAX_DIMS 4
#define VKLM_GGUF_MAX_NAME 64     /* tensor name bytes, as the GGUF spec and ggml limit it */
#define VKLM_GGUF_MAX_KEY 65535u  /* metadata key bytes */

/* Metadata value types, numbered as in the file. */
typedef enum vklm_gguf_type {
  VKLM_GGUF_TYPE_UINT8 = 0,
  VKLM_GGUF_TYPE_INT8 = 1,
  VKLM_GGUF_TYPE_UINT16 = 2,
  VKLM_GGUF_TYPE_INT16 = 3,
  VKLM_GGUF_TYPE_UINT32 = 4,
  VKLM_GGUF_TYPE_INT32 = 5,
  VKLM_GGUF_TYPE_FLOAT32 = 6,
  VKLM_GGUF_TYPE_BOOL = 7,
  VKLM_GGUF_TYPE_STRING = 8,
  VKLM_GGUF_TYPE_ARRAY = 9,
  VKLM_GGUF_TYPE_UINT64 = 10,
  VKLM_GGUF_TYPE_INT64 = 11,
  VKLM_GGUF_TYPE_FLOAT64 = 12,
  VKLM_GGUF_TYPE_COUNT
} vklm_gguf_type;

const char *vklm_gguf_type_name(uint32_t type); /* "uint8" .. "float64", NULL if unknown */
uint32_t vklm_gguf_type_size(uint32_t type);    /* bytes of a scalar; 0 for string/array */

/* An array value: a view into the file. Numeric and bool elements are little-endian and may be
 * unaligned: read them with the element functions below, or copy them. */
typedef struct vklm_gguf_array {
  uint32_t type;           /* element type: any but ARRAY */
  uint64_t n;              /* elements */
  const uint8_t *data;     /* borrowed: first element */
  const uint64_t *str_off; /* borrowed, strings only: element i's length prefix at data+off[i] */
} vklm_gguf_array;

/* One metadata value; which fields are set depends on type. */
typedef struct vklm_gguf_value {
  uint32_t type;
  uint64_t u;        /* unsigned integers and bool (0/1) */
  int64_t i;         /* signed integers */
  double f;          /* float32 / float64 */
  const char *str;   /* STRING: NUL-terminated copy (may hold NULs; len is the truth) */
  uint64_t len;      /* STRING: bytes */
  vklm_gguf_array arr; /* ARRAY */
} vklm_gguf_value;

typedef struct vklm_gguf_tensor {
  const char *name;  /* NUL-terminated, at most VKLM_GGUF_MAX_NAME bytes */
  uint32_t type;     /* ggml type number (quant.h); may be one vklm cannot convert */
  uint32_t n_dims;   /* 0..4 (0: a scalar) */
  int64_t ne[VKLM_GGUF_MAX_DIMS]; /* GGUF order: ne[0] = row length; unused = 1; all >= 1 */
  int64_t nelem;
  uint64_t offset;   /* bytes from the start of the data section; a multiple of the alignment */
  uint64_t nbytes;
  const void *data;  /* borrowed: into the mapping */
} vklm_gguf_tensor;

/* ---- reading ---- */
typedef struct vklm_gguf vklm_gguf;
int vklm_gguf_open(const char *path, vklm_gguf **out, char *err, size_t errlen);
/* Parses a file image in memory (borrowed: it must outlive the result). */
int vklm_gguf_open_memory(const void *data, size_t size, vklm_gguf **out, char *err, size_t errlen);
void vklm_gguf_close(vklm_gguf *g); /* accepts NULL */

uint32_t vklm_gguf_version(const vklm_gguf *g);
uint32_t vklm_gguf_alignment(const vklm_gguf *g);
uint64_t vklm_gguf_data_offset(const vklm_gguf *g); /* file offset of the data section */

size_t vklm_gguf_kv_count(const vklm_gguf *g);
/* Entry i in file order: its key and value. */
void vklm_gguf_kv_get(const vklm_gguf *g, size_t i, const char **key, vklm_gguf_value *v);
/* Index of key, or -1. */
int64_t vklm_gguf_kv_find(const vklm_gguf *g, const char *key);

/* Typed getters: 0 and *v set; -1 when the key is absent or its value does not fit the type.
 * Integers convert between widths when the value fits (u32 accepts uint8..uint64 and
 * non-negative signed values < 2^32); f32 accepts float32 and float64; bool only bool. */
int vklm_gguf_get_u32(const vklm_gguf *g, const char *key, uint32_t *v);
int vklm_gguf_get_u64(const vklm_gguf *g, const char *key, uint64_t *v);
int vklm_gguf_get_i32(const vklm_gguf *g, const char *key, int32_t *v);
int vklm_gguf_get_i64(const vklm_gguf *g, const char *key, int64_t *v);
int vklm_gguf_get_f32(const vklm_gguf *g, const char *key, float *v);
int vklm_gguf_get_bool(const vklm_gguf *g, const char *key, int *v);
int vklm_gguf_get_str(const vklm_gguf *g, const char *key, const char **s, uint64_t *len);
int vklm_gguf_get_array(const vklm_gguf *g, const char *key, vklm_gguf_array *a);

/* Array elements (i < a->n): -1 on a type that does not fit. int: integer and bool elements
 * (uint64 above INT64_MAX fails); num: any numeric or bool element as a double; str: a view,
 * not NUL-terminated. The copies fill n elements of dst or fail without writing. */
int vklm_gguf_array_int(const vklm_gguf_array *a, uint64_t i, int64_t *v);
int vklm_gguf_array_num(const vklm_gguf_array *a, uint64_t i, double *v);
int vklm_gguf_array_str(const vklm_gguf_array *a, uint64_t i, const char **s, uint64_t *len);
int vklm_gguf_array_copy_i64(const vklm_gguf_array *a, int64_t *dst);
int vklm_gguf_array_copy_f32(const vklm_gguf_array *a, float *dst);

size_t vklm_gguf_tensor_count(const vklm_gguf *g);
const vklm_gguf_tensor *vklm_gguf_tensor_get(const vklm_gguf *g, size_t i); /* file order */
const vklm_gguf_tensor *vklm_gguf_tensor_find(const vklm_gguf *g, const char *name); /* or NULL */
/* The whole tensor as nelem floats; -1 and a message for a type vklm cannot convert. */
int vklm_gguf_tensor_to_f32(const vklm_gguf_tensor *t, float *dst, char *err, size_t errlen);

/* ---- writing ---- */
typedef struct vklm_gguf_writer vklm_gguf_writer;
/* alignment: a power of two (0: the default 32); recorded as general.alignment when not 32. */
int vklm_gguf_writer_create(uint32_t alignment, vklm_gguf_writer **out);
/* Metadata, in call order. -1 (nothing added) on a duplicate or empty key. */
int vklm_gguf_writer_add_u8(vklm_gguf_writer *w, const char *key, uint8_t v);
int vklm_gguf_writer_add_i8(vklm_gguf_writer *w, const char *key, int8_t v);
int vklm_gguf_writer_add_u16(vklm_gguf_writer *w, const char *key, uint16_t v);
int vklm_gguf_writer_add_i16(vklm_gguf_writer *w, const char *key, int16_t v);
int vklm_gguf_writer_add_u32(vklm_gguf_writer *w, const char *key, uint32_t v);
int vklm_gguf_writer_add_i32(vklm_gguf_writer *w, const char *key, int32_t v);
int vklm_gguf_writer_add_u64(vklm_gguf_writer *w, const char *key, uint64_t v);
int vklm_gguf_writer_add_i64(vklm_gguf_writer *w, const char *key, int64_t v);
int vklm_gguf_writer_add_f32(vklm_gguf_writer *w, const char *key, float v);
int vklm_gguf_writer_add_f64(vklm_gguf_writer *w, const char *key, double v);
int vklm_gguf_writer_add_bool(vklm_gguf_writer *w, const char *key, int v);
int vklm_gguf_writer_add_str(vklm_gguf_writer *w, const char *key, const char *s);
/* An array of n scalars of type (not STRING/ARRAY) from a host array of that C type (bool:
 * uint8_t 0/1). */
int vklm_gguf_writer_add_array(vklm_gguf_writer *w, const char *key, uint32_t type,
                               const void *data, uint64_t n);
int vklm_gguf_writer_add_array_str(vklm_gguf_writer *w, const char *key,
                                   const char *const *strs, uint64_t n);
/* A tensor of ggml type `type` from fp32 values (converted and copied now): type F32, F16, BF16,
 * Q8_0 or Q4_0; ne in GGUF order (ne[0] = row length, a multiple of the block size). -1 on a
 * duplicate name, a name over 64 bytes, a bad shape or type, or a non-finite value. */
int vklm_gguf_writer_add_tensor(vklm_gguf_writer *w, const char *name, uint32_t type,
                                uint32_t n_dims, const int64_t *ne, const float *src);
/* Writes <path>.tmp, fsyncs, renames to path; frees w (also on failure). */
int vklm_gguf_writer_finish(vklm_gguf_writer *w, const char *path, char *err, size_t errlen);
void vklm_gguf_writer_destroy(vklm_gguf_writer *w); /* abandons; accepts NULL */

#endif

/* safetensors: reading safetensors files (the Hugging Face tensor container).
 * Layout: u64 little-endian header size N, N bytes of JSON, then the data section. The JSON
 * maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
 * to the data section) and may hold "__metadata__": {string: string}.
 * The reader maps the file and checks all of it at open: N is bounded by the file size and by
 * VKLM_SAFETENSORS_MAX_HEADER; every shape product and byte size is overflow-checked and must
 * equal end - begin; offsets are exact integers inside the data section; tensors do not overlap;
 * names are unique. A bad file gives -1 and a message naming the tensor, the field and the value.
 * dtypes F32, F16, BF16 convert to fp32; the others known to the format (F64, I64, I32, I16, I8,
 * U8, BOOL, U16, U32, U64, F8_E4M3, F8_E5M2) open and are reported as unsupported; an unknown
 * dtype string is an error. Not here: writing (engine/train/export.c writes checkpoints). */
#ifndef VKLM_FORMATS_SAFETENSORS_H
#define VKLM_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define VKLM_SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u) /* as the reference implementation */
#define VKLM_SAFETENSORS_MAX_DIMS 8

typedef struct vklm_st_tensor {
  const char *name;   /* NUL-terminated, owned by the file object */
  const char *dtype;  /* "F32", "BF16", ... */
  uint32_t dtype_size; /* bytes per element */
  int supported;      /* 1 for F32, F16, BF16 */
  uint32_t n_dims;    /* 0..8 (0: a scalar) */
  uint64_t shape[VKLM_SAFETENSORS_MAX_DIMS]; /* row-major, outermost first; dims may be 0 */
  uint64_t nelem;
  uint64_t offset;    /* bytes from the start of the data section */
  uint64_t nbytes;
  const void *data;   /* borrowed: into the mapping */
} vklm_st_tensor;

typedef struct vklm_safetensors vklm_safetensors;
int vklm_safetensors_open(const char *path, vklm_safetensors **out, char *err, size_t errlen);
/* Parses a file image in memory (borrowed: it must outlive the result). */
int vklm_safetensors_open_memory(const void *data, size_t size, vklm_safetensors **out,
                                 char *err, size_t errlen);
void vklm_safetensors_close(vklm_safetensors *st); /* accepts NULL */

size_t vklm_safetensors_count(const vklm_safetensors *st);
/* Tensor i, in the order of their data offsets. */
const vklm_st_tensor *vklm_safetensors_get(const vklm_safetensors *st, size_t i);
const vklm_st_tensor *vklm_safetensors_find(const vklm_safetensors *st, const char *name);
/* __metadata__ entries (all strings). */
size_t vklm_safetensors_meta_count(const vklm_safetensors *st);
void vklm_safetensors_meta_get(const vklm_safetensors *st, size_t i, const char **key,
                               const char **value);
const char *vklm_safetensors_meta_find(const vklm_safetensors *st, const char *key); /* or NULL */
/* The whole tensor as nelem floats; -1 and a message for an unsupported dtype. */
int vklm_safetensors_to_f32(const vklm_st_tensor *t, float *dst, char *err, size_t errlen);

#endif

/* Tensor views (tensor.h). */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

static const char *NAMES[VKLM_DTYPE_COUNT] = {"f32", "f16", "q8_0", "q4_0", "bf16", "i32"};

const char *vklm_dtype_name(vklm_dtype t) {
  return (unsigned)t < VKLM_DTYPE_COUNT ? NAMES[t] : "?";
}

int vklm_dtype_is_block(vklm_dtype t) { return t == VKLM_DTYPE_Q8_0 || t == VKLM_DTYPE_Q4_0; }

uint64_t vklm_dtype_bytes(vklm_dtype t, uint32_t N, uint32_t K) {
  uint64_t n = (uint64_t)N * K;
  switch (t) {
  case VKLM_DTYPE_F32:
  case VKLM_DTYPE_I32: return 4 * n;
  case VKLM_DTYPE_F16:
  case VKLM_DTYPE_BF16: return 2 * n;
  case VKLM_DTYPE_Q8_0: return n / 32 * 34;
  case VKLM_DTYPE_Q4_0: return n / 32 * 18;
  default: VKLM_ASSERT(0, "unknown dtype %d", (int)t);
  }
  return 0;
}

uint64_t vklm_dtype_buffer_bytes(vklm_dtype t, uint32_t N, uint32_t K) {
  return (vklm_dtype_bytes(t, N, K) + 3) / 4 * 4;
}

vklm_tensor vklm_tensor_make(vklm_buffer b, vklm_dtype t, uint32_t ndim, const uint32_t *shape) {
  VKLM_ASSERT(ndim >= 1 && ndim <= VKLM_TENSOR_MAX_DIMS, "tensor: %u dimensions", ndim);
  vklm_tensor x;
  memset(&x, 0, sizeof x);
  x.buf = b;
  x.dtype = t;
  x.ndim = ndim;
  uint64_t s = 1;
  for (uint32_t i = VKLM_TENSOR_MAX_DIMS; i-- > 0;) {
    if (i >= ndim) {
      x.shape[i] = 1;
      x.stride[i] = 0;
      continue;
    }
    x.shape[i] = shape[i];
    x.stride[i] = s;
    s *= shape[i];
  }
  return x;
}

vklm_tensor vklm_tensor_1d(vklm_buffer b, vklm_dtype t, uint32_t d0) {
  return vklm_tensor_make(b, t, 1, &d0);
}
vklm_tensor vklm_tensor_2d(vklm_buffer b, vklm_dtype t, uint32_t d0, uint32_t d1) {
  uint32_t s[2] = {d0, d1};
  return vklm_tensor_make(b, t, 2, s);
}
vklm_tensor vklm_tensor_3d(vklm_buffer b, vklm_dtype t, uint32_t d0, uint32_t d1, uint32_t d2) {
  uint32_t s[3] = {d0, d1, d2};
  return vklm_tensor_make(b, t, 3, s);
}

vklm_tensor vklm_tensor_none(void) {
  vklm_tensor x;
  memset(&x, 0, sizeof x);
  return x;
}

int vklm_tensor_is_none(const vklm_tensor *t) { return t->buf.block == NULL; }

uint64_t vklm_tensor_numel(const vklm_tensor *t) {
  if (!t->ndim) return 0;
  uint64_t n = 1;
  for (uint32_t i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

/* bytes of `elems` elements starting at a row boundary (block types: whole rows) */
static uint64_t elem_bytes(vklm_dtype dt, uint64_t elems) {
  if (vklm_dtype_is_block(dt)) return vklm_dtype_bytes(dt, 1, (uint32_t)elems);
  return vklm_dtype_bytes(dt, 1, 1) * elems;
}

uint64_t vklm_tensor_nbytes(const vklm_tensor *t) {
  if (!t->ndim || vklm_tensor_numel(t) == 0) return 0;
  uint64_t last = 0;
  for (uint32_t i = 0; i < t->ndim; i++) last += (uint64_t)(t->shape[i] - 1) * t->stride[i];
  return elem_bytes(t->dtype, last + 1);
}

int vklm_tensor_is_contiguous(const vklm_tensor *t) {
  uint64_t s = 1;
  for (uint32_t i = t->ndim; i-- > 0;) {
    if (t->shape[i] != 1 && t->stride[i] != s) return 0;
    s *= t->shape[i];
  }
  return 1;
}

vklm_tensor vklm_tensor_rows(vklm_tensor t, uint32_t r0, uint32_t n) {
  VKLM_ASSERT((uint64_t)r0 + n <= t.shape[0], "tensor_rows: rows [%u,%u) of %u", r0, r0 + n,
              t.shape[0]);
  t.offset += (uint64_t)r0 * t.stride[0];
  t.shape[0] = n;
  return t;
}

vklm_tensor vklm_tensor_view_2d(vklm_tensor t, uint32_t d0, uint32_t d1) {
  VKLM_ASSERT(vklm_tensor_is_contiguous(&t) && vklm_tensor_numel(&t) == (uint64_t)d0 * d1,
              "tensor_view_2d: %llu elements (contiguous %d) as (%u,%u)",
              (unsigned long long)vklm_tensor_numel(&t), vklm_tensor_is_contiguous(&t), d0, d1);
  vklm_tensor x = vklm_tensor_2d(t.buf, t.dtype, d0, d1);
  x.offset = t.offset;
  return x;
}

int vklm_tensor_aligned(const vklm_tensor *t, uint32_t align) {
  return elem_bytes(t->dtype, t->offset) % (align ? align : 1) == 0;
}

vklm_buffer vklm_tensor_buffer(const vklm_tensor *t, uint32_t align) {
  uint64_t off = elem_bytes(t->dtype, t->offset), n = vklm_tensor_nbytes(t);
  VKLM_ASSERT(off % (align ? align : 1) == 0,
              "tensor_buffer: byte offset %llu is not a multiple of the binding alignment %u",
              (unsigned long long)off, align);
  VKLM_ASSERT(off + n <= t->buf.size, "tensor_buffer: bytes [%llu,%llu) outside a %llu-byte buffer",
              (unsigned long long)off, (unsigned long long)(off + n),
              (unsigned long long)t->buf.size);
  vklm_buffer b = t->buf;
  b.offset += off;
  b.size = (n + 3) / 4 * 4 <= t->buf.size - off ? (n + 3) / 4 * 4 : n;
  return b;
}

const char *vklm_tensor_describe(const vklm_tensor *t, char *buf, size_t n) {
  int k = snprintf(buf, n, "%s (", vklm_dtype_name(t->dtype));
  for (uint32_t i = 0; i < t->ndim && k > 0 && (size_t)k < n; i++)
    k += snprintf(buf + k, n - k, "%s%u", i ? "," : "", t->shape[i]);
  if (k > 0 && (size_t)k < n)
    snprintf(buf + k, n - k, ")%s", vklm_tensor_is_contiguous(t) ? "" : " strided");
  return buf;
}

void vklm_tensor_expect(const char *op, const char *what, const vklm_tensor *t, vklm_dtype dt,
                        uint32_t ndim, uint32_t d0, uint32_t d1, uint32_t d2) {
  char desc[96];
  uint32_t want[3] = {d0, d1, d2};
  int ok = !vklm_tensor_is_none(t) && t->dtype == dt && t->ndim == ndim &&
           vklm_tensor_is_contiguous(t);
  for (uint32_t i = 0; ok && i < ndim && i < 3; i++) ok = !want[i] || t->shape[i] == want[i];
  ok = ok && elem_bytes(t->dtype, t->offset) + vklm_tensor_nbytes(t) <= t->buf.size;
  VKLM_ASSERT(ok, "%s: %s is %s, expected a contiguous %s tensor of %u dims (%u,%u,%u; 0 = any) "
              "within its buffer", op, what, vklm_tensor_describe(t, desc, sizeof desc),
              vklm_dtype_name(dt), ndim, d0, d1, d2);
}

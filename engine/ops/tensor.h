/* tensor: the engine's view of device memory — a buffer range, an element offset, a dtype, a
 * shape and strides. Models, the forward graph and the tensor-level ops (tensor_ops.h) pass
 * these instead of bare buffers plus sizes, so a shape or dtype mismatch is caught where it is
 * made, and the dtype travels with the data instead of being implied.
 *
 * Owns nothing: a tensor is a value (copy it freely) over a vklm_buffer that an arena owns.
 *
 * Conventions:
 * - shape[0] is the outermost dimension; ndim is 1..4; unused dimensions are 1 with stride 0.
 * - strides and offset count ELEMENTS. For the block types (Q8_0, Q4_0: 32 elements in 34 / 18
 *   bytes, ggml's layout) only whole, contiguous rows are addressable: the innermost stride is
 *   1, the row length a multiple of 32, and a row's bytes are vklm_dtype_bytes(t, 1, K).
 * - offset is added to buf's own (binding-aligned) offset; kernels that cannot take an element
 *   offset bind vklm_tensor_buffer(), which asserts that the byte offset is binding-aligned.
 * - F16 and BF16 are held as 16-bit words (two per 32-bit word, low half first), I32 as int32.
 *
 * Does not: allocate, copy data, or broadcast. */
#ifndef VKLM_OPS_TENSOR_H
#define VKLM_OPS_TENSOR_H

#include <stdint.h>

#include "vklm_runtime.h"

/* The first four are the types the linear-layer kernels read (quant.h), in this order. */
typedef enum vklm_dtype {
  VKLM_DTYPE_F32 = 0,
  VKLM_DTYPE_F16,
  VKLM_DTYPE_Q8_0,
  VKLM_DTYPE_Q4_0,
  VKLM_DTYPE_BF16,
  VKLM_DTYPE_I32,
  VKLM_DTYPE_COUNT
} vklm_dtype;
#define VKLM_DTYPE_LINEAR_COUNT 4 /* F32, F16, Q8_0, Q4_0 */

#define VKLM_TENSOR_MAX_DIMS 4

typedef struct vklm_tensor {
  vklm_buffer buf;   /* borrowed view of an arena's memory */
  uint64_t offset;   /* elements from buf's start */
  vklm_dtype dtype;
  uint32_t ndim;
  uint32_t shape[VKLM_TENSOR_MAX_DIMS];
  uint64_t stride[VKLM_TENSOR_MAX_DIMS]; /* elements */
} vklm_tensor;

/* "f32", "f16", "q8_0", "q4_0", "bf16", "i32" ("?" otherwise). */
const char *vklm_dtype_name(vklm_dtype t);
/* Whether t is a block-quantized type (Q8_0, Q4_0). */
int vklm_dtype_is_block(vklm_dtype t);
/* Bytes of an (N,K) matrix in type t, exactly as ggml stores it (F16: 2*N*K; block types need
 * K % 32 == 0). */
uint64_t vklm_dtype_bytes(vklm_dtype t, uint32_t N, uint32_t K);
/* vklm_dtype_bytes rounded up to a multiple of 4: what a device buffer must hold. */
uint64_t vklm_dtype_buffer_bytes(vklm_dtype t, uint32_t N, uint32_t K);

/* A contiguous (row-major) tensor over b; dims given outermost first (ndim 1..4). */
vklm_tensor vklm_tensor_make(vklm_buffer b, vklm_dtype t, uint32_t ndim, const uint32_t *shape);
vklm_tensor vklm_tensor_1d(vklm_buffer b, vklm_dtype t, uint32_t d0);
vklm_tensor vklm_tensor_2d(vklm_buffer b, vklm_dtype t, uint32_t d0, uint32_t d1);
vklm_tensor vklm_tensor_3d(vklm_buffer b, vklm_dtype t, uint32_t d0, uint32_t d1, uint32_t d2);
/* The empty tensor: no buffer (an optional argument left out, e.g. a missing bias). */
vklm_tensor vklm_tensor_none(void);
int vklm_tensor_is_none(const vklm_tensor *t);

uint64_t vklm_tensor_numel(const vklm_tensor *t);
/* Bytes from the first to one past the last element (contiguous: the data's size). */
uint64_t vklm_tensor_nbytes(const vklm_tensor *t);
int vklm_tensor_is_contiguous(const vklm_tensor *t);
/* Rows [r0, r0+n) of dimension 0 (a view; same strides). */
vklm_tensor vklm_tensor_rows(vklm_tensor t, uint32_t r0, uint32_t n);
/* The same memory seen as a contiguous (d0, d1) matrix: t must be contiguous with d0*d1
 * elements. */
vklm_tensor vklm_tensor_view_2d(vklm_tensor t, uint32_t d0, uint32_t d1);
/* A buffer covering exactly the tensor's bytes, for binding to kernels that take no offset:
 * asserts that the byte offset keeps the device's binding alignment (align, in bytes). */
vklm_buffer vklm_tensor_buffer(const vklm_tensor *t, uint32_t align);
/* Whether the tensor's byte offset is a multiple of align. */
int vklm_tensor_aligned(const vklm_tensor *t, uint32_t align);

/* Programmer-error checks (VKLM_ASSERT): t has this dtype, this many dimensions and (where the
 * expected size is not 0) these sizes; and is contiguous. op names the caller in the message. */
void vklm_tensor_expect(const char *op, const char *what, const vklm_tensor *t, vklm_dtype dt,
                        uint32_t ndim, uint32_t d0, uint32_t d1, uint32_t d2);
/* A one-line description "f32 (4,16) +12" into buf. */
const char *vklm_tensor_describe(const vklm_tensor *t, char *buf, size_t n);

#endif

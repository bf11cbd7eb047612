/* quant: the element types of model files and their plain C reference conversions.
 * Owns the table of ggml tensor types (numbers, names, block sizes, bytes per block) that GGUF
 * files use, and the reference (de)quantizers for the types vklm computes with: fp16 and bf16
 * <-> fp32, and ggml's Q8_0 and Q4_0 block formats, byte for byte as ggml lays them out:
 *   Q8_0: 32 elements per 34-byte block = fp16 scale d (little-endian), then 32 int8 quants;
 *         d = max|x| / 127, q = round-half-away(x * (1/d)); x' = d * q.
 *   Q4_0: 32 elements per 18-byte block = fp16 scale d, then 16 bytes: element j (0..15) in the
 *         low nibble of byte j, element j + 16 in the high nibble; with m the element of largest
 *         magnitude (first one on ties, sign kept), d = m / -8 and q = min(15, trunc(x * (1/d)
 *         + 8.5)) (round half up, as ggml's reference and gguf-py do); x' = d * (q - 8).
 * The scale is computed and used in fp32, then stored as fp16 (round to nearest even); all math
 * is plain fp32 multiply/add with no contraction (ISO C mode), so results are bit-reproducible.
 * Not here: the GPU (de)quantizers, the K-quants and i-quants (only their sizes are known). */
#ifndef VKLM_FORMATS_QUANT_H
#define VKLM_FORMATS_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml's type numbers, as stored in GGUF tensor infos (gaps are retired numbers). */
typedef enum vklm_ggml_type {
  VKLM_GGML_TYPE_F32 = 0,
  VKLM_GGML_TYPE_F16 = 1,
  VKLM_GGML_TYPE_Q4_0 = 2,
  VKLM_GGML_TYPE_Q4_1 = 3,
  VKLM_GGML_TYPE_Q5_0 = 6,
  VKLM_GGML_TYPE_Q5_1 = 7,
  VKLM_GGML_TYPE_Q8_0 = 8,
  VKLM_GGML_TYPE_Q8_1 = 9,
  VKLM_GGML_TYPE_Q2_K = 10,
  VKLM_GGML_TYPE_Q3_K = 11,
  VKLM_GGML_TYPE_Q4_K = 12,
  VKLM_GGML_TYPE_Q5_K = 13,
  VKLM_GGML_TYPE_Q6_K = 14,
  VKLM_GGML_TYPE_Q8_K = 15,
  VKLM_GGML_TYPE_IQ2_XXS = 16,
  VKLM_GGML_TYPE_IQ2_XS = 17,
  VKLM_GGML_TYPE_IQ3_XXS = 18,
  VKLM_GGML_TYPE_IQ1_S = 19,
  VKLM_GGML_TYPE_IQ4_NL = 20,
  VKLM_GGML_TYPE_IQ3_S = 21,
  VKLM_GGML_TYPE_IQ2_S = 22,
  VKLM_GGML_TYPE_IQ4_XS = 23,
  VKLM_GGML_TYPE_I8 = 24,
  VKLM_GGML_TYPE_I16 = 25,
  VKLM_GGML_TYPE_I32 = 26,
  VKLM_GGML_TYPE_I64 = 27,
  VKLM_GGML_TYPE_F64 = 28,
  VKLM_GGML_TYPE_IQ1_M = 29,
  VKLM_GGML_TYPE_BF16 = 30,
  VKLM_GGML_TYPE_TQ1_0 = 34,
  VKLM_GGML_TYPE_TQ2_0 = 35,
  VKLM_GGML_TYPE_MXFP4 = 39,
  VKLM_GGML_TYPE_COUNT = 40 /* one past the largest number in the table */
} vklm_ggml_type;

#define VKLM_QK8_0 32
#define VKLM_QK4_0 32
#define VKLM_Q8_0_BLOCK_BYTES 34
#define VKLM_Q4_0_BLOCK_BYTES 18

/* Name ("Q8_0"), or NULL for a number not in the table. */
const char *vklm_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; 0 for a number not in the table. */
uint32_t vklm_ggml_type_block(uint32_t type);
uint32_t vklm_ggml_type_block_bytes(uint32_t type);
/* 1 when vklm can convert the type to fp32 (F32, F16, BF16, Q8_0, Q4_0), else 0. */
int vklm_ggml_type_supported(uint32_t type);
/* Bytes of a row of n elements: -1 when the type is unknown or n is not a multiple of its block
 * size (never overflows: n < 2^63 and bytes per element < 2). */
int64_t vklm_ggml_row_bytes(uint32_t type, int64_t n);

/* ---- scalars ---- */
uint16_t vklm_f16_from_f32(float x); /* round to nearest even; overflow -> inf; NaN stays NaN */
float vklm_f16_to_f32(uint16_t h);   /* exact */
uint16_t vklm_bf16_from_f32(float x); /* round to nearest even; NaN -> quiet NaN (as ggml) */
float vklm_bf16_to_f32(uint16_t h);   /* exact */

/* ---- blocks: n elements, n a multiple of 32 (asserted) ---- */
/* Return -1 (dst then partly written) when a source value is NaN or infinite, else 0. */
int vklm_q8_0_quantize(void *dst, const float *src, size_t n);
int vklm_q4_0_quantize(void *dst, const float *src, size_t n);
void vklm_q8_0_dequantize(float *dst, const void *src, size_t n);
void vklm_q4_0_dequantize(float *dst, const void *src, size_t n);

/* n elements of a supported type (raw little-endian bytes, any alignment) to fp32; -1 when the
 * type is not supported or n is not a multiple of its block size. */
int vklm_ggml_to_f32(uint32_t type, float *dst, const void *src, size_t n);
/* n fp32 values to a writable type: F32, F16, BF16, Q8_0, Q4_0; -1 on another type, an n that
 * is not a multiple of the block size, or a non-finite value for the quantized types. */
int vklm_ggml_from_f32(uint32_t type, void *dst, const float *src, size_t n);

#endif

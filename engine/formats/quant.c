/* quant: ggml type table and reference conversions (see quant.h for the block layouts). */
#include "quant.h"

#include <assert.h>
#include <math.h>
#include <string.h>

typedef struct type_info {
  const char *name;
  uint32_t block, bytes;
} type_info;

/* Sizes as ggml defines them (QK_K = 256 for the K- and i-quants). */
static const type_info types[VKLM_GGML_TYPE_COUNT] = {
    [VKLM_GGML_TYPE_F32] = {"F32", 1, 4},
    [VKLM_GGML_TYPE_F16] = {"F16", 1, 2},
    [VKLM_GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},
    [VKLM_GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [VKLM_GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},
    [VKLM_GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [VKLM_GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},
    [VKLM_GGML_TYPE_Q8_1] = {"Q8_1", 32, 40},
    [VKLM_GGML_TYPE_Q2_K] = {"Q2_K", 256, 84},
    [VKLM_GGML_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [VKLM_GGML_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [VKLM_GGML_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [VKLM_GGML_TYPE_Q6_K] = {"Q6_K", 256, 210},
    [VKLM_GGML_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [VKLM_GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [VKLM_GGML_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [VKLM_GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [VKLM_GGML_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [VKLM_GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18},
    [VKLM_GGML_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [VKLM_GGML_TYPE_IQ2_S] = {"IQ2_S", 256, 82},
    [VKLM_GGML_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [VKLM_GGML_TYPE_I8] = {"I8", 1, 1},
    [VKLM_GGML_TYPE_I16] = {"I16", 1, 2},
    [VKLM_GGML_TYPE_I32] = {"I32", 1, 4},
    [VKLM_GGML_TYPE_I64] = {"I64", 1, 8},
    [VKLM_GGML_TYPE_F64] = {"F64", 1, 8},
    [VKLM_GGML_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [VKLM_GGML_TYPE_BF16] = {"BF16", 1, 2},
    [VKLM_GGML_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [VKLM_GGML_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
    [VKLM_GGML_TYPE_MXFP4] = {"MXFP4", 32, 17},
};

const char *vklm_ggml_type_name(uint32_t type) {
  return type < VKLM_GGML_TYPE_COUNT ? types[type].name : NULL;
}
uint32_t vklm_ggml_type_block(uint32_t type) {
  return type < VKLM_GGML_TYPE_COUNT && types[type].name ? types[type].block : 0;
}
uint32_t vklm_ggml_type_block_bytes(uint32_t type) {
  return type < VKLM_GGML_TYPE_COUNT && types[type].name ? types[type].bytes : 0;
}
int vklm_ggml_type_supported(uint32_t type) {
  return type == VKLM_GGML_TYPE_F32 || type == VKLM_GGML_TYPE_F16 || type == VKLM_GGML_TYPE_BF16 ||
         type == VKLM_GGML_TYPE_Q8_0 || type == VKLM_GGML_TYPE_Q4_0;
}
int64_t vklm_ggml_row_bytes(uint32_t type, int64_t n) {
  uint32_t blk = vklm_ggml_type_block(type), bytes = vklm_ggml_type_block_bytes(type);
  if (!blk || n < 0 || n % blk) return -1;
  int64_t nb = n / blk;
  if (nb > INT64_MAX / bytes) return -1;
  return nb * bytes;
}

/* ---- scalars ---- */
static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}
static float bits_f32(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

uint16_t vklm_f16_from_f32(float x) {
  uint32_t u = f32_bits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
  if (a >= 0x38800000u) { /* >= 2^-14: a normal fp16 (or overflow to inf) */
    uint32_t r = a - 0x38000000u; /* rebias the exponent from 127 to 15 */
    r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13; /* round to nearest even at bit 13 */
    return (uint16_t)(sign | (r >= 0x7c00u ? 0x7c00u : r));
  }
  uint32_t e = a >> 23, shift = 126 - e; /* subnormal: value = m * 2^(e-150), unit 2^-24 */
  if (shift > 24) return (uint16_t)sign;  /* below half the smallest subnormal (or 0) */
  uint32_t m = (a & 0x7fffffu) | 0x800000u, q = m >> shift, rem = m & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) q++; /* may carry into the smallest normal */
  return (uint16_t)(sign | q);
}

float vklm_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    float v = (float)m * 0x1p-24f;
    return sign ? -v : v;
  }
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
  return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t vklm_bf16_from_f32(float x) {
  uint32_t u = f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64u); /* quiet NaN */
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float vklm_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

static void put_f16(uint8_t *p, float x) {
  uint16_t h = vklm_f16_from_f32(x);
  p[0] = (uint8_t)h;
  p[1] = (uint8_t)(h >> 8);
}
static float get_f16(const uint8_t *p) { return vklm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* ---- blocks ---- */
int vklm_q8_0_quantize(void *dst, const float *src, size_t n) {
  assert(n % VKLM_QK8_0 == 0);
  uint8_t *out = dst;
  for (size_t b = 0; b < n / VKLM_QK8_0; b++, out += VKLM_Q8_0_BLOCK_BYTES) {
    const float *x = src + b * VKLM_QK8_0;
    float amax = 0.0f;
    for (int j = 0; j < VKLM_QK8_0; j++) {
      if (!isfinite(x[j])) return -1;
      float a = fabsf(x[j]);
      if (a > amax) amax = a;
    }
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d); /* the fp32 d quantizes; its fp16 rounding is what is stored */
    for (int j = 0; j < VKLM_QK8_0; j++) {
      float v = x[j] * id;
      out[2 + j] = (uint8_t)(int8_t)roundf(v); /* half away from zero; |v| <= 127 */
    }
  }
  return 0;
}

void vklm_q8_0_dequantize(float *dst, const void *src, size_t n) {
  assert(n % VKLM_QK8_0 == 0);
  const uint8_t *in = src;
  for (size_t b = 0; b < n / VKLM_QK8_0; b++, in += VKLM_Q8_0_BLOCK_BYTES) {
    float d = get_f16(in);
    for (int j = 0; j < VKLM_QK8_0; j++) dst[b * VKLM_QK8_0 + j] = d * (float)(int8_t)in[2 + j];
  }
}

static uint8_t q4(float x, float id) {
  float t = x * id;
  t = t + 8.5f; /* separate statement: no fused multiply-add, as numpy and ggml compute it */
  int q = (int)t; /* |x * id| <= 8 (+ rounding), so t >= 0 and truncation is floor */
  return (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
}

int vklm_q4_0_quantize(void *dst, const float *src, size_t n) {
  assert(n % VKLM_QK4_0 == 0);
  uint8_t *out = dst;
  for (size_t b = 0; b < n / VKLM_QK4_0; b++, out += VKLM_Q4_0_BLOCK_BYTES) {
    const float *x = src + b * VKLM_QK4_0;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < VKLM_QK4_0; j++) {
      if (!isfinite(x[j])) return -1;
      if (fabsf(x[j]) > amax) { /* first element of largest magnitude, sign kept */
        amax = fabsf(x[j]);
        max = x[j];
      }
    }
    float d = max / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int j = 0; j < VKLM_QK4_0 / 2; j++)
      out[2 + j] = (uint8_t)(q4(x[j], id) | q4(x[j + VKLM_QK4_0 / 2], id) << 4);
  }
  return 0;
}

void vklm_q4_0_dequantize(float *dst, const void *src, size_t n) {
  assert(n % VKLM_QK4_0 == 0);
  const uint8_t *in = src;
  for (size_t b = 0; b < n / VKLM_QK4_0; b++, in += VKLM_Q4_0_BLOCK_BYTES) {
    float d = get_f16(in);
    float *y = dst + b * VKLM_QK4_0;
    for (int j = 0; j < VKLM_QK4_0 / 2; j++) {
      y[j] = d * (float)((int)(in[2 + j] & 0x0f) - 8);
      y[j + VKLM_QK4_0 / 2] = d * (float)((int)(in[2 + j] >> 4) - 8);
    }
  }
}

int vklm_ggml_to_f32(uint32_t type, float *dst, const void *src, size_t n) {
  const uint8_t *p = src;
  switch (type) {
  case VKLM_GGML_TYPE_F32:
    memcpy(dst, src, n * 4); /* little-endian host */
    return 0;
  case VKLM_GGML_TYPE_F16:
    for (size_t i = 0; i < n; i++) dst[i] = vklm_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    return 0;
  case VKLM_GGML_TYPE_BF16:
    for (size_t i = 0; i < n; i++)
      dst[i] = vklm_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    return 0;
  case VKLM_GGML_TYPE_Q8_0:
    if (n % VKLM_QK8_0) return -1;
    vklm_q8_0_dequantize(dst, src, n);
    return 0;
  case VKLM_GGML_TYPE_Q4_0:
    if (n % VKLM_QK4_0) return -1;
    vklm_q4_0_dequantize(dst, src, n);
    return 0;
  default:
    return -1;
  }
}

int vklm_ggml_from_f32(uint32_t type, void *dst, const float *src, size_t n) {
  uint8_t *p = dst;
  switch (type) {
  case VKLM_GGML_TYPE_F32:
    memcpy(dst, src, n * 4);
    return 0;
  case VKLM_GGML_TYPE_F16:
  case VKLM_GGML_TYPE_BF16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h = type == VKLM_GGML_TYPE_F16 ? vklm_f16_from_f32(src[i]) : vklm_bf16_from_f32(src[i]);
      p[2 * i] = (uint8_t)h;
      p[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return 0;
  case VKLM_GGML_TYPE_Q8_0:
    return n % VKLM_QK8_0 ? -1 : vklm_q8_0_quantize(dst, src, n);
  case VKLM_GGML_TYPE_Q4_0:
    return n % VKLM_QK4_0 ? -1 : vklm_q4_0_quantize(dst, src, n);
  default:
    return -1;
  }
}

/* test_formats: model file formats, CPU only (engine/formats): fp16/bf16 conversions, Q8_0/Q4_0
 * reference quantizers (error bounds, exact bytes on rounding ties, the nibble layout), GGUF
 * write -> read round trips of every metadata and tensor type, and hostile GGUF and safetensors
 * files: each field corrupted with the error it must name, truncation at every offset, every
 * byte flipped (must fail cleanly or parse, never crash: run once under ASan, see docs). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "formats/quant.h"
#include "formats/safetensors.h"
#include "testutil.h"

static int checks, failures;
static void expect(int ok, const char *fmt, ...) {
  checks++;
  if (ok) return;
  failures++;
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

/* ---- fp16 / bf16 ---- */
static void test_half(void) {
  int bad16 = 0, badbf = 0, badnear = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = vklm_f16_to_f32((uint16_t)h), g = vklm_bf16_to_f32((uint16_t)h);
    uint16_t back = vklm_f16_from_f32(f), backb = vklm_bf16_from_f32(g);
    if (isnan(f) ? !isnan(vklm_f16_to_f32(back)) : back != h) bad16++;
    if (isnan(g) ? !isnan(vklm_bf16_to_f32(backb)) : backb != h) badbf++;
  }
  expect(!bad16 && !badbf, "fp16/bf16 -> fp32 -> back is not the identity (%d, %d)", bad16, badbf);
  /* nearest-value property on random floats over the whole fp16 range, incl. subnormals */
  uint32_t s = 12345;
  for (int i = 0; i < 200000; i++) {
    s = s * 1664525u + 1013904223u;
    float x = ldexpf((float)(s >> 8) / (float)(1 << 24), (int)(s % 48) - 30) * ((s & 1) ? -1 : 1);
    uint16_t h = vklm_f16_from_f32(x);
    float y = vklm_f16_to_f32(h), e = fabsf(x - y);
    if (fabsf(x) >= 65520.0f && (h & 0x7fff) != 0x7c00) badnear++; /* overflow: inf */
    for (int dlt = -1; dlt <= 1 && fabsf(x) < 65520.0f; dlt += 2) {
      uint16_t n = (uint16_t)(h + dlt);
      if ((n & 0x7c00) == 0x7c00 || ((h ^ n) & 0x8000)) continue;
      if (fabsf(x - vklm_f16_to_f32(n)) < e) badnear++;
    }
    uint16_t b = vklm_bf16_from_f32(x);
    float bf = vklm_bf16_to_f32(b);
    for (int dlt = -1; dlt <= 1; dlt += 2)
      if (fabsf(x - vklm_bf16_to_f32((uint16_t)(b + dlt))) < fabsf(x - bf)) badnear++;
  }
  expect(!badnear, "fp16/bf16 conversion not nearest for %d random values", badnear);
  struct { float x; uint16_t h; } f16[] = {
      {1.0f, 0x3c00}, {65504.0f, 0x7bff}, {65519.0f, 0x7bff}, {65520.0f, 0x7c00}, {-1e9f, 0xfc00},
      {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.000002p-25f, 0x0001}, {0x3p-25f, 0x0002},
      {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x3p-11f, 0x3c02}, {0x1.ffcp-15f, 0x0400}, {-0.0f, 0x8000},
      {INFINITY, 0x7c00}};
  for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++)
    expect(vklm_f16_from_f32(f16[i].x) == f16[i].h, "fp16(%a) = 0x%04x, want 0x%04x", f16[i].x,
           vklm_f16_from_f32(f16[i].x), f16[i].h);
  expect(vklm_bf16_from_f32(1.0f + 0x1p-8f) == 0x3f80 && vklm_bf16_from_f32(1.0f + 0x3p-8f) == 0x3f82 &&
             vklm_bf16_from_f32(NAN) == 0x7fc0,
         "bf16 rounding ties / NaN");
  printf("fp16/bf16: all 65536 codes round-trip; 200000 random values convert to the nearest; "
         "%zu fixed cases\n", sizeof f16 / sizeof f16[0] + 3);
}

/* ---- Q8_0 / Q4_0 ---- */
static void test_quant(void) {
  enum { NB = 64, N = NB * 32 };
  float *x = vt_randf(N, 7, -1, 1), y[N];
  uint8_t q[NB * 34];
  /* structure per block: scales from 1e-6 to 1e4, a zero block, a block with one outlier */
  for (int b = 0; b < NB; b++)
    for (int j = 0; j < 32; j++) x[b * 32 + j] *= powf(10.0f, (float)(b % 11) - 6);
  for (int j = 0; j < 32; j++) x[5 * 32 + j] = 0;
  x[6 * 32 + 3] = 500;
  expect(!vklm_q8_0_quantize(q, x, N), "q8_0 quantize");
  vklm_q8_0_dequantize(y, q, N);
  double worst8 = 0, worst4 = 0, worst4c = 0;
  for (int b = 0; b < NB; b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
    float d = amax / 127, d16 = vklm_f16_to_f32((uint16_t)(q[b * 34] | q[b * 34 + 1] << 8));
    double bound = d / 2 * (1 + 1e-5) + 127 * fabs((double)d - d16) + 1e-30;
    for (int j = 0; j < 32; j++) {
      double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
      if (d > 0) worst8 = fmax(worst8, e / (d / 2 + 127 * fabs((double)d - d16)));
      expect(e <= bound, "q8_0 block %d elem %d: error %g > bound %g", b, j, e, bound);
    }
  }
  expect(!vklm_q4_0_quantize(q, x, N), "q4_0 quantize");
  vklm_q4_0_dequantize(y, q, N);
  for (int b = 0; b < NB; b++) {
    float amax = 0, m = 0;
    for (int j = 0; j < 32; j++)
      if (fabsf(x[b * 32 + j]) > amax) amax = fabsf(m = x[b * 32 + j]);
    float d = m / -8, d16 = vklm_f16_to_f32((uint16_t)(q[b * 18] | q[b * 18 + 1] << 8));
    double fp16e = 8 * fabs((double)d - d16);
    for (int j = 0; j < 32; j++) {
      double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
      int clamped = d != 0 && x[b * 32 + j] / d >= 7.5f; /* q would be 16: clamped to 15 */
      double bound = (clamped ? fabs(d) : fabs(d) / 2) * (1 + 1e-5) + fp16e + 1e-30;
      if (d != 0) {
        if (clamped) worst4c = fmax(worst4c, e / (fabs(d) + fp16e));
        else worst4 = fmax(worst4, e / (fabs(d) / 2 + fp16e));
      }
      expect(e <= bound, "q4_0 block %d elem %d: error %g > bound %g", b, j, e, bound);
    }
  }
  printf("q8_0: |x - x'| <= d/2 + 127|d - fp16(d)| per element, worst %.4f of the bound (%d blocks)\n",
         worst8, NB);
  printf("q4_0: |x - x'| <= |d|/2 + 8|d - fp16(d)| (|d| where x/d >= 7.5 clamps q to 15), worst %.4f"
         " / %.4f (clamped) of the bound\n", worst4, worst4c);
  /* exact bytes on ties (documents the rounding modes) and the layouts */
  float t8[32] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -126.5f, 3};
  static const int8_t w8[10] = {127, 3, -3, 1, -1, 2, -2, 127, -127, 3}; /* half away from zero */
  vklm_q8_0_quantize(q, t8, 32);
  int ok = q[0] == 0x00 && q[1] == 0x3c;
  for (int j = 0; j < 32; j++) ok &= (int8_t)q[2 + j] == (j < 10 ? w8[j] : 0);
  expect(ok, "q8_0 tie block bytes");
  float t4[32] = {-8, 2.5f, -2.5f, 0.5f, -0.5f, 7.5f, -7.5f, 3.5f, -3.5f, 1, 6.5f};
  t4[16] = 4; t4[31] = -1;
  static const uint8_t w4[16] = {0, 11, 6, 9, 8, 15, 1, 12, 5, 9, 15, 8, 8, 8, 8, 8}; /* half up */
  vklm_q4_0_quantize(q, t4, 32);
  ok = q[0] == 0x00 && q[1] == 0x3c; /* d = -8 / -8 = 1 */
  for (int j = 0; j < 16; j++) {
    uint8_t hi = j == 0 ? 12 : j == 15 ? 7 : 8; /* element j + 16 in the high nibble */
    ok &= q[2 + j] == (uint8_t)(w4[j] | hi << 4);
  }
  expect(ok, "q4_0 tie block bytes (low nibble: element j, high nibble: element j+16)");
  printf("q8_0/q4_0: exact bytes for rounding ties: Q8_0 rounds half away from zero (2.5 -> 3, "
         "-2.5 -> -3), Q4_0 rounds half up (2.5 -> 3, -2.5 -> -2) and clamps 7.5 -> 7\n");
  float bad[32] = {1, NAN};
  expect(vklm_q8_0_quantize(q, bad, 32) == -1 && vklm_q4_0_quantize(q, bad, 32) == -1,
         "quantize rejects NaN");
  free(x);
}

/* ---- a byte buffer for hand-made files ---- */
typedef struct bb {
  uint8_t *p;
  size_t n, cap;
} bb;
static void bput(bb *b, const void *s, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}
static void bu32(bb *b, uint32_t v) { bput(b, &v, 4); }
static void bu64(bb *b, uint64_t v) { bput(b, &v, 8); }
static void bstr(bb *b, const char *s) { bu64(b, strlen(s)); bput(b, s, strlen(s)); }
static void bpad(bb *b, size_t a) { while (b->n % a) bput(b, "", 1); }
static void bzeros(bb *b, size_t n) { while (n--) bput(b, "", 1); }
static uint8_t *exact(const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  if (n) memcpy(c, p, n);
  return c;
}
static void shrink(bb *b) { /* capacity = size: ASan then sees reads past the end */
  uint8_t *c = exact(b->p, b->n);
  free(b->p);
  b->p = c;
  b->cap = b->n;
}

/* ---- GGUF round trip ---- */
static char tmpdir[64];

static void test_gguf_roundtrip(uint32_t alignment) {
  char path[128], err[512];
  snprintf(path, sizeof path, "%s/rt%u.gguf", tmpdir, alignment);
  vklm_gguf_writer *w;
  expect(!vklm_gguf_writer_create(alignment, &w), "writer create");
  static const uint8_t a_u8[] = {1, 255}, a_bool[] = {0, 1};
  static const int8_t a_i8[] = {-128, 127};
  static const uint16_t a_u16[] = {0, 65535};
  static const int16_t a_i16[] = {-32768, 5};
  static const uint32_t a_u32[] = {7, 4294967295u};
  static const int32_t a_i32[] = {-2147483647 - 1, 9};
  static const uint64_t a_u64[] = {UINT64_MAX, 3};
  static const int64_t a_i64[] = {INT64_MIN, 11};
  static const float a_f32[] = {1.5f, -0.0f};
  static const double a_f64[] = {1e-300, -2.5};
  static const char *a_str[] = {"x", "", "\xe2\x9c\x93", "longer string"};
  int bad = vklm_gguf_writer_add_u8(w, "k.u8", 250) || vklm_gguf_writer_add_i8(w, "k.i8", -7) ||
            vklm_gguf_writer_add_u16(w, "k.u16", 65000) || vklm_gguf_writer_add_i16(w, "k.i16", -300) ||
            vklm_gguf_writer_add_u32(w, "k.u32", 4000000000u) ||
            vklm_gguf_writer_add_i32(w, "k.i32", -5) || vklm_gguf_writer_add_u64(w, "k.u64", UINT64_MAX) ||
            vklm_gguf_writer_add_i64(w, "k.i64", INT64_MIN) || vklm_gguf_writer_add_f32(w, "k.f32", 0.1f) ||
            vklm_gguf_writer_add_f64(w, "k.f64", 0.1) || vklm_gguf_writer_add_bool(w, "k.bool", 1) ||
            vklm_gguf_writer_add_str(w, "k.str", "hello gguf") ||
            vklm_gguf_writer_add_array(w, "a.u8", VKLM_GGUF_TYPE_UINT8, a_u8, 2) ||
            vklm_gguf_writer_add_array(w, "a.i8", VKLM_GGUF_TYPE_INT8, a_i8, 2) ||
            vklm_gguf_writer_add_array(w, "a.u16", VKLM_GGUF_TYPE_UINT16, a_u16, 2) ||
            vklm_gguf_writer_add_array(w, "a.i16", VKLM_GGUF_TYPE_INT16, a_i16, 2) ||
            vklm_gguf_writer_add_array(w, "a.u32", VKLM_GGUF_TYPE_UINT32, a_u32, 2) ||
            vklm_gguf_writer_add_array(w, "a.i32", VKLM_GGUF_TYPE_INT32, a_i32, 2) ||
            vklm_gguf_writer_add_array(w, "a.u64", VKLM_GGUF_TYPE_UINT64, a_u64, 2) ||
            vklm_gguf_writer_add_array(w, "a.i64", VKLM_GGUF_TYPE_INT64, a_i64, 2) ||
            vklm_gguf_writer_add_array(w, "a.f32", VKLM_GGUF_TYPE_FLOAT32, a_f32, 2) ||
            vklm_gguf_writer_add_array(w, "a.f64", VKLM_GGUF_TYPE_FLOAT64, a_f64, 2) ||
            vklm_gguf_writer_add_array(w, "a.bool", VKLM_GGUF_TYPE_BOOL, a_bool, 2) ||
            vklm_gguf_writer_add_array_str(w, "a.str", a_str, 4);
  expect(!bad, "writer metadata");
  expect(vklm_gguf_writer_add_u8(w, "k.u8", 1) == -1 && vklm_gguf_writer_add_str(w, "", "x") == -1,
         "writer rejects a duplicate and an empty key");
  static const struct { const char *name; uint32_t type, nd; int64_t ne[4]; } ts[] = {
      {"f32.1d", VKLM_GGML_TYPE_F32, 1, {37}},
      {"f16.2d", VKLM_GGML_TYPE_F16, 2, {5, 3}},
      {"bf16.3d", VKLM_GGML_TYPE_BF16, 3, {4, 3, 2}},
      {"q8.4d", VKLM_GGML_TYPE_Q8_0, 4, {64, 2, 1, 3}},
      {"q4.2d", VKLM_GGML_TYPE_Q4_0, 2, {96, 3}},
      {"scalar", VKLM_GGML_TYPE_F32, 0, {1}},
  };
  enum { NT = sizeof ts / sizeof ts[0] };
  float *src[NT];
  for (int i = 0; i < NT; i++) {
    int64_t n = ts[i].ne[0];
    for (uint32_t d = 1; d < ts[i].nd; d++) n *= ts[i].ne[d];
    src[i] = vt_randf((size_t)n, 100 + (uint64_t)i, -3, 3);
    expect(!vklm_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne, src[i]),
           "add tensor %s", ts[i].name);
  }
  int64_t ne33[1] = {33};
  expect(vklm_gguf_writer_add_tensor(w, "bad", VKLM_GGML_TYPE_Q4_0, 1, ne33, src[0]) == -1 &&
             vklm_gguf_writer_add_tensor(w, "f32.1d", VKLM_GGML_TYPE_F32, 1, ne33, src[0]) == -1,
         "writer rejects a Q4_0 row of 33 and a duplicate tensor name");
  expect(!vklm_gguf_writer_finish(w, path, err, sizeof err), "writer finish: %s", err);
  vklm_gguf *g;
  if (vklm_gguf_open(path, &g, err, sizeof err)) {
    expect(0, "open written file: %s", err);
    return;
  }
  expect(vklm_gguf_version(g) == 3 && vklm_gguf_alignment(g) == (alignment ? alignment : 32),
         "version 3, alignment %u", vklm_gguf_alignment(g));
  uint32_t u32; uint64_t u64; int32_t i32; int64_t i64; float f; int bl; const char *s; uint64_t len;
  expect(!vklm_gguf_get_u32(g, "k.u8", &u32) && u32 == 250, "k.u8");
  expect(!vklm_gguf_get_i32(g, "k.i8", &i32) && i32 == -7 && vklm_gguf_get_u32(g, "k.i8", &u32),
         "k.i8 (and a negative value does not fit u32)");
  expect(!vklm_gguf_get_u32(g, "k.u16", &u32) && u32 == 65000, "k.u16");
  expect(!vklm_gguf_get_i32(g, "k.i16", &i32) && i32 == -300, "k.i16");
  expect(!vklm_gguf_get_u32(g, "k.u32", &u32) && u32 == 4000000000u && vklm_gguf_get_i32(g, "k.u32", &i32),
         "k.u32 (and it does not fit i32)");
  expect(!vklm_gguf_get_i32(g, "k.i32", &i32) && i32 == -5, "k.i32");
  expect(!vklm_gguf_get_u64(g, "k.u64", &u64) && u64 == UINT64_MAX && vklm_gguf_get_i64(g, "k.u64", &i64),
         "k.u64");
  expect(!vklm_gguf_get_i64(g, "k.i64", &i64) && i64 == INT64_MIN, "k.i64");
  expect(!vklm_gguf_get_f32(g, "k.f32", &f) && f == 0.1f, "k.f32");
  expect(!vklm_gguf_get_f32(g, "k.f64", &f) && f == 0.1f, "k.f64 as f32");
  expect(!vklm_gguf_get_bool(g, "k.bool", &bl) && bl == 1 && vklm_gguf_get_bool(g, "k.u8", &bl), "k.bool");
  expect(!vklm_gguf_get_str(g, "k.str", &s, &len) && len == 10 && !strcmp(s, "hello gguf") &&
             vklm_gguf_get_str(g, "k.u8", &s, &len) && vklm_gguf_get_u32(g, "missing", &u32),
         "k.str, type mismatch, missing key");
  vklm_gguf_array a;
  int64_t iv[2];
  float fv[2];
  expect(!vklm_gguf_get_array(g, "a.u8", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[1] == 255, "a.u8");
  expect(!vklm_gguf_get_array(g, "a.i8", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[0] == -128, "a.i8");
  expect(!vklm_gguf_get_array(g, "a.u16", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[1] == 65535, "a.u16");
  expect(!vklm_gguf_get_array(g, "a.i16", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[0] == -32768, "a.i16");
  expect(!vklm_gguf_get_array(g, "a.u32", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[1] == 4294967295ll, "a.u32");
  expect(!vklm_gguf_get_array(g, "a.i32", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[0] == INT32_MIN, "a.i32");
  expect(!vklm_gguf_get_array(g, "a.u64", &a) && vklm_gguf_array_copy_i64(&a, iv) == -1 &&
             !vklm_gguf_array_int(&a, 1, &iv[1]) && iv[1] == 3, "a.u64 (UINT64_MAX does not fit int64)");
  expect(!vklm_gguf_get_array(g, "a.i64", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[0] == INT64_MIN, "a.i64");
  expect(!vklm_gguf_get_array(g, "a.f32", &a) && !vklm_gguf_array_copy_f32(&a, fv) && fv[0] == 1.5f &&
             signbit(fv[1]), "a.f32");
  double dv;
  expect(!vklm_gguf_get_array(g, "a.f64", &a) && !vklm_gguf_array_num(&a, 0, &dv) && dv == 1e-300, "a.f64");
  expect(!vklm_gguf_get_array(g, "a.bool", &a) && !vklm_gguf_array_copy_i64(&a, iv) && iv[0] == 0 && iv[1] == 1,
         "a.bool");
  expect(!vklm_gguf_get_array(g, "a.str", &a) && a.n == 4 && a.type == VKLM_GGUF_TYPE_STRING, "a.str");
  for (uint64_t i = 0; i < 4 && a.n == 4; i++)
    expect(!vklm_gguf_array_str(&a, i, &s, &len) && len == strlen(a_str[i]) && !memcmp(s, a_str[i], len),
           "a.str[%d]", (int)i);
  expect(vklm_gguf_array_str(&a, 4, &s, &len) == -1 && vklm_gguf_array_copy_f32(&a, fv) == -1,
         "string array: out of range, not numeric");
  expect(vklm_gguf_tensor_count(g) == NT, "tensor count");
  double worst = 0;
  for (int i = 0; i < NT; i++) {
    const vklm_gguf_tensor *t = vklm_gguf_tensor_find(g, ts[i].name);
    if (!t) {
      expect(0, "tensor %s missing", ts[i].name);
      continue;
    }
    int shape_ok = t->type == ts[i].type && t->n_dims == ts[i].nd;
    for (uint32_t d = 0; d < ts[i].nd; d++) shape_ok &= t->ne[d] == ts[i].ne[d];
    expect(shape_ok && t->offset % vklm_gguf_alignment(g) == 0 && t == vklm_gguf_tensor_get(g, (size_t)i),
           "tensor %s: type, dims, alignment, order", ts[i].name);
    size_t n = (size_t)t->nelem;
    uint8_t *want = malloc(t->nbytes);
    float *got = malloc(n * 4), *ref = malloc(n * 4);
    vklm_ggml_from_f32(t->type, want, src[i], n);
    expect(!memcmp(want, t->data, t->nbytes), "tensor %s: bytes equal what was written", ts[i].name);
    expect(!vklm_gguf_tensor_to_f32(t, got, err, sizeof err), "to_f32 %s", err);
    vklm_ggml_to_f32(t->type, ref, want, n);
    expect(!memcmp(got, ref, n * 4), "tensor %s: to_f32", ts[i].name);
    for (size_t k = 0; k < n; k++) worst = fmax(worst, fabs(got[k] - src[i][k]));
    free(want); free(got); free(ref); free(src[i]);
  }
  expect(!vklm_gguf_tensor_find(g, "nope"), "missing tensor");
  printf("gguf round trip (alignment %u): %zu metadata entries of all 12 value types + arrays of "
         "all 11 element types, %d tensors (F32 F16 BF16 Q8_0 Q4_0, 0-4 dims) identical; worst "
         "|dequant - source| %.4f\n", vklm_gguf_alignment(g), vklm_gguf_kv_count(g), NT, worst);
  vklm_gguf_close(g);
}

/* ---- hostile GGUF ---- */
static void hdr(bb *b, uint32_t version, uint64_t nt, uint64_t nkv) {
  bput(b, "GGUF", 4);
  bu32(b, version);
  bu64(b, nt);
  bu64(b, nkv);
}
static void kv_str(bb *b, const char *k, const char *v) { bstr(b, k); bu32(b, VKLM_GGUF_TYPE_STRING); bstr(b, v); }
static void kv_u32(bb *b, const char *k, uint32_t v) { bstr(b, k); bu32(b, VKLM_GGUF_TYPE_UINT32); bu32(b, v); }
static void tinfo(bb *b, const char *name, uint32_t nd, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t off) {
  bstr(b, name);
  bu32(b, nd);
  if (nd >= 1) bu64(b, ne0);
  if (nd >= 2) bu64(b, ne1);
  for (uint32_t d = 2; d < nd; d++) bu64(b, 1);
  bu32(b, type);
  bu64(b, off);
}
/* The valid base: one string kv, F32 "a" [8] at 0 and Q4_0 "b" [32,2] at 32; 68 data bytes. */
static void base_tensors(bb *b) {
  tinfo(b, "a", 1, 8, 0, VKLM_GGML_TYPE_F32, 0);
  tinfo(b, "b", 2, 32, 2, VKLM_GGML_TYPE_Q4_0, 32);
  bpad(b, 32);
  bzeros(b, 68);
}
static void good_gguf(bb *b) {
  hdr(b, 3, 2, 1);
  kv_str(b, "general.name", "x");
  base_tensors(b);
}

static int hostile_n;
static void expect_gguf_err(bb *b, const char *needle, const char *what) {
  vklm_gguf *g = NULL;
  char err[512] = "";
  shrink(b);
  int rc = vklm_gguf_open_memory(b->p, b->n, &g, err, sizeof err);
  expect(rc == -1 && !g && strstr(err, needle), "gguf %s: want an error containing '%s', got rc %d '%s'",
         what, needle, rc, err);
  if (hostile_n++ < 40) printf("  gguf %-34s -> %s\n", what, err);
  vklm_gguf_close(g);
  free(b->p);
  *b = (bb){0};
}

static void test_gguf_hostile(void) {
  bb b = {0};
  vklm_gguf *g;
  char err[512];
  good_gguf(&b);
  expect(!vklm_gguf_open_memory(b.p, b.n, &g, err, sizeof err), "base file opens: %s", err);
  vklm_gguf_close(g);
  free(b.p);
  b = (bb){0};
  hdr(&b, 2, 2, 1); /* version 2 has the same layout: accepted */
  kv_str(&b, "general.name", "x");
  base_tensors(&b);
  expect(!vklm_gguf_open_memory(b.p, b.n, &g, err, sizeof err) && vklm_gguf_version(g) == 2,
         "a version 2 file opens: %s", err);
  vklm_gguf_close(g);
  free(b.p);
  b = (bb){0};
  expect(vklm_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err) == -1 && strstr(err, "/nonexistent/x.gguf"),
         "a missing file: %s", err);
  printf("hostile GGUF files (each must fail with the message shown):\n");
  hdr(&b, 3, 2, 1); b.p[3] = 'X'; kv_str(&b, "general.name", "x"); base_tensors(&b);
  expect_gguf_err(&b, "bad magic", "magic GGUX");
  hdr(&b, 1, 2, 1); kv_str(&b, "general.name", "x"); base_tensors(&b);
  expect_gguf_err(&b, "version 1 is not supported", "version 1");
  hdr(&b, 4, 2, 1); kv_str(&b, "general.name", "x"); base_tensors(&b);
  expect_gguf_err(&b, "version 4 is not supported", "version 4");
  hdr(&b, 3, 2, 1ull << 63); kv_str(&b, "general.name", "x"); base_tensors(&b);
  expect_gguf_err(&b, "metadata count 9223372036854775808", "key count 2^63");
  hdr(&b, 3, 1ull << 62, 1); kv_str(&b, "general.name", "x"); base_tensors(&b);
  expect_gguf_err(&b, "tensor count 4611686018427387904", "tensor count 2^62");
  hdr(&b, 3, 2, 1); bu64(&b, 1ull << 40); bput(&b, "general.name", 12); base_tensors(&b);
  expect_gguf_err(&b, "string length 1099511627776", "key length 2^40");
  hdr(&b, 3, 2, 1); bstr(&b, ""); bu32(&b, 4); bu32(&b, 1); base_tensors(&b);
  expect_gguf_err(&b, "key length 0", "empty key");
  hdr(&b, 3, 2, 1); bstr(&b, "k"); bu32(&b, 13); bu32(&b, 1); base_tensors(&b);
  expect_gguf_err(&b, "unknown value type 13", "value type 13");
  hdr(&b, 3, 2, 1); bstr(&b, "k"); bu32(&b, VKLM_GGUF_TYPE_STRING); bu64(&b, 5000); base_tensors(&b);
  expect_gguf_err(&b, "string length 5000", "string value past the end");
  hdr(&b, 3, 2, 1); bstr(&b, "k"); bu32(&b, VKLM_GGUF_TYPE_ARRAY); bu32(&b, VKLM_GGUF_TYPE_UINT32);
  bu64(&b, 1ull << 61); base_tensors(&b);
  expect_gguf_err(&b, "array of 2305843009213693952 uint32", "u32 array length 2^61");
  hdr(&b, 3, 2, 1); bstr(&b, "k"); bu32(&b, VKLM_GGUF_TYPE_ARRAY); bu32(&b, VKLM_GGUF_TYPE_STRING);
  bu64(&b, 1ull << 60); base_tensors(&b);
  expect_gguf_err(&b, "strings cannot fit", "string array length 2^60");
  hdr(&b, 3, 2, 1); bstr(&b, "k"); bu32(&b, VKLM_GGUF_TYPE_ARRAY); bu32(&b, VKLM_GGUF_TYPE_STRING);
  bu64(&b, 2); bstr(&b, "ok"); bu64(&b, 1u << 20); base_tensors(&b);
  expect_gguf_err(&b, "string element 1 of 2", "string element past the end");
  hdr(&b, 3, 2, 1); bstr(&b, "k"); bu32(&b, VKLM_GGUF_TYPE_ARRAY); bu32(&b, VKLM_GGUF_TYPE_ARRAY);
  bu64(&b, 1); base_tensors(&b);
  expect_gguf_err(&b, "nested arrays", "array of arrays");
  hdr(&b, 3, 2, 1); bstr(&b, "k"); bu32(&b, VKLM_GGUF_TYPE_BOOL); bput(&b, "\x02", 1); base_tensors(&b);
  expect_gguf_err(&b, "bool value 2", "bool value 2");
  hdr(&b, 3, 2, 2); kv_str(&b, "general.name", "x"); kv_str(&b, "general.name", "y"); base_tensors(&b);
  expect_gguf_err(&b, "duplicate metadata key 'general.name'", "duplicate key");
  hdr(&b, 3, 2, 1); kv_u32(&b, "general.alignment", 0); base_tensors(&b);
  expect_gguf_err(&b, "general.alignment", "alignment 0");
  hdr(&b, 3, 2, 1); kv_u32(&b, "general.alignment", 24); base_tensors(&b);
  expect_gguf_err(&b, "general.alignment", "alignment 24");
  hdr(&b, 3, 2, 1); kv_str(&b, "general.alignment", "32"); base_tensors(&b);
  expect_gguf_err(&b, "general.alignment", "alignment as a string");
  hdr(&b, 3, 1, 0); tinfo(&b, "0123456789012345678901234567890123456789012345678901234567890123x", 1, 8, 0, 0, 0);
  bpad(&b, 32); bzeros(&b, 32);
  expect_gguf_err(&b, "name length 65", "tensor name of 65 bytes");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 5, 8, 1, VKLM_GGML_TYPE_F32, 0); bpad(&b, 32); bzeros(&b, 32);
  expect_gguf_err(&b, "n_dims 5 exceeds the limit 4", "n_dims 5");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 2, 8, 0, VKLM_GGML_TYPE_F32, 0); bpad(&b, 32); bzeros(&b, 32);
  expect_gguf_err(&b, "dim 1 is 0", "a dim of 0");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 1, 1ull << 62, 0, VKLM_GGML_TYPE_F32, 0); bpad(&b, 32); bzeros(&b, 32);
  expect_gguf_err(&b, "needs more bytes than the file holds", "a dim of 2^62");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 1, 1ull << 63, 0, VKLM_GGML_TYPE_F32, 0); bpad(&b, 32); bzeros(&b, 32);
  expect_gguf_err(&b, "must be 1..2^63-1", "a dim of 2^63");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 2, 1ull << 32, 1ull << 32, VKLM_GGML_TYPE_F32, 0); bpad(&b, 32); bzeros(&b, 32);
  expect_gguf_err(&b, "element count overflows", "dims 2^32 x 2^32");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 1, 8, 0, 200, 0); bpad(&b, 32); bzeros(&b, 32);
  expect_gguf_err(&b, "unknown ggml type 200", "tensor type 200");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 2, 33, 1, VKLM_GGML_TYPE_Q4_0, 0); bpad(&b, 32); bzeros(&b, 64);
  expect_gguf_err(&b, "ne[0]=33 is not a multiple of the Q4_0 block size 32", "Q4_0 row of 33");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 1, 8, 0, VKLM_GGML_TYPE_F32, 4); bpad(&b, 32); bzeros(&b, 64);
  expect_gguf_err(&b, "offset 4 is not a multiple of the alignment 32", "misaligned offset");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 1, 8, 0, VKLM_GGML_TYPE_F32, 1024); bpad(&b, 32); bzeros(&b, 64);
  expect_gguf_err(&b, "lies outside the data section (64 bytes)", "offset past the end");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 1, 8, 0, VKLM_GGML_TYPE_F32, 0); bpad(&b, 32); bzeros(&b, 31);
  expect_gguf_err(&b, "lies outside the data section (31 bytes)", "data one byte short");
  hdr(&b, 3, 1, 0); tinfo(&b, "a", 1, 8, 0, VKLM_GGML_TYPE_F32, 0);
  expect_gguf_err(&b, "past the end of the file", "no data section");
  hdr(&b, 3, 2, 0); tinfo(&b, "a", 1, 16, 0, VKLM_GGML_TYPE_F32, 0); tinfo(&b, "b", 1, 8, 0, VKLM_GGML_TYPE_F32, 32);
  bpad(&b, 32); bzeros(&b, 96);
  expect_gguf_err(&b, "overlap", "overlapping tensors");
  hdr(&b, 3, 2, 0); tinfo(&b, "a", 1, 8, 0, VKLM_GGML_TYPE_F32, 0); tinfo(&b, "a", 1, 8, 0, VKLM_GGML_TYPE_F32, 32);
  bpad(&b, 32); bzeros(&b, 64);
  expect_gguf_err(&b, "duplicate tensor name 'a'", "duplicate tensor names");
  /* a type vklm knows the size of but cannot convert: opens, conversion refuses */
  hdr(&b, 3, 1, 0); tinfo(&b, "k", 1, 256, 0, VKLM_GGML_TYPE_Q4_K, 0); bpad(&b, 32); bzeros(&b, 144);
  if (!vklm_gguf_open_memory(b.p, b.n, &g, err, sizeof err)) {
    float out[256];
    const vklm_gguf_tensor *t = vklm_gguf_tensor_find(g, "k");
    expect(t && t->nbytes == 144 && vklm_gguf_tensor_to_f32(t, out, err, sizeof err) == -1 &&
               strstr(err, "Q4_K (12) is not supported"), "Q4_K: %s", err);
    printf("  gguf %-34s -> opens; %s\n", "a Q4_K tensor", err);
    vklm_gguf_close(g);
  } else {
    expect(0, "Q4_K file should open: %s", err);
  }
  free(b.p);
  b = (bb){0};

  /* every truncation of the base file (which ends at its last tensor's last byte) must fail */
  good_gguf(&b);
  int trunc_ok = 0, flips_err = 0, flips_ok = 0;
  for (size_t n = 0; n < b.n; n++) {
    uint8_t *c = exact(b.p, n); /* an exact-size copy, so ASan sees any read past the end */
    if (!vklm_gguf_open_memory(c, n, &g, err, sizeof err)) {
      trunc_ok++;
      vklm_gguf_close(g);
    }
    free(c);
  }
  shrink(&b);
  expect(trunc_ok == 0, "gguf: %d truncations opened", trunc_ok);
  /* every byte flipped (three ways): fail with a message or parse, never crash */
  for (size_t i = 0; i < b.n; i++)
    for (int k = 0; k < 3; k++) {
      uint8_t save = b.p[i];
      b.p[i] = k == 0 ? (uint8_t)~save : k == 1 ? (uint8_t)(save + 1) : 0x80;
      err[0] = 0;
      if (vklm_gguf_open_memory(b.p, b.n, &g, err, sizeof err)) {
        flips_err++;
        expect(err[0] != 0, "gguf flip at %zu: an error without a message", i);
      } else {
        flips_ok++;
        for (size_t t = 0; t < vklm_gguf_tensor_count(g); t++) { /* touch every byte */
          const vklm_gguf_tensor *tt = vklm_gguf_tensor_get(g, t);
          volatile uint8_t sum = 0;
          for (uint64_t j = 0; j < tt->nbytes; j++) sum ^= ((const uint8_t *)tt->data)[j];
        }
        vklm_gguf_close(g);
      }
      b.p[i] = save;
    }
  printf("gguf: %zu truncations (every offset of a %zu-byte file) all rejected; %zu single-byte "
         "corruptions: %d rejected, %d still valid (data/padding/string bytes), no crash\n",
         b.n, b.n, b.n * 3, flips_err, flips_ok);
  free(b.p);
}

/* ---- safetensors ---- */
static void st_file(bb *b, const char *json, const void *data, size_t n) {
  bu64(b, strlen(json));
  bput(b, json, strlen(json));
  if (n) bput(b, data, n);
}
static void expect_st_err(const char *json, size_t datalen, const char *needle, const char *what) {
  bb b = {0};
  uint8_t zero[256] = {0};
  st_file(&b, json, zero, datalen);
  shrink(&b);
  vklm_safetensors *st = NULL;
  char err[512] = "";
  int rc = vklm_safetensors_open_memory(b.p, b.n, &st, err, sizeof err);
  expect(rc == -1 && !st && strstr(err, needle), "safetensors %s: want '%s', got rc %d '%s'", what,
         needle, rc, err);
  printf("  safetensors %-27s -> %s\n", what, err);
  vklm_safetensors_close(st);
  free(b.p);
}

#define T(name, dt, shape, a, z) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #a "," #z "]}"

static void test_safetensors(void) {
  const char *json = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"hi\"}," T("a", "F32", "[2,3]", 0, 24) ","
                     T("b", "F16", "[4]", 24, 32) "," T("c", "BF16", "[2]", 32, 36) ","
                     T("e", "F32", "[0,5]", 36, 36) "," T("i", "I32", "[1]", 36, 40) "}   ";
  uint8_t data[40];
  float a[6] = {1, -2, 3.5f, 0.25f, -1e-3f, 7};
  memcpy(data, a, 24);
  for (int i = 0; i < 4; i++) {
    uint16_t h = vklm_f16_from_f32((float)i - 1.5f);
    memcpy(data + 24 + 2 * i, &h, 2);
  }
  for (int i = 0; i < 2; i++) {
    uint16_t h = vklm_bf16_from_f32(i ? -3.0f : 0.5f);
    memcpy(data + 32 + 2 * i, &h, 2);
  }
  int32_t iv = 42;
  memcpy(data + 36, &iv, 4);
  bb b = {0};
  st_file(&b, json, data, sizeof data);
  char path[128], err[512];
  snprintf(path, sizeof path, "%s/t.safetensors", tmpdir);
  FILE *f = fopen(path, "wb");
  fwrite(b.p, 1, b.n, f);
  fclose(f);
  vklm_safetensors *st;
  if (vklm_safetensors_open(path, &st, err, sizeof err)) {
    expect(0, "safetensors open: %s", err);
  } else {
    float out[6];
    const vklm_st_tensor *t = vklm_safetensors_find(st, "a");
    expect(vklm_safetensors_count(st) == 5 && vklm_safetensors_meta_count(st) == 2 &&
               !strcmp(vklm_safetensors_meta_find(st, "format"), "pt"), "safetensors counts, metadata");
    expect(t && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->supported &&
               !vklm_safetensors_to_f32(t, out, err, sizeof err) && !memcmp(out, a, 24), "tensor a (F32)");
    t = vklm_safetensors_find(st, "b");
    expect(t && !vklm_safetensors_to_f32(t, out, err, sizeof err) && out[0] == -1.5f && out[3] == 1.5f,
           "tensor b (F16)");
    t = vklm_safetensors_find(st, "c");
    expect(t && !vklm_safetensors_to_f32(t, out, err, sizeof err) && out[0] == 0.5f && out[1] == -3.0f,
           "tensor c (BF16)");
    t = vklm_safetensors_find(st, "e");
    expect(t && t->nelem == 0 && t->nbytes == 0, "tensor e (empty)");
    t = vklm_safetensors_find(st, "i");
    expect(t && !t->supported && vklm_safetensors_to_f32(t, out, err, sizeof err) == -1 &&
               strstr(err, "dtype I32 is not supported"), "tensor i (I32): %s", err);
    expect(!vklm_safetensors_find(st, "zz"), "missing tensor");
    vklm_safetensors_close(st);
  }
  printf("safetensors: F32/F16/BF16 values, an empty tensor, __metadata__, an unsupported I32 "
         "(reported: %s)\nhostile safetensors files:\n", err);
  int trunc_ok = 0, flips_err = 0, flips_ok = 0;
  for (size_t n = 0; n < b.n; n++) {
    uint8_t *c = exact(b.p, n);
    if (!vklm_safetensors_open_memory(c, n, &st, err, sizeof err)) {
      trunc_ok++;
      vklm_safetensors_close(st);
    }
    free(c);
  }
  shrink(&b);
  expect(trunc_ok == 0, "safetensors: %d truncations opened", trunc_ok);
  for (size_t i = 0; i < b.n; i++)
    for (int k = 0; k < 3; k++) {
      uint8_t save = b.p[i];
      b.p[i] = k == 0 ? (uint8_t)~save : k == 1 ? (uint8_t)(save + 1) : (uint8_t)'9';
      err[0] = 0;
      if (vklm_safetensors_open_memory(b.p, b.n, &st, err, sizeof err)) {
        flips_err++;
        expect(err[0] != 0, "safetensors flip at %zu: no message", i);
      } else {
        flips_ok++;
        vklm_safetensors_close(st);
      }
      b.p[i] = save;
    }
  size_t total = b.n;
  free(b.p);
  b = (bb){0};
  bu64(&b, 1ull << 63);
  bput(&b, "{}", 2);
  vklm_safetensors *st2 = NULL;
  expect(vklm_safetensors_open_memory(b.p, b.n, &st2, err, sizeof err) == -1 &&
             strstr(err, "header size 9223372036854775808 exceeds"), "header size 2^63: %s", err);
  printf("  safetensors %-27s -> %s\n", "header size 2^63", err);
  free(b.p);
  expect_st_err("{\"a\":", 0, "not valid JSON", "truncated JSON");
  expect_st_err("[1,2]", 0, "not a JSON object", "JSON array");
  expect_st_err("{}xx", 0, "bytes after the JSON", "trailing bytes");
  expect_st_err("{" T("a", "F7", "[1]", 0, 4) "}", 4, "unknown dtype \"F7\"", "dtype F7");
  expect_st_err("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" missing", "no dtype");
  expect_st_err("{" T("a", "F32", "[-1]", 0, 4) "}", 4, "shape[0] is not a non-negative", "shape -1");
  expect_st_err("{" T("a", "F32", "[1.5]", 0, 4) "}", 4, "shape[0] is not", "shape 1.5");
  expect_st_err("{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, "9 dims exceed", "rank 9");
  expect_st_err("{" T("a", "F32", "[1048576,1048576,1048576,1048576]", 0, 4) "}", 4,
                "element count overflows", "shape product 2^80");
  expect_st_err("{" T("a", "F32", "[4611686018427387904]", 0, 4) "}", 4, "shape[0] is not",
                "shape 2^62 (above 2^53)");
  expect_st_err("{" T("a", "F32", "[1]", 4, 0) "}", 4, "not inside the data section", "offsets reversed");
  expect_st_err("{" T("a", "F32", "[2]", 0, 8) "}", 4, "not inside the data section", "end past the data");
  expect_st_err("{" T("a", "F32", "[2]", 0, 4) "}", 8, "span 4 bytes but shape and dtype F32 need 8",
                "size != shape*dtype");
  expect_st_err("{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[1]", 4, 8) "}", 8, "overlap", "overlap");
  expect_st_err("{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8,
                "duplicate tensor name 'a'", "duplicate names");
  expect_st_err("{\"__metadata__\":{\"k\":1}}", 0, "is not a string", "metadata value 1");
  expect_st_err("{" T("", "F32", "[1]", 0, 4) "}", 4, "empty name", "empty name");
  printf("safetensors: %zu truncations (every offset of a %zu-byte file) all rejected; %zu "
         "single-byte corruptions: %d rejected, %d still valid, no crash\n",
         total, total, total * 3, flips_err, flips_ok);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vklm_test_formats.XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_half();
  test_quant();
  test_gguf_roundtrip(0);
  test_gguf_roundtrip(64);
  test_gguf_hostile();
  test_safetensors();
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd)) printf("(could not remove %s)\n", tmpdir);
  printf("test_formats: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}

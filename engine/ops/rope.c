/* RoPE forward and backward (shaders/rope_forward_f32.comp, shaders/rope_backward_f32.comp, both
 * from shaders/rope.glsl) and their plain C references. */
#include "rope.h"

#include <math.h>

#include "op_util.h"

typedef struct rope_push {
  uint32_t n, T, NH, NKV, HS, pos0;
  float log2_step; /* 2*log2(theta)/HS: inv_freq(i) = 2^-(i*log2_step) */
} rope_push;
_Static_assert(sizeof(rope_push) == 28, "rope.glsl push constants");

static vklm_status rope_run(vklm_cmd *cmd, const char *name, vklm_buffer x, int fmt, uint32_t B,
                            uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t pos0,
                            float theta) {
  VKLM_ASSERT(fmt >= 0 && fmt <= 2, "%s: format %d (0 f32, 1 f16, 2 bf16)", name, fmt);
  VKLM_ASSERT(HS >= 2 && HS % 2 == 0, "%s: HS=%u must be even", name, HS);
  VKLM_ASSERT(theta > 1.0f, "%s: theta=%g must be > 1", name, theta);
  uint64_t size = (uint64_t)B * T * (NH + 2 * NKV) * HS;
  uint64_t n = (uint64_t)B * T * (NH + NKV) * (HS / 2);
  VKLM_ASSERT(size < (1ull << 32), "%s: %llu floats exceed 32-bit indexing", name,
              (unsigned long long)size);
  VKLM_ASSERT(x.size >= (fmt ? (size + 1) / 2 : size) * 4, "%s: buffer of %llu bytes < %llu %s",
              name, (unsigned long long)x.size, (unsigned long long)size,
              fmt ? "16-bit elements" : "floats");
  if (n == 0) return VKLM_OK;
  rope_push pc = {(uint32_t)n, T, NH, NKV, HS, pos0, (float)(2.0 * log2((double)theta) / HS)};
  uint32_t spec = (uint32_t)fmt; /* spec constant 1: x's format, only when 16-bit */
  return vklm_op_dispatch_1d_spec(cmd, name, &x, 1, &pc, sizeof pc, n, &spec, fmt ? 1 : 0);
}

vklm_status vklm_rope_forward(vklm_cmd *cmd, vklm_buffer qkv, uint32_t B, uint32_t T, uint32_t NH,
                              uint32_t NKV, uint32_t HS, uint32_t pos0, float theta) {
  return rope_run(cmd, "rope_forward_f32", qkv, 0, B, T, NH, NKV, HS, pos0, theta);
}

vklm_status vklm_rope_forward_fmt(vklm_cmd *cmd, vklm_buffer qkv, int fmt, uint32_t B, uint32_t T,
                                  uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t pos0,
                                  float theta) {
  return rope_run(cmd, "rope_forward_f32", qkv, fmt, B, T, NH, NKV, HS, pos0, theta);
}

vklm_status vklm_rope_backward(vklm_cmd *cmd, vklm_buffer dqkv, uint32_t B, uint32_t T,
                               uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t pos0, float theta) {
  return rope_run(cmd, "rope_backward_f32", dqkv, 0, B, T, NH, NKV, HS, pos0, theta);
}

/* theta^(-2i/HS) = 2^-(i*step), step = 2*log2(theta)/HS, exactly as shaders/rope.glsl forms it
 * (fp32, each operation rounded, no fused multiply-add: this file is compiled as ISO C, where GCC
 * does not contract), so that host and GPU angles agree bit for bit. */
static float rope_inv_freq(uint32_t i, float step) {
  float e = (float)i * step;
  float ef = floorf(e);
  float y = (e - ef) * 0.693147182464599609375f;
  float p = 2.755731884462875314056873321533203125e-6f;
  p = p * -y + 2.4801587642286904156208038330078125e-5f;
  p = p * -y + 1.98412701138295233249664306640625e-4f;
  p = p * -y + 1.388888922519981861114501953125e-3f;
  p = p * -y + 8.333333767950534820556640625e-3f;
  p = p * -y + 4.16666679084300994873046875e-2f;
  p = p * -y + 1.6666667163372039794921875e-1f;
  p = p * -y + 0.5f;
  p = p * -y + 1.0f;
  p = p * -y + 1.0f;
  return ldexpf(p, -(int)ef);
}

/* sign +1: the rotation; -1: its inverse. The angle is formed in fp32 as the shader does. */
static void rope_ref(float *x, uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS,
                     uint32_t pos0, float theta, double sign) {
  VKLM_ASSERT(HS >= 2 && HS % 2 == 0, "rope_ref: HS=%u must be even", HS);
  uint32_t C3 = (NH + 2 * NKV) * HS, half = HS / 2;
  float step = (float)(2.0 * log2((double)theta) / HS);
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t t = 0; t < T; t++) {
      float pos = (float)(pos0 + t);
      for (uint32_t i = 0; i < half; i++) {
        float a = pos * rope_inv_freq(i, step);
        double c = cos((double)a), s = sign * sin((double)a);
        for (uint32_t hd = 0; hd < NH + NKV; hd++) {
          float *v = x + ((size_t)b * T + t) * C3 + (size_t)hd * HS;
          double x1 = v[i], x2 = v[i + half];
          v[i] = (float)(x1 * c - x2 * s);
          v[i + half] = (float)(x2 * c + x1 * s);
        }
      }
    }
}

void vklm_rope_forward_ref(float *qkv, uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV,
                           uint32_t HS, uint32_t pos0, float theta) {
  rope_ref(qkv, B, T, NH, NKV, HS, pos0, theta, 1.0);
}

void vklm_rope_backward_ref(float *dqkv, uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV,
                            uint32_t HS, uint32_t pos0, float theta) {
  rope_ref(dqkv, B, T, NH, NKV, HS, pos0, theta, -1.0);
}

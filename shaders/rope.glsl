// RoPE body shared by rope_forward_f32.comp (ROPE_SIGN 1.0) and rope_backward_f32.comp
// (ROPE_SIGN -1.0: the inverse rotation, which is the backward of the rotation).
// Include after common.glsl, with ROPE_SIGN defined.
// Bindings: 0 x (B,T,(NH+2*NKV)*HS), read-write, in place (query and key heads only), in the
//   format of spec constant 1 X_FMT (load16.glsl): fp32 (0), or fp16 (1) / bf16 (2) words
//   (mixed-precision training's 16-bit qkv: each rotated element rounded to nearest even and
//   stored alone, with two atomics on its own half, since the pair (i, i+HS/2) may share words
//   with other threads' pairs).
// Push constants: uint n (= B*T*(NH+NKV)*HS/2 pairs), T, NH, NKV, HS, pos0;
//   float log2_step (= 2*log2(theta)/HS).
// Dispatch: one thread per (b, t, head < NH+NKV, i < HS/2) pair, pair index
//   ((b*T + t)*(NH+NKV) + head)*(HS/2) + i; grid over x,y by vklm_groups_1d (threads past n
//   return).
#include "load16.glsl"
layout(constant_id = 1) const uint X_FMT = 0;
layout(std430, binding = 0) buffer X { uint x_[]; };
void rope_store(uint i, float v) {
  if (X_FMT == 0u) {
    x_[i] = floatBitsToUint(v);
    return;
  }
  uint h = X_FMT == 1u ? packHalf2x16(vec2(v, 0.0)) & 0xffffu : vklm_bf16_bits(v);
  uint sh = (i & 1u) * 16u;
  atomicAnd(x_[i >> 1], ~(0xffffu << sh));
  atomicOr(x_[i >> 1], h << sh);
}
layout(push_constant) uniform Push {
  uint n; uint T; uint NH; uint NKV; uint HS; uint pos0; float log2_step;
} pc;

// sin and cos of a >= 0 (up to ~1e5) to about 1e-7 absolute: a = k*pi/2 + r by a three-part
// Cody-Waite reduction (the first part has 8 significant bits, so k*P1 is exact for k < 2^16),
// then Taylor polynomials on |r| <= pi/4 (truncation error < 2e-9).
void rope_sincos(float a, out float sn, out float cs) {
  precise float k = floor(a * 0.636619772367581343 + 0.5);
  precise float r = a - k * 1.5703125;
  r = r - k * 4.837512969970703125e-4;
  r = r - k * 7.54978995489188216e-8;
  float r2 = r * r;
  float s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 +
                 r2 * (1.0 / 362880.0)))));
  float c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 +
                 r2 * (-1.0 / 3628800.0)))));
  uint q = uint(k) & 3u;
  sn = q == 0u ? s : q == 1u ? c : q == 2u ? -s : -c;
  cs = q == 0u ? c : q == 1u ? -s : q == 2u ? -c : s;
}

void main() {
  uint idx = vklm_global_linear();
  if (idx >= pc.n) return;
  uint half_ = pc.HS / 2u;
  uint i = idx % half_, rest = idx / half_;
  uint hd = rest % (pc.NH + pc.NKV), bt = rest / (pc.NH + pc.NKV);
  uint t = bt % pc.T;
  // inv_freq = 2^-e, e = i*log2_step, as 2^-floor(e) (exact) times 2^-frac(e) by a Taylor
  // polynomial in fp32 with every operation exact-rounded (precise: no fused multiply-add), so
  // that every GPU, and the C reference (rope_inv_freq in engine/ops/rope.c), forms the very
  // same angle bits. The constants are 1/k! (k = 9..3) and ln 2 rounded to fp32, written out
  // exactly so that no compiler rounds them twice.
  precise float e = float(i) * pc.log2_step;
  float ef = floor(e);
  precise float y = (e - ef) * 0.693147182464599609375;
  precise float p = 2.755731884462875314056873321533203125e-6;
  p = p * -y + 2.4801587642286904156208038330078125e-5;
  p = p * -y + 1.98412701138295233249664306640625e-4;
  p = p * -y + 1.388888922519981861114501953125e-3;
  p = p * -y + 8.333333767950534820556640625e-3;
  p = p * -y + 4.16666679084300994873046875e-2;
  p = p * -y + 1.6666667163372039794921875e-1;
  p = p * -y + 0.5;
  p = p * -y + 1.0;
  p = p * -y + 1.0;
  float inv_freq = ldexp(p, -int(ef));
  precise float a = float(pc.pos0 + t) * inv_freq;
  float sn, cs;
  rope_sincos(a, sn, cs);
  sn *= ROPE_SIGN;
  uint o = bt * (pc.NH + 2u * pc.NKV) * pc.HS + hd * pc.HS + i;
  float x1 = VKLM_LOAD_FMT(x_, o, X_FMT), x2 = VKLM_LOAD_FMT(x_, o + half_, X_FMT);
  rope_store(o, x1 * cs - x2 * sn);
  rope_store(o + half_, x2 * cs + x1 * sn);
}

// Exact and error-bounded arithmetic for the GPU sampler (sample_rows_f32.comp), built only from
// operations Vulkan rounds correctly (add, sub, mul, integer ops), so that results do not depend
// on the driver's exp/division precision:
//   sample_key / sample_unkey  a float's order key: ascending keys = descending logits, -0 = +0,
//                              NaN -> SAMPLE_DEAD (larger than every key of a number)
//   sample_div_rn              a / b correctly rounded (what the host's float division gives)
//   sample_two_sum/_two_prod   error-free transforms: s + e == a + b, p + e == a * b exactly
//   sample_exp                 exp(hi + lo) for hi <= 0, within about 1 ulp, 0 below -31
//   sample_fx44                a weight in [0,1] as a 64-bit fixed-point integer (units 2^-44)
//   u64_*                      64-bit unsigned integers as uvec2(lo, hi)
// Include after common.glsl.
#ifndef VKLM_SAMPLE_MATH_GLSL
#define VKLM_SAMPLE_MATH_GLSL

#define SAMPLE_DEAD 0xffffffffu

bool sample_isnan(float x) { return (floatBitsToUint(x) & 0x7fffffffu) > 0x7f800000u; }
bool sample_isinf(float x) { return (floatBitsToUint(x) & 0x7fffffffu) == 0x7f800000u; }

uint sample_key(float x) {
  uint b = floatBitsToUint(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return SAMPLE_DEAD;
  if (b == 0x80000000u) b = 0u;
  uint ord = (b >> 31) != 0u ? ~b : (b | 0x80000000u);
  return ~ord;
}

float sample_unkey(uint k) {
  uint ord = ~k;
  return uintBitsToFloat((ord >> 31) != 0u ? (ord & 0x7fffffffu) : ~ord);
}

// a / b rounded to nearest even, by long division of the mantissas, for positive normal a, b
// with a normal quotient; any other case falls back to the device's division.
float sample_div_rn(float a, float b) {
  uint ab = floatBitsToUint(a), bb = floatBitsToUint(b);
  int ea = int((ab >> 23) & 255u), eb = int((bb >> 23) & 255u);
  if ((ab >> 31) != 0u || (bb >> 31) != 0u || ea == 0 || ea == 255 || eb == 0 || eb == 255)
    return a / b;
  uint ma = (ab & 0x7fffffu) | 0x800000u, mb = (bb & 0x7fffffu) | 0x800000u;
  int e = ea - eb;
  if (ma < mb) {
    ma <<= 1;
    e -= 1;
  }
  // q = floor(ma * 2^24 / mb): 25 bits, the top one set; r != 0 means inexact
  uint q = 0u, r = ma;
  for (int i = 0; i < 25; i++) {
    q <<= 1;
    if (r >= mb) {
      q |= 1u;
      r -= mb;
    }
    r <<= 1;
  }
  uint m = q >> 1;
  if ((q & 1u) != 0u && (r != 0u || (m & 1u) != 0u)) m++;
  if (m == 0x1000000u) {
    m >>= 1;
    e++;
  }
  int be = e + 127;
  if (be <= 0 || be >= 255) return a / b;
  return uintBitsToFloat((uint(be) << 23) | (m & 0x7fffffu));
}

// The repetition penalty as the host applies it.
float sample_penalize(float l, float pen) { return l > 0.0 ? sample_div_rn(l, pen) : l * pen; }

void sample_two_sum(float a, float b, out float s, out float e) {
  precise float ps = a + b;
  precise float bb = ps - a;
  precise float pe = (a - (ps - bb)) + (b - bb);
  s = ps;
  e = pe;
}

void sample_split(float a, out float hi, out float lo) {
  precise float c = 4097.0 * a;
  precise float h = c - (c - a);
  precise float l = a - h;
  hi = h;
  lo = l;
}

void sample_two_prod(float a, float b, out float p, out float e) {
  float ah, al, bh, bl;
  sample_split(a, ah, al);
  sample_split(b, bh, bl);
  precise float pp = a * b;
  precise float pe = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
  p = pp;
  e = pe;
}

// exp(hi + lo) for hi <= 0 (|lo| a few ulps of hi at most): Cody-Waite reduction by ln 2 with a
// 15-bit high part (k * LN2_HI is exact), a degree-7 Taylor polynomial on |r| <= 0.35
// (truncation 5e-9), and an exact scaling by 2^k. 0 below -31, where the 2^-44 fixed point of
// sample_fx44 is 0 anyway.
float sample_exp(float hi, float lo) {
  if (!(hi > -31.0)) return 0.0;
  const float LN2_HI = 0.693145751953125;
  const float LN2_LO = 1.428606820309417232e-06;
  precise float k = roundEven(hi * 1.4426950408889634);
  precise float r = ((hi - k * LN2_HI) - k * LN2_LO) + lo;
  precise float p = 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  precise float t = (r * r) * p;
  precise float y = 1.0 + (r + t);
  return ldexp(y, int(k));
}

// floor(w * 2^44) for w in [0, 1] (0 for NaN and negatives) as uvec2(lo, hi).
uvec2 sample_fx44(float w) {
  if (!(w > 0.0)) return uvec2(0u);
  uint b = floatBitsToUint(w);
  int sh = int(b >> 23) - 106; // w * 2^44 = m * 2^sh, m the 24-bit mantissa
  uint m = (b & 0x7fffffu) | 0x800000u;
  if (sh <= -24) return uvec2(0u);
  if (sh < 0) return uvec2(m >> uint(-sh), 0u);
  if (sh == 0) return uvec2(m, 0u);
  return uvec2(m << uint(sh), m >> uint(32 - sh));
}

uvec2 u64_add(uvec2 a, uvec2 b) {
  uint c;
  uint lo = uaddCarry(a.x, b.x, c);
  return uvec2(lo, a.y + b.y + c);
}

bool u64_ge(uvec2 a, uvec2 b) { return a.y > b.y || (a.y == b.y && a.x >= b.x); }

// floor(f * x / 2^32) and whether the division was inexact (f a 32-bit fraction of 1).
uvec2 u64_mul_frac(uint f, uvec2 x, out bool inexact) {
  uint ah, al, bh, bl;
  umulExtended(f, x.x, ah, al);
  umulExtended(f, x.y, bh, bl);
  inexact = al != 0u;
  uint c;
  uint mid = uaddCarry(bl, ah, c);
  return uvec2(mid, bh + c);
}

#endif

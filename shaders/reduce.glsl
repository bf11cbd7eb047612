// Workgroup-wide reductions over shared memory, in a fixed order (deterministic for a given
// workgroup size). gl_WorkGroupSize.x must be a power of two (the C side picks it with
// vklm_op_wg_fit, which returns one). Every invocation of the workgroup must call them (they
// contain barriers); each call ends with a barrier, so calls can follow one another freely.
// Uses 8 bytes of shared memory per invocation. Include after common.glsl.
#ifndef VKLM_REDUCE_GLSL
#define VKLM_REDUCE_GLSL

shared vec2 vklm_red[gl_WorkGroupSize.x];

vec2 vklm_wg_sum2(vec2 v) {
  uint t = gl_LocalInvocationID.x;
  vklm_red[t] = v;
  barrier();
  for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
    if (t < s) vklm_red[t] += vklm_red[t + s];
    barrier();
  }
  vec2 r = vklm_red[0];
  barrier();
  return r;
}

float vklm_wg_sum(float v) { return vklm_wg_sum2(vec2(v, 0.0)).x; }

float vklm_wg_max(float v) {
  uint t = gl_LocalInvocationID.x;
  vklm_red[t].x = v;
  barrier();
  for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
    if (t < s) vklm_red[t].x = max(vklm_red[t].x, vklm_red[t + s].x);
    barrier();
  }
  float r = vklm_red[0].x;
  barrier();
  return r;
}

#define VKLM_NEG_INF uintBitsToFloat(0xff800000u)

// Online softmax statistics: (m, s) means "max m, sum of exp(x - m) s". An empty set is
// (-inf, 0). Combining two sets rescales both sums to the larger max.
vec2 vklm_softmax_combine(vec2 a, vec2 b) {
  float m = max(a.x, b.x);
  if (m == VKLM_NEG_INF) return vec2(m, 0.0);
  return vec2(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

vec2 vklm_softmax_add(vec2 a, float x) {
  if (x == VKLM_NEG_INF) return a;
  if (x <= a.x) return vec2(a.x, a.y + exp(x - a.x));
  return vec2(x, a.y * exp(a.x - x) + 1.0);
}

vec2 vklm_wg_softmax_stats(vec2 v) {
  uint t = gl_LocalInvocationID.x;
  vklm_red[t] = v;
  barrier();
  for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
    if (t < s) vklm_red[t] = vklm_softmax_combine(vklm_red[t], vklm_red[t + s]);
    barrier();
  }
  vec2 r = vklm_red[0];
  barrier();
  return r;
}

#endif

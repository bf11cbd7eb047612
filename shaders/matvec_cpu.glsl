// matvec_cpu.glsl: the body of matvec_cpu_f32.comp and matvec_cpu_f16.comp (and their _gelu
// variants): matvec.glsl's product, y[m0+m, n] = sum_k x[m0+m, k] * W[n, k] (+ bias[n]) for
// m < NM, for CPU-type Vulkan devices (lavapipe). There a workgroup runs on one CPU thread a SIMD
// vector of invocations at a time, loads with lane-varying addresses are gathered lane by lane
// and barriers are expensive, so the GPU kernel's threads-per-row layout (lanes reading
// neighbouring bytes of one row, then a shared-memory tree) costs more than it saves. Here an
// invocation owns NB consecutive rows n of W and walks them whole: per step of 4 columns, one
// 16-byte load per row of W (a row streams through its own cache lines), one load of x per row of
// x, the same address for every lane, and 4*NB*NM multiply-adds into vec4 accumulators, summed
// once at the end. No shared memory, no barrier, no subgroup operation; deterministic.
// Requires K % 4 == 0 (the host checks; W rows and x rows then start on 16-byte boundaries).
// The including file defines W_VEC4(i): columns 4i..4i+3 of W (counted from W[0,0]) as a vec4,
// after declaring binding 2; MATVEC_GELU adds binding 4 (act = gelu(y), y's layout).
// Bindings: 0 y f32; 1 x (M,K) f32 as vec4; 2 W; 3 bias (N) f32 (any buffer when has_bias = 0).
// Push constants: as matvec.glsl (uint N, K, m0, has_bias, ldy, off_y).
// Spec constants: 0 local_size_x; 1 NB rows of W per invocation; 2 NM rows of x (1..8).
// Dispatch: ceil(N / (local_size_x * NB)) workgroups over x,y (vklm_groups_1d).
#ifndef VKLM_MATVEC_CPU_GLSL
#define VKLM_MATVEC_CPU_GLSL
#extension GL_EXT_control_flow_attributes : require
#ifdef MATVEC_GELU
#include "activation.glsl"
layout(std430, binding = 4) writeonly buffer Act { float act_[]; };
#endif
layout(constant_id = 1) const uint NB = 2;
layout(constant_id = 2) const uint NM = 1;
layout(push_constant) uniform Push {
  uint N, K;
  uint m0;
  uint has_bias;
  uint ldy;
  uint off_y;
} pc;

void main() {
  uint n0 = (vklm_group_linear() * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * NB;
  if (n0 >= pc.N) return;
  uint K4 = pc.K >> 2;
  uint wrow[NB];
  [[unroll]] for (uint j = 0; j < NB; j++) wrow[j] = min(n0 + j, pc.N - 1u) * K4;
  vec4 acc[NM * NB];
  [[unroll]] for (uint i = 0; i < NM * NB; i++) acc[i] = vec4(0.0);
  uint xr = pc.m0 * K4;
  for (uint k = 0; k < K4; k++) {
    vec4 w[NB];
    [[unroll]] for (uint j = 0; j < NB; j++) w[j] = W_VEC4(wrow[j] + k);
    [[unroll]] for (uint m = 0; m < NM; m++) {
      vec4 xv = x4[xr + m * K4 + k];
      [[unroll]] for (uint j = 0; j < NB; j++) acc[m * NB + j] = fma(xv, w[j], acc[m * NB + j]);
    }
  }
  [[unroll]] for (uint j = 0; j < NB; j++) {
    uint n = n0 + j;
    if (n >= pc.N) break;
    float b = pc.has_bias != 0u ? bias_[n] : 0.0;
    [[unroll]] for (uint m = 0; m < NM; m++) {
      vec4 a = acc[m * NB + j];
      float v = (a.x + a.y) + (a.z + a.w) + b;
      uint at = pc.off_y + (pc.m0 + m) * pc.ldy + n;
      y_[at] = v;
#ifdef MATVEC_GELU
      act_[at] = vklm_gelu(v);
#endif
    }
  }
}

#endif

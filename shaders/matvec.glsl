// matvec.glsl: the body shared by matvec_forward_<type>.comp (include it after the bindings and,
// for quantized types, quant.glsl; see those files for the weight formats). The including file
// defines
//   float load_unit(uint n, uint u, uint K, out vec4 wa, out vec4 wb, out uint ka, out uint kb):
//   unit u of row n of W (K columns): 8 weights, wa at columns ka..ka+3 and wb at kb..kb+3;
//   returns a scale s (the weights are s*wa, s*wb; 1 for unquantized types). Weights past K
//   must be 0;
//   X_VEC4 when x is bound as vec4 x_[] (K % 4 == 0, ka and kb multiples of 4: the quantized
//   types), else x is float x_[] and partial units (K % 8 != 0) are handled.
// It computes y[m0+m, n] = sum_k x[m0+m, k] * W[n, k] (+ bias[n]) for m < NM (y's rows ldy apart,
// from element off_y: a column block of a wider matrix): the memory-bound
// decode path, reading each weight byte once for all NM rows of x.
// Geometry: a workgroup of WG = local_size_x threads computes ROWS = WG/TPR consecutive rows n of
// W; the TPR threads of a row walk its units (8 weights each: ceil(K/8) per row) with stride
// TPR, so neighbouring threads read neighbouring bytes. Each thread keeps NM partial sums; the
// TPR partials of a row are summed by a shared-memory tree (fixed order, deterministic, no
// subgroup operations, so any subgroup size works). TPR is a power of two.
// With MATVEC_GELU defined, binding 4 (act, f32, the layout of y) also receives gelu(y).
#ifndef VKLM_MATVEC_GLSL
#define VKLM_MATVEC_GLSL
#ifdef MATVEC_GELU
#include "activation.glsl"
layout(std430, binding = 4) writeonly buffer Act { float act_[]; };
#endif

layout(constant_id = 1) const uint TPR = 32; // threads per row of W (a power of two <= WG)
layout(constant_id = 2) const uint NM = 1;   // rows of x done by this dispatch (1..8)

layout(push_constant) uniform Push {
  uint N, K;
  uint m0;       // first row of x and y
  uint has_bias;
  uint ldy;      // elements between rows of y (N when packed)
  uint off_y;    // element offset of y[0, 0]
} pc;

const uint WG = gl_WorkGroupSize.x;
const uint ROWS = WG / TPR;
shared float red[NM * WG];

void main() {
  uint tid = gl_LocalInvocationID.x;
  uint lane = tid % TPR;
  uint n = vklm_group_linear() * ROWS + tid / TPR;
  float acc[NM];
  for (uint m = 0; m < NM; m++) acc[m] = 0.0;
  if (n < pc.N) {
    uint units = (pc.K + 7u) / 8u;
    for (uint u = lane; u < units; u += TPR) {
      vec4 wa, wb;
      uint ka, kb;
      float s = load_unit(n, u, pc.K, wa, wb, ka, kb);
#ifdef X_VEC4
      for (uint m = 0; m < NM; m++) {
        uint xr = (pc.m0 + m) * pc.K;
        float p = dot(wa, x_[(xr + ka) >> 2]) + dot(wb, x_[(xr + kb) >> 2]);
#else
      bool full = u * 8u + 8u <= pc.K;
      for (uint m = 0; m < NM; m++) {
        uint xr = (pc.m0 + m) * pc.K;
        vec4 xa, xb;
        if (full) {
          xa = vec4(x_[xr + ka], x_[xr + ka + 1u], x_[xr + ka + 2u], x_[xr + ka + 3u]);
          xb = vec4(x_[xr + kb], x_[xr + kb + 1u], x_[xr + kb + 2u], x_[xr + kb + 3u]);
        } else {
          for (uint j = 0; j < 4u; j++) {
            xa[j] = ka + j < pc.K ? x_[xr + ka + j] : 0.0;
            xb[j] = kb + j < pc.K ? x_[xr + kb + j] : 0.0;
          }
        }
        float p = dot(wa, xa) + dot(wb, xb);
#endif
        acc[m] = fma(s, p, acc[m]);
      }
    }
  }
  for (uint m = 0; m < NM; m++) red[m * WG + tid] = acc[m];
  barrier();
  for (uint h = TPR / 2u; h > 0u; h >>= 1) {
    if (lane < h)
      for (uint m = 0; m < NM; m++) red[m * WG + tid] += red[m * WG + tid + h];
    barrier();
  }
  if (lane == 0u && n < pc.N) {
    float b = pc.has_bias != 0u ? bias_[n] : 0.0;
    for (uint m = 0; m < NM; m++) {
      uint at = pc.off_y + (pc.m0 + m) * pc.ldy + n;
      float v = red[m * WG + tid] + b;
      y_[at] = v;
#ifdef MATVEC_GELU
      act_[at] = vklm_gelu(v);
#endif
    }
  }
}

#endif

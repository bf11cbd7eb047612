#version 450
// grad_norm_final_f32: stage 2 of the global gradient norm, one workgroup: sums the P partial
// sums of squares in a fixed order (each thread k = lid, lid + WG, ... then a shared-memory tree)
// and writes norm_out[0] = sqrt(sum), norm_out[1] = min(1, max_norm / (norm + 1e-6)), or 1 when
// max_norm <= 0 (a NaN norm gives a NaN scale, as torch.nn.utils.clip_grad_norm_).
// unscale (loss scaling): the gradients are S times the true ones and norm_out[2] holds 1/S
// (written by the host): norm_out[0] = sqrt(sum) / S, the true norm, the scale computed from
// it, and norm_out[1] = scale / S, the multiplier that gives AdamW the true clipped gradient.
// Bindings: 0 norm_out (2, or 3 with unscale) f32; 1 partial (P, or more) f32, read-only.
// Push constants: uint P; float max_norm; uint unscale.
// Dispatch: exactly one workgroup; local_size_x = spec constant 0, a power of two.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer NormOut { float norm_out[]; };
layout(std430, binding = 1) readonly buffer Partial { float partial[]; };
layout(push_constant) uniform Push { uint P; float max_norm; uint unscale; } pc;
shared float red[gl_WorkGroupSize.x];
void main() {
  uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
  float acc = 0.0;
  for (uint k = lid; k < pc.P; k += wg) acc += partial[k];
  red[lid] = acc;
  memoryBarrierShared();
  barrier();
  for (uint s = wg / 2u; s > 0u; s >>= 1u) {
    if (lid < s) red[lid] += red[lid + s];
    memoryBarrierShared();
    barrier();
  }
  if (lid == 0u) {
    float norm = sqrt(red[0]);
    float inv = pc.unscale != 0u ? norm_out[2] : 1.0;
    if (pc.unscale != 0u) norm *= inv;
    float scale = 1.0;
    if (pc.max_norm > 0.0) {
      float coef = pc.max_norm / (norm + 1e-6);
      scale = coef >= 1.0 ? 1.0 : coef;
    }
    norm_out[0] = norm;
    norm_out[1] = pc.unscale != 0u ? scale * inv : scale;
  }
}

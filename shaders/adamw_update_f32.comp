#version 450
// adamw_update_f32: one AdamW step (torch.optim.AdamW semantics) on n parameters, in place:
//   g = grad * (use_clip ? clip[1] : 1);  p *= decay (when apply_wd)
//   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
//   p -= step_size * (m / (sqrt(v) / bc2_sqrt + eps))
// with the per-step scalars read from the step buffer (struct vklm_adamw_step in
// engine/ops/optim.h), so a recorded step replays with only that buffer re-uploaded.
// Bindings: 0 params (n) f32, read-write; 1 m (n) f32, read-write; 2 v (n) f32, read-write;
//           3 grads (n) f32, read-only; 4 step (one vklm_adamw_step, 48 bytes), read-only;
//           5 clip (2 f32: [0] norm, [1] scale; any buffer when !use_clip), read-only.
// Push constants: uint n, apply_wd, use_clip.
// Dispatch: one thread per element; local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (threads past n return).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer Params { float params[]; };
layout(std430, binding = 1) buffer M { float m[]; };
layout(std430, binding = 2) buffer V { float v[]; };
layout(std430, binding = 3) readonly buffer Grads { float grads[]; };
layout(std430, binding = 4) readonly buffer Step {
  float lr, beta1, beta2, eps, weight_decay, decay, one_m_beta1, one_m_beta2, step_size, bc2_sqrt;
  uint t, pad;
} st;
layout(std430, binding = 5) readonly buffer Clip { float clip[]; };
layout(push_constant) uniform Push { uint n; uint apply_wd; uint use_clip; } pc;
void main() {
  uint i = vklm_global_linear();
  if (i >= pc.n) return;
  float g = grads[i];
  if (pc.use_clip != 0u) g *= clip[1];
  float p = params[i];
  if (pc.apply_wd != 0u) p *= st.decay;
  float mm = st.beta1 * m[i] + st.one_m_beta1 * g;
  float vv = st.beta2 * v[i] + st.one_m_beta2 * g * g;
  float denom = sqrt(vv) / st.bc2_sqrt + st.eps;
  m[i] = mm;
  v[i] = vv;
  params[i] = p - st.step_size * (mm / denom);
}

#version 450
// crossentropy_forward_f32_cpu: crossentropy_forward_f32 (the losses alone, for evaluation; same
// results and semantics) for CPU-type Vulkan devices: each invocation owns one row and walks it
// serially (loops of rows_cpu.glsl), no shared memory, no barrier. Per row r with t = targets[r]:
//   losses[r] = logsumexp(logits[r,:]) - logits[r,t], or 0 when t == ignore_index.
// A target outside [0,V) other than ignore_index is the caller's error (loss = logsumexp).
// Bindings: 0 losses (N) write-only; 1 logits (N,V); 2 targets (N) int32.
// Push constants: uint N, V; int ignore_index.
// Dispatch: one invocation per row, local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (ceil(N / local_size_x) workgroups).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "rows_cpu.glsl"
layout(std430, binding = 0) writeonly buffer Losses { float losses[]; };
layout(std430, binding = 1) readonly buffer Logits { float logits[]; };
layout(std430, binding = 2) readonly buffer Targets { int targets[]; };
layout(push_constant) uniform Push { uint N; uint V; int ignore_index; } pc;
void main() {
  uint r = vklm_global_linear();
  if (r >= pc.N) return;
  uint base = r * pc.V;
  int tg = targets[r];
  if (tg == pc.ignore_index) {
    losses[r] = 0.0;
    return;
  }
  uint ut = uint(tg);
  float m, s;
#define X(v) logits[base + (v)]
#define E(v) exp(X(v) - m)
  VKLM_ROW_MAX(m, pc.V, X)
  VKLM_ROW_SUM(s, pc.V, E)
  float xt = ut < pc.V ? X(ut) : 0.0;
  losses[r] = (m - xt) + log(s);
}

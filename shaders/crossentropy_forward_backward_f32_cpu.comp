#version 450
// crossentropy_forward_backward_f32_cpu: crossentropy_forward_backward_f32 (same results and
// semantics, per_row included) for CPU-type Vulkan devices (lavapipe), where a workgroup runs on
// one CPU thread a SIMD vector at a time and barriers and shared memory are slow: each
// invocation owns one row and walks it serially (loops of rows_cpu.glsl), no shared memory, no
// barrier. Per row r with target t = targets[r], from logits x = logits[r,:] (V of them):
//   losses[r] = logsumexp(x) - x[t];  dlogits[r,v] = (softmax(x)[v] - (v == t)) * dloss
// with dloss = dloss[0] (or dloss[r] with per_row), and for t == ignore_index: losses[r] = 0,
// dlogits[r,:] = 0. Three passes over the row: max, sum of exp(x - max), then the gradient.
// dlogits MAY ALIAS logits (in place): an invocation reads and writes only its own row, and
// each write follows, in that invocation, the reads of its address.
// A target outside [0,V) other than ignore_index is the caller's error: nothing is read or
// written out of bounds, the row's loss is logsumexp(x) and its gradient softmax(x) * dloss.
// Bindings: 0 losses (N) write-only; 1 dlogits (N,V) write-only; 2 logits (N,V); 3 targets (N)
//           int32; 4 dloss (1, or N with per_row).
// Push constants: uint N, V; int ignore_index; uint per_row.
// Dispatch: one invocation per row, local_size_x = spec constant 0; grid over x,y by
// vklm_groups_1d (ceil(N / local_size_x) workgroups).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "rows_cpu.glsl"
layout(std430, binding = 0) writeonly buffer Losses { float losses[]; };
layout(std430, binding = 1) writeonly buffer Dlogits { float dlogits[]; };
layout(std430, binding = 2) readonly buffer Logits { float logits[]; };
layout(std430, binding = 3) readonly buffer Targets { int targets[]; };
layout(std430, binding = 4) readonly buffer Dloss { float dloss[]; };
layout(push_constant) uniform Push { uint N; uint V; int ignore_index; uint per_row; } pc;
void main() {
  uint r = vklm_global_linear();
  if (r >= pc.N) return;
  uint base = r * pc.V;
  int tg = targets[r];
  if (tg == pc.ignore_index) {
#define ZERO(v) dlogits[base + (v)] = 0.0
    VKLM_ROW_FOR(pc.V, ZERO)
    losses[r] = 0.0;
    return;
  }
  uint ut = uint(tg); // a negative target wraps past V: never matched
  float m, s;
#define X(v) logits[base + (v)]
#define E(v) exp(X(v) - m)
  VKLM_ROW_MAX(m, pc.V, X)
  VKLM_ROW_SUM(s, pc.V, E)
  float xt = ut < pc.V ? X(ut) : 0.0;
  losses[r] = (m - xt) + log(s);
  float d = dloss[pc.per_row != 0u ? r : 0u], inv = 1.0 / s;
#define GRAD(v) dlogits[base + (v)] = (E(v) * inv - ((v) == ut ? 1.0 : 0.0)) * d
  VKLM_ROW_FOR(pc.V, GRAD)
}

#version 450
// matmul_naive_f32: the same batched GEMM as matmul_tiled_f32 (same bindings, push constants and
// semantics), one thread per element of C reading A and B straight from memory: the simple
// fallback and the benchmark's baseline.
//   C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias broadcast over rows when has_bias)
// Bindings: 0 C (batch,M,N) f32 read-write; 1 A f32; 2 B f32; 3 bias (N) f32.
// Push constants: as matmul_tiled_f32 (60 bytes).
// Spec constants: 0 local_size_x; 1 local_size_y; 6 TRANS_A; 7 TRANS_B.
// Dispatch: (ceil(N/local_size_x), ceil(M/local_size_y), batch); threads outside C return.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0, local_size_y_id = 1) in;
#include "common.glsl"
layout(constant_id = 6) const uint TRANS_A = 0;
layout(constant_id = 7) const uint TRANS_B = 0;
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 2) readonly buffer B { float b_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#include "matmul_push.glsl"
void main() {
  uint n = gl_GlobalInvocationID.x, m = gl_GlobalInvocationID.y, z = gl_WorkGroupID.z;
  if (m >= pc.M || n >= pc.N) return;
  uint abase = pc.off_a + z * pc.stride_a, bbase = pc.off_b + z * pc.stride_b;
  float s = 0.0;
  for (uint k = 0; k < pc.K; k++) {
    float av = a_[abase + (TRANS_A != 0 ? k * pc.lda + m : m * pc.lda + k)];
    float bv = b_[bbase + (TRANS_B != 0 ? n * pc.ldb + k : k * pc.ldb + n)];
    s = fma(av, bv, s);
  }
  uint ci = pc.off_c + z * pc.stride_c + m * pc.ldc + n;
  float v = pc.alpha * s;
  if (pc.beta != 0.0) v += pc.beta * c_[ci];
  if (pc.has_bias != 0) v += bias_[n];
  c_[ci] = v;
}

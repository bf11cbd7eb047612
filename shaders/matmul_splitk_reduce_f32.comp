#version 450
// matmul_splitk_reduce_f32: the second pass of the split-K GEMM (engine/ops/matmul.c,
// vklm_matmul_splitk): the S partial products over slices of K, each packed (M,N) in part at
// element p*pstride (pstride >= M*N: the parts start at aligned offsets), summed
// in slice order (deterministic, no atomics), then
//   C[off_c + m*ldc + n] = alpha * sum + beta * C[...]   (beta == 0 never reads the old C)
// Bindings: 0 C f32 read-write; 1 part (S*pstride) f32 read-only.
// Push constants: uint M, N, S, pstride, ldc, off_c; float alpha, beta.
// Dispatch: one thread per element of C (M*N < 2^32); local_size_x = spec constant 0; grid over
// x,y by vklm_groups_1d (threads past M*N return). Loop iterations per invocation: S.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer Part { float part_[]; };
layout(push_constant) uniform Push {
  uint M, N, S, pstride, ldc, off_c;
  float alpha, beta;
} pc;
void main() {
  uint i = vklm_global_linear();
  uint mn = pc.M * pc.N;
  if (i >= mn) return;
  float s = 0.0;
  for (uint p = 0; p < pc.S; p++) s += part_[p * pc.pstride + i];
  uint ci = pc.off_c + (i / pc.N) * pc.ldc + i % pc.N;
  float v = pc.alpha * s;
  if (pc.beta != 0.0) v += pc.beta * c_[ci];
  c_[ci] = v;
}

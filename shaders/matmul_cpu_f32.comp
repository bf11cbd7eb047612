#version 450
// matmul_cpu_f32: the batched fp32 GEMM of matmul_tiled_f32 (same bindings, push constants and
// semantics), written for CPU Vulkan devices (lavapipe/llvmpipe):
//   C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias broadcast over rows when has_bias)
// with op(A) (M,K): A (M,K) or, when TRANS_A, A (K,M); op(B) (K,N): B (K,N) or, when TRANS_B,
// B (N,K). beta == 0 overwrites C without reading it. Element (r,c) of a matrix X of batch item z
// is X[off_x + z*stride_x + r*ldx + c]; stride 0 reuses one matrix for every batch item.
// Bindings: 0 C (batch,M,N) f32 read-write; 1 A f32; 2 B f32; 3 bias (N) f32 (any buffer when
//           has_bias = 0).
// Push constants: uint M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, off_a, off_b, off_c;
//           float alpha, beta; uint has_bias (60 bytes, the gemm_push of engine/ops/matmul.c).
// Spec constants: 0 local_size_x = WG; 1 TM (a multiple of 8); 2 TN; 6 TRANS_A; 7 TRANS_B.
// Requires: subgroup ballot operations (subgroupBroadcast) and subgroups of at least 8
//           invocations, so that the first 8 lanes of every subgroup are there to broadcast from.
// Dispatch: (ceil(N/(WG*TN)), ceil(M/TM), batch).
//
// Blocking: a workgroup computes a TM x (WG*TN) block of C. Invocation `lane` owns the TM rows of
// the block and the TN columns n0 + lane + j*WG: a TM x TN register block, with neighbouring lanes
// on neighbouring columns. For each k, every lane loads its TN elements of row k of op(B), and
// lane s < 8 of each subgroup loads element k of rows 8g + s of op(A) (g < TM/8), which
// subgroupBroadcast then hands to every lane: one load per 8 rows instead of one per row.
// No shared memory and no barriers: llvmpipe runs a workgroup on one CPU thread with its
// invocations 8 lanes wide (AVX2), loads every lane of a storage-buffer access one by one (so
// loads, not FMAs, cost the time and the large register block pays: 32 x 64 outputs per
// workgroup reach 5-10x the tiled kernel's GFLOP/s there), makes shared memory gathers and each
// barrier a coroutine switch. Rows and columns past the matrix are clamped to the last one, so
// every load is in bounds without a branch in the K loop and only the stores are guarded; any M,
// N, K works (K = 0 gives alpha * 0 + beta * C + bias).
// Loop iterations per invocation: K, in the one K loop (the TM/TN loops are unrolled); the host
// bounds K per dispatch by its split along K on drivers with a loop limit (engine/ops/matmul.c).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_ballot : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(constant_id = 1) const uint TM = 32;
layout(constant_id = 2) const uint TN = 8;
layout(constant_id = 6) const uint TRANS_A = 0;
layout(constant_id = 7) const uint TRANS_B = 0;
const uint TG = (TM + 7) / 8; // groups of 8 rows, one A load each
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 2) readonly buffer B { float b_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
layout(push_constant) uniform Push {
  uint M, N, K;
  uint lda, ldb, ldc;
  uint stride_a, stride_b, stride_c;
  uint off_a, off_b, off_c;
  float alpha, beta;
  uint has_bias;
} pc;

void main() {
  uint lane = gl_LocalInvocationID.x, s = gl_SubgroupInvocationID & 7u;
  uint m0 = gl_WorkGroupID.y * TM;
  uint n0 = gl_WorkGroupID.x * (gl_WorkGroupSize.x * TN) + lane;
  uint z = gl_WorkGroupID.z;
  uint abase = pc.off_a + z * pc.stride_a, bbase = pc.off_b + z * pc.stride_b;
  // element k of this lane's A row of group g is a_[ao[g] + k*astep]; element k of its column j
  // of op(B) is b_[bo[j] + k*bstep]
  uint astep = TRANS_A != 0 ? pc.lda : 1u, bstep = TRANS_B != 0 ? 1u : pc.ldb;
  uint ao[TG], bo[TN];
  [[unroll]] for (uint g = 0; g < TG; g++) {
    uint m = min(m0 + g * 8 + s, pc.M - 1);
    ao[g] = abase + (TRANS_A != 0 ? m : m * pc.lda);
  }
  [[unroll]] for (uint j = 0; j < TN; j++) {
    uint n = min(n0 + j * gl_WorkGroupSize.x, pc.N - 1);
    bo[j] = bbase + (TRANS_B != 0 ? n * pc.ldb : n);
  }
  float acc[TG * 8 * TN];
  [[unroll]] for (uint i = 0; i < TG * 8 * TN; i++) acc[i] = 0.0;
  uint ka = 0, kb = 0;
  for (uint k = 0; k < pc.K; k++) {
    float al[TG], b[TN];
    [[unroll]] for (uint g = 0; g < TG; g++) al[g] = a_[ao[g] + ka];
    [[unroll]] for (uint j = 0; j < TN; j++) b[j] = b_[bo[j] + kb];
    [[unroll]] for (uint g = 0; g < TG; g++) {
      // subgroupBroadcast needs a constant lane: one ROW per lane 0..7
#define ROW(r)                                                                                  \
  {                                                                                             \
    float a = subgroupBroadcast(al[g], r);                                                      \
    [[unroll]] for (uint j = 0; j < TN; j++)                                                    \
      acc[(g * 8 + r) * TN + j] = fma(a, b[j], acc[(g * 8 + r) * TN + j]);                      \
  }
      ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
    }
    ka += astep;
    kb += bstep;
  }
  uint cbase = pc.off_c + z * pc.stride_c;
  [[unroll]] for (uint i = 0; i < TG * 8; i++) {
    uint m = m0 + i;
    [[unroll]] for (uint j = 0; j < TN; j++) {
      uint n = n0 + j * gl_WorkGroupSize.x;
      if (m < pc.M && n < pc.N) {
        uint ci = cbase + m * pc.ldc + n;
        float v = pc.alpha * acc[i * TN + j];
        if (pc.beta != 0.0) v += pc.beta * c_[ci]; // beta == 0: overwrite, never read old C
        if (pc.has_bias != 0) v += bias_[n];
        c_[ci] = v;
      }
    }
  }
}

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
#include "matmul_cpu.glsl"

// matmul.glsl: the body shared by matmul_tiled_f32.comp and matmul_tiled_f16.comp (include it
// after the bindings; see those files for what they compute). The including file defines
//   LOAD_A(i), LOAD_B(i): element i of A / B as a float, and the bindings C (float c_[]) and
//   Bias (float bias_[]).
// With ROWSUM defined (matmul_tiled_f32_dbias.comp, binding 4 RowSum float rs_[]), the
// workgroups of the first column block also add the row sums of op(A) over K into rs_
// (rs_[m] += sum_k op(A)[m][k], k in order; batch 1): the bias gradient of a linear layer taken
// from the weight gradient's own pass over dout (dW = dout^T @ inp, dbias = the row sums of
// dout^T), with no dispatch of its own.
// Epilogues (one defined at most; matmul_store.glsl declares their binding 4, laid out as C:
// element ci of C pairs with element ci of it):
//   EPI_GELU  (matmul_tiled_{f32,f16}_gelu.comp): C gets v = alpha*acc + beta*C + bias as always,
//             and binding 4 (act_, written; fp32 or 16-bit words by spec constant 10 ACT_FMT)
//             gets gelu(v): a GPT-2 MLP's fc layer and its activation in one pass, the
//             pre-activation kept for the backward.
//   EPI_DGELU (matmul_tiled_{f32,f16}_dgelu.comp): C gets v * gelu'(pre_[ci]), binding 4 (float
//             pre_[], read-only) the pre-activation: the input gradient of the MLP's projection
//             times the activation's derivative, i.e. the gradient of the pre-activation.
// They are compiled into variants of their own, so the plain kernel is unchanged.
// Tiling: a workgroup computes a BM x BN block of C; K is walked in steps of BK through shared
// memory (As: BK x BM, Bs: BK x BN, both k-major and padded by one to spread the banks); each of
// the (BM/TM)*(BN/TN) threads keeps a TM x TN register tile whose rows are ty + i*(BM/TM) and
// columns tx + j*(BN/TN) (strided, so neighbouring threads read neighbouring shared words and
// write neighbouring columns of C). Tile loads are coalesced for either transpose and zero-fill
// outside the matrix, so any M, N, K works.
// Double buffering (spec constant 11 DBUF = 1; the host picks it where twice the shared memory
// fits, vklm_matmul_config_choose): two sets of As/Bs; each thread loads its LA + LB elements of
// the NEXT K-tile from global memory into registers before the current tile's FMAs (so the
// loads are in flight while it computes) and stores them into the other set after, with one
// barrier per K step: a set is refilled only after the barrier that ends the step which read it.
// DBUF = 0 is the single-buffered loop (two barriers per step), unchanged.
#ifndef VKLM_MATMUL_GLSL
#define VKLM_MATMUL_GLSL

layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint TRANS_A = 0;
layout(constant_id = 7) const uint TRANS_B = 0;

#include "matmul_push.glsl"
#include "matmul_store.glsl"

const uint TX = BN / TN;
const uint TY = BM / TM;
const uint NT = TX * TY; // == local_size_x (the host sets both)
const uint SA = BM + 1;
const uint SB = BN + 1;
layout(constant_id = 11) const uint DBUF = 0;
const uint NBUF = DBUF + 1u; // DBUF is 0 or 1
shared float As[NBUF * BK * SA];
shared float Bs[NBUF * BK * SB];
// The double-buffered path's share of each tile: element l = tid + r*NT (r < LA / LB) of the
// tile, in the single path's order (consecutive threads along the operand's contiguous dimension).
const uint LA = (BM * BK + NT - 1) / NT;
const uint LB = (BN * BK + NT - 1) / NT;

float tile_a(uint l, uint k0, uint m0, uint abase) {
  uint m = TRANS_A != 0 ? l % BM : l / BK;
  uint k = TRANS_A != 0 ? l / BM : l % BK;
  uint gm = m0 + m, gk = k0 + k;
  if (l >= BM * BK || gm >= pc.M || gk >= pc.K) return 0.0;
  return LOAD_A(abase + (TRANS_A != 0 ? gk * pc.lda + gm : gm * pc.lda + gk));
}
float tile_b(uint l, uint k0, uint n0, uint bbase) {
  uint n = TRANS_B != 0 ? l / BK : l % BN;
  uint k = TRANS_B != 0 ? l % BK : l / BN;
  uint gn = n0 + n, gk = k0 + k;
  if (l >= BN * BK || gn >= pc.N || gk >= pc.K) return 0.0;
  return LOAD_B(bbase + (TRANS_B != 0 ? gn * pc.ldb + gk : gk * pc.ldb + gn));
}
void tile_store(uint tid, uint buf, float ra[LA], float rb[LB]) {
  for (uint r = 0; r < LA; r++) {
    uint l = tid + r * NT;
    if (l < BM * BK)
      As[buf * BK * SA + (TRANS_A != 0 ? (l / BM) * SA + l % BM : (l % BK) * SA + l / BK)] = ra[r];
  }
  for (uint r = 0; r < LB; r++) {
    uint l = tid + r * NT;
    if (l < BN * BK)
      Bs[buf * BK * SB + (TRANS_B != 0 ? (l % BK) * SB + l / BK : (l / BN) * SB + l % BN)] = rb[r];
  }
}

void main() {
  uint tid = gl_LocalInvocationID.x;
  uint tx = tid % TX, ty = tid / TX;
  uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN, z = gl_WorkGroupID.z;
  uint abase = pc.off_a + z * pc.stride_a;
  uint bbase = pc.off_b + z * pc.stride_b;
  float acc[TM * TN];
  for (uint i = 0; i < TM * TN; i++) acc[i] = 0.0;
  float a[TM];
  float b[TN];
#ifdef ROWSUM
  bool rows = gl_WorkGroupID.x == 0 && tid < BM;
  float rsum = 0.0;
#endif

  if (DBUF != 0) {
    float ra[LA], rb[LB];
    for (uint r = 0; r < LA; r++) ra[r] = tile_a(tid + r * NT, 0u, m0, abase);
    for (uint r = 0; r < LB; r++) rb[r] = tile_b(tid + r * NT, 0u, n0, bbase);
    tile_store(tid, 0u, ra, rb);
    barrier();
    uint buf = 0;
    for (uint k0 = 0; k0 < pc.K; k0 += BK) {
      bool more = k0 + BK < pc.K;
      if (more) { // the next tile's global loads, in flight during the FMAs below
        for (uint r = 0; r < LA; r++) ra[r] = tile_a(tid + r * NT, k0 + BK, m0, abase);
        for (uint r = 0; r < LB; r++) rb[r] = tile_b(tid + r * NT, k0 + BK, n0, bbase);
      }
      uint ao = buf * BK * SA, bo = buf * BK * SB;
#ifdef ROWSUM
      if (rows)
        for (uint k = 0; k < BK; k++) rsum += As[ao + k * SA + tid]; // zero past K
#endif
      for (uint k = 0; k < BK; k++) {
        for (uint i = 0; i < TM; i++) a[i] = As[ao + k * SA + ty + i * TY];
        for (uint j = 0; j < TN; j++) b[j] = Bs[bo + k * SB + tx + j * TX];
        for (uint i = 0; i < TM; i++)
          for (uint j = 0; j < TN; j++) acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
      }
      if (more) tile_store(tid, buf ^ 1u, ra, rb);
      barrier();
      buf ^= 1u;
    }
  } else
  for (uint k0 = 0; k0 < pc.K; k0 += BK) {
    for (uint l = tid; l < BM * BK; l += NT) {
      // consecutive threads walk the contiguous dimension of A in memory
      uint m = TRANS_A != 0 ? l % BM : l / BK;
      uint k = TRANS_A != 0 ? l / BM : l % BK;
      uint gm = m0 + m, gk = k0 + k;
      float v = 0.0;
      if (gm < pc.M && gk < pc.K)
        v = LOAD_A(abase + (TRANS_A != 0 ? gk * pc.lda + gm : gm * pc.lda + gk));
      As[k * SA + m] = v;
    }
    for (uint l = tid; l < BN * BK; l += NT) {
      uint n = TRANS_B != 0 ? l / BK : l % BN;
      uint k = TRANS_B != 0 ? l % BK : l / BN;
      uint gn = n0 + n, gk = k0 + k;
      float v = 0.0;
      if (gn < pc.N && gk < pc.K)
        v = LOAD_B(bbase + (TRANS_B != 0 ? gn * pc.ldb + gk : gk * pc.ldb + gn));
      Bs[k * SB + n] = v;
    }
    barrier();
#ifdef ROWSUM
    if (rows)
      for (uint k = 0; k < BK; k++) rsum += As[k * SA + tid]; // zero past K
#endif
    for (uint k = 0; k < BK; k++) {
      for (uint i = 0; i < TM; i++) a[i] = As[k * SA + ty + i * TY];
      for (uint j = 0; j < TN; j++) b[j] = Bs[k * SB + tx + j * TX];
      for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++) acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
    }
    barrier();
  }

#ifdef ROWSUM
  if (rows && m0 + tid < pc.M) rs_[m0 + tid] += rsum;
#endif
  uint cbase = pc.off_c + z * pc.stride_c;
  for (uint i = 0; i < TM; i++) {
    uint gm = m0 + ty + i * TY;
    if (gm >= pc.M) break;
    for (uint j = 0; j < TN; j++) {
      uint gn = n0 + tx + j * TX;
      if (gn >= pc.N) break;
      matmul_store(cbase + gm * pc.ldc + gn, gn, acc[i * TN + j]);
    }
  }
}

#endif

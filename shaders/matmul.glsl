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
//   EPI_DGELU (matmul_tiled_{f32,f16}_dgelu.comp): C gets v * gelu'(pre_[ci]), binding 4 (pre_,
//             read-only; fp32 or 16-bit words by spec constant 10) the pre-activation: the input
//             gradient of the MLP's projection times the activation's derivative, i.e. the
//             gradient of the pre-activation.
// They are compiled into variants of their own, so the plain kernel is unchanged.
// Tiling: a workgroup computes a BM x BN block of C; K is walked in steps of BK through shared
// memory (As: BK x BM, Bs: BK x BN, both k-major and padded by one to spread the banks); each of
// the (BM/TM)*(BN/TN) threads keeps a TM x TN register tile whose rows are ty + i*(BM/TM) and
// columns, with TN even, pairs of adjacent columns 2*tx, 2*tx+1 strided by 2*(BN/TN)
// (tx + j*(BN/TN) with TN odd): neighbouring threads read neighbouring shared words and write
// neighbouring columns of C, and a thread holds both halves of a 16-bit output's words
// (matmul_store_pair: one plain store where the pair starts a word, no atomics). Tile loads are
// coalesced for either transpose and zero-fill outside the matrix, so any M, N, K works.
// Double buffering (spec constant 11 DBUF = 1; the host picks it where twice the shared memory
// fits, vklm_matmul_config_choose): two sets of As/Bs; each thread loads its LA + LB elements of
// the NEXT K-tile from global memory into registers before the current tile's FMAs (so the
// loads are in flight while it computes) and stores them into the other set after, with one
// barrier per K step: a set is refilled only after the barrier that ends the step which read it.
// DBUF = 0 is the single-buffered loop (two barriers per step), unchanged.
// Vector loads (spec constant 14 VEC: bit 0 for A, bit 1 for B; the host sets a bit only where
// the operand's contiguous dimension (K for A, N for B; M / K when transposed), row stride,
// offset and batch stride are multiples of 4, vklm_matmul_vec): a tile load then fetches 4
// consecutive elements of the contiguous dimension in one 16-byte access (LOAD_A4 / LOAD_B4 of
// the including file, element index a multiple of 4) where the scalar path makes 4; a quad past
// the matrix's edge is zero as a whole, since the edge is a multiple of 4 too.
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
#ifndef LOAD_A4 // including files without vector loaders (the host never sets VEC for them)
#define LOAD_A4(i) vec4(LOAD_A(i), LOAD_A((i) + 1u), LOAD_A((i) + 2u), LOAD_A((i) + 3u))
#endif
#ifndef LOAD_B4
#define LOAD_B4(i) vec4(LOAD_B(i), LOAD_B((i) + 1u), LOAD_B((i) + 2u), LOAD_B((i) + 3u))
#endif

const uint TX = BN / TN;
const uint TY = BM / TM;
const uint NT = TX * TY; // == local_size_x (the host sets both)
// column of thread tx's register-tile column j (the pairs above: CP adjacent columns per step)
const uint CP = TN % 2u == 0u ? 2u : 1u;
uint tile_col(uint tx, uint j) { return (j / CP) * (CP * TX) + tx * CP + j % CP; }
const uint SA = BM + 1;
const uint SB = BN + 1;
layout(constant_id = 11) const uint DBUF = 0;
layout(constant_id = 14) const uint VEC = 0;
const uint NBUF = DBUF + 1u; // DBUF is 0 or 1
shared float As[NBUF * BK * SA];
shared float Bs[NBUF * BK * SB];
// A tile is filled by QA (QB) loads of VA (VB) consecutive elements each: load q holds elements
// e = q*VA .. e+VA-1 of the tile, numbered along the operand's contiguous dimension first
// (consecutive threads along that dimension in memory, so the loads are coalesced).
const uint VA = (VEC & 1u) != 0u ? 4u : 1u;
const uint VB = (VEC & 2u) != 0u ? 4u : 1u;
const uint QA = BM * BK / VA;
const uint QB = BN * BK / VB;
// The double-buffered path's share of each tile: loads q = tid + r*NT (r < LA / LB).
const uint LA = (QA + NT - 1) / NT;
const uint LB = (QB + NT - 1) / NT;

vec4 tile_a(uint q, uint k0, uint m0, uint abase) {
  uint e = q * VA;
  uint m = TRANS_A != 0 ? e % BM : e / BK;
  uint k = TRANS_A != 0 ? e / BM : e % BK;
  uint gm = m0 + m, gk = k0 + k;
  if (q >= QA || gm >= pc.M || gk >= pc.K) return vec4(0.0);
  uint i = abase + (TRANS_A != 0 ? gk * pc.lda + gm : gm * pc.lda + gk);
  return VA == 4u ? LOAD_A4(i) : vec4(LOAD_A(i), 0.0, 0.0, 0.0);
}
vec4 tile_b(uint q, uint k0, uint n0, uint bbase) {
  uint e = q * VB;
  uint n = TRANS_B != 0 ? e / BK : e % BN;
  uint k = TRANS_B != 0 ? e % BK : e / BN;
  uint gn = n0 + n, gk = k0 + k;
  if (q >= QB || gn >= pc.N || gk >= pc.K) return vec4(0.0);
  uint i = bbase + (TRANS_B != 0 ? gn * pc.ldb + gk : gk * pc.ldb + gn);
  return VB == 4u ? LOAD_B4(i) : vec4(LOAD_B(i), 0.0, 0.0, 0.0);
}
// Shared memory is k-major: load q's elements go to consecutive m (n) in one k row when the
// contiguous dimension is M (N), else to VA (VB) consecutive k rows.
void store_a(uint buf, uint q, vec4 v) {
  uint e = q * VA;
  uint m = TRANS_A != 0 ? e % BM : e / BK;
  uint k = TRANS_A != 0 ? e / BM : e % BK;
  for (uint t = 0; t < VA; t++)
    As[buf * BK * SA + (TRANS_A != 0 ? k * SA + m + t : (k + t) * SA + m)] = v[t];
}
void store_b(uint buf, uint q, vec4 v) {
  uint e = q * VB;
  uint n = TRANS_B != 0 ? e / BK : e % BN;
  uint k = TRANS_B != 0 ? e % BK : e / BN;
  for (uint t = 0; t < VB; t++)
    Bs[buf * BK * SB + (TRANS_B != 0 ? (k + t) * SB + n : k * SB + n + t)] = v[t];
}
void tile_load(uint tid, uint k0, uint m0, uint n0, uint abase, uint bbase, inout vec4 ra[LA],
               inout vec4 rb[LB]) {
  for (uint r = 0; r < LA; r++) ra[r] = tile_a(tid + r * NT, k0, m0, abase);
  for (uint r = 0; r < LB; r++) rb[r] = tile_b(tid + r * NT, k0, n0, bbase);
}
void tile_store(uint tid, uint buf, vec4 ra[LA], vec4 rb[LB]) {
  for (uint r = 0; r < LA; r++)
    if (tid + r * NT < QA) store_a(buf, tid + r * NT, ra[r]);
  for (uint r = 0; r < LB; r++)
    if (tid + r * NT < QB) store_b(buf, tid + r * NT, rb[r]);
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
    vec4 ra[LA], rb[LB];
    tile_load(tid, 0u, m0, n0, abase, bbase, ra, rb);
    tile_store(tid, 0u, ra, rb);
    barrier();
    uint buf = 0;
    for (uint k0 = 0; k0 < pc.K; k0 += BK) {
      bool more = k0 + BK < pc.K;
      if (more) // the next tile's global loads, in flight during the FMAs below
        tile_load(tid, k0 + BK, m0, n0, abase, bbase, ra, rb);
      uint ao = buf * BK * SA, bo = buf * BK * SB;
#ifdef ROWSUM
      if (rows)
        for (uint k = 0; k < BK; k++) rsum += As[ao + k * SA + tid]; // zero past K
#endif
      for (uint k = 0; k < BK; k++) {
        for (uint i = 0; i < TM; i++) a[i] = As[ao + k * SA + ty + i * TY];
        for (uint j = 0; j < TN; j++) b[j] = Bs[bo + k * SB + tile_col(tx, j)];
        for (uint i = 0; i < TM; i++)
          for (uint j = 0; j < TN; j++) acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
      }
      if (more) tile_store(tid, buf ^ 1u, ra, rb);
      barrier();
      buf ^= 1u;
    }
  } else
  for (uint k0 = 0; k0 < pc.K; k0 += BK) {
    for (uint q = tid; q < QA; q += NT) store_a(0u, q, tile_a(q, k0, m0, abase));
    for (uint q = tid; q < QB; q += NT) store_b(0u, q, tile_b(q, k0, n0, bbase));
    barrier();
#ifdef ROWSUM
    if (rows)
      for (uint k = 0; k < BK; k++) rsum += As[k * SA + tid]; // zero past K
#endif
    for (uint k = 0; k < BK; k++) {
      for (uint i = 0; i < TM; i++) a[i] = As[k * SA + ty + i * TY];
      for (uint j = 0; j < TN; j++) b[j] = Bs[k * SB + tile_col(tx, j)];
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
    for (uint j = 0; j < TN; j += CP) {
      uint gn = n0 + tile_col(tx, j);
      if (gn >= pc.N) break;
      if (CP == 2u)
        matmul_store_pair(cbase + gm * pc.ldc + gn, gn, acc[i * TN + j], acc[i * TN + j + 1u],
                          gn + 1u < pc.N);
      else
        matmul_store(cbase + gm * pc.ldc + gn, gn, acc[i * TN + j]);
    }
  }
}

#endif

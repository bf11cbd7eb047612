// matmul_coopmat.glsl: the body shared by matmul_coopmat_nv.comp and matmul_coopmat_khr.comp
// (include it after the extensions; see those files for what they compute). The including file
// defines the cooperative-matrix vocabulary of its extension (matmul_coopmat_emu.comp: plain
// arithmetic, for testing this file's tiling on devices without cooperative matrices):
//   COOP_A, COOP_B, COOP_C     the fp16 A (CM x CK), fp16 B (CK x CN) and fp32 accumulator
//                              (CM x CN) types, subgroup scope
//   COOP_ELEM, COOP_TO_ELEM(v) the element type of the staged tiles (float16_t) and the
//                              conversion of a float to it
//   COOP_FILL0(m)              m = 0 (an accumulator)
//   COOP_LOAD_A/B(m, arr, i, ld)  load m from arr starting at element i, row-major, row stride ld
//   COOP_STORE(m, arr, i, ld)  store the accumulator m the same way
//   COOP_MAD(c, a, b)          c = a @ b + c
// Tiling: a workgroup computes a BM x BN block of C with BM = WM*SM*CM and BN = WN*SN*CN: its
// WM x WN subgroups each own SM x SN accumulators of the device's CM x CN x CK shape. K is walked
// in steps of BK = KS*CK: all the workgroup's invocations stage op(A)'s BM x BK block and op(B)'s
// BK x BN block in shared memory as float16_t (converted from each operand's format, zero outside
// the matrix, so any M, N, K works; row strides padded by 8 halves, keeping the 16-byte alignment
// cooperative loads want), then each subgroup multiplies its part. The epilogue goes through a
// CM x CN fp32 scratch per subgroup in shared memory, so alpha, beta (0: C not read), the bias
// and the edges of C are handled per element.
// The host sizes the workgroup as WM*WN subgroups of the device's subgroup size; should the
// driver run other subgroup sizes, the shader stays correct: spare subgroups only help stage
// tiles, and too few take the subgroup blocks in turns (passes over K, gl_NumSubgroups apart).
#ifndef VKLM_MATMUL_COOPMAT_GLSL
#define VKLM_MATMUL_COOPMAT_GLSL

#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CM = 16; // the device's cooperative-matrix shape
layout(constant_id = 2) const uint CN = 16;
layout(constant_id = 3) const uint CK = 16;
layout(constant_id = 4) const uint WM = 2; // subgroups along M and N
layout(constant_id = 5) const uint WN = 2;
layout(constant_id = 6) const uint SM = 2; // accumulators per subgroup along M and N
layout(constant_id = 7) const uint SN = 2;
layout(constant_id = 8) const uint KS = 2; // CK-steps per shared-memory stage
layout(constant_id = 9) const uint TRANS_A = 0;
layout(constant_id = 10) const uint TRANS_B = 0;
layout(constant_id = 11) const uint FMT_A = 0; // 0 fp32 bits, 1 packed fp16, 2 packed bf16
layout(constant_id = 12) const uint FMT_B = 1;

layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { uint a_[]; };
layout(std430, binding = 2) readonly buffer B { uint b_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };

#include "matmul_push.glsl"
#include "matmul_store.glsl"

const uint NSG = WM * WN; // subgroup blocks per workgroup
const uint BM = WM * SM * CM;
const uint BN = WN * SN * CN;
const uint BK = KS * CK;
const uint LDA = BK + 8; // As: BM rows of BK halves (m-major)
const uint LDB = BN + 8; // Bs: BK rows of BN halves (k-major)
shared COOP_ELEM As[BM * LDA];
shared COOP_ELEM Bs[BK * LDB];
shared float Cs[NSG * CM * CN];

float load_a(uint i) { return VKLM_LOAD_FMT(a_, i, FMT_A); } // load16.glsl, via matmul_store
float load_b(uint i) { return VKLM_LOAD_FMT(b_, i, FMT_B); }

void main() {
  uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
  uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN, z = gl_WorkGroupID.z;
  uint abase = pc.off_a + z * pc.stride_a;
  uint bbase = pc.off_b + z * pc.stride_b;
  uint cbase = pc.off_c + z * pc.stride_c;
  uint nsg = gl_NumSubgroups, lane = gl_SubgroupInvocationID;
  uint passes = (NSG + nsg - 1) / nsg;
  COOP_C acc[SM * SN];
  COOP_A ma[SM];
  COOP_B mb[SN];

  for (uint pass = 0; pass < passes; pass++) {
    uint sb = gl_SubgroupID + pass * nsg; // this subgroup's block, uniform in the subgroup
    bool mine = sb < NSG;
    uint rm = (sb / WN) * SM * CM, rn = (sb % WN) * SN * CN; // its corner within the tile
    for (uint i = 0; i < SM * SN; i++) COOP_FILL0(acc[i]);

    for (uint k0 = 0; k0 < pc.K; k0 += BK) {
      for (uint l = tid; l < BM * BK; l += nt) {
        // consecutive invocations walk the contiguous dimension of A in memory
        uint m = TRANS_A != 0 ? l % BM : l / BK;
        uint k = TRANS_A != 0 ? l / BM : l % BK;
        uint gm = m0 + m, gk = k0 + k;
        float v = 0.0;
        if (gm < pc.M && gk < pc.K)
          v = load_a(abase + (TRANS_A != 0 ? gk * pc.lda + gm : gm * pc.lda + gk));
        As[m * LDA + k] = COOP_TO_ELEM(v);
      }
      for (uint l = tid; l < BN * BK; l += nt) {
        uint n = TRANS_B != 0 ? l / BK : l % BN;
        uint k = TRANS_B != 0 ? l % BK : l / BN;
        uint gn = n0 + n, gk = k0 + k;
        float v = 0.0;
        if (gn < pc.N && gk < pc.K)
          v = load_b(bbase + (TRANS_B != 0 ? gn * pc.ldb + gk : gk * pc.ldb + gn));
        Bs[k * LDB + n] = COOP_TO_ELEM(v);
      }
      barrier();
      if (mine) {
        for (uint kk = 0; kk < BK; kk += CK) {
          for (uint i = 0; i < SM; i++) COOP_LOAD_A(ma[i], As, (rm + i * CM) * LDA + kk, LDA);
          for (uint j = 0; j < SN; j++) COOP_LOAD_B(mb[j], Bs, kk * LDB + rn + j * CN, LDB);
          for (uint i = 0; i < SM; i++)
            for (uint j = 0; j < SN; j++) COOP_MAD(acc[i * SN + j], ma[i], mb[j]);
        }
      }
      barrier();
    }

    if (mine) {
      uint cs = sb * CM * CN;
      for (uint i = 0; i < SM; i++)
        for (uint j = 0; j < SN; j++) {
          COOP_STORE(acc[i * SN + j], Cs, cs, CN);
          subgroupMemoryBarrierShared();
          subgroupBarrier();
          // a lane stores two adjacent columns (CN is a multiple of 8: matmul_coopmat.c's
          // usable_shape): matmul_store_pair
          for (uint e = 2u * lane; e < CM * CN; e += 2u * gl_SubgroupSize) {
            uint gm = m0 + rm + i * CM + e / CN, gn = n0 + rn + j * CN + e % CN;
            if (gm < pc.M && gn < pc.N)
              matmul_store_pair(cbase + gm * pc.ldc + gn, gn, Cs[cs + e], Cs[cs + e + 1u],
                                gn + 1u < pc.N);
          }
          subgroupMemoryBarrierShared();
          subgroupBarrier(); // the scratch is free for the next accumulator
        }
    }
  }
}

#endif

// matmul_cpu.glsl: the body of matmul_cpu_f32.comp and matmul_cpu_f32_dbias.comp (see
// matmul_cpu_f32.comp for what it computes, its bindings, constants, blocking and dispatch).
// With HALF_B_OPERAND defined, B holds 16-bit elements (matmul_cpu_f16b.comp), and A too where
// spec constant 8 HALF_A says so.
// With ROWSUM defined, binding 4 (rs_) also gets the row sums of op(A) over K, k in order, from
// the workgroups of the first column block: lane s < 8 sums the rows it loads (batch 1).
// With EPI_GELU or EPI_DGELU defined, the epilogues of matmul_store.glsl (see there) on binding 4:
// act_ = gelu(C) written beside C (fp32 or 16-bit: spec constant 10 ACT_FMT), or C multiplied by
// gelu'(pre_) (matmul_cpu_f32_gelu.comp, matmul_cpu_f32_dgelu.comp, and with HALF_B_OPERAND
// matmul_cpu_f16b_gelu.comp, matmul_cpu_f16b_dgelu.comp).
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
#ifdef HALF_B_OPERAND
// B in 16-bit storage (matmul_cpu_f16b.comp): HALF_B 1 fp16, 2 bf16, packed in pairs (element i
// in word i/2, low half first), any element offset. A too when HALF_A is 1 or 2 (mixed
// precision's 16-bit activations as the linear layers' input), else fp32 (its bits).
layout(constant_id = 8) const uint HALF_A = 0;
layout(constant_id = 9) const uint HALF_B = 1;
layout(std430, binding = 1) readonly buffer A { uint a_[]; };
layout(std430, binding = 2) readonly buffer B { uint b_[]; };
#include "load16.glsl"
float load_a(uint i) { return VKLM_LOAD_FMT(a_, i, HALF_A); }
float load_b(uint i) { return vklm_unpack16(b_[i >> 1], i, HALF_B); }
#else
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 2) readonly buffer B { float b_[]; };
#define load_a(i) a_[i]
#define load_b(i) b_[i]
#endif
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#ifdef ROWSUM
layout(std430, binding = 4) buffer RowSum { float rs_[]; };
#endif // EPI_GELU / EPI_DGELU: binding 4 is declared by matmul_store.glsl
#include "matmul_push.glsl"
#include "matmul_store.glsl"

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
#ifdef ROWSUM
  float rsum[TG]; // lane s < 8: the sums of the rows g*8 + s it loads
  [[unroll]] for (uint g = 0; g < TG; g++) rsum[g] = 0.0;
#endif
  for (uint k = 0; k < pc.K; k++) {
    float al[TG], b[TN];
    [[unroll]] for (uint g = 0; g < TG; g++) al[g] = load_a(ao[g] + ka);
#ifdef ROWSUM
    [[unroll]] for (uint g = 0; g < TG; g++) rsum[g] += al[g];
#endif
    [[unroll]] for (uint j = 0; j < TN; j++) b[j] = load_b(bo[j] + kb);
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
#ifdef ROWSUM
  if (gl_WorkGroupID.x == 0 && lane < 8u)
    [[unroll]] for (uint g = 0; g < TG; g++)
      if (m0 + g * 8 + lane < pc.M) rs_[m0 + g * 8 + lane] += rsum[g];
#endif
  uint cbase = pc.off_c + z * pc.stride_c;
  [[unroll]] for (uint i = 0; i < TG * 8; i++) {
    uint m = m0 + i;
    [[unroll]] for (uint j = 0; j < TN; j++) {
      uint n = n0 + j * gl_WorkGroupSize.x;
      if (m < pc.M && n < pc.N) matmul_store(cbase + m * pc.ldc + n, n, acc[i * TN + j]);
    }
  }
}

#version 450
// matmul_coopmat_emu: matmul_coopmat_nv's GEMM with the cooperative-matrix operations replaced
// by plain arithmetic, for tests on devices without cooperative matrices (lavapipe): every
// invocation of a subgroup holds whole CM x CK, CK x CN and CM x CN matrices and computes the
// product itself (the lanes share the store). It runs matmul_coopmat.glsl's tiling, staging,
// format conversion, fp16 rounding and epilogue unchanged, but no tensor core: slow, test-only
// (VKLM_COOPMAT=emulate, engine/ops/matmul_coopmat.c). The staged tiles are floats holding
// fp16-rounded values, so it needs no fp16 arithmetic.
// Bindings, push constants, spec constants and dispatch: as matmul_coopmat_nv.comp.
#extension GL_GOOGLE_include_directive : require
#define COOP_A float[CM * CK]
#define COOP_B float[CK * CN]
#define COOP_C float[CM * CN]
#define COOP_ELEM float
#define COOP_TO_ELEM(v) unpackHalf2x16(packHalf2x16(vec2(v, 0.0))).x
#define COOP_FILL0(m) for (uint q_ = 0; q_ < CM * CN; q_++) m[q_] = 0.0
#define COOP_LOAD_A(m, arr, i, ld) \
  for (uint q_ = 0; q_ < CM * CK; q_++) m[q_] = arr[(i) + (q_ / CK) * (ld) + q_ % CK]
#define COOP_LOAD_B(m, arr, i, ld) \
  for (uint q_ = 0; q_ < CK * CN; q_++) m[q_] = arr[(i) + (q_ / CN) * (ld) + q_ % CN]
#define COOP_STORE(m, arr, i, ld)                                                   \
  for (uint q_ = gl_SubgroupInvocationID; q_ < CM * CN; q_ += gl_SubgroupSize) \
  arr[(i) + (q_ / CN) * (ld) + q_ % CN] = m[q_]
#define COOP_MAD(c, a, b)                                                           \
  for (uint q_ = 0; q_ < CM * CN; q_++) {                                           \
    float s_ = c[q_];                                                               \
    for (uint k_ = 0; k_ < CK; k_++) s_ = fma(a[(q_ / CN) * CK + k_], b[k_ * CN + q_ % CN], s_); \
    c[q_] = s_;                                                                     \
  }
#include "matmul_coopmat.glsl"

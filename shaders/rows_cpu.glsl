// Loops over one row for the CPU-type kernel variants (*_cpu.comp), where each invocation walks
// a row serially. They are unrolled by 8 for two reasons: fewer loop iterations (Mesa's
// llvmpipe ends every loop of an invocation after 65535 iterations in all, counted over every
// loop the compiler did not unroll; the C side checks its iteration estimate against
// VKLM_CPU_LOOP_BUDGET and falls back to the GPU kernels beyond it), and precision: a sum runs
// in 8 lanes over blocks of 64 elements whose sums are then added, so a row of n elements
// rounds like a sum of about 8 + n/64 terms, not n.
// EXPR and STMT are macros of one argument, an element index (uint).
#ifndef VKLM_ROWS_CPU_GLSL
#define VKLM_ROWS_CPU_GLSL

// total (a float declared by the caller) = sum over i in [0, n) of EXPR(i).
#define VKLM_ROW_SUM(total, n, EXPR)                                                          \
  {                                                                                           \
    total = 0.0;                                                                              \
    uint n8_ = (n) & ~7u;                                                                     \
    for (uint c0_ = 0u; c0_ < n8_; c0_ += 64u) {                                              \
      vec4 a_ = vec4(0.0), b_ = vec4(0.0);                                                    \
      uint e_ = min(c0_ + 64u, n8_);                                                          \
      for (uint i_ = c0_; i_ < e_; i_ += 8u) {                                                \
        a_ += vec4(EXPR(i_), EXPR(i_ + 1u), EXPR(i_ + 2u), EXPR(i_ + 3u));                    \
        b_ += vec4(EXPR(i_ + 4u), EXPR(i_ + 5u), EXPR(i_ + 6u), EXPR(i_ + 7u));               \
      }                                                                                       \
      vec4 s_ = a_ + b_;                                                                      \
      total += (s_.x + s_.y) + (s_.z + s_.w);                                                 \
    }                                                                                         \
    for (uint i_ = n8_; i_ < (n); i_++) total += EXPR(i_);                                    \
  }

// total = max over i in [0, n) of EXPR(i); n >= 1.
#define VKLM_ROW_MAX(total, n, EXPR)                                                          \
  {                                                                                           \
    uint n8_ = (n) & ~7u;                                                                     \
    vec4 a_ = vec4(EXPR(0u)), b_ = a_;                                                        \
    for (uint i_ = 0u; i_ < n8_; i_ += 8u) {                                                  \
      a_ = max(a_, vec4(EXPR(i_), EXPR(i_ + 1u), EXPR(i_ + 2u), EXPR(i_ + 3u)));              \
      b_ = max(b_, vec4(EXPR(i_ + 4u), EXPR(i_ + 5u), EXPR(i_ + 6u), EXPR(i_ + 7u)));         \
    }                                                                                         \
    a_ = max(a_, b_);                                                                         \
    total = max(max(a_.x, a_.y), max(a_.z, a_.w));                                            \
    for (uint i_ = n8_; i_ < (n); i_++) total = max(total, EXPR(i_));                         \
  }

// STMT(i) for every i in [0, n), in order.
#define VKLM_ROW_FOR(n, STMT)                                                                 \
  {                                                                                           \
    uint n8_ = (n) & ~7u;                                                                     \
    for (uint i_ = 0u; i_ < n8_; i_ += 8u) {                                                  \
      STMT(i_); STMT(i_ + 1u); STMT(i_ + 2u); STMT(i_ + 3u);                                  \
      STMT(i_ + 4u); STMT(i_ + 5u); STMT(i_ + 6u); STMT(i_ + 7u);                             \
    }                                                                                         \
    for (uint i_ = n8_; i_ < (n); i_++) STMT(i_);                                             \
  }

#endif

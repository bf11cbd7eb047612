// The push constants of every matmul shader (engine/ops/matmul.c's gemm_push, 60 bytes).
layout(push_constant) uniform Push {
  uint M, N, K;
  uint lda, ldb, ldc;
  uint stride_a, stride_b, stride_c;
  uint off_a, off_b, off_c;
  float alpha, beta;
  uint has_bias;
} pc;

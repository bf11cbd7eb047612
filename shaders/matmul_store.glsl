// matmul_store.glsl: the epilogue every GEMM body (matmul.glsl, matmul_cpu.glsl,
// matmul_coopmat.glsl) applies to one element of C: element ci of C, column n, acc the product's sum:
//   v = alpha*acc + beta*C[ci] (beta == 0 never reads the old C) + bias[n] (has_bias), then
//   EPI_GELU: act_[ci] = gelu(v); EPI_DGELU: v *= gelu'(pre_[ci]); C[ci] = v.
// Include after the bindings (c_, bias_, act_ / pre_) and matmul_push.glsl.
#ifndef VKLM_MATMUL_STORE_GLSL
#define VKLM_MATMUL_STORE_GLSL
void matmul_store(uint ci, uint n, float acc) {
  float v = pc.alpha * acc;
  if (pc.beta != 0.0) v += pc.beta * c_[ci];
  if (pc.has_bias != 0) v += bias_[n];
#if defined(EPI_GELU)
  act_[ci] = vklm_gelu(v);
#elif defined(EPI_DGELU)
  v *= vklm_gelu_grad(pre_[ci]);
#endif
  c_[ci] = v;
}
#endif

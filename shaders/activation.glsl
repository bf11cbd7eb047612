// Activation functions shared by the elementwise shaders (include after common.glsl).
// GELU is the tanh form GPT-2 uses, rewritten with 0.5 (1 + tanh(u)) = sigmoid(2u) and
// 1 - tanh(u)^2 = 4 sigmoid(2u) sigmoid(-2u): accurate to a few ulp relative even in the far
// negative tail (where 1 + tanh(u) would cancel), and finite for any input (exp overflowing to
// inf gives a sigmoid of exactly 0).
#ifndef VKLM_ACTIVATION_GLSL
#define VKLM_ACTIVATION_GLSL

#define VKLM_GELU_CUBE 0.044715

float vklm_sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

float vklm_gelu(float x) {
  float u = float(VKLM_GELU_SCALE) * (x + float(VKLM_GELU_CUBE) * x * x * x);
  return x * vklm_sigmoid(2.0 * u);
}

float vklm_gelu_grad(float x) {
  float u = float(VKLM_GELU_SCALE) * (x + float(VKLM_GELU_CUBE) * x * x * x);
  float du = float(VKLM_GELU_SCALE) * (1.0 + 3.0 * float(VKLM_GELU_CUBE) * x * x);
  float s = vklm_sigmoid(2.0 * u), sm = vklm_sigmoid(-2.0 * u);
  return s + 2.0 * x * s * sm * du;
}

float vklm_silu(float x) { return x * vklm_sigmoid(x); }

float vklm_silu_grad(float x) {
  return vklm_sigmoid(x) * (1.0 + x * vklm_sigmoid(-x)); // sigmoid(-x) = 1 - sigmoid(x)
}

#endif

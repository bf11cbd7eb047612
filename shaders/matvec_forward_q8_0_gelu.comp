#version 450
// matvec_forward_q8_0_gelu: matvec_forward_q8_0 (see there) with the GPT-2 MLP's activation in its
// epilogue: y = x @ W^T + bias as there, and act = gelu(y) (gelu_forward_f32's tanh formula) at the
// same place of binding 4 (f32, write-only, the layout of y): the fc layer and its GELU in one
// dispatch when decoding. Bindings 0-3, push and spec constants as matvec_forward_q8_0.
#extension GL_GOOGLE_include_directive : require
#define MATVEC_GELU
#include "matvec_q8_0.glsl"

#version 450
// embedding_backward_f32_dwte_dwpe: the token table's and the position table's gradients in one
// dispatch (embedding_backward_dwte.glsl with WITH_DWPE).
#extension GL_GOOGLE_include_directive : require
#define WITH_DWPE
#include "embedding_backward_dwte.glsl"

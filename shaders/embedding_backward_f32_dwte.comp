#version 450
// embedding_backward_f32_dwte: the token table's gradient (embedding_backward_dwte.glsl).
#extension GL_GOOGLE_include_directive : require
#include "embedding_backward_dwte.glsl"

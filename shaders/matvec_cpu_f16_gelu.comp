#version 450
// matvec_cpu_f16_gelu: the CPU-type matrix-vector product (matvec_cpu.glsl) with
// W (N,K) in fp16, 4 halves per uvec2;
// act = gelu(y) at binding 4 too (the GPT-2 MLP's fc layer and its activation at once).
// The CPU-type counterpart of matvec_forward_f16_gelu.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) readonly buffer W { uvec2 w2[]; };
#define W_VEC4(i) vec4(unpackHalf2x16(w2[i].x), unpackHalf2x16(w2[i].y))
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#define MATVEC_GELU
#include "matvec_cpu.glsl"

#version 450
// matvec_cpu_f32: the CPU-type matrix-vector product (matvec_cpu.glsl) with
// W (N,K) in fp32, read as vec4.
// The CPU-type counterpart of matvec_forward_f32.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Y { float y_[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) readonly buffer W { vec4 w4[]; };
#define W_VEC4(i) w4[i]
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };

#include "matvec_cpu.glsl"

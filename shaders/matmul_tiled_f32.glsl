// matmul_tiled_f32.glsl: the bindings and loaders of the fp32 tiled GEMMs
// (matmul_tiled_f32{,_gelu,_dgelu,_dbias}.comp), then their body, matmul.glsl. A and B are also
// declared as vec4 arrays on the same bindings for matmul.glsl's vector loads (spec constant 14
// VEC; element index a multiple of 4).
#ifndef VKLM_MATMUL_TILED_F32_GLSL
#define VKLM_MATMUL_TILED_F32_GLSL
layout(local_size_x_id = 0) in;
#include "common.glsl"
layout(std430, binding = 0) buffer C { float c_[]; };
layout(std430, binding = 1) readonly buffer A { float a_[]; };
layout(std430, binding = 1) readonly buffer A4 { vec4 a4_[]; };
layout(std430, binding = 2) readonly buffer B { float b_[]; };
layout(std430, binding = 2) readonly buffer B4 { vec4 b4_[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias_[]; };
#define LOAD_A(i) a_[i]
#define LOAD_B(i) b_[i]
#define LOAD_A4(i) a4_[(i) >> 2]
#define LOAD_B4(i) b4_[(i) >> 2]
#include "matmul.glsl"
#endif

#version 450
// attention_decode_f16_split_sg: attention_decode_f16_split with its max and sum reductions
// through subgroup arithmetic (devices with VK_SUBGROUP_FEATURE_ARITHMETIC_BIT); see
// attention_decode_split.glsl for what it computes, its bindings, push constants and dispatch.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#define VKLM_DECODE_SUBGROUP
#define KV_T float16_t
#define KV(x) float(x)
#include "attention_decode_split.glsl"

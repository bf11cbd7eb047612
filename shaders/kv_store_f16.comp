#version 450
// kv_store_f16: appends the key and value heads of new rows to a KV cache held in fp16 (16-bit
// storage; fp32 arithmetic, rounded to nearest on store); see kv_store.glsl for what it
// computes, its bindings, push constants and dispatch.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_shader_16bit_storage : require
#define KV_T float16_t
#define TO_KV(x) float16_t(x)
#include "kv_store.glsl"

#version 450
// kv_store_f32: appends the key and value heads of new rows to a KV cache held in fp32; see
// kv_store.glsl for what it computes, its bindings, push constants and dispatch.
#extension GL_GOOGLE_include_directive : require
#define KV_T float
#define TO_KV(x) (x)
#include "kv_store.glsl"

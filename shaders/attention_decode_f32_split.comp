#version 450
// attention_decode_f32_split: the first stage of split-K decode attention over a KV cache held
// in fp32; see attention_decode_split.glsl for what it computes, its bindings, push constants
// and dispatch.
#extension GL_GOOGLE_include_directive : require
#define KV_T float
#define KV(x) (x)
#include "attention_decode_split.glsl"

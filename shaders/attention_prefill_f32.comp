#version 450
// attention_prefill_f32: causal attention of many new query rows (prefill) against a KV cache
// held in fp32, in tiles; see attention_prefill.glsl for what it computes, its bindings, push
// constants, specialization constants and dispatch.
#extension GL_GOOGLE_include_directive : require
#define KV_T float
#define KV(x) (x)
#include "attention_prefill.glsl"

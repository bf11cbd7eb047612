#version 450
// attention_prefill_f16_cpu: attention_prefill_f16 (causal attention of many new query rows
// against a KV cache held in fp16: 16-bit storage, fp32 arithmetic) for CPU-type devices; see
// attention_prefill_cpu.glsl for what it computes, its bindings, push constants, specialization
// constants and dispatch.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_shader_16bit_storage : require
#define KV_T float16_t
#define KV(x) float(x)
#include "attention_prefill_cpu.glsl"

// attention_prefill_io.glsl: the bindings and push constants of the prefill kernels
// (attention_prefill.glsl and attention_prefill_cpu.glsl, which say what they hold).
#ifndef VKLM_ATTENTION_PREFILL_IO_GLSL
#define VKLM_ATTENTION_PREFILL_IO_GLSL
layout(std430, binding = 0) writeonly buffer Out { float outp[]; };
layout(std430, binding = 1) readonly buffer Q { float q_[]; };
layout(std430, binding = 2) readonly buffer KC { KV_T kc[]; };
layout(std430, binding = 3) readonly buffer VC { KV_T vc[]; };
layout(std430, binding = 4) readonly buffer Rows { uvec2 rows[]; };
layout(push_constant) uniform Push {
  uint n; uint NH; uint NKV; uint QS; float scale; uint maxT; uint S;
} pc;
#endif

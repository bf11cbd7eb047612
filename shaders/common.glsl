// Shared by every vklm shader; include it after the layout(local_size...) declaration.
// vklm_group_linear(): the linear workgroup index when a 1-D grid was split over x and y by
// vklm_groups_1d() (runtime/vklm_runtime.h); threads of groups past the end must return early.
#ifndef VKLM_COMMON_GLSL
#define VKLM_COMMON_GLSL

uint vklm_group_linear() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
uint vklm_global_linear() { return vklm_group_linear() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; }

// fp32 -> bfloat16 bits (the high half of the fp32), rounded to nearest even, a NaN kept a NaN:
// the rule of vklm_f32_to_bf16_ref (mixed precision's weight copies and 16-bit activations).
uint vklm_bf16_bits(float v) {
  uint b = floatBitsToUint(v);
  return isnan(v) ? (b >> 16) | 0x40u : ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) & 0xffffu;
}

// The tanh form of GELU and its constants, as GPT-2 uses it.
#define VKLM_GELU_SCALE 0.7978845608028654 // sqrt(2/pi)

#endif

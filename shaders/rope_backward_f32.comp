#version 450
// rope_backward_f32: the backward of rope_forward_f32, in place on the query and key gradient
// heads of a packed (B,T,(NH+2*NKV)*HS) buffer: the inverse rotation, i.e. pair (i, i+HS/2) of
// each head at position pos0+t is rotated by the angle -(pos0+t)*theta^(-2i/HS).
// Bindings, push constants, dispatch: see rope.glsl. local_size_x = spec constant 0.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#define ROPE_SIGN -1.0
#include "rope.glsl"

/* Elementwise activations: GELU (tanh form, GPT-2), SiLU, and SwiGLU (Llama's MLP).
 *
 * All fp32, one thread per element. Backward passes OVERWRITE their input gradients (these are
 * activation gradients, see the gradient rule in ops.h).
 *
 * SwiGLU takes ONE fused input gu (N,2H): each row holds the gate (columns 0..H-1) followed by
 * up (columns H..2H-1), the layout of a single fused gate+up matmul whose output rows are
 * [W_gate x ; W_up x]. Its gradient dgu has the same fused layout, so the backward of that one
 * matmul consumes it directly. (Two separate matmuls can write into the two halves of gu only
 * with a row stride of 2H, i.e. as one matmul; there is no separate-buffer variant.) */
#ifndef VKLM_OPS_ACTIVATION_H
#define VKLM_OPS_ACTIVATION_H

#include <stdint.h>
#include "vklm_runtime.h"

/* out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x = inp (n) */
vklm_status vklm_gelu_forward(vklm_cmd *cmd, vklm_buffer out /* (n) */, vklm_buffer inp /* (n) */,
                              uint32_t n);
/* The same with out in out_fmt and inp in in_fmt: 0 fp32, 1 fp16 or 2 bf16, as
 * vklm_swiglu_forward_fmt says. */
vklm_status vklm_gelu_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt, vklm_buffer inp,
                                  int in_fmt, uint32_t n);
/* dinp (n) = dout (n) * gelu'(inp (n)) — overwrites */
vklm_status vklm_gelu_backward(vklm_cmd *cmd, vklm_buffer dinp /* (n) */,
                               vklm_buffer dout /* (n) */, vklm_buffer inp /* (n) */, uint32_t n);
/* The same with inp in in_fmt (0 fp32, 1 fp16, 2 bf16: mixed precision's saved fch); dinp may
 * be dout (in place). */
vklm_status vklm_gelu_backward_fmt(vklm_cmd *cmd, vklm_buffer dinp, vklm_buffer dout,
                                   vklm_buffer inp, int in_fmt, uint32_t n);

/* out (n) = x * sigmoid(x), x = inp (n) */
vklm_status vklm_silu_forward(vklm_cmd *cmd, vklm_buffer out /* (n) */, vklm_buffer inp /* (n) */,
                              uint32_t n);
/* dinp (n) = dout (n) * silu'(inp (n)) — overwrites */
vklm_status vklm_silu_backward(vklm_cmd *cmd, vklm_buffer dinp /* (n) */,
                               vklm_buffer dout /* (n) */, vklm_buffer inp /* (n) */, uint32_t n);

/* out (N,H) = silu(gate) * up, with gu (N,2H) = [gate | up] per row */
vklm_status vklm_swiglu_forward(vklm_cmd *cmd, vklm_buffer out /* (N,H) */,
                                vklm_buffer gu /* (N,2H) */, uint32_t N, uint32_t H);
/* The same with out in out_fmt: 0 fp32, 1 fp16, 2 bf16 (matmul.h's VKLM_GEMM_* numbering;
 * ceil(N*H/2) words of packed halves, element i in word i/2, low half first, rounded to nearest
 * even as shaders/store16.glsl says; for an odd N*H the last word's high half is left as it
 * was): mixed-precision training's saved MLP activation, the input
 * of the down projection. The reference gives the fp32 values; the 16-bit result is their
 * rounding (elementwise.h's converters). gu in gu_fmt likewise (mixed precision's saved fch:
 * ceil(2NH/2) words; the reference then takes gu's 16-bit values widened). */
vklm_status vklm_swiglu_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt, vklm_buffer gu,
                                    int gu_fmt, uint32_t N, uint32_t H);
/* dgu (N,2H) = [dout * up * silu'(gate) | dout * silu(gate)] — overwrites */
vklm_status vklm_swiglu_backward(vklm_cmd *cmd, vklm_buffer dgu /* (N,2H) */,
                                 vklm_buffer dout /* (N,H) */, vklm_buffer gu /* (N,2H) */,
                                 uint32_t N, uint32_t H);
/* The same with gu in gu_fmt (0 fp32, 1 fp16, 2 bf16: mixed precision's saved fch). */
vklm_status vklm_swiglu_backward_fmt(vklm_cmd *cmd, vklm_buffer dgu, vklm_buffer dout,
                                     vklm_buffer gu, int gu_fmt, uint32_t N, uint32_t H);

/* Plain C references (double arithmetic), same shapes and rules. */
void vklm_gelu_forward_ref(float *out, const float *inp, uint32_t n);
void vklm_gelu_backward_ref(float *dinp, const float *dout, const float *inp, uint32_t n);
void vklm_silu_forward_ref(float *out, const float *inp, uint32_t n);
void vklm_silu_backward_ref(float *dinp, const float *dout, const float *inp, uint32_t n);
void vklm_swiglu_forward_ref(float *out, const float *gu, uint32_t N, uint32_t H);
void vklm_swiglu_backward_ref(float *dgu, const float *dout, const float *gu, uint32_t N,
                              uint32_t H);

#endif

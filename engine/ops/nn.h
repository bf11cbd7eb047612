/* nn: the tensor-level entry points of the ops a transformer layer is made of, as the model graph
 * (engine/model/graph.c) calls them: each takes vklm_tensor views, checks their dtypes and shapes
 * against one another (a mismatch is a programmer error: an assert naming the op, the argument,
 * what it is and what was expected), derives the sizes from the shapes, and records the
 * buffer-level kernel of the op's header (matmul.h, quant.h, norm.h, activation.h, attention.h,
 * elementwise.h). Gradient rules as ops.h states them.
 *
 * Tensors here are fp32 activations unless said otherwise; a weight may be any linear dtype
 * (tensor.h) in the forward. Does not allocate. */
#ifndef VKLM_OPS_NN_H
#define VKLM_OPS_NN_H

#include "tensor.h"

/* out (M,N) = in (M,K) @ w (N,K)^T + bias (N). w: F32, F16, Q8_0 or Q4_0; bias: F32 or none.
 * out's rows may be strided (stride[0] >= N) and start at any element offset: a column block
 * of a wider matrix. Few rows take the matrix-vector kernel, more the tiled GEMM (quant.h). */
vklm_status vklm_nn_linear(vklm_cmd *cmd, vklm_tensor out, vklm_tensor in, vklm_tensor w,
                           vklm_tensor bias);
/* dinp (M,K) = dout @ w (OVERWRITES; none skips), dw (N,K) += dout^T @ in (none: a frozen
 * weight), db (N) += column sums of dout (none skips). All F32. */
vklm_status vklm_nn_linear_backward(vklm_cmd *cmd, vklm_tensor dinp, vklm_tensor dw,
                                    vklm_tensor db, vklm_tensor dout, vklm_tensor in,
                                    vklm_tensor w);

/* out (N,C) = LayerNorm (rms 0: mean and rstd saved, bias b) or RMSNorm (rms 1: rstd saved, eps;
 * mean and b none) of in (N,C) with weight w (C). */
vklm_status vklm_nn_norm(vklm_cmd *cmd, int rms, float eps, vklm_tensor out, vklm_tensor mean,
                         vklm_tensor rstd, vklm_tensor in, vklm_tensor w, vklm_tensor b);
/* dinp (N,C) += the norm's input gradient; dw, db += its parameter gradients (none for a frozen
 * norm: both none). scratch: vklm_norm_backward_scratch_bytes. */
vklm_status vklm_nn_norm_backward(vklm_cmd *cmd, int rms, vklm_tensor dinp, vklm_tensor dw,
                                  vklm_tensor db, vklm_buffer scratch, vklm_tensor dout,
                                  vklm_tensor in, vklm_tensor w, vklm_tensor mean,
                                  vklm_tensor rstd);

/* out = a + b (same shapes). */
vklm_status vklm_nn_add(vklm_cmd *cmd, vklm_tensor out, vklm_tensor a, vklm_tensor b);

/* The MLP's activation: GELU out (N,F) of in (N,F) (swiglu 0), or SwiGLU out (N,F) of the fused
 * [gate | up] in (N,2F) (swiglu 1). The backward OVERWRITES din. */
vklm_status vklm_nn_mlp_act(vklm_cmd *cmd, int swiglu, vklm_tensor out, vklm_tensor in);
vklm_status vklm_nn_mlp_act_backward(vklm_cmd *cmd, int swiglu, vklm_tensor din,
                                     vklm_tensor dout, vklm_tensor in);

/* Self-attention of B sequences of T rows: out (B*T, NH*HS), lse (B,NH,T) <- qkv (B*T, QKV)
 * (attention.h's layout); NKV key/value heads. */
vklm_status vklm_nn_attention(vklm_cmd *cmd, vklm_tensor out, vklm_tensor lse, vklm_tensor qkv,
                              uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV, int causal);
/* dqkv (B*T, QKV) OVERWRITTEN; scratch (B,NH,T). */
vklm_status vklm_nn_attention_backward(vklm_cmd *cmd, vklm_tensor dqkv, vklm_buffer scratch,
                                       vklm_tensor dout, vklm_tensor out, vklm_tensor lse,
                                       vklm_tensor qkv, uint32_t B, uint32_t T, uint32_t NH,
                                       uint32_t NKV, int causal);

#endif

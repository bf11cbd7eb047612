/* nn: the tensor-level entry points of the ops a transformer layer is made of, as the model graph
 * (engine/model/graph.c) calls them: each takes vklm_tensor views, checks their dtypes and shapes
 * against one another (a mismatch is a programmer error: an assert naming the op, the argument,
 * what it is and what was expected), derives the sizes from the shapes, and records the
 * buffer-level kernel of the op's header (matmul.h, quant.h, norm.h, activation.h, attention.h,
 * elementwise.h, embedding.h, rope.h, kvcache.h, crossentropy.h). Gradient rules as ops.h states
 * them.
 *
 * Tensors here are fp32 activations unless said otherwise; a weight may be any linear dtype
 * (tensor.h) in the forward. Mixed-precision training holds the activations it saves for the
 * backward (the norms' outputs, the MLP activation, the qkv and fc layers' outputs qkv and fch;
 * the attention output if asked) in F16 or BF16: the ops that write them (norm, add_norm,
 * linear's and linear_gelu's out, rope (in place), attention, mlp_act, linear_gelu's gelu_out)
 * and read them (linear, linear_gelu, linear_backward's in, linear_backward_gelu's pre,
 * mlp_act and mlp_act_backward's in, attention and attention_backward's qkv) take either, and
 * nothing else does. Does not allocate. */
#ifndef VKLM_OPS_NN_H
#define VKLM_OPS_NN_H

#include "norm.h"
#include "tensor.h"
#include "vklm_runtime.h"

/* out (M,N) = in (M,K) @ w (N,K)^T + bias (N). w: F32, F16, Q8_0 or Q4_0; bias: F32 or none.
 * out may be a contiguous F16 / BF16 tensor (the GEMM's 16-bit C: matmul.h's
 * vklm_matmul_fmt; w F32, F16 or BF16).
 * out's rows may be strided (stride[0] >= N) and start at any element offset: a column block
 * of a wider matrix. Few rows take the matrix-vector kernel, more the tiled GEMM (quant.h).
 * in may be F16 / BF16 (contiguous; w then F32, F16 or BF16): the GEMM with a 16-bit A
 * (matmul.h's vklm_matmul_fmt) for any number of rows. */
vklm_status vklm_nn_linear(vklm_cmd *cmd, vklm_tensor out, vklm_tensor in, vklm_tensor w,
                           vklm_tensor bias);
/* dinp (M,K) = dout @ w (OVERWRITES; none skips), dw (N,K) += dout^T @ in (none: a frozen
 * weight), db (N) += column sums of dout (none skips). All F32 but w (F16 / BF16: mixed
 * precision's weight copy) and in (F16 / BF16: a saved 16-bit activation, read as the GEMM's B;
 * the bias gradient is then a reduction of its own, elementwise.h's vklm_bias_backward). */
vklm_status vklm_nn_linear_backward(vklm_cmd *cmd, vklm_tensor dinp, vklm_tensor dw,
                                    vklm_tensor db, vklm_tensor dout, vklm_tensor in,
                                    vklm_tensor w);

/* The GELU MLP's fc layer: out (M,N) = in (M,K) @ w (N,K)^T + bias (N) as vklm_nn_linear, and
 * gelu_out (M,N) = gelu(out): one dispatch (quant.h's vklm_linear_forward_gelu) for up to
 * VKLM_LINEAR_MATVEC_MAX_M rows with any weight type but BF16 (decoding) and for F32 weights
 * (matmul.h's GELU epilogue), else the two ops. out, gelu_out: contiguous F32; in, out and
 * gelu_out may be F16 / BF16 (mixed precision's saved activations; F32, F16 or BF16 weights):
 * the GEMM's GELU epilogue in those formats (vklm_matmul_gelu_fmt), or the two ops where the
 * GEMM runs on cooperative matrices: either way gelu_out = gelu(out as stored). */
vklm_status vklm_nn_linear_gelu(vklm_cmd *cmd, vklm_tensor out, vklm_tensor gelu_out,
                                vklm_tensor in, vklm_tensor w, vklm_tensor bias);
/* The backward of a linear layer whose input was gelu(pre): as vklm_nn_linear_backward, with
 * dpre (M,K) = (dout @ w) * gelu'(pre (M,K)) (OVERWRITES; required) instead of dinp: one GEMM for
 * F32 weights (matmul.h's epilogue), the plain backward and an in-place gelu' otherwise. pre
 * may be F16 / BF16 (mixed precision's saved fch: vklm_matmul_dgelu_fmt), dpre is F32. */
vklm_status vklm_nn_linear_backward_gelu(vklm_cmd *cmd, vklm_tensor dpre, vklm_tensor dw,
                                         vklm_tensor db, vklm_tensor dout, vklm_tensor in,
                                         vklm_tensor w, vklm_tensor pre);

/* out (N,C) = LayerNorm (rms 0: mean and rstd saved, bias b) or RMSNorm (rms 1: rstd saved, eps;
 * mean and b none) of in (N,C) with weight w (C). out: F32, F16 or BF16 (rounded to nearest
 * even, norm.h's _fmt calls). */
vklm_status vklm_nn_norm(vklm_cmd *cmd, int rms, float eps, vklm_tensor out, vklm_tensor mean,
                         vklm_tensor rstd, vklm_tensor in, vklm_tensor w, vklm_tensor b);
/* The residual add and the norm after it in one dispatch: res (N,C) = a + b, then out, mean,
 * rstd as vklm_nn_norm of res (the same results as vklm_nn_add then vklm_nn_norm). */
vklm_status vklm_nn_add_norm(vklm_cmd *cmd, int rms, float eps, vklm_tensor res,
                             vklm_tensor out, vklm_tensor mean, vklm_tensor rstd, vklm_tensor a,
                             vklm_tensor b, vklm_tensor w, vklm_tensor bias);
/* dinp (N,C) += the norm's input gradient; with dw (and db for LayerNorm; none for a frozen
 * norm), the partial sums of their gradients into part (vklm_norm_partials_bytes) and *pending
 * filled: dw, db receive them at the vklm_norm_grads_reduce that takes pending (norm.h). */
vklm_status vklm_nn_norm_backward(vklm_cmd *cmd, int rms, vklm_tensor dinp, vklm_tensor dw,
                                  vklm_tensor db, vklm_buffer part, vklm_tensor dout,
                                  vklm_tensor in, vklm_tensor w, vklm_tensor mean,
                                  vklm_tensor rstd, vklm_norm_grads *pending);

/* out = a + b (same shapes). */
vklm_status vklm_nn_add(vklm_cmd *cmd, vklm_tensor out, vklm_tensor a, vklm_tensor b);

/* The MLP's activation: GELU out (N,F) of in (N,F) (swiglu 0), or SwiGLU out (N,F) of the fused
 * [gate | up] in (N,2F) (swiglu 1); out and in F32, F16 or BF16 (activation.h's _fmt calls).
 * The backward OVERWRITES din (F32; in F32, F16 or BF16 as forward, dout F32). */
vklm_status vklm_nn_mlp_act(vklm_cmd *cmd, int swiglu, vklm_tensor out, vklm_tensor in);
vklm_status vklm_nn_mlp_act_backward(vklm_cmd *cmd, int swiglu, vklm_tensor din,
                                     vklm_tensor dout, vklm_tensor in);

/* Self-attention of B sequences of T rows: out (B*T, NH*HS), lse (B,NH,T) <- qkv (B*T, QKV)
 * (attention.h's layout); NKV key/value heads. out and qkv may be F16 / BF16 (an even HS:
 * attention.h's _fmt calls; the backward reads qkv so and does not read out). */
vklm_status vklm_nn_attention(vklm_cmd *cmd, vklm_tensor out, vklm_tensor lse, vklm_tensor qkv,
                              uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV, int causal);
/* dqkv (B*T, QKV) OVERWRITTEN; scratch (B,NH,T). */
vklm_status vklm_nn_attention_backward(vklm_cmd *cmd, vklm_tensor dqkv, vklm_buffer scratch,
                                       vklm_tensor dout, vklm_tensor lse, vklm_tensor qkv,
                                       uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV,
                                       int causal);

/* ---- a general matrix product over views ---------------------------------------------------
 * c (M,N) = alpha * op(a) @ op(b) + beta * c, op(x) = x or x^T (trans): every operand an F32
 * 2-D view whose rows may be strided and start at any element offset (matmul.h's GEMM takes its
 * sizes, leading dimensions and offsets from the views); b may also be F16 or BF16. */
vklm_status vklm_nn_matmul(vklm_cmd *cmd, vklm_tensor c, vklm_tensor a, int trans_a, vklm_tensor b,
                           int trans_b, float alpha, float beta);

/* ---- embeddings and positions --------------------------------------------------------------
 * out (B*T,C) = wte[tokens] (+ wpe[t]) for the tokens in the vocabulary range [v0, v0+rows of
 * wte), and of wte2 after it when given (a split table's next chunk: one dispatch for two);
 * tokens (B,T) I32; wpe (maxT,C) or none. The backward adds into dwte (the range
 * [v0, v1); none: a frozen table) and dwpe (none: skipped) from dout (B*T,C) with the bucket
 * plan (embedding.h, an I32 tensor of vklm_embedding_plan_size(B*T)). */
vklm_status vklm_nn_embed(vklm_cmd *cmd, vklm_tensor out, vklm_tensor tokens, vklm_tensor wte,
                          vklm_tensor wte2, vklm_tensor wpe, uint32_t v0, uint32_t V);
vklm_status vklm_nn_embed_backward(vklm_cmd *cmd, vklm_tensor dwte, vklm_tensor dwpe,
                                   vklm_tensor plan, vklm_tensor dout, vklm_tensor tokens,
                                   uint32_t v0, uint32_t v1, uint32_t V);
/* RoPE in place on qkv (B*T, (NH+2*NKV)*HS) at positions t (backward: the inverse rotation);
 * forward, qkv may be F16 / BF16 (rope.h's vklm_rope_forward_fmt). */
vklm_status vklm_nn_rope(vklm_cmd *cmd, vklm_tensor qkv, uint32_t B, uint32_t T, uint32_t NH,
                         uint32_t NKV, float theta, int backward);

/* ---- the KV-cache path (kvcache.h): rows (n,2) I32 of (position, sequence slot) ------------ */
/* RoPE on qkv (n, QKV) at each row's position from a (maxT, HS) cos|sin table. */
vklm_status vklm_nn_rope_rows(vklm_cmd *cmd, vklm_tensor qkv, vklm_tensor table, vklm_tensor rows,
                              uint32_t NH, uint32_t NKV);
/* x (n,C) += wpe (maxT,C) at each row's position. */
vklm_status vklm_nn_pos_add(vklm_cmd *cmd, vklm_tensor x, vklm_tensor wpe, vklm_tensor rows);
/* k, v (S*maxT, NKV, HS) F32 or F16 caches <- the key and value heads of qkv (n, QKV). */
vklm_status vklm_nn_kv_store(vklm_cmd *cmd, vklm_tensor k, vklm_tensor v, vklm_tensor qkv,
                             vklm_tensor rows, uint32_t NH, uint32_t maxT);
/* out (n, NH*HS) <- each row's causal attention over its sequence's cached rows; scratch as
 * vklm_attention_decode_scratch_bytes(n, NH, HS, splits). */
vklm_status vklm_nn_kv_attention(vklm_cmd *cmd, vklm_tensor out, vklm_buffer scratch,
                                 vklm_tensor qkv, vklm_tensor k, vklm_tensor v, vklm_tensor rows,
                                 uint32_t NH, uint32_t maxT, uint32_t splits);

/* ---- losses (crossentropy.h) -----------------------------------------------------------------
 * losses (n) = -log softmax(logits (n,V))[targets (n) I32] (0 where ignored); with dlogits (may
 * be logits itself) and scale (n): dlogits = (softmax - onehot) * scale per row. */
vklm_status vklm_nn_cross_entropy(vklm_cmd *cmd, vklm_tensor losses, vklm_tensor dlogits,
                                  vklm_tensor logits, vklm_tensor targets, vklm_tensor scale,
                                  int32_t ignore_index);
/* out (B) = per row b of x (B,T): sum_t x[b,t] * w[b,t]. */
vklm_status vklm_nn_segment_dot(vklm_cmd *cmd, vklm_tensor out, vklm_tensor x, vklm_tensor w);

#endif

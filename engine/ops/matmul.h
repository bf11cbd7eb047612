/* Matrix multiplication: a general batched GEMM with transposes (fp32, or fp16 storage with fp32
 * accumulation), and the two model-level wrappers a linear layer needs (llm.c's matmul_forward /
 * matmul_backward).
 *
 * All matrices are row-major. The GEMM computes, for every batch item z < batch,
 *   C[z] (M,N) = alpha * op(A[z]) @ op(B[z]) + beta * C[z]
 * with op(A) = A (M,K), or A^T when trans_a (A stored (K,M)); op(B) = B (K,N), or B^T when trans_b
 * (B stored (N,K)). beta == 0 overwrites C without reading it (old NaNs do not propagate).
 * Element (r,c) of batch item z of X is X[off_x + z*stride_x + r*ldx + c], in elements; ldx 0
 * means packed (the stored row length) and stride_x 0 reuses the same matrix for every batch item
 * (a shared weight). Every index must be < 2^32 elements. The GEMM is deterministic (a fixed
 * summation order along K).
 *
 * Kernel: shared-memory tiles of BM x BN with K-steps of BK, each thread a TM x TN register tile
 * (shaders/matmul.glsl); the tile configuration is chosen from the device's limits and the
 * problem's size (vklm_matmul_config_choose). matmul_naive_f32 (one thread per output) is kept as a fallback and as the
 * benchmark's baseline. On contexts that ask for CPU-type kernels (vklm_context_cpu_kernels:
 * lavapipe by default), fp32 GEMMs without an explicit tile configuration run matmul_cpu_f32
 * instead: no shared memory, no barriers, a large register block per invocation (the shader says
 * why that suits llvmpipe), and those with a 16-bit B (fp16 or bf16 weights) and an fp32 or
 * 16-bit A its matmul_cpu_f16b variant; a 16-bit A with an fp32 B, the naive kernel and
 * vklm_matmul_ex with a configuration keep their kernels. On drivers that end shader loops early (llvmpipe) every GEMM
 * is split along K into dispatches of vklm_matmul_k_chunk (matmul.c says why). Epilogue
 * fusions ride in kernel variants of their own (both families), so the plain kernels are
 * unchanged: the bias gradient's row sums ("_dbias", fp32 only), GELU ("_gelu") and its
 * derivative ("_dgelu"), the last two for fp32 and for 16-bit operands (matmul_tiled_f16_*,
 * matmul_cpu_f16b_*).
 *
 * Gradients (ops.h): matmul_backward OVERWRITES dinp and ACCUMULATES dweight and dbias. */
#ifndef VKLM_OPS_MATMUL_H
#define VKLM_OPS_MATMUL_H

#include <stdint.h>
#include "vklm_runtime.h"

typedef struct vklm_gemm {
  uint32_t M, N, K, batch; /* batch 0 is taken as 1 */
  int trans_a, trans_b;
  float alpha, beta;
  uint64_t stride_a, stride_b, stride_c; /* elements between batch items; 0: same matrix */
  uint32_t lda, ldb, ldc;                /* row strides in elements; 0: packed */
  uint64_t off_a, off_b, off_c;          /* element offsets of item 0 in the buffers */
} vklm_gemm;

/* A plain (M,N,K) GEMM: batch 1, no transposes, alpha 1, beta 0, packed. */
vklm_gemm vklm_gemm_make(uint32_t M, uint32_t N, uint32_t K);

/* A tile configuration of the tiled kernels: BM x BN block of C per workgroup, BK K-step, TM x TN
 * outputs per thread, threads = (BM/TM)*(BN/TN); dbuf 1: double-buffered tiles (twice the shared
 * memory, one barrier per K step: shaders/matmul.glsl), 0: single-buffered. Tile loads fetch 4
 * elements at once from an operand whose layout allows it (its contiguous dimension, row stride,
 * offset and batch stride multiples of 4: shaders/matmul.glsl's VEC) unless novec is 1 (for
 * comparisons: `vklm bench ops`, the tests). */
typedef struct vklm_matmul_config {
  uint32_t BM, BN, BK, TM, TN, threads, dbuf, novec;
} vklm_matmul_config;
/* The configuration vklm_matmul uses for g on this device: 128x128x8 with 8x8 per thread
 * (256 threads) on discrete GPUs when that still gives >= 128 workgroups; else 64x64x16 with 4x4
 * (256 threads); 64x64x16 with 8x4 (128 threads) under the Vulkan minimums; smaller ones below.
 * Double-buffered where two sets of tiles take at most half the device's shared memory (matmul.c
 * says why half). */
vklm_matmul_config vklm_matmul_config_choose(const vklm_context *ctx, const vklm_gemm *g);
/* The configurations this device can run (for tests and benchmarks), each tile single-buffered
 * and, where its shared memory fits, double-buffered after it; returns how many (<= max). */
uint32_t vklm_matmul_configs(const vklm_context *ctx, vklm_matmul_config *out, uint32_t max);

/* fp32: c (batch,M,N), a (batch,M,K) or (batch,K,M) when trans_a, b (batch,K,N) or (batch,N,K)
 * when trans_b. */
vklm_status vklm_matmul(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                        const vklm_gemm *g);
/* fp16 storage for a and b (uint buffers of packed halves: element i in word i/2, low half
 * first; any element offset works, odd ones included); fp32 accumulation and c. */
vklm_status vklm_matmul_f16(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                            const vklm_gemm *g);
/* fp32 a, fp16-storage b (fp16 weights for inference); fp32 accumulation and c. */
vklm_status vklm_matmul_f16b(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                             const vklm_gemm *g);
/* Operand storage formats: fp32; packed 16-bit words (element i in word i/2, low half first)
 * holding IEEE halves or bfloat16 (the high 16 bits of an fp32). */
#define VKLM_GEMM_F32 0
#define VKLM_GEMM_F16 1
#define VKLM_GEMM_BF16 2
/* Any mix: a_f16 / b_f16 are the operands' formats (VKLM_GEMM_*); cfg NULL chooses the
 * configuration (vklm_matmul_config_choose; fp32 on a CPU-type context: matmul_cpu_f32), else it
 * must be one of vklm_matmul_configs and the tiled kernel runs it in either kernel family. */
vklm_status vklm_matmul_ex(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, int a_f16, vklm_buffer b,
                           int b_f16, const vklm_gemm *g, const vklm_matmul_config *cfg);
/* vklm_matmul_ex with the chosen configuration, plus bias as vklm_matmul_bias: the entry for
 * 16-bit weights (the linear layers' F16 / BF16 weights, quant.c), with C in c_fmt: VKLM_GEMM_F32,
 * or F16 / BF16 for an output written once (mixed-precision training's saved qkv and fch): each
 * element rounded to nearest even from the fp32 sum and packed as the operands are, a word
 * shared with a neighbouring row or an odd offset keeping its other half; 16 bits need beta 0
 * (C is never read) and, on drivers that split K (vklm_matmul_k_chunk), K within one dispatch.
 * Every GEMM body takes it (tiled, CPU-type, cooperative-matrix: spec constant 13,
 * shaders/matmul_store.glsl). */
vklm_status vklm_matmul_fmt(vklm_cmd *cmd, vklm_buffer c, int c_fmt, vklm_buffer a, int a_fmt,
                            vklm_buffer b, int b_fmt, vklm_buffer bias, const vklm_gemm *g);
/* vklm_matmul plus bias (N floats; a zero-size buffer: none) added to every row of C after
 * alpha and beta, in the kernel's epilogue: the fp32 linear layer with any output layout (ldc,
 * off_c), which engine/ops/quant.c's linear forward uses for fp32 weights. */
vklm_status vklm_matmul_bias(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                             vklm_buffer bias, const vklm_gemm *g);
/* The same GEMM as vklm_matmul with the naive one-thread-per-output kernel. */
vklm_status vklm_matmul_naive(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                              const vklm_gemm *g);
/* fp32 GEMM epilogues (separate kernel variants; the plain kernels are unchanged), act and pre
 * laid out as C (ldc, off_c, stride_c), neither overlapping C. With llvmpipe's split along K the
 * epilogue runs on the last part only, over the whole sum.
 * vklm_matmul_gelu: C = v = alpha*op(A)@op(B) + beta*C + bias (as vklm_matmul_bias) and
 *   act = gelu(v) (tanh form, as vklm_gelu_forward), in one dispatch.
 * vklm_matmul_dgelu: C = (alpha*op(A)@op(B) + beta*C) * gelu'(pre) (as vklm_gelu_backward). */
vklm_status vklm_matmul_gelu(vklm_cmd *cmd, vklm_buffer c, vklm_buffer act, vklm_buffer a,
                             vklm_buffer b, vklm_buffer bias, const vklm_gemm *g);
vklm_status vklm_matmul_dgelu(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                              vklm_buffer pre, const vklm_gemm *g);
/* The same with operand formats (VKLM_GEMM_*, as vklm_matmul_fmt: the 16-bit weight copies of
 * mixed precision as B), C's format c_fmt (as vklm_matmul_fmt; with a 16-bit C the GELU takes
 * C's rounded value, gelu(C as stored), the value the GELU kernel and the dGELU epilogue read
 * back) and, for the GELU, act's format act_fmt: VKLM_GEMM_F32, or F16 / BF16 (rounded to
 * nearest even, packed as the operands are: element i of act in word i/2, low half first, any
 * element offset; the word's other half is left as it was); pre read in pre_fmt (F32, F16,
 * BF16). The tiled kernels run them (and the CPU-type kernel for an fp32 A), never the
 * cooperative-matrix one: see vklm_matmul_epilogue_fuses. */
vklm_status vklm_matmul_gelu_fmt(vklm_cmd *cmd, vklm_buffer c, int c_fmt, vklm_buffer act,
                                 int act_fmt, vklm_buffer a, int a_fmt, vklm_buffer b, int b_fmt,
                                 vklm_buffer bias, const vklm_gemm *g);
vklm_status vklm_matmul_dgelu_fmt(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, int a_fmt,
                                  vklm_buffer b, int b_fmt, vklm_buffer pre, int pre_fmt,
                                  const vklm_gemm *g);
/* Whether a GEMM of these operand formats without a configuration runs the same kernel with an
 * epilogue as without one: false where the plain GEMM would go to cooperative matrices (which
 * have no epilogue variants), so that a linear layer there keeps the cooperative-matrix GEMM
 * and a separate activation dispatch instead of falling back to the tiled kernel. */
int vklm_matmul_epilogue_fuses(const vklm_context *ctx, int a_fmt, int b_fmt);

/* Split-K (fp32, batch 1): C = alpha * op(A) @ op(B) + beta * C with K cut into `splits` slices
 * (at most 64; fewer where the last would be empty) of ceil(K/splits) (the last one shorter),
 * the full slices' products one batched GEMM (a batch item per slice, one dispatch) into their
 * own (M,N) parts of scratch, a shorter last slice a GEMM of its own (no barrier between the
 * two), then one small kernel (matmul_splitk_reduce_f32) summing the parts in
 * slice order and applying alpha and beta into C (ldc, off_c): deterministic, no atomics. For
 * GEMMs whose output is too small to fill the device (the weight gradients dW = dout^T @ in of
 * narrow layers, K = B*T). scratch: a buffer of at least vklm_matmul_splitk_scratch_bytes (the
 * op allocates nothing); splits 1 is vklm_matmul. */
vklm_status vklm_matmul_splitk(vklm_cmd *cmd, vklm_buffer c, vklm_buffer a, vklm_buffer b,
                               const vklm_gemm *g, uint32_t splits, vklm_buffer scratch);
/* The slices for g on this device (1: do not split): enough workgroups for about twice what the
 * device runs at once (an estimate: matmul.c says how), each slice at least 256 of K. */
uint32_t vklm_matmul_splitk_choose(const vklm_context *ctx, const vklm_gemm *g);
/* The scratch vklm_matmul_splitk needs: splits parts of M*N floats, each rounded up to the
 * buffer alignment (0 for splits <= 1). */
uint64_t vklm_matmul_splitk_scratch_bytes(const vklm_context *ctx, const vklm_gemm *g,
                                          uint32_t splits);

/* A linear layer's weight gradient: dw (N,K) += dout^T (N,M) @ in (M,K), in held in in_fmt
 * (VKLM_GEMM_*; dout, dw fp32), and with db (a buffer) db (N) += the column sums of dout. On
 * contexts recording the GPU kernels, where vklm_matmul_splitk_choose splits the GEMM and
 * scratch holds vklm_matmul_dweight_scratch_bytes, it runs split-K (the bias gradient then its
 * own two-stage reduction, in the same scratch first); else one GEMM with the bias gradient in
 * its row sums, or the reduction (with scratch where it is large enough) where the kernel has
 * none. scratch may be empty; its contents are overwritten (the linear backward passes dinp's
 * memory, written after). Deterministic for a given device and scratch size. */
vklm_status vklm_matmul_dweight(vklm_cmd *cmd, vklm_buffer dw, vklm_buffer db, vklm_buffer dout,
                                vklm_buffer in, int in_fmt, vklm_buffer scratch, uint32_t M,
                                uint32_t K, uint32_t N);
uint64_t vklm_matmul_dweight_scratch_bytes(const vklm_context *ctx, uint32_t M, uint32_t K,
                                           uint32_t N);

/* Whether this device can run the CPU-type fp32 kernel (subgroup ballot operations, subgroups of
 * at least 8 invocations); where it cannot, CPU-type contexts keep the tiled kernel. */
int vklm_matmul_cpu_available(const vklm_context *ctx);
/* The most K one dispatch reduces over on this device's driver (8192 on llvmpipe, whose loops end
 * after 65535 iterations), or 0: no split. */
uint32_t vklm_matmul_k_chunk(const vklm_context *ctx);

/* Cooperative matrices (tensor cores; matmul_coopmat.c, shaders/matmul_coopmat_{khr,nv}.comp):
 * fp16 products with fp32 accumulation, A and B converted to fp16 as they are staged (an fp32 or
 * bf16 operand loses range and precision to fp16). Shape, tile and subgroups per workgroup come
 * from the device. GEMMs without a configuration whose B is F16 and A F32 or F16 run there when
 * the device has a usable shape (vklm_matmul_coopmat_available) and VKLM_COOPMAT is not "0"
 * (vklm_config.coopmat); fp32 x fp32 GEMMs and the epilogue variants keep their kernels.
 * VKLM_COOPMAT=emulate (tests) makes every device run the same tiling with plain arithmetic in
 * place of the cooperative-matrix operations (matmul_coopmat_emu: slow, no tensor core).
 * Whether this context (device enabled extension, usable fp16 x fp16 -> fp32 subgroup shape,
 * shader in the build) can run the cooperative-matrix GEMM. */
int vklm_matmul_coopmat_available(const vklm_context *ctx);
/* vklm_matmul_ex with cfg = &vklm_matmul_config_coopmat records the cooperative-matrix kernel
 * whatever the formats (tests, benchmarks); VKLM_ERROR_UNSUPPORTED where it is not available. */
extern const vklm_matmul_config vklm_matmul_config_coopmat;
/* What the kernel would run on this device (shader, shape, subgroup size, tile), for reports;
 * returns the length written, 0 (and "") where it is not available. */
uint32_t vklm_matmul_coopmat_describe(const vklm_context *ctx, char *out, uint32_t len);
/* Private to engine/ops/matmul.c's kernel choice: whether a GEMM of these formats and cfg goes to
 * cooperative matrices; recording it with gemm_one's checked push constants and bindings
 * (C, A, B, bias). */
int vklm__matmul_coopmat_pick(const vklm_context *ctx, int fmt_a, int fmt_b,
                              const vklm_matmul_config *cfg);
vklm_status vklm__matmul_coopmat_record(vklm_cmd *cmd, const vklm_buffer bufs[4], const void *push,
                                        uint32_t push_size, const vklm_gemm *g, int fmt_a,
                                        int fmt_b, int fmt_c);

/* 2*M*N*K*batch. */
double vklm_matmul_flops(const vklm_gemm *g);

/* out (BT,OC) = inp (BT,C) @ weight (OC,C)^T + bias (OC); bias may be a zero-size buffer
 * ((vklm_buffer){0}) for none. The bias is added in the GEMM's epilogue. */
vklm_status vklm_matmul_forward(vklm_cmd *cmd, vklm_buffer out /* (BT,OC) */,
                                vklm_buffer inp /* (BT,C) */, vklm_buffer weight /* (OC,C) */,
                                vklm_buffer bias /* (OC) or {0} */, uint32_t BT, uint32_t C,
                                uint32_t OC);
/* dinp (BT,C) = dout @ weight (OVERWRITE; a zero-size dinp skips it);
 * dweight (OC,C) += dout^T @ inp (ACCUMULATE; {0} skips it: a frozen weight);
 * dbias (OC) += column sums of dout (ACCUMULATE; a zero-size dbias skips it).
 * With dweight, the bias gradient comes from the weight gradient's GEMM (its "_dbias" variant
 * adds the row sums of dout^T, k in order, in the same pass: no dispatch of its own); without,
 * it is a deterministic two-stage reduction that uses dinp's memory as its scratch before dinp
 * is written (when dinp is given and large enough; otherwise one stage). */
vklm_status vklm_matmul_backward(vklm_cmd *cmd, vklm_buffer dinp /* (BT,C) */,
                                 vklm_buffer dweight /* (OC,C) */, vklm_buffer dbias /* (OC) */,
                                 vklm_buffer dout /* (BT,OC) */, vklm_buffer inp /* (BT,C) */,
                                 vklm_buffer weight /* (OC,C) */, uint32_t BT, uint32_t C,
                                 uint32_t OC);
/* The GELU MLP's pair (one dispatch each for the GELU, fused in the GEMMs' epilogues):
 * forward_gelu: out (BT,OC) = inp @ weight^T + bias as vklm_matmul_forward, act (BT,OC) =
 *   gelu(out): the MLP's fc layer, out its pre-activation saved for the backward;
 * backward_gelu: vklm_matmul_backward with the input gradient's GEMM multiplied by gelu'(pre):
 *   dpre (BT,C) = (dout @ weight) * gelu'(pre (BT,C)) (OVERWRITE): the MLP's projection whose
 *   input was act = gelu(pre), giving the pre-activation's gradient without act's. */
vklm_status vklm_matmul_forward_gelu(vklm_cmd *cmd, vklm_buffer out /* (BT,OC) */,
                                     vklm_buffer act /* (BT,OC) */, vklm_buffer inp /* (BT,C) */,
                                     vklm_buffer weight /* (OC,C) */, vklm_buffer bias,
                                     uint32_t BT, uint32_t C, uint32_t OC);
vklm_status vklm_matmul_backward_gelu(vklm_cmd *cmd, vklm_buffer dpre /* (BT,C) */,
                                      vklm_buffer dweight /* (OC,C) */, vklm_buffer dbias,
                                      vklm_buffer dout /* (BT,OC) */, vklm_buffer inp /* (BT,C) */,
                                      vklm_buffer weight /* (OC,C) */, vklm_buffer pre /* (BT,C) */,
                                      uint32_t BT, uint32_t C, uint32_t OC);

/* Plain C references (double accumulation). a_f16/b_f16 in vklm_gemm_ref: the operands'
 * formats (VKLM_GEMM_*: 16-bit elements packed in pairs into uint32_t words). */
void vklm_gemm_ref(float *c, const void *a, int a_f16, const void *b, int b_f16,
                   const vklm_gemm *g);
void vklm_matmul_forward_ref(float *out, const float *inp, const float *weight,
                             const float *bias /* or NULL */, uint32_t BT, uint32_t C,
                             uint32_t OC);
void vklm_matmul_backward_ref(float *dinp /* or NULL */, float *dweight,
                              float *dbias /* or NULL */, const float *dout, const float *inp,
                              const float *weight, uint32_t BT, uint32_t C, uint32_t OC);
void vklm_matmul_forward_gelu_ref(float *out, float *act, const float *inp, const float *weight,
                                  const float *bias /* or NULL */, uint32_t BT, uint32_t C,
                                  uint32_t OC);
void vklm_matmul_backward_gelu_ref(float *dpre, float *dweight, float *dbias /* or NULL */,
                                   const float *dout, const float *inp, const float *weight,
                                   const float *pre, uint32_t BT, uint32_t C, uint32_t OC);

#endif

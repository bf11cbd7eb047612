/* Linear layers with weights that stay quantized in device memory (inference): the weight W (N,K)
 * row-major (a linear layer's out x in) is stored in one of ggml's formats, byte for byte as in a
 * GGUF file, and dequantized inside the shaders:
 *   F32   N*K floats;
 *   F16   N*K halves, packed (element i in 32-bit word i/2, low half first = little-endian);
 *   Q8_0  each row K/32 blocks of 34 bytes: fp16 scale d, then 32 int8 quants q; x = d*q;
 *   Q4_0  each row K/32 blocks of 18 bytes: fp16 scale d, then 16 bytes, byte j holding element j
 *         in its low nibble and element j+16 in its high nibble; x = d*(nibble - 8).
 * K must be a multiple of 32 for the quantized types (asserted). Blocks are not 4-byte aligned;
 * the shaders read them from uint buffers by byte offset (no 8/16-bit storage feature needed),
 * so a weight buffer must hold vklm_dtype_buffer_bytes (the data rounded up to whole words).
 * A weight matrix must be under 4 GiB (32-bit byte offsets in the shaders).
 *
 * Two kernels compute out (M,N) = inp (M,K) @ W^T (+ bias), fp32 activations and accumulation:
 * - vklm_matvec: the decode path (small M), memory-bound: a workgroup takes a few rows of W, its
 *   threads split K, a shared-memory tree reduces; each weight byte is read once per call for up
 *   to VKLM_MATVEC_MAX_M rows of inp (shaders/matvec.glsl).
 * - vklm_matmul_w: the prefill path (large M): the tiled GEMM of matmul.h with W^T as B,
 *   dequantized while B tiles are loaded into shared memory (matmul_tiled_q8_0/q4_0.comp;
 *   F32/F16 use matmul_tiled_f32/f16).
 * vklm_linear_forward picks between them by M (VKLM_LINEAR_MATVEC_MAX_M).
 * Forward only: quantized weights are not trained (no backward here). Both kernels are
 * deterministic (fixed summation order). */
#ifndef VKLM_OPS_QUANT_H
#define VKLM_OPS_QUANT_H

#include <stdint.h>
#include "tensor.h"
#include "vklm_runtime.h"

#define VKLM_QK 32 /* elements per block of Q8_0 and Q4_0 */
#ifndef VKLM_Q8_0_BLOCK_BYTES /* also in engine/formats/quant.h */
#define VKLM_Q8_0_BLOCK_BYTES 34
#endif
#ifndef VKLM_Q4_0_BLOCK_BYTES
#define VKLM_Q4_0_BLOCK_BYTES 18
#endif

/* The weight type of a ggml/GGUF tensor type number (F32 0, F16 1, Q4_0 2, Q8_0 8): 0 and *out
 * set, or -1 for a type these kernels do not read. */
int vklm_dtype_from_ggml(uint32_t ggml_type, vklm_dtype *out);

/* Rows of inp that one matvec pass reads W for; vklm_matvec does larger M in passes of this many
 * (reading W once per pass). */
#define VKLM_MATVEC_MAX_M 8
/* vklm_linear_forward uses the matvec for M <= this and the tiled GEMM for larger M. Up to 8 rows
 * the matvec is still bound by reading W (2M flops per weight element loaded, M accumulators per
 * thread); past that a GEMM tile reuses each loaded weight across BM rows from shared memory and
 * registers. Set from that reasoning, not measured on a GPU (on lavapipe the matvec is still
 * ~3.5x faster than the tiled kernel at M = 8, (N,K) = (2304,768)). */
#define VKLM_LINEAR_MATVEC_MAX_M 8

/* out (M,N) = inp (M,K) @ w (N,K in type)^T + bias (N); bias may be {0} for none. Any M; the
 * decode kernel (see above). out is overwritten. */
vklm_status vklm_matvec(vklm_cmd *cmd, vklm_buffer out /* (M,N) */, vklm_buffer inp /* (M,K) */,
                        vklm_buffer w /* (N,K) in type */, vklm_dtype type, uint32_t M,
                        uint32_t N, uint32_t K, vklm_buffer bias /* (N) or {0} */);
/* The same product with the tiled GEMM (W dequantized into shared-memory tiles). */
vklm_status vklm_matmul_w(vklm_cmd *cmd, vklm_buffer out /* (M,N) */, vklm_buffer inp /* (M,K) */,
                          vklm_buffer w /* (N,K) in type */, vklm_dtype type, uint32_t M,
                          uint32_t N, uint32_t K, vklm_buffer bias /* (N) or {0} */);
/* A linear layer's forward with a weight in any type: vklm_matvec for M <=
 * VKLM_LINEAR_MATVEC_MAX_M, else vklm_matmul_w. On contexts with CPU-type kernels (lavapipe),
 * vklm_matvec runs F32 and F16 weights with K % 4 == 0 through a CPU-type variant
 * (shaders/matvec_cpu.glsl: an invocation per rows of W, no barrier), and other F32/F16 products
 * of few rows take the GEMM's CPU variants (quant.c says why). (Argument order as vklm_matmul_forward's, with
 * the weight type after the weight: BT = M, C = K, OC = N.) */
vklm_status vklm_linear_forward(vklm_cmd *cmd, vklm_buffer out /* (M,N) */,
                                vklm_buffer inp /* (M,K) */, vklm_buffer w /* (N,K) in type */,
                                vklm_dtype type, vklm_buffer bias /* (N) or {0} */,
                                uint32_t M, uint32_t K, uint32_t N);

/* vklm_linear_forward and act (M,N) = gelu(out) (GPT-2's MLP fc layer): one dispatch for up to
 * VKLM_LINEAR_MATVEC_MAX_M rows (the matvec's _gelu variants, any weight type but BF16) and for
 * F32 weights (the GEMM's GELU epilogue, matmul.h); else the GEMM and then the activation. */
vklm_status vklm_linear_forward_gelu(vklm_cmd *cmd, vklm_buffer out /* (M,N) */,
                                     vklm_buffer act /* (M,N) */, vklm_buffer inp /* (M,K) */,
                                     vklm_buffer w /* (N,K) in type */, vklm_dtype type,
                                     vklm_buffer bias /* (N) or {0} */, uint32_t M, uint32_t K,
                                     uint32_t N);
/* The same with the output's rows ldo elements apart from element off_o of out (a column block
 * of a wider matrix, e.g. one vocabulary chunk of (M,V) logits: ldo = V, off_o = v0). */
vklm_status vklm_linear_forward_ex(vklm_cmd *cmd, vklm_buffer out, uint32_t ldo, uint64_t off_o,
                                   vklm_buffer inp /* (M,K) */, vklm_buffer w, vklm_dtype type,
                                   vklm_buffer bias /* (N) or {0} */, uint32_t M, uint32_t K,
                                   uint32_t N);

/* ---- C references --------------------------------------------------------------------------- */
/* The 32 values of one Q8_0 or Q4_0 block (VKLM_Q*_BLOCK_BYTES bytes at block). */
void vklm_weight_dequant_block_ref(vklm_dtype t, const uint8_t *block, float out[32]);
/* Row n of an (N,K) weight in type t as K floats. */
void vklm_weight_dequant_row_ref(vklm_dtype t, const void *w, uint32_t n, uint32_t K,
                                 float *out);
/* out (M,N) = inp (M,K) @ dequant(w)^T + bias, accumulated in double. */
void vklm_linear_forward_ref(float *out, const float *inp, const void *w, vklm_dtype type,
                             const float *bias /* or NULL */, uint32_t M, uint32_t K, uint32_t N);

/* Quantizers for tests (ggml's round-to-nearest rules: Q8_0 d = amax/127, q = round(x/d);
 * Q4_0 d = max/-8 with max the signed value of largest magnitude, q = min(15, (int)(x/d + 8.5));
 * F16 round-to-nearest-even), i.e. engine/formats/quant.c's, by weight type. dst holds
 * vklm_dtype_bytes(t, N, K) bytes. */
void vklm_q_quantize(vklm_dtype t, const float *src /* (N,K) */, void *dst, uint32_t N,
                     uint32_t K);

#endif

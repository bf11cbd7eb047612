/* Tensor views and the tensor-level ops (VKLM_TEST_GPU): the view helpers (sizes, bytes,
 * contiguity, row slices, 2-D views, dtype sizes); vklm_nn_matmul on strided views with element
 * offsets (column blocks of wider matrices, both transposes, beta accumulation) against the C
 * GEMM reference; vklm_nn_linear writing a column block of a wider output; and
 * vklm_nn_cross_entropy / vklm_nn_segment_dot through views. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/nn.h"
#include "ops/ops.h"
#include "testutil.h"

static void test_views(vt_env *env) {
  vklm_buffer b = {NULL, 0, 4096};
  vklm_tensor t = vklm_tensor_3d(b, VKLM_DTYPE_F32, 4, 5, 6);
  vt_expect(env, vklm_tensor_numel(&t) == 120 && vklm_tensor_nbytes(&t) == 480 &&
                     vklm_tensor_is_contiguous(&t) && t.stride[0] == 30 && t.stride[2] == 1,
            "a (4,5,6) f32 view: 120 elements, 480 bytes, strides 30,6,1");
  vklm_tensor r = vklm_tensor_rows(t, 1, 2);
  vt_expect(env, r.offset == 30 && r.shape[0] == 2 && vklm_tensor_numel(&r) == 60,
            "rows [1,3): offset 30, 60 elements");
  vklm_tensor c = vklm_tensor_2d(b, VKLM_DTYPE_F32, 3, 10);
  c.shape[1] = 4, c.offset = 5; /* columns [5,9) of a (3,10) matrix */
  vt_expect(env, !vklm_tensor_is_contiguous(&c) && vklm_tensor_nbytes(&c) == (2 * 10 + 4) * 4,
            "a column block is strided; its bytes span first to last element");
  vklm_tensor q = vklm_tensor_2d(b, VKLM_DTYPE_Q4_0, 8, 64);
  vt_expect(env, vklm_tensor_nbytes(&q) == 8 * 2 * 18 && vklm_dtype_is_block(q.dtype) &&
                     !strcmp(vklm_dtype_name(VKLM_DTYPE_BF16), "bf16") &&
                     vklm_dtype_bytes(VKLM_DTYPE_Q8_0, 2, 64) == 4 * 34,
            "block types: a (8,64) q4_0 matrix is 288 bytes; q8_0 (2,64) 136; names");
  vklm_tensor v = vklm_tensor_view_2d(t, 20, 6);
  char d[96];
  vt_expect(env, v.shape[0] == 20 && v.shape[1] == 6 &&
                     !strcmp(vklm_tensor_describe(&v, d, sizeof d), "f32 (20,6)"),
            "a contiguous view reshaped to (20,6): %s", d);
}

/* c[:, c0:c0+N] (+)= op(a) @ op(b), the operands column blocks of wider matrices. */
static void test_matmul(vt_env *env, int ta, int tb, float beta) {
  uint32_t M = 37, N = 29, K = 45, W = 64; /* every operand lives in a (rows, 64) matrix */
  uint32_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  float *A = vt_randf((size_t)ar * W, 1, -1, 1), *Bm = vt_randf((size_t)br * W, 2, -1, 1);
  float *Cm = vt_randf((size_t)M * W, 3, -1, 1);
  uint32_t oa = 3, ob = 11, oc = 7;
  vklm_buffer ga = vt_upload(env, A, (size_t)ar * W * 4), gb = vt_upload(env, Bm, (size_t)br * W * 4);
  vklm_buffer gc = vt_upload(env, Cm, (size_t)M * W * 4);
  vklm_tensor a = vklm_tensor_2d(ga, VKLM_DTYPE_F32, ar, W), b = vklm_tensor_2d(gb, VKLM_DTYPE_F32, br, W);
  vklm_tensor c = vklm_tensor_2d(gc, VKLM_DTYPE_F32, M, W);
  a.shape[1] = ac, a.offset = oa;
  b.shape[1] = bc, b.offset = ob;
  c.shape[1] = N, c.offset = oc;
  vt_begin(env);
  vt_ok(env, vklm_nn_matmul(env->cmd, c, a, ta, b, tb, 1.0f, beta), "nn_matmul");
  vt_run(env);
  float *got = vt_download(env, gc, (size_t)M * W), *want = vt_copy(Cm, (size_t)M * W);
  vklm_gemm g = vklm_gemm_make(M, N, K);
  g.trans_a = ta, g.trans_b = tb, g.beta = beta;
  g.lda = W, g.ldb = W, g.ldc = W, g.off_a = oa, g.off_b = ob, g.off_c = oc;
  vklm_gemm_ref(want, A, 0, Bm, 0, &g);
  char what[128];
  snprintf(what, sizeof what, "nn_matmul on strided views (trans %d%d, beta %g), whole (M,64) C",
           ta, tb, beta);
  vt_compare(env, what, got, want, (size_t)M * W, 1e-4);
  free(A), free(Bm), free(Cm), free(got), free(want);
}

/* linear into the column block [v0, v0+N) of a (M, 50) output, with a bias. */
static void test_linear_block(vt_env *env) {
  uint32_t M = 13, K = 32, N = 17, W = 50, v0 = 20;
  float *x = vt_randf((size_t)M * K, 4, -1, 1), *w = vt_randf((size_t)N * K, 5, -1, 1);
  float *bias = vt_randf(N, 6, -1, 1), *out = vt_zeros((size_t)M * W);
  for (size_t i = 0; i < (size_t)M * W; i++) out[i] = 7.0f; /* outside the block: untouched */
  vklm_buffer gx = vt_upload(env, x, (size_t)M * K * 4), gw = vt_upload(env, w, (size_t)N * K * 4);
  vklm_buffer gbias = vt_upload(env, bias, N * 4), go = vt_upload(env, out, (size_t)M * W * 4);
  vklm_tensor o = vklm_tensor_2d(go, VKLM_DTYPE_F32, M, W);
  o.shape[1] = N, o.offset = v0;
  for (int rows = 0; rows < 2; rows++) { /* 13 rows: the tiled GEMM; 3 rows: the matvec */
    uint32_t m = rows ? 3 : M;
    vt_begin(env);
    vt_ok(env, vklm_nn_linear(env->cmd, vklm_tensor_rows(o, 0, m),
                              vklm_tensor_2d(gx, VKLM_DTYPE_F32, m, K),
                              vklm_tensor_2d(gw, VKLM_DTYPE_F32, N, K),
                              vklm_tensor_1d(gbias, VKLM_DTYPE_F32, N)),
          "nn_linear");
    vt_run(env);
  }
  float *got = vt_download(env, go, (size_t)M * W), *blk = vt_zeros((size_t)M * N);
  vklm_linear_forward_ref(blk, x, w, VKLM_DTYPE_F32, bias, M, K, N);
  float *want = vt_copy(out, (size_t)M * W);
  for (uint32_t r = 0; r < M; r++) memcpy(want + (size_t)r * W + v0, blk + (size_t)r * N, N * 4);
  vt_compare(env, "nn_linear into a column block of a wider output (tiled and matvec)", got, want,
             (size_t)M * W, 1e-4);
  free(x), free(w), free(bias), free(out), free(got), free(blk), free(want);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_ops_tensor");
  test_views(&env);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) test_matmul(&env, ta, tb, ta == tb ? 0.0f : 1.0f);
  test_linear_block(&env);
  return vt_finish(&env);
}

/* Inference tests (VKLM_TEST_GPU): the decode-attention kernel against its C reference at
 * awkward sizes (HS 5..256, caches longer than a workgroup's key tile, GQA); the cache append,
 * RoPE-from-table and position kernels through the whole KV-cache path: its logits at every
 * position equal the training model's full-sequence forward (vklm_model_forward) within 1e-4,
 * for GPT-2 and Llama tiny configs, with prefill in one pass, in chunks, and token by token;
 * greedy generation of 32 tokens equals greedy decoding by repeated full forwards; a full
 * context is a clear error; the GPU argmax; and the host sampler's top-k / top-p / min-p /
 * repetition-penalty semantics on crafted logits and its seed determinism. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer.h"
#include "ops/ops.h"
#include "infer/sample.h"
#include "ops/quant.h"
#include "model/model.h"
#include "testutil.h"

/* The decode-attention kernel on rows of several sequences: n query rows, row i of slot
 * (i % S) at position pos0 + i / S (the rows of one sequence consecutive positions), against a
 * cache of S slots of maxT rows, in fp32 and fp16 (the reference reads the fp16-rounded cache). */
static void test_attention(vt_env *env, uint32_t NH, uint32_t NKV, uint32_t HS, uint32_t pos0,
                           uint32_t n, uint32_t extra_q, uint32_t splits, uint32_t S, int f16) {
  uint32_t maxT = pos0 + n + 3, QS = NH * HS + extra_q;
  size_t kvn = (size_t)S * maxT * NKV * HS;
  float *q = vt_randf((size_t)n * QS, 1 + HS, -1, 1);
  float *kc = vt_randf(kvn, 2 + pos0, -1, 1);
  float *vc = vt_randf(kvn, 3 + n, -0.5f, 1.5f); /* mean 0.5: outputs without cancellation */
  uint32_t *rows = malloc(sizeof(uint32_t) * 2 * n);
  for (uint32_t i = 0; i < n; i++) rows[2 * i] = pos0 + i / S, rows[2 * i + 1] = i % S;
  vklm_buffer bk = vt_upload_cache(env, kc, kvn, f16), bv = vt_upload_cache(env, vc, kvn, f16);
  float *want = vt_zeros((size_t)n * NH * HS);
  vklm_attention_decode_ref(want, q, kc, vc, rows, n, NH, NKV, HS, QS, maxT);
  vklm_buffer bq = vt_upload(env, q, (size_t)n * QS * 4), bi = vt_upload(env, rows, n * 8);
  vklm_buffer bo = vt_alloc(env, (size_t)n * NH * HS * 4);
  uint64_t sb = vklm_attention_decode_scratch_bytes(n, NH, HS, splits);
  vklm_buffer bs = sb ? vt_alloc(env, sb) : (vklm_buffer){0};
  vt_begin(env);
  vt_ok(env, vklm_attention_decode(env->cmd, bo, bs, bq, bk, bv,
                                   f16 ? VKLM_DTYPE_F16 : VKLM_DTYPE_F32, bi, n, NH, NKV, HS, QS,
                                   S, maxT, splits),
        "decode");
  vt_run(env);
  float *got = vt_download(env, bo, (size_t)n * NH * HS);
  char what[160];
  snprintf(what, sizeof what, "attention_decode %s NH=%u NKV=%u HS=%u pos0=%u n=%u S=%u splits=%u",
           f16 ? "f16" : "f32", NH, NKV, HS, pos0, n, S, splits);
  vt_compare(env, what, got, want, (size_t)n * NH * HS, 1e-4);
  free(q), free(kc), free(vc), free(want), free(got), free(rows);
}

static void test_argmax(vt_env *env) {
  uint32_t V = 1001;
  float *x = vt_randf(V, 7, -3, 3);
  x[517] = 9.0f, x[900] = 9.0f; /* a tie: the lower index wins */
  vklm_buffer bx = vt_upload(env, x, V * 4), bo = vt_alloc(env, 4);
  vt_begin(env);
  vt_ok(env, vklm_argmax(env->cmd, bo, bx, 1, V), "argmax");
  vt_run(env);
  uint32_t got;
  vt_ok(env, vklm_buffer_download(env->ctx, bo, 0, &got, 4), "download");
  vt_expect(env, got == 517 && vklm_argmax_ref(x, V) == 517, "argmax with a tie: %u (want 517)",
            got);
  free(x);
}

static vklm_model_config tiny(vklm_arch arch) {
  vklm_model_config c = {arch, 71, 40, 2, 4, arch == VKLM_ARCH_LLAMA ? 2 : 4, 32,
                         arch == VKLM_ARCH_LLAMA ? 56 : 128, 1e-5f, 10000.0f,
                         arch == VKLM_ARCH_GPT2};
  return c;
}

typedef struct flat {
  const float *p;
} flat;
static vklm_status flat_get(void *user, const vklm_param_info *info, vklm_model_tensor *out,
                            char *err, size_t errlen) {
  (void)err, (void)errlen;
  out->data = ((flat *)user)->p + info->offset;
  out->dtype = VKLM_DTYPE_F32;
  return VKLM_OK;
}

static int g_kv_type = VKLM_DTYPE_F32 + 1; /* the cache type sessions of the parity tests use */

static vklm_infer *session(vt_env *env, const vklm_model_config *cfg, uint32_t n_ctx,
                           uint32_t prows, uint64_t max_tensor_bytes, uint32_t dsplits,
                           const float *params) {
  flat f = {params};
  vklm_infer *s = NULL;
  char err[512] = "";
  vklm_infer_options o = {.prefill_rows = prows, .max_tensor_bytes = max_tensor_bytes,
                          .decode_splits = dsplits, .kv_type = g_kv_type,
                          .weight_type = VKLM_DTYPE_F32 + 1};
  vklm_status st = vklm_infer_create(env->ctx, cfg, n_ctx, &o, flat_get, &f, &s, err, sizeof err);
  if (st) printf("  %s\n", err);
  vt_ok(env, st, "vklm_infer_create");
  return s;
}

#define SOK(s, call)                                                                               \
  vt_ok(env, (call) == VKLM_OK ? VKLM_OK : (printf("  %s\n", vklm_infer_error(s)), VKLM_ERROR_INVALID), #call)

/* Full forward logits (T,V) of tokens (T) with the training model. */
static float *full_logits(vt_env *env, vklm_model *m, const int32_t *tok, uint32_t T, uint32_t V) {
  float loss, *lg = malloc(sizeof(float) * T * V);
  vt_ok(env, vklm_model_forward(m, tok, NULL, &loss), "model_forward");
  vt_ok(env, vklm_model_get_logits(m, lg), "model_get_logits");
  return lg;
}

static void test_parity(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  const char *tag = arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama";
  uint32_t T = 37, V = cfg.vocab_size;
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create(env->ctx, &cfg, 1, T, VKLM_OBJ_CAUSAL, &m), "model_create");
  vt_ok(env, vklm_model_init(m, 1234), "model_init");
  float *params = malloc(sizeof(float) * vklm_model_num_params(m));
  vt_ok(env, vklm_model_get_params(m, params), "get_params");
  int *r = vt_randi(T, 99, 0, (int)V);
  int32_t tok[64];
  for (uint32_t i = 0; i < T; i++) tok[i] = r[i];
  free(r);
  float *want = full_logits(env, m, tok, T, V);
  float *got = malloc(sizeof(float) * T * V);
  char what[160];
  /* (prefill of p0 tokens in passes of prows, then decode) for a few splits; the second also
   * splits the vocabulary matrices into row chunks of 64 rows (71 = 64 + 7) */
  uint32_t splits[3][2] = {{1, 0}, {11, 4}, {T, 0}};
  for (int k = 0; k < 3; k++) {
    uint32_t p0 = splits[k][0];
    uint64_t mtb = k == 1 ? 64ull * cfg.n_embd * 4 : 0;
    vklm_infer *s = session(env, &cfg, T, splits[k][1], mtb, k == 0 ? 3 : 1, params);
    SOK(s, vklm_infer_prefill(s, tok, p0, got + (size_t)(p0 - 1) * V, NULL));
    for (uint32_t t = p0; t < T; t++)
      SOK(s, vklm_infer_decode(s, tok[t], got + (size_t)t * V, NULL));
    uint32_t lo = p0 - 1;
    snprintf(what, sizeof what,
             "%s KV-cache logits, prefill %u (passes of %u%s) + %u decode steps%s", tag, p0,
             splits[k][1] ? splits[k][1] : 256, mtb ? ", vocab in 2 chunks" : "", T - p0,
             k == 0 ? " (3-way split-K)" : "");
    vt_compare(env, what, got + (size_t)lo * V, want + (size_t)lo * V, (size_t)(T - lo) * V,
               1e-4);
    /* a full context is a clear error */
    if (p0 == T) {
      float dummy[128];
      vklm_status st = vklm_infer_decode(s, tok[0], dummy, NULL);
      vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_infer_error(s), "context"),
                "%s: decoding past the context fails: %s", tag, vklm_infer_error(s));
    }
    vklm_infer_destroy(s);
  }

  /* greedy: 32 new tokens after a 3-token prompt, vs argmax of repeated full forwards */
  uint32_t P = 3, N = 32;
  int32_t seq[64], ref[64];
  memcpy(seq, tok, P * 4);
  memcpy(ref, tok, P * 4);
  vklm_infer *s = session(env, &cfg, T, 0, 0, 0, params);
  int32_t next;
  SOK(s, vklm_infer_prefill(s, seq, P, NULL, &next));
  for (uint32_t i = 0; i < N; i++) {
    seq[P + i] = next;
    if (i + 1 < N) SOK(s, vklm_infer_decode(s, next, NULL, &next));
  }
  int same = 1;
  for (uint32_t i = 0; i < N; i++) {
    float *lg = full_logits(env, m, ref, T, V); /* positions past P+i are padding: causal */
    ref[P + i] = (int32_t)vklm_argmax_ref(lg + (size_t)(P + i - 1) * V, V);
    free(lg);
    if (ref[P + i] != seq[P + i]) same = 0;
  }
  vt_expect(env, same, "%s greedy: 32 tokens from the KV cache equal 32 full-forward argmaxes", tag);
  vklm_infer_destroy(s);
  vklm_model_destroy(m);
  free(params), free(want), free(got);
}

/* Typed weights through the tensor callback: every linear weight as F16 (and Q8_0 where K is a
 * multiple of 32) gives the logits of an fp32 session over the dequantized values. */
typedef struct typed {
  const float *p;                 /* fp32 params */
  uint8_t *q[64];                 /* quantized copies, by table index */
  vklm_dtype t[64];
  const vklm_param_info *tab;
  uint32_t n;
} typed;
static vklm_status typed_get(void *user, const vklm_param_info *info, vklm_model_tensor *out,
                             char *err, size_t errlen) {
  (void)err, (void)errlen;
  typed *ty = user;
  for (uint32_t i = 0; i < ty->n; i++)
    if (ty->tab[i].offset == info->offset && ty->q[i]) {
      out->data = ty->q[i];
      out->dtype = ty->t[i];
      return VKLM_OK;
    }
  out->data = ty->p + info->offset;
  out->dtype = VKLM_DTYPE_F32;
  return VKLM_OK;
}

static void test_typed(vt_env *env) {
  vklm_model_config cfg = tiny(VKLM_ARCH_LLAMA);
  cfg.tie_embeddings = 0;
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create(env->ctx, &cfg, 1, 8, VKLM_OBJ_CAUSAL, &m), "model_create");
  vt_ok(env, vklm_model_init(m, 77), "model_init");
  uint64_t np = vklm_model_num_params(m);
  float *p = malloc(sizeof(float) * np), *deq = malloc(sizeof(float) * np);
  vt_ok(env, vklm_model_get_params(m, p), "get_params");
  memcpy(deq, p, sizeof(float) * np);
  typed ty = {p, {0}, {0}, NULL, vklm_model_param_count(m)};
  vklm_param_info tab[64];
  for (uint32_t i = 0; i < ty.n && i < 64; i++) {
    tab[i] = *vklm_model_param(m, i);
    const vklm_param_info *pi = &tab[i];
    int lin = pi->ndim == 2 && strcmp(pi->name, "wte.weight") != 0;
    if (!lin) continue;
    uint32_t N = pi->shape[0], K = pi->shape[1];
    ty.t[i] = K % 32 == 0 && strstr(pi->name, "qkv") ? VKLM_DTYPE_Q8_0 : VKLM_DTYPE_F16;
    ty.q[i] = malloc(vklm_dtype_bytes(ty.t[i], N, K));
    vklm_q_quantize(ty.t[i], p + pi->offset, ty.q[i], N, K);
    for (uint32_t r = 0; r < N; r++)
      vklm_weight_dequant_row_ref(ty.t[i], ty.q[i], r, K, deq + pi->offset + (uint64_t)r * K);
  }
  ty.tab = tab;
  int32_t tok[8] = {3, 70, 12, 0, 44, 9, 9, 31};
  uint32_t V = cfg.vocab_size;
  float *a = malloc(sizeof(float) * 8 * V), *b = malloc(sizeof(float) * 8 * V);
  char err[512] = "";
  vklm_infer *sq = NULL, *sf = session(env, &cfg, 8, 0, 0, 2, deq);
  vklm_infer_options to = {.kv_type = g_kv_type};
  vklm_status st = vklm_infer_create(env->ctx, &cfg, 8, &to, typed_get, &ty, &sq, err, sizeof err);
  if (st) printf("  %s\n", err);
  vt_ok(env, st, "vklm_infer_create (typed)");
  SOK(sq, vklm_infer_prefill(sq, tok, 4, a + 3 * V, NULL));
  SOK(sf, vklm_infer_prefill(sf, tok, 4, b + 3 * V, NULL));
  for (uint32_t t = 4; t < 8; t++) {
    SOK(sq, vklm_infer_decode(sq, tok[t], a + t * V, NULL));
    SOK(sf, vklm_infer_decode(sf, tok[t], b + t * V, NULL));
  }
  vt_compare(env, "llama with Q8_0 qkv + F16 linear weights vs fp32 of the same values",
             a + 3 * V, b + 3 * V, 5 * V, 1e-4);
  vklm_infer_destroy(sq);
  vklm_infer_destroy(sf);
  vklm_model_destroy(m);
  for (uint32_t i = 0; i < 64; i++) free(ty.q[i]);
  free(p), free(deq), free(a), free(b);
}

/* Batched generation: 16 sequences of different prompt lengths decoded together (with a
 * sequence joining mid-way, its prefill riding along with the others' decode, and sequences
 * leaving when done) give each exactly the greedy tokens it gets decoded alone, and logits equal
 * to the lone session's. Also the fp16 cache against the fp32 one. */
static void test_batched(vt_env *env, vklm_arch arch, int kv_type) {
  vklm_model_config cfg = tiny(arch);
  const char *tag = arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama";
  uint32_t V = cfg.vocab_size, NS = 16, N = 12, n_ctx = 40;
  vklm_model *m = NULL;
  vklm_model_options mo = {.frozen = 1};
  vt_ok(env, vklm_model_create_ex(env->ctx, &cfg, 0, 0, VKLM_OBJ_CAUSAL, &mo, &m), "frozen model");
  vklm_model_destroy(m);
  vt_ok(env, vklm_model_create(env->ctx, &cfg, 1, 8, VKLM_OBJ_CAUSAL, &m), "model_create");
  vt_ok(env, vklm_model_init(m, 4321), "model_init");
  char err[512] = "";
  vklm_infer_options bo = {.n_seq = NS, .prefill_rows = 24, .kv_type = kv_type};
  vklm_infer *b = NULL, *one = NULL;
  vklm_status st = vklm_infer_create_for(m, n_ctx, &bo, &b, err, sizeof err);
  if (st) printf("  %s\n", err);
  vt_ok(env, st, "infer_create_for (16 sequences)");
  vklm_infer_options oo = {.kv_type = kv_type};
  st = vklm_infer_create_for(m, n_ctx, &oo, &one, err, sizeof err);
  vt_ok(env, st, "infer_create_for (one)");
  int32_t prompt[16][20], alone[16][16], got[16][16];
  uint32_t plen[16];
  for (uint32_t q = 0; q < NS; q++) {
    plen[q] = 1 + (q * 7) % 19; /* 1 .. 19 tokens */
    int *r = vt_randi(plen[q], 500 + q, 0, (int)V);
    for (uint32_t i = 0; i < plen[q]; i++) prompt[q][i] = r[i];
    free(r);
  }
  /* each alone */
  float *lone_lg = malloc(sizeof(float) * NS * N * V), *bat_lg = malloc(sizeof(float) * NS * N * V);
  for (uint32_t q = 0; q < NS; q++) {
    vklm_infer_rewind(one, 0);
    int32_t next;
    SOK(one, vklm_infer_prefill(one, prompt[q], plen[q], lone_lg + ((size_t)q * N) * V, &next));
    for (uint32_t i = 0; i < N; i++) {
      alone[q][i] = next;
      if (i + 1 < N)
        SOK(one, vklm_infer_decode(one, next, lone_lg + ((size_t)q * N + i + 1) * V, &next));
    }
  }
  /* together: sequence 5 joins at step 3; every sequence leaves after its N tokens */
  int slot[16], done[16] = {0}, started[16] = {0};
  uint32_t made[16] = {0};
  for (uint32_t q = 0; q < NS; q++) slot[q] = -1;
  vklm_infer_seq_close(b, 0); /* slot 0 starts open for the single-sequence calls */
  for (uint32_t stepi = 0, live = 1; live; stepi++) {
    vklm_infer_req reqs[16];
    uint32_t who[16], cnt = 0;
    live = 0;
    for (uint32_t q = 0; q < NS; q++) {
      if (done[q] || (q == 5 && stepi < 3)) {
        live |= !done[q];
        continue;
      }
      live = 1;
      if (!started[q]) {
        slot[q] = vklm_infer_seq_open(b);
        started[q] = 1;
        reqs[cnt] = (vklm_infer_req){.slot = (uint32_t)slot[q], .tokens = prompt[q], .n = plen[q],
                                     .want = 1};
      } else {
        reqs[cnt] = (vklm_infer_req){.slot = (uint32_t)slot[q], .tokens = &got[q][made[q] - 1],
                                     .n = 1, .want = 1};
      }
      who[cnt++] = q;
    }
    if (!cnt) break;
    int32_t next[16];
    float *lg = malloc(sizeof(float) * cnt * V);
    SOK(b, vklm_infer_step(b, reqs, cnt, next, lg));
    for (uint32_t i = 0; i < cnt; i++) {
      uint32_t q = who[i];
      memcpy(bat_lg + ((size_t)q * N + made[q]) * V, lg + (size_t)i * V, sizeof(float) * V);
      got[q][made[q]++] = next[i];
      if (made[q] == N) {
        done[q] = 1;
        vklm_infer_seq_close(b, (uint32_t)slot[q]);
      }
    }
    free(lg);
  }
  int same = 1;
  for (uint32_t q = 0; q < NS; q++)
    for (uint32_t i = 0; i < N; i++) same &= got[q][i] == alone[q][i];
  vt_expect(env, same, "%s %s cache: 16 sequences of 1..19 prompt tokens decoded together (one "
            "joining late) each get the %u greedy tokens they get alone", tag,
            kv_type == VKLM_DTYPE_F16 + 1 ? "f16" : "f32", N);
  char what[160];
  snprintf(what, sizeof what, "%s %s cache: batched logits vs alone (16 x %u rows)", tag,
           kv_type == VKLM_DTYPE_F16 + 1 ? "f16" : "f32", N);
  vt_compare(env, what, bat_lg, lone_lg, (size_t)NS * N * V, 1e-4);
  /* a slot cannot be used twice in a step, nor past its context */
  vklm_infer_req twice[2] = {{.slot = 0, .tokens = prompt[0], .n = 1},
                             {.slot = 0, .tokens = prompt[0], .n = 1}};
  vklm_infer_seq_open(b);
  st = vklm_infer_step(b, twice, 2, NULL, NULL);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_infer_error(b), "twice"),
            "a slot twice in one step is refused: %s", vklm_infer_error(b));
  vklm_infer_destroy(b);
  vklm_infer_destroy(one);
  vklm_model_destroy(m);
  free(lone_lg), free(bat_lg);
}

/* The fp16 cache against the fp32 one: the same prompt's logits over 30 positions. */
static void test_kv_f16(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  uint32_t V = cfg.vocab_size, T = 30;
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create(env->ctx, &cfg, 1, 8, VKLM_OBJ_CAUSAL, &m), "model_create");
  vt_ok(env, vklm_model_init(m, 99), "model_init");
  float *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
  int *r = vt_randi(T, 7, 0, (int)V);
  int32_t tok[30];
  for (uint32_t i = 0; i < T; i++) tok[i] = r[i];
  free(r);
  for (int h = 0; h < 2; h++) {
    vklm_infer *s = NULL;
    char err[512];
    vklm_infer_options o = {.kv_type = h ? VKLM_DTYPE_F16 + 1 : VKLM_DTYPE_F32 + 1};
    vt_ok(env, vklm_infer_create_for(m, T, &o, &s, err, sizeof err), "infer_create_for");
    float *lg = h ? b : a;
    SOK(s, vklm_infer_prefill(s, tok, 1, lg, NULL));
    for (uint32_t t = 1; t < T; t++) SOK(s, vklm_infer_decode(s, tok[t], lg + (size_t)t * V, NULL));
    vt_expect(env, vklm_infer_kv_dtype(s) == (h ? VKLM_DTYPE_F16 : VKLM_DTYPE_F32),
              "the session's cache is %s", h ? "f16" : "f32");
    vklm_infer_destroy(s);
  }
  char what[128];
  snprintf(what, sizeof what, "%s fp16 KV cache vs fp32 (logits at 30 positions)",
           arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama");
  vt_compare(env, what, b, a, (size_t)T * V, 2e-2);
  vklm_model_destroy(m);
  free(a), free(b);
}

/* fp16 weights converted on load (weight_type): every linear weight (and an untied head) held
 * as F16 on the device; the logits of a 16-token prefill (its last row: the GEMMs) and of 14
 * decode steps (the matrix-vector kernels) close to the fp32 session's;
 * the automatic choice is fp32 with CPU-type kernels and fp16 with GPU ones. */
static void test_weights_f16(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  uint32_t V = cfg.vocab_size, T = 30;
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create(env->ctx, &cfg, 1, 8, VKLM_OBJ_CAUSAL, &m), "model_create");
  vt_ok(env, vklm_model_init(m, 77), "model_init");
  float *params = malloc(sizeof(float) * vklm_model_num_params(m));
  vt_ok(env, vklm_model_get_params(m, params), "get_params");
  const uint32_t PF = 16;
  float *a = calloc((size_t)T * V, sizeof(float)), *b = calloc((size_t)T * V, sizeof(float));
  int *r = vt_randi(T, 8, 0, (int)V);
  int32_t tok[30];
  for (uint32_t i = 0; i < T; i++) tok[i] = r[i];
  free(r);
  flat f = {params};
  for (int h = 0; h < 2; h++) {
    vklm_infer *s = NULL;
    char err[512] = "";
    vklm_infer_options o = {.kv_type = VKLM_DTYPE_F32 + 1,
                            .weight_type = h ? VKLM_DTYPE_F16 + 1 : VKLM_DTYPE_F32 + 1};
    vklm_status st = vklm_infer_create(env->ctx, &cfg, T, &o, flat_get, &f, &s, err, sizeof err);
    if (st) printf("  %s\n", err);
    vt_ok(env, st, "infer_create");
    if (st) break;
    float *lg = h ? b : a;
    SOK(s, vklm_infer_prefill(s, tok, PF, lg + (size_t)(PF - 1) * V, NULL));
    for (uint32_t t = PF; t < T; t++) SOK(s, vklm_infer_decode(s, tok[t], lg + (size_t)t * V, NULL));
    vklm_model *sm = vklm_infer_model(s);
    int linear = 0, half = 0, other = 1;
    for (uint32_t i = 0; i < vklm_model_param_count(sm); i++) {
      const vklm_param_info *p = vklm_model_param(sm, i);
      int lin = p->ndim == 2 && strstr(p->name, "weight") && !strstr(p->name, "wte") &&
                !strstr(p->name, "wpe");
      linear += lin;
      half += lin && vklm_model_param_dtype(sm, i) == VKLM_DTYPE_F16;
      if (!lin) other &= vklm_model_param_dtype(sm, i) == VKLM_DTYPE_F32;
    }
    vt_expect(env, linear > 0 && half == (h ? linear : 0) && other,
              "%s weight_type %s: %d of %d linear weights held in f16, the rest f32",
              arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", h ? "f16" : "f32", half, linear);
    vklm_infer_destroy(s);
  }
  size_t at = (size_t)(PF - 1) * V, nv = (size_t)(T - PF + 1) * V;
  double e = vt_rel_norm(b + at, a + at, nv), e0 = vt_rel_norm(b + at, a + at, V);
  vt_expect(env, e <= 2e-3 && e0 <= 2e-3, "%s fp16 weights vs fp32: logits of the prefill's last "
            "row %.2e and of it and 14 decode steps %.2e, norm-relative (tol 2e-3)",
            arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", e0, e);
  vklm_context_set_kernels(env->ctx, VKLM_KERNELS_CPU);
  vklm_dtype dc = vklm_infer_weight_dtype(env->ctx, NULL);
  vklm_context_set_kernels(env->ctx, VKLM_KERNELS_GPU);
  vklm_dtype dg = vklm_infer_weight_dtype(env->ctx, NULL);
  vklm_context_set_kernels(env->ctx, VKLM_KERNELS_AUTO);
  vt_expect(env, dc == VKLM_DTYPE_F32 && dg == VKLM_DTYPE_F16,
            "automatic weight type: %s with CPU-type kernels, %s with GPU ones",
            vklm_dtype_name(dc), vklm_dtype_name(dg));
  vklm_model_destroy(m);
  free(a), free(b), free(params);
}

/* A session borrowing a trainable model's weights sees every update with nothing copied: after
 * an AdamW step its logits equal the updated model's full forward. */
static void test_borrow(vt_env *env) {
  vklm_model_config cfg = tiny(VKLM_ARCH_LLAMA);
  uint32_t V = cfg.vocab_size, T = 9;
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create(env->ctx, &cfg, 1, T, VKLM_OBJ_CAUSAL, &m), "model_create");
  vt_ok(env, vklm_model_init(m, 5), "model_init");
  vklm_infer *s = NULL;
  char err[512];
  vklm_infer_options o = {.kv_type = VKLM_DTYPE_F32 + 1};
  vt_ok(env, vklm_infer_create_for(m, T, &o, &s, err, sizeof err), "infer_create_for");
  int32_t tok[9] = {1, 5, 9, 33, 2, 70, 11, 0, 4}, tg[9];
  for (uint32_t i = 0; i < T; i++) tg[i] = tok[(i + 1) % T];
  float *before = malloc(sizeof(float) * V), *after = malloc(sizeof(float) * V);
  SOK(s, vklm_infer_prefill(s, tok, T, before, NULL));
  float loss;
  vt_ok(env, vklm_model_forward_backward(m, tok, tg, 1.0f, &loss), "forward_backward");
  vklm_optim_config oc = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f};
  vt_ok(env, vklm_model_update(m, &oc, 1, NULL), "update");
  vklm_infer_rewind(s, 0);
  SOK(s, vklm_infer_prefill(s, tok, T, after, NULL));
  float *full = full_logits(env, m, tok, T, V);
  double moved = 0;
  for (uint32_t v = 0; v < V; v++) moved += fabs(after[v] - before[v]);
  vt_expect(env, moved > 1e-3, "the borrowed weights moved with the update (sum |dlogit| %.3g)",
            moved);
  vt_compare(env, "session over a trained model's live weights vs its full forward", after,
             full + (size_t)(T - 1) * V, V, 1e-4);
  vklm_infer_destroy(s);
  vklm_model_destroy(m);
  free(before), free(after), free(full);
}

/* Sampling through a batched step: 6 sequences, each with its own sampler settings and seed,
 * sampled on the GPU, choose exactly the ids twin host samplers choose from the same logits. */
static void test_step_sampling(vt_env *env) {
  vklm_model_config cfg = tiny(VKLM_ARCH_LLAMA);
  uint32_t V = cfg.vocab_size, NS = 6, N = 10;
  vklm_model *m = NULL;
  vt_ok(env, vklm_model_create(env->ctx, &cfg, 1, 8, VKLM_OBJ_CAUSAL, &m), "model_create");
  vt_ok(env, vklm_model_init(m, 31), "model_init");
  char err[512];
  vklm_infer_options o = {.n_seq = NS, .kv_type = VKLM_DTYPE_F32 + 1};
  vklm_infer *gs = NULL, *hs = NULL;
  vt_ok(env, vklm_infer_create_for(m, 32, &o, &gs, err, sizeof err), "session (GPU sampling)");
  vt_ok(env, vklm_infer_create_for(m, 32, &o, &hs, err, sizeof err), "session (logits)");
  vklm_sampler *g[6], *h[6];
  for (uint32_t q = 0; q < NS; q++) {
    vklm_sampler_params p;
    vklm_sampler_params_default(&p);
    p.seed = 100 + q;
    p.temp = q == 0 ? 0.0f : 0.5f + 0.3f * q; /* q 0: greedy */
    if (q == 2) p.top_k = 0, p.top_p = 0.9f;
    if (q == 3) p.min_p = 0.2f, p.top_k = 0;
    if (q >= 4) p.repeat_penalty = 1.3f, p.repeat_last_n = 8;
    g[q] = vklm_sampler_create(&p, V);
    h[q] = vklm_sampler_create(&p, V);
  }
  vklm_infer_seq_close(gs, 0), vklm_infer_seq_close(hs, 0);
  int32_t cur[6], gid[6], hid[6];
  float *lg = malloc(sizeof(float) * NS * V);
  int same = 1;
  for (uint32_t q = 0; q < NS; q++) {
    vklm_infer_seq_open(gs), vklm_infer_seq_open(hs);
    cur[q] = (int32_t)(q * 11 % V);
    vklm_sampler_accept(g[q], cur[q]), vklm_sampler_accept(h[q], cur[q]);
  }
  for (uint32_t i = 0; i < N; i++) {
    vklm_infer_req rg[6], rh[6];
    for (uint32_t q = 0; q < NS; q++) {
      rg[q] = (vklm_infer_req){.slot = q, .tokens = &cur[q], .n = 1, .want = 1, .sampler = g[q]};
      rh[q] = (vklm_infer_req){.slot = q, .tokens = &cur[q], .n = 1, .want = 1};
    }
    SOK(gs, vklm_infer_step(gs, rg, NS, gid, NULL));
    SOK(hs, vklm_infer_step(hs, rh, NS, hid, lg));
    for (uint32_t q = 0; q < NS; q++) {
      hid[q] = vklm_sampler_sample(h[q], lg + (size_t)q * V);
      same &= hid[q] == gid[q];
      cur[q] = gid[q];
      vklm_sampler_accept(g[q], cur[q]), vklm_sampler_accept(h[q], cur[q]);
    }
  }
  vt_expect(env, same, "6 sequences with their own sampler settings and seeds: %u GPU-sampled "
            "steps choose the host samplers' ids", N);
  for (uint32_t q = 0; q < NS; q++) vklm_sampler_destroy(g[q]), vklm_sampler_destroy(h[q]);
  vklm_infer_destroy(gs);
  vklm_infer_destroy(hs);
  vklm_model_destroy(m);
  free(lg);
}

static void test_sampler(vt_env *env) {
  float lg[6], pr[6];
  vklm_sampler_params p;
  vklm_sampler_params_default(&p);
  p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f, p.temp = 1.0f;
  const float base[6] = {2.0f, 1.0f, 0.5f, -1.0f, 3.0f, 0.0f};

  /* top-k 2: only the two largest logits (ids 4 and 0), renormalised */
  p.top_k = 2;
  vklm_sampler *s = vklm_sampler_create(&p, 6);
  memcpy(lg, base, sizeof lg);
  vklm_sampler_probs(s, lg, pr);
  double e = exp(1.0);
  vt_expect(env, fabsf(pr[4] - (float)(e / (e + 1))) < 1e-6f && pr[1] == 0 && pr[5] == 0,
            "top-k 2 keeps ids 4 and 0: p4=%.6f", pr[4]);
  vklm_sampler_destroy(s);

  /* top-p: probabilities at T=1 of the sorted logits 3,2,1,0.5,0,-1 */
  double z = exp(3) + exp(2) + exp(1) + exp(0.5) + exp(0) + exp(-1);
  double p4 = exp(3) / z, p0 = exp(2) / z;
  p.top_k = 0;
  p.top_p = (float)(p4 + 0.5 * p0); /* needs the second token to reach it */
  s = vklm_sampler_create(&p, 6);
  memcpy(lg, base, sizeof lg);
  vklm_sampler_probs(s, lg, pr);
  vt_expect(env, pr[4] > 0 && pr[0] > 0 && pr[1] == 0, "top-p %.3f keeps exactly 2 tokens",
            p.top_p);
  vklm_sampler_destroy(s);

  /* min-p: keep tokens with p >= min_p * p_max: exp(l - 3) >= 0.3 -> l >= 3 + ln 0.3 = 1.80 */
  p.top_p = 1.0f, p.min_p = 0.3f;
  s = vklm_sampler_create(&p, 6);
  memcpy(lg, base, sizeof lg);
  vklm_sampler_probs(s, lg, pr);
  vt_expect(env, pr[4] > 0 && pr[0] > 0 && pr[1] == 0 && pr[2] == 0,
            "min-p 0.3 keeps ids 4 and 0");
  vklm_sampler_destroy(s);

  /* repetition penalty 2 over the history {4, 3, 4}: 3.0 -> 1.5, -1.0 -> -2.0, others kept */
  p.min_p = 0.0f, p.repeat_penalty = 2.0f, p.repeat_last_n = 3, p.temp = 0.0f;
  s = vklm_sampler_create(&p, 6);
  vklm_sampler_accept(s, 1); /* pushed out of the last 3 */
  vklm_sampler_accept(s, 4), vklm_sampler_accept(s, 3), vklm_sampler_accept(s, 4);
  memcpy(lg, base, sizeof lg);
  int32_t t = vklm_sampler_sample(s, lg);
  vt_expect(env, lg[4] == 1.5f && lg[3] == -2.0f && lg[1] == 1.0f && t == 0,
            "penalty: 3 -> %.2f, -1 -> %.2f, id 1 (out of the window) %.2f; greedy picks %d",
            lg[4], lg[3], lg[1], t);
  vklm_sampler_destroy(s);

  /* seed determinism and spread */
  vklm_sampler_params_default(&p);
  p.seed = 42, p.temp = 1.5f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f;
  int32_t a[200], b[200];
  int distinct = 0, seenv[6] = {0};
  for (int rep = 0; rep < 2; rep++) {
    s = vklm_sampler_create(&p, 6);
    for (int i = 0; i < 200; i++) {
      memcpy(lg, base, sizeof lg);
      (rep ? b : a)[i] = vklm_sampler_sample(s, lg);
    }
    vklm_sampler_destroy(s);
  }
  for (int i = 0; i < 200; i++) seenv[a[i]] = 1;
  for (int i = 0; i < 6; i++) distinct += seenv[i];
  vt_expect(env, !memcmp(a, b, sizeof a) && distinct >= 4,
            "seed 42: two runs draw the same 200 tokens (%d distinct ids)", distinct);
}

int main(void) {
  vt_env e, *env = &e;
  vt_init(env, "test_infer");
  int f16 = vklm_context_caps(env->ctx)->storage_16bit;
  for (int h = 0; h <= f16; h++) {
    test_attention(env, 4, 2, 80, 37, 3, 7, 1, 1, h);
    test_attention(env, 3, 1, 5, 0, 1, 0, 1, 1, h);
    test_attention(env, 2, 2, 256, 200, 1, 0, 1, 1, h);
    test_attention(env, 6, 3, 33, 130, 17, 1, 1, 3, h);
    test_attention(env, 4, 4, 16, 0, 29, 0, 1, 4, h);
    /* split-K: slices shorter than a tile, empty slices (S > L), several rows and sequences */
    test_attention(env, 2, 2, 256, 200, 1, 0, 3, 1, h);
    test_attention(env, 4, 2, 80, 300, 1, 5, 7, 2, h);
    test_attention(env, 3, 1, 5, 1, 1, 0, 5, 1, h);
    test_attention(env, 6, 3, 33, 130, 17, 1, 4, 5, h);
    /* grouped-query heads served G at a time (G the largest divisor of NH/NKV up to 8 that
     * fits): groups of 8, 16 (G 8), 12 (G 6) and 7, split and not */
    test_attention(env, 8, 1, 64, 45, 3, 0, 1, 2, h);
    test_attention(env, 16, 1, 24, 70, 2, 3, 1, 1, h);
    test_attention(env, 24, 2, 16, 90, 1, 0, 3, 1, h);
    test_attention(env, 7, 1, 40, 20, 2, 0, 2, 2, h);
  }
  test_argmax(env);
  test_sampler(env);
  test_parity(env, VKLM_ARCH_GPT2);
  test_parity(env, VKLM_ARCH_LLAMA);
  test_typed(env);
  test_batched(env, VKLM_ARCH_GPT2, VKLM_DTYPE_F32 + 1);
  test_batched(env, VKLM_ARCH_LLAMA, f16 ? VKLM_DTYPE_F16 + 1 : VKLM_DTYPE_F32 + 1);
  if (f16) test_kv_f16(env, VKLM_ARCH_GPT2), test_kv_f16(env, VKLM_ARCH_LLAMA);
  test_weights_f16(env, VKLM_ARCH_GPT2);
  test_weights_f16(env, VKLM_ARCH_LLAMA);
  test_borrow(env);
  test_step_sampling(env);
  return vt_finish(env);
}

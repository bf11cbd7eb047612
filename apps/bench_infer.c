/* vklm bench infer: inference throughput of the KV-cache session (engine/infer) — prefill
 * tokens/s (one prompt of P tokens from an empty cache) and decode tokens/s (greedy, the argmax
 * on the GPU, one id read back per token) after prefilling several context lengths; batched
 * decode (--batch 1,4,16: that many sequences, each prefilled with --batch-ctx tokens, advanced
 * together by one step each) as aggregate tokens/s; plus the device memory the session holds
 * (vklm_context_memory_peak of a context used for nothing else).
 *
 * The model: a named preset (vklm_model_config_preset) with random weights, its linear weights
 * stored as --type f32|f16|q8_0|q4_0 (quantized on the host with engine/formats/quant.h, as a
 * GGUF file would hold them), or a model file (-m: a vklm checkpoint, an HF directory /
 * .safetensors or a .gguf, opened as `vklm generate` opens it, quantized weights kept).
 *
 * Random weights: uniform with the model's init std (0.02) for matrices, ones for norm weights,
 * zeros for biases; the values do not matter for timing (greedy decoding feeds each argmax back).
 * A quantized type needs the row length K to be a multiple of 32; a matrix whose K is not (e.g.
 * llama-tiny's MLP down projection, K = 172) is stored as F16 instead, and the table says so. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_util.h"
#include "bench.h"
#include "commands.h"
#include "formats/quant.h"
#include "flags.h"
#include "gen_common.h"
#include "infer/infer.h"
#include "model/model.h"

#define MAX_CTXS 16

/* ---- random weights through vklm_infer_create's tensor callback ---------------------------- */
/* (rnd_src: apps/bench.h; the benchmark card, bench_card.c, uses these functions too) */
static float rnd_uniform(uint64_t *s) { /* [-1, 1) */
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) * (1.0 / 8388608.0) - 1.0);
}

vklm_status rnd_get(void *user, const vklm_param_info *info, vklm_model_tensor *out,
                           char *err, size_t errlen) {
  rnd_src *r = user;
  if (r->nbufs == r->cap) {
    uint32_t cap = r->cap ? 2 * r->cap : 64;
    void **b = realloc(r->bufs, cap * sizeof *b);
    if (!b) goto oom;
    r->bufs = b;
    r->cap = cap;
  }
  uint64_t n = info->count;
  float *f = malloc(n * sizeof(float));
  if (!f) goto oom;
  r->bufs[r->nbufs++] = f;
  int matrix = info->ndim == 2;
  if (matrix) {
    const float a = 0.02f * 1.7320508f; /* uniform [-a, a) has std 0.02 */
    for (uint64_t i = 0; i < n; i++) f[i] = a * rnd_uniform(&r->seed);
  } else {
    float v = strstr(info->name, "bias") ? 0.0f : 1.0f;
    for (uint64_t i = 0; i < n; i++) f[i] = v;
  }
  out->data = f;
  out->dtype = VKLM_DTYPE_F32;
  int linear = matrix && strcmp(info->name, "wte.weight") && strcmp(info->name, "wpe.weight");
  uint32_t N = info->shape[0], K = matrix ? info->shape[1] : 1;
  if (linear && r->type != VKLM_DTYPE_F32) {
    vklm_dtype t = r->type;
    if (t != VKLM_DTYPE_F16 && K % VKLM_QK) t = VKLM_DTYPE_F16, r->fallback++;
    uint32_t gt = t == VKLM_DTYPE_F16 ? VKLM_GGML_TYPE_F16
                  : t == VKLM_DTYPE_Q8_0 ? VKLM_GGML_TYPE_Q8_0 : VKLM_GGML_TYPE_Q4_0;
    void *q = malloc(vklm_dtype_buffer_bytes(t, N, K));
    if (!q) goto oom;
    if (vklm_ggml_from_f32(gt, q, f, n)) {
      free(q);
      snprintf(err, errlen, "cannot convert %s to %s", info->name, vklm_dtype_name(t));
      return VKLM_ERROR_INVALID;
    }
    free(f);
    r->bufs[r->nbufs - 1] = q;
    out->data = q;
    out->dtype = t;
    r->weight_bytes += vklm_dtype_bytes(t, N, K);
  } else {
    r->weight_bytes += n * sizeof(float);
  }
  return VKLM_OK;
oom:
  snprintf(err, errlen, "out of host memory for %s", info->name);
  return VKLM_ERROR_INVALID;
}

void rnd_free(rnd_src *r) {
  for (uint32_t i = 0; i < r->nbufs; i++) free(r->bufs[i]);
  free(r->bufs);
}

/* ---- measurements -------------------------------------------------------------------------- */
typedef struct dec_result {
  uint32_t context; /* tokens in the cache before the first timed decode */
  double tok_s, ms_tok;
  double submits; /* queue submissions per decode step (each a host round trip) */
} dec_result;

static int fail_infer(vklm_infer *s) {
  fprintf(stderr, "vklm bench infer: %s\n", vklm_infer_error(s));
  return -1;
}

/* Prefill of n tokens from an empty cache: warm-up once, then repeated for `seconds` (at least
 * twice); mean seconds per prefill. */
double time_prefill(vklm_infer *s, const int32_t *tok, uint32_t n, double seconds) {
  int32_t next;
  vklm_infer_rewind(s, 0);
  if (vklm_infer_prefill(s, tok, n, NULL, &next)) return fail_infer(s);
  double t0 = gen_now_s(), t = 0;
  int runs = 0;
  while (runs < 2 || t < seconds) {
    vklm_infer_rewind(s, 0);
    if (vklm_infer_prefill(s, tok, n, NULL, &next)) return fail_infer(s);
    runs++;
    t = gen_now_s() - t0;
  }
  return t / runs;
}

/* Decode after a context of ctxlen tokens: prefill them (none for 0), one untimed decode step
 * (warm-up), then nd greedy steps timed. Seconds per token; *submits: queue submissions per
 * token. */
double time_decode(vklm_infer *s, const int32_t *tok, uint32_t ctxlen, uint32_t nd,
                          double *submits) {
  int32_t next = tok[0];
  vklm_context *ctx = vklm_model_context(vklm_infer_model(s));
  vklm_infer_rewind(s, 0);
  if (ctxlen && vklm_infer_prefill(s, tok, ctxlen, NULL, &next)) return fail_infer(s);
  if (vklm_infer_decode(s, next, NULL, &next)) return fail_infer(s);
  uint64_t sub0 = vklm_context_submit_count(ctx);
  double t0 = gen_now_s();
  for (uint32_t i = 0; i < nd; i++)
    if (vklm_infer_decode(s, next, NULL, &next)) return fail_infer(s);
  double t = (gen_now_s() - t0) / nd;
  *submits = (double)(vklm_context_submit_count(ctx) - sub0) / nd;
  return t;
}

/* Batched decode: nb sequences (slots 0..nb-1, all open), each prefilled with the same bctx
 * tokens, then nd steps that advance all of them (one untimed first). Seconds per step. */
double time_batch(vklm_infer *s, const int32_t *tok, uint32_t nb, uint32_t bctx,
                         uint32_t nd) {
  vklm_infer_req r[64];
  int32_t next[64], cur[64];
  for (uint32_t q = 0; q < vklm_infer_slots(s); q++) vklm_infer_seq_close(s, q);
  for (uint32_t q = 0; q < nb; q++) {
    int slot = vklm_infer_seq_open(s);
    r[q] = (vklm_infer_req){.slot = (uint32_t)slot, .tokens = tok + q, .n = bctx, .want = 1};
  }
  if (vklm_infer_step(s, r, nb, next, NULL)) return fail_infer(s);
  double t0 = 0;
  for (uint32_t i = 0; i <= nd; i++) {
    if (i == 1) t0 = gen_now_s();
    for (uint32_t q = 0; q < nb; q++) cur[q] = next[q], r[q].tokens = &cur[q], r[q].n = 1;
    if (vklm_infer_step(s, r, nb, next, NULL)) return fail_infer(s);
  }
  double t = (gen_now_s() - t0) / nd;
  for (uint32_t q = 0; q < vklm_infer_slots(s); q++) vklm_infer_seq_close(s, q);
  vklm_infer_seq_open(s); /* slot 0 again, for the single-sequence calls */
  return t;
}

/* A comma-separated list of integers in [lo, hi] (AF_FN): at most MAX_CTXS. */
typedef struct int_list {
  uint32_t *v;
  int *n;
  uint32_t lo, hi;
} int_list;

static int list_flag(void *p, const char *v, char *err, size_t errlen) {
  int_list *l = p;
  int n = 0;
  for (const char *s = v;; n++) {
    char *end;
    if (*s < '0' || *s > '9' || n == MAX_CTXS) break;
    unsigned long x = strtoul(s, &end, 10);
    if (x < l->lo || x > l->hi) break;
    l->v[n] = (uint32_t)x;
    if (!*end) {
      *l->n = n + 1;
      return 0;
    }
    if (*end != ',') break;
    s = end + 1;
  }
  snprintf(err, errlen, "wants up to %d comma-separated integers in [%u, %u], like 1,4,16; not "
           "'%s'", MAX_CTXS, l->lo, l->hi, v);
  return 1;
}

int bench_infer(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  const char *name = NULL, *file = NULL, *tname = "f32";
  int json = 0, nctx = 0, nbat = 0;
  uint32_t n_ctx = 0, prefill = 0, ndec = 0, ctxs[MAX_CTXS], bats[MAX_CTXS], bctx = 0;
  double seconds = 0;
  int_list bl = {bats, &nbat, 1, 64}, cl = {ctxs, &nctx, 0, 1u << 20};
  const app_flag flags[] = {
      AF_STRING("--model", NULL, &name, "NAME",
                "preset with random weights: gpt2-tiny, llama-tiny, gpt2-124M,\n"
                "gpt2-350M, llama-60M (default gpt2-124M on a GPU, gpt2-tiny on a CPU)"),
      AF_STRING("--file", "-m", &file, "F",
                "a model file instead (checkpoint, HF directory/.safetensors, .gguf)"),
      AF_STRING("--type", NULL, &tname, "T",
                "linear weights of a preset: f32 (default), f16, q8_0, q4_0"),
      AF_FLAG("--ctx-size", "-c", AF_U32, &n_ctx, 1, 1u << 20, "N",
              "context length (KV cache rows; default: the model's, for GPT-2 at\n"
              "most its positions; at most 4096 for Llama by default)"),
      AF_FLAG("--prefill", NULL, AF_U32, &prefill, 1, 1u << 20, "N",
              "prompt tokens of the prefill measurement (default 512 GPU, 64 CPU)"),
      AF_FLAG("--decode", NULL, AF_U32, &ndec, 1, 1u << 20, "N",
              "timed decode steps per context (default 128 GPU, 16 CPU)"),
      {"--ctx", NULL, AF_FN, &cl, 0, 0, "LIST",
       "cache lengths before decoding, e.g. 0,128,512,2048 (GPU default; CPU\n"
       "0,32,128); lengths that leave no room are replaced by the longest that fits", list_flag},
      AF_FLAG("--seconds", NULL, AF_F64, &seconds, 0.01, 3600, "S",
              "time per prefill measurement (default 1 GPU, 0.5 CPU)"),
      {"--batch", NULL, AF_FN, &bl, 0, 0, "LIST",
       "batched decode: sequences decoded together, e.g. 1,4,16 (default\n"
       "1,4,16 GPU, 1,4 CPU; at most 64)", list_flag},
      AF_FLAG("--batch-ctx", NULL, AF_U32, &bctx, 1, 1u << 20, "N",
              "tokens each batched sequence holds before the timed steps (default\n"
              "128 GPU, 32 CPU)"),
      AF_BOOL("--json", &json, "JSON instead of a table"),
      AF_LAST};
  const app_command c = {"bench infer", "bench infer [--model NAME | -m FILE] [--type T] [flags]",
                         NULL, flags, 0, 0, 1};
  int pr = app_flags_parse(&c, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  vklm_dtype wt = VKLM_DTYPE_LINEAR_COUNT;
  for (int t = 0; t < VKLM_DTYPE_LINEAR_COUNT; t++)
    if (!strcmp(tname, vklm_dtype_name((vklm_dtype)t))) wt = (vklm_dtype)t;
  if (wt == VKLM_DTYPE_LINEAR_COUNT || (file && name)) {
    fprintf(stderr, "vklm bench infer: %s\n", file && name ? "give --model or -m, not both"
                                                           : "--type is f32, f16, q8_0 or q4_0");
    return 2;
  }

  int rc = 1;
  char err[2048] = "";
  vklm_context *ctx = NULL;
  vklm_infer *s = NULL;
  gen_model gm = {0};
  rnd_src rs = {.type = wt, .seed = 1234};
  int32_t *tok = NULL;
  cJSON *root = cJSON_CreateObject();
  vklm_model_config mc;
  if (!(ctx = app_context(&cfg))) goto done;
  const vklm_caps *caps = vklm_context_caps(ctx);
  int cpu = caps->type == VKLM_DEVICE_CPU;
  if (file) {
    /* a model file: no tokenizer needed, only the weights */
    if (gen_model_open(&gm, file, NULL, err, sizeof err) && !gm.cfg) goto fail;
    mc = *gm.cfg;
    tname = "as stored";
  } else {
    if (!name) name = cpu ? "gpt2-tiny" : "gpt2-124M";
    if (vklm_model_config_preset(name, &mc)) {
      snprintf(err, sizeof err, "unknown model '%s' (see --help)", name);
      goto fail;
    }
  }
  if (!n_ctx) n_ctx = mc.arch == VKLM_ARCH_GPT2 ? mc.max_seq : mc.max_seq > 4096 ? 4096 : mc.max_seq;
  if (mc.arch == VKLM_ARCH_GPT2 && n_ctx > mc.max_seq) {
    snprintf(err, sizeof err, "-c %u exceeds this GPT-2 model's %u positions", n_ctx, mc.max_seq);
    goto fail;
  }
  if (!prefill) prefill = cpu ? 64 : 512;
  if (!ndec) ndec = cpu ? 16 : 128;
  if (seconds <= 0) seconds = cpu ? 0.5 : 1.0;
  if (!nctx) {
    static const uint32_t gpu_def[] = {0, 128, 512, 2048}, cpu_def[] = {0, 32, 128};
    const uint32_t *d = cpu ? cpu_def : gpu_def;
    nctx = cpu ? 3 : 4;
    memcpy(ctxs, d, nctx * sizeof *d);
  }
  if (!nbat) {
    static const uint32_t gpu_b[] = {1, 4, 16}, cpu_b[] = {1, 4};
    nbat = cpu ? 2 : 3;
    memcpy(bats, cpu ? cpu_b : gpu_b, nbat * sizeof *bats);
  }
  uint32_t maxb = 1;
  for (int b = 0; b < nbat; b++) maxb = bats[b] > maxb ? bats[b] : maxb;
  if (!bctx) bctx = cpu ? 32 : 128;
  if (bctx + ndec + 2 > n_ctx) bctx = n_ctx > ndec + 2 ? n_ctx - ndec - 2 : 1;
  if (prefill > n_ctx) prefill = n_ctx;
  if (ndec + 2 > n_ctx) ndec = n_ctx > 2 ? n_ctx - 2 : 1;
  /* lengths that leave no room for the warm-up step and ndec timed ones become the longest that
   * does; duplicates go */
  int k = 0;
  for (int i = 0; i < nctx; i++) {
    uint32_t c = ctxs[i];
    if (c + 1 + ndec > n_ctx) c = n_ctx - 1 - ndec;
    if (k && ctxs[k - 1] >= c) continue;
    ctxs[k++] = c;
  }
  nctx = k;
  uint32_t ntok = n_ctx + 64;
  if (!(tok = malloc(ntok * sizeof *tok))) goto fail;
  uint64_t ts = 7;
  for (uint32_t i = 0; i < ntok; i++) {
    ts = ts * 6364136223846793005ull + 1442695040888963407ull;
    tok[i] = (int32_t)((ts >> 33) % mc.vocab_size);
  }

  double t0 = gen_now_s();
  vklm_infer_options io = {.n_seq = maxb};
  vklm_status st = file ? vklm_infer_create(ctx, &mc, n_ctx, &io, gen_model_tensor, &gm, &s, err,
                                            sizeof err)
                        : vklm_infer_create(ctx, &mc, n_ctx, &io, rnd_get, &rs, &s, err,
                                            sizeof err);
  double t_create = gen_now_s() - t0;
  rnd_free(&rs);
  rs.bufs = NULL, rs.nbufs = 0;
  if (st) goto fail;
  uint64_t mem_session = vklm_context_memory_peak(ctx);

  if (!json) {
    char b1[32], b2[32];
    printf("device: %s (%s)%s\n", caps->name,
           caps->driver_info[0] ? caps->driver_info : caps->driver_name,
           caps->baseline ? " [baseline limits]" : "");
    printf("model: %s (%s, %llu params, %u layers, C %u, V %u), linear weights %s%s (held "
           "as %s), context %u\n",
           file ? gm.path : name, mc.arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama",
           (unsigned long long)vklm_model_config_params(&mc), mc.n_layer, mc.n_embd,
           mc.vocab_size, tname, rs.fallback ? " (some f16: K % 32 != 0)" : "",
           vklm_dtype_name(vklm_infer_weights_dtype(s)), n_ctx);
    if (!file) printf("weights on the device: %s; ", app_bytes(rs.weight_bytes, b1, sizeof b1));
    printf("session memory: %s for %u sequences, KV cache %s (built in %.2f s)\n\n",
           app_bytes(mem_session, b2, sizeof b2), maxb,
           vklm_dtype_name(vklm_infer_kv_dtype(s)), t_create);
    fflush(stdout);
  }
  double tp = time_prefill(s, tok, prefill, seconds);
  if (tp < 0) goto done;
  if (!json) {
    printf("prefill %u tokens: %.1f tok/s (%.2f ms)\n\n", prefill, prefill / tp, tp * 1e3);
    printf("%-10s %10s %12s %12s\n", "context", "decode/s", "ms/token", "submits/tok");
    fflush(stdout);
  }
  dec_result dr[MAX_CTXS];
  for (int i = 0; i < nctx; i++) {
    double sub = 0, t = time_decode(s, tok, ctxs[i], ndec, &sub);
    if (t < 0) goto done;
    dr[i] = (dec_result){.context = ctxs[i], .tok_s = 1.0 / t, .ms_tok = t * 1e3, .submits = sub};
    if (!json) {
      printf("%-10u %10.1f %12.3f %12.1f\n", ctxs[i], dr[i].tok_s, dr[i].ms_tok, sub);
      fflush(stdout);
    }
  }
  dec_result br[MAX_CTXS];
  if (!json) {
    printf("\n%-10s %12s %12s %14s\n", "batch", "tokens/s", "ms/step", "per sequence/s");
    fflush(stdout);
  }
  for (int i = 0; i < nbat; i++) {
    double t = time_batch(s, tok, bats[i], bctx, ndec);
    if (t < 0) goto done;
    br[i] = (dec_result){.context = bats[i], .tok_s = bats[i] / t, .ms_tok = t * 1e3};
    if (!json) {
      printf("%-10u %12.1f %12.3f %14.1f\n", bats[i], br[i].tok_s, br[i].ms_tok, 1.0 / t);
      fflush(stdout);
    }
  }
  uint64_t peak = vklm_context_memory_peak(ctx);
  if (!json) {
    printf("(batched: each sequence holds %u tokens before the timed steps)\n", bctx);
    char b[32];
    printf("\npeak device memory: %s; %u decode steps per context (greedy, argmax on the "
           "device)\n", app_bytes(peak, b, sizeof b), ndec);
  } else {
    cJSON_AddStringToObject(root, "device", caps->name);
    cJSON_AddStringToObject(root, "driver", caps->driver_name);
    cJSON_AddStringToObject(root, "driver_info", caps->driver_info);
    cJSON_AddBoolToObject(root, "baseline_limits", caps->baseline);
    cJSON_AddStringToObject(root, "model", file ? gm.path : name);
    cJSON_AddStringToObject(root, "arch", mc.arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama");
    cJSON_AddNumberToObject(root, "params", (double)vklm_model_config_params(&mc));
    cJSON_AddStringToObject(root, "weight_type", file ? "file" : tname);
    cJSON_AddStringToObject(root, "weights_held", vklm_dtype_name(vklm_infer_weights_dtype(s)));
    cJSON_AddNumberToObject(root, "f16_fallback_matrices", rs.fallback);
    if (!file) cJSON_AddNumberToObject(root, "weight_bytes", (double)rs.weight_bytes);
    cJSON_AddNumberToObject(root, "n_ctx", n_ctx);
    cJSON_AddNumberToObject(root, "create_s", t_create);
    cJSON *p = cJSON_AddObjectToObject(root, "prefill");
    cJSON_AddNumberToObject(p, "tokens", prefill);
    cJSON_AddNumberToObject(p, "tok_s", prefill / tp);
    cJSON_AddNumberToObject(p, "ms", tp * 1e3);
    cJSON *d = cJSON_AddArrayToObject(root, "decode");
    for (int i = 0; i < nctx; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "context", dr[i].context);
      cJSON_AddNumberToObject(o, "tokens", ndec);
      cJSON_AddNumberToObject(o, "tok_s", dr[i].tok_s);
      cJSON_AddNumberToObject(o, "ms_per_token", dr[i].ms_tok);
      cJSON_AddNumberToObject(o, "submits_per_token", dr[i].submits);
      cJSON_AddItemToArray(d, o);
    }
    cJSON *bj = cJSON_AddArrayToObject(root, "batch");
    for (int i = 0; i < nbat; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "sequences", br[i].context);
      cJSON_AddNumberToObject(o, "context", bctx);
      cJSON_AddNumberToObject(o, "steps", ndec);
      cJSON_AddNumberToObject(o, "tok_s", br[i].tok_s);
      cJSON_AddNumberToObject(o, "ms_per_step", br[i].ms_tok);
      cJSON_AddItemToArray(bj, o);
    }
    cJSON_AddStringToObject(root, "kv_cache", vklm_dtype_name(vklm_infer_kv_dtype(s)));
    cJSON_AddNumberToObject(root, "session_memory_bytes", (double)mem_session);
    cJSON_AddNumberToObject(root, "peak_memory_bytes", (double)peak);
    char *js = cJSON_Print(root);
    printf("%s\n", js);
    cJSON_free(js);
  }
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "vklm bench infer: %s\n", err[0] ? err : "out of memory");
done:
  cJSON_Delete(root);
  free(tok);
  rnd_free(&rs);
  vklm_infer_destroy(s);
  vklm_context_destroy(ctx);
  gen_model_close(&gm);
  return rc;
}

/* Model tests beyond PyTorch parity (VKLM_TEST_GPU): the presets (GPT-2 124M has 124,439,808
 * parameters) and the table; replaying the recorded forward, forward+backward and update gives
 * bit-identical numbers to a fresh recording; gradient accumulation over two micro-batches of B=2
 * (grad_scale 1/2) equals one batch of B=4; out-of-range token ids and targets are rejected with
 * a message naming the position; a model too large for the device fails at creation with the
 * sizes in the message, before allocating; the lm head in row chunks equals one chunk; the
 * vocabulary matrices split into row chunks equal the unsplit ones, and GPT-2's 147 MiB wte
 * (over a 128 MiB bindable limit) trains; the MLM masking recipe. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"

#define OK(m, call)                                                                                \
  vt_ok(env, (call) == VKLM_OK ? VKLM_OK : (printf("  %s\n", vklm_model_error(m)), VKLM_ERROR_INVALID), #call)

/* A tiny config with odd sizes of either family. */
static vklm_model_config tiny(vklm_arch arch) {
  vklm_model_config c = {arch, 71, 16, 2, 4, arch == VKLM_ARCH_LLAMA ? 2 : 4, 32,
                         arch == VKLM_ARCH_LLAMA ? 56 : 128, 1e-5f, 10000.0f,
                         arch == VKLM_ARCH_GPT2};
  return c;
}

static void causal_batch(uint32_t n, uint32_t V, uint64_t seed, int32_t *in, int32_t *tg) {
  int *x = vt_randi(n + 1, seed, 0, (int)V);
  for (uint32_t i = 0; i < n; i++) in[i] = x[i], tg[i] = x[i + 1];
  free(x);
}

static void test_presets(vt_env *env) {
  const char *names[] = {"gpt2-tiny", "llama-tiny", "gpt2-124M", "gpt2-350M", "llama-60M"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    vklm_model_config c;
    char err[256] = "";
    int ok = vklm_model_config_preset(names[i], &c) == VKLM_OK &&
             vklm_model_config_check(&c, err, sizeof err) == VKLM_OK;
    vt_expect(env, ok, "preset %-10s: %llu parameters, %.1f MiB for B=4 T=64 %s", names[i],
              (unsigned long long)vklm_model_config_params(&c),
              vklm_model_config_bytes(&c, 4, 64) / 1048576.0, err);
  }
  vklm_model_config c;
  vt_expect(env, vklm_model_config_preset("nope", &c) == VKLM_ERROR_NOT_FOUND, "unknown preset");
  vklm_model_config_preset("gpt2-124M", &c);
  vt_expect(env, vklm_model_config_params(&c) == 124439808ull, "gpt2-124M has 124439808 params");
  c.n_kv_head = 5;
  char err[256];
  vt_expect(env, vklm_model_config_check(&c, err, sizeof err) == VKLM_ERROR_INVALID,
            "bad config rejected: %s", err);
}

/* Replay: a model that ran batch 1 then batch 2 equals a fresh model that ran batch 2 only,
 * bit for bit (forward logits, loss, gradients, gradient norm and updated parameters). */
static void test_replay(vt_env *env, vklm_arch arch, vklm_objective obj) {
  vklm_model_config cfg = tiny(arch);
  uint32_t B = 2, T = 13, n = B * T;
  const char *tag = arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama";
  vklm_model *m1 = NULL, *m2 = NULL;
  OK(NULL, vklm_model_create(env->ctx, &cfg, B, T, obj, &m1));
  OK(NULL, vklm_model_create(env->ctx, &cfg, B, T, obj, &m2));
  OK(m1, vklm_model_init(m1, 7));
  OK(m2, vklm_model_init(m2, 7));
  int32_t in1[26], tg1[26], in2[26], tg2[26];
  causal_batch(n, cfg.vocab_size, 11, in1, tg1);
  causal_batch(n, cfg.vocab_size, 12, in2, tg2);
  if (obj == VKLM_OBJ_MLM) {
    int32_t raw[26];
    memcpy(raw, in1, sizeof raw);
    vklm_mlm_mask(raw, n, cfg.vocab_size, vklm_model_mask_id(&cfg), 1, in1, tg1);
    memcpy(raw, in2, sizeof raw);
    vklm_mlm_mask(raw, n, cfg.vocab_size, vklm_model_mask_id(&cfg), 2, in2, tg2);
  }
  uint64_t np = vklm_model_num_params(m1), nl = (uint64_t)n * cfg.vocab_size;
  float *a = malloc(np * 4), *b = malloc(np * 4), *la = malloc(nl * 4), *lb = malloc(nl * 4);
  float l1, l2, g1, g2;
  vklm_optim_config oc = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  /* forward */
  OK(m1, vklm_model_forward(m1, in1, tg1, &l1));
  OK(m1, vklm_model_forward(m1, in2, tg2, &l1));
  OK(m2, vklm_model_forward(m2, in2, tg2, &l2));
  OK(m1, vklm_model_get_logits(m1, la));
  OK(m2, vklm_model_get_logits(m2, lb));
  vt_expect(env, l1 == l2 && memcmp(la, lb, nl * 4) == 0,
            "%s %s: replayed forward == fresh recording (loss %.6f)", tag,
            obj ? "mlm" : "causal", l1);
  /* forward + backward, then update */
  OK(m1, vklm_model_forward_backward(m1, in1, tg1, 1.0f, &l1));
  OK(m1, vklm_model_zero_grads(m1));
  OK(m1, vklm_model_forward_backward(m1, in2, tg2, 1.0f, &l1));
  OK(m2, vklm_model_forward_backward(m2, in2, tg2, 1.0f, &l2));
  OK(m1, vklm_model_get_grads(m1, a));
  OK(m2, vklm_model_get_grads(m2, b));
  vt_expect(env, l1 == l2 && memcmp(a, b, np * 4) == 0,
            "%s %s: replayed forward+backward == fresh recording (%llu gradients)", tag,
            obj ? "mlm" : "causal", (unsigned long long)np);
  OK(m1, vklm_model_update(m1, &oc, 1, &g1));
  OK(m2, vklm_model_update(m2, &oc, 1, &g2));
  /* a second update of m1 on a second batch, replaying the recorded update */
  OK(m1, vklm_model_forward_backward(m1, in1, tg1, 1.0f, &l1));
  OK(m1, vklm_model_update(m1, &oc, 2, &g1));
  OK(m2, vklm_model_forward_backward(m2, in1, tg1, 1.0f, &l2));
  OK(m2, vklm_model_update(m2, &oc, 2, &g2));
  OK(m1, vklm_model_get_params(m1, a));
  OK(m2, vklm_model_get_params(m2, b));
  vt_expect(env, g1 == g2 && memcmp(a, b, np * 4) == 0,
            "%s %s: two replayed updates == the same steps recorded afresh (grad norm %.5f)", tag,
            obj ? "mlm" : "causal", g1);
  OK(m1, vklm_model_get_grads(m1, a));
  double s = 0;
  for (uint64_t i = 0; i < np; i++) s += fabs(a[i]);
  vt_expect(env, s == 0, "update zeroes the gradients");
  free(a), free(b), free(la), free(lb);
  vklm_model_destroy(m1);
  vklm_model_destroy(m2);
}

/* Two micro-batches of B=2 with grad_scale 1/2 == one batch of B=4. */
static void test_accumulation(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  uint32_t T = 11;
  vklm_model *m2 = NULL, *m4 = NULL;
  OK(NULL, vklm_model_create(env->ctx, &cfg, 2, T, VKLM_OBJ_CAUSAL, &m2));
  OK(NULL, vklm_model_create(env->ctx, &cfg, 4, T, VKLM_OBJ_CAUSAL, &m4));
  OK(m2, vklm_model_init(m2, 3));
  OK(m4, vklm_model_init(m4, 3));
  int32_t in[44], tg[44];
  causal_batch(4 * T, cfg.vocab_size, 5, in, tg);
  float la, lb, l4;
  OK(m2, vklm_model_forward_backward(m2, in, tg, 0.5f, &la));
  OK(m2, vklm_model_forward_backward(m2, in + 2 * T, tg + 2 * T, 0.5f, &lb));
  OK(m4, vklm_model_forward_backward(m4, in, tg, 1.0f, &l4));
  uint64_t np = vklm_model_num_params(m2);
  float *a = malloc(np * 4), *b = malloc(np * 4);
  OK(m2, vklm_model_get_grads(m2, a));
  OK(m4, vklm_model_get_grads(m4, b));
  double worst = 0;
  const char *wn = "";
  for (uint32_t i = 0; i < vklm_model_param_count(m2); i++) {
    const vklm_param_info *p = vklm_model_param(m2, i);
    double d = 0, w = 0;
    for (uint64_t k = p->offset; k < p->offset + p->count; k++)
      d += ((double)a[k] - b[k]) * ((double)a[k] - b[k]), w += (double)b[k] * b[k];
    double e = sqrt(d) / (sqrt(w) + 1e-30);
    if (!(e <= worst)) worst = e, wn = p->name;
  }
  double el = fabs(0.5 * (la + lb) - l4) / l4;
  vt_expect(env, worst <= 1e-5 && el <= 1e-6,
            "%s: 2 micro-batches x B=2 (scale 1/2) == B=4: gradients worst norm-rel %.3e (%s), "
            "loss rel %.3e", arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", worst, wn, el);
  free(a), free(b);
  vklm_model_destroy(m2);
  vklm_model_destroy(m4);
}

/* The lm head and cross-entropy in chunks of 64 rows (3 chunks of B*T = 160 rows, the last one
 * partial) give the same loss and gradients as one chunk: MLM's ignored targets make the chunks'
 * counts differ, which the per-row scales (grad_scale over the whole batch's count) must handle. */
static void test_chunked_head(vt_env *env, vklm_arch arch, vklm_objective obj) {
  vklm_model_config cfg = tiny(arch);
  uint32_t B = 10, T = 16, n = B * T;
  vklm_model *m1 = NULL, *m3 = NULL;
  vklm_model_options o1 = {0}, o3 = {64};
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, B, T, obj, &o1, &m1));
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, B, T, obj, &o3, &m3));
  OK(m1, vklm_model_init(m1, 21));
  OK(m3, vklm_model_init(m3, 21));
  int32_t in[160], tg[160];
  causal_batch(n, cfg.vocab_size, 31, in, tg);
  if (obj == VKLM_OBJ_MLM) {
    int32_t raw[160];
    memcpy(raw, in, sizeof raw);
    vklm_mlm_mask(raw, n, cfg.vocab_size, vklm_model_mask_id(&cfg), 5, in, tg);
  }
  float l1, l3, f1, f3, g1, g3;
  OK(m1, vklm_model_forward(m1, in, tg, &f1));
  OK(m3, vklm_model_forward(m3, in, tg, &f3));
  OK(m1, vklm_model_forward_backward(m1, in, tg, 0.5f, &l1));
  OK(m3, vklm_model_forward_backward(m3, in, tg, 0.5f, &l3));
  uint64_t np = vklm_model_num_params(m1);
  float *a = malloc(np * 4), *b = malloc(np * 4);
  OK(m1, vklm_model_get_grads(m1, a));
  OK(m3, vklm_model_get_grads(m3, b));
  double d = 0, w = 0;
  for (uint64_t i = 0; i < np; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), w += (double)a[i] * a[i];
  double eg = sqrt(d) / sqrt(w), el = fabs(l3 - l1) / l1, ef = fabs(f3 - f1) / f1;
  vt_expect(env, eg <= 1e-5 && el <= 1e-6 && ef <= 1e-6,
            "%s %s: lm head in 3 chunks of 64 rows == 1 chunk: loss rel %.2e (forward %.2e), "
            "gradients norm-rel %.2e", arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama",
            obj ? "mlm" : "causal", el, ef, eg);
  vklm_optim_config oc = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  OK(m1, vklm_model_update(m1, &oc, 1, &g1));
  OK(m3, vklm_model_update(m3, &oc, 1, &g3));
  vt_expect(env, fabs(g1 - g3) <= 1e-5 * g1, "chunked: grad norm %.6f vs %.6f", g3, g1);
  vt_expect(env, vklm_model_get_logits(m3, a) == VKLM_ERROR_UNSUPPORTED,
            "chunked: get_logits refused: %s", vklm_model_error(m3));
  free(a), free(b);
  vklm_model_destroy(m1);
  vklm_model_destroy(m3);
}

static void test_bad_input(vt_env *env) {
  vklm_model_config cfg = tiny(VKLM_ARCH_GPT2);
  uint32_t B = 2, T = 8, n = B * T;
  vklm_model *m = NULL;
  uint64_t before = vklm_context_memory_used(env->ctx);
  OK(NULL, vklm_model_create(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &m));
  uint64_t used = vklm_context_memory_used(env->ctx) - before, est = vklm_model_config_bytes(&cfg, B, T);
  vt_expect(env, used <= est + est / 8 + 65536 && est <= used + used / 8 + 65536,
            "device memory of a tiny model: %llu bytes allocated, vklm_model_config_bytes %llu",
            (unsigned long long)used, (unsigned long long)est);
  int32_t in[16], tg[16];
  causal_batch(n, cfg.vocab_size, 9, in, tg);
  float loss;
  in[5] = (int32_t)cfg.vocab_size;
  vklm_status st = vklm_model_forward_backward(m, in, tg, 1.0f, &loss);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(m), "position 5"),
            "input id V at position 5 rejected: %s", vklm_model_error(m));
  in[5] = -1;
  st = vklm_model_forward(m, in, tg, &loss);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(m), "position 5"),
            "input id -1 rejected: %s", vklm_model_error(m));
  in[5] = 0;
  tg[9] = -7;
  st = vklm_model_forward_backward(m, in, tg, 1.0f, &loss);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(m), "position 9"),
            "target -7 at position 9 rejected: %s", vklm_model_error(m));
  tg[9] = VKLM_IGNORE_INDEX;
  st = vklm_model_forward_backward(m, in, tg, 1.0f, &loss);
  vt_expect(env, st == VKLM_OK && isfinite(loss), "ignore index accepted, loss %.4f", loss);
  vklm_model_destroy(m);
}

static void test_too_big(vt_env *env) {
  const vklm_caps *caps = vklm_context_caps(env->ctx);
  vklm_model_config c;
  vklm_model_config_preset("gpt2-124M", &c);
  /* 16 bytes per parameter (weights, gradients, two moments), 12*C^2 parameters per layer */
  c.n_layer = (uint32_t)(caps->device_local_bytes / (16ull * 12 * 768 * 768) + 16);
  uint64_t need = vklm_model_config_bytes(&c, 1, 64);
  vklm_model *m = NULL;
  vklm_status st = vklm_model_create(env->ctx, &c, 1, 64, VKLM_OBJ_CAUSAL, &m);
  vt_expect(env, need > caps->device_local_bytes && st == VKLM_ERROR_OUT_OF_DEVICE_MEMORY && !m &&
                     strstr(vklm_model_error(NULL), "MiB"),
            "%u-layer model (%.0f MiB > %.0f MiB) refused: %s", c.n_layer, need / 1048576.0,
            caps->device_local_bytes / 1048576.0, vklm_model_error(NULL));
}

/* A vocabulary matrix larger than the biggest bindable buffer (GPT-2's 147 MiB wte, tied with the
 * lm head, against lavapipe's and the baseline's 128 MiB) is split into row chunks: the model
 * creates, trains a step without validation messages, and its initial loss is close to ln(V). */
static void test_big_vocab(vt_env *env) {
  const vklm_caps *caps = vklm_context_caps(env->ctx);
  vklm_model_config c;
  vklm_model_config_preset("gpt2-124M", &c);
  c.n_layer = 1; /* GPT-2's embedding, little else */
  uint32_t B = 1, T = 8, n = B * T;
  uint64_t wte = (uint64_t)c.vocab_size * c.n_embd * 4;
  if (vklm_model_config_bytes(&c, B, T) > caps->device_local_bytes) {
    printf("  (skip: a 1-layer GPT-2 does not fit the device)\n");
    return;
  }
  vklm_model *m = NULL;
  vklm_status st = vklm_model_create(env->ctx, &c, B, T, VKLM_OBJ_CAUSAL, &m);
  vt_expect(env, st == VKLM_OK && m, "GPT-2 wte (%.1f MiB, device limit %.1f MiB%s) creates: %s",
            wte / 1048576.0, caps->max_storage_buffer_range / 1048576.0,
            wte > caps->max_storage_buffer_range ? ", split" : ", not split",
            st == VKLM_OK ? "ok" : vklm_model_error(NULL));
  if (st != VKLM_OK) return;
  OK(m, vklm_model_init(m, 3));
  int32_t in[8], tg[8];
  causal_batch(n, c.vocab_size, 17, in, tg);
  in[0] = 0, tg[1] = (int32_t)c.vocab_size - 1; /* the first and the last chunk's rows */
  float loss = 0, loss2 = 0, norm = 0;
  OK(m, vklm_model_forward_backward(m, in, tg, 1.0f, &loss));
  vklm_optim_config oc = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  OK(m, vklm_model_update(m, &oc, 1, &norm));
  OK(m, vklm_model_forward(m, in, tg, &loss2));
  double lnv = log((double)c.vocab_size);
  vt_expect(env, isfinite(loss) && fabs(loss - lnv) < 0.05 * lnv && isfinite(norm) && norm > 0 &&
                     isfinite(loss2) && loss2 < loss,
            "GPT-2 vocabulary: initial loss %.4f (ln V = %.4f), grad norm %.4f, after one step "
            "%.4f", loss, lnv, norm, loss2);
  vklm_model_destroy(m);
}

/* Every vocabulary matrix forced into 4 row chunks (the last one short) through
 * vklm_model_options.max_tensor_bytes equals the unsplit model: logits, loss, gradients (the flat
 * vector gathers the chunks), and the parameters after an update. */
static void test_vocab_split(vt_env *env, vklm_arch arch, vklm_objective obj) {
  vklm_model_config cfg = tiny(arch);
  uint32_t B = 2, T = 13, n = B * T, V = cfg.vocab_size, C = cfg.n_embd;
  vklm_model *m1 = NULL, *m4 = NULL;
  vklm_model_options o1 = {0}, o4 = {0, (uint64_t)(V / 4 + 1) * C * 4}; /* 18,18,18,17 rows */
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, B, T, obj, &o1, &m1));
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, B, T, obj, &o4, &m4));
  if (!m1 || !m4) return;
  OK(m1, vklm_model_init(m1, 5));
  OK(m4, vklm_model_init(m4, 5));
  int32_t in[26], tg[26];
  causal_batch(n, V, 41, in, tg);
  in[3] = 0, in[4] = (int32_t)V - 1, in[5] = 18, in[6] = 17; /* chunk edges */
  float f1, f4, l1, l4, g1, g4;
  uint64_t np = vklm_model_num_params(m1);
  float *a = malloc(np * 4), *b = malloc(np * 4), *la = malloc((size_t)n * V * 4),
        *lb = malloc((size_t)n * V * 4);
  OK(m1, vklm_model_forward(m1, in, tg, &f1));
  OK(m4, vklm_model_forward(m4, in, tg, &f4));
  OK(m1, vklm_model_get_logits(m1, la));
  OK(m4, vklm_model_get_logits(m4, lb));
  double dl = 0, wl = 0;
  for (size_t i = 0; i < (size_t)n * V; i++) dl += ((double)la[i] - lb[i]) * ((double)la[i] - lb[i]), wl += (double)la[i] * la[i];
  OK(m1, vklm_model_forward_backward(m1, in, tg, 1.0f, &l1));
  OK(m4, vklm_model_forward_backward(m4, in, tg, 1.0f, &l4));
  OK(m1, vklm_model_get_grads(m1, a));
  OK(m4, vklm_model_get_grads(m4, b));
  double d = 0, w = 0;
  for (uint64_t i = 0; i < np; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), w += (double)a[i] * a[i];
  vklm_optim_config oc = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  OK(m1, vklm_model_update(m1, &oc, 1, &g1));
  OK(m4, vklm_model_update(m4, &oc, 1, &g4));
  OK(m1, vklm_model_get_params(m1, a));
  OK(m4, vklm_model_get_params(m4, b));
  double dp = 0, wp = 0; /* AdamW's first step is ~lr * sign(g): tiny gradients may flip */
  for (uint64_t i = 0; i < np; i++) dp += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), wp += (double)a[i] * a[i];
  dp = sqrt(dp) / sqrt(wp);
  double el = sqrt(dl) / sqrt(wl), eg = sqrt(d) / sqrt(w);
  vt_expect(env, el <= 1e-6 && fabs(f4 - f1) <= 1e-6 * f1 && fabs(l4 - l1) <= 1e-6 * l1 &&
                     eg <= 1e-6 && fabs(g4 - g1) <= 1e-6 * g1 && dp <= 1e-6,
            "%s %s: vocabulary matrices in 4 chunks == unsplit: logits norm-rel %.2e, loss %.2e, "
            "grads norm-rel %.2e, grad norm %.2e, params after a step norm-rel %.2e",
            arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", obj ? "mlm" : "causal", el,
            fabs(l4 - l1) / l1, eg, fabs(g4 - g1) / g1, dp);
  free(a), free(b), free(la), free(lb);
  vklm_model_destroy(m1);
  vklm_model_destroy(m4);
}

static void test_mlm_mask(vt_env *env) {
  uint32_t n = 4000, V = 50;
  int32_t *tok = malloc(n * 4), *in = malloc(n * 4), *tg = malloc(n * 4), *in2 = malloc(n * 4),
          *tg2 = malloc(n * 4);
  int *r = vt_randi(n, 4, 0, (int)V - 1);
  for (uint32_t i = 0; i < n; i++) tok[i] = r[i];
  vklm_mlm_mask(tok, n, V, (int32_t)V - 1, 42, in, tg);
  vklm_mlm_mask(tok, n, V, (int32_t)V - 1, 42, in2, tg2);
  uint32_t chosen = 0, masked = 0, kept = 0, bad = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (tg[i] == VKLM_IGNORE_INDEX) {
      bad += in[i] != tok[i];
      continue;
    }
    chosen++;
    bad += tg[i] != tok[i];
    masked += in[i] == (int32_t)V - 1;
    kept += in[i] == tok[i];
  }
  int same = memcmp(in, in2, n * 4) == 0 && memcmp(tg, tg2, n * 4) == 0;
  double fc = (double)chosen / n, fm = (double)masked / chosen, fk = (double)kept / chosen;
  vt_expect(env, !bad && same && fabs(fc - 0.15) < 0.02 && fabs(fm - 0.8) < 0.05 &&
                     fk > 0.07 && fk < 0.16,
            "MLM mask: %.3f chosen, %.3f of them masked, %.3f kept, deterministic", fc, fm, fk);
  vklm_mlm_mask(tok, 3, V, (int32_t)V - 1, 1, in, tg);
  int any = 0;
  for (int i = 0; i < 3; i++) any += tg[i] != VKLM_IGNORE_INDEX;
  vt_expect(env, any >= 1, "MLM mask chooses at least one of 3 positions");
  free(tok), free(in), free(tg), free(in2), free(tg2), free(r);
}

int main(void) {
  vt_env env_, *env = &env_;
  vt_init(env, "test_model");
  test_presets(env);
  test_replay(env, VKLM_ARCH_GPT2, VKLM_OBJ_CAUSAL);
  test_replay(env, VKLM_ARCH_LLAMA, VKLM_OBJ_MLM);
  test_accumulation(env, VKLM_ARCH_GPT2);
  test_accumulation(env, VKLM_ARCH_LLAMA);
  test_chunked_head(env, VKLM_ARCH_GPT2, VKLM_OBJ_CAUSAL);
  test_chunked_head(env, VKLM_ARCH_LLAMA, VKLM_OBJ_MLM);
  test_bad_input(env);
  test_too_big(env);
  test_vocab_split(env, VKLM_ARCH_GPT2, VKLM_OBJ_CAUSAL);
  test_vocab_split(env, VKLM_ARCH_LLAMA, VKLM_OBJ_MLM);
  test_big_vocab(env);
  test_mlm_mask(env);
  return vt_finish(env);
}

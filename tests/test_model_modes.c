/* Models in every mode (VKLM_TEST_GPU): a frozen model allocates no gradient or moment memory
 * (measured) and refuses a backward; freeze patterns leave the frozen tensors' gradients at zero
 * and their weights untouched by AdamW while the trainable ones get exactly the gradients of the
 * fully trainable model, with a shorter backward when only the last layers train; per-token
 * log-probs equal the log-softmax of the logits at the targets, the per-sequence sums follow the
 * mask, right-padded sequences of different lengths score as they do alone, and everything holds
 * with the lm head in several row chunks; the backward of sum_b coef_b * logp_b with coef =
 * -1/count equals the PyTorch-verified mean-loss gradient; the scalar head is hidden . w + b, and
 * its backward for a value loss matches finite differences of the GPU forward; bad calls get
 * clear errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"

#define OK(m, call)                                                                                \
  vt_ok(env, (call) == VKLM_OK ? VKLM_OK : (printf("  %s\n", vklm_model_error(m)), VKLM_ERROR_INVALID), #call)

static vklm_model_config tiny(vklm_arch arch) {
  vklm_model_config c = {arch, 71, 16, 2, 4, arch == VKLM_ARCH_LLAMA ? 2 : 4, 32,
                         arch == VKLM_ARCH_LLAMA ? 56 : 128, 1e-5f, 10000.0f,
                         arch == VKLM_ARCH_GPT2};
  return c;
}
static const char *name_of(vklm_arch a) { return a == VKLM_ARCH_GPT2 ? "gpt2" : "llama"; }

static void batch(uint32_t n, uint32_t V, uint64_t seed, int32_t *in, int32_t *tg) {
  int *x = vt_randi(n + 1, seed, 0, (int)V);
  for (uint32_t i = 0; i < n; i++) in[i] = x[i], tg[i] = x[i + 1];
  free(x);
}

static double rel_norm(const float *a, const float *b, uint64_t n) {
  double d = 0, w = 0;
  for (uint64_t i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), w += (double)b[i] * b[i];
  return w > 0 ? sqrt(d / w) : sqrt(d);
}

/* Frozen vs trainable: device memory by kind, and the frozen model's refusals. */
static void test_frozen(vt_env *env) {
  vklm_model_config cfg;
  vklm_model_config_preset("gpt2-tiny", &cfg);
  vklm_model *t = NULL, *f = NULL;
  uint64_t m0 = vklm_context_memory_used(env->ctx);
  OK(NULL, vklm_model_create(env->ctx, &cfg, 4, 64, VKLM_OBJ_CAUSAL, &t));
  uint64_t m1 = vklm_context_memory_used(env->ctx);
  vklm_model_options o = {.frozen = 1};
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, 4, 64, VKLM_OBJ_CAUSAL, &o, &f));
  uint64_t m2 = vklm_context_memory_used(env->ctx);
  vklm_model_memory a, b;
  vklm_model_memory_get(t, &a);
  vklm_model_memory_get(f, &b);
  uint64_t wb = vklm_model_num_params(t) * 4;
  vt_expect(env, b.grads == 0 && b.moments == 0 && a.grads >= wb && a.moments >= 2 * wb &&
                     b.weights == a.weights && vklm_model_is_frozen(f) && !vklm_model_is_frozen(t),
            "gpt2-tiny B=4 T=64: trainable %.2f MiB (weights %.2f, gradients %.2f, moments %.2f, "
            "activations %.2f); frozen %.2f MiB (weights %.2f, gradients %.2f, moments %.2f, "
            "activations %.2f)",
            (m1 - m0) / 1048576.0, a.weights / 1048576.0, a.grads / 1048576.0,
            a.moments / 1048576.0, a.activations / 1048576.0, (m2 - m1) / 1048576.0,
            b.weights / 1048576.0, b.grads / 1048576.0, b.moments / 1048576.0,
            b.activations / 1048576.0);
  vt_expect(env, m2 - m1 <= (m1 - m0) - a.grads - a.moments,
            "the frozen model's device memory (%.2f MiB, measured) is at most the trainable "
            "one's (%.2f MiB) less its gradients and moments", (m2 - m1) / 1048576.0,
            (m1 - m0) / 1048576.0);
  int32_t in[256], tg[256];
  batch(256, cfg.vocab_size, 3, in, tg);
  float lt, lf;
  OK(t, vklm_model_forward(t, in, tg, &lt));
  OK(f, vklm_model_forward(f, in, tg, &lf)); /* same (zero) weights: init both */
  OK(t, vklm_model_init(t, 9));
  float *p = malloc(vklm_model_num_params(t) * 4);
  OK(t, vklm_model_get_params(t, p));
  OK(f, vklm_model_set_params(f, p));
  OK(t, vklm_model_forward(t, in, tg, &lt));
  OK(f, vklm_model_forward(f, in, tg, &lf));
  vt_expect(env, lt == lf, "frozen and trainable models give the same loss (%.6f vs %.6f)", lf, lt);
  vklm_status st = vklm_model_forward_backward(f, in, tg, 1.0f, &lf);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(f), "frozen"),
            "a frozen model refuses forward_backward: %s", vklm_model_error(f));
  free(p);
  vklm_model_destroy(f);
  vklm_model_destroy(t);
  /* weights alone: no workspace */
  vklm_model *w = NULL;
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, 0, 0, VKLM_OBJ_CAUSAL, &o, &w));
  st = vklm_model_forward(w, in, tg, &lf);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(w), "workspace"),
            "a weights-only model refuses a batch: %s", vklm_model_error(w));
  vklm_model_destroy(w);
}

/* Freeze patterns: "train only the last layer and the final norm". */
static void test_freeze(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  uint32_t B = 2, T = 9, n = B * T;
  vklm_model *full = NULL, *part = NULL;
  vklm_model_options o = {.train = "h.1.*,lnf.*"};
  OK(NULL, vklm_model_create(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &full));
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &o, &part));
  OK(full, vklm_model_init(full, 17));
  uint64_t np = vklm_model_num_params(full);
  float *p0 = malloc(np * 4), *ga = malloc(np * 4), *gb = malloc(np * 4), *p1 = malloc(np * 4);
  OK(full, vklm_model_get_params(full, p0));
  OK(part, vklm_model_set_params(part, p0));
  int32_t in[32], tg[32];
  batch(n, cfg.vocab_size, 8, in, tg);
  float la, lb;
  OK(full, vklm_model_forward_backward(full, in, tg, 1.0f, &la));
  OK(part, vklm_model_forward_backward(part, in, tg, 1.0f, &lb));
  OK(full, vklm_model_get_grads(full, ga));
  OK(part, vklm_model_get_grads(part, gb));
  int frozen_zero = 1, ntrain = 0;
  double worst = 0;
  for (uint32_t i = 0; i < vklm_model_param_count(part); i++) {
    const vklm_param_info *pi = vklm_model_param(part, i);
    int tr = vklm_model_param_trainable(part, i);
    ntrain += tr;
    int want = pi->layer == 1 || !strncmp(pi->name, "lnf.", 4);
    if (tr != want) frozen_zero = 0;
    if (!tr) {
      for (uint64_t k = 0; k < pi->count; k++) frozen_zero &= gb[pi->offset + k] == 0.0f;
    } else {
      double e = rel_norm(gb + pi->offset, ga + pi->offset, pi->count);
      if (e > worst) worst = e;
    }
  }
  vt_expect(env, frozen_zero && worst < 1e-6 && la == lb,
            "%s train=\"h.1.*,lnf.*\": %d tensors train, frozen gradients zero, trainable "
            "gradients equal the full model's (worst %.2e)", name_of(arch), ntrain, worst);
  vklm_optim_config oc = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  OK(part, vklm_model_update(part, &oc, 1, NULL));
  OK(part, vklm_model_get_params(part, p1));
  int kept = 1, moved = 0;
  for (uint32_t i = 0; i < vklm_model_param_count(part); i++) {
    const vklm_param_info *pi = vklm_model_param(part, i);
    for (uint64_t k = 0; k < pi->count; k++) {
      int same = p1[pi->offset + k] == p0[pi->offset + k];
      if (!vklm_model_param_trainable(part, i)) kept &= same;
      else moved |= !same;
    }
  }
  vt_expect(env, kept && moved, "%s: AdamW moves the trainable tensors only", name_of(arch));
  vklm_model_memory mp, mf;
  vklm_model_memory_get(part, &mp);
  vklm_model_memory_get(full, &mf);
  vt_expect(env, mp.grads < mf.grads / 2 && mp.moments < mf.moments / 2,
            "%s: gradient and moment memory only for the trainable tensors (%llu vs %llu bytes)",
            name_of(arch), (unsigned long long)mp.grads, (unsigned long long)mf.grads);
  /* a pattern that matches nothing, and a split LayerNorm pair, are errors */
  vklm_model *bad = NULL;
  vklm_model_options ob = {.freeze = "h.9.*"};
  vklm_status st = vklm_model_create_ex(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &ob, &bad);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(NULL), "matches no tensor"),
            "an unmatched freeze pattern is refused: %s", vklm_model_error(NULL));
  if (arch == VKLM_ARCH_GPT2) {
    vklm_model_options ol = {.freeze = "h.0.ln1.weight"};
    st = vklm_model_create_ex(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &ol, &bad);
    vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(NULL), "together"),
              "a LayerNorm weight frozen without its bias is refused: %s",
              vklm_model_error(NULL));
  }
  free(p0), free(ga), free(gb), free(p1);
  vklm_model_destroy(full);
  vklm_model_destroy(part);
}

/* log-softmax of row r of logits at target t */
static double logp_ref(const float *lg, uint32_t V, int32_t t) {
  double mx = -INFINITY, s = 0;
  for (uint32_t v = 0; v < V; v++) mx = fmax(mx, lg[v]);
  for (uint32_t v = 0; v < V; v++) s += exp(lg[v] - mx);
  return lg[t] - mx - log(s);
}

/* Log-probs: per token vs the logits, per sequence over a mask, padded sequences vs alone, and
 * the lm head in row chunks. */
static void test_logprobs(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  uint32_t B = 3, T = 12, n = B * T, V = cfg.vocab_size, len[3] = {12, 5, 9};
  vklm_model *m = NULL, *mc = NULL, *one = NULL;
  vklm_model_options oc = {.logits_rows = 64, .frozen = 1}, of = {.frozen = 1};
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &of, &m));
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, 8 * B, T, VKLM_OBJ_CAUSAL, &oc, &mc));
  OK(NULL, vklm_model_create_ex(env->ctx, &cfg, 1, T, VKLM_OBJ_CAUSAL, &of, &one));
  float *p = vt_randf(vklm_model_num_params(m), 44, -0.1f, 0.1f);
  OK(m, vklm_model_set_params(m, p));
  OK(mc, vklm_model_set_params(mc, p));
  OK(one, vklm_model_set_params(one, p));
  int32_t in[36], tg[36];
  batch(n, V, 12, in, tg);
  float mask[36];
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t t = 0; t < T; t++) {
      size_t i = (size_t)b * T + t;
      if (t >= len[b]) in[i] = 0, tg[i] = VKLM_IGNORE_INDEX; /* right padding */
      mask[i] = t >= len[b] ? 0.0f : t < 3 ? 0.0f : 1.0f;  /* a "prompt" of 3 masked out */
    }
  float tok[36], seq[3], loss, *lg = malloc(sizeof(float) * n * V);
  vklm_model_io io = {.inputs = in, .targets = tg, .mask = mask, .token_logp = tok,
                      .seq_logp = seq, .loss = &loss};
  OK(m, vklm_model_run(m, &io));
  OK(m, vklm_model_get_logits(m, lg));
  float want[36], wseq[3] = {0};
  double lsum = 0;
  uint32_t cnt = 0;
  for (uint32_t i = 0; i < n; i++) {
    want[i] = tg[i] == VKLM_IGNORE_INDEX ? 0.0f : (float)logp_ref(lg + (size_t)i * V, V, tg[i]);
    wseq[i / T] += mask[i] * want[i];
    if (tg[i] != VKLM_IGNORE_INDEX) lsum -= want[i], cnt++;
  }
  char what[160];
  snprintf(what, sizeof what, "%s per-token log-probs vs log-softmax of the logits", name_of(arch));
  vt_compare(env, what, tok, want, n, 1e-5);
  snprintf(what, sizeof what, "%s per-sequence log-probs over a mask", name_of(arch));
  vt_compare(env, what, seq, wseq, B, 1e-5);
  vt_expect(env, fabs(loss - lsum / cnt) < 1e-5 * fabs(loss), "%s mean loss %.6f vs %.6f",
            name_of(arch), loss, lsum / cnt);
  /* each padded sequence alone (B = 1, its own padding) scores the same */
  float aseq[3];
  for (uint32_t b = 0; b < B; b++) {
    vklm_model_io io1 = {.inputs = in + b * T, .targets = tg + b * T, .mask = mask + b * T,
                         .seq_logp = &aseq[b]};
    OK(one, vklm_model_run(one, &io1));
  }
  snprintf(what, sizeof what, "%s padded sequences of lengths 12, 5, 9 in one batch vs alone",
           name_of(arch));
  vt_compare(env, what, seq, aseq, B, 1e-6);
  /* 24 sequences with the lm head in chunks of 64 rows (288 rows: 5 chunks) */
  int32_t in8[288], tg8[288];
  float mask8[288], tok8[288], seq8[24];
  for (uint32_t k = 0; k < 8; k++) {
    memcpy(in8 + k * n, in, n * 4), memcpy(tg8 + k * n, tg, n * 4);
    memcpy(mask8 + k * n, mask, n * 4);
  }
  vklm_model_io io8 = {.inputs = in8, .targets = tg8, .mask = mask8, .token_logp = tok8,
                       .seq_logp = seq8};
  OK(mc, vklm_model_run(mc, &io8));
  int same = 1;
  for (uint32_t i = 0; i < 8 * n; i++) same &= fabsf(tok8[i] - tok[i % n]) <= 1e-5f * (1 + fabsf(tok[i % n]));
  for (uint32_t b = 0; b < 8 * B; b++) same &= fabsf(seq8[b] - seq[b % B]) <= 1e-5f * (1 + fabsf(seq[b % B]));
  vt_expect(env, same && vklm_model_get_logits(mc, lg) == VKLM_ERROR_UNSUPPORTED,
            "%s log-probs with the lm head in 5 row chunks equal one chunk's", name_of(arch));
  free(p), free(lg);
  vklm_model_destroy(m);
  vklm_model_destroy(mc);
  vklm_model_destroy(one);
}

/* The backward of sum_b coef_b seq_logp_b with coef_b = -s/count and the mask of the targets is
 * the gradient forward_backward gives for the mean loss at grad_scale s; and hidden states. */
static void test_backward_seq(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  uint32_t B = 3, T = 10, n = B * T, V = cfg.vocab_size;
  vklm_model *a = NULL, *b = NULL;
  OK(NULL, vklm_model_create(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &a));
  OK(NULL, vklm_model_create(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &b));
  OK(a, vklm_model_init(a, 5));
  uint64_t np = vklm_model_num_params(a);
  float *p = malloc(np * 4), *ga = malloc(np * 4), *gb = malloc(np * 4);
  OK(a, vklm_model_get_params(a, p));
  OK(b, vklm_model_set_params(b, p));
  int32_t in[30], tg[30];
  batch(n, V, 77, in, tg);
  for (uint32_t i = 0; i < n; i += 4) tg[i] = VKLM_IGNORE_INDEX;
  uint32_t cnt = 0;
  for (uint32_t i = 0; i < n; i++) cnt += tg[i] != VKLM_IGNORE_INDEX;
  float la, lb, coef[3], *hid = malloc(sizeof(float) * n * cfg.n_embd);
  OK(a, vklm_model_forward_backward(a, in, tg, 0.7f, &la));
  for (uint32_t k = 0; k < B; k++) coef[k] = -0.7f / (float)cnt;
  vklm_model_io io = {.inputs = in, .targets = tg, .loss = &lb, .hidden = hid};
  OK(b, vklm_model_run(b, &io));
  OK(b, vklm_model_backward_seq(b, coef, NULL));
  OK(a, vklm_model_get_grads(a, ga));
  OK(b, vklm_model_get_grads(b, gb));
  double e = rel_norm(gb, ga, np);
  vt_expect(env, e < 1e-6 && la == lb, "%s: backward of sum_b (-0.7/count) seq_logp_b == the mean "
            "loss's gradient at grad_scale 0.7 (norm-rel %.2e; losses %.6f %.6f)", name_of(arch),
            e, lb, la);
  double hn = 0;
  for (uint32_t i = 0; i < n * cfg.n_embd; i++) hn += hid[i] * hid[i];
  vt_expect(env, hn > 0 && isfinite(hn), "%s: hidden states read back (norm %.3f)", name_of(arch),
            sqrt(hn));
  vklm_status st = vklm_model_backward(b, coef, NULL);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_model_error(b), "run"),
            "a second backward without a new run is refused: %s", vklm_model_error(b));
  free(p), free(ga), free(gb), free(hid);
  vklm_model_destroy(a);
  vklm_model_destroy(b);
}

/* The scalar head: values = hidden . w + b; the gradient of a value loss vs finite differences
 * of the GPU forward along the gradient's direction. */
static void test_scalar_head(vt_env *env, vklm_arch arch) {
  vklm_model_config cfg = tiny(arch);
  cfg.scalar_head = 1;
  uint32_t B = 2, T = 7, n = B * T, C = cfg.n_embd;
  vklm_model *m = NULL;
  OK(NULL, vklm_model_create(env->ctx, &cfg, B, T, VKLM_OBJ_CAUSAL, &m));
  OK(m, vklm_model_init(m, 23));
  uint64_t np = vklm_model_num_params(m);
  float *p = malloc(np * 4), *g = malloc(np * 4), *q = malloc(np * 4);
  OK(m, vklm_model_get_params(m, p));
  uint64_t ow = 0, ob = 0;
  for (uint32_t i = 0; i < vklm_model_param_count(m); i++) {
    const vklm_param_info *pi = vklm_model_param(m, i);
    if (!strcmp(pi->name, "score.weight")) ow = pi->offset;
    if (!strcmp(pi->name, "score.bias")) ob = pi->offset;
  }
  p[ob] = 0.25f; /* a bias that is not zero */
  OK(m, vklm_model_set_params(m, p));
  int32_t in[14], tg[14];
  batch(n, cfg.vocab_size, 5, in, tg);
  float val[14], want[14], *hid = malloc(sizeof(float) * n * C);
  vklm_model_io io = {.inputs = in, .values = val, .hidden = hid};
  OK(m, vklm_model_run(m, &io)); /* no targets: no LM head */
  for (uint32_t r = 0; r < n; r++) {
    double s = p[ob];
    for (uint32_t c = 0; c < C; c++) s += (double)hid[(size_t)r * C + c] * p[ow + c];
    want[r] = (float)s;
  }
  char what[128];
  snprintf(what, sizeof what, "%s scalar head = hidden . score.weight + score.bias", name_of(arch));
  vt_compare(env, what, val, want, n, 1e-5);
  /* value loss L = sum_r w_r v_r with the last token of each sequence: the reward-model read */
  float w[14] = {0};
  w[T - 1] = 1.0f, w[2 * T - 1] = -1.0f;
  OK(m, vklm_model_backward(m, NULL, w));
  OK(m, vklm_model_get_grads(m, g));
  double gn = 0;
  for (uint64_t i = 0; i < np; i++) gn += (double)g[i] * g[i];
  gn = sqrt(gn);
  double eps = 1e-2 / gn, Lp, Lm;
  float vp[14];
  for (int sgn = 1; sgn >= -1; sgn -= 2) {
    for (uint64_t i = 0; i < np; i++) q[i] = p[i] + (float)(sgn * eps * g[i]);
    OK(m, vklm_model_set_params(m, q));
    vklm_model_io iv = {.inputs = in, .values = vp};
    OK(m, vklm_model_run(m, &iv));
    double L = vp[T - 1] - vp[2 * T - 1];
    if (sgn > 0) Lp = L; else Lm = L;
  }
  double num = (Lp - Lm) / (2 * eps), ana = gn * gn;
  vt_expect(env, fabs(num - ana) <= 2e-2 * ana,
            "%s value-loss gradient: directional derivative %.6f (finite differences) vs |g|^2 "
            "%.6f", name_of(arch), num, ana);
  vklm_status st = vklm_model_run(m, &(vklm_model_io){.inputs = in, .token_logp = val});
  vt_expect(env, st == VKLM_ERROR_INVALID, "log-probs without targets are refused: %s",
            vklm_model_error(m));
  free(p), free(g), free(q), free(hid);
  vklm_model_destroy(m);
}

/* options.recompute: the norms' outputs and the MLP activation recomputed in the backward. Three
 * steps of two micro-batches and AdamW against a model that keeps them: the same bits (losses,
 * norms, parameters), the runs-in-parts path too, and the activation memory smaller by the
 * shared buffers' worth: (L-1) layers x (2C + F) elements per row (floats; with a mixed
 * precision prec, 16-bit elements: those activations are held in prec). */
static void test_recompute(vt_env *env, vklm_arch arch, vklm_dtype prec) {
  vklm_model_config c = tiny(arch);
  c.n_layer = 3;
  uint32_t B = 2, T = 16, n = B * T;
  vklm_model_options keep = {.precision = prec}, re = {.recompute = 1, .precision = prec};
  char lab[32];
  snprintf(lab, sizeof lab, "%s%s%s", name_of(arch), prec ? " " : "",
           prec ? vklm_dtype_name(prec) : "");
  vklm_model *a = NULL, *b = NULL;
  OK(a, vklm_model_create_ex(env->ctx, &c, B, T, VKLM_OBJ_CAUSAL, &keep, &a));
  OK(b, vklm_model_create_ex(env->ctx, &c, B, T, VKLM_OBJ_CAUSAL, &re, &b));
  if (!a || !b) goto done;
  OK(a, vklm_model_init(a, 5));
  OK(b, vklm_model_init(b, 5));
  vklm_optim_config oc = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_clip = 1.0f};
  int32_t in[2][32], tg[2][32];
  int same = 1;
  for (uint32_t step = 1; step <= 3; step++) {
    float la = 0, lb = 0, na = 0, nb = 0;
    for (int k = 0; k < 2; k++) {
      batch(n, c.vocab_size, 100 * step + k, in[k], tg[k]);
      OK(a, vklm_model_forward_backward(a, in[k], tg[k], 0.5f, &la));
      OK(b, vklm_model_forward_backward(b, in[k], tg[k], 0.5f, &lb));
      same &= la == lb;
    }
    OK(a, vklm_model_update(a, &oc, step, &na));
    OK(b, vklm_model_update(b, &oc, step, &nb));
    same &= na == nb;
  }
  uint64_t np = vklm_model_num_params(a);
  float *pa = malloc(np * 4), *pb = malloc(np * 4), *ga = malloc(np * 4), *gb = malloc(np * 4);
  OK(a, vklm_model_get_params(a, pa));
  OK(b, vklm_model_get_params(b, pb));
  /* the training pass in parts (data parallel) recomputes too */
  OK(a, vklm_model_forward_backward(a, in[0], tg[0], 1.0f, NULL));
  OK(b, vklm_model_forward_backward_parts(b, in[0], tg[0], 1.0f, NULL, gb, NULL, NULL, NULL));
  OK(a, vklm_model_get_grads(a, ga));
  vt_expect(env, same && !memcmp(pa, pb, np * 4) && !memcmp(ga, gb, np * 4),
            "%s recompute: losses, norms and parameters after 3 steps, and the gradients of a "
            "pass in parts, bit-identical to keeping the activations", lab);
  vklm_model_memory ma, mb;
  vklm_model_memory_get(a, &ma);
  vklm_model_memory_get(b, &mb);
  uint64_t want = (uint64_t)(c.n_layer - 1) * n * (2 * c.n_embd + c.ffn_hidden) * (prec ? 2 : 4);
  vt_expect(env, ma.activations - mb.activations >= want &&
                     ma.activations - mb.activations < want + 64 * 1024,
            "%s recompute: activations %.1f KiB instead of %.1f KiB (saves %.1f KiB, want about "
            "%.1f)", lab, mb.activations / 1024.0,
            ma.activations / 1024.0, (ma.activations - mb.activations) / 1024.0, want / 1024.0);
  if (prec) { /* against fp32 activations: ln1, ln2 and act of every layer in half the bytes */
    vklm_model *f = NULL;
    vklm_model_options f32 = {0};
    OK(f, vklm_model_create_ex(env->ctx, &c, B, T, VKLM_OBJ_CAUSAL, &f32, &f));
    vklm_model_memory mf = {0};
    if (f) vklm_model_memory_get(f, &mf);
    uint64_t half = (uint64_t)c.n_layer * n * (2 * c.n_embd + c.ffn_hidden) * 2;
    vt_expect(env, f && mf.activations - ma.activations >= half &&
                       mf.activations - ma.activations < half + 64 * 1024,
              "%s activations %.1f KiB against fp32's %.1f KiB (saves %.1f KiB, want about "
              "%.1f: ln1, ln2 and act in 16 bits)", lab,
              ma.activations / 1024.0, mf.activations / 1024.0,
              (mf.activations - ma.activations) / 1024.0, half / 1024.0);
    vklm_model_destroy(f);
  }
  free(pa), free(pb), free(ga), free(gb);
done:
  vklm_model_destroy(a);
  vklm_model_destroy(b);
}

int main(void) {
  vt_env env_, *env = &env_;
  vt_init(env, "test_model_modes");
  test_frozen(env);
  for (int a = 0; a < 2; a++) {
    vklm_arch arch = a ? VKLM_ARCH_LLAMA : VKLM_ARCH_GPT2;
    test_freeze(env, arch);
    test_logprobs(env, arch);
    test_backward_seq(env, arch);
    test_scalar_head(env, arch);
    test_recompute(env, arch, 0);
    test_recompute(env, arch, VKLM_DTYPE_BF16);
  }
  return vt_finish(env);
}

/* Where a run's settings come from: a fresh run's options, a checkpoint's state overridden by the
 * values given on the command line (resume), or an init model's config with the options' training
 * values (a new run from other weights); and the loading of those init weights. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/model_load.h"
#include "train/train.h"

/* ---- the summary: "from flags: a=1 b=2; from the checkpoint: c=3" ------------------------- */
enum { SRC_FLAG, SRC_CKPT, SRC_DEFAULT, NSRC };
typedef struct summary {
  char part[NSRC][768];
  size_t len[NSRC];
} summary;

static void note(summary *s, int src, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(summary *s, int src, const char *fmt, ...) {
  size_t cap = sizeof s->part[src];
  if (s->len[src] + 2 >= cap) return;
  if (s->len[src]) s->part[src][s->len[src]++] = ' ';
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(s->part[src] + s->len[src], cap - s->len[src], fmt, ap);
  va_end(ap);
  if (k > 0) s->len[src] = s->len[src] + (size_t)k < cap ? s->len[src] + (size_t)k : cap - 1;
}

static void summary_text(const summary *s, int resume, char *out, size_t n) {
  static const char *label[NSRC] = {"from flags", "from the checkpoint", "defaults"};
  size_t at = 0;
  if (!n) return;
  out[0] = 0;
  for (int k = 0; k < NSRC; k++) {
    if (!s->len[k] || (k == SRC_CKPT && !resume) || at >= n) continue;
    int w = snprintf(out + at, n - at, "%s%s: %s", at ? "; " : "", label[k], s->part[k]);
    if (w > 0) at += (size_t)w;
  }
}

/* ---- model values given on the command line must agree with the checkpoint's / init model's */
static vklm_status check_model(const vklm_train_options *o, const vklm_model_config *have,
                               const char *whose, char *err, size_t errlen) {
  const vklm_model_config *g = &o->model;
  char diff[1024] = "";
  size_t at = 0;
#define DIFF(bit, flag, field)                                                                   \
  if ((o->given & (bit)) && g->field != have->field && at < sizeof diff)                         \
    at += (size_t)snprintf(diff + at, sizeof diff - at, "%s%s %u (the model has %u)",            \
                           at ? ", " : "", flag, (unsigned)g->field, (unsigned)have->field);
  if ((o->given & VKLM_GIVEN_ARCH) && g->arch != have->arch)
    at += (size_t)snprintf(diff + at, sizeof diff - at, "%s--arch %s (the model is %s)",
                           at ? ", " : "", g->arch == VKLM_ARCH_LLAMA ? "llama" : "gpt2",
                           have->arch == VKLM_ARCH_LLAMA ? "llama" : "gpt2");
  DIFF(VKLM_GIVEN_LAYERS, "--layers", n_layer)
  DIFF(VKLM_GIVEN_HEADS, "--heads", n_head)
  DIFF(VKLM_GIVEN_KV_HEADS, "--kv-heads", n_kv_head)
  DIFF(VKLM_GIVEN_EMBD, "--embd", n_embd)
  DIFF(VKLM_GIVEN_FFN, "--ffn", ffn_hidden)
  DIFF(VKLM_GIVEN_TIE, "--model's tied head", tie_embeddings)
  DIFF(VKLM_GIVEN_CTX, "--ctx", max_seq)
  DIFF(VKLM_GIVEN_VOCAB, "--vocab", vocab_size)
#undef DIFF
  if (!at) return VKLM_OK;
  snprintf(err, errlen, "model flags contradict %s: %s; the model comes from %s (drop these "
           "flags, or start a new model without --resume/--init)", whose, diff, whose);
  return VKLM_ERROR_INVALID;
}

static int finite_nonneg(float x) { return isfinite(x) && x >= 0; }

static int pow2(float x) {
  int e;
  return x > 0.0f && isfinite(x) && frexpf(x, &e) == 0.5f;
}

vklm_status vklm_train_resolve(const vklm_train_options *o, const vklm_ckpt_state *ck,
                               const vklm_model_config *init, uint64_t data_vocab,
                               uint64_t data_tokens, vklm_ckpt_state *out, char *summary_out,
                               size_t summary_len, char *err, size_t errlen) {
  uint32_t g = o->given;
  summary sm;
  memset(&sm, 0, sizeof sm);
  memset(out, 0, sizeof *out);
  const char *whose = ck ? "the checkpoint's model" : "the init model";
  if (ck) {
    *out = *ck;
    if (ck->step == 0 && ck->total_steps == 0 && !(g & VKLM_GIVEN_STEPS)) {
      snprintf(err, errlen, "the checkpoint holds no run to continue (step 0 of 0: a converted "
               "model?): start a new run from its weights with --init, or give --steps");
      return VKLM_ERROR_INVALID;
    }
    if (check_model(o, &ck->model, whose, err, errlen) != VKLM_OK) return VKLM_ERROR_INVALID;
    const char *bad = NULL;
    char what[160] = "";
    if ((g & VKLM_GIVEN_OBJECTIVE) && o->objective != ck->objective)
      bad = "objective", snprintf(what, sizeof what, "%s given, the checkpoint's is %s",
                                  o->objective == VKLM_OBJ_MLM ? "mlm" : "causal",
                                  ck->objective == VKLM_OBJ_MLM ? "mlm" : "causal");
    else if ((g & VKLM_GIVEN_MASK_ID) && o->mask_id != ck->mask_id)
      bad = "mask-id", snprintf(what, sizeof what, "%d given, the checkpoint's is %d",
                                o->mask_id, ck->mask_id);
    else if ((g & VKLM_GIVEN_SEED) && o->seed != ck->seed)
      bad = "seed", snprintf(what, sizeof what, "%llu given, the checkpoint's %llu fixes its data "
                             "order and masks", (unsigned long long)o->seed,
                             (unsigned long long)ck->seed);
    if (bad) {
      snprintf(err, errlen, "--%s cannot change on --resume (%s); start a new run from these "
               "weights with --init instead", bad, what);
      return VKLM_ERROR_INVALID;
    }
    note(&sm, SRC_CKPT, "seed=%llu", (unsigned long long)ck->seed);
    note(&sm, SRC_CKPT, "objective=%s", ck->objective == VKLM_OBJ_MLM ? "mlm" : "causal");
  } else {
    out->model = init ? *init : o->model;
    if (init && check_model(o, init, whose, err, errlen) != VKLM_OK) return VKLM_ERROR_INVALID;
    if (!init) { /* a fresh model: the data's vocabulary, positions raised to T */
      if (out->model.vocab_size == 0) out->model.vocab_size = (uint32_t)data_vocab;
      if (o->T > out->model.max_seq) out->model.max_seq = o->T;
    }
    out->objective = o->objective;
    out->mask_id = o->mask_id >= 0 ? o->mask_id : vklm_model_mask_id(&out->model);
    out->seed = o->seed;
    out->rng = o->seed ^ 0x7261696E21ull;
    out->opt = (vklm_optim_config){.lr = o->lr, .beta1 = o->beta1, .beta2 = o->beta2,
                                   .eps = o->eps};
    note(&sm, g & VKLM_GIVEN_SEED ? SRC_FLAG : SRC_DEFAULT, "seed=%llu",
         (unsigned long long)o->seed);
    note(&sm, g & VKLM_GIVEN_OBJECTIVE ? SRC_FLAG : SRC_DEFAULT, "objective=%s",
         o->objective == VKLM_OBJ_MLM ? "mlm" : "causal");
  }
  /* training values: the options' when given (or when there is no checkpoint), else the
   * checkpoint's */
#define SRC(bit) ((g & (bit)) ? SRC_FLAG : ck ? SRC_CKPT : SRC_DEFAULT)
#define TAKE(bit) (!ck || (g & (bit)))
  if (TAKE(VKLM_GIVEN_B)) out->B = o->B;
  note(&sm, SRC(VKLM_GIVEN_B), "B=%u", out->B);
  if (TAKE(VKLM_GIVEN_T)) out->T = o->T;
  note(&sm, SRC(VKLM_GIVEN_T), "T=%u", out->T);
  if (TAKE(VKLM_GIVEN_GRAD_ACCUM)) out->grad_accum = o->grad_accum;
  note(&sm, SRC(VKLM_GIVEN_GRAD_ACCUM), "grad-accum=%u", out->grad_accum);
  if (TAKE(VKLM_GIVEN_STEPS)) out->total_steps = o->steps;
  note(&sm, SRC(VKLM_GIVEN_STEPS), "steps=%llu", (unsigned long long)out->total_steps);
  if (TAKE(VKLM_GIVEN_LR)) out->lr = o->lr;
  note(&sm, SRC(VKLM_GIVEN_LR), "lr=%g", out->lr);
  if (ck && (g & VKLM_GIVEN_LR) && !(g & VKLM_GIVEN_MIN_LR)) { /* min-lr's default follows lr */
    out->min_lr = o->lr / 10;
    note(&sm, SRC_FLAG, "min-lr=%g (lr/10)", out->min_lr);
  } else {
    if (TAKE(VKLM_GIVEN_MIN_LR)) out->min_lr = o->min_lr;
    note(&sm, SRC(VKLM_GIVEN_MIN_LR), "min-lr=%g", out->min_lr);
  }
  if (TAKE(VKLM_GIVEN_WARMUP)) out->warmup = o->warmup;
  note(&sm, SRC(VKLM_GIVEN_WARMUP), "warmup=%llu", (unsigned long long)out->warmup);
  if (TAKE(VKLM_GIVEN_WD)) out->opt.weight_decay = o->weight_decay;
  note(&sm, SRC(VKLM_GIVEN_WD), "wd=%g", out->opt.weight_decay);
  if (TAKE(VKLM_GIVEN_CLIP)) out->opt.grad_clip = o->grad_clip;
  note(&sm, SRC(VKLM_GIVEN_CLIP), "clip=%g", out->opt.grad_clip);
  if (TAKE(VKLM_GIVEN_DATA_ORDER)) out->data_order = o->data_order;
  note(&sm, SRC(VKLM_GIVEN_DATA_ORDER), "data-order=%s", vklm_data_order_name(out->data_order));
  /* precision: a resume may change it (the master weights and moments are fp32 either way); the
   * loss scaler starts afresh when f16 begins, and keeps its state across an f16 resume */
  vklm_dtype prev = ck ? ck->precision : VKLM_DTYPE_F32;
  if (TAKE(VKLM_GIVEN_PRECISION)) out->precision = o->precision;
  note(&sm, SRC(VKLM_GIVEN_PRECISION), "precision=%s", vklm_dtype_name(out->precision));
  if (out->precision != VKLM_DTYPE_F16) {
    out->loss_scale = 1.0f, out->scale_good = 0;
  } else if (!ck || prev != VKLM_DTYPE_F16) {
    out->loss_scale = VKLM_TRAIN_LOSS_SCALE0, out->scale_good = 0;
  }
  if (!ck) out->skipped = 0;
  if (o->loss_scale > 0.0f && out->precision == VKLM_DTYPE_F16) {
    out->loss_scale = o->loss_scale, out->scale_good = 0;
    note(&sm, SRC_FLAG, "loss-scale=%g", (double)out->loss_scale);
  }
#undef SRC
#undef TAKE
  if (ck && ck->data_tokens && data_tokens && ck->data_tokens != data_tokens)
    note(&sm, SRC_CKPT, "(its run read %llu training tokens, this data has %llu: the place in the "
         "epoch is kept as a token count)", (unsigned long long)ck->data_tokens,
         (unsigned long long)data_tokens);
  out->data_tokens = data_tokens;

  /* every value, a checkpoint's included, in range */
  const vklm_model_config *c = &out->model;
  char e2[512];
  if (vklm_model_config_check(c, e2, sizeof e2) != VKLM_OK) {
    snprintf(err, errlen, "%s%s", ck ? "the checkpoint's model: " : init ? "the init model: " : "",
             e2);
    return VKLM_ERROR_INVALID;
  }
  const char *why = NULL;
  if (!out->B || !out->T || !out->grad_accum) why = "B, T and grad-accum must be at least 1";
  else if ((uint64_t)out->B * out->T > (1u << 30)) why = "B x T is above 2^30 tokens";
  else if (!out->total_steps || out->total_steps > UINT32_MAX) why = "steps must be in [1, 2^32)";
  else if (out->warmup > UINT32_MAX) why = "warmup must be below 2^32";
  else if (!(isfinite(out->lr) && out->lr > 0)) why = "lr must be positive";
  else if (!finite_nonneg(out->min_lr)) why = "min-lr must be >= 0";
  else if (!finite_nonneg(out->opt.weight_decay)) why = "wd must be >= 0";
  else if (!isfinite(out->opt.grad_clip)) why = "clip must be finite (<= 0: off)";
  else if (!(out->opt.beta1 >= 0 && out->opt.beta1 < 1 && out->opt.beta2 >= 0 &&
             out->opt.beta2 < 1 && out->opt.eps > 0 && isfinite(out->opt.eps)))
    why = "AdamW's betas must be in [0, 1) and eps positive";
  else if (out->precision != VKLM_DTYPE_F32 && out->precision != VKLM_DTYPE_F16 &&
           out->precision != VKLM_DTYPE_BF16)
    why = "precision must be f32, f16 or bf16";
  else if (o->loss_scale != 0.0f && (out->precision != VKLM_DTYPE_F16 || !pow2(o->loss_scale)))
    why = "loss-scale must be a power of two, and is for --precision f16 only";
  else if (out->objective == VKLM_OBJ_MLM &&
           (out->mask_id < 0 || (uint32_t)out->mask_id >= c->vocab_size))
    why = "the MLM mask id must be a token id below V";
  if (why) {
    snprintf(err, errlen, "%s%s (B=%u T=%u grad-accum=%u steps=%llu lr=%g min-lr=%g wd=%g)",
             ck ? "the checkpoint's state is invalid: " : "", why, out->B, out->T,
             out->grad_accum, (unsigned long long)out->total_steps, out->lr, out->min_lr,
             out->opt.weight_decay);
    return VKLM_ERROR_INVALID;
  }
  if (out->T > c->max_seq) {
    snprintf(err, errlen, "sequence length T=%u exceeds the model's %u positions", out->T,
             c->max_seq);
    return VKLM_ERROR_INVALID;
  }
  if (summary_out) summary_text(&sm, ck != NULL, summary_out, summary_len);
  return VKLM_OK;
}

/* ---- init weights ----------------------------------------------------------------------- */
vklm_status vklm_train_open_init(const char *path, vklm_ckpt **out, char *what, size_t what_len,
                                 char *err, size_t errlen) {
  *out = NULL;
  char p[4096];
  struct stat sb;
  snprintf(p, sizeof p, "%s", path);
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) { /* a run directory, or an HF one */
    snprintf(p, sizeof p, "%s/checkpoint.bin", path);
    if (stat(p, &sb) != 0) snprintf(p, sizeof p, "%s", path);
  }
  if (vklm_ckpt_sniff(p)) {
    snprintf(what, what_len, "checkpoint");
    return vklm_ckpt_read(p, 0, out, err, errlen);
  }
  vklm_loaded_model *lm = NULL;
  char e2[2048];
  vklm_status st = vklm_model_load(p, 0, &lm, e2, sizeof e2);
  if (st != VKLM_OK) {
    snprintf(err, errlen, "cannot load the init model '%s' (a vklm checkpoint, an HF directory or "
             "a GGUF): %s", path, e2);
    return st;
  }
  vklm_ckpt *c = calloc(1, sizeof *c);
  if (c) {
    c->st.model = lm->cfg;
    c->ntensors = lm->ntensors;
    c->nparams = lm->nparams;
    c->table = malloc((lm->ntensors ? lm->ntensors : 1) * sizeof *c->table);
    c->params = malloc(lm->nparams * 4 + 4);
  }
  if (!c || !c->table || !c->params) {
    snprintf(err, errlen, "out of host memory for the init model (%llu parameters)",
             (unsigned long long)lm->nparams);
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  } else {
    memcpy(c->table, lm->table, lm->ntensors * sizeof *c->table);
    st = vklm_loaded_model_params(lm, c->params, err, errlen);
  }
  snprintf(what, what_len, "%s", lm->format);
  vklm_loaded_model_free(lm);
  if (st != VKLM_OK) {
    vklm_ckpt_free(c);
    return st;
  }
  *out = c;
  return VKLM_OK;
}

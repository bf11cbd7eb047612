/* The learned document classifier (see classifier.h): data, training loop, metrics, directory
 * I/O and batched scoring. The model is engine/model's; the loop follows engine/align's reward
 * model (vklm_align_model, value weights into vklm_model_backward) with a binary cross-entropy
 * on the value at each row's last token. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "align/align.h"
#include "data/buf.h"
#include "data/classifier.h"
#include "data/steps.h"
#include "io/file.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "train/train.h"

#define FORMAT "vklm-classifier"

void vklm_classifier_train_default(vklm_classifier_train_opts *o) {
  memset(o, 0, sizeof *o);
  o->eot = "<|endoftext|>";
  o->T = 64;
  o->B = 16;
  o->layers = 2;
  o->heads = 2;
  o->embd = 64;
  o->epochs = 4;
  o->lr = 1e-3f;
  o->min_lr = 1e-4f;
  o->grad_clip = 1.0f;
  o->warmup = 10;
  o->val_fraction = 0.2;
  o->seed = 1;
  o->out_dir = "out-classifier";
}

static vklm_status fail(char *err, size_t n, vklm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static vklm_status fail(char *err, size_t n, vklm_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && n) vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return st;
}

/* 64-bit fingerprint of a file's bytes (the tokenizer the classifier was trained with). */
static int file_hash(const char *path, uint64_t *h) {
  char *text = NULL, why[512];
  size_t n = 0;
  if (vklm_file_read(path, VKLM_FILE_MAX_TOKENIZER, 0, &text, &n, why, sizeof why) != VKLM_OK)
    return -1;
  *h = vklm_hash64(text, n, 0x746F6B);
  free(text);
  return 0;
}

/* A text's row: tokens(text)[:T-1] + eot. Returns 1 when truncated, 0, or -1. */
static int encode_row(vklm_tokenizer_encoder *enc, vklm_token_ids *tmp, int32_t eot, uint32_t T,
                      const char *s, size_t n, int32_t *ids, uint32_t *len) {
  tmp->n = 0;
  if (vklm_tokenizer_encoder_encode(enc, s, n, 0, tmp) != VKLM_TOK_OK) return -1;
  size_t k = tmp->n < T - 1 ? tmp->n : T - 1;
  for (size_t i = 0; i < k; i++)
    ids[i] = tmp->ids[i];
  ids[k] = eot;
  *len = (uint32_t)k + 1;
  return tmp->n > T - 1;
}

typedef struct set {
  int32_t *ids; /* n rows of T */
  uint32_t *len;
  uint8_t *label;
  uint64_t n, truncated;
} set;

static void set_free(set *s) {
  free(s->ids);
  free(s->len);
  free(s->label);
  memset(s, 0, sizeof *s);
}

static vklm_status read_data(const vklm_classifier_train_opts *o, vklm_tokenizer *tk, int32_t eot,
                             set *s, char *err, size_t errlen) {
  FILE *f = fopen(o->data, "r");
  if (!f) return fail(err, errlen, VKLM_ERROR_IO, "cannot read %s: %s", o->data, strerror(errno));
  vklm_tokenizer_encoder *enc = NULL;
  vklm_token_ids tmp = {0};
  char *line = NULL;
  size_t cap = 0, rows = 0;
  ssize_t got;
  long no = 0;
  vklm_status st = vklm_tokenizer_encoder_create(tk, &enc) ? VKLM_ERROR_OUT_OF_HOST_MEMORY : VKLM_OK;
  while (st == VKLM_OK && (got = getline(&line, &cap, f)) >= 0) {
    no++;
    size_t a = 0;
    while (a < (size_t)got && (line[a] == ' ' || line[a] == '\t' || line[a] == '\n' || line[a] == '\r'))
      a++;
    if (a == (size_t)got) continue;
    cJSON *j = cJSON_Parse(line);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text"),
          *l = cJSON_GetObjectItemCaseSensitive(j, "label");
    int label = -1;
    if (cJSON_IsBool(l)) label = cJSON_IsTrue(l);
    if (cJSON_IsNumber(l) && (l->valuedouble == 0 || l->valuedouble == 1)) label = (int)l->valuedouble;
    if (!cJSON_IsObject(j) || !cJSON_IsString(t) || label < 0) {
      st = fail(err, errlen, VKLM_ERROR_INVALID, "%s:%ld: want {\"text\": string, \"label\": 0 or 1}",
                o->data, no);
      cJSON_Delete(j);
      break;
    }
    if (s->n == rows) {
      rows = rows ? 2 * rows : 1024;
      int32_t *ids = realloc(s->ids, rows * o->T * sizeof *ids);
      if (ids) s->ids = ids;
      uint32_t *len = realloc(s->len, rows * sizeof *len);
      if (len) s->len = len;
      uint8_t *lab = realloc(s->label, rows);
      if (lab) s->label = lab;
      if (!ids || !len || !lab) {
        st = fail(err, errlen, VKLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        cJSON_Delete(j);
        break;
      }
    }
    int tr = encode_row(enc, &tmp, eot, o->T, t->valuestring, strlen(t->valuestring),
                        s->ids + s->n * o->T, &s->len[s->n]);
    cJSON_Delete(j);
    if (tr < 0) {
      st = fail(err, errlen, VKLM_ERROR_INVALID, "%s:%ld: cannot encode the text", o->data, no);
      break;
    }
    s->truncated += (uint64_t)tr;
    s->label[s->n++] = (uint8_t)label;
  }
  free(line);
  fclose(f);
  vklm_token_ids_free(&tmp);
  vklm_tokenizer_encoder_destroy(enc);
  return st;
}

/* Packs rows idx[0..n) (n <= B) into inputs, right-padded; unused rows are padding. */
static void pack(const set *s, const uint64_t *idx, uint32_t n, uint32_t B, uint32_t T,
                 int32_t *in, uint32_t *last) {
  memset(in, 0, (size_t)B * T * sizeof *in);
  for (uint32_t r = 0; r < B; r++) {
    last[r] = 0;
    if (r >= n) continue;
    memcpy(in + (size_t)r * T, s->ids + idx[r] * T, s->len[idx[r]] * sizeof *in);
    last[r] = s->len[idx[r]] - 1;
  }
}

static double sigmoid(double v) { return v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v)); }
static double bce(double v, int y) { /* softplus(v) - y v, stable */
  return fmax(v, 0) - v * y + log1p(exp(-fabs(v)));
}

static void finish_metrics(vklm_classifier_metrics *m, double loss_sum) {
  m->loss = m->n ? loss_sum / (double)m->n : NAN;
  m->accuracy = m->n ? (double)(m->tp + m->tn) / (double)m->n : NAN;
  m->precision = m->tp + m->fp ? (double)m->tp / (double)(m->tp + m->fp) : NAN;
  m->recall = m->tp + m->fn ? (double)m->tp / (double)(m->tp + m->fn) : NAN;
}

static vklm_status evaluate(vklm_model *m, const set *s, const uint64_t *idx, uint64_t n,
                            vklm_classifier_metrics *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  uint32_t B = vklm_model_batch(m), T = vklm_model_seq(m);
  int32_t *in = malloc((size_t)B * T * sizeof *in);
  float *val = malloc((size_t)B * T * sizeof *val);
  uint32_t *last = malloc(B * sizeof *last);
  vklm_status st = in && val && last ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  double ls = 0;
  for (uint64_t i = 0; i < n && st == VKLM_OK; i += B) {
    uint32_t k = n - i < B ? (uint32_t)(n - i) : B;
    pack(s, idx + i, k, B, T, in, last);
    vklm_model_io io = {.inputs = in, .values = val};
    if ((st = vklm_model_run(m, &io)) != VKLM_OK) {
      snprintf(err, errlen, "classifier forward: %s", vklm_model_error(m));
      break;
    }
    for (uint32_t r = 0; r < k; r++) {
      double v = val[(size_t)r * T + last[r]];
      int y = s->label[idx[i + r]], p = sigmoid(v) > 0.5;
      ls += bce(v, y);
      out->n++;
      out->tp += p && y;
      out->fp += p && !y;
      out->tn += !p && !y;
      out->fn += !p && y;
    }
  }
  finish_metrics(out, ls);
  free(in), free(val), free(last);
  return st;
}

static cJSON *metrics_json(const vklm_classifier_metrics *m) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "docs", (double)m->n);
  cJSON_AddNumberToObject(o, "loss", isfinite(m->loss) ? m->loss : -1);
  cJSON_AddNumberToObject(o, "accuracy", isfinite(m->accuracy) ? m->accuracy : -1);
  cJSON_AddNumberToObject(o, "precision", isfinite(m->precision) ? m->precision : -1);
  cJSON_AddNumberToObject(o, "recall", isfinite(m->recall) ? m->recall : -1);
  cJSON_AddNumberToObject(o, "tp", (double)m->tp);
  cJSON_AddNumberToObject(o, "fp", (double)m->fp);
  cJSON_AddNumberToObject(o, "tn", (double)m->tn);
  cJSON_AddNumberToObject(o, "fn", (double)m->fn);
  return o;
}

static vklm_status write_meta(const vklm_classifier_train_opts *o, const vklm_classifier_result *r,
                              uint64_t tok_hash, uint64_t vocab, int32_t eot, char *err,
                              size_t errlen) {
  cJSON *j = cJSON_CreateObject();
  char hex[32], path[4096];
  snprintf(hex, sizeof hex, "%016" PRIx64, tok_hash);
  cJSON_AddStringToObject(j, "format", FORMAT);
  cJSON_AddNumberToObject(j, "version", 1);
  cJSON_AddNumberToObject(j, "T", o->T);
  cJSON_AddNumberToObject(j, "eot_id", eot);
  cJSON_AddStringToObject(j, "eot", o->eot);
  cJSON_AddStringToObject(j, "tokenizer_fingerprint", hex);
  cJSON_AddNumberToObject(j, "vocab_size", (double)vocab);
  cJSON_AddStringToObject(j, "score", "sigmoid of the scalar head at the last token: P(label 1)");
  cJSON_AddNumberToObject(j, "train_docs", (double)r->train_docs);
  cJSON_AddNumberToObject(j, "val_docs", (double)r->val_docs);
  cJSON_AddNumberToObject(j, "steps", r->steps);
  cJSON_AddItemToObject(j, "train", metrics_json(&r->train));
  cJSON_AddItemToObject(j, "held_out", metrics_json(&r->val));
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  snprintf(path, sizeof path, "%s/classifier.json", o->out_dir);
  FILE *f = s ? fopen(path, "w") : NULL;
  int ok = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
  if (f && fclose(f)) ok = 0;
  cJSON_free(s);
  return ok ? VKLM_OK : fail(err, errlen, VKLM_ERROR_IO, "cannot write %s", path);
}

vklm_status vklm_classifier_train(vklm_context *ctx, const vklm_classifier_train_opts *o,
                                  vklm_classifier_result *res, char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  if (!o->data || !o->tokenizer || !o->out_dir)
    return fail(err, errlen, VKLM_ERROR_INVALID, "classifier: need data, a tokenizer and an output directory");
  if (o->T < 2 || o->B < 1 || o->B > 1024 || !(o->val_fraction > 0 && o->val_fraction < 1) || !(o->lr > 0))
    return fail(err, errlen, VKLM_ERROR_INVALID, "classifier: need T >= 2, B in [1, 1024], lr > 0 and a "
                "validation fraction in (0, 1)");
  vklm_tokenizer *tk = NULL;
  vklm_ckpt *init = NULL;
  vklm_model *m = NULL;
  set s = {0};
  uint64_t *perm = NULL, *order = NULL;
  int32_t *in = NULL;
  float *val = NULL, *vw = NULL;
  uint32_t *last = NULL;
  vklm_status st = VKLM_OK;
  char path[4096];
  if (vklm_tokenizer_load(o->tokenizer, &tk, err, errlen)) return VKLM_ERROR_INVALID;
  uint64_t V = vklm_tokenizer_vocab_size(tk);
  int32_t eot = vklm_tokenizer_special_id(tk, o->eot);
  if (eot < 0) {
    st = fail(err, errlen, VKLM_ERROR_INVALID, "classifier: the tokenizer has no special token %s",
              o->eot);
    goto done;
  }
  if (o->init) {
    if ((st = vklm_ckpt_read(o->init, 0, &init, err, errlen)) != VKLM_OK) goto done;
    if (init->st.model.vocab_size != V) {
      st = fail(err, errlen, VKLM_ERROR_INVALID, "classifier: %s has a vocabulary of %u tokens, "
                "the tokenizer %s %llu: a model must be trained with the tokenizer it reads",
                o->init, init->st.model.vocab_size, o->tokenizer, (unsigned long long)V);
      goto done;
    }
  }
  if ((st = read_data(o, tk, eot, &s, err, errlen)) != VKLM_OK) goto done;
  uint64_t n = s.n, nval = (uint64_t)llround((double)n * o->val_fraction), ntr = n - nval;
  uint64_t pos = 0;
  for (uint64_t i = 0; i < n; i++)
    pos += s.label[i];
  if (n < 4 || !nval || ntr < 2 || pos == 0 || pos == n) {
    st = fail(err, errlen, VKLM_ERROR_INVALID, "classifier: %llu documents (%llu labelled 1): "
              "need both labels and enough documents for a held-out split",
              (unsigned long long)n, (unsigned long long)pos);
    goto done;
  }
  res->truncated = s.truncated;
  perm = malloc(n * sizeof *perm);
  order = malloc(n * sizeof *order);
  in = malloc((size_t)o->B * o->T * sizeof *in);
  val = malloc((size_t)o->B * o->T * sizeof *val);
  vw = malloc((size_t)o->B * o->T * sizeof *vw);
  last = malloc(o->B * sizeof *last);
  if (!perm || !order || !in || !val || !vw || !last) {
    st = fail(err, errlen, VKLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    goto done;
  }
  for (uint64_t i = 0; i < n; i++)
    perm[i] = vklm_data_permute(i, n, o->seed, 0xC1A5);
  if (init) {
    char freeze[64] = "";
    if (!init->st.model.tie_embeddings) snprintf(freeze, sizeof freeze, "lm_head.weight");
    vklm_model_options mo = {.freeze = freeze[0] ? freeze : NULL};
    if ((st = vklm_align_model(ctx, init, 1, o->B, o->T, &mo, o->seed, &m, err, errlen)) != VKLM_OK)
      goto done;
  } else {
    vklm_model_config cfg = {.arch = VKLM_ARCH_GPT2,
                             .vocab_size = (uint32_t)V,
                             .max_seq = o->T,
                             .n_layer = o->layers,
                             .n_head = o->heads,
                             .n_kv_head = o->heads,
                             .n_embd = o->embd,
                             .ffn_hidden = 4 * o->embd,
                             .norm_eps = 1e-5f,
                             .rope_theta = 10000.0f,
                             .tie_embeddings = 1,
                             .scalar_head = 1};
    if ((st = vklm_model_config_check(&cfg, err, errlen)) != VKLM_OK) goto done;
    if ((st = vklm_model_create(ctx, &cfg, o->B, o->T, VKLM_OBJ_CAUSAL, &m)) != VKLM_OK) {
      snprintf(err, errlen, "cannot create the model: %s", vklm_model_error(NULL));
      goto done;
    }
    if ((st = vklm_model_init(m, o->seed)) != VKLM_OK) {
      snprintf(err, errlen, "model init: %s", vklm_model_error(m));
      goto done;
    }
  }
  uint32_t per_epoch = (uint32_t)((ntr + o->B - 1) / o->B);
  uint32_t total = o->steps ? o->steps : per_epoch * (o->epochs ? o->epochs : 1);
  vklm_optim_config oc = {.lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                          .weight_decay = o->weight_decay, .grad_clip = o->grad_clip};
  double t0 = vklm_train_now_s();
  uint64_t at = ntr, epoch = 0;
  for (uint32_t step = 1; step <= total; step++) {
    uint64_t rows[1024];
    uint32_t k = 0;
    while (k < o->B && k < 1024) {
      if (at >= ntr) {
        for (uint64_t i = 0; i < ntr; i++)
          order[i] = perm[vklm_data_permute(i, ntr, o->seed, ++epoch)];
        at = 0;
      }
      rows[k++] = order[at++];
    }
    pack(&s, rows, k, o->B, o->T, in, last);
    vklm_model_io io = {.inputs = in, .values = val};
    if ((st = vklm_model_run(m, &io)) != VKLM_OK) {
      snprintf(err, errlen, "classifier forward: %s", vklm_model_error(m));
      goto done;
    }
    memset(vw, 0, (size_t)o->B * o->T * sizeof *vw);
    double loss = 0;
    for (uint32_t r = 0; r < k; r++) {
      double v = val[(size_t)r * o->T + last[r]];
      int y = s.label[rows[r]];
      loss += bce(v, y) / k;
      vw[(size_t)r * o->T + last[r]] = (float)((sigmoid(v) - y) / k); /* d mean BCE / dv */
    }
    if ((st = vklm_model_backward(m, NULL, vw)) != VKLM_OK) {
      snprintf(err, errlen, "classifier backward: %s", vklm_model_error(m));
      goto done;
    }
    oc.lr = vklm_train_lr(step, o->warmup, total, o->lr, o->min_lr);
    float gn = 0;
    if ((st = vklm_model_update(m, &oc, step, &gn)) != VKLM_OK) {
      snprintf(err, errlen, "step %u update: %s", step, vklm_model_error(m));
      goto done;
    }
    if (!isfinite(loss) || !isfinite(gn)) {
      st = fail(err, errlen, VKLM_ERROR_INVALID, "the loss or gradient norm is not finite at step %u", step);
      goto done;
    }
    if (step == 1) res->first_loss = loss;
    res->last_loss = loss;
    res->steps = step;
    if (o->progress && (step == 1 || step % 20 == 0 || step == total))
      fprintf(stderr, "classifier step %u/%u | loss %.4f | lr %.2e | grad norm %.3f\n", step, total,
              loss, oc.lr, gn);
  }
  res->seconds = vklm_train_now_s() - t0;
  res->train_docs = ntr;
  res->val_docs = nval;
  double te = vklm_train_now_s();
  if ((st = evaluate(m, &s, perm + ntr, nval, &res->val, err, errlen)) != VKLM_OK) goto done;
  res->docs_per_s = (double)nval / fmax(vklm_train_now_s() - te, 1e-9);
  if ((st = evaluate(m, &s, perm, ntr, &res->train, err, errlen)) != VKLM_OK) goto done;
  if (mkdir(o->out_dir, 0777) && errno != EEXIST) {
    st = fail(err, errlen, VKLM_ERROR_IO, "cannot create %s: %s", o->out_dir, strerror(errno));
    goto done;
  }
  snprintf(path, sizeof path, "%s/tokenizer.json", o->out_dir);
  uint64_t th = 0;
  if (vklm_tokenizer_save_json(tk, path, err, errlen) || file_hash(path, &th)) {
    st = fail(err, errlen, VKLM_ERROR_IO, "cannot write %s", path);
    goto done;
  }
  snprintf(path, sizeof path, "%s/model.bin", o->out_dir);
  if ((st = vklm_align_save(path, m, res->steps, &oc, err, errlen)) != VKLM_OK) goto done;
  st = write_meta(o, res, th, V, eot, err, errlen);
done:
  free(perm), free(order), free(in), free(val), free(vw), free(last);
  set_free(&s);
  vklm_model_destroy(m);
  vklm_ckpt_free(init);
  vklm_tokenizer_destroy(tk);
  return st;
}

/* ---- loading and scoring ------------------------------------------------------------------ */

struct vklm_classifier {
  vklm_model *m;
  vklm_tokenizer *tk;
  vklm_tokenizer_encoder *enc;
  vklm_token_ids tmp;
  int32_t eot, *in;
  uint32_t B, T, *last;
  float *val;
};

vklm_status vklm_classifier_load(vklm_context *ctx, const char *dir, uint32_t B,
                                 vklm_classifier **out, char *err, size_t errlen) {
  *out = NULL;
  char path[4096];
  vklm_classifier *c = calloc(1, sizeof *c);
  vklm_ckpt *ck = NULL;
  cJSON *meta = NULL;
  vklm_status st = VKLM_OK;
  if (!c) return fail(err, errlen, VKLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
  c->B = B ? B : 32;
  snprintf(path, sizeof path, "%s/classifier.json", dir);
  char *text = NULL, why[512];
  int f = vklm_file_read(path, VKLM_FILE_MAX_CONFIG, 0, &text, NULL, why, sizeof why) == VKLM_OK;
  meta = text ? cJSON_Parse(text) : NULL;
  free(text);
  cJSON *fmt = cJSON_GetObjectItem(meta, "format"), *jt = cJSON_GetObjectItem(meta, "T"),
        *je = cJSON_GetObjectItem(meta, "eot_id"),
        *jf = cJSON_GetObjectItem(meta, "tokenizer_fingerprint"),
        *jv = cJSON_GetObjectItem(meta, "vocab_size");
  if (!f || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, FORMAT) || !cJSON_IsNumber(jt) ||
      !cJSON_IsNumber(je) || !cJSON_IsString(jf) || !cJSON_IsNumber(jv) || jt->valuedouble < 2 ||
      jt->valuedouble > 1 << 20) {
    st = fail(err, errlen, VKLM_ERROR_INVALID, "%s is not a classifier directory (no valid "
              "classifier.json; train one with `vklm data classifier train`)", dir);
    goto done;
  }
  c->T = (uint32_t)jt->valuedouble;
  c->eot = (int32_t)je->valuedouble;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  uint64_t th = 0;
  char hex[32];
  if (file_hash(path, &th)) {
    st = fail(err, errlen, VKLM_ERROR_IO, "cannot read the classifier's tokenizer %s", path);
    goto done;
  }
  snprintf(hex, sizeof hex, "%016" PRIx64, th);
  if (strcmp(hex, jf->valuestring)) {
    st = fail(err, errlen, VKLM_ERROR_INVALID, "%s is not the tokenizer the classifier was "
              "trained with (fingerprint %s, trained with %s): refusing to score with another "
              "tokenizer", path, hex, jf->valuestring);
    goto done;
  }
  if (vklm_tokenizer_load(path, &c->tk, err, errlen)) {
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  snprintf(path, sizeof path, "%s/model.bin", dir);
  if ((st = vklm_ckpt_read(path, 0, &ck, err, errlen)) != VKLM_OK) goto done;
  uint64_t V = vklm_tokenizer_vocab_size(c->tk);
  if (ck->st.model.vocab_size != V || (double)V != jv->valuedouble ||
      vklm_tokenizer_special_id(c->tk, "<|endoftext|>") != c->eot) {
    st = fail(err, errlen, VKLM_ERROR_INVALID, "the classifier's model has a vocabulary of %u "
              "tokens, its tokenizer %llu: another tokenizer, refused", ck->st.model.vocab_size,
              (unsigned long long)V);
    goto done;
  }
  vklm_model_config cfg = ck->st.model;
  vklm_model_config_from_table(&cfg, ck->table, ck->ntensors);
  if (!cfg.scalar_head || cfg.max_seq < c->T) {
    st = fail(err, errlen, VKLM_ERROR_INVALID, "%s has no scalar head or too short a context", path);
    goto done;
  }
  vklm_model_options mo = {.frozen = 1};
  if ((st = vklm_model_create_f32(ctx, &cfg, c->B, c->T, VKLM_OBJ_CAUSAL, &mo, ck->params, &c->m,
                                  err, errlen)) != VKLM_OK)
    goto done;
  c->in = malloc((size_t)c->B * c->T * sizeof *c->in);
  c->val = malloc((size_t)c->B * c->T * sizeof *c->val);
  c->last = malloc(c->B * sizeof *c->last);
  if (!c->in || !c->val || !c->last || vklm_tokenizer_encoder_create(c->tk, &c->enc))
    st = fail(err, errlen, VKLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
done:
  cJSON_Delete(meta);
  vklm_ckpt_free(ck);
  if (st != VKLM_OK)
    vklm_classifier_destroy(c);
  else
    *out = c;
  return st;
}

void vklm_classifier_destroy(vklm_classifier *c) {
  if (!c) return;
  vklm_model_destroy(c->m);
  vklm_tokenizer_encoder_destroy(c->enc);
  vklm_tokenizer_destroy(c->tk);
  vklm_token_ids_free(&c->tmp);
  free(c->in), free(c->val), free(c->last);
  free(c);
}

uint32_t vklm_classifier_seq(const vklm_classifier *c) { return c->T; }

int vklm_classifier_encode(vklm_classifier *c, const char *text, size_t n, int32_t *ids,
                           uint32_t *len) {
  return encode_row(c->enc, &c->tmp, c->eot, c->T, text, n, ids, len) < 0 ? -1 : 0;
}

vklm_status vklm_classifier_score(vklm_classifier *c, const char *const *texts,
                                  const size_t *lens, uint32_t n, float *prob, float *values,
                                  char *err, size_t errlen) {
  for (uint32_t i = 0; i < n; i += c->B) {
    uint32_t k = n - i < c->B ? n - i : c->B;
    memset(c->in, 0, (size_t)c->B * c->T * sizeof *c->in);
    for (uint32_t r = 0; r < c->B; r++) {
      c->last[r] = 0;
      if (r >= k) continue;
      uint32_t len;
      if (vklm_classifier_encode(c, texts[i + r], lens[i + r], c->in + (size_t)r * c->T, &len))
        return fail(err, errlen, VKLM_ERROR_INVALID, "classifier: cannot encode document %u", i + r);
      c->last[r] = len - 1;
    }
    vklm_model_io io = {.inputs = c->in, .values = c->val};
    vklm_status st = vklm_model_run(c->m, &io);
    if (st != VKLM_OK)
      return fail(err, errlen, st, "classifier forward: %s", vklm_model_error(c->m));
    for (uint32_t r = 0; r < k; r++) {
      float v = c->val[(size_t)r * c->T + c->last[r]];
      prob[i + r] = (float)sigmoid(v);
      if (values) values[i + r] = v;
    }
  }
  return VKLM_OK;
}

int vklm_classifier_scorer(void *user, const char *const *texts, const size_t *lens, int n,
                           float *out, char *err, size_t errlen) {
  return vklm_classifier_score(user, texts, lens, (uint32_t)n, out, NULL, err, errlen) == VKLM_OK
             ? 0
             : -1;
}

/* vklm train: pretraining (engine/train) from token shards or a text file with a tokenizer.
 * vklm export: a checkpoint to safetensors with Hugging Face names and config.json, or to GGUF.
 * Flags and outputs: docs/training.md. */
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app_util.h"
#include "commands.h"
#include "formats/model_load.h"
#include "train/train.h"

static void train_usage(FILE *f) {
  fprintf(f,
      "usage: vklm train (--train PATTERN|DIR [--val PATTERN|DIR] | --text FILE -t TOKENIZER)\n"
      "                  [model] [training] [--out DIR] [--resume [CKPT]]\n"
      "data:\n"
      "  --train P        token shards: a glob (out/train_*.bin), a file, or a directory\n"
      "                   (its train_*.bin; its val_*.bin become the validation data)\n"
      "  --val P          validation shards (default: val_*.bin beside a --train directory)\n"
      "  --text FILE      a plain text file, encoded with -t/--tokenizer tokenizer.json\n"
      "  --val-fraction F the tail fraction of --text used for validation (default 0.1)\n"
      "model:\n"
      "  --model NAME     preset: gpt2-tiny (default), llama-tiny, gpt2-124M, gpt2-350M, llama-60M\n"
      "  --arch gpt2|llama  --layers L  --heads NH  --kv-heads NKV  --embd C  --ffn F\n"
      "  --ctx N          model positions (default: the preset's, raised to T)\n"
      "  --vocab V        vocabulary size (default: the data's)\n"
      "  --objective causal|mlm  (--mask-id ID: MLM mask token, default V-1)\n"
      "training:\n"
      "  -b, --batch B    sequences per micro-batch (4)     -T, --seq T  sequence length (64)\n"
      "  --grad-accum N   micro-batches per step (1)        --steps N    optimizer steps (100)\n"
      "  --lr X (6e-4) --warmup N (10) --min-lr X (lr/10)  linear warmup, cosine decay to min-lr\n"
      "  --wd X (0.1)  --clip X (1.0, 0: off)  --seed N (1337)\n"
      "  --val-every N (50) --val-batches N (8) --ckpt-every N (100) --log-every N (10)\n"
      "  --out DIR        checkpoint.bin, metrics.jsonl, loss.png (default out)\n"
      "  --resume [CKPT]  continue from CKPT (default DIR/checkpoint.bin), bit-identically\n"
      "  --force          a fresh run may replace DIR/checkpoint.bin\n"
      "  --stop-at N      stop with a checkpoint after step N (as if interrupted)\n"
      "  --no-plot  --quiet  --device D  --limits baseline  --validate\n");
}

/* SIGINT / SIGTERM: finish the step, write a checkpoint, exit 130; a second signal kills. */
static volatile int stop_requested = 0;
static void on_signal(int sig) {
  stop_requested = 1;
  signal(sig, SIG_DFL);
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

#define NEED_VALUE()                                                                             \
  do {                                                                                           \
    if (i + 1 >= argc) {                                                                         \
      fprintf(stderr, "vklm train: %s needs a value\n", a);                                      \
      return 2;                                                                                  \
    }                                                                                            \
  } while (0)

int cmd_train(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  vklm_train_options o;
  vklm_train_options_default(&o);
  const char *train_p = NULL, *val_p = NULL, *text = NULL, *tok = NULL, *model = "gpt2-tiny";
  double val_fraction = 0.1;
  int have_min_lr = 0, have_steps = 0;
  long layers = -1, heads = -1, kv = -1, embd = -1, ffn = -1, ctxlen = -1, vocab = -1;
  const char *arch = NULL, *objective = NULL;
  int resume = 0;
  const char *resume_file = NULL;
  for (int i = 1; i < argc; i++) {
    int r = app_config_flag(&cfg, argc, argv, &i);
    if (r < 0) return 2;
    if (r) continue;
    const char *a = argv[i];
#define IS(x) (!strcmp(a, x))
    if (IS("-h") || IS("--help")) { train_usage(stdout); return 0; }
    else if (IS("--force")) o.force = 1;
    else if (IS("--no-plot")) o.plot = 0;
    else if (IS("--quiet")) o.progress = 0;
    else if (IS("--resume")) {
      resume = 1;
      if (i + 1 < argc && argv[i + 1][0] != '-') resume_file = argv[++i];
    } else {
      NEED_VALUE();
      const char *v = argv[++i];
      if (IS("--train")) train_p = v;
      else if (IS("--val")) val_p = v;
      else if (IS("--text")) text = v;
      else if (IS("-t") || IS("--tokenizer")) tok = v;
      else if (IS("--val-fraction")) val_fraction = atof(v);
      else if (IS("--model")) model = v;
      else if (IS("--arch")) arch = v;
      else if (IS("--objective")) objective = v;
      else if (IS("--layers")) layers = atol(v);
      else if (IS("--heads")) heads = atol(v);
      else if (IS("--kv-heads")) kv = atol(v);
      else if (IS("--embd")) embd = atol(v);
      else if (IS("--ffn")) ffn = atol(v);
      else if (IS("--ctx")) ctxlen = atol(v);
      else if (IS("--vocab")) vocab = atol(v);
      else if (IS("--mask-id")) o.mask_id = atoi(v);
      else if (IS("-b") || IS("--batch")) o.B = (uint32_t)atol(v);
      else if (IS("-T") || IS("--seq")) o.T = (uint32_t)atol(v);
      else if (IS("--grad-accum")) o.grad_accum = (uint32_t)atol(v);
      else if (IS("--steps")) { o.steps = (uint32_t)atol(v); have_steps = 1; }
      else if (IS("--lr")) o.lr = (float)atof(v);
      else if (IS("--warmup")) o.warmup = (uint32_t)atol(v);
      else if (IS("--min-lr")) { o.min_lr = (float)atof(v); have_min_lr = 1; }
      else if (IS("--wd")) o.weight_decay = (float)atof(v);
      else if (IS("--clip")) o.grad_clip = (float)atof(v);
      else if (IS("--val-every")) o.val_every = (uint32_t)atol(v);
      else if (IS("--val-batches")) o.val_batches = (uint32_t)atol(v);
      else if (IS("--ckpt-every")) o.ckpt_every = (uint32_t)atol(v);
      else if (IS("--log-every")) o.log_every = (uint32_t)atol(v);
      else if (IS("--out")) o.out_dir = v;
      else if (IS("--seed")) o.seed = strtoull(v, NULL, 10);
      else if (IS("--stop-at")) o.stop_at = (uint32_t)atol(v);
      else {
        fprintf(stderr, "vklm train: unknown flag '%s'\n\n", a);
        train_usage(stderr);
        return 2;
      }
    }
#undef IS
  }
  if ((!train_p && !text) || (train_p && text) || (text && !tok)) {
    fprintf(stderr, "vklm train: give --train SHARDS, or --text FILE with -t TOKENIZER\n");
    train_usage(stderr);
    return 2;
  }
  if (!o.B || !o.T || !o.grad_accum || !o.steps || !(o.lr > 0)) {
    fprintf(stderr, "vklm train: batch, sequence, grad-accum, steps and lr must be positive\n");
    return 2;
  }
  if (!have_min_lr) o.min_lr = o.lr / 10;
  if (vklm_model_config_preset(model, &o.model) != VKLM_OK) {
    fprintf(stderr, "vklm train: unknown model '%s' (gpt2-tiny, llama-tiny, gpt2-124M, gpt2-350M, "
            "llama-60M)\n", model);
    return 2;
  }
  vklm_model_config *mc = &o.model;
  if (arch) {
    if (!strcmp(arch, "gpt2")) { mc->arch = VKLM_ARCH_GPT2; mc->tie_embeddings = 1; }
    else if (!strcmp(arch, "llama")) { mc->arch = VKLM_ARCH_LLAMA; mc->tie_embeddings = 0; }
    else { fprintf(stderr, "vklm train: --arch gpt2|llama\n"); return 2; }
  }
  if (objective) {
    if (!strcmp(objective, "causal")) o.objective = VKLM_OBJ_CAUSAL;
    else if (!strcmp(objective, "mlm")) o.objective = VKLM_OBJ_MLM;
    else { fprintf(stderr, "vklm train: --objective causal|mlm\n"); return 2; }
  }
  if (layers > 0) mc->n_layer = (uint32_t)layers;
  if (heads > 0) { mc->n_head = (uint32_t)heads; if (mc->arch == VKLM_ARCH_GPT2 || kv <= 0) mc->n_kv_head = (uint32_t)heads; }
  if (kv > 0) mc->n_kv_head = (uint32_t)kv;
  if (embd > 0) { mc->n_embd = (uint32_t)embd; if (ffn <= 0 && mc->arch == VKLM_ARCH_GPT2) mc->ffn_hidden = 4 * (uint32_t)embd; }
  if (ffn > 0) mc->ffn_hidden = (uint32_t)ffn;
  if (ctxlen > 0) mc->max_seq = (uint32_t)ctxlen;
  else if (o.T > mc->max_seq) mc->max_seq = o.T;
  mc->vocab_size = vocab > 0 ? (uint32_t)vocab : 0; /* 0: the data's */

  char err[2048] = "";
  vklm_tokens *tr = NULL, *va = NULL;
  vklm_status st;
  if (text) {
    st = vklm_tokens_from_text(text, tok, val_fraction, &tr, &va, err, sizeof err);
  } else {
    st = vklm_tokens_open_shards(train_p, "train_", &tr, err, sizeof err);
    if (st == VKLM_OK && val_p) st = vklm_tokens_open_shards(val_p, "val_", &va, err, sizeof err);
    else if (st == VKLM_OK && is_dir(train_p)) { /* val_*.bin beside train_*.bin, if any */
      char e2[512];
      if (vklm_tokens_open_shards(train_p, "val_", &va, e2, sizeof e2) != VKLM_OK) va = NULL;
    }
  }
  if (st != VKLM_OK) {
    fprintf(stderr, "vklm train: %s\n", err);
    vklm_tokens_destroy(tr);
    return 1;
  }
  char ckpt[4096];
  if (resume) {
    if (resume_file) snprintf(ckpt, sizeof ckpt, "%s", resume_file);
    else snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", o.out_dir);
    o.resume = ckpt;
    if (!have_steps) o.steps = 0; /* the checkpoint's total */
  }
  vklm_context *ctx = app_context(&cfg);
  if (!ctx) {
    vklm_tokens_destroy(tr);
    vklm_tokens_destroy(va);
    return 1;
  }
  if (o.progress)
    fprintf(stderr, "vklm train: %llu training tokens, %llu validation tokens, device %s\n",
            (unsigned long long)vklm_tokens_count(tr),
            (unsigned long long)(va ? vklm_tokens_count(va) : 0), vklm_context_caps(ctx)->name);
  vklm_train_result res;
  o.stop = &stop_requested;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  st = vklm_train_run(ctx, &o, tr, va, &res, err, sizeof err);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  int rc = 0;
  if (st != VKLM_OK) {
    fprintf(stderr, "vklm train: %s\n", err);
    rc = 1;
  } else if (res.interrupted) {
    fprintf(stderr, "vklm train: interrupted after step %u; checkpoint written to %s/checkpoint.bin "
            "(continue with --resume)\n", res.last_step, o.out_dir);
    rc = 130;
  } else if (o.progress) {
    char vl[64] = "";
    if (!isnan(res.last_val_loss)) snprintf(vl, sizeof vl, ", val loss %.4f", res.last_val_loss);
    fprintf(stderr, "vklm train: steps %u..%u, last loss %.4f%s, %.1f ms/step, %.0f tokens/s; "
            "outputs in %s/\n", res.first_step, res.last_step, res.losses[res.last_step], vl,
            res.ms_per_step, res.tokens_per_s, o.out_dir);
  }
  vklm_train_result_free(&res);
  vklm_context_destroy(ctx);
  vklm_tokens_destroy(tr);
  vklm_tokens_destroy(va);
  return rc;
}

/* vklm export --format gguf (formats/model_load.h). */
static int export_gguf(const char *model, const char *out, const char *type, const char *tok) {
  uint32_t t;
  if (!strcmp(type, "f32")) t = VKLM_GGML_TYPE_F32;
  else if (!strcmp(type, "f16")) t = VKLM_GGML_TYPE_F16;
  else if (!strcmp(type, "q8_0")) t = VKLM_GGML_TYPE_Q8_0;
  else if (!strcmp(type, "q4_0")) t = VKLM_GGML_TYPE_Q4_0;
  else {
    fprintf(stderr, "vklm export: unknown --type '%s' (f32, f16, q8_0, q4_0)\n", type);
    return 2;
  }
  char err[2048];
  vklm_ckpt *c = NULL;
  if (vklm_ckpt_read(model, 0, &c, err, sizeof err) != VKLM_OK ||
      vklm_export_gguf(out, &c->st.model, c->table, c->ntensors, c->params, t, tok, err,
                       sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm export: %s\n", err);
    vklm_ckpt_free(c);
    return 1;
  }
  fprintf(stderr, "vklm export: %s (%llu parameters, step %llu) -> %s (GGUF, linear weights %s%s%s)\n",
          model, (unsigned long long)c->nparams, (unsigned long long)c->st.step, out, type,
          tok ? ", tokenizer " : "", tok ? tok : "");
  vklm_ckpt_free(c);
  return 0;
}

int cmd_export(int argc, char **argv) {
  const char *model = NULL, *out = NULL, *format = "safetensors", *config = NULL;
  const char *type = "f32", *tok = NULL;
  int no_config = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      printf("usage: vklm export -m CHECKPOINT [--format safetensors] -o model.safetensors\n"
             "                   [--config config.json | --no-config]\n"
             "       vklm export -m CHECKPOINT --format gguf [--type f32|f16|q8_0|q4_0]\n"
             "                   [-t tokenizer.json] -o model.gguf\n"
             "safetensors: the parameters with Hugging Face names (GPT2LMHeadModel or\n"
             "LlamaForCausalLM) and HF's config.json (default: beside the output).\n"
             "gguf: llama.cpp's names and metadata; --type is the linear weights' type (norms and\n"
             "embeddings stay f32); Llama's Q/K rows are permuted into llama.cpp's RoPE order;\n"
             "-t adds tokenizer.ggml.* from a byte-level BPE tokenizer.json.\n");
      return 0;
    } else if (!strcmp(a, "--no-config")) no_config = 1;
    else if (i + 1 < argc && (!strcmp(a, "-m") || !strcmp(a, "--model"))) model = argv[++i];
    else if (i + 1 < argc && (!strcmp(a, "-o") || !strcmp(a, "--out"))) out = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--format")) format = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--config")) config = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--type")) type = argv[++i];
    else if (i + 1 < argc && (!strcmp(a, "-t") || !strcmp(a, "--tokenizer"))) tok = argv[++i];
    else {
      fprintf(stderr, "vklm export: unknown flag or missing value '%s'\n", a);
      return 2;
    }
  }
  if (!model || !out) {
    fprintf(stderr, "usage: vklm export -m CHECKPOINT --format safetensors -o FILE\n");
    return 2;
  }
  if (!strcmp(format, "gguf")) return export_gguf(model, out, type, tok);
  if (strcmp(format, "safetensors")) {
    fprintf(stderr, "vklm export: unknown format '%s' (safetensors, gguf)\n", format);
    return 2;
  }
  char cfgpath[4096], dir[4096];
  if (!config && !no_config) {
    snprintf(dir, sizeof dir, "%s", out);
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dirname(dir));
    config = cfgpath;
  }
  char err[2048];
  vklm_ckpt *c = NULL;
  if (vklm_ckpt_read(model, 0, &c, err, sizeof err) != VKLM_OK ||
      vklm_export_safetensors(c, out, no_config ? NULL : config, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm export: %s\n", err);
    vklm_ckpt_free(c);
    return 1;
  }
  fprintf(stderr, "vklm export: %s (%u tensors in vklm, %llu parameters, step %llu) -> %s%s%s\n",
          model, c->ntensors, (unsigned long long)c->nparams, (unsigned long long)c->st.step, out,
          no_config ? "" : " + ", no_config ? "" : config);
  vklm_ckpt_free(c);
  return 0;
}

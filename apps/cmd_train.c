/* vklm train: training (engine/train) from token shards or a text file with a tokenizer: a new
 * model, a resumed run (--resume) or a new run from a model's weights (--init).
 * vklm export: a checkpoint to safetensors with Hugging Face names and config.json, or to GGUF.
 * Flags and outputs: docs/training.md. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "align/align.h"
#include "app_util.h"
#include "commands.h"
#include "align_common.h"
#include "formats/model_load.h"
#include "train/train.h"

static void train_usage(FILE *f) {
  fprintf(f,
      "usage: vklm train (--train PATTERN|DIR [--val PATTERN|DIR] | --text FILE -t TOKENIZER)\n"
      "                  [model] [training] [--out DIR] [--resume [CKPT] | --init MODEL]\n"
      "data:\n"
      "  --train P        token shards: a glob (out/train_*.bin), a file, or a directory\n"
      "                   (its train_*.bin; its val_*.bin become the validation data)\n"
      "  --val P          validation shards (default: val_*.bin beside a --train directory)\n"
      "  --text FILE      a plain text file, encoded with -t/--tokenizer tokenizer.json\n"
      "  --val-fraction F the tail fraction of --text used for validation (default 0.1)\n"
      "  --data-order shuffled|sequential  training batches from shuffled windows of T+1 tokens\n"
      "                   (a fresh permutation per epoch from the seed; default) or in file order\n"
      "model (a new model; with --resume or --init the model comes from the checkpoint/MODEL and\n"
      "these flags, when given, must agree with it):\n"
      "  --model NAME     preset: gpt2-tiny (default), llama-tiny, gpt2-124M, gpt2-350M, llama-60M\n"
      "  --arch gpt2|llama  --layers L  --heads NH  --kv-heads NKV  --embd C  --ffn F\n"
      "  --ctx N          model positions (default: the preset's, raised to T)\n"
      "  --vocab V        vocabulary size (default: the data's)\n"
      "  --objective causal|mlm  (--mask-id ID: MLM mask token, default V-1)\n"
      "training (on --resume, the flags given override the checkpoint's values):\n"
      "  -b, --batch B    sequences per micro-batch (4)     -T, --seq T  sequence length (64)\n"
      "  --grad-accum N   micro-batches per step (1)        --steps N    optimizer steps (100)\n"
      "  --lr X (6e-4) --warmup N (10) --min-lr X (lr/10)  linear warmup, cosine decay to min-lr\n"
      "  --wd X (0.1)  --clip X (1.0, 0: off)  --seed N (1337)\n"
      "  --val-every N (50) --val-batches N (8) --ckpt-every N (100) --log-every N (10)\n"
      "  --out DIR        checkpoint.bin, metrics.jsonl, loss.png (default out)\n"
      "  --resume [CKPT]  continue a run from CKPT (default DIR/checkpoint.bin): its model,\n"
      "                   moments, step, data position and the values not given as flags\n"
      "  --init MODEL     a new run (step 0, fresh schedule and AdamW moments) from the weights\n"
      "                   of MODEL: a vklm checkpoint or run directory, an HF directory or a GGUF\n"
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

/* Typed, range-checked flag values: 0 with a message on stderr when v is not one. */
static int parse_u64(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (!*v || *end || errno || v[0] == '-' || x < lo || x > hi) {
    fprintf(stderr, "vklm train: %s wants an integer in [%llu, %llu], not '%s'\n", flag,
            (unsigned long long)lo, (unsigned long long)hi, v);
    return 0;
  }
  *out = x;
  return 1;
}

static int parse_u32(const char *flag, const char *v, uint32_t lo, uint32_t hi, uint32_t *out) {
  uint64_t x;
  if (!parse_u64(flag, v, lo, hi, &x)) return 0;
  *out = (uint32_t)x;
  return 1;
}

/* lo_open: the value must be above lo (not equal). */
static int parse_f(const char *flag, const char *v, double lo, int lo_open, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (!*v || *end || errno || !isfinite(x) || x < lo || (lo_open && x == lo) || x > hi) {
    fprintf(stderr, "vklm train: %s wants a number in %s%g, %g], not '%s'\n", flag,
            lo_open ? "(" : "[", lo, hi, v);
    return 0;
  }
  *out = x;
  return 1;
}

#define NEED_VALUE()                                                                             \
  do {                                                                                           \
    if (i + 1 >= argc) {                                                                         \
      fprintf(stderr, "vklm train: %s needs a value\n", a);                                      \
      return 2;                                                                                  \
    }                                                                                            \
  } while (0)

static void sft_usage(FILE *f) {
  fprintf(f,
      "usage: vklm sft --data FILE.jsonl (--init MODEL | --resume [CKPT]) [-t TOKENIZER]\n"
      "                [--val FILE.jsonl | --val-fraction F] [--loss-on-prompt]\n"
      "                [--template NAME|FILE] [--bad-rows stop|skip] [training flags]\n"
      "Supervised fine-tuning: the training loop of `vklm train` (schedule, checkpoints, resume,\n"
      "metrics, loss plot, progress) over prompt-response examples, one per row, right-padded to\n"
      "T (examples never share a row, so they never see each other), the loss on the completion\n"
      "tokens only (docs/alignment.md).\n"
      "  --data FILE      JSONL: {\"prompt\",\"completion\"}, {\"messages\":[{\"role\",\"content\"}]}\n"
      "                   (the chat template renders it; loss on the assistant turns) or {\"text\"}\n"
      "  --init MODEL     the model to fine-tune: a vklm checkpoint or run directory, an HF\n"
      "                   directory or a GGUF (its tokenizer.json beside it, or -t)\n"
      "  --val FILE       held-out examples (default: the last --val-fraction of --data, 0.1)\n"
      "  --loss-on-prompt the prompt's tokens count in the loss too\n"
      "  --template T     chat template for {\"messages\"} rows: a built-in (chatml, llama3,\n"
      "                   plain) or a Jinja file (default: the model's own, else chatml)\n"
      "  --bad-rows stop|skip  a bad row stops the run (default) or is skipped and counted\n"
      "  --eval-answers FILE  {\"prompt\",\"answer\"} rows: exact match of the greedy answers\n"
      "                   before and after fine-tuning (--answer-tokens N, 16), in DIR/sft_eval.json\n"
      "training flags: as `vklm train --help` (-b, -T, --steps, --lr, --warmup, --out, ...).\n");
}

/* Loads the SFT examples for `vklm sft` into train/val token sources. */
static int sft_data(const char *data, const char *valfile, double val_fraction, const char *tok,
                    const char *init, const char *tmpl_name, int loss_on_prompt, int skip_bad,
                    uint32_t T, uint32_t B, const char *copy_to, vklm_tokens **tr,
                    vklm_tokens **va) {
  char err[2048] = "";
  align_text at;
  if (!align_text_open("vklm sft", init, tok, tmpl_name, &at)) return 0;
  if (copy_to && !align_copy_text_files("vklm sft", init, tok, at.tk, copy_to)) {
    align_text_close(&at);
    return 0;
  }
  vklm_tokenizer *tk = at.tk;
  vklm_chat_template *tmpl = at.tmpl;
  int32_t eos = at.eos;
  vklm_align_read_opts ro = {.tk = tk, .tmpl = tmpl, .eos = eos, .max_len = T + 1,
                             .loss_on_prompt = loss_on_prompt,
                             .bad_rows = skip_bad ? VKLM_BAD_ROWS_SKIP : VKLM_BAD_ROWS_STOP};
  vklm_sft_set set = {0}, vset = {0};
  vklm_align_stats stt, vst;
  int ok = vklm_sft_read(data, &ro, &set, &stt, err, sizeof err) == VKLM_OK;
  if (ok && valfile) ok = vklm_sft_read(valfile, &ro, &vset, &vst, err, sizeof err) == VKLM_OK;
  uint64_t V = vklm_tokenizer_vocab_size(tk);
  if (ok) {
    fprintf(stderr, "vklm sft: %s: %llu rows, %llu examples (%llu tokens, %llu in the loss), "
            "%llu skipped (too long %llu, bad JSON %llu, bad fields %llu, empty %llu)\n", data,
            (unsigned long long)stt.rows, (unsigned long long)stt.kept,
            (unsigned long long)stt.tokens, (unsigned long long)stt.target_tokens,
            (unsigned long long)stt.skipped, (unsigned long long)stt.too_long,
            (unsigned long long)stt.bad_json, (unsigned long long)stt.bad_field,
            (unsigned long long)stt.empty);
    uint64_t nval = valfile ? 0 : (uint64_t)(set.n * val_fraction);
    if (!valfile && nval < B && nval > 0) {
      fprintf(stderr, "vklm sft: %llu held-out examples are fewer than a batch (B=%u): no "
              "validation\n", (unsigned long long)nval, B);
      nval = 0;
    }
    ok = vklm_sft_tokens(&set, 0, set.n - nval, V, tr) == VKLM_OK;
    if (ok && nval) ok = vklm_sft_tokens(&set, set.n - nval, set.n, V, va) == VKLM_OK;
    if (ok && valfile) {
      if (vset.n < B) fprintf(stderr, "vklm sft: --val has %llu examples, fewer than B=%u: no "
                              "validation\n", (unsigned long long)vset.n, B);
      else ok = vklm_sft_tokens(&vset, 0, vset.n, V, va) == VKLM_OK;
    }
    if (!ok) snprintf(err, sizeof err, "too few examples (%llu) for validation and training",
                      (unsigned long long)set.n);
  }
  if (!ok) fprintf(stderr, "vklm sft: %s\n", err);
  vklm_sft_free(&set);
  vklm_sft_free(&vset);
  align_text_close(&at);
  return ok;
}

/* Exact match of model's greedy answers to the {"prompt","answer"} rows of file. */
static int answers_em(vklm_context *ctx, const char *model, const char *file, const char *tok,
                      uint32_t max_tokens, uint64_t *correct, uint64_t *n) {
  align_text at;
  vklm_ckpt *ck = NULL;
  vklm_model *m = NULL;
  vklm_pref_set items = {0};
  vklm_align_stats stt;
  char err[2048] = "", kind[16];
  int ok = align_text_open("vklm sft", model, tok, NULL, &at);
  vklm_align_read_opts ro = {.tk = at.tk, .tmpl = at.tmpl, .eos = at.eos};
  vklm_model_options fo = {.frozen = 1};
  ok = ok && vklm_pref_read(file, &ro, 1, &items, &stt, err, sizeof err) == VKLM_OK &&
       vklm_train_open_init(model, &ck, kind, sizeof kind, err, sizeof err) == VKLM_OK &&
       vklm_align_model(ctx, ck, 0, 0, 0, &fo, 0, &m, err, sizeof err) == VKLM_OK &&
       vklm_align_exact_match(m, at.tk, &items, max_tokens, at.eos, correct, err, sizeof err) ==
           VKLM_OK;
  if (!ok && err[0]) fprintf(stderr, "vklm sft: --eval-answers: %s\n", err);
  *n = items.n;
  vklm_model_destroy(m);
  vklm_ckpt_free(ck);
  vklm_pref_free(&items);
  align_text_close(&at);
  return ok;
}

int cmd_sft(int argc, char **argv) { return cmd_train(argc, argv); }

int cmd_train(int argc, char **argv) {
  const int sft = !strcmp(argv[0], "sft");
  const char *cmdname = sft ? "vklm sft" : "vklm train";
  const char *sft_file = NULL, *tmpl_name = NULL, *eval_answers = NULL;
  uint32_t answer_tokens = 16;
  int loss_on_prompt = 0, skip_bad = 0;
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  vklm_train_options o;
  vklm_train_options_default(&o);
  const char *train_p = NULL, *val_p = NULL, *text = NULL, *tok = NULL, *model = NULL;
  double val_fraction = 0.1, x;
  uint32_t layers = 0, heads = 0, kv = 0, embd = 0, ffn = 0, ctxlen = 0, vocab = 0, mask_id = 0;
  const char *arch = NULL, *objective = NULL;
  int resume = 0;
  const char *resume_file = NULL;
  const uint32_t BIG = 1u << 30;
  for (int i = 1; i < argc; i++) {
    int r = app_config_flag(&cfg, argc, argv, &i);
    if (r < 0) return 2;
    if (r) continue;
    const char *a = argv[i];
#define IS(x) (!strcmp(a, x))
#define U32(lo, hi, dst, bit) \
  do { if (!parse_u32(a, v, lo, hi, dst)) return 2; o.given |= (bit); } while (0)
#define F32(lo, open, hi, dst, bit) \
  do { if (!parse_f(a, v, lo, open, hi, &x)) return 2; *(dst) = (float)x; o.given |= (bit); } while (0)
    if (IS("-h") || IS("--help")) { sft ? sft_usage(stdout) : train_usage(stdout); return 0; }
    else if (IS("--force")) o.force = 1;
    else if (sft && IS("--loss-on-prompt")) loss_on_prompt = 1;
    else if (IS("--no-plot")) o.plot = 0;
    else if (IS("--quiet")) o.progress = 0;
    else if (IS("--resume")) {
      resume = 1;
      if (i + 1 < argc && argv[i + 1][0] != '-') resume_file = argv[++i];
    } else {
      NEED_VALUE();
      const char *v = argv[++i];
      if (sft && IS("--data")) sft_file = v;
      else if (sft && IS("--template")) tmpl_name = v;
      else if (sft && IS("--eval-answers")) eval_answers = v;
      else if (sft && IS("--answer-tokens")) U32(1, 1u << 16, &answer_tokens, 0);
      else if (sft && IS("--bad-rows")) {
        if (!strcmp(v, "skip")) skip_bad = 1;
        else if (strcmp(v, "stop")) { fprintf(stderr, "vklm sft: --bad-rows stop|skip, not '%s'\n", v); return 2; }
      } else if (sft && IS("--val")) val_p = v;
      else if (!sft && IS("--train")) train_p = v;
      else if (IS("--val")) val_p = v;
      else if (IS("--text")) text = v;
      else if (IS("-t") || IS("--tokenizer")) tok = v;
      else if (IS("--val-fraction")) {
        if (!parse_f(a, v, 0, 0, 0.99, &val_fraction)) return 2;
      } else if (IS("--init")) o.init = v;
      else if (IS("--model")) model = v;
      else if (IS("--arch")) arch = v;
      else if (IS("--objective")) objective = v;
      else if (IS("--data-order")) {
        if (!strcmp(v, "shuffled")) o.data_order = VKLM_DATA_SHUFFLED;
        else if (!strcmp(v, "sequential")) o.data_order = VKLM_DATA_SEQUENTIAL;
        else { fprintf(stderr, "vklm train: --data-order shuffled|sequential, not '%s'\n", v); return 2; }
        o.given |= VKLM_GIVEN_DATA_ORDER;
      }
      else if (IS("--layers")) U32(1, 4096, &layers, VKLM_GIVEN_LAYERS);
      else if (IS("--heads")) U32(1, 4096, &heads, VKLM_GIVEN_HEADS);
      else if (IS("--kv-heads")) U32(1, 4096, &kv, VKLM_GIVEN_KV_HEADS);
      else if (IS("--embd")) U32(1, 1u << 20, &embd, VKLM_GIVEN_EMBD);
      else if (IS("--ffn")) U32(1, 1u << 22, &ffn, VKLM_GIVEN_FFN);
      else if (IS("--ctx")) U32(1, 1u << 24, &ctxlen, VKLM_GIVEN_CTX);
      else if (IS("--vocab")) U32(1, 1u << 28, &vocab, VKLM_GIVEN_VOCAB);
      else if (IS("--mask-id")) U32(0, (1u << 28) - 1, &mask_id, VKLM_GIVEN_MASK_ID);
      else if (IS("-b") || IS("--batch")) U32(1, BIG, &o.B, VKLM_GIVEN_B);
      else if (IS("-T") || IS("--seq")) U32(1, 1u << 24, &o.T, VKLM_GIVEN_T);
      else if (IS("--grad-accum")) U32(1, 1u << 16, &o.grad_accum, VKLM_GIVEN_GRAD_ACCUM);
      else if (IS("--steps")) U32(1, UINT32_MAX - 1, &o.steps, VKLM_GIVEN_STEPS);
      else if (IS("--lr")) F32(0, 1, 10, &o.lr, VKLM_GIVEN_LR);
      else if (IS("--warmup")) U32(0, UINT32_MAX - 1, &o.warmup, VKLM_GIVEN_WARMUP);
      else if (IS("--min-lr")) F32(0, 0, 10, &o.min_lr, VKLM_GIVEN_MIN_LR);
      else if (IS("--wd")) F32(0, 0, 100, &o.weight_decay, VKLM_GIVEN_WD);
      else if (IS("--clip")) F32(0, 0, 1e9, &o.grad_clip, VKLM_GIVEN_CLIP);
      else if (IS("--val-every")) U32(0, UINT32_MAX, &o.val_every, 0);
      else if (IS("--val-batches")) U32(0, 1u << 20, &o.val_batches, 0);
      else if (IS("--ckpt-every")) U32(0, UINT32_MAX, &o.ckpt_every, 0);
      else if (IS("--log-every")) U32(0, UINT32_MAX, &o.log_every, 0);
      else if (IS("--out")) o.out_dir = v;
      else if (IS("--seed")) {
        if (!parse_u64(a, v, 0, UINT64_MAX, &o.seed)) return 2;
        o.given |= VKLM_GIVEN_SEED;
      } else if (IS("--stop-at")) U32(0, UINT32_MAX, &o.stop_at, 0);
      else {
        fprintf(stderr, "%s: unknown flag '%s'\n\n", cmdname, a);
        sft ? sft_usage(stderr) : train_usage(stderr);
        return 2;
      }
    }
#undef IS
#undef U32
#undef F32
  }
  if (sft && (!sft_file || (!o.init && !resume))) {
    fprintf(stderr, "vklm sft: give --data FILE.jsonl and the model to fine-tune (--init MODEL, "
            "or --resume to continue a fine-tuning run)\n");
    sft_usage(stderr);
    return 2;
  }
  if (!sft && ((!train_p && !text) || (train_p && text) || (text && !tok))) {
    fprintf(stderr, "vklm train: give --train SHARDS, or --text FILE with -t TOKENIZER\n");
    train_usage(stderr);
    return 2;
  }
  if (resume && o.init) {
    fprintf(stderr, "vklm train: --resume continues a run, --init starts a new one from a model's "
            "weights: give one of them\n");
    return 2;
  }
  if (!(o.given & VKLM_GIVEN_MIN_LR)) o.min_lr = o.lr / 10;
  if (vklm_model_config_preset(model ? model : "gpt2-tiny", &o.model) != VKLM_OK) {
    fprintf(stderr, "vklm train: unknown model '%s' (gpt2-tiny, llama-tiny, gpt2-124M, gpt2-350M, "
            "llama-60M)\n", model);
    return 2;
  }
  if (model)
    o.given |= VKLM_GIVEN_ARCH | VKLM_GIVEN_LAYERS | VKLM_GIVEN_HEADS | VKLM_GIVEN_KV_HEADS |
               VKLM_GIVEN_EMBD | VKLM_GIVEN_FFN | VKLM_GIVEN_TIE;
  vklm_model_config *mc = &o.model;
  if (arch) {
    if (!strcmp(arch, "gpt2")) { mc->arch = VKLM_ARCH_GPT2; mc->tie_embeddings = 1; }
    else if (!strcmp(arch, "llama")) { mc->arch = VKLM_ARCH_LLAMA; mc->tie_embeddings = 0; }
    else { fprintf(stderr, "vklm train: --arch gpt2|llama, not '%s'\n", arch); return 2; }
    o.given |= VKLM_GIVEN_ARCH;
  }
  if (objective) {
    if (!strcmp(objective, "causal")) o.objective = VKLM_OBJ_CAUSAL;
    else if (!strcmp(objective, "mlm")) o.objective = VKLM_OBJ_MLM;
    else { fprintf(stderr, "vklm train: --objective causal|mlm, not '%s'\n", objective); return 2; }
    o.given |= VKLM_GIVEN_OBJECTIVE;
  }
  if (o.given & VKLM_GIVEN_MASK_ID) o.mask_id = (int32_t)mask_id;
  if (layers) mc->n_layer = layers;
  if (heads) { mc->n_head = heads; if (mc->arch == VKLM_ARCH_GPT2 || !kv) mc->n_kv_head = heads; }
  if (kv) mc->n_kv_head = kv;
  if (embd) { mc->n_embd = embd; if (!ffn && mc->arch == VKLM_ARCH_GPT2) mc->ffn_hidden = 4 * embd; }
  if (ffn) mc->ffn_hidden = ffn;
  if (ctxlen) mc->max_seq = ctxlen;
  else if (o.T > mc->max_seq) mc->max_seq = o.T;
  mc->vocab_size = vocab; /* 0: the data's */

  char err[2048] = "";
  vklm_tokens *tr = NULL, *va = NULL;
  vklm_status st;
  if (sft) {
    char rck[4096];
    snprintf(rck, sizeof rck, "%s/checkpoint.bin", o.out_dir);
    const char *src = o.init ? o.init : resume_file ? resume_file : rck;
    if (!sft_data(sft_file, val_p, val_fraction, tok, src, tmpl_name, loss_on_prompt, skip_bad,
                  o.T, o.B, o.init ? o.out_dir : NULL, &tr, &va))
      return 1;
    st = VKLM_OK;
  } else if (text) {
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
    fprintf(stderr, "%s: %s\n", cmdname, err);
    vklm_tokens_destroy(tr);
    return 1;
  }
  char ckpt[4096];
  if (resume) {
    if (resume_file) snprintf(ckpt, sizeof ckpt, "%s", resume_file);
    else snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", o.out_dir);
    o.resume = ckpt;
  }
  vklm_context *ctx = app_context(&cfg);
  if (!ctx) {
    vklm_tokens_destroy(tr);
    vklm_tokens_destroy(va);
    return 1;
  }
  if (o.progress)
    fprintf(stderr, "%s: %llu training tokens, %llu validation tokens, device %s\n", cmdname,
            (unsigned long long)vklm_tokens_count(tr),
            (unsigned long long)(va ? vklm_tokens_count(va) : 0), vklm_context_caps(ctx)->name);
  uint64_t em_before = 0, em_after = 0, em_n = 0;
  int have_before = 0;
  if (eval_answers && o.init) {
    if (!answers_em(ctx, o.init, eval_answers, tok, answer_tokens, &em_before, &em_n)) {
      vklm_context_destroy(ctx);
      vklm_tokens_destroy(tr);
      vklm_tokens_destroy(va);
      return 1;
    }
    have_before = 1;
    fprintf(stderr, "vklm sft: exact match before fine-tuning: %llu/%llu on %s\n",
            (unsigned long long)em_before, (unsigned long long)em_n, eval_answers);
  }
  vklm_train_result res;
  o.stop = &stop_requested;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  st = vklm_train_run(ctx, &o, tr, va, &res, err, sizeof err);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  int rc = 0;
  if (st != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmdname, err);
    rc = 1;
  } else if (res.interrupted) {
    fprintf(stderr, "%s: interrupted after step %u; checkpoint written to %s/checkpoint.bin "
            "(continue with --resume)\n", cmdname, res.last_step, o.out_dir);
    rc = 130;
  } else if (o.progress) {
    char vl[64] = "";
    if (!isnan(res.last_val_loss)) snprintf(vl, sizeof vl, ", val loss %.4f", res.last_val_loss);
    fprintf(stderr, "%s: steps %u..%u, last loss %.4f%s, %.1f ms/step, %.0f tokens/s; "
            "outputs in %s/\n", cmdname, res.first_step, res.last_step, res.losses[res.last_step], vl,
            res.ms_per_step, res.tokens_per_s, o.out_dir);
  }
  if (rc == 0 && eval_answers) {
    char ck[4096], path[4096];
    snprintf(ck, sizeof ck, "%s/checkpoint.bin", o.out_dir);
    if (!answers_em(ctx, ck, eval_answers, tok, answer_tokens, &em_after, &em_n)) {
      rc = 1;
    } else {
      fprintf(stderr, "vklm sft: exact match after fine-tuning: %llu/%llu%s\n",
              (unsigned long long)em_after, (unsigned long long)em_n,
              have_before ? "" : " (no figure before: a resumed run)");
      snprintf(path, sizeof path, "%s/sft_eval.json", o.out_dir);
      FILE *f = fopen(path, "w");
      char before[32] = "null";
      if (have_before) snprintf(before, sizeof before, "%llu", (unsigned long long)em_before);
      if (f) {
        fprintf(f, "{\"items\": %llu, \"exact_match_before\": %s, \"exact_match_after\": "
                "%llu}\n", (unsigned long long)em_n, before, (unsigned long long)em_after);
        fclose(f);
      }
    }
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

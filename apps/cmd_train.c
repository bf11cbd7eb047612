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
#include "flags.h"
#include "align_common.h"
#include "formats/model_load.h"
#include "train/train.h"

static const char train_about[] =
    "Trains a new model, continues a run (--resume) or starts a new run from a model's weights\n"
    "(--init). Data: --train shards (a glob, a file, or a directory whose val_*.bin become the\n"
    "validation data) or --text FILE with -t tokenizer.json. Model flags describe a new model;\n"
    "with --resume or --init the model comes from the checkpoint and the model flags given must\n"
    "agree with it; on --resume the training flags given override the checkpoint's values.\n"
    "Data parallel: mpirun -np N vklm train ... (docs/distributed.md): --grad-accum counts the\n"
    "micro-batches of the whole step (a multiple of N; default N), split over the ranks;\n"
    "--device D0,D1,...: the device of each local rank (default: by local rank).";

static const char sft_about[] =
    "Supervised fine-tuning: the training loop of `vklm train` (schedule, checkpoints, resume,\n"
    "metrics, loss plot, progress) over prompt-response examples, one per row, right-padded to\n"
    "T (examples never share a row, so they never see each other), the loss on the completion\n"
    "tokens only (docs/alignment.md).";

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
  double val_fraction = 0.1;
  uint32_t layers = 0, heads = 0, kv = 0, embd = 0, ffn = 0, ctxlen = 0, vocab = 0, mask_id = 0;
  const char *arch = NULL, *objective = NULL;
  int resume = 0;
  const char *resume_file = NULL;
  const uint32_t BIG = 1u << 30;
  int data_order = -1, no_plot = 0, quiet = 0, precision = 0;
  uint32_t *g = &o.given;
  const app_flag sft_flags[] = {
      AF_STRING("--data", NULL, &sft_file, "FILE",
                "JSONL: {\"prompt\",\"completion\"}, {\"messages\":[{\"role\",\"content\"}]}\n"
                "(the chat template renders it; loss on the assistant turns) or {\"text\"}"),
      AF_STRING("--val", NULL, &val_p, "FILE",
                "held-out examples (default: the last --val-fraction of --data)"),
      AF_BOOL("--loss-on-prompt", &loss_on_prompt, "the prompt's tokens count in the loss too"),
      AF_STRING("--template", NULL, &tmpl_name, "T",
                "chat template for {\"messages\"} rows: a built-in (chatml, llama3,\n"
                "plain) or a Jinja file (default: the model's own, else chatml)"),
      AF_FLAG("--bad-rows", NULL, AF_CHOICE, &skip_bad, 0, 0, "stop|skip",
              "a bad row stops the run (default) or is skipped and counted"),
      AF_STRING("--eval-answers", NULL, &eval_answers, "FILE",
                "{\"prompt\",\"answer\"} rows: exact match of the greedy answers\n"
                "before and after fine-tuning, in DIR/sft_eval.json"),
      AF_FLAG("--answer-tokens", NULL, AF_U32, &answer_tokens, 1, 1u << 16, "N",
              "tokens per --eval-answers answer (16)"),
      AF_LAST};
  const app_flag train_data_flags[] = {
      AF_STRING("--train", NULL, &train_p, "P",
                "token shards: a glob (out/train_*.bin), a file, or a directory"),
      AF_STRING("--val", NULL, &val_p, "P",
                "validation shards (default: val_*.bin beside a --train directory)"),
      AF_STRING("--text", NULL, &text, "FILE", "a plain text file, encoded with -t tokenizer.json"),
      AF_GIVEN("--data-order", NULL, AF_CHOICE, &data_order, 0, 0, "shuffled|sequential",
               "training batches from shuffled windows of T+1 tokens (a fresh\n"
               "permutation per epoch from the seed; default) or in file order", g,
               VKLM_GIVEN_DATA_ORDER),
      AF_STRING("--model", NULL, &model, "NAME",
                "preset: gpt2-tiny (default), llama-tiny, gpt2-124M, gpt2-350M, llama-60M"),
      AF_STRING("--arch", NULL, &arch, "gpt2|llama", "architecture of a new model"),
      AF_GIVEN("--layers", NULL, AF_U32, &layers, 1, 4096, "L", "layers", g, VKLM_GIVEN_LAYERS),
      AF_GIVEN("--heads", NULL, AF_U32, &heads, 1, 4096, "NH", "attention heads", g,
               VKLM_GIVEN_HEADS),
      AF_GIVEN("--kv-heads", NULL, AF_U32, &kv, 1, 4096, "NKV", "key/value heads (Llama)", g,
               VKLM_GIVEN_KV_HEADS),
      AF_GIVEN("--embd", NULL, AF_U32, &embd, 1, 1u << 20, "C", "width", g, VKLM_GIVEN_EMBD),
      AF_GIVEN("--ffn", NULL, AF_U32, &ffn, 1, 1u << 22, "F", "MLP width", g, VKLM_GIVEN_FFN),
      AF_GIVEN("--ctx", NULL, AF_U32, &ctxlen, 1, 1u << 24, "N",
               "model positions (default: the preset's, raised to T)", g, VKLM_GIVEN_CTX),
      AF_GIVEN("--vocab", NULL, AF_U32, &vocab, 1, 1u << 28, "V",
               "vocabulary size (default: the data's)", g, VKLM_GIVEN_VOCAB),
      AF_STRING("--objective", NULL, &objective, "causal|mlm", "the training objective (causal)"),
      AF_GIVEN("--mask-id", NULL, AF_U32, &mask_id, 0, (1u << 28) - 1, "ID",
               "MLM mask token (default V-1)", g, VKLM_GIVEN_MASK_ID),
      AF_LAST};
  const app_flag flags[] = {
      AF_INCLUDE(sft ? sft_flags : train_data_flags),
      AF_STRING("--tokenizer", "-t", &tok, "F", "tokenizer.json"),
      AF_FLAG("--val-fraction", NULL, AF_F64, &val_fraction, 0, 0.99, "F",
              "the tail fraction of --text (or of sft --data) held out (0.1)"),
      AF_STRING("--init", NULL, &o.init, "MODEL",
                "a new run (step 0, fresh schedule and AdamW moments) from the weights\n"
                "of MODEL: a vklm checkpoint or run directory, an HF directory or a GGUF"),
      AF_BOOL("--resume", &resume,
              "continue a run from CKPT (an argument after it; default\n"
              "DIR/checkpoint.bin): its model, moments, step, data position and the\n"
              "values not given as flags"),
      AF_GIVEN("--batch", "-b", AF_U32, &o.B, 1, BIG, "B", "sequences per micro-batch (4)", g,
               VKLM_GIVEN_B),
      AF_GIVEN("--seq", "-T", AF_U32, &o.T, 1, 1u << 24, "T", "sequence length (64)", g,
               VKLM_GIVEN_T),
      AF_GIVEN("--grad-accum", NULL, AF_U32, &o.grad_accum, 1, 1u << 16, "N",
               "micro-batches per step (1)", g, VKLM_GIVEN_GRAD_ACCUM),
      AF_GIVEN("--steps", NULL, AF_U32, &o.steps, 1, UINT32_MAX - 1, "N", "optimizer steps (100)",
               g, VKLM_GIVEN_STEPS),
      AF_GIVEN("--lr", NULL, AF_F32, &o.lr, 1e-12, 10, "X",
               "peak learning rate (6e-4): linear warmup, cosine decay to --min-lr", g,
               VKLM_GIVEN_LR),
      AF_GIVEN("--warmup", NULL, AF_U32, &o.warmup, 0, UINT32_MAX - 1, "N", "warmup steps (10)", g,
               VKLM_GIVEN_WARMUP),
      AF_GIVEN("--min-lr", NULL, AF_F32, &o.min_lr, 0, 10, "X", "final learning rate (lr/10)", g,
               VKLM_GIVEN_MIN_LR),
      AF_GIVEN("--wd", NULL, AF_F32, &o.weight_decay, 0, 100, "X", "weight decay (0.1)", g,
               VKLM_GIVEN_WD),
      AF_GIVEN("--clip", NULL, AF_F32, &o.grad_clip, 0, 1e9, "X",
               "global gradient-norm clip (1.0, 0: off)", g, VKLM_GIVEN_CLIP),
      AF_GIVEN("--seed", NULL, AF_U64, &o.seed, 0, 18446744073709551615.0, "N", "seed (1337)", g,
               VKLM_GIVEN_SEED),
      AF_FLAG("--val-every", NULL, AF_U32, &o.val_every, 0, UINT32_MAX, "N",
              "steps between validations (50)"),
      AF_FLAG("--val-batches", NULL, AF_U32, &o.val_batches, 0, 1u << 20, "N",
              "validation batches (8)"),
      AF_FLAG("--ckpt-every", NULL, AF_U32, &o.ckpt_every, 0, UINT32_MAX, "N",
              "steps between checkpoints (100)"),
      AF_FLAG("--log-every", NULL, AF_U32, &o.log_every, 0, UINT32_MAX, "N",
              "steps between progress lines (10)"),
      AF_STRING("--out", NULL, &o.out_dir, "DIR", "checkpoint.bin, metrics.jsonl, loss.png (out)"),
      AF_BOOL("--force", &o.force, "a fresh run may replace DIR/checkpoint.bin"),
      AF_FLAG("--stop-at", NULL, AF_U32, &o.stop_at, 0, UINT32_MAX, "N",
              "stop with a checkpoint after step N (as if interrupted)"),
      AF_BOOL("--zero1", &o.zero1,
              "under mpirun: shard the AdamW moments and master weights over the\n"
              "ranks (ZeRO-1)"),
      AF_BOOL("--recompute", &o.recompute,
              "recompute the norms and the MLP activation in the backward instead\n"
              "of keeping them per layer: less activation memory, the same results"),
      AF_GIVEN("--precision", NULL, AF_CHOICE, &precision, 0, 0, "f32|bf16|f16",
               "the dtype the GEMMs read the weights in (f32): bf16 or f16 copies of\n"
               "the fp32 master weights; f16 with dynamic loss scaling", g,
               VKLM_GIVEN_PRECISION),
      AF_FLAG("--loss-scale", NULL, AF_F32, &o.loss_scale, 0, 1.7e38, "S",
              "f16: the loss scale to start from, a power of two (65536; on\n"
              "--resume: the checkpoint's)"),
      AF_BOOL("--no-plot", &no_plot, "no loss.png"),
      AF_BOOL("--quiet", &quiet, "no progress lines"),
      AF_LAST};
  const app_command cmd = {
      sft ? "sft" : "train",
      sft ? "sft --data FILE.jsonl (--init MODEL | --resume [CKPT]) [-t TOKENIZER] [flags]"
          : "train (--train PATTERN|DIR [--val PATTERN|DIR] | --text FILE -t TOKENIZER) "
            "[flags] [--resume [CKPT] | --init MODEL]",
      sft ? sft_about : train_about, flags, 0, 1, 1};
  const char *pos[1] = {NULL};
  int npos = 0, pr = app_flags_parse(&cmd, argc, argv, &cfg, pos, &npos);
  if (pr) return pr == 1 ? 0 : pr;
  if (npos && !resume) {
    fprintf(stderr, "%s: unexpected argument '%s' (a checkpoint goes after --resume)\n", cmdname,
            pos[0]);
    return 2;
  }
  if (npos) resume_file = pos[0];
  if (data_order >= 0) o.data_order = data_order ? VKLM_DATA_SEQUENTIAL : VKLM_DATA_SHUFFLED;
  o.precision = precision == 1 ? VKLM_DTYPE_BF16 : precision == 2 ? VKLM_DTYPE_F16 : VKLM_DTYPE_F32;
  if (no_plot) o.plot = 0;
  if (quiet) o.progress = 0;
  if (sft && (!sft_file || (!o.init && !resume)))
    return app_flags_missing(&cmd, "give --data FILE.jsonl and the model to fine-tune (--init "
                             "MODEL, or --resume to continue a fine-tuning run)");
  if (!sft && ((!train_p && !text) || (train_p && text) || (text && !tok)))
    return app_flags_missing(&cmd, "give --train SHARDS, or --text FILE with -t TOKENIZER");
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
  /* Under mpirun / srun: one rank of a data-parallel job (docs/distributed.md). */
  vklm_dist *dist = NULL;
  if ((st = vklm_dist_init(&dist, err, sizeof err)) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmdname, err);
    return 1;
  }
  int nranks = vklm_dist_size(dist), rank = vklm_dist_rank(dist);
  if (nranks > 1) {
    vklm_caps devs[16];
    int ndev = 0;
    char e2[512], want[128];
    if (vklm_devices_query(&cfg, devs, 16, &ndev, e2, sizeof e2) != VKLM_OK) ndev = 0;
    vklm_dist_device_choice(dist, cfg.device, ndev, want, sizeof want);
    snprintf(cfg.device, sizeof cfg.device, "%s", want);
    o.dist = dist;
  }
  if (sft) {
    char rck[4096];
    snprintf(rck, sizeof rck, "%s/checkpoint.bin", o.out_dir);
    const char *src = o.init ? o.init : resume_file ? resume_file : rck;
    if (!sft_data(sft_file, val_p, val_fraction, tok, src, tmpl_name, loss_on_prompt, skip_bad,
                  o.T, o.B, o.init ? o.out_dir : NULL, &tr, &va)) {
      if (nranks > 1) vklm_dist_abort(dist, "the fine-tuning data could not be read");
      vklm_dist_finalize(dist);
      return 1;
    }
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
    if (nranks > 1) vklm_dist_abort(dist, err);
    vklm_dist_finalize(dist);
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
    if (nranks > 1) vklm_dist_abort(dist, "the device could not be opened");
    vklm_dist_finalize(dist);
    vklm_tokens_destroy(tr);
    vklm_tokens_destroy(va);
    return 1;
  }
  if (o.progress && nranks > 1)
    fprintf(stderr, "%s: rank %d of %d on %s: device %s\n", cmdname, rank, nranks,
            vklm_dist_host(dist), vklm_context_caps(ctx)->name);
  if (o.progress && rank == 0)
    fprintf(stderr, "%s: %llu training tokens, %llu validation tokens, device %s\n", cmdname,
            (unsigned long long)vklm_tokens_count(tr),
            (unsigned long long)(va ? vklm_tokens_count(va) : 0), vklm_context_caps(ctx)->name);
  uint64_t em_before = 0, em_after = 0, em_n = 0;
  int have_before = 0;
  if (eval_answers && o.init) {
    if (!answers_em(ctx, o.init, eval_answers, tok, answer_tokens, &em_before, &em_n)) {
      if (nranks > 1) vklm_dist_abort(dist, "the answers before fine-tuning failed");
      vklm_dist_finalize(dist);
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
  if (st == VKLM_ERROR_OUT_OF_DEVICE_MEMORY) /* what to change, not only what failed */
    snprintf(err + strlen(err), sizeof err - strlen(err), "; a smaller -b or -T (with "
             "--grad-accum to keep the global batch) or a smaller model needs less");
  if (st != VKLM_OK) {
    /* another rank's failure is told once, by rank 0 */
    if (nranks == 1) fprintf(stderr, "%s: %s\n", cmdname, err);
    else if (rank == 0 || !res.peer_failed) fprintf(stderr, "%s: rank %d: %s\n", cmdname, rank, err);
    rc = 1;
  } else if (rank != 0) {
    rc = res.interrupted ? 130 : 0; /* the summary, the answers and their file are rank 0's */
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
  if (rc == 0 && eval_answers && rank == 0) {
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
  vklm_dist_finalize(dist);
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
  int no_config = 0, fmt = 0, ty = 0;
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &model, "CHECKPOINT", "the checkpoint to export"),
      AF_STRING("--out", "-o", &out, "FILE", "model.safetensors or model.gguf"),
      AF_FLAG("--format", NULL, AF_CHOICE, &fmt, 0, 0, "safetensors|gguf", "(safetensors)"),
      AF_STRING("--config", NULL, &config, "FILE", "safetensors: HF's config.json (default: beside -o)"),
      AF_BOOL("--no-config", &no_config, "safetensors: no config.json"),
      AF_FLAG("--type", NULL, AF_CHOICE, &ty, 0, 0, "f32|f16|q8_0|q4_0",
              "gguf: the linear weights' type (f32); norms and embeddings stay f32"),
      AF_STRING("--tokenizer", "-t", &tok, "F",
                "gguf: tokenizer.ggml.* from a byte-level BPE tokenizer.json"),
      AF_LAST};
  const app_command cmd = {
      "export", "export -m CHECKPOINT [--format safetensors|gguf] -o FILE [flags]",
      "safetensors: the parameters with Hugging Face names (GPT2LMHeadModel or\n"
      "LlamaForCausalLM) and HF's config.json. gguf: llama.cpp's names and metadata; Llama's\n"
      "Q/K rows are permuted into llama.cpp's RoPE order.",
      flags, 0, 0, 0};
  int pr = app_flags_parse(&cmd, argc, argv, NULL, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  if (!model || !out) return app_flags_missing(&cmd, "give -m CHECKPOINT and -o FILE");
  static const char *const types[] = {"f32", "f16", "q8_0", "q4_0"};
  format = fmt ? "gguf" : "safetensors";
  type = types[ty];
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

/* vklm convert: a Hugging Face directory (config.json + model.safetensors) or a GGUF file (gpt2,
 * llama) -> a vklm checkpoint (fp32, fresh optimizer state), with tokenizer.json beside it when
 * the model has a byte-level BPE tokenizer (and chat_template.jinja when a GGUF carries one).
 * vklm eval-logits: the logits of one token sequence from a checkpoint (a test tool: the training
 * model's forward, B = 1), written as raw little-endian fp32 (T, V). */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_util.h"
#include "commands.h"
#include "flags.h"
#include "formats/model_load.h"
#include "train/train.h"

int cmd_convert(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *tok_out = NULL;
  int no_tok = 0;
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &in, "M", "an HF directory, a .safetensors file or a .gguf"),
      AF_STRING("--out", "-o", &out, "CHECKPOINT", "the vklm checkpoint to write"),
      AF_STRING("--tokenizer-out", NULL, &tok_out, "F",
                "where the tokenizer goes (default: tokenizer.json beside -o)"),
      AF_BOOL("--no-tokenizer", &no_tok, "write no tokenizer"),
      AF_LAST};
  const app_command ac = {
      "convert", "convert -m HF_DIR|model.safetensors|model.gguf -o CHECKPOINT [flags]",
      "Imports a GPT-2 or Llama model written by Hugging Face tools (config.json +\n"
      "model.safetensors) or by llama.cpp tools (GGUF: F32, F16, BF16, Q8_0, Q4_0 tensors,\n"
      "dequantized to fp32) into a vklm checkpoint. Fine-tune it with `vklm train --init CKPT`\n"
      "(a new run from its weights: fresh schedule and AdamW moments, training flags from the\n"
      "command line; --init also reads the HF directory or GGUF itself).\n"
      "The tokenizer (tokenizer.json, or the GGUF's tokenizer.ggml.*) is written beside the\n"
      "checkpoint as tokenizer.json by default.",
      flags, 0, 0, 0};
  int pr = app_flags_parse(&ac, argc, argv, NULL, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  if (!in || !out) {
    return app_flags_missing(&ac, "give -m MODEL and -o CHECKPOINT");
  }
  char err[2048];
  vklm_loaded_model *lm = NULL;
  vklm_status st = vklm_model_load(in, 0, &lm, err, sizeof err);
  if (st != VKLM_OK) {
    fprintf(stderr, "vklm convert: %s: %s\n", in, err);
    return 1;
  }
  uint64_t n = lm->nparams;
  float *p = malloc(n * 4 + 4), *z = calloc(n + 1, 4);
  int rc = 1;
  if (!p || !z) {
    fprintf(stderr, "vklm convert: out of host memory (%llu parameters)\n", (unsigned long long)n);
    goto done;
  }
  if (vklm_loaded_model_params(lm, p, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm convert: %s\n", err);
    goto done;
  }
  vklm_train_options d;
  vklm_train_options_default(&d);
  vklm_ckpt_state cs = {0};
  cs.model = lm->cfg;
  cs.objective = VKLM_OBJ_CAUSAL;
  cs.B = d.B;
  cs.T = d.T < lm->cfg.max_seq ? d.T : lm->cfg.max_seq;
  cs.grad_accum = 1;
  cs.seed = d.seed;
  cs.rng = d.seed;
  cs.lr = d.lr;
  cs.min_lr = d.min_lr;
  cs.opt = (vklm_optim_config){d.lr, d.beta1, d.beta2, d.eps, d.weight_decay, d.grad_clip};
  cs.mask_id = vklm_model_mask_id(&lm->cfg);
  cs.data_order = VKLM_DATA_SHUFFLED;
  if (vklm_ckpt_write(out, &cs, lm->table, lm->ntensors, p, z, z, n, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm convert: %s\n", err);
    goto done;
  }
  const vklm_model_config *c = &lm->cfg;
  fprintf(stderr, "vklm convert: %s (%s, %s: V %u, ctx %u, L %u, NH %u, NKV %u, C %u, F %u, %s) "
          "-> %s (%llu parameters)\n", in, lm->format, c->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama",
          c->vocab_size, c->max_seq, c->n_layer, c->n_head, c->n_kv_head, c->n_embd, c->ffn_hidden,
          c->tie_embeddings ? "tied head" : "untied head", out, (unsigned long long)n);
  char dir[4096], path[4200];
  snprintf(dir, sizeof dir, "%s", out);
  const char *d0 = dirname(dir);
  if (!no_tok && lm->tokenizer) {
    if (!tok_out) {
      snprintf(path, sizeof path, "%s/tokenizer.json", d0);
      tok_out = path;
    }
    if (vklm_tokenizer_save_json(lm->tokenizer, tok_out, err, sizeof err) != 0) {
      fprintf(stderr, "vklm convert: %s\n", err);
      goto done;
    }
    fprintf(stderr, "vklm convert: tokenizer (%zu ids) -> %s\n",
            vklm_tokenizer_vocab_size(lm->tokenizer), tok_out);
  } else if (!no_tok && lm->tokenizer_note[0]) {
    fprintf(stderr, "vklm convert: no tokenizer written: %s\n", lm->tokenizer_note);
  }
  if (!no_tok && lm->chat_template) {
    char tp[4200];
    snprintf(tp, sizeof tp, "%s/chat_template.jinja", d0);
    FILE *f = fopen(tp, "wb");
    if (f) {
      fputs(lm->chat_template, f);
      fclose(f);
      fprintf(stderr, "vklm convert: chat template -> %s\n", tp);
    }
  }
  rc = 0;
done:
  free(p);
  free(z);
  vklm_loaded_model_free(lm);
  return rc;
}

int cmd_eval_logits(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  const char *model = NULL, *toks = NULL, *out = NULL;
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &model, "CHECKPOINT", "the model"),
      AF_STRING("--tokens", NULL, &toks, "1,2,3", "the sequence's token ids"),
      AF_STRING("--out", "-o", &out, "FILE", "the logits (T, V) as little-endian fp32"),
      AF_LAST};
  const app_command ac = {"eval-logits", "eval-logits -m CHECKPOINT --tokens 1,2,3 --out logits.bin",
                         "Runs the model's forward on one sequence (B = 1) and writes its logits "
                         "(T, V).", flags, 0, 0, 1};
  int pr = app_flags_parse(&ac, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  if (!model || !toks || !out) {
    return app_flags_missing(&ac, "give -m, --tokens and --out");
  }
  uint32_t T = 0, cap = 16;
  int32_t *ids = malloc(cap * sizeof *ids);
  for (const char *s = toks; ids && *s;) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
      fprintf(stderr, "vklm eval-logits: --tokens must be comma-separated ids\n");
      free(ids);
      return 2;
    }
    if (T == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
    if (ids) ids[T++] = (int32_t)v;
    s = *end ? end + 1 : end;
  }
  if (!ids || T == 0) {
    fprintf(stderr, "vklm eval-logits: no tokens\n");
    free(ids);
    return 2;
  }
  char err[2048];
  vklm_ckpt *c = NULL;
  vklm_context *ctx = NULL;
  vklm_model *m = NULL;
  float *logits = NULL;
  int rc = 1;
  if (vklm_ckpt_read(model, 0, &c, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm eval-logits: %s\n", err);
    goto done;
  }
  if (T > c->st.model.max_seq) {
    fprintf(stderr, "vklm eval-logits: %u tokens, the model's context is %u\n", T,
            c->st.model.max_seq);
    goto done;
  }
  if (!(ctx = app_context(&cfg))) goto done;
  if (vklm_model_create(ctx, &c->st.model, 1, T, VKLM_OBJ_CAUSAL, &m) != VKLM_OK) {
    fprintf(stderr, "vklm eval-logits: %s\n", vklm_model_error(NULL));
    goto done;
  }
  if (vklm_ckpt_load_model(c, m, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm eval-logits: %s\n", err);
    goto done;
  }
  uint64_t nl = (uint64_t)T * c->st.model.vocab_size;
  logits = malloc(nl * 4);
  float loss = 0;
  if (!logits || vklm_model_forward(m, ids, NULL, &loss) != VKLM_OK ||
      vklm_model_get_logits(m, logits) != VKLM_OK) {
    fprintf(stderr, "vklm eval-logits: forward failed: %s\n", vklm_model_error(m));
    goto done;
  }
  FILE *f = fopen(out, "wb");
  if (!f || fwrite(logits, 4, nl, f) != nl) {
    fprintf(stderr, "vklm eval-logits: cannot write '%s'\n", out);
    if (f) fclose(f);
    goto done;
  }
  if (fclose(f) != 0) goto done;
  rc = 0;
done:
  free(logits);
  free(ids);
  vklm_model_destroy(m);
  vklm_ckpt_free(c);
  vklm_context_destroy(ctx);
  return rc;
}

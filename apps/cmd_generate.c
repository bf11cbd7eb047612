/* vklm generate: text from a model with the GPU KV cache (engine/infer), llama.cpp-style flags.
 *
 * MODEL is a vklm checkpoint (engine/train; a directory means DIR/checkpoint.bin), loaded as
 * fp32. Other formats plug in two ways: `vklm convert` turns an HF directory or a GGUF file into
 * a checkpoint; and a path that is not a checkpoint is read here with vklm_model_load
 * (engine/formats/model_load.h: HF safetensors or GGUF) keeping quantized linear weights
 * (F16/Q8_0/Q4_0) as they are: each loaded tensor goes to vklm_infer_create's tensor callback
 * with its own vklm_dtype.
 *
 * The tokenizer: -t FILE, else tokenizer.json beside the checkpoint, else the loaded model's.
 * Tokens are sampled on the GPU (engine/infer/sample_gpu.h through vklm_infer_step: only the id
 * comes back) and stream to stdout as they are made through engine/infer/stream.h (whole UTF-8
 * characters only, stop strings matched incrementally, flushed per token); the prompt-eval and
 * generation speeds go to stderr at the end.
 * For scripts and parity tests: --prompt-ids 1,2,3 gives the prompt as raw token ids and
 * --print-ids prints the generated ids (space-separated, one line) instead of text, with no
 * prompt echo and no stop strings; with both, no tokenizer is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_util.h"
#include "commands.h"
#include "flags.h"
#include "gen_common.h"
#include "infer/stream.h"
#include "io/file.h"

/* ---- the command ---------------------------------------------------------------------------- */
typedef struct gen {
  const char *model, *prompt, *file, *tok;
  uint32_t n_predict, n_ctx, keep;
  int ctx_shift, ignore_eos, echo;
  gen_sampling smp;
  const char *prompt_ids; /* --prompt-ids */
  int print_ids;          /* --print-ids */
} gen;

static int parse(gen *g, vklm_config *cfg, int argc, char **argv) {
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &g->model, "M",
                "a vklm checkpoint (or a directory holding checkpoint.bin); an HF\n"
                "directory / .safetensors / .gguf is loaded directly (quantized\n"
                "linear weights stay quantized)"),
      AF_STRING("--prompt", "-p", &g->prompt, "TEXT", "the prompt"),
      AF_STRING("--file", "-f", &g->file, "FILE", "the prompt from a file"),
      AF_STRING("--prompt-ids", NULL, &g->prompt_ids, "1,2,3",
                "the prompt as token ids (comma-separated)"),
      AF_BOOL("--print-ids", &g->print_ids,
              "print the generated token ids (space-separated) instead of text"),
      AF_FLAG("--n-predict", "-n", AF_U32, &g->n_predict, 1, 1u << 24, "N",
              "new tokens at most (default 128)"),
      AF_STRING("--tokenizer", "-t", &g->tok, "F",
                "tokenizer.json (default: tokenizer.json beside the checkpoint)"),
      AF_FLAG("--ctx-size", "-c", AF_U32, &g->n_ctx, 1, 1u << 20, "N",
              "context length: the KV cache's rows (default: the model's)"),
      AF_INCLUDE(g->smp.flags),
      AF_BOOL("--ignore-eos", &g->ignore_eos, "do not stop on the end-of-sequence token"),
      AF_BOOL("--ctx-shift", &g->ctx_shift,
              "when the context is full, keep the first --keep tokens, drop the\n"
              "oldest half of the rest and re-prefill (default: stop with an error)"),
      AF_FLAG("--keep", NULL, AF_U32, &g->keep, 0, 1u << 20, "N",
              "tokens kept at the start by --ctx-shift (default 0)"),
      AF_NOT("--no-echo", &g->echo, "do not print the prompt"),
      AF_LAST};
  const app_command cmd = {"generate", "generate -m MODEL (-p PROMPT | -f FILE | --prompt-ids IDS) "
                           "[-n N] [flags]", NULL, flags, 0, 0, 1};
  int r = app_flags_parse(&cmd, argc, argv, cfg, NULL, NULL);
  if (r) return r;
  if (g->print_ids && g->smp.nstops) {
    fprintf(stderr, "vklm generate: --stop needs text output, not --print-ids\n");
    return 2;
  }
  if (!g->model || !!g->prompt + !!g->file + !!g->prompt_ids != 1) {
    return app_flags_missing(&cmd, "give -m MODEL and one of -p PROMPT, -f FILE, --prompt-ids");
  }
  return 0;
}

/* Parses "1,2,3" into ids, each in [0, V); 0, or -1 with a message in err. */
static int parse_ids(const char *s, uint32_t V, vklm_token_ids *ids, char *err, size_t errlen) {
  size_t cap = 1;
  for (const char *p = s; *p; p++) cap += *p == ',';
  if (!(ids->ids = malloc(sizeof(int32_t) * cap))) return snprintf(err, errlen, "out of memory"), -1;
  ids->cap = cap;
  ids->n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0 || v >= (long)V || (*end && *end != ',')) {
      snprintf(err, errlen, "--prompt-ids: '%.40s' is not a token id in [0, %u)", s, V);
      return -1;
    }
    ids->ids[ids->n++] = (int32_t)v;
    s = *end ? end + 1 : end;
  }
  if (ids->n == 0) return snprintf(err, errlen, "--prompt-ids: no ids"), -1;
  return 0;
}

/* One step of slot 0: append tokens, sample the next on the GPU (smp NULL: argmax). */
static vklm_status step(vklm_infer *s, const int32_t *tok, uint32_t n, vklm_sampler *smp,
                        int32_t *next) {
  vklm_infer_req r = {.slot = 0, .tokens = tok, .n = n, .want = 1, .sampler = smp};
  return vklm_infer_step(s, &r, 1, next, NULL);
}

int cmd_generate(int argc, char **argv) {
  gen g = {0};
  g.n_predict = 128;
  g.echo = 1;
  gen_sampling_default(&g.smp);
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  int r = parse(&g, &cfg, argc, argv);
  if (r) return r == 1 ? 0 : r;
  if (!g.smp.seed_set) g.smp.sp.seed = (uint64_t)time(NULL);

  int rc = 1;
  vklm_status ist;
  char err[2048] = "";
  gen_model gm;
  vklm_context *ctx = NULL;
  vklm_infer *s = NULL;
  vklm_sampler *smp = NULL;
  vklm_stream *stream = NULL;
  char *ptext = NULL;
  vklm_token_ids ids = {0};
  int32_t *all = NULL;

  /* ids in and out need no tokenizer: a failure to find one (the model itself loaded) is fine */
  int ids_only = g.prompt_ids && g.print_ids;
  if (gen_model_open(&gm, g.model, g.tok, err, sizeof err) && !(ids_only && gm.cfg)) goto fail;
  err[0] = 0;
  const vklm_model_config *mc = gm.cfg;
  vklm_tokenizer *tk = gm.tk;
  const char *path = gm.path;
  int32_t eos = gm.eos;
  if (g.ignore_eos) eos = -1;

  /* prompt */
  if (g.file && vklm_file_read(g.file, VKLM_FILE_MAX_TEXT, VKLM_FILE_STDIN, &ptext, NULL, err,
                               sizeof err) != VKLM_OK)
    goto fail;
  const char *prompt = g.file ? ptext : g.prompt ? g.prompt : g.prompt_ids;
  if (g.prompt_ids) {
    if (parse_ids(g.prompt_ids, mc->vocab_size, &ids, err, sizeof err)) goto fail;
  } else if (vklm_tokenizer_encode(tk, prompt, strlen(prompt), VKLM_ENCODE_SPECIALS, &ids) ||
             ids.n == 0) {
    snprintf(err, sizeof err, "the prompt encodes to no tokens");
    goto fail;
  }
  uint32_t n_ctx = g.n_ctx ? g.n_ctx : mc->max_seq;
  uint32_t np = (uint32_t)ids.n;
  if (np >= n_ctx) {
    snprintf(err, sizeof err,
             "the prompt has %u tokens but the context length is %u (-c): it must be shorter "
             "than the context to leave room for new tokens",
             np, n_ctx);
    goto fail;
  }
  if (g.keep >= n_ctx / 2) g.keep = n_ctx / 2;
  if (!g.print_ids) {
    vklm_stream_options so = {.stops = g.smp.stops, .nstops = (uint32_t)g.smp.nstops};
    if (vklm_stream_create(tk, &so, &stream) != VKLM_OK) {
      snprintf(err, sizeof err, "a --stop string is empty or not valid UTF-8");
      goto fail;
    }
  }

  if (!(ctx = app_context(&cfg))) goto fail_quiet;
  if ((ist = vklm_infer_create(ctx, mc, n_ctx, NULL, gen_model_tensor, &gm, &s, err,
                               sizeof err)) != VKLM_OK) {
    gen_oom_hint(ist, err, sizeof err);
    goto fail;
  }
  if (!(smp = vklm_sampler_create(&g.smp.sp, mc->vocab_size))) goto fail;
  vklm_sampler *use = vklm_sampler_is_greedy(&g.smp.sp) ? NULL : smp; /* NULL: the GPU argmax */
  all = malloc(sizeof(int32_t) * ((size_t)np + g.n_predict + 1));
  if (!all) goto fail;
  memcpy(all, ids.ids, sizeof(int32_t) * np);
  for (uint32_t i = 0; i < np; i++) vklm_sampler_accept(smp, all[i]);
  fprintf(stderr, "vklm generate: %s (%s, %u layers, V %u), context %u, seed %llu\n", path,
          mc->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", mc->n_layer, mc->vocab_size, n_ctx,
          (unsigned long long)g.smp.sp.seed);
  if (g.echo && !g.prompt_ids && !g.print_ids) {
    fputs(prompt, stdout);
    fflush(stdout);
  }

  double t0 = gen_now_s();
  int32_t next = 0;
  if (step(s, all, np, use, &next)) goto fail_infer;
  double t_prompt = gen_now_s() - t0, t_gen0 = gen_now_s();
  uint32_t nall = np, ngen = 0, nshift = 0;
  int stopped = 0;
  vklm_stream_piece pc;
  while (ngen < g.n_predict) {
    int32_t t = next;
    if (t == eos) break;
    all[nall++] = t;
    ngen++;
    vklm_sampler_accept(smp, t);
    if (g.print_ids) {
      printf("%s%d", ngen > 1 ? " " : "", t);
      fflush(stdout);
    } else {
      if (vklm_stream_push(stream, t, &pc) != VKLM_OK) {
        snprintf(err, sizeof err, "token %d cannot be decoded", t);
        goto fail;
      }
      fwrite(pc.text, 1, pc.n, stdout);
      fflush(stdout);
      if (pc.stop >= 0) {
        stopped = 1;
        break;
      }
    }
    if (ngen == g.n_predict) break;
    if (vklm_infer_pos(s) == n_ctx) {
      if (!g.ctx_shift) {
        snprintf(err, sizeof err,
                 "the context is full (%u tokens, -c %u) after %u new tokens; raise -c or pass "
                 "--ctx-shift",
                 n_ctx, n_ctx, ngen);
        if (stream && vklm_stream_finish(stream, &pc) == VKLM_OK) fwrite(pc.text, 1, pc.n, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        goto fail;
      }
      /* keep the first `keep`, drop the oldest half of the rest, re-prefill */
      uint32_t cur = vklm_infer_pos(s), drop = (cur - g.keep) / 2;
      int32_t *win = malloc(sizeof(int32_t) * cur);
      if (!win) goto fail;
      /* the cache holds all[0, keep) and the cur - keep tokens before t = all[nall-1] */
      memcpy(win, all, sizeof(int32_t) * g.keep);
      memcpy(win + g.keep, all + (nall - 1 - (cur - g.keep)) + drop,
             sizeof(int32_t) * (cur - g.keep - drop));
      vklm_infer_rewind(s, 0);
      vklm_status st = vklm_infer_prefill(s, win, cur - drop, NULL, NULL);
      free(win);
      if (st) goto fail_infer;
      nshift++;
    }
    if (step(s, &t, 1, use, &next)) goto fail_infer;
  }
  /* what was held back */
  if (!stopped && stream && vklm_stream_finish(stream, &pc) == VKLM_OK)
    fwrite(pc.text, 1, pc.n, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  double t_gen = gen_now_s() - t_gen0;
  fprintf(stderr,
          "vklm generate: prompt %u tokens in %.3f s (%.1f tok/s); generated %u tokens in "
          "%.3f s (%.1f tok/s)%s%s\n",
          np, t_prompt, np / (t_prompt > 0 ? t_prompt : 1e-9), ngen, t_gen,
          ngen / (t_gen > 0 ? t_gen : 1e-9), stopped ? "; stop string" : "",
          nshift ? "; context shifted" : "");
  rc = 0;
  goto done;
fail_infer:
  snprintf(err, sizeof err, "%s", vklm_infer_error(s));
fail:
  fprintf(stderr, "vklm generate: %s\n", err[0] ? err : "out of memory");
fail_quiet:
  rc = 1;
done:
  free(all);
  vklm_stream_destroy(stream);
  vklm_token_ids_free(&ids);
  free(ptext);
  vklm_sampler_destroy(smp);
  vklm_infer_destroy(s);
  vklm_context_destroy(ctx);
  gen_model_close(&gm);
  return rc;
}

/* vklm generate: text from a model with the GPU KV cache (engine/infer), llama.cpp-style flags.
 *
 * MODEL is a vklm checkpoint (engine/train; a directory means DIR/checkpoint.bin), loaded as
 * fp32. Other formats plug in two ways: `vklm convert` turns an HF directory or a GGUF file into
 * a checkpoint; and a path that is not a checkpoint is read here with vklm_model_load
 * (engine/formats/model_load.h: HF safetensors or GGUF) keeping quantized linear weights
 * (F16/Q8_0/Q4_0) as they are: each loaded tensor goes to vklm_infer_create's tensor callback
 * with its own vklm_weight_type.
 *
 * The tokenizer: -t FILE, else tokenizer.json beside the checkpoint, else the loaded model's.
 * Tokens stream to stdout as they are made (whole UTF-8 characters only, flushed per token);
 * the prompt-eval and generation speeds go to stderr at the end. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "app_util.h"
#include "commands.h"
#include "formats/model_load.h"
#include "infer/infer.h"
#include "infer/sample.h"
#include "text/tokenizer.h"
#include "train/train.h"

#define MAX_STOPS 16

static void generate_usage(FILE *f) {
  fprintf(f,
      "usage: vklm generate -m MODEL (-p PROMPT | -f FILE) [-n N] [flags]\n"
      "  -m, --model M        a vklm checkpoint (or a directory holding checkpoint.bin); an HF\n"
      "                       directory / .safetensors / .gguf is loaded directly (quantized\n"
      "                       linear weights stay quantized)\n"
      "  -p, --prompt TEXT    the prompt         -f, --file FILE  the prompt from a file\n"
      "  -n, --n-predict N    new tokens at most (default 128)\n"
      "  -t, --tokenizer F    tokenizer.json (default: tokenizer.json beside the checkpoint)\n"
      "  -c, --ctx-size N     context length: the KV cache's rows (default: the model's)\n"
      "  --temp X (0.8; 0: greedy)  --top-k N (40; 0: off)  --top-p X (0.95; 1: off)\n"
      "  --min-p X (0.05; 0: off)   --repeat-penalty X (1.0: off)  --repeat-last-n N (64)\n"
      "  --seed N             sampler seed (default: from the clock; printed on stderr)\n"
      "  --stop STR           stop when the generated text contains STR (repeatable)\n"
      "  --ignore-eos         do not stop on the end-of-sequence token\n"
      "  --ctx-shift          when the context is full, keep the first --keep N tokens (default\n"
      "                       0), drop the oldest half of the rest and re-prefill (default: stop\n"
      "                       with an error)\n"
      "  --no-echo            do not print the prompt\n"
      "  --device D  --limits baseline  --validate\n");
}

/* ---- model sources ------------------------------------------------------------------------ */
typedef struct source {
  vklm_ckpt *ck;           /* or */
  vklm_loaded_model *lm;
} source;

static vklm_status src_get(void *user, const vklm_param_info *info, vklm_infer_tensor *out,
                           char *err, size_t errlen) {
  source *s = user;
  uint32_t n = s->ck ? s->ck->ntensors : s->lm->ntensors;
  const vklm_param_info *tab = s->ck ? s->ck->table : s->lm->table;
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(tab[i].name, info->name)) {
      if (tab[i].count != info->count) break;
      if (s->ck) {
        out->data = s->ck->params + tab[i].offset;
        out->type = VKLM_WEIGHT_F32;
      } else {
        out->data = s->lm->t[i].data;
        out->type = s->lm->t[i].type;
      }
      return VKLM_OK;
    }
  snprintf(err, errlen, "the model has no tensor %s of %llu values", info->name,
           (unsigned long long)info->count);
  return VKLM_ERROR_INVALID;
}

static int is_ckpt(const char *path) {
  FILE *f = fopen(path, "rb");
  char m[8] = {0};
  int ok = f && fread(m, 1, 8, f) == 8 && !memcmp(m, VKLM_CKPT_MAGIC, 8);
  if (f) fclose(f);
  return ok;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) free(b), b = NULL;
  if (b) b[n] = 0;
  fclose(f);
  return b;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Writes the text s[*done, limit) to stdout as valid UTF-8: whole characters only (an incomplete
 * one at the end waits for the next token unless `final`), a byte that cannot start or continue
 * a character becomes U+FFFD. Advances *done past what it consumed. */
static void emit(const char *s, size_t *done, size_t limit, int final) {
  size_t i = *done;
  while (i < limit) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    size_t k = 1;
    while (len && k < len && i + k < limit && ((unsigned char)s[i + k] & 0xC0) == 0x80) k++;
    if (len && k == len) {
      fwrite(s + i, 1, len, stdout);
      i += len;
    } else if (len && i + k == limit && !final) {
      break; /* a character still being generated */
    } else {
      fputs("\xEF\xBF\xBD", stdout);
      i += 1;
    }
  }
  fflush(stdout);
  *done = i;
}

/* ---- the command ---------------------------------------------------------------------------- */
typedef struct gen {
  const char *model, *prompt, *file, *tok;
  uint32_t n_predict, n_ctx, keep;
  int ctx_shift, ignore_eos, echo, seed_set;
  const char *stops[MAX_STOPS];
  int nstops;
  vklm_sampler_params sp;
} gen;

static int parse(gen *g, vklm_config *cfg, int argc, char **argv) {
#define IS(s) (!strcmp(a, s))
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = app_config_flag(cfg, argc, argv, &i);
    if (r < 0) return 2;
    if (r) continue;
    if (IS("-h") || IS("--help")) return generate_usage(stdout), 1;
    if (IS("--ctx-shift")) { g->ctx_shift = 1; continue; }
    if (IS("--ignore-eos")) { g->ignore_eos = 1; continue; }
    if (IS("--no-echo")) { g->echo = 0; continue; }
    if (i + 1 >= argc) {
      fprintf(stderr, "vklm generate: unknown flag or missing value '%s'\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (IS("-m") || IS("--model")) g->model = v;
    else if (IS("-p") || IS("--prompt")) g->prompt = v;
    else if (IS("-f") || IS("--file")) g->file = v;
    else if (IS("-t") || IS("--tokenizer")) g->tok = v;
    else if (IS("-n") || IS("--n-predict")) g->n_predict = (uint32_t)strtoul(v, NULL, 10);
    else if (IS("-c") || IS("--ctx-size")) g->n_ctx = (uint32_t)strtoul(v, NULL, 10);
    else if (IS("--keep")) g->keep = (uint32_t)strtoul(v, NULL, 10);
    else if (IS("--temp")) g->sp.temp = strtof(v, NULL);
    else if (IS("--top-k")) g->sp.top_k = (uint32_t)strtoul(v, NULL, 10);
    else if (IS("--top-p")) g->sp.top_p = strtof(v, NULL);
    else if (IS("--min-p")) g->sp.min_p = strtof(v, NULL);
    else if (IS("--repeat-penalty")) g->sp.repeat_penalty = strtof(v, NULL);
    else if (IS("--repeat-last-n")) g->sp.repeat_last_n = (uint32_t)strtoul(v, NULL, 10);
    else if (IS("--seed")) g->sp.seed = strtoull(v, NULL, 10), g->seed_set = 1;
    else if (IS("--stop")) {
      if (g->nstops == MAX_STOPS) {
        fprintf(stderr, "vklm generate: at most %d --stop strings\n", MAX_STOPS);
        return 2;
      }
      g->stops[g->nstops++] = v;
    } else {
      fprintf(stderr, "vklm generate: unknown flag '%s'\n", a);
      return 2;
    }
  }
#undef IS
  if (!g->model || (!g->prompt == !g->file)) {
    fprintf(stderr, "vklm generate: give -m MODEL and one of -p PROMPT or -f FILE\n");
    generate_usage(stderr);
    return 2;
  }
  return 0;
}

/* Finds the stop strings in text[0..n): the offset of the earliest, or n. */
static size_t find_stop(const gen *g, const char *text, size_t n) {
  size_t best = n;
  for (int k = 0; k < g->nstops; k++) {
    const char *p = strstr(text, g->stops[k]);
    if (p && (size_t)(p - text) < best) best = (size_t)(p - text);
  }
  return best;
}

int cmd_generate(int argc, char **argv) {
  gen g = {0};
  g.n_predict = 128;
  g.echo = 1;
  vklm_sampler_params_default(&g.sp);
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  int r = parse(&g, &cfg, argc, argv);
  if (r) return r == 1 ? 0 : r;
  if (!g.seed_set) g.sp.seed = (uint64_t)time(NULL);

  int rc = 1;
  char err[2048] = "", path[4096];
  source src = {0};
  vklm_tokenizer *tk = NULL;
  vklm_context *ctx = NULL;
  vklm_infer *s = NULL;
  vklm_sampler *smp = NULL;
  char *ptext = NULL;
  vklm_token_ids ids = {0};
  vklm_bytes out = {0};
  int32_t *all = NULL;
  float *logits = NULL;

  struct stat sb;
  snprintf(path, sizeof path, "%s", g.model);
  if (stat(g.model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    snprintf(path, sizeof path, "%s/checkpoint.bin", g.model);
    if (stat(path, &sb) != 0) snprintf(path, sizeof path, "%s", g.model); /* an HF directory */
  }
  const vklm_model_config *mc;
  if (is_ckpt(path)) {
    if (vklm_ckpt_read(path, 0, &src.ck, err, sizeof err)) goto fail;
    mc = &src.ck->st.model;
  } else {
    if (vklm_model_load(path, 1, &src.lm, err, sizeof err)) goto fail;
    mc = &src.lm->cfg;
  }
  /* tokenizer */
  char tokpath[4096];
  const char *tp = g.tok;
  if (!tp) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", dirname(dir));
    if (stat(tokpath, &sb) == 0) tp = tokpath;
  }
  if (tp) {
    if (vklm_tokenizer_load(tp, &tk, err, sizeof err)) goto fail;
  } else if (src.lm && src.lm->tokenizer) {
    tk = src.lm->tokenizer;
    src.lm->tokenizer = NULL;
  } else {
    snprintf(err, sizeof err, "no tokenizer: give -t tokenizer.json (none beside %.1000s)", path);
    goto fail;
  }
  if (vklm_tokenizer_vocab_size(tk) > mc->vocab_size) {
    snprintf(err, sizeof err, "the tokenizer has %zu ids but the model's vocabulary is %u",
             vklm_tokenizer_vocab_size(tk), mc->vocab_size);
    goto fail;
  }
  int32_t eos = src.lm && src.lm->eos_id >= 0 ? src.lm->eos_id
                                               : vklm_tokenizer_special_id(tk, "<|endoftext|>");
  if (eos < 0) eos = vklm_tokenizer_special_id(tk, "</s>");
  if (g.ignore_eos) eos = -1;

  /* prompt */
  if (g.file && !(ptext = read_file(g.file))) {
    snprintf(err, sizeof err, "cannot read the prompt file %s", g.file);
    goto fail;
  }
  const char *prompt = g.file ? ptext : g.prompt;
  if (vklm_tokenizer_encode(tk, prompt, strlen(prompt), VKLM_ENCODE_SPECIALS, &ids) ||
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

  if (!(ctx = app_context(&cfg))) goto fail_quiet;
  if (vklm_infer_create(ctx, mc, n_ctx, NULL, src_get, &src, &s, err, sizeof err)) goto fail;
  if (!(smp = vklm_sampler_create(&g.sp, mc->vocab_size))) goto fail;
  int greedy = vklm_sampler_is_greedy(&g.sp);
  logits = malloc(sizeof(float) * mc->vocab_size);
  all = malloc(sizeof(int32_t) * ((size_t)np + g.n_predict + 1));
  if (!logits || !all) goto fail;
  memcpy(all, ids.ids, sizeof(int32_t) * np);
  for (uint32_t i = 0; i < np; i++) vklm_sampler_accept(smp, all[i]);
  fprintf(stderr, "vklm generate: %s (%s, %u layers, V %u), context %u, seed %llu\n", path,
          mc->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", mc->n_layer, mc->vocab_size, n_ctx,
          (unsigned long long)g.sp.seed);
  if (g.echo) {
    fputs(prompt, stdout);
    fflush(stdout);
  }

  double t0 = now_s();
  int32_t next = 0;
  if (vklm_infer_prefill(s, all, np, greedy ? NULL : logits, &next)) goto fail_infer;
  double t_prompt = now_s() - t0, t_gen0 = now_s();
  uint32_t nall = np, ngen = 0, nshift = 0;
  size_t printed = 0; /* bytes of the generated text already on stdout */
  size_t hold = 0;    /* bytes held back: a stop string could begin there */
  for (int k = 0; k < g.nstops; k++)
    if (strlen(g.stops[k]) > hold) hold = strlen(g.stops[k]);
  int stopped = 0;
  while (ngen < g.n_predict) {
    int32_t t = greedy ? next : vklm_sampler_sample(smp, logits);
    if (t == eos) break;
    all[nall++] = t;
    ngen++;
    vklm_sampler_accept(smp, t);
    /* the text of the generated tokens so far */
    out.n = 0;
    if (vklm_tokenizer_decode(tk, all + np, nall - np, 0, &out)) {
      snprintf(err, sizeof err, "token %d cannot be decoded", t);
      goto fail;
    }
    size_t stop = find_stop(&g, out.data, out.n);
    size_t upto = stop < out.n ? stop : !hold ? out.n : out.n >= hold - 1 ? out.n - (hold - 1) : 0;
    if (upto > printed) emit(out.data, &printed, upto, 0);
    if (stop < out.n) {
      stopped = 1;
      break;
    }
    if (ngen == g.n_predict) break;
    if (vklm_infer_pos(s) == n_ctx) {
      if (!g.ctx_shift) {
        snprintf(err, sizeof err,
                 "the context is full (%u tokens, -c %u) after %u new tokens; raise -c or pass "
                 "--ctx-shift",
                 n_ctx, n_ctx, ngen);
        emit(out.data, &printed, out.n, 1);
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
    if (vklm_infer_decode(s, t, greedy ? NULL : logits, &next)) goto fail_infer;
  }
  /* what was held back */
  if (!stopped && out.n > printed) emit(out.data, &printed, out.n, 1);
  fputc('\n', stdout);
  fflush(stdout);
  double t_gen = now_s() - t_gen0;
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
  free(logits);
  vklm_bytes_free(&out);
  vklm_token_ids_free(&ids);
  free(ptext);
  vklm_sampler_destroy(smp);
  vklm_infer_destroy(s);
  vklm_context_destroy(ctx);
  vklm_tokenizer_destroy(tk);
  vklm_ckpt_free(src.ck);
  vklm_loaded_model_free(src.lm);
  return rc;
}

/* vklm chat: an interactive conversation with a model through its chat template.
 *
 * The model and tokenizer are opened as `vklm generate` opens them (gen_common.h). Jinja cannot
 * run here, so the chat template is RECOGNISED, not executed: the template text (GGUF
 * tokenizer.chat_template, else chat_template.jinja or tokenizer_config.json beside the model)
 * is searched for marker strings — "<|start_header_id|>" means Llama 3, "<|im_start|>" ChatML,
 * any other template the plain "User: / Assistant:" form — or --chat-template picks one; with no
 * template at all ChatML is used.
 *
 * History: `hist` holds every token of the conversation in order — the system block, then one
 * segment per turn (user header + text + assistant header, the reply, the end-of-turn closing).
 * The KV cache holds hist[0, pos): each turn prefills only what is new. When the context would
 * overflow, whole turns are dropped from the oldest on (the system block stays, and stays cached)
 * and the rest re-prefilled, with a note on stderr. Lines come from stdin; "> " is printed only
 * when stdin is a terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app_util.h"
#include "commands.h"
#include "gen_common.h"

typedef enum tpl_kind { TPL_CHATML, TPL_LLAMA3, TPL_PLAIN } tpl_kind;
static const char *const tpl_names[] = {"chatml", "llama3", "plain"};

static void chat_usage(FILE *f) {
  fprintf(f,
      "usage: vklm chat -m MODEL [flags]\n"
      "  -m, --model M        a vklm checkpoint (or its directory), an HF directory or a .gguf\n"
      "  -t, --tokenizer F    tokenizer.json (default: beside the model, else the model's own)\n"
      "  -sys, --system TEXT  the system prompt\n"
      "  --chat-template K    chatml | llama3 | plain (default: recognised from the model's\n"
      "                       template; chatml when it has none)\n"
      "  -n, --n-predict N    tokens per reply at most (default 256)\n"
      "  -c, --ctx-size N     context length (default: the model's)\n"
      "%s"
      "  --device D  --limits baseline  --validate\n"
      "At the prompt: /reset clears the conversation, /quit or /exit (or Ctrl-D) leaves, /help.\n",
      gen_sampling_help);
}

/* ---- the template ------------------------------------------------------------------------- */
typedef struct chat {
  tpl_kind tpl;
  vklm_tokenizer *tk;        /* borrowed */
  vklm_infer *s;             /* borrowed */
  vklm_token_ids hist;       /* the whole conversation (see the file comment) */
  uint32_t *turns;           /* start of each turn in hist */
  uint32_t nturns, capturns;
  uint32_t nsys;             /* tokens of the system block */
  int32_t ends[4];           /* end-of-turn token ids (-1: none) */
} chat;

static int tpl_detect(const char *text, tpl_kind *k) {
  if (!text) return 0;
  if (strstr(text, "<|start_header_id|>")) *k = TPL_LLAMA3;
  else if (strstr(text, "<|im_start|>")) *k = TPL_CHATML;
  else *k = TPL_PLAIN;
  return 1;
}

/* The template text of the model: the GGUF's, else a file beside the model. Returns a source
 * description in *from; the text is malloc'ed (or NULL). */
static char *tpl_find(const gen_model *m, const char **from) {
  if (m->lm && m->lm->chat_template) {
    *from = "the model's tokenizer.chat_template";
    return strdup(m->lm->chat_template);
  }
  char dir[4096], p[4200];
  struct stat sb;
  snprintf(dir, sizeof dir, "%s", m->path);
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) { /* a file: its directory */
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
  }
  snprintf(p, sizeof p, "%s/chat_template.jinja", dir);
  char *t = gen_read_file(p);
  if (t) {
    *from = "chat_template.jinja";
    return t;
  }
  snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
  t = gen_read_file(p);
  char *ct = t ? strstr(t, "\"chat_template\"") : NULL;
  if (ct) {
    *from = "tokenizer_config.json";
    memmove(t, ct, strlen(ct) + 1);
    return t;
  }
  free(t);
  return NULL;
}

/* Appends the tokens of text (special-token text becomes its id) to hist. */
static int add_text(chat *c, const char *text) {
  return vklm_tokenizer_encode(c->tk, text, strlen(text), VKLM_ENCODE_SPECIALS, &c->hist);
}

static int add_turn_start(chat *c) {
  if (c->nturns == c->capturns) {
    uint32_t n = c->capturns ? 2 * c->capturns : 16;
    uint32_t *t = realloc(c->turns, n * sizeof *t);
    if (!t) return -1;
    c->turns = t;
    c->capturns = n;
  }
  c->turns[c->nturns++] = (uint32_t)c->hist.n;
  return 0;
}

/* The system block (and Llama 3's <|begin_of_text|>). */
static int add_system(chat *c, const char *sys) {
  int r = 0;
  if (c->tpl == TPL_LLAMA3 && vklm_tokenizer_special_id(c->tk, "<|begin_of_text|>") >= 0)
    r |= add_text(c, "<|begin_of_text|>");
  if (sys && *sys) {
    if (c->tpl == TPL_CHATML) {
      r |= add_text(c, "<|im_start|>system\n");
      r |= add_text(c, sys);
      r |= add_text(c, "<|im_end|>\n");
    } else if (c->tpl == TPL_LLAMA3) {
      r |= add_text(c, "<|start_header_id|>system<|end_header_id|>\n\n");
      r |= add_text(c, sys);
      r |= add_text(c, "<|eot_id|>");
    } else {
      r |= add_text(c, sys);
      r |= add_text(c, "\n\n");
    }
  }
  c->nsys = (uint32_t)c->hist.n;
  return r;
}

/* A user turn up to the assistant's header. The user text is encoded without specials: typed
 * text never becomes a control token. */
static int add_user(chat *c, const char *text) {
  int r = add_turn_start(c);
  if (c->tpl == TPL_CHATML) r |= add_text(c, "<|im_start|>user\n");
  else if (c->tpl == TPL_LLAMA3) r |= add_text(c, "<|start_header_id|>user<|end_header_id|>\n\n");
  else r |= add_text(c, "User: ");
  r |= vklm_tokenizer_encode(c->tk, text, strlen(text), 0, &c->hist);
  if (c->tpl == TPL_CHATML) r |= add_text(c, "<|im_end|>\n<|im_start|>assistant\n");
  else if (c->tpl == TPL_LLAMA3)
    r |= add_text(c, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  else r |= add_text(c, "\nAssistant:");
  return r;
}

/* What closes the assistant's reply in the history. */
static int add_closing(chat *c) {
  return add_text(c, c->tpl == TPL_CHATML ? "<|im_end|>\n" : c->tpl == TPL_LLAMA3 ? "<|eot_id|>"
                                                                                  : "\n");
}

static int is_end(const chat *c, int32_t t) {
  for (int k = 0; k < 4; k++)
    if (c->ends[k] >= 0 && c->ends[k] == t) return 1;
  return 0;
}

/* Drops turns [0, k) (k < nturns keeps the current one): hist loses their tokens. */
static void drop_turns(chat *c, uint32_t k) {
  if (!k) return;
  uint32_t a = c->turns[0], b = c->turns[k], d = b - a;
  memmove(c->hist.ids + a, c->hist.ids + b, sizeof(int32_t) * (c->hist.n - b));
  c->hist.n -= d;
  for (uint32_t i = k; i < c->nturns; i++) c->turns[i - k] = c->turns[i] - d;
  c->nturns -= k;
}

/* Makes room: drops the oldest turns (never the last) until hist.n + reserve <= n_ctx. Returns
 * the number of tokens dropped (and rewinds the cache to the system block when any). */
static uint32_t make_room(chat *c, uint32_t n_ctx, uint32_t reserve) {
  uint32_t k = 0, n0 = (uint32_t)c->hist.n;
  while (k + 1 < c->nturns &&
         (uint64_t)c->hist.n - (c->turns[k] - c->turns[0]) + reserve > n_ctx)
    k++;
  if (!k) return 0;
  drop_turns(c, k);
  if (vklm_infer_pos(c->s) > c->nsys) vklm_infer_rewind(c->s, c->nsys);
  fprintf(stderr, "\nvklm chat: the context is full: dropped the %u oldest turn%s (%u tokens), "
          "re-prefilling\n", k, k > 1 ? "s" : "", n0 - (uint32_t)c->hist.n);
  return n0 - (uint32_t)c->hist.n;
}

/* Clears the conversation back to the system block. */
static void reset(chat *c) {
  c->hist.n = c->nsys;
  c->nturns = 0;
  if (vklm_infer_pos(c->s) > c->nsys) vklm_infer_rewind(c->s, c->nsys);
}

/* ---- the command ---------------------------------------------------------------------------- */
typedef struct opts {
  const char *model, *tok, *system, *tpl;
  uint32_t n_predict, n_ctx;
  gen_sampling smp;
} opts;

static int parse(opts *o, vklm_config *cfg, int argc, char **argv) {
#define IS(s) (!strcmp(a, s))
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = app_config_flag(cfg, argc, argv, &i);
    if (r < 0) return 2;
    if (r) continue;
    if (IS("-h") || IS("--help")) return chat_usage(stdout), 1;
    if (i + 1 >= argc) {
      fprintf(stderr, "vklm chat: unknown flag or missing value '%s'\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (IS("-m") || IS("--model")) o->model = v;
    else if (IS("-t") || IS("--tokenizer")) o->tok = v;
    else if (IS("-sys") || IS("--system")) o->system = v;
    else if (IS("--chat-template")) o->tpl = v;
    else if (IS("-n") || IS("--n-predict")) o->n_predict = (uint32_t)strtoul(v, NULL, 10);
    else if (IS("-c") || IS("--ctx-size")) o->n_ctx = (uint32_t)strtoul(v, NULL, 10);
    else {
      int k = gen_sampling_flag(&o->smp, "chat", a, v);
      if (k < 0) return 2;
      if (k) continue;
      fprintf(stderr, "vklm chat: unknown flag '%s'\n", a);
      return 2;
    }
  }
#undef IS
  if (!o->model) {
    fprintf(stderr, "vklm chat: give -m MODEL\n");
    chat_usage(stderr);
    return 2;
  }
  if (o->tpl && strcmp(o->tpl, "chatml") && strcmp(o->tpl, "llama3") && strcmp(o->tpl, "plain")) {
    fprintf(stderr, "vklm chat: --chat-template is chatml, llama3 or plain, not '%s'\n", o->tpl);
    return 2;
  }
  return 0;
}

/* Brings the cache up to hist[0, upto) (prefilling what is missing); logits/next as prefill. */
static vklm_status catch_up(chat *c, uint32_t upto, float *logits, int32_t *next) {
  uint32_t pos = vklm_infer_pos(c->s);
  if (pos > upto) vklm_infer_rewind(c->s, pos = upto);
  if (pos == upto) return VKLM_OK;
  return vklm_infer_prefill(c->s, c->hist.ids + pos, upto - pos, logits, next);
}

/* The length of the longest tail of text[0..n) that begins some stop string (0: none). */
static size_t partial_stop(const gen_sampling *st, const char *text, size_t n) {
  size_t best = 0;
  for (int k = 0; k < st->nstops; k++) {
    size_t l = strlen(st->stops[k]);
    if (!l) continue;
    for (size_t m = l - 1 < n ? l - 1 : n; m > best; m--)
      if (!memcmp(text + n - m, st->stops[k], m)) {
        best = m;
        break;
      }
  }
  return best;
}

/* One reply: the user turn is in hist. Returns 0, or 1 on an engine failure (message in err). */
static int reply(chat *c, const opts *o, gen_sampling *stops, vklm_sampler *smp, float *logits,
                 int greedy, uint32_t n_ctx, char *err, size_t errlen) {
  int32_t next = 0;
  vklm_bytes out = {0};
  for (size_t i = c->turns[c->nturns - 1]; i < c->hist.n; i++)
    vklm_sampler_accept(smp, c->hist.ids[i]);
  if (catch_up(c, (uint32_t)c->hist.n, greedy ? NULL : logits, &next)) goto fail_infer;
  uint32_t rstart = (uint32_t)c->hist.n, ngen = 0;
  size_t printed = 0, hold = gen_stop_hold(stops), stop = 0;
  int stopped = 0;
  while (ngen < o->n_predict) {
    int32_t t = greedy ? next : vklm_sampler_sample(smp, logits);
    if (is_end(c, t)) break;
    if (c->hist.n == c->hist.cap) {
      size_t cap = c->hist.cap ? 2 * c->hist.cap : 256;
      int32_t *p = realloc(c->hist.ids, cap * sizeof *p);
      if (!p) break;
      c->hist.ids = p;
      c->hist.cap = cap;
    }
    c->hist.ids[c->hist.n++] = t;
    ngen++;
    vklm_sampler_accept(smp, t);
    out.n = 0;
    if (vklm_tokenizer_decode(c->tk, c->hist.ids + rstart, c->hist.n - rstart, 0, &out)) {
      fprintf(stderr, "\nvklm chat: the model chose token %d, which the tokenizer cannot "
              "decode: reply ended\n", t);
      c->hist.n--;
      break;
    }
    stop = gen_find_stop(stops, out.data, out.n);
    size_t upto = stop < out.n ? stop : !hold ? out.n : out.n >= hold - 1 ? out.n - (hold - 1) : 0;
    if (upto > printed) gen_emit(stdout, out.data, &printed, upto, 0);
    if (stop < out.n) {
      stopped = 1;
      break;
    }
    if (ngen == o->n_predict) break;
    if (vklm_infer_pos(c->s) == n_ctx) {
      uint32_t d = make_room(c, n_ctx, n_ctx / 4 > 1 ? n_ctx / 4 : 1);
      if (!d || c->hist.n >= n_ctx) {
        fprintf(stderr, "\nvklm chat: the context (%u tokens) is full: reply cut short\n", n_ctx);
        break;
      }
      rstart -= d;
      if (catch_up(c, (uint32_t)c->hist.n - 1, NULL, NULL)) goto fail_infer;
    }
    if (vklm_infer_decode(c->s, t, greedy ? NULL : logits, &next)) goto fail_infer;
  }
  if (!stopped) { /* what was held back, less a stop string's unfinished beginning */
    size_t end = out.n - partial_stop(stops, out.data, out.n);
    if (end > printed) gen_emit(stdout, out.data, &printed, end, 1);
  }
  if (stopped) {
    /* the history keeps the reply up to the stop string, re-tokenized */
    c->hist.n = rstart;
    if (vklm_tokenizer_encode(c->tk, out.data, stop, 0, &c->hist)) c->hist.n = rstart;
  }
  vklm_bytes_free(&out);
  add_closing(c);
  fputc('\n', stdout);
  fflush(stdout);
  return 0;
fail_infer:
  vklm_bytes_free(&out);
  snprintf(err, errlen, "%s", vklm_infer_error(c->s));
  return 1;
}

int cmd_chat(int argc, char **argv) {
  opts o = {0};
  o.n_predict = 256;
  gen_sampling_default(&o.smp);
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  int r = parse(&o, &cfg, argc, argv);
  if (r) return r == 1 ? 0 : r;
  if (!o.smp.seed_set) o.smp.sp.seed = (uint64_t)time(NULL);

  int rc = 1, tty = isatty(0);
  char err[2048] = "";
  gen_model gm;
  vklm_context *ctx = NULL;
  vklm_sampler *smp = NULL;
  chat c = {0};
  float *logits = NULL;
  char *line = NULL, *tpl_text = NULL;
  size_t linecap = 0;

  if (gen_model_open(&gm, o.model, o.tok, err, sizeof err)) goto fail;
  const vklm_model_config *mc = gm.cfg;
  c.tk = gm.tk;
  const char *from = "none (default)";
  c.tpl = TPL_CHATML;
  if (o.tpl) {
    from = "--chat-template";
    c.tpl = !strcmp(o.tpl, "llama3") ? TPL_LLAMA3
            : !strcmp(o.tpl, "plain") ? TPL_PLAIN
                                      : TPL_CHATML;
  } else {
    tpl_text = tpl_find(&gm, &from);
    if (!tpl_detect(tpl_text, &c.tpl)) from = "none (default)";
  }
  c.ends[0] = gm.eos;
  c.ends[1] = vklm_tokenizer_special_id(gm.tk, "<|im_end|>");
  c.ends[2] = vklm_tokenizer_special_id(gm.tk, "<|eot_id|>");
  c.ends[3] = vklm_tokenizer_special_id(gm.tk, "<|end_of_text|>");
  /* the template's end markers are stop strings too (a tokenizer without them as specials) */
  gen_sampling stops = o.smp;
  const char *marks[2] = {c.tpl == TPL_CHATML ? "<|im_end|>" : c.tpl == TPL_LLAMA3 ? "<|eot_id|>"
                                                                                   : "\nUser:",
                          c.tpl == TPL_CHATML ? "<|im_start|>" : NULL};
  for (int k = 0; k < 2; k++)
    if (marks[k] && stops.nstops < GEN_MAX_STOPS) stops.stops[stops.nstops++] = marks[k];

  uint32_t n_ctx = o.n_ctx ? o.n_ctx : mc->max_seq;
  if (!(ctx = app_context(&cfg))) goto fail_quiet;
  if (vklm_infer_create(ctx, mc, n_ctx, NULL, gen_model_tensor, &gm, &c.s, err, sizeof err))
    goto fail;
  if (!(smp = vklm_sampler_create(&o.smp.sp, mc->vocab_size))) goto fail;
  if (!(logits = malloc(sizeof(float) * mc->vocab_size))) goto fail;
  int greedy = vklm_sampler_is_greedy(&o.smp.sp);
  if (add_system(&c, o.system)) {
    snprintf(err, sizeof err, "the system prompt cannot be tokenized");
    goto fail;
  }
  if (c.nsys + 8 > n_ctx) {
    snprintf(err, sizeof err, "the system prompt has %u tokens: too long for the context of %u",
             c.nsys, n_ctx);
    goto fail;
  }
  fprintf(stderr, "vklm chat: %s (%s, %u layers, V %u), context %u, template %s (from %s), "
          "seed %llu; /help for commands\n", gm.path,
          mc->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", mc->n_layer, mc->vocab_size, n_ctx,
          tpl_names[c.tpl], from, (unsigned long long)o.smp.sp.seed);

  for (;;) {
    if (tty) {
      fputs("> ", stdout);
      fflush(stdout);
    }
    ssize_t len = getline(&line, &linecap, stdin);
    if (len < 0) {
      if (tty) fputc('\n', stdout);
      break;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len == 0) continue;
    if (line[0] == '/') {
      if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
      if (!strcmp(line, "/reset")) {
        reset(&c);
        vklm_sampler_destroy(smp);
        if (!(smp = vklm_sampler_create(&o.smp.sp, mc->vocab_size))) goto fail;
        fprintf(stdout, "(conversation cleared)\n");
        continue;
      }
      if (!strcmp(line, "/help")) {
        fprintf(stdout, "/reset  clear the conversation\n/quit, /exit, Ctrl-D  leave\n"
                        "/help   this text\n");
        continue;
      }
      fprintf(stdout, "unknown command %s (/help lists them)\n", line);
      continue;
    }
    if (add_user(&c, line)) {
      snprintf(err, sizeof err, "the message cannot be tokenized");
      goto fail;
    }
    uint32_t reserve = o.n_predict < n_ctx / 4 ? o.n_predict : n_ctx / 4;
    if (reserve < 1) reserve = 1;
    /* a message that cannot fit even alone (after the system block) drops nothing */
    if (c.hist.n - c.turns[c.nturns - 1] + c.nsys < n_ctx) make_room(&c, n_ctx, reserve);
    if (c.hist.n >= n_ctx) {
      fprintf(stderr, "vklm chat: the message is too long for the context (%u tokens); "
              "not sent\n", n_ctx);
      c.hist.n = c.turns[--c.nturns];
      if (vklm_infer_pos(c.s) > c.hist.n) vklm_infer_rewind(c.s, (uint32_t)c.hist.n);
      continue;
    }
    if (reply(&c, &o, &stops, smp, logits, greedy, n_ctx, err, sizeof err)) goto fail;
  }
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "vklm chat: %s\n", err[0] ? err : "out of memory");
fail_quiet:
  rc = 1;
done:
  free(line);
  free(tpl_text);
  free(logits);
  free(c.turns);
  vklm_token_ids_free(&c.hist);
  vklm_sampler_destroy(smp);
  vklm_infer_destroy(c.s);
  vklm_context_destroy(ctx);
  gen_model_close(&gm);
  return rc;
}

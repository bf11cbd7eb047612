/* vklm chat: an interactive conversation with a model through its own chat template.
 *
 * The model and tokenizer are opened as `vklm generate` opens them (gen_common.h). The template
 * is executed (engine/chat): the model's own (a GGUF's tokenizer.chat_template, else
 * chat_template.jinja or tokenizer_config.json beside the model), or --chat-template NAME|FILE
 * (a built-in: chatml, llama3, plain; or a Jinja file); ChatML when the model has none.
 *
 * Each turn the whole conversation is rendered and encoded (engine/chat drops the oldest whole
 * turns while it does not fit the context less the reply's reserve, with a note on stderr; a
 * prompt still over that after dropping is sent while it fits the context, refused if not; a
 * reply that fills the context drops older turns again and goes on).
 * The KV cache holds the tokens of the last prompt and reply; only what differs from them is
 * prefilled (the session rewinds to the common prefix). Generation stops at the template's
 * end-of-turn tokens, its markers as stop strings, --stop strings or -n. Tokens are sampled on
 * the GPU (only the id comes back) and streamed through engine/infer/stream.h (whole UTF-8
 * characters, stop strings matched incrementally). Lines come from stdin; "> " is printed only
 * when stdin is a terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app_util.h"
#include "chat/chat.h"
#include "commands.h"
#include "flags.h"
#include "gen_common.h"
#include "infer/stream.h"

typedef struct opts {
  const char *model, *tok, *system, *tpl;
  uint32_t n_predict, n_ctx;
  gen_sampling smp;
} opts;

static int parse(opts *o, vklm_config *cfg, int argc, char **argv) {
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &o->model, "M",
                "a vklm checkpoint (or its directory), an HF directory or a .gguf"),
      AF_STRING("--tokenizer", "-t", &o->tok, "F",
                "tokenizer.json (default: beside the model, else the model's own)"),
      AF_STRING("--system", "-sys", &o->system, "TEXT", "the system prompt"),
      AF_STRING("--chat-template", NULL, &o->tpl, "T",
                "a built-in (chatml | llama3 | plain) or a Jinja template file\n"
                "(default: the model's own template; chatml when it has none)"),
      AF_FLAG("--n-predict", "-n", AF_U32, &o->n_predict, 1, 1u << 24, "N",
              "tokens per reply at most (default 256)"),
      AF_FLAG("--ctx-size", "-c", AF_U32, &o->n_ctx, 1, 1u << 20, "N",
              "context length (default: the model's)"),
      AF_INCLUDE(o->smp.flags),
      AF_LAST};
  const app_command cmd = {"chat", "chat -m MODEL [flags]",
                           "At the prompt: /reset clears the conversation, /quit or /exit (or "
                           "Ctrl-D) leaves, /help.",
                           flags, 0, 0, 1};
  int r = app_flags_parse(&cmd, argc, argv, cfg, NULL, NULL);
  if (r) return r;
  if (!o->model) {
    return app_flags_missing(&cmd, "give -m MODEL");
  }
  if (o->tpl && !gen_template_flag_ok("chat", o->tpl)) return 2;
  return 0;
}

/* ---- the inference session: every vklm_infer_* call of this command is in this section ---- */
typedef struct sess {
  vklm_infer *s;         /* owned */
  vklm_sampler *smp;     /* borrowed; NULL: greedy (the GPU argmax) */
  vklm_token_ids cache;  /* the tokens the KV cache holds, in order */
} sess;

/* Appends tok[0..n) to the session's sequence and samples the next token on the GPU. */
static vklm_status sess_step(sess *S, const int32_t *tok, uint32_t n, int32_t *next) {
  vklm_infer_req r = {.slot = 0, .tokens = tok, .n = n, .want = 1, .sampler = S->smp};
  return vklm_infer_step(S->s, &r, 1, next, NULL);
}

/* Room for one more token in the cache's list. */
static vklm_status cache_room(sess *S) {
  if (S->cache.n < S->cache.cap) return VKLM_OK;
  size_t cap = S->cache.cap ? 2 * S->cache.cap : 1024;
  int32_t *q = realloc(S->cache.ids, cap * sizeof *q);
  if (!q) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  S->cache.ids = q;
  S->cache.cap = cap;
  return VKLM_OK;
}

/* Makes the cache hold exactly p[0..n) (n >= 1): keeps the common prefix with what it holds,
 * rewinds to it and prefills the rest (at least the last token, for the next one). */
static vklm_status sess_sync(sess *S, const int32_t *p, size_t n, int32_t *next, size_t *kept) {
  size_t keep = vklm_chat_common_prefix(S->cache.ids, S->cache.n, p, n);
  if (keep >= n) keep = n - 1;
  if (vklm_infer_pos(S->s) > keep) vklm_infer_rewind(S->s, (uint32_t)keep);
  S->cache.n = keep;
  *kept = keep;
  vklm_status st = sess_step(S, p + keep, (uint32_t)(n - keep), next);
  if (st) return st;
  for (size_t i = keep; i < n; i++) {
    if (cache_room(S)) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    S->cache.ids[S->cache.n++] = p[i];
  }
  return VKLM_OK;
}

static vklm_status sess_decode(sess *S, int32_t tok, int32_t *next) {
  if (cache_room(S)) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  vklm_status st = sess_step(S, &tok, 1, next);
  if (!st) S->cache.ids[S->cache.n++] = tok;
  return st;
}

static uint32_t sess_pos(const sess *S) { return vklm_infer_pos(S->s); }
static const char *sess_error(const sess *S) { return vklm_infer_error(S->s); }

/* ---- replies ------------------------------------------------------------------------------ */
typedef struct chatst {
  vklm_tokenizer *tk;     /* borrowed */
  vklm_chat *conv;        /* owned */
  vklm_stream *stream;    /* owned: one reply's text */
  sess S;
  int32_t ends[GEN_MAX_STOPS + 1];
  int nends;
  gen_sampling stops;     /* --stop strings plus the template's markers */
} chatst;

static int is_end(const chatst *c, int32_t t) {
  for (int k = 0; k < c->nends; k++)
    if (c->ends[k] == t) return 1;
  return 0;
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

/* The context filled during a reply: drops the oldest turns so that the prompt, the reply so
 * far (gen less its last token, not yet decoded) and a quarter of the context fit, and
 * re-prefills them. Returns 1 when there is room again. */
static int make_room(chatst *c, const vklm_token_ids *gen, uint32_t n_ctx) {
  vklm_token_ids p = {0};
  uint32_t dropped = 0;
  char err[512];
  size_t keep = gen->n - 1, margin = n_ctx / 4 > 1 ? n_ctx / 4 : 1;
  int ok = n_ctx > keep + margin &&
           !vklm_chat_prompt(c->conv, c->tk, n_ctx - keep - margin, &p, &dropped, err, sizeof err);
  if (ok && dropped) {
    fprintf(stderr, "\nvklm chat: the context is full: dropped the %u oldest turn%s, "
            "re-prefilling\n", dropped, dropped > 1 ? "s" : "");
    int32_t *q = realloc(p.ids, (p.n + keep + 1) * sizeof *q);
    size_t kept;
    int32_t next;
    ok = q != NULL;
    if (ok) {
      p.ids = q;
      memcpy(p.ids + p.n, gen->ids, keep * sizeof *q);
      ok = !sess_sync(&c->S, p.ids, p.n + keep, &next, &kept);
    }
  } else {
    ok = 0;
  }
  vklm_token_ids_free(&p);
  return ok;
}

/* One reply to the prompt tokens p[0..n): streams it to stdout and adds it to the
 * conversation. Returns 0, or 1 on an engine failure (message in err). */
static int reply(chatst *c, const opts *o, const int32_t *p, size_t n, vklm_sampler *smp,
                 uint32_t n_ctx, char *err, size_t errlen) {
  int32_t next = 0;
  size_t kept;
  vklm_token_ids gen = {0};
  vklm_stream_piece pc;
  int stopped = 0;
  vklm_stream_reset(c->stream);
  for (size_t i = vklm_chat_common_prefix(c->S.cache.ids, c->S.cache.n, p, n); i < n; i++)
    vklm_sampler_accept(smp, p[i]); /* the new part of the prompt */
  if (sess_sync(&c->S, p, n, &next, &kept)) goto fail_infer;
  for (uint32_t ngen = 0; ngen < o->n_predict;) {
    int32_t t = next;
    if (is_end(c, t)) break;
    if (gen.n == gen.cap) {
      size_t cap = gen.cap ? 2 * gen.cap : 256;
      int32_t *q = realloc(gen.ids, cap * sizeof *q);
      if (!q) break;
      gen.ids = q;
      gen.cap = cap;
    }
    if (vklm_stream_push(c->stream, t, &pc) != VKLM_OK) {
      fprintf(stderr, "\nvklm chat: the model chose token %d, which the tokenizer cannot "
              "decode: reply ended\n", t);
      break;
    }
    gen.ids[gen.n++] = t;
    ngen++;
    vklm_sampler_accept(smp, t);
    fwrite(pc.text, 1, pc.n, stdout);
    fflush(stdout);
    if (pc.stop >= 0) {
      stopped = 1;
      break;
    }
    if (ngen == o->n_predict) break;
    if (sess_pos(&c->S) >= n_ctx && !make_room(c, &gen, n_ctx)) {
      fprintf(stderr, "\nvklm chat: the context (%u tokens) is full: reply cut short\n", n_ctx);
      break;
    }
    if (sess_decode(&c->S, t, &next)) goto fail_infer;
  }
  /* the reply's text: up to a stop string; without one, less an unfinished template marker or
   * stop string at its end (held back, never printed) */
  size_t len, emitted = vklm_stream_emitted(c->stream);
  const char *text = vklm_stream_text(c->stream, &len);
  size_t sent = stopped ? len : len - partial_stop(&c->stops, text ? text : "", len);
  if (sent > emitted) fwrite(text + emitted, 1, sent - emitted, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  char *kept_text = strndup(text ? text : "", sent);
  int bad = !kept_text || vklm_chat_add(c->conv, "assistant", kept_text);
  free(kept_text);
  vklm_token_ids_free(&gen);
  if (bad) snprintf(err, errlen, "out of memory");
  return bad;
fail_infer:
  vklm_token_ids_free(&gen);
  snprintf(err, errlen, "%s", sess_error(&c->S));
  return 1;
}

/* ---- the command ---------------------------------------------------------------------------- */

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
  char err[2048] = "", from[128] = "";
  gen_model gm;
  vklm_context *ctx = NULL;
  vklm_sampler *smp = NULL;
  vklm_chat_template *tpl = NULL;
  chatst c = {0};
  vklm_token_ids prompt = {0};
  char *line = NULL;
  size_t linecap = 0;

  if (gen_model_open(&gm, o.model, o.tok, err, sizeof err)) goto fail;
  const vklm_model_config *mc = gm.cfg;
  c.tk = gm.tk;
  if (gen_model_template(&gm, o.tpl, &tpl, from, sizeof from, err, sizeof err)) goto fail;
  if (vklm_chat_create(tpl, o.system, &c.conv)) goto fail;
  /* end-of-turn ids and stop strings: the template's markers, then --stop's */
  const char *marks[16];
  size_t nm = vklm_chat_template_stops(tpl, marks, 16);
  if (nm > 16) nm = 16;
  if (gm.eos >= 0) c.ends[c.nends++] = gm.eos;
  c.stops = o.smp;
  for (size_t k = 0; k < nm; k++) {
    int32_t id = vklm_tokenizer_special_id(gm.tk, marks[k]);
    if (id >= 0 && c.nends < GEN_MAX_STOPS) c.ends[c.nends++] = id;
    if (c.stops.nstops < GEN_MAX_STOPS) c.stops.stops[c.stops.nstops++] = marks[k];
  }

  uint32_t n_ctx = o.n_ctx ? o.n_ctx : mc->max_seq;
  uint32_t reserve = o.n_predict < n_ctx / 4 ? o.n_predict : n_ctx / 4;
  if (reserve < 1) reserve = 1;
  if (o.system && *o.system) { /* the system prompt alone must leave room to talk */
    char e2[1024];
    char *vars = vklm_chat_vars_json(vklm_chat_messages(c.conv), vklm_chat_count(c.conv), NULL,
                                     e2, sizeof e2);
    vklm_status st = vars ? vklm_chat_template_encode(tpl, gm.tk, vars, 0, 0, &prompt, NULL, e2,
                                                      sizeof e2)
                          : VKLM_ERROR_OUT_OF_HOST_MEMORY;
    free(vars);
    if (st) {
      snprintf(err, sizeof err, "the chat template fails on the system prompt: %s", e2);
      goto fail;
    }
    if (prompt.n + 8 > n_ctx) {
      snprintf(err, sizeof err, "the system prompt has %zu tokens: too long for the context of "
               "%u", prompt.n, n_ctx);
      goto fail;
    }
  }
  if (!(ctx = app_context(&cfg))) goto fail_quiet;
  vklm_status ist = vklm_infer_create(ctx, mc, n_ctx, NULL, gen_model_tensor, &gm, &c.S.s, err,
                                      sizeof err);
  if (ist != VKLM_OK) {
    gen_oom_hint(ist, err, sizeof err);
    goto fail;
  }
  if (!(smp = vklm_sampler_create(&o.smp.sp, mc->vocab_size))) goto fail;
  int greedy = vklm_sampler_is_greedy(&o.smp.sp);
  c.S.smp = greedy ? NULL : smp;
  vklm_stream_options so = {.stops = c.stops.stops, .nstops = (uint32_t)c.stops.nstops};
  if (vklm_stream_create(gm.tk, &so, &c.stream)) {
    snprintf(err, sizeof err, "a --stop string is empty or not valid UTF-8");
    goto fail;
  }
  fprintf(stderr, "vklm chat: %s (%s, %u layers, V %u), context %u, template %s (from %s), "
          "seed %llu; /help for commands\n", gm.path,
          mc->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", mc->n_layer, mc->vocab_size, n_ctx,
          vklm_chat_template_name(tpl), from, (unsigned long long)o.smp.sp.seed);

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
        vklm_chat_reset(c.conv);
        vklm_sampler_destroy(smp);
        if (!(smp = vklm_sampler_create(&o.smp.sp, mc->vocab_size))) goto fail;
        c.S.smp = greedy ? NULL : smp;
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
    if (vklm_chat_add(c.conv, "user", line)) goto fail;
    uint32_t dropped = 0;
    vklm_status st = vklm_chat_prompt(c.conv, gm.tk, n_ctx - reserve, &prompt, &dropped, err,
                                      sizeof err);
    if (dropped)
      fprintf(stderr, "\nvklm chat: the context is full: dropped the %u oldest turn%s, "
              "re-prefilling\n", dropped, dropped > 1 ? "s" : "");
    /* past the reply's reserve with nothing left to drop, a prompt that still fits the
     * context is sent all the same (the reply may be cut short) */
    if (st && !(prompt.n > n_ctx - reserve && prompt.n < n_ctx)) {
      if (prompt.n >= n_ctx)
        fprintf(stderr, "vklm chat: the message is too long for the context (%u tokens); "
                "not sent\n", n_ctx);
      else
        fprintf(stderr, "vklm chat: %s; not sent\n", err);
      vklm_chat_pop(c.conv);
      err[0] = 0;
      continue;
    }
    if (!prompt.n) {
      fprintf(stderr, "vklm chat: the template rendered an empty prompt; not sent\n");
      vklm_chat_pop(c.conv);
      continue;
    }
    if (reply(&c, &o, prompt.ids, prompt.n, smp, n_ctx, err, sizeof err)) goto fail;
  }
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "vklm chat: %s\n", err[0] ? err : "out of memory");
fail_quiet:
  rc = 1;
done:
  free(line);
  vklm_stream_destroy(c.stream);
  vklm_token_ids_free(&prompt);
  vklm_token_ids_free(&c.S.cache);
  vklm_chat_destroy(c.conv);
  vklm_chat_template_destroy(tpl);
  vklm_sampler_destroy(smp);
  vklm_infer_destroy(c.S.s);
  vklm_context_destroy(ctx);
  gen_model_close(&gm);
  return rc;
}

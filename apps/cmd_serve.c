/* vklm serve: an OpenAI-compatible HTTP server (engine/serve) over one batched session.
 *
 * Listens first (GET /health answers 503 while loading), then opens the model and tokenizer as
 * `vklm generate` does (gen_common.h), the chat template as `vklm chat` does (--chat-template,
 * else the model's own, else ChatML), creates a session of SLOTS sequences of CTX positions and
 * hands everything to the engine. SIGINT / SIGTERM end it gracefully (running replies end with
 * finish_reason "length"). docs/serve.md describes the endpoints. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_util.h"
#include "chat/chat.h"
#include "commands.h"
#include "flags.h"
#include "gen_common.h"
#include "serve/serve.h"

typedef struct opts {
  const char *model, *tok, *host, *key, *tpl, *alias;
  uint32_t port, np, n_ctx, queue, timeout;
  uint64_t max_body;
} opts;

static volatile sig_atomic_t quit;
static void on_signal(int s) { quit = s; }

static int parse(opts *o, vklm_config *cfg, int argc, char **argv) {
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &o->model, "M",
                "a vklm checkpoint (or its directory), an HF directory or a .gguf"),
      AF_STRING("--tokenizer", "-t", &o->tok, "F",
                "tokenizer.json (default: beside the model, else the model's own)"),
      AF_STRING("--host", NULL, &o->host, "H",
                "address to listen on (default 127.0.0.1; 0.0.0.0 for every one)"),
      AF_FLAG("--port", NULL, AF_U32, &o->port, 0, 65535, "N",
              "port (default 8080; 0: any free one, printed)"),
      AF_FLAG("--parallel", "-np", AF_U32, &o->np, 1, 256, "N",
              "sequences decoded together (slots; default 4)"),
      AF_FLAG("--ctx-size", "-c", AF_U32, &o->n_ctx, 1, 1u << 20, "N",
              "context length per slot (default: the model's)"),
      AF_STRING("--api-key", NULL, &o->key, "KEY",
                "require \"Authorization: Bearer KEY\" (also VKLM_API_KEY)"),
      AF_STRING("--chat-template", NULL, &o->tpl, "T",
                "a built-in (chatml | llama3 | plain) or a Jinja template file"),
      AF_STRING("--alias", NULL, &o->alias, "NAME",
                "the model id /v1/models reports (default: the file name)"),
      AF_FLAG("--queue", NULL, AF_U32, &o->queue, 1, 100000, "N",
              "requests waiting for a slot before 503 (default 64)"),
      AF_FLAG("--max-body", NULL, AF_U64, &o->max_body, 1024, 256u << 20, "BYTES",
              "request body limit (default 1048576)"),
      AF_FLAG("--timeout", NULL, AF_U32, &o->timeout, 1, 3600, "S",
              "idle connection timeout in seconds (default 15)"),
      AF_LAST};
  const app_command cmd = {"serve", "serve -m MODEL [flags]", NULL, flags, 0, 0, 1};
  int r = app_flags_parse(&cmd, argc, argv, cfg, NULL, NULL);
  if (r) return r;
  if (!o->model) {
    return app_flags_missing(&cmd, "give -m MODEL");
  }
  if (o->tpl && !gen_template_flag_ok("serve", o->tpl)) return 2;
  return 0;
}

int cmd_serve(int argc, char **argv) {
  opts o = {.host = "127.0.0.1", .port = 8080, .np = 4, .queue = 64, .max_body = 1u << 20,
            .timeout = 15};
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  int r = parse(&o, &cfg, argc, argv);
  if (r) return r == 1 ? 0 : r;
  if (!o.key) o.key = getenv("VKLM_API_KEY");

  int rc = 1;
  vklm_status ist;
  char err[2048] = "", from[128] = "", name[256];
  gen_model gm;
  memset(&gm, 0, sizeof gm);
  vklm_context *ctx = NULL;
  vklm_infer *s = NULL;
  vklm_chat_template *tpl = NULL;
  vklm_serve *sv = NULL;
  const char *base = strrchr(o.model, '/');
  snprintf(name, sizeof name, "%s", o.alias ? o.alias : base && base[1] ? base + 1 : o.model);

  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  vklm_serve_options so = {.host = o.host, .port = (uint16_t)o.port, .api_key = o.key,
                           .model_name = name, .queue_max = o.queue, .max_body = o.max_body,
                           .timeout_s = o.timeout};
  if (vklm_serve_start(&so, &sv, err, sizeof err)) goto fail;
  const char *h = o.host;
  int v6 = strchr(h, ':') && h[0] != '[';
  fprintf(stderr, "vklm serve: listening on http://%s%s%s:%u (loading %s)\n", v6 ? "[" : "", h,
          v6 ? "]" : "", vklm_serve_port(sv), o.model);

  if (gen_model_open(&gm, o.model, o.tok, err, sizeof err)) goto fail;
  const vklm_model_config *mc = gm.cfg;
  if (gen_model_template(&gm, o.tpl, &tpl, from, sizeof from, err, sizeof err)) goto fail;
  uint32_t n_ctx = o.n_ctx ? o.n_ctx : mc->max_seq;
  if (!(ctx = app_context(&cfg))) goto fail_quiet;
  vklm_infer_options io = {.n_seq = o.np};
  if ((ist = vklm_infer_create(ctx, mc, n_ctx, &io, gen_model_tensor, &gm, &s, err,
                               sizeof err)) != VKLM_OK) {
    gen_oom_hint(ist, err, sizeof err);
    goto fail;
  }
  vklm_serve_model m = {.session = s, .tk = gm.tk, .tpl = tpl, .eos = gm.eos};
  if (vklm_serve_ready(sv, &m, err, sizeof err)) goto fail;
  fprintf(stderr, "vklm serve: ready: %s (%s, %u layers, V %u), %u slots of %u tokens, template "
          "%s (from %s)%s\n", gm.path, mc->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama",
          mc->n_layer, mc->vocab_size, o.np, n_ctx, vklm_chat_template_name(tpl), from,
          o.key && *o.key ? ", API key required" : "");
  while (!quit) {
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "vklm serve: %s: finishing running requests and stopping\n",
          quit == SIGINT ? "SIGINT" : "SIGTERM");
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "vklm serve: %s\n", err[0] ? err : "out of memory");
fail_quiet:
  rc = 1;
done:
  vklm_serve_destroy(sv); /* before the session it serves */
  vklm_chat_template_destroy(tpl);
  vklm_infer_destroy(s);
  vklm_context_destroy(ctx);
  gen_model_close(&gm);
  if (rc == 0) fprintf(stderr, "vklm serve: stopped\n");
  return rc;
}

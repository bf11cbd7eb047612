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
#include "gen_common.h"
#include "serve/serve.h"

static void serve_usage(FILE *f) {
  fprintf(f,
      "usage: vklm serve -m MODEL [flags]\n"
      "  -m, --model M        a vklm checkpoint (or its directory), an HF directory or a .gguf\n"
      "  -t, --tokenizer F    tokenizer.json (default: beside the model, else the model's own)\n"
      "  --host H             address to listen on (default 127.0.0.1; 0.0.0.0 for every one)\n"
      "  --port N             port (default 8080; 0: any free one, printed)\n"
      "  -np, --parallel N    sequences decoded together (slots; default 4)\n"
      "  -c, --ctx-size N     context length per slot (default: the model's)\n"
      "  --api-key KEY        require \"Authorization: Bearer KEY\" (also VKLM_API_KEY)\n"
      "  --chat-template T    a built-in (chatml | llama3 | plain) or a Jinja template file\n"
      "  --alias NAME         the model id /v1/models reports (default: the file name)\n"
      "  --queue N            requests waiting for a slot before 503 (default 64)\n"
      "  --max-body BYTES     request body limit (default 1048576)\n"
      "  --timeout S          idle connection timeout in seconds (default 15)\n"
      "  --device D  --limits baseline  --validate\n");
}

typedef struct opts {
  const char *model, *tok, *host, *key, *tpl, *alias;
  uint32_t port, np, n_ctx, queue, timeout;
  size_t max_body;
} opts;

static volatile sig_atomic_t quit;
static void on_signal(int s) { quit = s; }

static int parse(opts *o, vklm_config *cfg, int argc, char **argv) {
#define IS(s) (!strcmp(a, s))
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = app_config_flag(cfg, argc, argv, &i);
    if (r < 0) return 2;
    if (r) continue;
    if (IS("-h") || IS("--help")) return serve_usage(stdout), 1;
    if (i + 1 >= argc) {
      fprintf(stderr, "vklm serve: unknown flag or missing value '%s'\n", a);
      return 2;
    }
    const char *v = argv[++i];
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    int isnum = end != v && !*end && v[0] != '-';
    if (IS("-m") || IS("--model")) o->model = v;
    else if (IS("-t") || IS("--tokenizer")) o->tok = v;
    else if (IS("--host")) o->host = v;
    else if (IS("--api-key")) o->key = v;
    else if (IS("--chat-template")) o->tpl = v;
    else if (IS("--alias")) o->alias = v;
    else if (!isnum && (IS("--port") || IS("-np") || IS("--parallel") || IS("-c") ||
                        IS("--ctx-size") || IS("--queue") || IS("--max-body") || IS("--timeout"))) {
      fprintf(stderr, "vklm serve: %s takes a number, not '%s'\n", a, v);
      return 2;
    } else if (IS("--port")) o->port = n > 65535 ? 65536 : (uint32_t)n;
    else if (IS("-np") || IS("--parallel")) o->np = n > 256 ? 257 : (uint32_t)n;
    else if (IS("-c") || IS("--ctx-size")) o->n_ctx = n > (1u << 20) ? (1u << 20) + 1 : (uint32_t)n;
    else if (IS("--queue")) o->queue = n > 100000 ? 100001 : (uint32_t)n;
    else if (IS("--max-body")) o->max_body = (size_t)n;
    else if (IS("--timeout")) o->timeout = n > 3600 ? 3601 : (uint32_t)n;
    else {
      fprintf(stderr, "vklm serve: unknown flag '%s'\n", a);
      return 2;
    }
  }
#undef IS
  if (!o->model) {
    fprintf(stderr, "vklm serve: give -m MODEL\n");
    serve_usage(stderr);
    return 2;
  }
  const char *bad = o->port > 65535 ? "--port must be in [0, 65535]"
                    : o->np < 1 || o->np > 256 ? "-np must be in [1, 256]"
                    : o->n_ctx > (1u << 20) ? "-c must be at most 1048576"
                    : o->queue < 1 || o->queue > 100000 ? "--queue must be in [1, 100000]"
                    : o->max_body < 1024 || o->max_body > (256u << 20)
                        ? "--max-body must be in [1024, 268435456]"
                    : o->timeout < 1 || o->timeout > 3600 ? "--timeout must be in [1, 3600]"
                    : NULL;
  if (bad) {
    fprintf(stderr, "vklm serve: %s\n", bad);
    return 2;
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
  if (vklm_infer_create(ctx, mc, n_ctx, &io, gen_model_tensor, &gm, &s, err, sizeof err))
    goto fail;
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

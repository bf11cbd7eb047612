/* vklm rank: K responses per prompt sampled from a model (batched generation), ranked by a
 * person in the terminal or in the browser (--web), or by a simulated rater (--simulate);
 * sessions live in engine/align (rank.c), docs/alignment.md. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "align_common.h"
#include "app_util.h"
#include "commands.h"
#include "flags.h"
#include "net/http.h"

/* apps/rank_page.html, embedded by scripts/embed_file.cmake */
extern const unsigned char vklm_file_rank_page[];
extern const size_t vklm_file_rank_page_size;

static const char about[] =
    "For each prompt ({\"prompt\"} rows; rows that already carry \"responses\", e.g. two models'\n"
    "answers from `vklm eval --compare-with`, are ranked as they are), samples K responses from\n"
    "MODEL and asks for their ranking, best first; every ranking is appended to the output at\n"
    "once (with the model, sampling settings, rater and time), and a second run resumes.\n"
    "In the terminal: type the response numbers best first (\"2 1 3\"; \"2=1 3\" ties 2 and 1),\n"
    "'b 2 1 3' marks all bad, 's' skips, 'u' undoes the last, 'q' quits (resume later).";

static void show_item(const vklm_pref_item *it, uint64_t i, uint64_t n) {
  printf("\n==== prompt %llu of %llu (line %u) ====\n%s\n", (unsigned long long)i + 1,
         (unsigned long long)n, it->line, it->prompt);
  for (uint32_t k = 0; k < it->k; k++)
    printf("---- [%u]%s%s ----\n%s\n", k + 1, it->models ? " " : "", it->models ? it->models[k] : "",
           it->response[k]);
}

static int rank_terminal(vklm_rank_session *s) {
  char line[1024], err[512];
  for (;;) {
    uint64_t i, n;
    const vklm_pref_item *it = vklm_rank_current(s, &i, &n);
    if (!it) return 0;
    show_item(it, i, n);
    for (;;) {
      printf("rank (e.g. 2 1 3; 2=1 3 ties), b ORDER (all bad), s skip, u undo, q quit> ");
      fflush(stdout);
      if (!fgets(line, sizeof line, stdin)) return 0; /* EOF: progress is saved */
      char *p = line;
      while (*p == ' ') p++;
      int32_t group[VKLM_PREF_MAX_K];
      const char *why = NULL;
      if (*p == 'q') return 0;
      if (*p == 's') {
        if (vklm_rank_submit(s, NULL, 0, err, sizeof err) != VKLM_OK) goto fail;
      } else if (*p == 'u') {
        if (vklm_rank_undo(s, err, sizeof err) != VKLM_OK) {
          printf("%s\n", err);
          continue;
        }
      } else {
        int all_bad = *p == 'b';
        if ((why = vklm_rank_parse(all_bad ? p + 1 : p, it->k, group))) {
          printf("%s\n", why);
          continue;
        }
        if (vklm_rank_submit(s, group, all_bad, err, sizeof err) != VKLM_OK) goto fail;
      }
      break;
    }
  }
fail:
  fprintf(stderr, "vklm rank: %s\n", err);
  return 1;
}

/* ---- --web -------------------------------------------------------------------------------- */
typedef struct web {
  vklm_rank_session *s;
  pthread_mutex_t mu;
  int finished;
} web;

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void reply_json(vklm_http_request *r, int status, cJSON *j) {
  char *t = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  vklm_http_reply(r, status, "application/json", t ? t : "{}", t ? strlen(t) : 2, NULL);
  free(t);
}

static cJSON *item_json(web *w, const char *error) {
  uint64_t i, n;
  const vklm_pref_item *it = vklm_rank_current(w->s, &i, &n);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "done", (double)i);
  cJSON_AddNumberToObject(j, "total", (double)n);
  if (error) cJSON_AddStringToObject(j, "error", error);
  if (!it) {
    cJSON_AddBoolToObject(j, "finished", 1);
    w->finished = 1;
    return j;
  }
  cJSON_AddStringToObject(j, "prompt", it->prompt);
  cJSON *rs = cJSON_AddArrayToObject(j, "responses");
  for (uint32_t k = 0; k < it->k; k++) cJSON_AddItemToArray(rs, cJSON_CreateString(it->response[k]));
  cJSON_AddNumberToObject(j, "line", it->line);
  return j;
}

/* {"ranking": [i, [j, k], ...]} into places. */
static const char *web_ranking(const cJSON *rk, uint32_t k, int32_t *group) {
  for (uint32_t i = 0; i < k; i++) group[i] = -1;
  if (!cJSON_IsArray(rk)) return "\"ranking\" must be a list";
  int32_t g = 0;
  uint32_t seen = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, rk) {
    int n = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 1;
    for (int q = 0; q < n; q++) {
      const cJSON *x = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, q) : e;
      double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
      if (v < 0 || v >= k || v != (double)(uint32_t)v || group[(uint32_t)v] >= 0)
        return "the ranking is not a permutation of the responses";
      group[(uint32_t)v] = g;
      seen++;
    }
    g++;
  }
  return seen == k ? NULL : "rank every response";
}

static void web_handler(void *user, vklm_http_request *req, const char *method, const char *path,
                        const char *body, size_t len) {
  web *w = user;
  if (!strcmp(method, "GET") && (!strcmp(path, "/") || !strcmp(path, "/index.html"))) {
    vklm_http_reply(req, 200, "text/html; charset=utf-8", (const char *)vklm_file_rank_page,
                    vklm_file_rank_page_size, NULL);
    return;
  }
  pthread_mutex_lock(&w->mu);
  if (!strcmp(method, "GET") && !strcmp(path, "/api/item")) {
    reply_json(req, 200, item_json(w, NULL));
  } else if (!strcmp(method, "POST") && !strcmp(path, "/api/rank")) {
    cJSON *j = cJSON_ParseWithLength(body, len);
    char err[512] = "";
    const char *why = NULL;
    const vklm_pref_item *it = vklm_rank_current(w->s, NULL, NULL);
    int32_t group[VKLM_PREF_MAX_K];
    if (!cJSON_IsObject(j)) why = "the body is not a JSON object";
    else if (cJSON_IsTrue(cJSON_GetObjectItem(j, "undo"))) {
      if (vklm_rank_undo(w->s, err, sizeof err) != VKLM_OK) why = err;
    } else if (!it) why = "every prompt is ranked";
    else if (cJSON_IsTrue(cJSON_GetObjectItem(j, "skip"))) {
      if (vklm_rank_submit(w->s, NULL, 0, err, sizeof err) != VKLM_OK) why = err;
    } else if (!(why = web_ranking(cJSON_GetObjectItem(j, "ranking"), it->k, group))) {
      int all_bad = cJSON_IsTrue(cJSON_GetObjectItem(j, "all_bad"));
      if (vklm_rank_submit(w->s, group, all_bad, err, sizeof err) != VKLM_OK) why = err;
    }
    cJSON_Delete(j);
    reply_json(req, why ? 400 : 200, item_json(w, why));
  } else {
    const char *nf = "{\"error\":\"not found\"}";
    vklm_http_reply(req, 404, "application/json", nf, strlen(nf), NULL);
  }
  pthread_mutex_unlock(&w->mu);
}

static int rank_web(vklm_rank_session *s, const char *host, uint16_t port) {
  web w = {.s = s};
  pthread_mutex_init(&w.mu, NULL);
  vklm_http_options o = {.host = host, .port = port, .handler = web_handler, .user = &w,
                         .max_body = 1 << 20};
  vklm_http *h = NULL;
  char err[1024];
  if (vklm_http_start(&o, &h, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm rank: %s\n", err);
    return 1;
  }
  uint64_t done, total;
  vklm_rank_current(s, &done, &total);
  fprintf(stderr, "vklm rank: open http://%s:%u/ to rank (%llu of %llu done); Ctrl-C stops\n",
          host, vklm_http_port(h), (unsigned long long)done, (unsigned long long)total);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  for (int grace = 0; !stop_flag;) {
    usleep(100 * 1000);
    pthread_mutex_lock(&w.mu);
    int all = vklm_rank_current(s, NULL, NULL) == NULL;
    pthread_mutex_unlock(&w.mu);
    if (all && ++grace > 10) break; /* a second for the page to show the end */
    if (!all) grace = 0;
  }
  vklm_http_stop(h);
  pthread_mutex_destroy(&w.mu);
  fprintf(stderr, "vklm rank: %llu prompts ranked or skipped\n",
          (unsigned long long)vklm_rank_done(s));
  return 0;
}

int cmd_rank(int argc, char **argv) {
  const char *cmd = "vklm rank";
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  const char *model = NULL, *prompts = NULL, *out = NULL, *tok = NULL, *tmpl = NULL;
  const char *simulate = NULL, *host = "127.0.0.1";
  uint32_t k = 4, max_tokens = 48, top_k = 0, port = 8090;
  float temp = 1.0f, top_p = 1.0f;
  uint64_t seed = 1337;
  int web_mode = 0, skip_bad = 0, sim = -1;
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &model, "MODEL",
                "the model that answers (checkpoint, HF directory or GGUF)"),
      AF_STRING("--prompts", NULL, &prompts, "FILE", "JSONL rows with \"prompt\""),
      AF_STRING("--data", NULL, &prompts, "FILE", "the same as --prompts"),
      AF_STRING("--out", "-o", &out, "FILE", "the rankings (JSONL, appended; a rerun resumes)"),
      AF_STRING("--tokenizer", "-t", &tok, "F", "tokenizer.json (default: beside -m)"),
      AF_STRING("--template", NULL, &tmpl, "NAME|FILE", "the chat template"),
      AF_FLAG("--bad-rows", NULL, AF_CHOICE, &skip_bad, 0, 0, "stop|skip",
              "what a bad prompt row does (stop)"),
      AF_FLAG("-k", NULL, AF_U32, &k, 2, VKLM_PREF_MAX_K, "K", "responses per prompt (4)"),
      AF_FLAG("--max-tokens", "-n", AF_U32, &max_tokens, 1, 1u << 16, "N",
              "tokens per response at most (48)"),
      AF_FLAG("--temp", NULL, AF_F32, &temp, 0, 100, "X", "temperature (1.0)"),
      AF_FLAG("--top-p", NULL, AF_F32, &top_p, 0, 1, "X", "nucleus (1.0: off)"),
      AF_FLAG("--top-k", NULL, AF_U32, &top_k, 0, 1u << 20, "N", "top-k (0: off)"),
      AF_FLAG("--seed", NULL, AF_U64, &seed, 0, 18446744073709551615.0, "N", "seed (1337)"),
      AF_BOOL("--web", &web_mode,
              "rank in the browser: serves a page on --host --port; ends when\n"
              "every prompt is ranked (or on Ctrl-C)"),
      AF_STRING("--host", NULL, &host, "H", "--web's address (127.0.0.1)"),
      AF_FLAG("--port", NULL, AF_U32, &port, 0, 65535, "N", "--web's port (8090; 0: any free one)"),
      AF_FLAG("--simulate", NULL, AF_CHOICE, &sim, 0, 0, "answer|length",
              "a simulated rater instead of a person: 'answer' (responses\n"
              "holding the row's \"answer\" first, the rest tied) or 'length'\n"
              "(shorter first)"),
      AF_LAST};
  const app_command c = {"rank", "rank --prompts FILE.jsonl -o RANKINGS.jsonl [-m MODEL] [flags]",
                         about, flags, 0, 0, 1};
  int pr = app_flags_parse(&c, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  if (sim >= 0) simulate = sim == 0 ? "answer" : "length";
  if (!prompts || !out) {
    return app_flags_missing(&c, "give the prompts (--prompts FILE.jsonl) and the output (-o FILE)");
  }
  if (web_mode && simulate) {
    fprintf(stderr, "%s: --web (a person ranks) and --simulate (a rule ranks): give one\n", cmd);
    return 2;
  }
  align_text at = {0};
  vklm_pref_set items = {0};
  vklm_rank_session *s = NULL;
  vklm_ckpt *ck = NULL;
  vklm_context *ctx = NULL;
  vklm_model *m = NULL;
  char err[2048] = "", kind[16];
  int rc = 1;
  if (!align_text_open(cmd, model ? model : prompts, tok, tmpl, &at)) goto done;
  vklm_align_read_opts ro = {.tk = at.tk, .tmpl = at.tmpl, .eos = at.eos,
                             .bad_rows = skip_bad ? VKLM_BAD_ROWS_SKIP : VKLM_BAD_ROWS_STOP};
  vklm_align_stats stt;
  if (vklm_pref_read(prompts, &ro, 1, &items, &stt, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    goto done;
  }
  char meta[512];
  snprintf(meta, sizeof meta, "{\"model\": \"%s\", \"sampling\": {\"k\": %u, \"temp\": %g, "
           "\"top_p\": %g, \"top_k\": %u, \"max_tokens\": %u, \"seed\": %llu}}",
           model ? model : "", k, temp, top_p, top_k, max_tokens, (unsigned long long)seed);
  const char *models[1] = {model ? model : ""};
  char rater[64];
  snprintf(rater, sizeof rater, "%s%s", simulate ? "simulated:" : "human", simulate ? simulate : "");
  if (vklm_rank_open(out, &items, models, meta, rater, &s, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    goto done;
  }
  /* responses for the prompts that have none and are not ranked yet */
  uint64_t need = 0;
  vklm_pref_set sub = {.items = calloc(items.n ? items.n : 1, sizeof *sub.items)};
  uint64_t *where = malloc((items.n ? items.n : 1) * sizeof *where);
  for (uint64_t i = 0; sub.items && where && i < items.n; i++)
    if (items.items[i].k == 0 && !vklm_rank_item_done(s, i))
      sub.items[need] = items.items[i], where[need++] = i;
  sub.n = need;
  if (need) {
    if (!model) {
      fprintf(stderr, "%s: %llu prompts have no responses: give -m MODEL to sample them\n", cmd,
              (unsigned long long)need);
      free(sub.items), free(where);
      goto done;
    }
    vklm_model_options fo = {.frozen = 1};
    vklm_rollout_options rop = {.k = k, .max_tokens = max_tokens, .temp = temp, .top_p = top_p,
                                .top_k = top_k, .seed = seed, .eos = at.eos};
    if (vklm_train_open_init(model, &ck, kind, sizeof kind, err, sizeof err) != VKLM_OK ||
        !(ctx = app_context(&cfg)) ||
        vklm_align_model(ctx, ck, 0, 0, 0, &fo, 0, &m, err, sizeof err) != VKLM_OK ||
        vklm_rollout(m, at.tk, &sub, &rop, err, sizeof err) != VKLM_OK) {
      fprintf(stderr, "%s: %s\n", cmd, err);
      for (uint64_t q = 0; q < need; q++) items.items[where[q]] = sub.items[q];
      free(sub.items), free(where);
      goto done;
    }
    for (uint64_t q = 0; q < need; q++) items.items[where[q]] = sub.items[q];
    fprintf(stderr, "%s: sampled %u responses to each of %llu prompts\n", cmd, k,
            (unsigned long long)need);
  }
  free(sub.items), free(where);
  if (simulate) {
    const vklm_pref_item *it;
    int32_t group[VKLM_PREF_MAX_K];
    rc = 0;
    while (!rc && (it = vklm_rank_current(s, NULL, NULL)))
      if (vklm_rank_simulate(simulate, it, it->answer, group, err, sizeof err) != VKLM_OK ||
          vklm_rank_submit(s, group, 0, err, sizeof err) != VKLM_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        rc = 1;
      }
    if (!rc) fprintf(stderr, "%s: %llu prompts ranked by the simulated rater '%s' -> %s\n", cmd,
                     (unsigned long long)vklm_rank_done(s), simulate, out);
  } else if (web_mode) {
    rc = rank_web(s, host, (uint16_t)port);
  } else {
    rc = rank_terminal(s);
    fprintf(stderr, "%s: %llu of %llu prompts ranked or skipped -> %s\n", cmd,
            (unsigned long long)vklm_rank_done(s), (unsigned long long)items.n, out);
  }
done:
  vklm_rank_close(s);
  vklm_model_destroy(m);
  vklm_context_destroy(ctx);
  vklm_ckpt_free(ck);
  vklm_pref_free(&items);
  align_text_close(&at);
  return rc;
}

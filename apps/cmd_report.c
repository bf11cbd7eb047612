/* vklm report: the life-cycle report of a run directory laid out as scripts/quickstart.sh writes
 * it (cleaned.jsonl.stats.json, tokenizer.json, run/, eval.json, sft/, rankings.jsonl, reward/,
 * dpo/, ppo/): each stage's figures and plot, and the base, fine-tuned and aligned models' greedy
 * answers to the same prompts side by side (engine/report). Stages whose files are missing are
 * left out. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "align_common.h"
#include "app_util.h"
#include "commands.h"
#include "flags.h"
#include "gen_common.h"
#include "report/report.h"

#define MAX_FIG 8
#define MAX_STAGES 16

typedef struct stage_buf {
  vklm_report_stage st;
  char fig[MAX_FIG][256];
  const char *figp[MAX_FIG];
  char png[4200];
} stage_buf;

static cJSON *load_json(const char *dir, const char *name) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *t = gen_read_file(path);
  cJSON *j = t ? cJSON_Parse(t) : NULL;
  free(t);
  return j;
}

static int exists(const char *dir, const char *name) {
  char path[4200];
  struct stat sb;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &sb) == 0;
}

static double jnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static stage_buf *add(stage_buf *s, uint32_t *n, const char *title, const char *cmd,
                      const char *dir, const char *png) {
  stage_buf *b = &s[*n < MAX_STAGES ? (*n)++ : MAX_STAGES - 1]; /* full: the last is reused */
  memset(b, 0, sizeof *b);
  b->st.title = title;
  b->st.command = cmd;
  if (png && exists(dir, png)) {
    snprintf(b->png, sizeof b->png, "%s/%s", dir, png);
    b->st.png = b->png;
  }
  return b;
}

static void fig(stage_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fig(stage_buf *b, const char *fmt, ...) {
  if (b->st.nfig == MAX_FIG) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->fig[b->st.nfig], sizeof b->fig[0], fmt, ap);
  va_end(ap);
  b->figp[b->st.nfig] = b->fig[b->st.nfig];
  b->st.nfig++;
  b->st.figures = b->figp;
}

/* The first and last validation loss and the last step of a metrics log. */
static void metrics_figs(stage_buf *b, const char *dir, const char *name) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[1024];
  double v0 = NAN, v1 = NAN, tl = NAN;
  long steps = 0;
  while (fgets(line, sizeof line, f)) {
    cJSON *j = cJSON_Parse(line);
    double v = jnum(j, "val_loss"), t = jnum(j, "train_loss"), s = jnum(j, "step");
    if (isfinite(v)) v1 = v, v0 = isfinite(v0) ? v0 : v;
    if (isfinite(t)) tl = t;
    if (isfinite(s)) steps = (long)s;
    cJSON_Delete(j);
  }
  fclose(f);
  fig(b, "%ld steps; last training loss %.4f", steps, tl);
  if (isfinite(v0)) fig(b, "held-out loss %.4f -> %.4f", v0, v1);
}

static void eval_figs(stage_buf *b, const cJSON *e) {
  const cJSON *r;
  cJSON_ArrayForEach(r, cJSON_GetObjectItem(e, "results")) {
    const cJSON *task = cJSON_GetObjectItem(r, "task"), *m = cJSON_GetObjectItem(r, "metrics");
    if (!cJSON_IsString(task) || !m || !m->child) continue;
    const cJSON *first = m->child;
    fig(b, "%s: %s %.4f (n %g)", task->valuestring, first->string, jnum(first, "value"),
        jnum(first, "n"));
  }
}

int cmd_report(int argc, char **argv) {
  const char *cmd = "vklm report", *dir = NULL, *out = NULL, *prompts = NULL;
  const char *title = "vklm: a language model's life";
  uint32_t nprompt = 6, max_tokens = 12;
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  const app_flag flags[] = {
      AF_STRING("--out", "-o", &out, "FILE", "the report (default DIR/report.html)"),
      AF_STRING("--prompts", NULL, &prompts, "FILE.jsonl",
                "{\"prompt\"[, \"answer\"]} rows: the first -n are answered by each model"),
      AF_FLAG("--n-prompts", "-n", AF_U32, &nprompt, 0, 64, "N", "prompts answered (6)"),
      AF_FLAG("--max-tokens", NULL, AF_U32, &max_tokens, 1, 1024, "N", "tokens per answer (12)"),
      AF_STRING("--title", NULL, &title, "TEXT", "the page's title"),
      AF_LAST};
  const app_command c = {
      "report", "report DIR [-o DIR/report.html] [--prompts FILE.jsonl] [-n 6] [flags]",
      "The one-page HTML report of a run directory as scripts/quickstart.sh lays it out:\n"
      "each stage's figures and plot (embedded), and the greedy answers of the base (run/),\n"
      "SFT (sft/), DPO (dpo/) and PPO (ppo/) models to the first N prompts of --prompts\n"
      "side by side.",
      flags, 1, 1, 1};
  const char *pos[1];
  int npos = 0, pr = app_flags_parse(&c, argc, argv, &cfg, pos, &npos);
  if (pr) return pr == 1 ? 0 : pr;
  dir = pos[0];
  struct stat sb;
  if (!dir || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "%s: give the run directory (as scripts/quickstart.sh --out writes it)\n", cmd);
    return 2;
  }
  char outbuf[4200];
  if (!out) snprintf(outbuf, sizeof outbuf, "%s/report.html", dir), out = outbuf;

  stage_buf *s = calloc(MAX_STAGES, sizeof *s);
  uint32_t ns = 0;
  cJSON *j;
  if ((j = load_json(dir, "cleaned.jsonl.stats.json"))) {
    stage_buf *b = add(s, &ns, "Data: cleaning, quality filters, deduplication",
                       "vklm data prepare", dir, NULL);
    const cJSON *in = cJSON_GetObjectItem(j, "input"), *steps = cJSON_GetObjectItem(j, "steps");
    fig(b, "input: %g documents, %.2f MB", jnum(in, "docs"), jnum(in, "bytes") / 1e6);
    const cJSON *st;
    cJSON_ArrayForEach(st, steps) {
      const cJSON *nm = cJSON_GetObjectItem(st, "step");
      if (cJSON_IsString(nm) && jnum(st, "docs_in") != jnum(st, "docs_out"))
        fig(b, "%s: %g -> %g documents", nm->valuestring, jnum(st, "docs_in"), jnum(st, "docs_out"));
    }
    const cJSON *last = cJSON_GetArrayItem(steps, cJSON_GetArraySize(steps) - 1);
    if (last) fig(b, "kept: %g documents, %.2f MB", jnum(last, "docs_out"), jnum(last, "bytes_out") / 1e6);
    static const char *const keyed[2][2] = {{"languages", "language"}, {"sources", "source"}};
    for (int k = 0; k < 2; k++) { /* kept documents by language and by source */
      const cJSON *o = cJSON_GetObjectItem(j, keyed[k][0]), *e;
      char line[512] = "";
      size_t n = 0;
      cJSON_ArrayForEach(e, o) if (n < sizeof line - 64)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s %g", n ? ", " : "", e->string,
                              jnum(e, "docs"));
      if (n) fig(b, "kept documents by %s: %s", keyed[k][1], line);
    }
    cJSON_Delete(j);
  }
  if ((j = load_json(dir, "shards/mixture.json"))) { /* vklm data mix */
    stage_buf *b = add(s, &ns, "Data mixture", "vklm data mix", dir, "shards/mixture.png");
    const cJSON *by = cJSON_GetObjectItem(j, "by"), *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "keys")) {
      const cJSON *nm = cJSON_GetObjectItem(e, "name"), *bf = cJSON_GetObjectItem(e, "before"),
                  *af = cJSON_GetObjectItem(e, "after");
      fig(b, "%s %s: weight %.2f; %g -> %g tokens (share %.3f)",
          cJSON_IsString(by) ? by->valuestring : "key",
          cJSON_IsString(nm) ? nm->valuestring : "?", jnum(e, "weight"), jnum(bf, "tokens"),
          jnum(af, "tokens"), jnum(af, "token_share"));
    }
    cJSON_Delete(j);
  }
  if (exists(dir, "tokenizer.json")) {
    char p[4200], e[512];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    vklm_tokenizer *tk = NULL;
    if (vklm_tokenizer_load(p, &tk, e, sizeof e) == VKLM_TOK_OK) {
      stage_buf *b = add(s, &ns, "Tokenizer: byte-level BPE", "vklm tokenizer train", dir, NULL);
      fig(b, "%zu tokens (%zu merges)", vklm_tokenizer_vocab_size(tk), vklm_tokenizer_n_merges(tk));
      vklm_tokenizer_destroy(tk);
    }
  }
  if (exists(dir, "run/metrics.jsonl"))
    metrics_figs(add(s, &ns, "Pretraining", "vklm train", dir, "run/loss.png"), dir,
                 "run/metrics.jsonl");
  if ((j = load_json(dir, "eval.json"))) {
    eval_figs(add(s, &ns, "Evaluation of the pretrained model", "vklm eval", dir, NULL), j);
    cJSON_Delete(j);
  }
  if (exists(dir, "sft/metrics.jsonl")) {
    stage_buf *b = add(s, &ns, "Supervised fine-tuning", "vklm sft", dir, "sft/loss.png");
    metrics_figs(b, dir, "sft/metrics.jsonl");
    if ((j = load_json(dir, "sft/sft_eval.json"))) {
      fig(b, "exact match on the questions: %g -> %g of %g", jnum(j, "exact_match_before"),
          jnum(j, "exact_match_after"), jnum(j, "items"));
      cJSON_Delete(j);
    }
  }
  if (exists(dir, "rankings.jsonl")) {
    char p[4200];
    snprintf(p, sizeof p, "%s/rankings.jsonl", dir);
    char *t = gen_read_file(p);
    uint32_t rows = 0, skipped = 0, allbad = 0;
    cJSON *first = NULL;
    for (char *q = t, *nl; q && *q; q = nl + 1) {
      if (!(nl = strchr(q, '\n'))) break;
      *nl = 0;
      cJSON *r = cJSON_Parse(q);
      rows++;
      skipped += cJSON_IsTrue(cJSON_GetObjectItem(r, "skipped"));
      allbad += cJSON_IsTrue(cJSON_GetObjectItem(r, "all_bad"));
      if (!first) first = r;
      else cJSON_Delete(r);
    }
    free(t);
    stage_buf *b = add(s, &ns, "Ranking of sampled answers", "vklm rank", dir, NULL);
    const cJSON *rater = cJSON_GetObjectItem(first, "rater");
    fig(b, "%u prompts ranked (%u skipped, %u all bad) by %s", rows, skipped, allbad,
        cJSON_IsString(rater) ? rater->valuestring : "?");
    const cJSON *smp = cJSON_GetObjectItem(first, "sampling");
    if (smp) fig(b, "%g answers each, temperature %g, at most %g tokens", jnum(smp, "k"),
                 jnum(smp, "temp"), jnum(smp, "max_tokens"));
    cJSON_Delete(first);
  }
  if ((j = load_json(dir, "reward/reward.json"))) {
    stage_buf *b = add(s, &ns, "Reward model", "vklm reward train", dir, "reward/loss.png");
    fig(b, "pairwise accuracy: training %.3f, held-out %.3f (%g pairs)", jnum(j, "train_accuracy"),
        jnum(j, "heldout_accuracy"), jnum(j, "heldout_pairs"));
    fig(b, "ranking loss %.4f -> %.4f over %g steps", jnum(j, "first_loss"), jnum(j, "last_loss"),
        jnum(j, "steps"));
    if (cJSON_IsTrue(cJSON_GetObjectItem(j, "normalised")))
      fig(b, "normalised on %g reference samples (raw mean %.3f, std %.3f)",
          jnum(j, "norm_samples"), jnum(j, "norm_mean"), jnum(j, "norm_std"));
    cJSON_Delete(j);
  }
  if ((j = load_json(dir, "dpo/dpo.json"))) {
    stage_buf *b = add(s, &ns, "Direct preference optimisation", "vklm dpo", dir, "dpo/loss.png");
    const cJSON *vb = cJSON_GetObjectItem(j, "heldout_before"), *va = cJSON_GetObjectItem(j, "heldout_after");
    fig(b, "held-out margin %+.4f -> %+.4f, reward accuracy %.3f -> %.3f (%g pairs)",
        jnum(vb, "margin"), jnum(va, "margin"), jnum(vb, "accuracy"), jnum(va, "accuracy"),
        jnum(va, "pairs"));
    fig(b, "KL(policy || reference) %.4f nats per response", jnum(j, "kl_sampled"));
    cJSON_Delete(j);
  }
  if ((j = load_json(dir, "ppo/ppo.json"))) {
    stage_buf *b = add(s, &ns, "RLHF with PPO", "vklm ppo", dir, "ppo/ppo.png");
    const cJSON *f0 = cJSON_GetObjectItem(j, "first"), *f1 = cJSON_GetObjectItem(j, "last");
    fig(b, "%g iterations in %.0f s", jnum(j, "iters"), jnum(j, "seconds"));
    fig(b, "mean reward %+.4f -> %+.4f (std %.3f -> %.3f)", jnum(f0, "reward_mean"),
        jnum(f1, "reward_mean"), jnum(f0, "reward_std"), jnum(f1, "reward_std"));
    fig(b, "KL to the reference %.4f -> %.4f nats per response (beta %g)", jnum(f0, "kl"),
        jnum(f1, "kl"), jnum(f1, "beta"));
    fig(b, "responses %.1f tokens long, %.0f%% ended; rollouts %.0f tokens/s",
        jnum(f1, "resp_len"), 100 * jnum(f1, "ended"), jnum(f1, "tokens_per_s"));
    cJSON_Delete(j);
  }
  const char *aligned[] = {"sft", "dpo", "ppo"};
  for (int k = 0; k < 3; k++) {
    char name[64];
    snprintf(name, sizeof name, "%s/eval.json", aligned[k]);
    if ((j = load_json(dir, name))) {
      static char titles[3][64];
      snprintf(titles[k], sizeof titles[k], "Evaluation of the %s model", k == 0 ? "SFT" : k == 1 ? "DPO" : "PPO");
      eval_figs(add(s, &ns, titles[k], "vklm eval", dir, NULL), j);
      cJSON_Delete(j);
    }
  }

  /* answers side by side */
  const char *mdir[] = {"run", "sft", "dpo", "ppo"}, *mname[] = {"base (pretrained)", "SFT", "DPO", "PPO"};
  const char *models[4];
  char mpath[4][4200];
  uint32_t nm = 0;
  for (int k = 0; k < 4; k++) {
    snprintf(mpath[nm], sizeof mpath[nm], "%s/%s", dir, mdir[k]);
    char ck[4300];
    snprintf(ck, sizeof ck, "%s/checkpoint.bin", mpath[nm]);
    if (stat(ck, &sb) == 0) models[nm++] = mname[k];
  }
  int rc = 0;
  char err[2048] = "";
  vklm_pref_set items = {0};
  const char **answers = NULL, **ptexts = NULL, **expected = NULL;
  vklm_context *ctx = NULL;
  if (prompts && nprompt && nm) {
    align_text at;
    if (!align_text_open(cmd, mpath[0], NULL, NULL, &at)) return free(s), 1;
    vklm_align_read_opts ro = {.tk = at.tk, .tmpl = at.tmpl, .eos = at.eos};
    vklm_align_stats stt;
    if (vklm_pref_read(prompts, &ro, 1, &items, &stt, err, sizeof err) != VKLM_OK) {
      fprintf(stderr, "%s: %s\n", cmd, err);
      align_text_close(&at);
      free(s);
      return 1;
    }
    if (items.n > nprompt) { /* keep the first n distinct prompts */
      uint64_t w = 0;
      for (uint64_t i = 0; i < items.n && w < nprompt; i++) {
        int dup = 0;
        for (uint64_t q = 0; q < w; q++) dup |= !strcmp(items.items[q].prompt, items.items[i].prompt);
        if (!dup && w != i) { vklm_pref_item t = items.items[w]; items.items[w] = items.items[i]; items.items[i] = t; }
        if (!dup) w++;
      }
      vklm_pref_set rest = {.items = items.items + w, .n = items.n - w};
      for (uint64_t i = 0; i < rest.n; i++) { /* free the rest's contents, keep the array */
        vklm_pref_set one = {.items = calloc(1, sizeof *one.items), .n = 1};
        one.items[0] = rest.items[i];
        vklm_pref_free(&one);
      }
      items.n = w;
    }
    answers = calloc(items.n * nm + 1, sizeof *answers);
    ptexts = calloc(items.n + 1, sizeof *ptexts);
    expected = calloc(items.n + 1, sizeof *expected);
    ctx = app_context(&cfg);
    rc = !ctx;
    for (uint32_t k = 0; !rc && k < nm; k++) {
      vklm_ckpt *ck = NULL;
      vklm_model *m = NULL;
      char kind[16];
      vklm_model_options fo = {.frozen = 1};
      vklm_rollout_options o = {.k = 1, .max_tokens = max_tokens, .temp = 0, .top_p = 1,
                                .eos = at.eos, .slots = 16};
      if (vklm_train_open_init(mpath[k], &ck, kind, sizeof kind, err, sizeof err) != VKLM_OK ||
          vklm_align_model(ctx, ck, 0, 0, 0, &fo, 0, &m, err, sizeof err) != VKLM_OK ||
          vklm_rollout(m, at.tk, &items, &o, err, sizeof err) != VKLM_OK) {
        fprintf(stderr, "%s: answers of %s: %s\n", cmd, mpath[k], err);
        rc = 1;
      }
      for (uint64_t i = 0; !rc && i < items.n; i++) answers[i * nm + k] = strdup(items.items[i].response[0]);
      vklm_model_destroy(m);
      vklm_ckpt_free(ck);
    }
    for (uint64_t i = 0; i < items.n; i++) {
      ptexts[i] = items.items[i].prompt;
      expected[i] = items.items[i].answer ? items.items[i].answer : "";
    }
    align_text_close(&at);
  }
  char sub[4400];
  snprintf(sub, sizeof sub, "%s; device %s", dir, ctx ? vklm_context_caps(ctx)->name : "-");
  vklm_report rep = {.title = title, .subtitle = sub, .nstages = ns, .prompts = ptexts,
                     .nprompts = rc ? 0 : (uint32_t)items.n, .models = models, .nmodels = nm,
                     .answers = answers, .expected = expected};
  vklm_report_stage st[MAX_STAGES];
  for (uint32_t i = 0; i < ns; i++) st[i] = s[i].st;
  rep.stages = st;
  if (!rc && vklm_report_write(&rep, out, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    rc = 1;
  }
  if (!rc)
    fprintf(stderr, "%s: %u stages, %u models' answers to %u prompts -> %s\n", cmd, ns, nm,
            (uint32_t)items.n, out);
  for (uint64_t i = 0; answers && i < items.n * nm; i++) free((char *)answers[i]);
  free(answers), free(ptexts), free(expected), free(s);
  vklm_pref_free(&items);
  vklm_context_destroy(ctx);
  return rc;
}

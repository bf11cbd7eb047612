/* vklm eval: measures a model (a vklm checkpoint, GGUF or HF directory, opened through
 * gen_common) on tasks — perplexity, multiple choice, generation, bias probes — with optional
 * perturbed variants (robustness) and few-shot prompts, and prints a table, JSON and an HTML
 * report; --compare-with writes two models' answers side by side for `vklm rank`. The work is
 * engine/eval's; this file parses flags, opens models and prints. docs/eval.md describes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_util.h"
#include "commands.h"
#include "flags.h"
#include "eval/eval.h"
#include "gen_common.h"

typedef struct args {
  const char *model, *tok, *json, *html, *samples, *cmp, *cmp_out, *prompts, *perturb;
  const char *tasks[256];
  int ntasks, robust, list, quiet;
  const char *dump;
  uint32_t max_new;
  vklm_eval_options o;
} args;

static int parse(args *a, vklm_config *cfg, int argc, char **argv) {
  vklm_eval_options *o = &a->o;
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &a->model, "M",
                "checkpoint (or its directory), HF directory, .safetensors, .gguf"),
      AF_STRING("--tokenizer", "-t", &a->tok, "F",
                "tokenizer.json (default: beside the model, or the model's own)"),
      AF_FLAG("--batch", "-b", AF_U32, &o->batch, 1, 4096, "N",
              "sequences per forward when scoring (default 8)"),
      AF_FLAG("--ctx", NULL, AF_U32, &o->ctx, 0, 1u << 20, "N",
              "perplexity window in tokens (0, the default: the model's context)"),
      AF_FLAG("--stride", NULL, AF_U32, &o->stride, 0, 1u << 20, "N",
              "perplexity window stride (0, the default: ctx/2)"),
      AF_FLAG("--limit", NULL, AF_U32, &o->limit, 0, UINT32_MAX, "N",
              "the first N items of each task (0, the default: all)"),
      AF_FLAG("--shots", NULL, AF_U32, &o->shots, 0, 64, "K",
              "few-shot examples from the task's other items (default 0)"),
      AF_FLAG("--seed", NULL, AF_U64, &o->seed, 0, 18446744073709551615.0, "S",
              "few-shot choice, perturbations and sampling (default 1234)"),
      AF_FLAG("--temp", NULL, AF_F32, &o->temp, 0, 100, "T",
              "generation temperature (default 0: greedy)"),
      AF_FLAG("--top-k", NULL, AF_U32, &o->top_k, 0, 1u << 24, "N", "generation top-k (0: off)"),
      AF_FLAG("--top-p", NULL, AF_F32, &o->top_p, 0, 1, "X", "generation nucleus (1: off)"),
      AF_FLAG("--gen-seqs", NULL, AF_U32, &o->gen_seqs, 1, 4096, "N",
              "generation sequences at once (default 8)"),
      AF_BOOL("--robust", &a->robust,
              "also run every perturbation (typo case whitespace order template)"),
      AF_STRING("--perturb", NULL, &a->perturb, "LIST",
                "comma-separated perturbations to run besides the clean prompts"),
      AF_STRING("--json", NULL, &a->json, "FILE",
                "every metric with stderr and n as JSON (- for stdout)"),
      AF_STRING("--html", NULL, &a->html, "FILE", "a self-contained report with plots"),
      AF_STRING("--samples", NULL, &a->samples, "FILE",
                "per-item requests, log-likelihoods and answers (JSONL)"),
      AF_STRING("--compare-with", NULL, &a->cmp, "M2",
                "answers of MODEL and M2 to the generation tasks' prompts (or\n"
                "--prompts FILE, one per line) as JSONL for `vklm rank`"),
      AF_STRING("--prompts", NULL, &a->prompts, "FILE", "--compare-with's prompts"),
      AF_STRING("--compare-out", NULL, &a->cmp_out, "FILE",
                "where --compare-with writes (default compare.jsonl)"),
      AF_FLAG("--max-new", NULL, AF_U32, &a->max_new, 1, 1u << 16, "N",
              "--compare-with's tokens per answer (default 64)"),
      AF_BOOL("--list-tasks", &a->list, "the built-in tasks"),
      AF_STRING("--dump-task", NULL, &a->dump, "NAME", "a built-in task's JSONL on stdout"),
      AF_BOOL("--quiet", &a->quiet, "no progress lines"),
      AF_LAST};
  const app_command c = {
      "eval", "eval -m MODEL [flags] TASK...",
      "TASK: a built-in task (--list-tasks), a JSONL task file (native or a public format\n"
      "recognised by its fields), FORMAT:FILE (mc gen ppl bias hellaswag arc piqa lambada\n"
      "crows), or a text file (perplexity).",
      flags, 0, 256, 1};
  int r = app_flags_parse(&c, argc, argv, cfg, a->tasks, &a->ntasks);
  if (r) return r;
  if (a->list || a->dump) return 0;
  if (!a->model || (!a->ntasks && !a->cmp)) {
    return app_flags_missing(&c, "give -m MODEL and at least one TASK (or --compare-with)");
  }
  return 0;
}

/* the perturbations to run: bit p set for each */
static int perturbations(const args *a, unsigned *set) {
  *set = 0;
  if (a->robust)
    for (int p = 1; p < VKLM_PERTURB_COUNT; p++) *set |= 1u << p;
  if (!a->perturb) return 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", a->perturb);
  for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
    int p = vklm_perturb_from_name(s);
    if (p <= 0) {
      fprintf(stderr, "vklm eval: unknown perturbation '%s' (typo, case, whitespace, order, template)\n", s);
      return -1;
    }
    *set |= 1u << p;
  }
  return 0;
}

/* prompts for --compare-with: a file's lines, else the generation tasks' prompts */
static int compare(args *a, const vklm_eval_model *ea, vklm_eval_task **tasks) {
  int rc = 1;
  char err[2048] = "", *text = NULL;
  const char **prompts = NULL;
  char **ra = NULL, **rb = NULL;
  uint32_t n = 0, cap = 0;
  gen_model gb;
  FILE *f = NULL;
  memset(&gb, 0, sizeof gb);
  if (a->prompts) {
    if (!(text = gen_read_file(a->prompts))) { snprintf(err, sizeof err, "cannot read %s", a->prompts); goto out; }
    for (char *p = text; *p; p++) cap += *p == '\n';
    prompts = calloc(cap + 2, sizeof(char *));
    if (!prompts) goto out;
    for (char *s = strtok(text, "\n"); s; s = strtok(NULL, "\n")) if (*s) prompts[n++] = s;
  } else {
    for (int i = 0; i < a->ntasks; i++) if (tasks[i]->kind == VKLM_TASK_GEN) cap += tasks[i]->n;
    prompts = calloc(cap + 1, sizeof(char *));
    if (!prompts) goto out;
    for (int i = 0; i < a->ntasks; i++)
      for (uint32_t j = 0; tasks[i]->kind == VKLM_TASK_GEN && j < tasks[i]->n; j++)
        if (!a->o.limit || j < a->o.limit) prompts[n++] = tasks[i]->items[j].context;
  }
  if (!n) { snprintf(err, sizeof err, "--compare-with: no prompts (give generation tasks or --prompts FILE)"); goto out; }
  ra = calloc(n, sizeof(char *)), rb = calloc(n, sizeof(char *));
  if (!ra || !rb) goto out;
  uint32_t mx = a->max_new ? a->max_new : 64;
  if (vklm_eval_generate(ea, prompts, n, "", mx, &a->o, ra, err, sizeof err)) goto out;
  if (gen_model_open(&gb, a->cmp, a->tok, err, sizeof err)) goto out;
  vklm_eval_model eb = {.ctx = ea->ctx, .cfg = gb.cfg, .get = gen_model_tensor, .user = &gb, .tk = gb.tk, .eos = gb.eos};
  if (vklm_eval_generate(&eb, prompts, n, "", mx, &a->o, rb, err, sizeof err)) goto out;
  const char *path = a->cmp_out ? a->cmp_out : "compare.jsonl";
  if (!(f = fopen(path, "w"))) { snprintf(err, sizeof err, "cannot write %s", path); goto out; }
  for (uint32_t i = 0; i < n; i++)
    if (vklm_eval_write_compare(f, prompts[i], ra[i], rb[i], a->model, a->cmp)) { snprintf(err, sizeof err, "cannot write %s", path); goto out; }
  if (fclose(f)) { f = NULL; snprintf(err, sizeof err, "cannot write %s", path); goto out; }
  f = NULL;
  fprintf(stderr, "vklm eval: %u prompts answered by both models -> %s (for vklm rank)\n", n, path);
  rc = 0;
out:
  if (rc) fprintf(stderr, "vklm eval: %s\n", err[0] ? err : "out of memory");
  if (f) fclose(f);
  for (uint32_t i = 0; i < n; i++) { if (ra) free(ra[i]); if (rb) free(rb[i]); }
  free(ra), free(rb), free(prompts), free(text);
  gen_model_close(&gb);
  return rc;
}

int cmd_eval(int argc, char **argv) {
  args a;
  memset(&a, 0, sizeof a);
  vklm_eval_options_default(&a.o);
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  int r = parse(&a, &cfg, argc, argv);
  if (r) return r == 1 ? 0 : r;
  if (a.list) {
    for (uint32_t i = 0; i < vklm_eval_builtin_count(); i++)
      printf("%-12s %s\n", vklm_eval_builtin_name(i), vklm_eval_builtin_about(i));
    return 0;
  }
  if (a.dump) {
    char *t = vklm_eval_builtin_text(a.dump);
    if (!t) { fprintf(stderr, "vklm eval: no built-in task '%s' (--list-tasks)\n", a.dump); return 1; }
    fputs(t, stdout);
    free(t);
    return 0;
  }
  unsigned pset;
  if (perturbations(&a, &pset)) return 2;
  a.o.progress = !a.quiet;

  int rc = 1;
  char err[2048] = "";
  vklm_eval_task *tasks[256] = {0};
  vklm_eval_result *res = NULL;
  uint32_t nres = 0;
  gen_model gm;
  vklm_context *ctx = NULL;
  memset(&gm, 0, sizeof gm);
  for (int i = 0; i < a.ntasks; i++)
    if (vklm_eval_task_load(a.tasks[i], &tasks[i], err, sizeof err)) goto fail;
  if (a.samples && !(a.o.samples = fopen(a.samples, "w"))) {
    snprintf(err, sizeof err, "cannot write %s", a.samples);
    goto fail;
  }
  if (gen_model_open(&gm, a.model, a.tok, err, sizeof err)) goto fail;
  if (!(ctx = app_context(&cfg))) goto quiet;
  vklm_eval_model em = {.ctx = ctx, .cfg = gm.cfg, .get = gen_model_tensor, .user = &gm, .tk = gm.tk, .eos = gm.eos};
  res = calloc((size_t)a.ntasks * VKLM_PERTURB_COUNT + 1, sizeof *res);
  if (!res) goto fail;
  fprintf(stderr, "vklm eval: %s (%s, %u layers, V %u, context %u)\n", gm.path,
          gm.cfg->arch == VKLM_ARCH_GPT2 ? "gpt2" : "llama", gm.cfg->n_layer, gm.cfg->vocab_size,
          gm.cfg->max_seq);
  for (int i = 0; i < a.ntasks; i++) {
    vklm_eval_task *t = tasks[i];
    if (a.max_new && t->kind == VKLM_TASK_GEN) t->max_new = a.max_new;
    for (int p = 0; p < VKLM_PERTURB_COUNT; p++) {
      if (p && !(pset >> p & 1)) continue;
      if (p && (t->kind == VKLM_TASK_PPL || t->kind == VKLM_TASK_BIAS)) continue;
      if (p == VKLM_PERTURB_ORDER && (t->kind != VKLM_TASK_MC || t->items[0].nchoices < 2)) continue;
      vklm_eval_task *v = vklm_eval_task_variant(t, (vklm_perturb)p, a.o.shots, a.o.seed);
      if (!v) goto fail;
      int e = vklm_eval_run(&em, v, &a.o, vklm_perturb_name((vklm_perturb)p), &res[nres], err, sizeof err);
      vklm_eval_task_free(v);
      if (e) goto fail;
      fprintf(stderr, "vklm eval: %s [%s]: %llu items in %.2f s (%.1f items/s)\n", res[nres].task,
              res[nres].variant, (unsigned long long)res[nres].items, res[nres].seconds,
              res[nres].seconds > 0 ? res[nres].items / res[nres].seconds : 0);
      nres++;
    }
  }
  if (nres) {
    int json_stdout = a.json && !strcmp(a.json, "-");
    vklm_eval_print_table(json_stdout ? stderr : stdout, res, nres);
    if (a.json) {
      char *js = vklm_eval_json(gm.path, res, nres);
      FILE *f = !js ? NULL : json_stdout ? stdout : fopen(a.json, "w");
      if (!f || fprintf(f, "%s\n", js) < 0 || (f != stdout && fclose(f))) {
        free(js);
        snprintf(err, sizeof err, "cannot write %s", a.json);
        goto fail;
      }
      free(js);
    }
    if (a.html && vklm_eval_write_html(a.html, gm.path, res, nres, err, sizeof err)) goto fail;
  }
  if (a.cmp && compare(&a, &em, tasks)) goto quiet;
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "vklm eval: %s\n", err[0] ? err : "out of memory");
quiet:
  rc = 1;
done:
  if (a.o.samples) fclose(a.o.samples);
  for (int i = 0; i < a.ntasks; i++) vklm_eval_task_free(tasks[i]);
  free(res);
  vklm_context_destroy(ctx);
  gen_model_close(&gm);
  return rc;
}

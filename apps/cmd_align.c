/* vklm reward train|score and vklm dpo: flags into engine/align (docs/alignment.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "align_common.h"
#include "app_util.h"
#include "commands.h"
#include "flags.h"

/* Flags every alignment trainer shares: common_init fills `flags`, a table (apps/flags.h)
 * pointing into the struct, which each command includes in its own. */
typedef struct common {
  const char *init, *data, *tok, *tmpl, *out, *freeze, *ref;
  int skip_bad, quiet;
  uint32_t T, epochs, steps, warmup;
  float lr, min_lr, wd, clip;
  uint64_t seed;
  double val_fraction;
  int min_lr_set;
  app_flag flags[24];
} common;

static int min_lr_flag(void *p, const char *v, char *err, size_t errlen) {
  common *c = p;
  char *end;
  double x = strtod(v, &end);
  if (!*v || *end || !isfinite(x) || x < 0 || x > 10) {
    snprintf(err, errlen, "wants a number in [0, 10], not '%s'", v);
    return 1;
  }
  c->min_lr = (float)x, c->min_lr_set = 1;
  return 0;
}

static void common_init(common *c) {
  const app_flag f[] = {
      AF_STRING("--init", "-m", &c->init, "MODEL",
                "the starting model: a vklm checkpoint or run directory, an HF\n"
                "directory or a GGUF (tokenizer.json beside it, or -t)"),
      AF_STRING("--model", NULL, &c->init, "MODEL", "the same as --init"),
      AF_STRING("--data", NULL, &c->data, "FILE",
                "preference JSONL: {\"prompt\",\"chosen\",\"rejected\"} (strings or\n"
                "conversations), {\"chosen\",\"rejected\"} (implicit prompt; Anthropic\n"
                "HH transcripts), {\"prompt\",\"responses\",\"ranking\"} (vklm rank's)"),
      AF_STRING("--tokenizer", "-t", &c->tok, "F", "tokenizer.json (default: beside -m)"),
      AF_STRING("--template", NULL, &c->tmpl, "NAME|FILE", "the chat template"),
      AF_FLAG("--bad-rows", NULL, AF_CHOICE, &c->skip_bad, 0, 0, "stop|skip",
              "what a bad data row does (stop)"),
      AF_FLAG("--seq", "-T", AF_U32, &c->T, 2, 1u << 20, "N", "positions per row (64)"),
      AF_FLAG("--epochs", NULL, AF_U32, &c->epochs, 1, 1u << 20, "N", "passes over the data (1)"),
      AF_FLAG("--steps", NULL, AF_U32, &c->steps, 1, UINT32_MAX - 1, "N",
              "optimizer steps (default: the epochs')"),
      AF_FLAG("--warmup", NULL, AF_U32, &c->warmup, 0, UINT32_MAX - 1, "N", "warm-up steps (0)"),
      AF_FLAG("--lr", NULL, AF_F32, &c->lr, 1e-12, 10, "X", "peak learning rate"),
      {"--min-lr", NULL, AF_FN, c, 0, 0, "X", "final learning rate (lr/10; a number in [0, 10])",
       min_lr_flag},
      AF_FLAG("--wd", NULL, AF_F32, &c->wd, 0, 100, "X", "weight decay (0)"),
      AF_FLAG("--clip", NULL, AF_F32, &c->clip, 0, 1e9, "X", "global gradient-norm clip (1)"),
      AF_FLAG("--seed", NULL, AF_U64, &c->seed, 0, 18446744073709551615.0, "N", "seed (1337)"),
      AF_FLAG("--val-fraction", NULL, AF_F64, &c->val_fraction, 0, 0.9, "F",
              "held-out items (0.1)"),
      AF_STRING("--freeze", NULL, &c->freeze, "PATTERNS", "tensors kept frozen"),
      AF_STRING("--ref", NULL, &c->ref, "MODEL", "the reference model (default: -m)"),
      AF_STRING("--out", "-o", &c->out, "DIR", "checkpoint.bin, metrics.jsonl, loss.png"),
      AF_BOOL("--quiet", &c->quiet, "no progress lines"),
      AF_LAST};
  _Static_assert(sizeof f <= sizeof c->flags, "common.flags holds the table");
  memcpy(c->flags, f, sizeof f);
}

/* The shared flags into a trainer's options (vklm_reward_options and vklm_dpo_options name these
 * fields alike). */
#define COMMON_INTO(o, c)                                                                        \
  do {                                                                                           \
    (o).T = (c).T, (o).epochs = (c).epochs, (o).steps = (c).steps, (o).warmup = (c).warmup;      \
    (o).lr = (c).lr, (o).min_lr = (c).min_lr_set ? (c).min_lr : (c).lr / 10;                     \
    (o).weight_decay = (c).wd, (o).grad_clip = (c).clip, (o).seed = (c).seed;                    \
    (o).val_fraction = (c).val_fraction, (o).out_dir = (c).out, (o).freeze = (c).freeze;         \
    (o).progress = !(c).quiet;                                                                   \
  } while (0)

static int open_common(const char *cmd, const common *c, int allow_unranked, uint32_t max_len,
                       align_text *at, vklm_ckpt **init, vklm_pref_set *data) {
  char err[2048] = "", kind[16];
  if (!c->init || !c->data) {
    fprintf(stderr, "%s: give the model (-m MODEL) and the data (--data FILE.jsonl)\n", cmd);
    return 2;
  }
  if (!align_text_open(cmd, c->init, c->tok, c->tmpl, at)) return 1;
  if (vklm_train_open_init(c->init, init, kind, sizeof kind, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    align_text_close(at);
    return 1;
  }
  vklm_align_read_opts ro = {.tk = at->tk, .tmpl = at->tmpl, .eos = at->eos, .max_len = max_len,
                             .bad_rows = c->skip_bad ? VKLM_BAD_ROWS_SKIP : VKLM_BAD_ROWS_STOP};
  vklm_align_stats st;
  if (vklm_pref_read(c->data, &ro, allow_unranked, data, &st, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    vklm_ckpt_free(*init);
    align_text_close(at);
    return 1;
  }
  if (!c->quiet)
    fprintf(stderr, "%s: %s: %llu rows, %llu items, %llu skipped (too long %llu, bad JSON %llu, "
            "bad fields %llu, empty %llu, bad ranking %llu)\n", cmd, c->data,
            (unsigned long long)st.rows, (unsigned long long)st.kept,
            (unsigned long long)st.skipped, (unsigned long long)st.too_long,
            (unsigned long long)st.bad_json, (unsigned long long)st.bad_field,
            (unsigned long long)st.empty, (unsigned long long)st.bad_ranking);
  return 0;
}

static int make_out(const char *cmd, const char *dir) {
  if (mkdir(dir, 0755) != 0) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      fprintf(stderr, "%s: cannot create the output directory '%s'\n", cmd, dir);
      return 0;
    }
  }
  return 1;
}

/* ---- vklm reward train ----------------------------------------------------------------- */
static int reward_train(int argc, char **argv, vklm_config *cfg) {
  const char *cmd = "vklm reward train";
  vklm_reward_options o;
  vklm_reward_options_default(&o);
  common c = {.T = o.T, .epochs = o.epochs, .lr = o.lr, .wd = o.weight_decay,
              .clip = o.grad_clip, .seed = o.seed, .val_fraction = o.val_fraction,
              .out = o.out_dir};
  uint32_t norm_prompts = 64, norm_k = 4, norm_tokens = 32;
  int no_norm = 0;
  common_init(&c);
  const app_flag flags[] = {
      AF_INCLUDE(c.flags),
      AF_FLAG("--batch", "-b", AF_U32, &o.B, 2, 4096, "B",
              "responses per batch (8); a prompt's K responses stay together"),
      AF_FLAG("--margin", NULL, AF_F32, &o.margin, -100, 100, "X",
              "subtracted from r(better) - r(worse) (0)"),
      AF_FLAG("--norm-prompts", NULL, AF_U32, &norm_prompts, 1, 1u << 20, "N",
              "prompts sampled for the normalisation (64)"),
      AF_FLAG("--norm-k", NULL, AF_U32, &norm_k, 1, 64, "K", "responses per prompt there (4)"),
      AF_FLAG("--norm-tokens", NULL, AF_U32, &norm_tokens, 1, 1u << 16, "N",
              "tokens per response there (32)"),
      AF_BOOL("--no-norm", &no_norm, "skip the normalisation"),
      AF_LAST};
  const app_command ac = {
      "reward train", "reward train -m MODEL --data PREFS.jsonl [flags]",
      "A reward model: the LM with a scalar head (N(0, 1/sqrt(C+1)), bias 0) read at the\n"
      "last token of prompt+response, trained with the InstructGPT ranking loss over all\n"
      "pairs of each prompt's responses in one batch; pairwise accuracy on held-out items;\n"
      "then normalised so that responses sampled from the reference model (--ref, default -m)\n"
      "score mean 0, standard deviation 1 (gain and bias folded into the head).",
      flags, 0, 0, 1};
  int pr = app_flags_parse(&ac, argc, argv, cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  COMMON_INTO(o, c);
  align_text at;
  vklm_ckpt *init = NULL, *ref = NULL;
  vklm_pref_set data;
  int rc = open_common(cmd, &c, 0, o.T, &at, &init, &data);
  if (rc) return rc;
  char err[2048] = "", kind[16];
  vklm_context *ctx = NULL;
  if (!no_norm) {
    if (c.ref && vklm_train_open_init(c.ref, &ref, kind, sizeof kind, err, sizeof err) != VKLM_OK) {
      fprintf(stderr, "%s: --ref: %s\n", cmd, err);
      rc = 1;
      goto done;
    }
    o.calib_ref = ref ? ref : init;
    o.calib_tk = at.tk;
    o.calib_prompts = norm_prompts;
    o.calib = (vklm_rollout_options){.k = norm_k, .max_tokens = norm_tokens, .temp = 1.0f,
                                     .top_p = 1.0f, .seed = o.seed, .eos = at.eos};
  }
  if (!make_out(cmd, o.out_dir) || !align_copy_text_files(cmd, c.init, c.tok, at.tk, o.out_dir) ||
      !(ctx = app_context(cfg))) {
    rc = 1;
    goto done;
  }
  vklm_reward_result res;
  if (vklm_reward_train(ctx, init, &data, &o, &res, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    rc = 1;
    goto done;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/reward.json", o.out_dir);
  FILE *f = fopen(path, "w");
  if (f) {
    char vacc[32] = "null";
    if (!isnan(res.val_acc)) snprintf(vacc, sizeof vacc, "%.6f", res.val_acc);
    fprintf(f, "{\"steps\": %u, \"first_loss\": %.6f, \"last_loss\": %.6f, \"train_accuracy\": "
            "%.6f, \"heldout_accuracy\": %s, \"heldout_pairs\": %llu, \"train_items\": %llu, "
            "\"heldout_items\": %llu, \"normalised\": %s, \"norm_mean\": %.6f, \"norm_std\": %.6f, "
            "\"norm_samples\": %llu}\n", res.steps, res.first_loss, res.last_loss, res.train_acc, vacc,
            (unsigned long long)res.val_pairs, (unsigned long long)res.train_items,
            (unsigned long long)res.val_items, res.norm_samples ? "true" : "false",
            res.norm_mean, res.norm_std, (unsigned long long)res.norm_samples);
    fclose(f);
  }
  fprintf(stderr, "%s: %u steps in %.1f s, loss %.4f -> %.4f, pairwise accuracy train %.3f, "
          "held-out %.3f (%llu pairs)", cmd, res.steps, res.seconds, res.first_loss, res.last_loss,
          res.train_acc, res.val_acc, (unsigned long long)res.val_pairs);
  if (res.norm_samples)
    fprintf(stderr, "; normalised by %llu reference samples (raw mean %.4f, std %.4f)",
            (unsigned long long)res.norm_samples, res.norm_mean, res.norm_std);
  fprintf(stderr, "; outputs in %s/\n", o.out_dir);
done:
  vklm_pref_free(&data);
  vklm_ckpt_free(init);
  vklm_ckpt_free(ref);
  align_text_close(&at);
  vklm_context_destroy(ctx);
  return rc;
}

/* ---- vklm reward score ------------------------------------------------------------------ */
static int reward_score(int argc, char **argv, vklm_config *cfg) {
  const char *cmd = "vklm reward score";
  common c = {.T = 64};
  uint32_t B = 8;
  common_init(&c);
  const app_flag flags[] = {
      AF_INCLUDE(c.flags),
      AF_FLAG("--batch", "-b", AF_U32, &B, 1, 4096, "B", "responses per forward pass (8)"),
      AF_LAST};
  const app_command ac = {
      "reward score", "reward score -m REWARD_MODEL --data FILE.jsonl [-o OUT.jsonl]",
      "Scores every response of every row ({\"prompt\",\"response\"}, {\"prompt\",\n"
      "\"responses\":[...]}, or the preference formats): each input row is written back\n"
      "with \"rewards\": [...] (one per response, in order), to -o OUT or stdout.",
      flags, 0, 0, 1};
  int pr = app_flags_parse(&ac, argc, argv, cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  align_text at;
  vklm_ckpt *ck = NULL;
  vklm_pref_set data;
  int rc = open_common(cmd, &c, 1, c.T, &at, &ck, &data);
  if (rc) return rc;
  char err[2048] = "";
  vklm_context *ctx = NULL;
  vklm_model *m = NULL;
  float *r = NULL;
  uint64_t total = 0;
  for (uint64_t i = 0; i < data.n; i++) total += data.items[i].k;
  vklm_model_options fo = {.frozen = 1};
  if (!ck->st.model.scalar_head) {
    fprintf(stderr, "%s: '%s' has no scalar head: not a reward model (train one with `vklm "
            "reward train`)\n", cmd, c.init);
    rc = 1;
  } else if (!(ctx = app_context(cfg))) rc = 1;
  else if (vklm_align_model(ctx, ck, 1, B, c.T, &fo, 0, &m, err, sizeof err) != VKLM_OK ||
           !(r = malloc((total + 1) * sizeof *r)) ||
           vklm_reward_score(m, &data, r, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err[0] ? err : "out of host memory");
    rc = 1;
  }
  FILE *out = stdout;
  if (!rc && c.out && !(out = fopen(c.out, "w"))) {
    fprintf(stderr, "%s: cannot write '%s'\n", cmd, c.out);
    rc = 1;
  }
  for (uint64_t i = 0, w = 0; !rc && i < data.n; i++) {
    const vklm_pref_item *it = &data.items[i];
    fprintf(out, "{\"line\": %u, \"rewards\": [", it->line);
    for (uint32_t j = 0; j < it->k; j++) fprintf(out, "%s%.6f", j ? ", " : "", r[w++]);
    fprintf(out, "]}\n");
  }
  if (out && out != stdout) fclose(out);
  free(r);
  vklm_model_destroy(m);
  vklm_pref_free(&data);
  vklm_ckpt_free(ck);
  align_text_close(&at);
  vklm_context_destroy(ctx);
  return rc;
}

int cmd_reward(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  if (argc >= 2 && !strcmp(argv[1], "train")) return reward_train(argc - 1, argv + 1, &cfg);
  if (argc >= 2 && !strcmp(argv[1], "score")) return reward_score(argc - 1, argv + 1, &cfg);
  fprintf(argc >= 2 && strcmp(argv[1], "-h") && strcmp(argv[1], "--help") ? stderr : stdout,
          "usage: vklm reward train|score [flags]   (`vklm reward train --help`)\n");
  return argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2;
}

/* ---- vklm dpo --------------------------------------------------------------------------- */
int cmd_dpo(int argc, char **argv) {
  const char *cmd = "vklm dpo";
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  vklm_dpo_options o;
  vklm_dpo_options_default(&o);
  common c = {.T = o.T, .epochs = o.epochs, .lr = o.lr, .wd = o.weight_decay,
              .clip = o.grad_clip, .seed = o.seed, .val_fraction = o.val_fraction,
              .out = o.out_dir};
  int loss = 0;
  common_init(&c);
  const app_flag flags[] = {
      AF_INCLUDE(c.flags),
      AF_FLAG("--batch", "-b", AF_U32, &o.pairs, 1, 2048, "N", "pairs per step (4)"),
      AF_FLAG("--beta", NULL, AF_F32, &o.beta, 1e-6, 1e3, "X", "the DPO temperature (0.1)"),
      AF_FLAG("--loss", NULL, AF_CHOICE, &loss, 0, 0, "sigmoid|ipo|hinge", "the loss (sigmoid)"),
      AF_LAST};
  const app_command ac = {
      "dpo", "dpo -m MODEL --data PREFS.jsonl [flags]",
      "Direct preference optimisation of MODEL against a frozen reference (--ref, default\n"
      "MODEL itself): loss -log sigmoid(beta ((logp(chosen) - logp_ref(chosen)) -\n"
      "(logp(rejected) - logp_ref(rejected)))) over the response tokens; rankings of K\n"
      "give all their pairs. Logs loss, reward accuracy, chosen/rejected implicit rewards\n"
      "and margins, on training and held-out pairs.",
      flags, 0, 0, 1};
  int pr = app_flags_parse(&ac, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  o.kind = loss == 1 ? VKLM_DPO_IPO : loss == 2 ? VKLM_DPO_HINGE : VKLM_DPO_SIGMOID;
  COMMON_INTO(o, c);
  align_text at;
  vklm_ckpt *init = NULL;
  vklm_pref_set data;
  int rc = open_common(cmd, &c, 0, o.T + 1, &at, &init, &data);
  if (rc) return rc;
  char err[2048] = "", kind[16];
  vklm_ckpt *ref = NULL;
  if (c.ref && vklm_train_open_init(c.ref, &ref, kind, sizeof kind, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: --ref: %s\n", cmd, err);
    rc = 1;
  }
  o.ref = ref;
  o.tk = at.tk;
  o.eos = at.eos;
  vklm_context *ctx = NULL;
  vklm_dpo_result res;
  if (rc || !make_out(cmd, o.out_dir) || !align_copy_text_files(cmd, c.init, c.tok, at.tk, o.out_dir) ||
      !(ctx = app_context(&cfg)))
    rc = 1;
  else if (vklm_dpo_train(ctx, init, &data, &o, &res, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    rc = 1;
  } else {
    char path[4096];
    snprintf(path, sizeof path, "%s/dpo.json", o.out_dir);
    FILE *f = fopen(path, "w");
    const vklm_dpo_stats *s[4] = {&res.first, &res.last, &res.val_before, &res.val_after};
    char kl[32] = "null";
    if (!isnan(res.kl)) snprintf(kl, sizeof kl, "%.6f", res.kl);
    const char *names[4] = {"train_first", "train_last", "heldout_before", "heldout_after"};
    if (f) {
      fprintf(f, "{\"loss_kind\": \"%s\", \"beta\": %g, \"steps\": %u, \"kl_sampled\": %s, "
              "\"kl_samples\": %llu", vklm_dpo_kind_name(o.kind), o.beta, res.steps, kl,
              (unsigned long long)res.kl_samples);
      for (int k = 0; k < 4; k++)
        fprintf(f, ", \"%s\": {\"loss\": %.6f, \"accuracy\": %.6f, \"chosen\": %.6f, "
                "\"rejected\": %.6f, \"margin\": %.6f, \"logratio\": %.6f, \"pairs\": %llu}",
                names[k], s[k]->loss, s[k]->acc, s[k]->chosen, s[k]->rejected, s[k]->margin,
                s[k]->kl, (unsigned long long)s[k]->pairs);
      fprintf(f, "}\n");
      fclose(f);
    }
    fprintf(stderr, "%s: %u steps in %.1f s; held-out pairs (%llu): margin %+.4f -> %+.4f, "
            "reward accuracy %.3f -> %.3f; KL(policy || reference) %.4f nats per response (%llu "
            "policy samples); outputs in %s/\n", cmd, res.steps, res.seconds,
            (unsigned long long)res.val_after.pairs, res.val_before.margin, res.val_after.margin,
            res.val_before.acc, res.val_after.acc, res.kl, (unsigned long long)res.kl_samples,
            o.out_dir);
  }
  vklm_pref_free(&data);
  vklm_ckpt_free(init);
  vklm_ckpt_free(ref);
  align_text_close(&at);
  vklm_context_destroy(ctx);
  return rc;
}

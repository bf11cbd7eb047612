/* vklm ppo: flags into engine/align's PPO loop (docs/alignment.md, "vklm ppo"). */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "align_common.h"
#include "app_util.h"
#include "commands.h"

static const char help[] =
    "usage: vklm ppo -m POLICY --reward REWARD_MODEL --prompts PROMPTS.jsonl [flags]\n"
    "RLHF with PPO: the policy (from -m, e.g. an SFT model) answers batches of prompts, the\n"
    "frozen reward model scores the answers, per-token rewards -beta*KL(policy || reference) plus\n"
    "the score at the last token, GAE advantages, then 4 epochs of clipped policy and value\n"
    "losses on a separate value model (initialised from the reward model).\n"
    "  -m, --init MODEL     the policy's start (a vklm checkpoint or run directory)\n"
    "  --reward MODEL       a `vklm reward train` checkpoint (required)\n"
    "  --ref MODEL          the frozen reference (default: -m)\n"
    "  --value MODEL        the value model's start (default: the reward model)\n"
    "  --value-head         no value model: a new scalar head on the policy gives the values,\n"
    "                       trained with it (loss pg + vf-coef * vf, one AdamW step at --lr)\n"
    "  --prompts FILE       JSONL rows with \"prompt\" (other fields ignored)\n"
    "  -t TOKENIZER  --template NAME|FILE  --bad-rows stop|skip (stop)\n"
    "  --iters N (20)       rollout batches        -b, --batch N (8)  prompts per batch\n"
    "  -k N (1)             responses per prompt   --max-tokens N (24) per response\n"
    "  -T N (64)            positions per row (prompt + response)\n"
    "  --temp X (1)         sampling temperature; the policy's and reference's log-probs are\n"
    "                       those of the same distribution (logits / X)\n"
    "  --beta X (0.05)      KL coefficient         --kl k1|k3 (k1)\n"
    "  --target-kl X        adaptive beta toward X nats per response (default: fixed beta)\n"
    "  --horizon N (10000)  the adaptive controller's horizon\n"
    "  --gamma X (1)  --lam X (0.95)  --clip X (0.2)  --vclip X (0.2)  --vf-coef X (0.1)\n"
    "  --whiten-rewards     scale per-token rewards to unit variance before GAE\n"
    "  --ppo-epochs N (4)   --minibatch N (8) rows per update\n"
    "  --no-eos-penalty X   added to the score of a response that never ended (0)\n"
    "  --lr X (1e-5)  --value-lr X (1e-5)  --wd X (0)  --clip-grad X (1)  --seed N (1337)\n"
    "  --out DIR            checkpoint.bin (policy), value.bin, ppo_state.json, metrics.jsonl,\n"
    "                       ppo.png, samples.jsonl, ppo.json\n"
    "  --ckpt-every N (0)   also checkpoint every N iterations (0: at the end only)\n"
    "  --resume             continue the run in --out from its last checkpoint (same -m, seed,\n"
    "                       batch shape; raise --iters)\n"
    "  --quiet  --device D  --limits baseline  --validate\n";

/* The tokenizer beside a model (a run directory's, or the checkpoint file's directory). */
static vklm_tokenizer *tokenizer_beside(const char *model) {
  char dir[4096], path[4096];
  struct stat sb;
  snprintf(dir, sizeof dir, "%s", model);
  if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(path, sizeof path, "%s/tokenizer.json", model);
  else
    snprintf(path, sizeof path, "%s/tokenizer.json", dirname(dir));
  vklm_tokenizer *tk = NULL;
  char err[512];
  if (stat(path, &sb) != 0 || vklm_tokenizer_load(path, &tk, err, sizeof err) != VKLM_TOK_OK)
    return NULL;
  return tk;
}

/* 1 when the two tokenizers give every id the same bytes; else 0 and the first difference. */
static int same_vocab(const vklm_tokenizer *a, const vklm_tokenizer *b, char *why, size_t wl) {
  size_t na = vklm_tokenizer_vocab_size(a), nb = vklm_tokenizer_vocab_size(b);
  if (na != nb) {
    snprintf(why, wl, "%zu tokens vs the policy's %zu", nb, na);
    return 0;
  }
  for (size_t i = 0; i < na; i++) {
    size_t la = 0, lb = 0;
    const char *x = vklm_tokenizer_token_bytes(a, (int32_t)i, &la);
    const char *y = vklm_tokenizer_token_bytes(b, (int32_t)i, &lb);
    if ((x == NULL) != (y == NULL) || la != lb || (x && memcmp(x, y, la))) {
      snprintf(why, wl, "token %zu differs", i);
      return 0;
    }
  }
  return 1;
}

int cmd_ppo(int argc, char **argv) {
  const char *cmd = "vklm ppo";
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  vklm_ppo_options o;
  vklm_ppo_options_default(&o);
  const char *init_path = NULL, *reward_path = NULL, *ref_path = NULL, *value_path = NULL;
  const char *prompts_path = NULL, *tok = NULL, *tmpl = NULL;
  int skip_bad = 0, quiet = 0;
  for (int i = 1; i < argc; i++) {
    int r = app_config_flag(&cfg, argc, argv, &i);
    if (r < 0) return 2;
    if (r) continue;
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(x) (!strcmp(a, x))
    if (IS("-h") || IS("--help")) {
      fputs(help, stdout);
      return 0;
    }
    if (IS("--quiet")) {
      quiet = 1;
      continue;
    }
    if (IS("--whiten-rewards")) {
      o.hp.whiten_rewards = 1;
      continue;
    }
    if (IS("--resume")) {
      o.resume = 1;
      continue;
    }
    if (IS("--value-head")) {
      o.value_head = 1;
      continue;
    }
    if (!v) {
      fprintf(stderr, "%s: unknown flag or missing value '%s'\n", cmd, a);
      return 2;
    }
    int ok = 1;
    if (IS("-m") || IS("--init") || IS("--model")) init_path = v;
    else if (IS("--reward")) reward_path = v;
    else if (IS("--ref")) ref_path = v;
    else if (IS("--value")) value_path = v;
    else if (IS("--prompts") || IS("--data")) prompts_path = v;
    else if (IS("-t") || IS("--tokenizer")) tok = v;
    else if (IS("--template")) tmpl = v;
    else if (IS("--out") || IS("-o")) o.out_dir = v;
    else if (IS("--bad-rows")) {
      skip_bad = !strcmp(v, "skip");
      if (!skip_bad && strcmp(v, "stop")) {
        fprintf(stderr, "%s: --bad-rows stop|skip, not '%s'\n", cmd, v);
        return 2;
      }
    } else if (IS("--kl")) {
      if (!strcmp(v, "k1")) o.hp.kl = VKLM_PPO_KL_K1;
      else if (!strcmp(v, "k3")) o.hp.kl = VKLM_PPO_KL_K3;
      else {
        fprintf(stderr, "%s: --kl k1|k3, not '%s'\n", cmd, v);
        return 2;
      }
    } else if (IS("--iters")) ok = app_u32(cmd, a, v, 1, 1u << 24, &o.iters);
    else if (IS("-b") || IS("--batch")) ok = app_u32(cmd, a, v, 1, 4096, &o.prompts);
    else if (IS("-k")) ok = app_u32(cmd, a, v, 1, VKLM_PREF_MAX_K, &o.k);
    else if (IS("--max-tokens")) ok = app_u32(cmd, a, v, 1, 1u << 16, &o.max_tokens);
    else if (IS("-T") || IS("--seq")) ok = app_u32(cmd, a, v, 2, 1u << 20, &o.T);
    else if (IS("--temp")) ok = app_f32(cmd, a, v, 1e-3, 100, &o.temp);
    else if (IS("--beta")) ok = app_f32(cmd, a, v, 0, 1e3, &o.hp.beta);
    else if (IS("--target-kl")) ok = app_f32(cmd, a, v, 1e-6, 1e6, &o.target_kl);
    else if (IS("--horizon")) ok = app_f32(cmd, a, v, 1, 1e12, &o.horizon);
    else if (IS("--gamma")) ok = app_f32(cmd, a, v, 0, 1, &o.hp.gamma);
    else if (IS("--lam")) ok = app_f32(cmd, a, v, 0, 1, &o.hp.lam);
    else if (IS("--clip")) ok = app_f32(cmd, a, v, 1e-6, 10, &o.hp.clip);
    else if (IS("--vclip")) ok = app_f32(cmd, a, v, 1e-6, 1e6, &o.hp.vclip);
    else if (IS("--vf-coef")) ok = app_f32(cmd, a, v, 0, 1e3, &o.hp.vf_coef);
    else if (IS("--ppo-epochs")) ok = app_u32(cmd, a, v, 1, 1000, &o.hp.epochs);
    else if (IS("--minibatch")) ok = app_u32(cmd, a, v, 1, 4096, &o.hp.minibatch);
    else if (IS("--no-eos-penalty")) ok = app_f32(cmd, a, v, -1e6, 1e6, &o.no_eos_penalty);
    else if (IS("--lr")) ok = app_f32(cmd, a, v, 1e-12, 10, &o.lr);
    else if (IS("--value-lr")) ok = app_f32(cmd, a, v, 1e-12, 10, &o.value_lr);
    else if (IS("--wd")) ok = app_f32(cmd, a, v, 0, 100, &o.weight_decay);
    else if (IS("--clip-grad")) ok = app_f32(cmd, a, v, 0, 1e9, &o.grad_clip);
    else if (IS("--seed")) ok = app_u64(cmd, a, v, &o.seed);
    else if (IS("--ckpt-every")) ok = app_u32(cmd, a, v, 0, 1u << 24, &o.ckpt_every);
    else {
      fprintf(stderr, "%s: unknown flag '%s'\n", cmd, a);
      return 2;
    }
#undef IS
    if (!ok) return 2;
    i++;
  }
  o.progress = !quiet;
  if (o.value_head && value_path) {
    fprintf(stderr, "%s: --value-head puts the values on the policy; --value names a separate "
            "value model: give one of them\n", cmd);
    return 2;
  }
  if (!init_path || !reward_path || !prompts_path) {
    fprintf(stderr, "%s: give the policy (-m MODEL), the reward model (--reward MODEL) and the "
            "prompts (--prompts FILE.jsonl)\n", cmd);
    return 2;
  }
  align_text at;
  if (!align_text_open(cmd, init_path, tok, tmpl, &at)) return 1;
  int rc = 0;
  char err[2048] = "", kind[16], why[256];
  vklm_ckpt *init = NULL, *rw = NULL, *ref = NULL, *val = NULL;
  vklm_pref_set prompts = {0};
  vklm_context *ctx = NULL;
  vklm_tokenizer *rtk = NULL;
  const char *which = "-m";
  if (vklm_train_open_init(init_path, &init, kind, sizeof kind, err, sizeof err) != VKLM_OK ||
      (which = "--reward", vklm_train_open_init(reward_path, &rw, kind, sizeof kind, err,
                                                  sizeof err)) != VKLM_OK ||
      (ref_path && (which = "--ref", vklm_train_open_init(ref_path, &ref, kind, sizeof kind, err,
                                                          sizeof err)) != VKLM_OK) ||
      (value_path && (which = "--value", vklm_train_open_init(value_path, &val, kind, sizeof kind,
                                                              err, sizeof err)) != VKLM_OK)) {
    fprintf(stderr, "%s: %s: %s\n", cmd, which, err);
    rc = 1;
    goto done;
  }
  /* the reward model must read the policy's tokens: its own tokenizer, when it has one beside
   * it, must give every id the same bytes */
  if (!tok && (rtk = tokenizer_beside(reward_path)) && !same_vocab(at.tk, rtk, why, sizeof why)) {
    fprintf(stderr, "%s: the reward model's tokenizer differs from the policy's (%s): it cannot "
            "score the policy's responses\n", cmd, why);
    rc = 1;
    goto done;
  }
  vklm_align_read_opts ro = {.tk = at.tk, .tmpl = at.tmpl, .eos = at.eos, .max_len = o.T,
                             .bad_rows = skip_bad ? VKLM_BAD_ROWS_SKIP : VKLM_BAD_ROWS_STOP};
  vklm_align_stats rs;
  if (vklm_pref_read(prompts_path, &ro, 1, &prompts, &rs, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    rc = 1;
    goto done;
  }
  o.eos = at.eos, o.tk = at.tk, o.reward = rw, o.ref = ref, o.value = val;
  /* bad input is refused before any device work */
  if (vklm_ppo_check(init, &o, &prompts, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s: %s\n", cmd, prompts.n ? "bad input" : prompts_path, err);
    rc = 1;
    goto done;
  }
  if (!quiet)
    fprintf(stderr, "%s: %s: %llu prompts (%llu rows, %llu skipped)\n", cmd, prompts_path,
            (unsigned long long)prompts.n, (unsigned long long)rs.rows,
            (unsigned long long)rs.skipped);
  struct stat sb;
  if (mkdir(o.out_dir, 0755) != 0 && (stat(o.out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
    fprintf(stderr, "%s: cannot create the output directory '%s'\n", cmd, o.out_dir);
    rc = 1;
    goto done;
  }
  if (!align_copy_text_files(cmd, init_path, tok, at.tk, o.out_dir) || !(ctx = app_context(&cfg))) {
    rc = 1;
    goto done;
  }
  vklm_ppo_result res;
  if (vklm_ppo_train(ctx, init, &prompts, &o, &res, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    rc = 1;
    goto done;
  }
  char path[4096], b[4][4][32];
  const char *names[4] = {"policy", "reference", "reward", "value"};
  if (!quiet)
    for (int i = 0; i < (o.value_head ? 3 : 4); i++)
      fprintf(stderr, "%s: %-9s model: weights %s, gradients %s, moments %s, activations %s\n",
              cmd, names[i], app_bytes(res.mem[i].weights, b[i][0], 32),
              app_bytes(res.mem[i].grads, b[i][1], 32), app_bytes(res.mem[i].moments, b[i][2], 32),
              app_bytes(res.mem[i].activations, b[i][3], 32));
  snprintf(path, sizeof path, "%s/ppo.json", o.out_dir);
  FILE *f = fopen(path, "w");
  if (f) {
    const vklm_ppo_iter *it[2] = {&res.first, &res.last};
    fprintf(f, "{\"iters\": %u, \"seconds\": %.3f", res.iters, res.seconds);
    for (int k = 0; k < 2; k++)
      fprintf(f, ", \"%s\": {\"reward_mean\": %.6f, \"reward_std\": %.6f, \"kl\": %.6f, \"beta\": "
              "%.6g, \"resp_len\": %.3f, \"ended\": %.4f, \"tokens_per_s\": %.2f}",
              k ? "last" : "first", it[k]->reward_mean, it[k]->reward_std, it[k]->kl, it[k]->beta,
              it[k]->resp_len, it[k]->ended, it[k]->tokens_per_s);
    fprintf(f, ", \"memory\": {");
    for (int i = 0; i < 4; i++)
      fprintf(f, "%s\"%s\": {\"weights\": %llu, \"grads\": %llu, \"moments\": %llu, "
              "\"activations\": %llu}", i ? ", " : "", names[i],
              (unsigned long long)res.mem[i].weights, (unsigned long long)res.mem[i].grads,
              (unsigned long long)res.mem[i].moments, (unsigned long long)res.mem[i].activations);
    fprintf(f, "}}\n");
    fclose(f);
  }
  fprintf(stderr, "%s: %u iterations in %.1f s: mean reward %+.4f -> %+.4f, KL to the reference "
          "%.4f -> %.4f nats per response; outputs in %s/\n", cmd, res.iters, res.seconds,
          res.first.reward_mean, res.last.reward_mean, res.first.kl, res.last.kl, o.out_dir);
done:
  vklm_pref_free(&prompts);
  vklm_ckpt_free(init);
  vklm_ckpt_free(rw);
  vklm_ckpt_free(ref);
  vklm_ckpt_free(val);
  vklm_tokenizer_destroy(rtk);
  align_text_close(&at);
  vklm_context_destroy(ctx);
  return rc;
}

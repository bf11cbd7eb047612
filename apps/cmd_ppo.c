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
#include "flags.h"

static const char about[] =
    "RLHF with PPO: the policy (from -m, e.g. an SFT model) answers batches of prompts, the\n"
    "frozen reward model scores the answers, per-token rewards -beta*KL(policy || reference) plus\n"
    "the score at the last token, GAE advantages, then 4 epochs of clipped policy and value\n"
    "losses on a separate value model (initialised from the reward model).";

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
  int skip_bad = 0, quiet = 0, kl = 0;
  const app_flag flags[] = {
      AF_STRING("--init", "-m", &init_path, "MODEL",
                "the policy's start (a vklm checkpoint or run directory)"),
      AF_STRING("--model", NULL, &init_path, "MODEL", "the same as --init"),
      AF_STRING("--reward", NULL, &reward_path, "MODEL",
                "a `vklm reward train` checkpoint (required)"),
      AF_STRING("--ref", NULL, &ref_path, "MODEL", "the frozen reference (default: -m)"),
      AF_STRING("--value", NULL, &value_path, "MODEL",
                "the value model's start (default: the reward model)"),
      AF_BOOL("--value-head", &o.value_head,
              "no value model: a new scalar head on the policy gives the values,\n"
              "trained with it (loss pg + vf-coef * vf, one AdamW step at --lr)"),
      AF_STRING("--prompts", NULL, &prompts_path, "FILE",
                "JSONL rows with \"prompt\" (other fields ignored)"),
      AF_STRING("--data", NULL, &prompts_path, "FILE", "the same as --prompts"),
      AF_STRING("--tokenizer", "-t", &tok, "F", "tokenizer.json (default: beside -m)"),
      AF_STRING("--template", NULL, &tmpl, "NAME|FILE", "the chat template for the prompts"),
      AF_FLAG("--bad-rows", NULL, AF_CHOICE, &skip_bad, 0, 0, "stop|skip",
              "what a bad prompt row does (stop)"),
      AF_FLAG("--iters", NULL, AF_U32, &o.iters, 1, 1u << 24, "N", "rollout batches (20)"),
      AF_FLAG("--batch", "-b", AF_U32, &o.prompts, 1, 4096, "N", "prompts per batch (8)"),
      AF_FLAG("-k", NULL, AF_U32, &o.k, 1, VKLM_PREF_MAX_K, "N", "responses per prompt (1)"),
      AF_FLAG("--max-tokens", NULL, AF_U32, &o.max_tokens, 1, 1u << 16, "N",
              "tokens per response at most (24)"),
      AF_FLAG("--seq", "-T", AF_U32, &o.T, 2, 1u << 20, "N",
              "positions per row (prompt + response) (64)"),
      AF_FLAG("--temp", NULL, AF_F32, &o.temp, 1e-3, 100, "X",
              "sampling temperature (1); the policy's and reference's log-probs\n"
              "are those of the same distribution (logits / X)"),
      AF_FLAG("--beta", NULL, AF_F32, &o.hp.beta, 0, 1e3, "X", "KL coefficient (0.05)"),
      AF_FLAG("--kl", NULL, AF_CHOICE, &kl, 0, 0, "k1|k3", "the KL estimator (k1)"),
      AF_FLAG("--target-kl", NULL, AF_F32, &o.target_kl, 1e-6, 1e6, "X",
              "adaptive beta toward X nats per response (default: fixed beta)"),
      AF_FLAG("--horizon", NULL, AF_F32, &o.horizon, 1, 1e12, "N",
              "the adaptive controller's horizon (10000)"),
      AF_FLAG("--gamma", NULL, AF_F32, &o.hp.gamma, 0, 1, "X", "GAE discount (1)"),
      AF_FLAG("--lam", NULL, AF_F32, &o.hp.lam, 0, 1, "X", "GAE lambda (0.95)"),
      AF_FLAG("--clip", NULL, AF_F32, &o.hp.clip, 1e-6, 10, "X", "policy ratio clip (0.2)"),
      AF_FLAG("--vclip", NULL, AF_F32, &o.hp.vclip, 1e-6, 1e6, "X", "value clip (0.2)"),
      AF_FLAG("--vf-coef", NULL, AF_F32, &o.hp.vf_coef, 0, 1e3, "X",
              "the value loss's weight (0.1)"),
      AF_BOOL("--whiten-rewards", &o.hp.whiten_rewards,
              "scale per-token rewards to unit variance before GAE"),
      AF_FLAG("--ppo-epochs", NULL, AF_U32, &o.hp.epochs, 1, 1000, "N",
              "passes over each rollout batch (4)"),
      AF_FLAG("--minibatch", NULL, AF_U32, &o.hp.minibatch, 1, 4096, "N",
              "rows per update (8)"),
      AF_FLAG("--no-eos-penalty", NULL, AF_F32, &o.no_eos_penalty, -1e6, 1e6, "X",
              "added to the score of a response that never ended (0)"),
      AF_FLAG("--lr", NULL, AF_F32, &o.lr, 1e-12, 10, "X", "the policy's learning rate (1e-5)"),
      AF_FLAG("--value-lr", NULL, AF_F32, &o.value_lr, 1e-12, 10, "X",
              "the value model's learning rate (1e-5)"),
      AF_FLAG("--wd", NULL, AF_F32, &o.weight_decay, 0, 100, "X", "weight decay (0)"),
      AF_FLAG("--clip-grad", NULL, AF_F32, &o.grad_clip, 0, 1e9, "X",
              "global gradient-norm clip (1)"),
      AF_FLAG("--seed", NULL, AF_U64, &o.seed, 0, 18446744073709551615.0, "N", "seed (1337)"),
      AF_STRING("--out", "-o", &o.out_dir, "DIR",
                "checkpoint.bin (policy), value.bin, ppo_state.json, metrics.jsonl,\n"
                "ppo.png, samples.jsonl, ppo.json (out-ppo)"),
      AF_FLAG("--ckpt-every", NULL, AF_U32, &o.ckpt_every, 0, 1u << 24, "N",
              "also checkpoint every N iterations (0: at the end only)"),
      AF_BOOL("--resume", &o.resume,
              "continue the run in --out from its last checkpoint (same -m, seed,\n"
              "batch shape; raise --iters)"),
      AF_BOOL("--quiet", &quiet, "no progress lines"),
      AF_LAST};
  const app_command c = {"ppo", "ppo -m POLICY --reward REWARD_MODEL --prompts PROMPTS.jsonl "
                         "[flags]", about, flags, 0, 0, 1};
  int pr = app_flags_parse(&c, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  o.hp.kl = kl ? VKLM_PPO_KL_K3 : VKLM_PPO_KL_K1;
  o.progress = !quiet;
  if (o.value_head && value_path) {
    fprintf(stderr, "%s: --value-head puts the values on the policy; --value names a separate "
            "value model: give one of them\n", cmd);
    return 2;
  }
  if (!init_path || !reward_path || !prompts_path) {
    return app_flags_missing(&c, "give the policy (-m MODEL), the reward model (--reward MODEL) "
                             "and the prompts (--prompts FILE.jsonl)");
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

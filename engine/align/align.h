/* align: what comes after pretraining — supervised fine-tuning data, preference data (pairs and
 * rankings of K responses), ranking sessions, the reward model, DPO and PPO, on the ONE model
 * graph (engine/model): per-token and per-sequence log-probs and scalar values from
 * vklm_model_run, gradients through vklm_model_backward / vklm_model_backward_seq, samples from
 * sessions that borrow a model's weights (engine/infer). Formats, losses and defaults:
 * docs/alignment.md.
 *
 * SFT itself is engine/train's loop over examples (vklm_tokens_from_examples): this module reads
 * the JSONL and builds them. Reward-model training, DPO and PPO have their own small loops here
 * (they batch responses of one prompt, chosen/rejected pairs or rollouts, not token windows) and
 * share engine/train's schedule, checkpoints, metrics log and plot. Files: align_data.c and
 * pref_data.c (reading), losses.c, models.c (models from checkpoints, rows), answers.c, rollout.c,
 * rank.c, reward.c, dpo.c, ppo.c and ppo_loss.c.
 *
 * Owns: the parsed and tokenized datasets. Borrows the context, models and tokenizer.
 * Does not: parse command lines or print except progress lines on stderr when asked. */
#ifndef VKLM_ALIGN_H
#define VKLM_ALIGN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chat/chat.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "train/train.h"

/* ---- reading JSONL (align_data.c) ---------------------------------------------------------
 * A bad row (not JSON, a missing or mistyped field, an empty response, a ranking that is not a
 * permutation, a text longer than max_len tokens) gives a message naming the file and line: with
 * VKLM_BAD_ROWS_STOP the read fails with it; with VKLM_BAD_ROWS_SKIP it goes to opts->log
 * (stderr when NULL) and the row is counted in the stats. Nothing is dropped silently. */
typedef enum vklm_bad_rows { VKLM_BAD_ROWS_STOP = 0, VKLM_BAD_ROWS_SKIP = 1 } vklm_bad_rows;

typedef struct vklm_align_read_opts {
  vklm_tokenizer *tk;                /* borrowed */
  const vklm_chat_template *tmpl;    /* renders {"messages"} rows; NULL: such rows are bad */
  int32_t eos;                       /* appended to every response / completion; -1: none */
  uint32_t max_len;                  /* tokens a whole sequence may hold (0: no limit) */
  int loss_on_prompt;                /* SFT: the prompt's tokens are targets too */
  vklm_bad_rows bad_rows;
  FILE *log;                         /* skipped rows' messages (NULL: stderr) */
  int quiet;                         /* no messages for skipped rows, only the counts */
} vklm_align_read_opts;

typedef struct vklm_align_stats {
  uint64_t rows, kept, skipped;
  uint64_t too_long, bad_json, bad_field, empty, bad_ranking; /* why rows were skipped */
  uint64_t tokens, target_tokens;
} vklm_align_stats;

/* SFT examples: {"prompt","completion"} (loss on the completion; the prompt too with
 * loss_on_prompt), {"messages":[{"role","content"},...]} rendered with the template (loss on
 * the assistant turns only), {"text"} (loss on everything). Each example is its tokens (the
 * completion or assistant turn followed by eos) and which of them are targets. */
typedef struct vklm_sft_set {
  int32_t *ids;     /* all examples' tokens */
  uint8_t *target;  /* per token: predicted (1) or context (0) */
  uint64_t *off;    /* n+1 offsets */
  uint32_t *line;   /* each example's line in the file */
  uint64_t n;
} vklm_sft_set;
vklm_status vklm_sft_read(const char *path, const vklm_align_read_opts *o, vklm_sft_set *out,
                          vklm_align_stats *stats, char *err, size_t errlen);
void vklm_sft_free(vklm_sft_set *s);
/* Examples [from, to) as engine/train token source (vocab: the model's V). */
vklm_status vklm_sft_tokens(const vklm_sft_set *s, uint64_t from, uint64_t to, uint64_t vocab,
                            vklm_tokens **out);

/* Preferences: one item is a prompt and K >= 2 responses with a ranking. Read from
 *   {"prompt","chosen","rejected"}     (K = 2; the conversational variant: lists of messages)
 *   {"chosen","rejected"}              (implicit prompt: the longest common prefix, cut after
 *                                       the last "\n\nAssistant:" for Anthropic HH transcripts)
 *   {"prompt","responses":[...],"ranking":[...]}  (vklm rank's format: ranking lists response
 *                                       indices best first; an inner list is a tie group;
 *                                       "all_bad": true marks a prompt none of whose answers
 *                                       the rater liked — the order still counts)
 * group[i] is response i's place (0 best; equal for ties). Rows without a ranking (prompts to
 * rank, or responses to score) are read with group all -1 when o allows unranked. */
#define VKLM_PREF_MAX_K 64 /* responses to one prompt */
typedef struct vklm_pref_item {
  char *prompt;            /* rendered prompt text */
  char **response;         /* k rendered responses */
  int32_t *prompt_ids;     /* np tokens */
  int32_t **resp_ids;      /* k arrays of nr[i] tokens (eos included when set) */
  uint32_t np, k, *nr;
  int32_t *group;          /* k places; -1 when unranked */
  int all_bad;
  uint32_t line;
  char *answer;            /* the row's "answer" (a simulated rater's key), or NULL */
  char **models;           /* the row's "models" (who wrote each response; k entries), or NULL */
} vklm_pref_item;
typedef struct vklm_pref_set {
  vklm_pref_item *items;
  uint64_t n;
} vklm_pref_set;
/* allow_unranked: rows may lack a ranking (and may have one response, or none: prompts only). */
vklm_status vklm_pref_read(const char *path, const vklm_align_read_opts *o, int allow_unranked,
                           vklm_pref_set *out, vklm_align_stats *stats, char *err, size_t errlen);
void vklm_pref_free(vklm_pref_set *s);
/* Ordered pairs (better, worse) of item it: the responses in different groups; returns how
 * many were written to a/b (at most max). */
uint32_t vklm_pref_pairs(const vklm_pref_item *it, uint32_t *better, uint32_t *worse,
                         uint32_t max);

/* ---- losses on per-sequence scalars (losses.c) --------------------------------------------
 * The heavy part (forward, backward) runs on the GPU; these are the O(K^2) scalar losses and
 * their derivatives, verified against PyTorch with the whole model in tests/test_align_parity.c.
 *
 * Ranking loss (InstructGPT) of one prompt's K rewards r with places group (0 best, ties equal,
 * -1 ignored): -mean over ordered pairs (w better than l) of log sigmoid(r_w - r_l - margin).
 * Returns the loss (0 with no pair) and ADDS scale * dloss/dr to dr; *pairs, *correct (may be
 * NULL) count the pairs and those with r_w > r_l. */
double vklm_rank_loss(const float *r, const int32_t *group, uint32_t k, float margin, float scale,
                      float *dr, uint32_t *pairs, uint32_t *correct);

typedef enum vklm_dpo_kind { VKLM_DPO_SIGMOID = 0, VKLM_DPO_IPO = 1, VKLM_DPO_HINGE = 2 } vklm_dpo_kind;
/* DPO for one pair: h = (pc - rc) - (pr - rr) (policy and reference sequence log-probs of the
 * chosen and rejected responses); sigmoid: -log sigmoid(beta h); IPO: (h - 1/(2 beta))^2;
 * hinge: max(0, 1 - beta h). Returns the loss; *dc = dloss/dpc, *dr = dloss/dpr. */
double vklm_dpo_loss(vklm_dpo_kind kind, float beta, double pc, double pr, double rc, double rr,
                     double *dc, double *dr);
const char *vklm_dpo_kind_name(vklm_dpo_kind k);

/* ---- models for alignment (models.c) ------------------------------------------------------ */
/* A trainable model for (B,T) from a checkpoint's weights (an init model: vklm_train_open_init)
 * with cfg->scalar_head as asked: tensors the source lacks (score.* for a new reward head) are
 * initialised, score.weight ~ N(0, 1/sqrt(C+1)) from seed and score.bias = 0; tensors the model
 * does not have (a source's score.*) are dropped. opt may freeze tensors. */
vklm_status vklm_align_model(vklm_context *ctx, const vklm_ckpt *src, int scalar_head, uint32_t B,
                             uint32_t T, const vklm_model_options *opt, uint64_t seed,
                             vklm_model **out, char *err, size_t errlen);
/* Writes the model's weights as a checkpoint (no moments needed: a new run starts from it) whose
 * state records B, T, step and the optimizer settings. */
vklm_status vklm_align_save(const char *path, vklm_model *m, uint32_t step, const vklm_optim_config *oc,
                            char *err, size_t errlen);

/* ---- sequences into batches (batch.c) ------------------------------------------------------ */
/* Row r of (B,T) inputs/targets/mask from a prompt and a response: inputs the sequence (the
 * last token dropped when it must be a target), right-padded with 0; targets the next tokens,
 * VKLM_IGNORE_INDEX past the end; mask 1 on the targets that are response tokens. *last gets the
 * position of the sequence's last token as an input (where a reward is read). Fails when the
 * sequence does not fit T. */
vklm_status vklm_align_row(const int32_t *prompt, uint32_t np, const int32_t *resp, uint32_t nr,
                           uint32_t T, int32_t *inputs, int32_t *targets, float *mask,
                           uint32_t *last);

/* ---- sampling K responses (rollout.c) ------------------------------------------------------ */
typedef struct vklm_rollout_options {
  uint32_t k;            /* responses per prompt */
  uint32_t max_tokens;   /* per response */
  float temp, top_p;
  uint32_t top_k;
  uint64_t seed;
  int32_t eos;           /* stops a response; -1: none */
  uint32_t slots;        /* sequences decoded together (0: k) */
} vklm_rollout_options;
/* ---- exact match of greedy answers (answers.c) ---------------------------------------------
 * A response matches an answer when their first lines are equal after trimming whitespace and
 * lower-casing (docs/alignment.md). */
int vklm_align_answer_matches(const char *response, const char *answer);
/* Greedy answers (at most max_tokens, ending at eos) of m to every item's prompt (stored as the
 * item's one response); *correct counts those matching the item's "answer" (every item must
 * have one). */
vklm_status vklm_align_exact_match(vklm_model *m, vklm_tokenizer *tk, vklm_pref_set *items,
                                   uint32_t max_tokens, int32_t eos, uint64_t *correct,
                                   char *err, size_t errlen);

/* ---- reward model (reward.c) --------------------------------------------------------------- */
typedef struct vklm_reward_options {
  uint32_t B;            /* responses per micro-batch (rows); an item's K responses never split */
  uint32_t T;            /* positions per row */
  uint32_t epochs, steps; /* steps 0: epochs over the training items */
  float lr, min_lr, weight_decay, grad_clip, margin;
  uint32_t warmup;
  uint64_t seed;
  double val_fraction;   /* held-out items for pairwise accuracy */
  const char *out_dir;   /* checkpoint.bin, metrics.jsonl, loss.png, reward.json */
  int progress;
  const char *freeze;    /* name patterns kept frozen (model.h) */
  /* normalisation after training (NULL calib_ref: none): calib.k responses to each of the first
   * calib_prompts training prompts sampled from calib_ref (the reference model) */
  const vklm_ckpt *calib_ref;
  vklm_tokenizer *calib_tk;
  uint32_t calib_prompts;
  vklm_rollout_options calib;
} vklm_reward_options;
void vklm_reward_options_default(vklm_reward_options *o);

typedef struct vklm_reward_result {
  uint32_t steps;
  double first_loss, last_loss;
  double train_acc, val_acc;     /* pairwise accuracy (NaN when no pairs) */
  uint64_t val_pairs, train_items, val_items;
  double seconds;
  double norm_mean, norm_std;    /* the raw rewards' statistics the head was normalised by */
  uint64_t norm_samples;         /* 0: not normalised */
} vklm_reward_result;

/* Trains a reward model (the LM with a scalar head read at the last token of prompt+response)
 * from init (a checkpoint's weights) on the items, with the ranking loss over all pairs of each
 * item; writes out_dir/checkpoint.bin with cfg.scalar_head, metrics and plot. */
vklm_status vklm_reward_train(vklm_context *ctx, const vklm_ckpt *init, const vklm_pref_set *data,
                              const vklm_reward_options *o, vklm_reward_result *res, char *err,
                              size_t errlen);
/* One batch of the reward loss: items idx[0..n) (their responses together at most B rows of
 * m's (B,T)) through the scalar head, the mean over items of the ranking loss into *loss (pairs
 * and correctly ordered pairs counted), and with backward its gradient ACCUMULATED into m. */
vklm_status vklm_reward_step(vklm_model *m, const vklm_pref_set *d, const uint64_t *idx,
                             uint32_t n, float margin, int backward, double *loss,
                             uint32_t *pairs, uint32_t *correct, char *err, size_t errlen);
/* The rewards of items' responses (r[i][j] for response j of item i, flattened item by item)
 * from a frozen reward model m of (B,T) (B rows per pass). */
vklm_status vklm_reward_score(vklm_model *m, const vklm_pref_set *data, float *r, char *err,
                              size_t errlen);
/* Folds a normalisation into the head: r' = (r - mean) / std, so that the responses the
 * statistics came from score mean 0, standard deviation 1. Updates score.weight and score.bias
 * of m (trainable or frozen f32). */
vklm_status vklm_reward_normalize(vklm_model *m, double mean, double std, char *err,
                                  size_t errlen);

/* ---- DPO (dpo.c) -------------------------------------------------------------------------- */
typedef struct vklm_dpo_options {
  uint32_t pairs;        /* pairs per step (rows 2 * pairs) */
  uint32_t T;
  uint32_t epochs, steps;
  float lr, min_lr, weight_decay, grad_clip, beta;
  uint32_t warmup;
  vklm_dpo_kind kind;
  uint64_t seed;
  double val_fraction;
  const char *out_dir;
  int progress;
  const char *freeze;
  const vklm_ckpt *ref;  /* the frozen reference's weights (NULL: init's) */
  vklm_tokenizer *tk;    /* with held-out pairs: KL(policy || reference) on policy samples to
                            their prompts after training (NULL: not measured) */
  int32_t eos;
} vklm_dpo_options;
void vklm_dpo_options_default(vklm_dpo_options *o);

typedef struct vklm_dpo_stats {
  double loss, acc, chosen, rejected, margin, kl; /* means over pairs; implicit rewards beta *
                                                     (logp - logp_ref); kl: the mean sequence
                                                     log-ratio log p - log p_ref of the pair's
                                                     two responses (data, not samples) */
  uint64_t pairs;
} vklm_dpo_stats;

typedef struct vklm_dpo_result {
  uint32_t steps;
  vklm_dpo_stats first, last;    /* training steps 1 and last */
  vklm_dpo_stats val_before, val_after; /* held-out pairs before and after training */
  double kl;                     /* per response, nats; NaN when not measured */
  uint64_t kl_samples;
  double seconds;
} vklm_dpo_result;

/* Trains policy (from init) against a frozen copy of init on the items' pairs; writes
 * out_dir/checkpoint.bin, metrics.jsonl, loss.png. */
vklm_status vklm_dpo_train(vklm_context *ctx, const vklm_ckpt *init, const vklm_pref_set *data,
                           const vklm_dpo_options *o, vklm_dpo_result *res, char *err,
                           size_t errlen);
/* One DPO step's forward/backward over n pairs (rows 2i chosen, 2i+1 rejected in inputs /
 * targets / mask of the policy's (B,T), B >= 2n; the rows past 2n are padding with mask 0):
 * reference log-probs from ref (same B,T), the policy's gradient ACCUMULATED with weight
 * `scale` per pair's loss (scale = 1/pairs for the mean). Statistics into *s (means over the n
 * pairs). With backward 0 only the statistics. */
vklm_status vklm_dpo_step(vklm_model *policy, vklm_model *ref, const int32_t *inputs,
                          const int32_t *targets, const float *mask, uint32_t n, float beta,
                          vklm_dpo_kind kind, float scale, int backward, vklm_dpo_stats *s,
                          char *err, size_t errlen);

/* For every item's prompt, samples o->k responses with batched generation on a session over m
 * (borrowing its weights), stored as the item's responses (text and ids, eos included when it
 * ended), replacing any it had; group set to -1 (unranked). */
vklm_status vklm_rollout(vklm_model *m, vklm_tokenizer *tk, vklm_pref_set *data,
                         const vklm_rollout_options *o, char *err, size_t errlen);

/* ---- ranking sessions (rank.c): what `vklm rank` does in the terminal and in the browser ----
 * A session walks the items (a prompt and its K responses) and appends one JSON line per ranked
 * prompt to the output file, flushed and synced at once, so progress survives a crash:
 *   {"prompt", "responses", "ranking" (indices best first; an inner list is a tie group),
 *    "all_bad", "skipped" (true: no ranking), "source_line", "models" (one per response),
 *    "sampling", "rater", "time" (UTC, ISO 8601)}
 * Opening an existing output resumes after the items it already holds (by source line). */
typedef struct vklm_rank_session vklm_rank_session;
/* items: borrowed, must outlive the session. meta_json: a JSON object whose members are added to
 * every line (model, sampling settings); rater: "human", "simulated:answer", ... */
vklm_status vklm_rank_open(const char *out_path, const vklm_pref_set *items,
                           const char *const *models, const char *meta_json, const char *rater,
                           vklm_rank_session **out, char *err, size_t errlen);
void vklm_rank_close(vklm_rank_session *s);
/* The next item to rank (NULL when all are done); *index and *total for progress. */
const vklm_pref_item *vklm_rank_current(vklm_rank_session *s, uint64_t *index, uint64_t *total);
/* Records the current item: group[i] is response i's place (0 best, ties equal; NULL: skipped).
 * The groups must use places 0..g without gaps. */
vklm_status vklm_rank_submit(vklm_rank_session *s, const int32_t *group, int all_bad, char *err,
                             size_t errlen);
/* Takes back the last line this session wrote (the item becomes current again); VKLM_ERROR_INVALID when there
 * is nothing to undo. */
vklm_status vklm_rank_undo(vklm_rank_session *s, char *err, size_t errlen);
uint64_t vklm_rank_done(const vklm_rank_session *s); /* items ranked or skipped so far */
int vklm_rank_item_done(const vklm_rank_session *s, uint64_t i); /* item i is in the output */
/* Parses a typed ranking, "2 1 3" or "2=1 3" ('=' ties; 1-based), into places; NULL or why not. */
const char *vklm_rank_parse(const char *text, uint32_t k, int32_t *group);
/* The simulated rater (docs/alignment.md): rule "answer": responses containing the item's
 * expected answer (answer; case-insensitive) first, then the rest, each class one tie group
 * (right or wrong is all it judges); "length": shorter first, equal lengths tied; under both,
 * empty (blank) responses last. */
vklm_status vklm_rank_simulate(const char *rule, const vklm_pref_item *it, const char *answer,
                               int32_t *group, char *err, size_t errlen);

/* ==== PPO (ppo.c: the loop; ppo_loss.c: advantages, losses, the update) ====================
 * RLHF with proximal policy optimisation (docs/alignment.md, "vklm ppo"): the policy samples
 * responses (vklm_rollout), a frozen reward model scores them, a frozen reference keeps the
 * policy near where it started (a per-token KL penalty), and a separate value model (a scalar
 * head) is the critic. Everything but the sampling bookkeeping runs on the GPU: the forward and
 * backward passes (vklm_model_run / vklm_model_backward_rows), and the per-token work —
 * rewards, GAE, whitening, the clipped losses and their derivatives, the statistics — as ops
 * (engine/ops/rl.h) on a device copy of the rollout batch (vklm_ppo_dev), reading the models'
 * per-row results and writing their backward weights in place (vklm_model_rows).
 *
 * A rollout batch is N rows of (N,T): row n is prompt + response laid out by vklm_align_row
 * (inputs, targets, mask 1 on the targets that are response tokens); position t's action is
 * targets[t], its log-prob token_logp[t], its value values[t] (the state up to input t). */
typedef enum vklm_ppo_kl { VKLM_PPO_KL_K1 = 0, VKLM_PPO_KL_K3 = 1 } vklm_ppo_kl;

typedef struct vklm_ppo_hparams {
  float beta;            /* KL penalty coefficient (the current one under adaptive control) */
  vklm_ppo_kl kl;        /* k1: logp - logp_ref; k3: exp(d) - 1 - d with d = logp_ref - logp */
  float gamma, lam;      /* GAE: 1, 0.95 */
  float clip, vclip;     /* policy ratio clip 0.2; value clip 0.2 (around the old values) */
  float vf_coef;         /* 0.1: the value loss's weight (its gradient goes to the value model) */
  int whiten_rewards;    /* per-token rewards scaled to unit variance (mean kept) before GAE */
  uint32_t epochs;       /* 4 passes over the rollout batch */
  uint32_t minibatch;    /* rows per update (the policy's and value model's B) */
} vklm_ppo_hparams;
void vklm_ppo_hparams_default(vklm_ppo_hparams *h);

typedef struct vklm_ppo_batch {
  uint32_t N, T;
  int32_t *inputs, *targets;  /* (N,T) */
  float *mask;                /* (N,T) 1 on response tokens */
  float *old_logp, *ref_logp; /* (N,T) the policy's (at rollout) and the reference's log-probs */
  float *values;              /* (N,T) the value model's at rollout */
  float *score;               /* (N) the reward model's score (penalties included) */
  float *rewards, *adv, *ret; /* (N,T) out of vklm_ppo_advantages (0 off the mask) */
} vklm_ppo_batch;
/* Allocates (zeroed) every array of an N x T batch; free with vklm_ppo_batch_free. The host
 * batch holds the rows (tokens and mask, laid out on the host) and, for a saved rollout or a
 * test, its figures; the GPU works on a vklm_ppo_dev. */
vklm_status vklm_ppo_batch_alloc(vklm_ppo_batch *b, uint32_t N, uint32_t T);
void vklm_ppo_batch_free(vklm_ppo_batch *b);

/* The rollout batch on the device (ppo_loss.c): mask, old and reference log-probs, old values,
 * scores, and what the advantages write (rewards, advantages, returns, row figures), the
 * minibatch order and the update's statistics; with a command buffer of its own. */
typedef struct vklm_ppo_dev vklm_ppo_dev;
/* For N rows of T tokens and PPO updates of `epochs` passes in minibatches of `minibatch` rows. */
vklm_status vklm_ppo_dev_create(vklm_context *ctx, uint32_t N, uint32_t T, uint32_t epochs,
                                uint32_t minibatch, vklm_ppo_dev **out, char *err, size_t errlen);
void vklm_ppo_dev_destroy(vklm_ppo_dev *d); /* accepts NULL */
/* Uploads b's mask, old_logp, ref_logp, values and score (a saved rollout; the tests). */
vklm_status vklm_ppo_dev_upload(vklm_ppo_dev *d, const vklm_ppo_batch *b, char *err,
                                size_t errlen);

/* On the GPU: per-token rewards r_t = -beta * kl_t (+ score at each row's last response token;
 * whitened when asked), GAE advantages A_t = delta_t + gamma lam A_{t+1} with delta_t = r_t +
 * gamma V_{t+1} - V_t (V past the end 0), returns = A + V, then the advantages whitened over all
 * response tokens: (A - mean) / sqrt(var + 1e-8), var unbiased. When b is not NULL, its
 * rewards, adv and ret receive them (logs, tests); rows (N*4, may be NULL) receives per row the
 * sequence KL (sum of logp - logp_ref, k1), the response tokens, the sum of -logp and the score. */
vklm_status vklm_ppo_advantages(vklm_ppo_dev *d, const vklm_ppo_hparams *h, vklm_ppo_batch *b,
                                float *rows, char *err, size_t errlen);

typedef struct vklm_ppo_stats {
  double pg_loss, vf_loss;   /* means over the minibatches of the update */
  double clipfrac;           /* share of response tokens whose ratio was clipped */
  double vf_clipfrac;        /* share whose clipped value term was the larger */
  double approx_kl;          /* 0.5 * mean (logp - old_logp)^2 */
  double entropy;            /* -mean logp of the sampled tokens (an estimate of the entropy) */
  double ratio;              /* mean ratio */
  uint32_t updates;          /* minibatch updates */
} vklm_ppo_stats;

/* Starts an update: uploads the row order (count indices into the rollout's rows) and zeroes the
 * statistics. */
vklm_status vklm_ppo_dev_begin(vklm_ppo_dev *d, const uint32_t *order, uint32_t count, char *err,
                               size_t errlen);
/* One minibatch: rollout rows order[row0 .. row0+n) (n <= the models' B; tokens from b) through
 * the policy (token log-probs) and the value model (values), the clipped policy loss and vf_coef
 * times the clipped value loss on the GPU, their gradients ACCUMULATED into the two models (mean
 * over the minibatch's response tokens); the losses and statistics go to update slot `slot`. */
vklm_status vklm_ppo_minibatch(vklm_model *policy, vklm_model *value, const vklm_ppo_batch *b,
                               vklm_ppo_dev *d, uint32_t row0, uint32_t n,
                               const vklm_ppo_hparams *h, uint32_t slot, char *err, size_t errlen);
/* Reads the statistics of `updates` minibatch updates since vklm_ppo_dev_begin into s (means
 * per token; entropy 0: the caller's) and each update's losses into pg_hist / vf_hist (may be NULL).
 * A loss that is not finite is an error naming the update. */
vklm_status vklm_ppo_dev_stats(vklm_ppo_dev *d, uint32_t updates, vklm_ppo_stats *s,
                               double *pg_hist, double *vf_hist, char *err, size_t errlen);
/* The PPO update on a rollout batch whose advantages d holds: h->epochs passes, each over the
 * rows in the order order[e*N .. e*N+N) (NULL: 0..N-1 every epoch), in minibatches of
 * h->minibatch rows; after each, one AdamW step of each model (oc_pol, oc_val; *step counts the
 * steps, from 1). pg_hist / vf_hist (may be NULL; epochs * ceil(N/minibatch) entries) get each
 * minibatch's losses before its step. */
vklm_status vklm_ppo_update(vklm_model *policy, vklm_model *value, const vklm_ppo_batch *b,
                            vklm_ppo_dev *d, const vklm_ppo_hparams *h, const uint32_t *order,
                            const vklm_optim_config *oc_pol, const vklm_optim_config *oc_val,
                            uint32_t *step, double *pg_hist, double *vf_hist, vklm_ppo_stats *s,
                            char *err, size_t errlen);

typedef struct vklm_ppo_options {
  vklm_ppo_hparams hp;
  uint32_t T;            /* positions per row (prompt + response) */
  uint32_t prompts;      /* prompts per rollout batch */
  uint32_t k;            /* responses per prompt (rows N = prompts * k) */
  uint32_t iters;        /* rollout batches */
  uint32_t max_tokens;   /* per response */
  float temp;            /* sampling temperature (the log-probs are those of logits / temp) */
  int32_t eos;
  float no_eos_penalty;  /* added to the score of a response that never ended (0: none) */
  float target_kl;       /* > 0: adaptive beta; 0: fixed */
  float horizon;         /* adaptive controller's horizon (10000) */
  float lr, value_lr, weight_decay, grad_clip;
  uint64_t seed;
  const char *out_dir;   /* checkpoint.bin (policy), value.bin, ppo_state.json, metrics.jsonl,
                            ppo.png, samples.jsonl (the first and last rollouts, scored) */
  int progress;
  uint32_t ckpt_every;   /* iterations between checkpoints (0: at the end only) */
  int resume;            /* continue the run in out_dir from its last checkpoint (ppo_state.json,
                            checkpoint.bin and value.bin with their moments); init is still the
                            start (and the reference by default) */
  const vklm_ckpt *ref;  /* the frozen reference's weights (NULL: init's) */
  const vklm_ckpt *reward; /* the reward model (a scalar head; required) */
  const vklm_ckpt *value;  /* the value model's start (NULL: the reward model) */
  int value_head;          /* 1: no value model; a scalar head on the policy (score.*, new)
                              gives the values, trained with the policy: one backward of
                              pg + vf_coef * vf, one AdamW step (lr) */
  vklm_tokenizer *tk;
} vklm_ppo_options;
void vklm_ppo_options_default(vklm_ppo_options *o);

typedef struct vklm_ppo_iter {
  uint32_t iter;
  double reward_mean, reward_std, kl, beta, resp_len, ended, tokens_per_s, seconds;
  vklm_ppo_stats st;
} vklm_ppo_iter;
typedef struct vklm_ppo_result {
  uint32_t iters;
  vklm_ppo_iter first, last;
  double seconds;
  vklm_model_memory mem[4]; /* policy, reference, reward, value */
} vklm_ppo_result;
/* Checks the models against each other (vocabulary, the reference's architecture, the reward
 * model's head) and the prompts (present, fitting T), then runs o->iters PPO iterations from
 * init on prompts' prompts; writes the outputs named above. */
vklm_status vklm_ppo_train(vklm_context *ctx, const vklm_ckpt *init, const vklm_pref_set *prompts,
                           const vklm_ppo_options *o, vklm_ppo_result *res, char *err,
                           size_t errlen);
/* The configuration check alone (also run by vklm_ppo_train): VKLM_ERROR_INVALID and why. */
vklm_status vklm_ppo_check(const vklm_ckpt *init, const vklm_ppo_options *o,
                           const vklm_pref_set *prompts, char *err, size_t errlen);
/* ==== end of PPO ============================================================================ */

#endif

/* eval: measuring a language model — perplexity and bits per byte of text, multiple-choice and
 * generation tasks scored as lm-evaluation-harness scores them, robustness to perturbed prompts,
 * CrowS-Pairs-style bias probes, and the reports (terminal table, JSON, self-contained HTML).
 * docs/eval.md defines every metric and the task file format.
 *
 * Owns: tasks (items loaded from JSONL files, public formats or the built-in set), the results
 * (metrics with standard errors and item counts, bias by category), and while a task runs, a
 * FROZEN model of (B,T) for scoring (model.h's vklm_model_run: many right-padded sequences per
 * forward, a mask over the continuation tokens) or an inference session of n_seq sequences for
 * generation (infer.h), both created from the caller's tensor callback.
 *
 * Invariants: every log-likelihood is log p(continuation | context) summed over the
 * continuation's tokens, the context and continuation split as the harness splits them
 * (tokens of context+continuation, the first len(tokens(context)) of them the context); an empty
 * context is the end-of-sequence token. Every failure names its cause (file and line for task
 * files) in err; nothing aborts on bad input.
 *
 * Does not: open model files, parse command lines or print except progress (apps/cmd_eval.c). */
#ifndef VKLM_EVAL_H
#define VKLM_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/model.h"
#include "text/tokenizer.h"

typedef enum vklm_task_kind {
  VKLM_TASK_MC = 0,   /* multiple choice: context, choices, gold */
  VKLM_TASK_GEN = 1,  /* generation: prompt, answers (exact match or regex) */
  VKLM_TASK_PPL = 2,  /* perplexity of documents */
  VKLM_TASK_BIAS = 3, /* paired sentences: stereotyped vs anti-stereotyped, by category */
} vklm_task_kind;

typedef struct vklm_eval_item {
  char *context;    /* MC: context; GEN: prompt; PPL: the document; BIAS: unused (NULL) */
  char **choices;   /* MC: the continuations (without the delimiter); BIAS: [stereo, anti] */
  uint32_t nchoices;
  int gold;         /* MC: index of the right choice */
  char **answers;   /* GEN: accepted answers */
  uint32_t nanswers;
  char *category;   /* BIAS: the category (may be NULL elsewhere) */
  int32_t *ids;     /* PPL from token shards: the document's tokens ([eot] + text), context
                       NULL (the text is decoded for byte and word counts when it runs) */
  uint32_t nids;
  uint32_t line;    /* line in the task file (1-based; 0 for built-ins) */
} vklm_eval_item;

typedef struct vklm_eval_task {
  char name[128];
  char path[1024];  /* the file read ("builtin:NAME" for the shipped tasks) */
  vklm_task_kind kind;
  char delim[16];   /* MC: between context and choice (" ") */
  char stop[16];    /* GEN: the answer ends at this string ("\n") */
  char *regex;      /* GEN: when set, the first capture group (or the match) is the answer */
  uint32_t max_new; /* GEN: new tokens at most (32) */
  int greedy;       /* MC: also report acc_greedy (every continuation token is the argmax:
                       LAMBADA's acc) */
  vklm_eval_item *items;
  uint32_t n, cap;
} vklm_eval_task;

/* ---- tasks (tasks.c, tasks_builtin.c) ---- */
/* Loads spec: "NAME" (a built-in task), "FILE" (JSONL: the native format or a public one,
 * recognised by its fields), or "FORMAT:FILE" with FORMAT one of mc, gen, ppl, bias, hellaswag,
 * arc, piqa, lambada, crows (a .txt FILE, or ppl: on any non-JSONL file, is one document),
 * or "shards:PATH" (token shards of `vklm data tokenize`: a shard file, or a directory's
 * val_*.bin; each [eot] + tokens is a document).
 * Returns 0, or -1 with "FILE:LINE: what is wrong" in err. */
int vklm_eval_task_load(const char *spec, vklm_eval_task **out, char *err, size_t errlen);
/* Token shards as a perplexity task (tasks_shards.c). */
int vklm_eval_task_load_shards(const char *path, vklm_eval_task **out, char *err, size_t errlen);
/* Parses a task from JSONL text (name for messages). */
int vklm_eval_task_parse(const char *name, const char *text, const char *format,
                         vklm_eval_task **out, char *err, size_t errlen);
void vklm_eval_task_free(vklm_eval_task *t); /* accepts NULL */
/* The built-in tasks: names, one-line descriptions, and their JSONL text (NULL when unknown;
 * free() it). */
uint32_t vklm_eval_builtin_count(void);
const char *vklm_eval_builtin_name(uint32_t i);
const char *vklm_eval_builtin_about(uint32_t i);
char *vklm_eval_builtin_text(const char *name);

/* ---- metrics (metrics.c): pure functions, unit-tested in tests/test_eval.c ---- */
/* UTF-8 characters of s (a stray byte counts as one character). */
size_t vklm_eval_utf8_chars(const char *s);
/* One multiple-choice item: ll[i] the log-likelihood of choice i; lengths from the choices'
 * text (characters, bytes). acc: argmax ll == gold; acc_norm: argmax ll/chars; acc_bytes: argmax
 * ll/bytes. The first maximum wins a tie; an empty choice divides by 1. */
typedef struct vklm_mc_score {
  int pred, pred_norm, pred_bytes;
  double acc, acc_norm, acc_bytes;
} vklm_mc_score;
void vklm_eval_mc_score(const double *ll, const char *const *choices, uint32_t n, int gold,
                        vklm_mc_score *out);
/* Mean and its standard error sqrt(var_ddof1 / n) (0 when n < 2). */
void vklm_eval_mean_stderr(const double *x, size_t n, double *mean, double *se);
/* Wilson score interval of k successes in n at 95% (z = 1.96). */
void vklm_eval_wilson(uint64_t k, uint64_t n, double *lo, double *hi);
/* Words as the harness counts them: len(re.split(r"\s+", text)). */
uint64_t vklm_eval_count_words(const char *text);
/* Perplexity figures from a total log-likelihood (natural log) and counts. */
typedef struct vklm_ppl {
  double ll;
  uint64_t tokens, words, bytes;
  double token_ppl, word_ppl, byte_ppl, bits_per_byte;
} vklm_ppl;
void vklm_eval_ppl_finish(vklm_ppl *p);
/* Exact-match normalisation (docs/eval.md): lower-case ASCII, drop ASCII punctuation, drop the
 * articles a/an/the, collapse whitespace, trim. Returns a malloc'd string (NULL: no memory). */
char *vklm_eval_normalize(const char *s);
/* The answer a generation is scored by: the first capture group (else the whole match) of
 * regex when set (NULL when it does not match), else the text up to stop, trimmed. Returns
 * malloc'd text or NULL; -1 on a bad regex (message in err). */
int vklm_eval_extract(const char *gen, const char *stop, const char *regex, char **out,
                      char *err, size_t errlen);

/* ---- prompts (perturb.c) ---- */
typedef enum vklm_perturb {
  VKLM_PERTURB_NONE = 0,
  VKLM_PERTURB_TYPO,       /* adjacent letters swapped in about one word in five (seeded) */
  VKLM_PERTURB_CASE,       /* every letter upper-case */
  VKLM_PERTURB_SPACE,      /* every space doubled, a space before newlines */
  VKLM_PERTURB_ORDER,      /* choices rotated by one (gold follows); MC only */
  VKLM_PERTURB_TEMPLATE,   /* the prompt wrapped in one of several paraphrased instructions */
  VKLM_PERTURB_COUNT
} vklm_perturb;
const char *vklm_perturb_name(vklm_perturb p);
int vklm_perturb_from_name(const char *s); /* -1 when unknown */
/* Applies p to text (item index seeds the randomness): malloc'd result or NULL. */
char *vklm_perturb_text(vklm_perturb p, const char *text, uint64_t seed);
/* A copy of task t under perturbation p (contexts and prompts perturbed, choices reordered for
 * ORDER), with `shots` solved examples from the other items prepended to every prompt (chosen
 * with seed; separated by a blank line). NULL on no memory. */
vklm_eval_task *vklm_eval_task_variant(const vklm_eval_task *t, vklm_perturb p, uint32_t shots,
                                       uint64_t seed);

/* ---- running (score.c, run.c, gen.c) ---- */
/* The model to evaluate: weights through a tensor callback (model.h), its tokenizer. */
typedef struct vklm_eval_model {
  vklm_context *ctx;
  const vklm_model_config *cfg;
  vklm_model_tensor_fn get;
  void *user;
  vklm_tokenizer *tk;
  int32_t eos; /* -1 when none */
} vklm_eval_model;

typedef struct vklm_eval_options {
  uint32_t batch;    /* sequences per forward (8) */
  uint32_t ctx;      /* perplexity window (0: the model's max_seq) */
  uint32_t stride;   /* perplexity stride (0: ctx / 2) */
  uint32_t limit;    /* items per task at most (0: all) */
  uint32_t shots;    /* few-shot examples per prompt */
  uint64_t seed;     /* few-shot choice, perturbations, sampling */
  float temp;        /* generation: <= 0 greedy */
  uint32_t top_k;
  float top_p;
  uint32_t gen_seqs; /* generation sequences at once (8) */
  int progress;      /* progress lines on stderr */
  FILE *samples;     /* per-item records as JSONL (may be NULL) */
} vklm_eval_options;
void vklm_eval_options_default(vklm_eval_options *o);

#define VKLM_EVAL_MAX_METRICS 12
#define VKLM_EVAL_MAX_CATS 32
typedef struct vklm_eval_metric {
  char name[32];
  double value, se; /* se < 0: none */
  uint64_t n;
} vklm_eval_metric;
typedef struct vklm_eval_category {
  char name[64];
  uint64_t k, n; /* preferred stereotyped in k of n */
  double frac, lo, hi;
} vklm_eval_category;
typedef struct vklm_eval_result {
  char task[128];
  char variant[32]; /* "clean" or a perturbation's name */
  vklm_task_kind kind;
  vklm_eval_metric m[VKLM_EVAL_MAX_METRICS];
  uint32_t nm;
  vklm_eval_category cat[VKLM_EVAL_MAX_CATS];
  uint32_t ncat;
  uint64_t items;
  double seconds;
} vklm_eval_result;
/* The main metric of a result (acc for MC, exact_match for GEN, bits_per_byte for PPL,
 * pct_stereotype for BIAS), or NULL. */
const vklm_eval_metric *vklm_eval_main_metric(const vklm_eval_result *r);
const vklm_eval_metric *vklm_eval_find_metric(const vklm_eval_result *r, const char *name);

/* Runs task t (already a variant) on model em; fills *out. 0, or -1 with a message. */
int vklm_eval_run(const vklm_eval_model *em, const vklm_eval_task *t, const vklm_eval_options *o,
                  const char *variant, vklm_eval_result *out, char *err, size_t errlen);
/* Greedy (or sampled, per o) answers of em to prompts[0..n): answers[i] malloc'd (up to stop,
 * at most max_new tokens). */
int vklm_eval_generate(const vklm_eval_model *em, const char *const *prompts, uint32_t n,
                       const char *stop, uint32_t max_new, const vklm_eval_options *o,
                       char **answers, char *err, size_t errlen);

/* ---- the batched scorer (score.c) ---- */
/* One request: tokens[0..n), of which the last n_cont are scored (predicted from all before
 * them); out: ll (sum of log-probs) and greedy (1 when every scored token is the argmax, -1 when
 * not computed). Longer than T+1 tokens: the oldest are dropped (at least one context token
 * stays). */
typedef struct vklm_eval_req {
  const int32_t *tokens;
  uint32_t n, n_cont;
  double ll;
  int greedy;
} vklm_eval_req;
typedef struct vklm_eval_scorer vklm_eval_scorer;
/* A frozen model of (B,T); want_greedy: keep per-row logits (B is lowered so that the logits of
 * a batch fit one buffer). */
int vklm_eval_scorer_create(const vklm_eval_model *em, uint32_t B, uint32_t T, int want_greedy,
                            vklm_eval_scorer **out, char *err, size_t errlen);
void vklm_eval_scorer_destroy(vklm_eval_scorer *s);
/* Scores reqs[0..n) in batches of B; progress on stderr when label is not NULL. */
int vklm_eval_score(vklm_eval_scorer *s, vklm_eval_req *reqs, size_t n, const char *label,
                    char *err, size_t errlen);

/* Sliding windows over a document of n tokens (x[0] the context token, x[1..n) scored): window
 * w feeds x[b_w, e_w) and scores the predictions of x[s_w+1 .. e_w], where b advances by stride,
 * e = min(b + ctx, n - 1) and s_w is the previous window's e (every token scored once, with at
 * least ctx - stride tokens of context when the document is longer than ctx). Returns the
 * number of windows written into b, e, s (each of cap entries; call with cap 0 to count). */
uint32_t vklm_eval_windows(uint32_t n, uint32_t ctx, uint32_t stride, uint32_t *b, uint32_t *e,
                           uint32_t *s, uint32_t cap);

/* ---- reports (report.c) ---- */
void vklm_eval_print_table(FILE *f, const vklm_eval_result *r, uint32_t n);
/* JSON of all results (model: its path): {"model":..., "results":[{"task","variant","kind",
 * "items","seconds","metrics":{name:{"value","stderr","n"}}, "categories":[...]}],
 * "robustness":[{"task","variant","metric","clean","score","drop"}]}. malloc'd. */
char *vklm_eval_json(const char *model, const vklm_eval_result *r, uint32_t n);
/* A self-contained HTML report with inline SVG bar charts. 0 or -1 (message in err). */
int vklm_eval_write_html(const char *path, const char *model, const vklm_eval_result *r,
                         uint32_t n, char *err, size_t errlen);
/* One JSONL line of a side-by-side comparison for `vklm rank`: {"prompt", "responses": [a, b],
 * "models": [ma, mb]}. */
int vklm_eval_write_compare(FILE *f, const char *prompt, const char *a, const char *b,
                            const char *ma, const char *mb);

#endif

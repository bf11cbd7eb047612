/* Test of engine/eval: the metric definitions against hand-computed cases (character vs byte
 * normalisation, UTF-8 choices, ties, empty continuations, standard errors, Wilson intervals,
 * word counts, perplexity figures, exact-match normalisation, answer extraction), the task
 * loaders (native and public formats; malformed files name file and line), the sliding windows
 * (every token scored once with enough context), the perturbations, and on the GPU the batched
 * scorer: right-padded requests of different lengths, B per forward, give the log-likelihoods and
 * greedy flags of a one-sequence forward's logits (log-softmax on the host in double).
 * VKLM_TEST_GPU: also under the baseline limits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "testutil.h"

static vt_env env;
#define EXPECT(c, ...) vt_expect(&env, (c), __VA_ARGS__)
static int near(double a, double b, double tol) { return fabs(a - b) <= tol * (1 + fabs(b)); }

static void test_mc(void) {
  vklm_mc_score s;
  const char *c1[] = {"ab", "abcdef"};
  double l1[] = {-4, -6};
  vklm_eval_mc_score(l1, c1, 2, 1, &s);
  EXPECT(s.pred == 0 && s.pred_norm == 1 && s.acc == 0 && s.acc_norm == 1 && s.acc_bytes == 1,
         "mc: -4/2 < -6/6: acc picks 0, acc_norm and acc_bytes pick 1 (%d %d %d)", s.pred,
         s.pred_norm, s.pred_bytes);
  const char *c2[] = {"\xc3\xa9\xc3\xa9", "ab"}; /* "éé": 2 characters, 4 bytes */
  double l2[] = {-4.4, -3};
  vklm_eval_mc_score(l2, c2, 2, 0, &s);
  EXPECT(s.pred == 1 && s.pred_norm == 1 && s.pred_bytes == 0 && s.acc_bytes == 1 && s.acc_norm == 0,
         "mc: UTF-8 choice: per char -2.2 < -1.5, per byte -1.1 > -1.5 (%d %d %d)", s.pred,
         s.pred_norm, s.pred_bytes);
  EXPECT(vklm_eval_utf8_chars("h\xc3\xa9llo \xe2\x82\xac") == 7, "utf8: 'héllo €' has 7 characters");
  const char *c3[] = {"x", "y", "z"};
  double l3[] = {-1, -0.5, -0.5};
  vklm_eval_mc_score(l3, c3, 3, 2, &s);
  EXPECT(s.pred == 1 && s.acc == 0, "mc: a tie goes to the first maximum (%d)", s.pred);
  const char *c4[] = {"", "x"};
  double l4[] = {0, -0.5};
  vklm_eval_mc_score(l4, c4, 2, 0, &s);
  EXPECT(s.pred == 0 && s.pred_norm == 0 && s.pred_bytes == 0 && s.acc == 1,
         "mc: an empty continuation has ll 0 and divides by 1");
}

static void test_aggregates(void) {
  double x[] = {1, 0, 1, 1}, m, se, lo, hi;
  vklm_eval_mean_stderr(x, 4, &m, &se);
  EXPECT(near(m, 0.75, 1e-12) && near(se, 0.25, 1e-12), "mean 0.75, stderr sqrt(0.25/4) = 0.25 (%g %g)", m, se);
  vklm_eval_mean_stderr(x, 1, &m, &se);
  EXPECT(se == 0, "stderr of one item is 0");
  vklm_eval_wilson(5, 10, &lo, &hi);
  EXPECT(near(lo, 0.236593, 1e-5) && near(hi, 0.763407, 1e-5), "Wilson 5/10: [%.6f, %.6f]", lo, hi);
  vklm_eval_wilson(0, 10, &lo, &hi);
  EXPECT(lo == 0 && near(hi, 0.277532, 1e-5), "Wilson 0/10: [%.6f, %.6f]", lo, hi);
  EXPECT(vklm_eval_count_words("a b  c") == 3 && vklm_eval_count_words(" a") == 2 &&
         vklm_eval_count_words("") == 1 && vklm_eval_count_words("a\n\tb ") == 3,
         "words as len(re.split(r'\\s+', text))");
  vklm_ppl p = {.ll = -10, .tokens = 5, .words = 2, .bytes = 10};
  vklm_eval_ppl_finish(&p);
  EXPECT(near(p.token_ppl, exp(2), 1e-12) && near(p.word_ppl, exp(5), 1e-12) &&
         near(p.byte_ppl, exp(1), 1e-12) && near(p.bits_per_byte, 1 / log(2), 1e-12),
         "perplexities e^2, e^5, e^1, bits per byte 1/ln 2");
  char *n1 = vklm_eval_normalize("  The  Cat, sat!\n"), *n2 = vklm_eval_normalize("An apple a day");
  EXPECT(n1 && !strcmp(n1, "cat sat") && n2 && !strcmp(n2, "apple day"), "normalise: '%s' '%s'",
         n1 ? n1 : "", n2 ? n2 : "");
  free(n1), free(n2);
  char *a = NULL, err[256];
  EXPECT(!vklm_eval_extract("  42\nmore", "\n", NULL, &a, err, sizeof err) && a && !strcmp(a, "42"),
         "extract: up to the stop string, trimmed");
  free(a);
  EXPECT(!vklm_eval_extract("so the answer is 7.", "\n", "answer is (\\d+)", &a, err, sizeof err) &&
         a && !strcmp(a, "7"), "extract: the regex's first group");
  free(a);
  EXPECT(!vklm_eval_extract("nothing", "\n", "answer is (\\d+)", &a, err, sizeof err) && !a,
         "extract: no match gives no answer");
  EXPECT(vklm_eval_extract("x", "\n", "(", &a, err, sizeof err) == -1 && strstr(err, "regex"),
         "extract: a bad regex is an error: %s", err);
}

static void expect_error(const char *text, const char *want, const char *what) {
  vklm_eval_task *t = NULL;
  char err[512] = "";
  int r = vklm_eval_task_parse("bad.jsonl", text, NULL, &t, err, sizeof err);
  EXPECT(r == -1 && !t && strstr(err, want), "%s: '%s'", what, err);
  vklm_eval_task_free(t);
}

static void test_tasks(void) {
  expect_error("{\"context\": \"a\", \"choices\": [\"x\"], \"gold\": 0}\n{\"context\": \"b\", \"gold\": 0}\n",
               "bad.jsonl:2: missing array field \"choices\"", "missing field");
  expect_error("{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"gold\": 0}\n\n{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"gold\": 2}\n",
               "bad.jsonl:3: gold index 2 is out of range for 2 choices", "gold out of range");
  expect_error("{\"context\": \"a\", \"choices\": [], \"gold\": 0}\n", "bad.jsonl:1:", "zero choices");
  expect_error("{\"context\": \"a\", \"choices\": [\"x\"], \"gold\": 0}\nnot json\n", "bad.jsonl:2: not a JSON object", "bad JSON");
  expect_error("{\"prompt\": \"q\"}\n", "bad.jsonl:1: missing field \"answer\"", "generation without answer");
  expect_error("", "no items", "empty file");
  expect_error("{\"foo\": 1}\n", "bad.jsonl:1: cannot tell the format", "unknown fields");
  vklm_eval_task *t = NULL;
  char err[512];
  const char *hs = "{\"activity_label\": \"Baking\", \"ctx_a\": \"She mixes flour.\", \"ctx_b\": \"then she\", "
                   "\"endings\": [\"bakes it [title] now.\", \" sings [title]\"], \"label\": \"0\"}\n";
  int r = vklm_eval_task_parse("hs.jsonl", hs, NULL, &t, err, sizeof err);
  EXPECT(!r && t->kind == VKLM_TASK_MC && !strcmp(t->items[0].context, "Baking: She mixes flour. Then she") &&
         !strcmp(t->items[0].choices[0], "bakes it. now.") && !strcmp(t->items[0].choices[1], "sings. ") &&
         t->items[0].gold == 0,
         "HellaSwag as the harness prepares it: '%s' / '%s'", r ? err : t->items[0].context,
         r ? "" : t->items[0].choices[0]);
  vklm_eval_task_free(t);
  const char *arc = "{\"question\": \"Which is hot?\", \"choices\": {\"text\": [\"ice\", \"fire\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"B\"}\n"
                    "{\"question\": {\"stem\": \"Q2\", \"choices\": [{\"text\": \"x\", \"label\": \"1\"}, {\"text\": \"y\", \"label\": \"2\"}]}, \"answerKey\": \"2\"}\n";
  r = vklm_eval_task_parse("arc.jsonl", arc, NULL, &t, err, sizeof err);
  EXPECT(!r && t->n == 2 && !strcmp(t->items[0].context, "Question: Which is hot?\nAnswer:") &&
         t->items[0].gold == 1 && t->items[1].gold == 1 && !strcmp(t->items[1].choices[0], "x"),
         "ARC (HF and AI2 layouts) %s", r ? err : "");
  vklm_eval_task_free(t);
  r = vklm_eval_task_parse("piqa.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 1}\n", NULL, &t, err, sizeof err);
  EXPECT(!r && t->items[0].gold == 1 && !strcmp(t->items[0].context, "Question: g\nAnswer:"), "PIQA %s", r ? err : "");
  vklm_eval_task_free(t);
  r = vklm_eval_task_parse("l.jsonl", "{\"text\": \"the cat sat on the mat\"}\n", "lambada", &t, err, sizeof err);
  EXPECT(!r && t->greedy && !strcmp(t->items[0].context, "the cat sat on the") &&
         !strcmp(t->items[0].choices[0], "mat"), "LAMBADA: the last word is the target %s", r ? err : "");
  vklm_eval_task_free(t);
  r = vklm_eval_task_parse("c.jsonl", "{\"sent_more\": \"s\", \"sent_less\": \"a\", \"bias_type\": \"age\"}\n", NULL, &t, err, sizeof err);
  EXPECT(!r && t->kind == VKLM_TASK_BIAS && !strcmp(t->items[0].category, "age"), "CrowS-Pairs fields %s", r ? err : "");
  vklm_eval_task_free(t);
  for (uint32_t i = 0; i < vklm_eval_builtin_count(); i++) {
    r = vklm_eval_task_load(vklm_eval_builtin_name(i), &t, err, sizeof err);
    EXPECT(!r && t->n > 0, "built-in task %s loads (%u items) %s", vklm_eval_builtin_name(i), r ? 0 : t->n, r ? err : "");
    vklm_eval_task_free(t);
  }
}

static void test_windows_perturb(void) {
  uint32_t b[64], e[64], s[64];
  int ok = 1;
  for (uint32_t n = 2; n < 40; n++)
    for (uint32_t ctx = 1; ctx < 9; ctx++)
      for (uint32_t st = 1; st <= ctx; st++) {
        uint32_t k = vklm_eval_windows(n, ctx, st, b, e, s, 64), seen[64] = {0};
        for (uint32_t w = 0; w < k; w++) {
          ok &= e[w] - b[w] <= ctx && s[w] >= b[w];
          for (uint32_t j = s[w] + 1; j <= e[w]; j++) {
            seen[j]++;
            ok &= b[w] == 0 || j - b[w] >= ctx - st; /* context kept */
          }
        }
        for (uint32_t j = 1; j < n; j++) ok &= seen[j] == 1;
      }
  EXPECT(ok, "sliding windows: every token scored once, windows within ctx, >= ctx-stride context");
  uint32_t k = vklm_eval_windows(10, 4, 2, b, e, s, 64);
  EXPECT(k == 4 && b[1] == 2 && e[1] == 6 && s[1] == 4 && e[3] == 9,
         "windows(10, ctx 4, stride 2): [0,4) [2,6) [4,8) [6,9) scoring 1-4, 5-6, 7-8, 9");
  char *a = vklm_perturb_text(VKLM_PERTURB_TYPO, "the quick brown foxes jumped over lazy dogs today", 3);
  char *b2 = vklm_perturb_text(VKLM_PERTURB_TYPO, "the quick brown foxes jumped over lazy dogs today", 3);
  EXPECT(a && b2 && !strcmp(a, b2) && strlen(a) == 49, "typo: deterministic, same length: '%s'", a ? a : "");
  free(a), free(b2);
  a = vklm_perturb_text(VKLM_PERTURB_CASE, "Abc d", 0);
  EXPECT(a && !strcmp(a, "ABC D"), "case: upper");
  free(a);
  a = vklm_perturb_text(VKLM_PERTURB_SPACE, "a b", 0);
  EXPECT(a && !strcmp(a, "a  b"), "whitespace: doubled");
  free(a);
  vklm_eval_task *t = NULL;
  char err[256];
  vklm_eval_task_parse("o.jsonl", "{\"context\": \"c\", \"choices\": [\"x\", \"y\", \"z\"], \"gold\": 2}\n"
                       "{\"context\": \"d\", \"choices\": [\"u\", \"v\", \"w\"], \"gold\": 0}\n", NULL, &t, err, sizeof err);
  vklm_eval_task *v = t ? vklm_eval_task_variant(t, VKLM_PERTURB_ORDER, 0, 1) : NULL;
  EXPECT(v && v->items[0].gold == 0 && !strcmp(v->items[0].choices[0], "z") && v->items[1].gold == 1,
         "order: choices rotated, gold follows");
  vklm_eval_task_free(v);
  v = t ? vklm_eval_task_variant(t, VKLM_PERTURB_NONE, 1, 1) : NULL;
  EXPECT(v && !strcmp(v->items[0].context, "d u\n\nc"), "one shot: the other item solved, then the prompt: '%s'",
         v ? v->items[0].context : "");
  vklm_eval_task_free(v);
  vklm_eval_task_free(t);
}

/* ---- GPU: the batched scorer against a one-sequence forward --------------------------------- */
static const float *g_params;
static vklm_status flat_tensor(void *user, const vklm_param_info *info, vklm_model_tensor *out,
                               char *err, size_t errlen) {
  (void)user, (void)err, (void)errlen;
  out->data = g_params + info->offset, out->dtype = VKLM_DTYPE_F32;
  return VKLM_OK;
}

static void test_scorer(void) {
  vklm_model_config cfg;
  vklm_model_config_preset("gpt2-tiny", &cfg);
  uint32_t V = cfg.vocab_size, T = 20;
  vklm_model *ref = NULL;
  vt_ok(&env, vklm_model_create(env.ctx, &cfg, 1, T, VKLM_OBJ_CAUSAL, &ref), "create");
  vt_ok(&env, vklm_model_init(ref, 5), "init");
  uint64_t np = vklm_model_num_params(ref);
  float *params = malloc(np * sizeof(float)), *logits = malloc((size_t)T * V * sizeof(float));
  vt_ok(&env, vklm_model_get_params(ref, params), "params");
  g_params = params;
  enum { NR = 7 };
  uint32_t lens[NR] = {21, 5, 12, 2, 17, 9, 30}, conts[NR] = {3, 1, 6, 1, 16, 0, 4};
  int32_t *toks[NR];
  vklm_eval_req rq[NR];
  double want[NR];
  int wgreedy[NR];
  for (int i = 0; i < NR; i++) {
    int *r = vt_randi(lens[i], 100 + i, 0, (int)V);
    toks[i] = (int32_t *)r;
    rq[i] = (vklm_eval_req){.tokens = toks[i], .n = lens[i], .n_cont = conts[i]};
    /* reference: the last T+1 tokens, one row */
    uint32_t start = lens[i] - 1 > T ? lens[i] - 1 - T : 0, len = lens[i] - 1 - start;
    int32_t in[64] = {0}, tg[64];
    for (uint32_t t = 0; t < T; t++) tg[t] = VKLM_IGNORE_INDEX;
    for (uint32_t t = 0; t < len; t++) in[t] = toks[i][start + t], tg[t] = toks[i][start + t + 1];
    float loss;
    vt_ok(&env, vklm_model_forward(ref, in, tg, &loss), "forward");
    vt_ok(&env, vklm_model_get_logits(ref, logits), "logits");
    double ll = 0;
    int g = 1;
    for (uint32_t t = len - (conts[i] < len ? conts[i] : len); t < len && conts[i]; t++) {
      const float *l = logits + (size_t)t * V;
      double mx = l[0], se = 0;
      uint32_t am = 0;
      for (uint32_t v = 0; v < V; v++) if (l[v] > mx) mx = l[v], am = v;
      for (uint32_t v = 0; v < V; v++) se += exp((double)l[v] - mx);
      ll += (double)l[tg[t]] - mx - log(se);
      g &= (int32_t)am == tg[t];
    }
    want[i] = ll, wgreedy[i] = g;
  }
  vklm_eval_model em = {.ctx = env.ctx, .cfg = &cfg, .get = flat_tensor, .tk = NULL, .eos = -1};
  for (int greedy = 0; greedy < 2; greedy++) {
    vklm_eval_scorer *sc = NULL;
    char err[512] = "";
    int r = vklm_eval_scorer_create(&em, 3, T, greedy, &sc, err, sizeof err);
    EXPECT(!r, "scorer created (B 3, T %u, greedy %d) %s", T, greedy, err);
    if (r) continue;
    r = vklm_eval_score(sc, rq, NR, NULL, err, sizeof err);
    EXPECT(!r, "scored %d requests %s", NR, err);
    double worst = 0;
    int gok = 1;
    for (int i = 0; i < NR; i++) {
      double rel = fabs(rq[i].ll - want[i]) / (fabs(want[i]) + 1e-6);
      if (conts[i] == 0) rel = fabs(rq[i].ll);
      worst = rel > worst ? rel : worst;
      if (greedy) gok &= rq[i].greedy == wgreedy[i] || conts[i] == 0;
    }
    EXPECT(worst < 1e-4, "batched log-likelihoods (7 requests, lengths 2..30, truncation, an empty "
           "continuation) equal a one-row forward: worst rel %.2e", worst);
    if (greedy) EXPECT(gok, "greedy flags match the host argmax");
    vklm_eval_scorer_destroy(sc);
  }
  for (int i = 0; i < NR; i++) free(toks[i]);
  free(params), free(logits);
  vklm_model_destroy(ref);
}

int main(void) {
  vt_init(&env, "test_eval");
  test_mc();
  test_aggregates();
  test_tasks();
  test_windows_perturb();
  test_scorer();
  return vt_finish(&env);
}

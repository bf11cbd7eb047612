/* `vklm data classifier`: train the learned document filter (engine/data/classifier.h) and score
 * documents with it; and the loading helper of `vklm data prepare --classifier`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "app_util.h"
#include "data/buf.h"
#include "data/classifier.h"
#include "data_cmds.h"
#include "flags.h"
#include "io/file.h"
#include "io/json.h"


int data_classifier_open(const vklm_config *cfg, const char *dir, uint32_t B, vklm_context **ctx,
                         struct vklm_classifier **out) {
  char err[1024] = "";
  *out = NULL;
  if (!(*ctx = app_context(cfg))) return 1;
  if (vklm_classifier_load(*ctx, dir, B, out, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm data: classifier %s: %s\n", dir, err);
    return 1;
  }
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_metrics(const char *what, const vklm_classifier_metrics *m) {
  printf("%-9s %6llu docs  loss %.4f  accuracy %.4f  precision %.4f  recall %.4f  "
         "(tp %llu fp %llu tn %llu fn %llu)\n",
         what, (unsigned long long)m->n, m->loss, m->accuracy, m->precision, m->recall,
         (unsigned long long)m->tp, (unsigned long long)m->fp, (unsigned long long)m->tn,
         (unsigned long long)m->fn);
}

static int cmd_train(int argc, char **argv, vklm_config *cfg) {
  vklm_classifier_train_opts o;
  vklm_classifier_train_default(&o);
  o.progress = isatty(2);
  int quiet = 0;
  double lr = o.lr, min_lr = o.min_lr, wd = o.weight_decay, clip = o.grad_clip;
  int T = (int)o.T, B = (int)o.B, L = (int)o.layers, NH = (int)o.heads, C = (int)o.embd;
  int epochs = (int)o.epochs, steps = 0, warmup = (int)o.warmup;
  const app_flag fl[] = {
      AF_STRING("--data", NULL, &o.data, "S", "labelled JSONL: {\"text\": ..., \"label\": 0|1} (required)"),
      AF_STRING("--tokenizer", "-t", &o.tokenizer, "S", "tokenizer.json (required; needs <|endoftext|>)"),
      AF_STRING("--out", "-o", &o.out_dir, "DIR", "output directory (out-classifier)"),
      AF_STRING("--init", NULL, &o.init, "S", "start from this checkpoint (same vocabulary) instead of a new model"),
      AF_FLAG("--seq", "-T", AF_I32, &T, 2, 65536, "N", "tokens per document, the rest cut (64)"),
      AF_FLAG("--batch", "-b", AF_I32, &B, 1, 1024, "N", "documents per batch (16)"),
      AF_FLAG("--layers", NULL, AF_I32, &L, 1, 64, "N", "layers of a new model (2)"),
      AF_FLAG("--heads", NULL, AF_I32, &NH, 1, 64, "N", "attention heads of a new model (2)"),
      AF_FLAG("--embd", NULL, AF_I32, &C, 1, 4096, "N", "width of a new model (64; a multiple of --heads)"),
      AF_FLAG("--epochs", NULL, AF_I32, &epochs, 1, 1000, "N", "passes over the training documents (4)"),
      AF_FLAG("--steps", NULL, AF_I32, &steps, 0, 1e7, "N", "optimizer steps (0: from --epochs)"),
      AF_FLAG("--lr", NULL, AF_F64, &lr, 1e-9, 1, "X", "peak learning rate (1e-3)"),
      AF_FLAG("--min-lr", NULL, AF_F64, &min_lr, 0, 1, "X", "final learning rate (1e-4)"),
      AF_FLAG("--warmup", NULL, AF_I32, &warmup, 0, 1e7, "N", "warmup steps (10)"),
      AF_FLAG("--weight-decay", NULL, AF_F64, &wd, 0, 10, "X", "AdamW weight decay (0)"),
      AF_FLAG("--grad-clip", NULL, AF_F64, &clip, 0, 1e6, "X", "global gradient norm clip (1; 0: off)"),
      AF_FLAG("--val-fraction", NULL, AF_F64, &o.val_fraction, 0, 1, "X", "held-out share of the documents (0.2)"),
      AF_FLAG("--seed", NULL, AF_U64, &o.seed, 0, 18446744073709551615.0, "N", "split, order and initialisation seed (1)"),
      AF_FLAG("--quiet", NULL, AF_ON, &quiet, 0, 0, NULL, "no progress, no summary"),
      AF_LAST};
  const char **pos = calloc((size_t)argc + 1, sizeof *pos);
  int npos = 0;
  if (!pos) return 1;
  const app_command cmd = {"data classifier train", "data classifier train --data "
                           "labelled.jsonl -t tokenizer.json -o DIR [flags]", NULL, fl, 0, 0, 1};
  int rc = app_flags_parse(&cmd, argc, argv, cfg, pos, &npos);
  free(pos);
  if (!rc && (!o.data || !o.tokenizer))
    rc = app_flags_missing(&cmd, "give --data FILE and -t TOKENIZER");
  if (rc) return rc == 1 ? 0 : rc;
  if (C % NH) {
    fprintf(stderr, "vklm data classifier train: --embd %d is not a multiple of --heads %d\n", C, NH);
    return 2;
  }
  o.T = (uint32_t)T, o.B = (uint32_t)B, o.layers = (uint32_t)L, o.heads = (uint32_t)NH;
  o.embd = (uint32_t)C, o.epochs = (uint32_t)epochs, o.steps = (uint32_t)steps;
  o.warmup = (uint32_t)warmup;
  o.lr = (float)lr, o.min_lr = (float)min_lr, o.weight_decay = (float)wd, o.grad_clip = (float)clip;
  if (quiet) o.progress = 0;
  vklm_context *ctx = app_context(cfg);
  if (!ctx) return 1;
  vklm_classifier_result res;
  char err[1024] = "";
  vklm_status st = vklm_classifier_train(ctx, &o, &res, err, sizeof err);
  if (st != VKLM_OK) {
    fprintf(stderr, "vklm data classifier train: %s\n", err);
    vklm_context_destroy(ctx);
    return 1;
  }
  if (!quiet) {
    printf("classifier: %u steps in %.1f s, loss %.4f -> %.4f; %llu train / %llu held-out docs "
           "(%llu cut to T=%u tokens)\n",
           res.steps, res.seconds, res.first_loss, res.last_loss,
           (unsigned long long)res.train_docs, (unsigned long long)res.val_docs,
           (unsigned long long)res.truncated, o.T);
    print_metrics("train", &res.train);
    print_metrics("held-out", &res.val);
    printf("scoring: %.1f docs/s; wrote %s/model.bin, tokenizer.json, classifier.json\n",
           res.docs_per_s, o.out_dir);
  }
  vklm_context_destroy(ctx);
  return 0;
}

/* `score -m DIR FILE.jsonl`: one line per input line: {"score", "value"[, "tokens"]}. */
static int cmd_score(int argc, char **argv, vklm_config *cfg) {
  const char *dir = NULL, *field = "text";
  int B = 32, ids = 0;
  const app_flag fl[] = {
      AF_STRING("--model", "-m", &dir, "S", "classifier directory (required)"),
      AF_FLAG("--batch", "-b", AF_I32, &B, 1, 4096, "N", "documents per GPU batch (32)"),
      AF_STRING("--text-field", NULL, &field, "S", "JSONL field holding the text (text)"),
      AF_FLAG("--tokens", NULL, AF_ON, &ids, 0, 0, NULL, "also print the token row each document is scored on"),
      AF_LAST};
  const char **pos = calloc((size_t)argc + 1, sizeof *pos);
  int npos = 0;
  if (!pos) return 1;
  const app_command cmd = {"data classifier score", "data classifier score -m DIR docs.jsonl   "
                           "(JSONL lines to stdout)", NULL, fl, 0, 1, 1};
  int rc = app_flags_parse(&cmd, argc, argv, cfg, pos, &npos);
  if (!rc && (!dir || npos != 1)) rc = app_flags_missing(&cmd, "give -m DIR and one docs.jsonl");
  const char *input = pos[0];
  free(pos);
  if (rc) return rc == 1 ? 0 : rc;
  char why[512];
  FILE *in = vklm_file_check(input, why, sizeof why) == VKLM_OK ? fopen(input, "r") : NULL;
  if (!in) {
    fprintf(stderr, "vklm data classifier score: %s\n", why[0] ? why : "cannot read the input");
    return 1;
  }
  char **texts = NULL;
  size_t *lens = NULL, n = 0, cap = 0, lcap = 0;
  char *line = NULL;
  long no = 0;
  while (getline(&line, &lcap, in) > 0) {
    no++;
    cJSON *j = vklm_json_has_nul(line, strlen(line)) ? NULL : cJSON_Parse(line);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(j, field);
    if (!cJSON_IsString(t)) {
      fprintf(stderr, "vklm data classifier score: %s:%ld: no string \"%s\"\n", input, no, field);
      cJSON_Delete(j);
      rc = 1;
      break;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      texts = realloc(texts, cap * sizeof *texts);
      lens = realloc(lens, cap * sizeof *lens);
    }
    texts[n] = strdup(t->valuestring);
    lens[n++] = strlen(t->valuestring);
    cJSON_Delete(j);
  }
  free(line);
  fclose(in);
  vklm_context *ctx = NULL;
  vklm_classifier *c = NULL;
  float *p = rc ? NULL : malloc((n + 1) * sizeof *p), *v = rc ? NULL : malloc((n + 1) * sizeof *v);
  char err[1024] = "";
  if (!rc && data_classifier_open(cfg, dir, (uint32_t)B, &ctx, &c)) rc = 1;
  double t0 = now();
  if (!rc && vklm_classifier_score(c, (const char *const *)texts, lens, (uint32_t)n, p, v, err,
                                   sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm data classifier score: %s\n", err);
    rc = 1;
  }
  double dt = now() - t0;
  int32_t *row = c ? malloc(vklm_classifier_seq(c) * sizeof *row) : NULL;
  for (size_t i = 0; !rc && i < n; i++) {
    printf("{\"score\": %.9g, \"value\": %.9g", p[i], v[i]);
    uint32_t len = 0;
    if (ids && row && !vklm_classifier_encode(c, texts[i], lens[i], row, &len)) {
      printf(", \"tokens\": [");
      for (uint32_t k = 0; k < len; k++)
        printf("%s%d", k ? ", " : "", row[k]);
      printf("]");
    }
    printf("}\n");
  }
  if (!rc) fprintf(stderr, "scored %zu documents in %.2f s (%.1f docs/s)\n", n, dt, dt > 0 ? n / dt : 0.0);
  free(row);
  for (size_t i = 0; i < n; i++)
    free(texts[i]);
  free(texts), free(lens), free(p), free(v);
  vklm_classifier_destroy(c);
  vklm_context_destroy(ctx);
  return rc;
}

int data_classifier_cmd(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1, &cfg);
  if (argc >= 2 && !strcmp(argv[1], "score")) return cmd_score(argc - 1, argv + 1, &cfg);
  FILE *f = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr;
  fprintf(f, "usage: vklm data classifier train --data labelled.jsonl -t tokenizer.json -o DIR [flags]\n"
             "       vklm data classifier score -m DIR docs.jsonl\n");
  return f == stdout ? 0 : 2;
}

/* Tests of `vklm data mix` (engine/data/mix.c): target token shares reached within a tolerance
 * (down- and up-sampling, the max-repeat cap lowering the output size), reproducibility by seed
 * (identical mix.jsonl and shards; another seed differs), the shards readable and holding the
 * mixture's tokens, keys by source and by language, and bad weights / a weighted key without
 * documents / unreadable input refused before anything is written. CPU only. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/mix.h"
#include "data/shard.h"
#include "text/tokenizer.h"

#include "check_util.h"

static char tmpdir[256], prepared[512], tok[512];
static uint64_t rng = 0x1234567887654321ULL;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static const char *const words[] = {"river", "village", "people", "history", "market", "winter",
                                    "summer", "garden", "library", "music", "language", "science",
                                    "bridge", "harbor", "forest", "morning", "the", "of", "and"};

/* web: many short documents, code: fewer longer ones, books: few long ones; lang tags too */
static void write_prepared(void) {
  snprintf(prepared, sizeof prepared, "%s/prepared.jsonl", tmpdir);
  FILE *f = fopen(prepared, "w");
  struct {
    const char *name;
    int docs, lo, hi;
  } src[] = {{"web", 600, 10, 60}, {"code", 120, 40, 150}, {"books", 40, 100, 300}};
  int total = 0;
  for (int s = 0; s < 3; s++)
    total += src[s].docs;
  int left[3] = {src[0].docs, src[1].docs, src[2].docs};
  for (int i = 0; i < total; i++) { /* interleaved, as a real prepared file would be */
    int s = (int)(rnd() % 3);
    while (!left[s])
      s = (s + 1) % 3;
    left[s]--;
    int nw = src[s].lo + (int)(rnd() % (unsigned)(src[s].hi - src[s].lo));
    fprintf(f, "{\"text\": \"%s %d:", src[s].name, i);
    for (int w = 0; w < nw; w++)
      fprintf(f, " %s", words[rnd() % (sizeof words / sizeof *words)]);
    fprintf(f, ".\", \"lang\": \"%s\", \"source\": \"%s\"}\n", i % 4 ? "en" : "de", src[s].name);
  }
  fclose(f);
}

static int train_tokenizer(void) {
  char err[256] = "";
  snprintf(tok, sizeof tok, "%s/tok.json", tmpdir);
  const char *specials[] = {"<|endoftext|>"};
  vklm_bpe_train_config cfg = {.vocab_size = 300, .specials = specials, .n_specials = 1};
  vklm_bpe_trainer *tr = NULL;
  vklm_tokenizer *tk = NULL;
  int rc = vklm_bpe_trainer_create(&cfg, &tr, err, sizeof err);
  if (!rc) rc = vklm_bpe_trainer_feed_file(tr, prepared, err, sizeof err);
  if (!rc) rc = vklm_bpe_trainer_finish(tr, &tk, err, sizeof err);
  vklm_bpe_trainer_destroy(tr);
  if (!rc) rc = vklm_tokenizer_save_json(tk, tok, err, sizeof err);
  vklm_tokenizer_destroy(tk);
  expect(rc == 0, "trained a 300-token BPE %s", err);
  return rc;
}

static int run(const char *out, const char *by, const char *weights, uint64_t seed, double rep,
               vklm_mix_stats *st, char *err) {
  vklm_mix_opts o;
  vklm_mix_default(&o);
  const char *in[] = {prepared};
  o.inputs = in;
  o.ninputs = 1;
  o.outdir = out;
  o.tokenizer = tok;
  o.by = by;
  o.weights = weights;
  o.seed = seed;
  o.max_repeat = rep;
  o.shard_tokens = 20000;
  o.val_fraction = 0.05;
  o.threads = 2;
  err[0] = 0;
  return vklm_mix_run(&o, st, err, 512);
}

/* Worst |share - target| over the weighted keys; also the most copies of one document. */
static double worst(const vklm_mix_stats *st, unsigned *copies) {
  double w = 0;
  *copies = 0;
  for (int k = 0; k < st->nkeys; k++) {
    if (st->key[k].weight <= 0) continue;
    double s = (double)st->key[k].tokens_out / (double)st->tokens_out;
    w = fmax(w, fabs(s - st->key[k].weight));
    if (st->key[k].max_copies > *copies) *copies = st->key[k].max_copies;
  }
  return w;
}

static int same_file(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb) same = 0;
    if (ca == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

static uint64_t shard_tokens(const char *dir, const char *split) {
  uint64_t n = 0;
  for (int i = 0; i < 100; i++) {
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/%s_%06d.bin", dir, split, i);
    vklm_shard *s = NULL;
    if (access(path, F_OK) || vklm_shard_open(path, &s, err, sizeof err)) break;
    n += vklm_shard_count(s);
    vklm_shard_close(s);
  }
  return n;
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vklm-test-data-mix-XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  write_prepared();
  if (train_tokenizer()) return 1;
  vklm_mix_stats *st = calloc(1, sizeof *st), *st2 = calloc(1, sizeof *st2);
  char err[512], a[512], b[512], c[512], pa[600], pb[600];
  snprintf(a, sizeof a, "%s/mix-a", tmpdir);
  snprintf(b, sizeof b, "%s/mix-b", tmpdir);
  snprintf(c, sizeof c, "%s/mix-c", tmpdir);

  /* by source: web down, code and books up */
  int rc = run(a, "source", "web=0.5,code=0.3,books=0.2", 7, 4, st, err);
  unsigned copies;
  double w = rc ? 1 : worst(st, &copies);
  if (!rc) vklm_mix_stats_print(st, stdout);
  expect(rc == 0 && w <= 0.02 && copies <= 4,
         "mix by source: worst share error %.4f (tolerance 0.02), at most %u copies %s", w,
         rc ? 0 : copies, err);
  uint64_t tr = shard_tokens(a, "train"), va = shard_tokens(a, "val");
  expect(!rc && tr + va == st->tokens_out && va > 0,
         "mix: shards hold %llu + %llu tokens = the mixture's %llu", (unsigned long long)tr,
         (unsigned long long)va, (unsigned long long)st->tokens_out);
  struct stat sb;
  snprintf(pa, sizeof pa, "%s/mixture.json", a);
  snprintf(pb, sizeof pb, "%s/mixture.png", a);
  expect(!stat(pa, &sb) && sb.st_size > 0 && !stat(pb, &sb) && sb.st_size > 0,
         "mix: mixture.json and mixture.png written");

  /* reproducible by seed */
  rc = run(b, "source", "web=0.5,code=0.3,books=0.2", 7, 4, st2, err);
  snprintf(pa, sizeof pa, "%s/mix.jsonl", a);
  snprintf(pb, sizeof pb, "%s/mix.jsonl", b);
  char sa[600], sbp[600];
  snprintf(sa, sizeof sa, "%s/train_000000.bin", a);
  snprintf(sbp, sizeof sbp, "%s/train_000000.bin", b);
  expect(rc == 0 && same_file(pa, pb) && same_file(sa, sbp),
         "mix: the same seed gives the same mix.jsonl and shards");
  rc = run(c, "source", "web=0.5,code=0.3,books=0.2", 8, 4, st2, err);
  snprintf(pb, sizeof pb, "%s/mix.jsonl", c);
  expect(rc == 0 && !same_file(pa, pb) && worst(st2, &copies) <= 0.02,
         "mix: another seed gives another sample, on target too");

  /* the cap binds: books at 0.6 would need ~8x its documents; max_repeat 2 lowers the total */
  snprintf(c, sizeof c, "%s/mix-cap", tmpdir);
  rc = run(c, "source", "web=0.2,code=0.2,books=0.6", 3, 2, st2, err);
  w = rc ? 1 : worst(st2, &copies);
  expect(rc == 0 && copies <= 2 && w <= 0.02 && st2->tokens_out < st->tokens_out,
         "mix: max-repeat 2 holds (at most %u copies), shares within 0.02 (%.4f), output "
         "lowered to %llu tokens %s", rc ? 0 : copies, w, (unsigned long long)st2->tokens_out, err);

  /* by language; a key with weight 0 left out */
  snprintf(c, sizeof c, "%s/mix-lang", tmpdir);
  rc = run(c, "lang", "en=0.5,de=0.5", 1, 4, st2, err);
  w = rc ? 1 : worst(st2, &copies);
  expect(rc == 0 && w <= 0.02, "mix by lang: en/de 50/50 within 0.02 (%.4f) %s", w, err);
  snprintf(c, sizeof c, "%s/mix-zero", tmpdir);
  rc = run(c, "source", "web=1,code=0", 1, 4, st2, err);
  int only_web = !rc;
  for (int k = 0; !rc && k < st2->nkeys; k++)
    if (strcmp(st2->key[k].name, "web")) only_web &= st2->key[k].docs_out == 0;
  expect(only_web, "mix: weight 0 and unlisted keys are left out");

  /* bad input: refused before anything is written */
  const char *bad[] = {"web=0,code=0", "web=-1", "web=abc", "web=nan", "web=0.5,web=0.5",
                       "=0.5", "web", "web=inf"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(c, sizeof c, "%s/mix-bad-%zu", tmpdir, i);
    rc = run(c, "source", bad[i], 1, 4, st2, err);
    expect(rc == -1 && stat(c, &sb) != 0, "mix: weights '%s' refused: %s", bad[i], err);
  }
  snprintf(c, sizeof c, "%s/mix-empty-source", tmpdir);
  rc = run(c, "source", "web=0.5,news=0.5", 1, 4, st2, err);
  expect(rc == -1 && strstr(err, "news") && stat(c, &sb) != 0,
         "mix: a weighted source with no documents refused, nothing written: %s", err);
  rc = run(c, "genre", "web=1", 1, 4, st2, err);
  expect(rc == -1 && strstr(err, "--by"), "mix: unknown --by refused: %s", err);
  rc = run(c, "source", "web=1", 1, 0.5, st2, err);
  expect(rc == -1 && strstr(err, "max-repeat"), "mix: max-repeat < 1 refused: %s", err);

  free(st);
  free(st2);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd)) printf("could not remove %s\n", tmpdir);
  printf("%d/%d checks passed\n", checks - failures, checks);
  return failures ? 1 : 0;
}

/* `vklm data mix` (see mix.h): count, choose, shuffle through bucket files, tokenize. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "data/buf.h"
#include "data/mix.h"
#include "data/reader.h"
#include "data/steps.h"
#include "text/tokenizer.h"

enum { NBUCKETS = 64 };

void vklm_mix_default(vklm_mix_opts *o) {
  memset(o, 0, sizeof *o);
  o->by = "source";
  o->seed = 1;
  o->max_repeat = 4;
  o->shard_tokens = 100000000;
  o->val_fraction = 0.01;
  o->eot = "<|endoftext|>";
  o->plot = 1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int key_find(const vklm_mix_stats *st, const char *name, size_t n) {
  for (int i = 0; i < st->nkeys; i++)
    if (strlen(st->key[i].name) == n && !memcmp(st->key[i].name, name, n)) return i;
  return -1;
}

int vklm_mix_parse_weights(const char *s, vklm_mix_stats *st, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  if (!s || !*s) return vklm_data_fail(err, errlen, "mix: no weights (--weights name=w,...)");
  double sum = 0;
  for (const char *p = s; *p;) {
    size_t len = strcspn(p, ",");
    const char *eq = memchr(p, '=', len);
    if (!eq || eq == p || (size_t)(eq - p) >= sizeof st->key[0].name)
      return vklm_data_fail(err, errlen, "mix: bad weight '%.*s' (want name=number)", (int)len, p);
    size_t nl = (size_t)(eq - p);
    char num[64];
    size_t vl = len - nl - 1;
    if (!vl || vl >= sizeof num)
      return vklm_data_fail(err, errlen, "mix: bad weight '%.*s' (want name=number)", (int)len, p);
    memcpy(num, eq + 1, vl);
    num[vl] = 0;
    char *end;
    double w = strtod(num, &end);
    if (*end || end == num || !isfinite(w) || w < 0 || num[0] == '-')
      return vklm_data_fail(err, errlen, "mix: weight of '%.*s' must be a finite number >= 0, "
                                         "not '%s'", (int)nl, p, num);
    if (key_find(st, p, nl) >= 0)
      return vklm_data_fail(err, errlen, "mix: '%.*s' weighted twice", (int)nl, p);
    if (st->nkeys >= VKLM_MIX_MAX_KEYS)
      return vklm_data_fail(err, errlen, "mix: at most %d keys", VKLM_MIX_MAX_KEYS);
    vklm_mix_key *k = &st->key[st->nkeys++];
    memcpy(k->name, p, nl);
    k->name[nl] = 0;
    k->weight = w;
    sum += w;
    p += len + (p[len] == ',');
  }
  if (!(sum > 0) || !isfinite(sum))
    return vklm_data_fail(err, errlen, "mix: the weights must sum to a positive number (got %g)", sum);
  for (int i = 0; i < st->nkeys; i++)
    st->key[i].weight /= sum;
  return 0;
}

typedef struct doc {
  int16_t key; /* index into st->key; -1: untagged */
  uint16_t copies;
  uint32_t tokens; /* with the end-of-text token */
} doc;

/* Pass 1: key, bytes and tokens of every document. */
static int count(const vklm_mix_opts *o, vklm_mix_stats *st, int nweighted, doc **docs_out,
                 uint64_t *ndocs, char *err, size_t errlen) {
  vklm_tokenizer *tk = NULL;
  vklm_tokenizer_encoder *enc = NULL;
  vklm_reader *rd = NULL;
  vklm_buf text = {0}, key = {0};
  vklm_token_ids ids = {0};
  doc *d = NULL;
  uint64_t n = 0, cap = 0;
  int rc = 0;
  (void)nweighted;
  if (vklm_tokenizer_load(o->tokenizer, &tk, err, errlen)) return -1;
  if (vklm_tokenizer_encoder_create(tk, &enc) ||
      vklm_reader_create(o->inputs, o->ninputs, "text", (size_t)64 << 20, &rd)) {
    rc = vklm_data_fail(err, errlen, "mix: out of memory");
    goto done;
  }
  vklm_reader_set_meta_field(rd, o->by);
  for (;;) {
    int html, input;
    int r = vklm_reader_next_meta(rd, &text, &html, &input, &key);
    if (r < 0) {
      rc = vklm_data_fail(err, errlen, "mix: out of memory reading input");
      goto done;
    }
    if (r == 0) break;
    if (n == cap) {
      cap = cap ? 2 * cap : 4096;
      doc *q = realloc(d, cap * sizeof *q);
      if (!q) {
        rc = vklm_data_fail(err, errlen, "mix: out of memory");
        goto done;
      }
      d = q;
    }
    int k = -1;
    if (key.n) {
      k = key_find(st, key.p, key.n);
      if (k < 0 && st->nkeys < VKLM_MIX_MAX_KEYS && key.n < sizeof st->key[0].name) {
        k = st->nkeys++; /* a key present in the data without a weight: reported, not taken */
        memcpy(st->key[k].name, key.p, key.n);
        st->key[k].name[key.n] = 0;
        st->key[k].weight = 0;
      }
    }
    ids.n = 0;
    if (vklm_tokenizer_encoder_encode(enc, text.p ? text.p : "", text.n, 0, &ids) != VKLM_TOK_OK) {
      rc = vklm_data_fail(err, errlen, "mix: encoding document %" PRIu64 " failed", n);
      goto done;
    }
    d[n] = (doc){(int16_t)k, 0, (uint32_t)(ids.n + 1)};
    if (k >= 0) {
      st->key[k].docs_in++;
      st->key[k].bytes_in += text.n;
      st->key[k].tokens_in += ids.n + 1;
    } else {
      st->docs_untagged++;
    }
    n++;
    if (o->progress && n % 1000 == 0) fprintf(stderr, "\rmix: counted %" PRIu64 " docs   ", n);
  }
  if (o->progress) fprintf(stderr, "\rmix: counted %" PRIu64 " docs\n", n);
done:
  st->docs_in = n;
  vklm_buf_free(&text);
  vklm_buf_free(&key);
  vklm_token_ids_free(&ids);
  vklm_reader_destroy(rd);
  vklm_tokenizer_encoder_destroy(enc);
  vklm_tokenizer_destroy(tk);
  if (rc) {
    free(d);
    d = NULL;
  }
  *docs_out = d;
  *ndocs = n;
  return rc;
}

/* Chooses the copies of every document (doc.copies). */
static void choose(const vklm_mix_opts *o, vklm_mix_stats *st, doc *d, uint64_t n) {
  double total = 0;
  for (int k = 0; k < st->nkeys; k++)
    if (st->key[k].weight > 0) total += (double)st->key[k].tokens_in;
  if (o->total_tokens) total = (double)o->total_tokens;
  for (int k = 0; k < st->nkeys; k++) { /* no key beyond max_repeat copies of itself */
    const vklm_mix_key *x = &st->key[k];
    if (x->weight > 0 && total * x->weight > o->max_repeat * (double)x->tokens_in)
      total = o->max_repeat * (double)x->tokens_in / x->weight;
  }
  uint64_t *idx = malloc((n ? n : 1) * sizeof *idx);
  for (int k = 0; k < st->nkeys && idx; k++) {
    vklm_mix_key *x = &st->key[k];
    if (x->weight <= 0 || !x->tokens_in) continue;
    double r = total * x->weight / (double)x->tokens_in;
    uint32_t full = (uint32_t)floor(r + 1e-12);
    double rest = total * x->weight - (double)full * (double)x->tokens_in;
    uint64_t m = 0;
    for (uint64_t i = 0; i < n; i++)
      if (d[i].key == k) {
        d[i].copies = (uint16_t)full;
        idx[m++] = i;
      }
    uint64_t rs = o->seed ^ vklm_hash64(x->name, strlen(x->name), 0x6d6978);
    for (uint64_t i = m; i > 1; i--) { /* Fisher-Yates */
      uint64_t j = splitmix(&rs) % i;
      uint64_t t = idx[i - 1];
      idx[i - 1] = idx[j];
      idx[j] = t;
    }
    double acc = 0;
    for (uint64_t i = 0; i < m && rest > 0; i++) {
      doc *y = &d[idx[i]];
      if (acc + 0.5 * y->tokens > rest) continue; /* would overshoot by more than it adds */
      y->copies++;
      acc += y->tokens;
    }
  }
  free(idx);
  for (uint64_t i = 0; i < n; i++) {
    if (d[i].key < 0) continue;
    vklm_mix_key *x = &st->key[d[i].key];
    if (x->weight <= 0) {
      st->docs_unweighted++;
      st->tokens_unweighted += d[i].tokens;
      continue;
    }
    x->docs_out += d[i].copies;
    x->tokens_out += (uint64_t)d[i].copies * d[i].tokens;
    if (d[i].copies > x->max_copies) x->max_copies = d[i].copies;
    st->docs_out += d[i].copies;
    st->tokens_out += (uint64_t)d[i].copies * d[i].tokens;
  }
}

typedef struct line {
  char *s;
  size_t n;
} line;

/* Pass 2: the chosen copies into bucket files, then each bucket shuffled into the output. */
static int write_mix(const vklm_mix_opts *o, vklm_mix_stats *st, const doc *d, uint64_t n,
                     const char *path, char *err, size_t errlen) {
  FILE *bucket[NBUCKETS] = {0};
  char bpath[NBUCKETS][4200];
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  vklm_reader *rd = NULL;
  vklm_buf text = {0}, key = {0};
  FILE *out = NULL;
  line *ls = NULL;
  size_t lcap = 0;
  int rc = 0;
  for (int b = 0; b < NBUCKETS; b++) {
    snprintf(bpath[b], sizeof bpath[b], "%s/.mix-bucket-%02d-XXXXXX", o->outdir, b);
    int fd = mkstemp(bpath[b]);
    if (fd < 0 || !(bucket[b] = fdopen(fd, "w+b"))) {
      if (fd >= 0) close(fd);
      bpath[b][0] = 0;
      rc = vklm_data_fail(err, errlen, "mix: cannot create temp files in %s: %s", o->outdir,
                          strerror(errno));
      goto done;
    }
  }
  if (vklm_reader_create(o->inputs, o->ninputs, "text", (size_t)64 << 20, &rd)) {
    rc = vklm_data_fail(err, errlen, "mix: out of memory");
    goto done;
  }
  vklm_reader_set_meta_field(rd, o->by);
  uint64_t rs = o->seed * 0x2545F4914F6CDD1DULL + 17;
  for (uint64_t i = 0;; i++) {
    int html, input;
    int r = vklm_reader_next_meta(rd, &text, &html, &input, &key);
    if (r < 0) {
      rc = vklm_data_fail(err, errlen, "mix: out of memory reading input");
      goto done;
    }
    if (r == 0) break;
    if (i >= n) {
      rc = vklm_data_fail(err, errlen, "mix: the input changed while mixing");
      goto done;
    }
    if (!d[i].copies) continue;
    st->key[d[i].key].bytes_out += (uint64_t)d[i].copies * text.n;
    cJSON *j = cJSON_CreateObject();
    char *js = j && cJSON_AddStringToObject(j, "text", text.p ? text.p : "") &&
                       cJSON_AddStringToObject(j, o->by, st->key[d[i].key].name)
                   ? cJSON_PrintUnformatted(j)
                   : NULL;
    cJSON_Delete(j);
    if (!js) {
      rc = vklm_data_fail(err, errlen, "mix: out of memory");
      goto done;
    }
    for (uint32_t c = 0; c < d[i].copies && !rc; c++) {
      FILE *f = bucket[splitmix(&rs) % NBUCKETS];
      if (fputs(js, f) < 0 || fputc('\n', f) == EOF)
        rc = vklm_data_fail(err, errlen, "mix: writing temp files: %s", strerror(errno));
    }
    cJSON_free(js);
    if (rc) goto done;
  }
  if (!(out = fopen(tmp, "wb"))) {
    rc = vklm_data_fail(err, errlen, "mix: cannot create %s: %s", tmp, strerror(errno));
    goto done;
  }
  for (int b = 0; b < NBUCKETS && !rc; b++) {
    if (fflush(bucket[b]) || fseek(bucket[b], 0, SEEK_SET)) {
      rc = vklm_data_fail(err, errlen, "mix: rewinding temp files: %s", strerror(errno));
      break;
    }
    size_t nl = 0;
    char *s = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&s, &cap, bucket[b])) > 0) {
      if (nl == lcap) {
        lcap = lcap ? 2 * lcap : 1024;
        line *q = realloc(ls, lcap * sizeof *q);
        if (!q) {
          free(s);
          rc = vklm_data_fail(err, errlen, "mix: out of memory shuffling");
          break;
        }
        ls = q;
      }
      ls[nl++] = (line){s, (size_t)got};
      s = NULL;
      cap = 0;
    }
    free(s);
    for (size_t i = nl; i > 1 && !rc; i--) {
      size_t j = (size_t)(splitmix(&rs) % i);
      line t = ls[i - 1];
      ls[i - 1] = ls[j];
      ls[j] = t;
    }
    for (size_t i = 0; i < nl; i++) {
      if (!rc && fwrite(ls[i].s, 1, ls[i].n, out) != ls[i].n)
        rc = vklm_data_fail(err, errlen, "mix: writing %s: %s", tmp, strerror(errno));
      free(ls[i].s);
    }
  }
  if (!rc && (fflush(out) || fsync(fileno(out))))
    rc = vklm_data_fail(err, errlen, "mix: writing %s: %s", tmp, strerror(errno));
  if (out) fclose(out);
  out = NULL;
  if (!rc && rename(tmp, path))
    rc = vklm_data_fail(err, errlen, "mix: rename %s: %s", tmp, strerror(errno));
done:
  if (out) fclose(out);
  if (rc) unlink(tmp);
  for (int b = 0; b < NBUCKETS; b++) {
    if (bucket[b]) fclose(bucket[b]);
    if (bpath[b][0]) unlink(bpath[b]);
  }
  free(ls);
  vklm_buf_free(&text);
  vklm_buf_free(&key);
  vklm_reader_destroy(rd);
  return rc;
}

int vklm_mix_run(const vklm_mix_opts *o, vklm_mix_stats *st, char *err, size_t errlen) {
  double t0 = now();
  if (vklm_mix_parse_weights(o->weights, st, err, errlen)) return -1;
  if (!o->ninputs || !o->outdir || !o->tokenizer)
    return vklm_data_fail(err, errlen, "mix: need inputs, an output directory and a tokenizer");
  if (!o->by || (strcmp(o->by, "source") && strcmp(o->by, "lang") && strcmp(o->by, "topic")))
    return vklm_data_fail(err, errlen, "mix: --by must be source, lang or topic");
  if (!(o->max_repeat >= 1) || !isfinite(o->max_repeat) || o->max_repeat > 65535)
    return vklm_data_fail(err, errlen, "mix: --max-repeat must be in [1, 65535]");
  for (int i = 0; i < o->ninputs; i++) {
    struct stat sb;
    if (stat(o->inputs[i], &sb))
      return vklm_data_fail(err, errlen, "mix: cannot read %s: %s", o->inputs[i], strerror(errno));
  }
  int nweighted = st->nkeys;
  doc *d = NULL;
  uint64_t n = 0;
  if (count(o, st, nweighted, &d, &n, err, errlen)) return -1;
  st->count_seconds = now() - t0;
  int rc = 0;
  for (int k = 0; k < nweighted && !rc; k++)
    if (st->key[k].weight > 0 && !st->key[k].docs_in)
      rc = vklm_data_fail(err, errlen, "mix: '%s' has weight %.3g but no documents with %s "
                          "\"%s\" in the input", st->key[k].name, st->key[k].weight, o->by,
                          st->key[k].name);
  if (!rc && mkdir(o->outdir, 0777) && errno != EEXIST)
    rc = vklm_data_fail(err, errlen, "mix: cannot create %s: %s", o->outdir, strerror(errno));
  char path[4096];
  snprintf(path, sizeof path, "%s/mix.jsonl", o->outdir);
  if (!rc) {
    choose(o, st, d, n);
    if (!st->docs_out) rc = vklm_data_fail(err, errlen, "mix: nothing to write");
  }
  if (!rc) rc = write_mix(o, st, d, n, path, err, errlen);
  free(d);
  if (!rc) {
    vklm_tokenize_opts to;
    vklm_tokenize_default(&to);
    const char *in[] = {path};
    to.tokenizer = o->tokenizer;
    to.inputs = in;
    to.ninputs = 1;
    to.outdir = o->outdir;
    to.shard_tokens = o->shard_tokens;
    to.val_fraction = o->val_fraction;
    to.eot = o->eot;
    to.seed = o->seed;
    to.threads = o->threads;
    to.progress = o->progress;
    rc = vklm_tokenize_run(&to, &st->tok, err, errlen);
  }
  if (!rc && st->tok.tokens_train + st->tok.tokens_val != st->tokens_out)
    rc = vklm_data_fail(err, errlen, "mix: the shards hold %" PRIu64 " tokens, the mixture %" PRIu64,
                        st->tok.tokens_train + st->tok.tokens_val, st->tokens_out);
  st->seconds = now() - t0;
  if (!rc) {
    snprintf(path, sizeof path, "%s/mixture.json", o->outdir);
    if (vklm_mix_stats_write(st, o, path))
      rc = vklm_data_fail(err, errlen, "mix: cannot write %s", path);
  }
  if (!rc && o->plot) {
    snprintf(path, sizeof path, "%s/mixture.png", o->outdir);
    char title[128];
    snprintf(title, sizeof title, "token share by %s: before / after", o->by);
    if (vklm_mix_plot(st, title, path)) rc = vklm_data_fail(err, errlen, "mix: cannot write %s", path);
  }
  return rc;
}

static double share(uint64_t a, uint64_t total) { return total ? (double)a / (double)total : 0; }

void vklm_mix_stats_print(const vklm_mix_stats *st, FILE *f) {
  uint64_t tin = 0, din = 0, bin = 0, bout = 0;
  for (int k = 0; k < st->nkeys; k++) {
    tin += st->key[k].tokens_in;
    din += st->key[k].docs_in;
    bin += st->key[k].bytes_in;
    bout += st->key[k].bytes_out;
  }
  fprintf(f, "%-16s %7s | %9s %10s %11s %6s | %9s %10s %11s %6s %6s\n", "key", "target",
          "docs in", "MB in", "tokens in", "share", "docs out", "MB out", "tokens out", "share",
          "copies");
  for (int k = 0; k < st->nkeys; k++) {
    const vklm_mix_key *x = &st->key[k];
    fprintf(f,
            "%-16s %6.1f%% | %9" PRIu64 " %10.3f %11" PRIu64 " %5.1f%% | %9" PRIu64
            " %10.3f %11" PRIu64 " %5.1f%% %6u\n",
            x->name, 100 * x->weight, x->docs_in, (double)x->bytes_in / 1e6, x->tokens_in,
            100 * share(x->tokens_in, tin), x->docs_out, (double)x->bytes_out / 1e6, x->tokens_out,
            100 * share(x->tokens_out, st->tokens_out), x->max_copies);
  }
  fprintf(f, "%-16s %7s | %9" PRIu64 " %10.3f %11" PRIu64 " %6s | %9" PRIu64 " %10.3f %11" PRIu64 "\n",
          "total", "", din, (double)bin / 1e6, tin, "", st->docs_out, (double)bout / 1e6,
          st->tokens_out);
  if (st->docs_untagged)
    fprintf(f, "%" PRIu64 " documents without a tag were left out\n", st->docs_untagged);
  fprintf(f, "shards: %" PRIu64 " train tokens in %" PRIu64 " shards, %" PRIu64 " val tokens in %" PRIu64
          " shards; %.2f s (%.0f docs/s counting)\n",
          st->tok.tokens_train, st->tok.shards_train, st->tok.tokens_val, st->tok.shards_val,
          st->seconds, st->count_seconds > 0 ? (double)st->docs_in / st->count_seconds : 0.0);
}

int vklm_mix_stats_write(const vklm_mix_stats *st, const vklm_mix_opts *o, const char *path) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return -1;
  cJSON_AddStringToObject(root, "by", o->by);
  cJSON_AddNumberToObject(root, "seed", (double)o->seed);
  cJSON_AddNumberToObject(root, "max_repeat", o->max_repeat);
  cJSON *keys = cJSON_AddArrayToObject(root, "keys");
  for (int k = 0; keys && k < st->nkeys; k++) {
    const vklm_mix_key *x = &st->key[k];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", x->name);
    cJSON_AddNumberToObject(e, "weight", x->weight);
    cJSON *b = cJSON_AddObjectToObject(e, "before"), *a = cJSON_AddObjectToObject(e, "after");
    cJSON_AddNumberToObject(b, "docs", (double)x->docs_in);
    cJSON_AddNumberToObject(b, "bytes", (double)x->bytes_in);
    cJSON_AddNumberToObject(b, "tokens", (double)x->tokens_in);
    cJSON_AddNumberToObject(a, "docs", (double)x->docs_out);
    cJSON_AddNumberToObject(a, "bytes", (double)x->bytes_out);
    cJSON_AddNumberToObject(a, "tokens", (double)x->tokens_out);
    cJSON_AddNumberToObject(a, "token_share", share(x->tokens_out, st->tokens_out));
    cJSON_AddNumberToObject(a, "max_copies", x->max_copies);
    cJSON_AddItemToArray(keys, e);
  }
  cJSON_AddNumberToObject(root, "docs_untagged", (double)st->docs_untagged);
  cJSON_AddNumberToObject(root, "docs_unweighted", (double)st->docs_unweighted);
  cJSON_AddNumberToObject(root, "tokens_out", (double)st->tokens_out);
  cJSON_AddNumberToObject(root, "train_tokens", (double)st->tok.tokens_train);
  cJSON_AddNumberToObject(root, "val_tokens", (double)st->tok.tokens_val);
  cJSON_AddNumberToObject(root, "seconds", st->seconds);
  char *s = cJSON_Print(root);
  cJSON_Delete(root);
  if (!s) return -1;
  FILE *f = fopen(path, "w");
  int rc = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF ? 0 : -1;
  if (f && fclose(f)) rc = -1;
  cJSON_free(s);
  return rc;
}

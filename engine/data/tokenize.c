/* cleaned JSONL -> token shards, with a train/validation split (see tokenize.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/reader.h"
#include "data/shard.h"
#include "data/steps.h"
#include "data/tokenize.h"
#include "text/tokenizer.h"

/* Up to BATCH documents or BATCH_BYTES bytes per batch; buffers over KEEP_CAP are released. */
enum { BATCH = 512, BATCH_BYTES = 16 << 20, KEEP_CAP = 64 << 10 };

void vklm_tokenize_default(vklm_tokenize_opts *o) {
  memset(o, 0, sizeof *o);
  o->text_field = "text";
  o->eot = "<|endoftext|>";
  o->shard_tokens = 100000000;
  o->val_fraction = 0.01;
  o->seed = 1;
}


static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct doc {
  vklm_buf text;
  vklm_token_ids ids;
  int val, failed;
} doc;

typedef struct pool {
  doc *d;
  int n;
  atomic_int next;
  const vklm_tokenize_opts *o;
  vklm_tokenizer_encoder **enc; /* one per thread */
} pool;

typedef struct warg {
  pool *p;
  int t;
} warg;

static void *work(void *a) {
  warg *w = a;
  pool *p = w->p;
  for (;;) {
    int i = atomic_fetch_add(&p->next, 1);
    if (i >= p->n) break;
    doc *d = &p->d[i];
    d->ids.n = 0;
    /* documents are text, not markup: special-token text inside them stays ordinary bytes */
    d->failed = vklm_tokenizer_encoder_encode(p->enc[w->t], d->text.p ? d->text.p : "", d->text.n,
                                              0, &d->ids) != VKLM_TOK_OK;
    uint64_t h = vklm_hash64(d->text.p ? d->text.p : "", d->text.n, p->o->seed);
    d->val = (double)(h >> 11) * (1.0 / 9007199254740992.0) < p->o->val_fraction;
  }
  return NULL;
}

typedef struct split {
  const char *name; /* "train" or "val" */
  vklm_shard_writer *w;
  uint64_t index; /* next shard number */
  uint64_t *tokens, *shards;
} split;

static int split_put(split *s, const vklm_tokenize_opts *o, uint64_t vocab, int32_t eot,
                     const uint32_t *t, size_t n, int new_doc, char *err, size_t errlen) {
  while (n) {
    if (!s->w) {
      char path[4096], part[32] = "";
      if (o->nshards > 1) snprintf(part, sizeof part, "%03uof%03u_", o->shard, o->nshards);
      snprintf(path, sizeof path, "%s/%s_%s%06" PRIu64 ".bin", o->outdir, s->name, part, s->index);
      if (vklm_shard_writer_create(path, vocab, eot, &s->w, err, errlen)) return -1;
    }
    uint64_t room = o->shard_tokens - vklm_shard_writer_count(s->w);
    size_t k = n < room ? n : (size_t)room;
    if (vklm_shard_writer_append(s->w, t, k))
      return vklm_data_fail(err, errlen, "tokenize: token id out of range or write error in %s shard",
                  s->name);
    if (new_doc) vklm_shard_writer_add_docs(s->w, 1);
    new_doc = 0;
    *s->tokens += k;
    t += k;
    n -= k;
    if (vklm_shard_writer_count(s->w) >= o->shard_tokens) {
      vklm_shard_writer *w = s->w;
      s->w = NULL;
      if (vklm_shard_writer_finish(w, err, errlen)) return -1;
      s->index++;
      (*s->shards)++;
    }
  }
  return 0;
}

int vklm_tokenize_run(const vklm_tokenize_opts *o, vklm_tokenize_stats *st, char *err,
                      size_t errlen) {
  memset(st, 0, sizeof *st);
  double t0 = now(), last = t0;
  if (!o->tokenizer || !o->ninputs || !o->outdir)
    return vklm_data_fail(err, errlen, "tokenize: need a tokenizer, an input and an output directory");
  if (!o->shard_tokens) return vklm_data_fail(err, errlen, "tokenize: --shard-tokens must be > 0");
  if (o->nshards > 1 && o->shard >= o->nshards)
    return vklm_data_fail(err, errlen, "tokenize: no shard %u of %u", o->shard, o->nshards);
  uint64_t docno = 0; /* documents the reader gave, every shard's */
  if (o->val_fraction < 0 || o->val_fraction > 1)
    return vklm_data_fail(err, errlen, "tokenize: --val-fraction must be in [0, 1]");
  if (vklm_reader_check_inputs(o->inputs, o->ninputs, err, errlen)) return -1;
  if (mkdir(o->outdir, 0777) && errno != EEXIST)
    return vklm_data_fail(err, errlen, "tokenize: cannot create %s: %s", o->outdir, strerror(errno));
  int nthreads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 256) nthreads = 256;

  vklm_tokenizer *tk = NULL;
  vklm_reader *rd = NULL;
  pool p = {.o = o};
  pthread_t *tid = NULL;
  warg *args = NULL;
  uint32_t *u = NULL;
  size_t ucap = 0;
  split sp[2] = {{"train", NULL, 0, &st->tokens_train, &st->shards_train},
                 {"val", NULL, 0, &st->tokens_val, &st->shards_val}};
  int rc = 0;
  if (vklm_tokenizer_load(o->tokenizer, &tk, err, errlen)) {
    rc = -1;
    goto done;
  }
  uint64_t vocab = vklm_tokenizer_vocab_size(tk);
  int32_t eot = vklm_tokenizer_special_id(tk, o->eot);
  if (eot < 0) eot = vklm_tokenizer_token_id(tk, o->eot, strlen(o->eot));
  if (eot < 0) {
    rc = vklm_data_fail(err, errlen, "tokenize: the tokenizer has no token \"%s\" (use --eot)", o->eot);
    goto done;
  }
  st->vocab_size = (uint32_t)vocab;
  st->width = vklm_shard_width_for(vocab);
  p.d = calloc(BATCH, sizeof *p.d);
  p.enc = calloc((size_t)nthreads, sizeof *p.enc);
  tid = calloc((size_t)nthreads, sizeof *tid);
  args = calloc((size_t)nthreads, sizeof *args);
  if (!p.d || !p.enc || !tid || !args ||
      vklm_reader_create(o->inputs, o->ninputs, o->text_field, (size_t)64 << 20, &rd)) {
    rc = vklm_data_fail(err, errlen, "tokenize: out of memory");
    goto done;
  }
  for (int t = 0; t < nthreads; t++)
    if (vklm_tokenizer_encoder_create(tk, &p.enc[t])) {
      rc = vklm_data_fail(err, errlen, "tokenize: cannot create an encoder");
      goto done;
    }
  for (int end = 0; !end && !rc;) {
    p.n = 0;
    size_t bytes = 0;
    while (p.n < BATCH && bytes < BATCH_BYTES) {
      int html;
      if (p.d[p.n].text.cap > KEEP_CAP) vklm_buf_free(&p.d[p.n].text);
      if (p.d[p.n].ids.cap > KEEP_CAP) vklm_token_ids_free(&p.d[p.n].ids);
      int r = vklm_reader_next(rd, &p.d[p.n].text, &html);
      if (r < 0) {
        rc = vklm_data_fail(err, errlen, "tokenize: out of memory reading input");
        break;
      }
      if (r == 0) {
        end = 1;
        break;
      }
      if (o->nshards > 1 && docno++ % o->nshards != o->shard) continue; /* another shard's */
      bytes += p.d[p.n].text.n;
      p.n++;
    }
    if (rc || !p.n) break;
    atomic_store(&p.next, 0);
    int started = 0;
    for (int t = 0; t < nthreads; t++) {
      args[t] = (warg){&p, t};
      if (pthread_create(&tid[t], NULL, work, &args[t])) break;
      started++;
    }
    if (!started) work(&args[0]);
    for (int t = 0; t < started; t++)
      pthread_join(tid[t], NULL);
    for (int i = 0; i < p.n && !rc; i++) {
      doc *d = &p.d[i];
      if (d->failed) {
        rc = vklm_data_fail(err, errlen, "tokenize: encoding document %" PRIu64 " failed", st->docs);
        break;
      }
      if (d->ids.n + 1 > ucap) {
        size_t nc = (d->ids.n + 1) * 2;
        uint32_t *nu = realloc(u, nc * sizeof *nu);
        if (!nu) {
          rc = vklm_data_fail(err, errlen, "tokenize: out of memory");
          break;
        }
        u = nu;
        ucap = nc;
      }
      u[0] = (uint32_t)eot;
      for (size_t k = 0; k < d->ids.n; k++)
        u[k + 1] = (uint32_t)d->ids.ids[k];
      st->docs++;
      st->bytes += d->text.n;
      if (d->val)
        st->docs_val++;
      else
        st->docs_train++;
      rc = split_put(&sp[d->val], o, vocab, eot, u, d->ids.n + 1, 1, err, errlen);
    }
    double t = now();
    if (o->progress && t - last >= 0.5) {
      last = t;
      fprintf(stderr, "\rtokenize: %" PRIu64 " docs, %" PRIu64 " tokens, %.1f MB/s   ", st->docs,
              st->tokens_train + st->tokens_val, (double)st->bytes / 1e6 / (t - t0));
    }
  }
  if (!rc && !st->docs && o->nshards <= 1) { /* nothing to train on: an error, not 0 shards */
    char what[512];
    vklm_reader_describe(vklm_reader_counts_get(rd), what, sizeof what);
    rc = vklm_data_fail(err, errlen, "tokenize: no documents in the input (%s)", what);
  }
  for (int s = 0; s < 2 && !rc; s++)
    if (sp[s].w) {
      vklm_shard_writer *w = sp[s].w;
      sp[s].w = NULL;
      rc = vklm_shard_writer_finish(w, err, errlen);
      (*sp[s].shards)++;
    }
  if (o->progress) fprintf(stderr, "\n");
done:
  if (rd) st->lines_malformed = vklm_reader_counts_get(rd)->lines_malformed;
  for (int s = 0; s < 2; s++)
    vklm_shard_writer_destroy(sp[s].w);
  if (p.d)
    for (int i = 0; i < BATCH; i++) {
      vklm_buf_free(&p.d[i].text);
      vklm_token_ids_free(&p.d[i].ids);
    }
  if (p.enc)
    for (int t = 0; t < nthreads; t++)
      vklm_tokenizer_encoder_destroy(p.enc[t]);
  free(p.d);
  free(p.enc);
  free(tid);
  free(args);
  free(u);
  vklm_reader_destroy(rd);
  vklm_tokenizer_destroy(tk);
  st->seconds = now() - t0;
  return rc;
}

/* The prepare pipeline: batches of documents from the reader, per-document steps on a thread
 * pool (while the main thread reads the next batch), then in input order: statistics, exact
 * dedup, output or (with near-dedup) temp files; finally MinHash clustering over the mapped
 * signature file and a second pass that copies the kept lines. */
#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "data/prepare.h"

/* A batch holds up to BATCH_DOCS documents or BATCH_BYTES bytes; an item keeps its buffers for
 * the next batch only while they are under KEEP_CAP, so idle memory stays small. */
enum { BATCH_DOCS = 1024, BATCH_BYTES = 16 << 20, KEEP_CAP = 64 << 10 };

void vklm_prepare_default(vklm_prepare_opts *o) {
  memset(o, 0, sizeof *o);
  o->text_field = "text";
  o->max_doc_bytes = (size_t)16 << 20;
  o->html = o->nfc = o->whitespace = 1;
  vklm_gopher_rep_default(&o->gopher_rep);
  vklm_gopher_quality_default(&o->gopher_quality);
  vklm_c4_default(&o->c4);
  vklm_fineweb_default(&o->fineweb);
  o->exact_dedup = 1;
  vklm_minhash_default(&o->near);
  o->langid = 1;
  o->lang_rules = 1;
  o->block_min_matches = 1;
}

typedef struct item {
  vklm_buf text; /* the document, rewritten by each step */
  vklm_buf line; /* the JSONL output line */
  int html;
  int reached;                         /* last step the document entered */
  vklm_drop drop;                      /* why it was removed (at step `reached`), or NONE */
  uint64_t bytes[VKLM_STEP_SCRUB + 2]; /* bytes[0] input, bytes[s + 1] after step s */
  uint64_t hash[2];
  uint32_t *sig; /* into the batch's signature array */
  vklm_clean_counts clean;
  vklm_c4_counts c4;
  uint64_t emails, ips;
  int html_failed;
  int input;             /* index of the input the document came from */
  vklm_buf url;          /* the "url" field of a JSONL line, or empty */
  vklm_lang_result lang; /* code "und", index -1 without detection */
  int block;             /* the block list that removed it, or -1 */
  int topic;             /* topic index, or -1 ("other"); -2 without a topic map */
  int scored;            /* the scorer gave it a score */
  float score;
  uint64_t doc;          /* index of the document in the whole input (sharded runs) */
} item;

typedef struct batch {
  item *it;
  uint32_t *sigs;
  int n;
  size_t bytes;
  atomic_int next; /* next item to process */
  pthread_t *tid;
  int nthreads, running;
} batch;

typedef struct ctx {
  const vklm_prepare_opts *o; /* borrowed */
  vklm_scrubber *scrub;       /* owned */
  vklm_langid *lid;           /* owned, or NULL */
  uint8_t *keep_lang;         /* owned: per detector language, 1 to keep (NULL: keep all) */
  vklm_blocklists *block;     /* owned, or NULL */
  vklm_topics *topics;        /* owned, or NULL */
  int *src_idx;               /* owned: per input, its row in the source statistics, or -1 */
} ctx;

typedef struct worker_arg {
  const ctx *c;
  batch *b;
} worker_arg;

/* The document's output line: its text and tags. Returns 0, or -1 (no memory: the document
 * is then dropped as empty). */
static int build_line(const ctx *c, item *it) {
  const vklm_prepare_opts *o = c->o;
  vklm_buf_clear(&it->line);
  cJSON *j = cJSON_CreateObject();
  int ok = j && cJSON_AddStringToObject(j, "text", it->text.p);
  if (ok && c->lid)
    ok = cJSON_AddStringToObject(j, "lang", it->lang.code) &&
         cJSON_AddNumberToObject(j, "lang_score", round(it->lang.score * 1e4) / 1e4);
  const char *src = o->sources ? o->sources[it->input] : NULL;
  if (ok && src) ok = cJSON_AddStringToObject(j, "source", src) != NULL;
  if (ok && c->topics)
    ok = cJSON_AddStringToObject(j, "topic",
                                 it->topic >= 0 ? vklm_topics_name(c->topics, it->topic) : "other") !=
         NULL;
  if (ok && it->scored) {
    ok = cJSON_AddNumberToObject(j, "classifier_score", round(it->score * 1e6) / 1e6) != NULL;
    if (ok && it->score > o->scorer->threshold)
      ok = cJSON_AddBoolToObject(j, "classifier_flagged", 1) != NULL;
  }
  if (ok && it->url.n) ok = cJSON_AddStringToObject(j, "url", it->url.p) != NULL;
  if (ok && o->nshards > 1) /* last: the merge strips it */
    ok = cJSON_AddNumberToObject(j, "doc_index", (double)it->doc) != NULL;
  char *js = ok ? cJSON_PrintUnformatted(j) : NULL;
  if (!js || vklm_buf_append(&it->line, js, strlen(js)) || vklm_buf_putc(&it->line, '\n'))
    it->drop = VKLM_DROP_EMPTY;
  cJSON_free(js);
  cJSON_Delete(j);
  return it->drop ? -1 : 0;
}


/* Runs the per-document steps on one item. */
static void process(const ctx *c, item *it) {
  const vklm_prepare_opts *o = c->o;
  vklm_buf tmp = {0};
  it->drop = VKLM_DROP_NONE;
  it->bytes[0] = it->text.n;
  it->block = -1;
  it->topic = -2;
  strcpy(it->lang.code, "und");
  it->lang.index = -1;
  for (int s = VKLM_STEP_HTML; s <= VKLM_STEP_SCRUB; s++) {
    it->reached = s;
    vklm_buf_clear(&tmp);
    vklm_drop d = VKLM_DROP_NONE;
    int swap = 0, fail = 0;
    switch (s) {
    case VKLM_STEP_HTML:
      if (o->html && it->html) {
        if (vklm_html_extract(it->text.p ? it->text.p : "", it->text.n, &tmp)) it->html_failed = 1;
        swap = 1;
      }
      break;
    case VKLM_STEP_CLEAN:
      fail = vklm_clean_utf8(it->text.p, it->text.n, &tmp, &it->clean);
      if (!fail && o->nfc) {
        vklm_buf_swap(&tmp, &it->text);
        vklm_buf_clear(&tmp);
        fail = vklm_clean_nfc(it->text.p, it->text.n, &tmp);
      }
      if (!fail && o->whitespace) {
        vklm_buf_swap(&tmp, &it->text);
        vklm_buf_clear(&tmp);
        fail = vklm_clean_whitespace(it->text.p, it->text.n, &tmp);
      }
      swap = 1;
      break;
    case VKLM_STEP_GOPHER_REP:
      if (o->gopher_rep.enabled) d = vklm_gopher_repetition(&o->gopher_rep, it->text.p, it->text.n);
      break;
    case VKLM_STEP_LANG:
      if (c->lid) {
        if (vklm_langid_detect(c->lid, it->text.p, it->text.n, &it->lang))
          fail = 1;
        else if (c->keep_lang && (it->lang.index < 0 || !c->keep_lang[it->lang.index]))
          d = VKLM_DROP_LANG;
        else if (it->lang.score < o->min_lang_score)
          d = VKLM_DROP_LANG_SCORE;
      }
      break;
    case VKLM_STEP_BLOCK:
      if (c->block) {
        vklm_drop why = VKLM_DROP_NONE;
        int b = vklm_blocklists_check(c->block, c->lid ? it->lang.code : NULL, it->url.p,
                                      it->text.p, it->text.n, o->block_min_matches, &why);
        if (b == -2) fail = 1;
        if (b >= 0) {
          it->block = b;
          d = why;
        }
      }
      break;
    case VKLM_STEP_GOPHER_QUALITY:
      if (o->gopher_quality.enabled)
        d = vklm_gopher_quality_lang(&o->gopher_quality,
                                     c->lid && o->lang_rules ? it->lang.code : NULL, it->text.p,
                                     it->text.n);
      break;
    case VKLM_STEP_C4:
      if (o->c4.enabled) {
        d = vklm_c4_filter(&o->c4, it->text.p, it->text.n, &tmp, &it->c4);
        swap = 1;
      }
      break;
    case VKLM_STEP_FINEWEB:
      if (o->fineweb.enabled) d = vklm_fineweb_filter(&o->fineweb, it->text.p, it->text.n);
      break;
    case VKLM_STEP_SCRUB:
      if (c->scrub) {
        fail = vklm_scrub_apply(c->scrub, it->text.p, it->text.n, &tmp, &it->emails, &it->ips);
        swap = 1;
      }
      break;
    }
    if (fail) {
      vklm_buf_clear(&tmp); /* out of memory on this document: it is dropped, counted as empty */
      d = VKLM_DROP_EMPTY;
    }
    if (swap) vklm_buf_swap(&tmp, &it->text);
    if (!d && it->text.n == 0) d = VKLM_DROP_EMPTY;
    it->bytes[s + 1] = it->text.n;
    if (d) {
      it->drop = d;
      break;
    }
  }
  vklm_buf_free(&tmp);
  if (it->drop) return;
  if (o->exact_dedup) vklm_hash128(it->text.p, it->text.n, it->hash);
  if (o->near.enabled) vklm_minhash_signature(&o->near, it->text.p, it->text.n, it->sig);
  if (c->topics) {
    it->topic = vklm_topics_classify(c->topics, it->text.p, it->text.n);
    if (it->topic == -2) {
      it->drop = VKLM_DROP_EMPTY; /* out of memory */
      return;
    }
  }
  if (!o->scorer) build_line(c, it); /* with a scorer: after scoring, in consume */
}

static void *worker(void *p) {
  worker_arg *a = p;
  for (;;) {
    int i = atomic_fetch_add(&a->b->next, 1);
    if (i >= a->b->n) break;
    process(a->c, &a->b->it[i]);
  }
  return NULL;
}

static void batch_start(batch *b, worker_arg *args, const ctx *c) {
  atomic_store(&b->next, 0);
  b->running = 0;
  for (int t = 0; t < b->nthreads; t++) {
    args[t] = (worker_arg){c, b};
    if (pthread_create(&b->tid[t], NULL, worker, &args[t])) break;
    b->running++;
  }
  if (!b->running) worker(&args[0]); /* no thread could start: do the work here */
}

static void batch_join(batch *b) {
  for (int t = 0; t < b->running; t++)
    pthread_join(b->tid[t], NULL);
  b->running = 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


/* What the per-key statistics need of a written document (also the record of the near-dedup
 * length file). */
typedef struct tag {
  uint64_t bytes;
  int32_t lang, input, topic;
} tag;

typedef struct run {
  const vklm_prepare_opts *o;
  vklm_prepare_stats *st;
  vklm_dedup_set *set;
  const vklm_reader *rd; /* for the bytes-read counter of the progress line */
  FILE *out;             /* final output (.tmp) or, with near-dedup, the pass-1 temp JSONL */
  FILE *sigf, *lenf;
  uint64_t pass1; /* documents written to the pass-1 files */
  const ctx *c;
  char err[512]; /* the scorer's message */
  double t0, last_print;
} run;

static void count_keys(run *r, const tag *t) {
  vklm_prepare_stats *st = r->st;
  if (r->c->lid) {
    int i = t->lang >= 0 ? t->lang : st->nlangs - 1; /* "und" is last */
    st->langs[i].docs++;
    st->langs[i].bytes += t->bytes;
  }
  int si = r->c->src_idx ? r->c->src_idx[t->input] : -1;
  if (si >= 0) {
    st->sources[si].docs++;
    st->sources[si].bytes += t->bytes;
  }
  if (r->c->topics) {
    int i = t->topic >= 0 ? t->topic : st->ntopics - 1; /* "other" is last */
    st->topics[i].docs++;
    st->topics[i].bytes += t->bytes;
  }
}

static void progress(run *r, int final) {
  double t = now();
  if (!r->o->progress || (!final && t - r->last_print < 0.5)) return;
  r->last_print = t;
  double mb = (double)vklm_reader_counts_get(r->rd)->bytes / 1e6, dt = t - r->t0;
  fprintf(stderr, "\rprepare: %" PRIu64 " docs, %" PRIu64 " kept, %.1f MB read, %.1f MB/s   ",
          r->st->docs_read, r->o->near.enabled ? r->pass1 : r->st->docs_out, mb,
          dt > 0 ? mb / dt : 0.0);
  if (final) fputc('\n', stderr);
  fflush(stderr);
}

/* Scores the batch's surviving documents (one call to the scorer), then drops or tags them and
 * builds their lines. Returns 0 or -1 (the scorer's message in r->err). */
static int score_batch(run *r, batch *b) {
  const vklm_doc_scorer *sc = r->o->scorer;
  vklm_prepare_stats *st = r->st;
  vklm_step_stats *cs = &st->step[VKLM_STEP_CLASSIFIER];
  const char **texts = malloc((size_t)b->n * sizeof *texts);
  size_t *lens = malloc((size_t)b->n * sizeof *lens);
  float *out = malloc((size_t)b->n * sizeof *out);
  int *idx = malloc((size_t)b->n * sizeof *idx), m = 0, rc = 0;
  if (!texts || !lens || !out || !idx) {
    snprintf(r->err, sizeof r->err, "out of memory");
    rc = -1;
  }
  for (int i = 0; !rc && i < b->n; i++)
    if (!b->it[i].drop) {
      idx[m] = i;
      texts[m] = b->it[i].text.p;
      lens[m++] = b->it[i].text.n;
    }
  double t0 = now();
  if (!rc && m && sc->score(sc->user, texts, lens, m, out, r->err, sizeof r->err)) rc = -1;
  st->score_seconds += now() - t0;
  for (int j = 0; !rc && j < m; j++) {
    item *it = &b->it[idx[j]];
    cs->docs_in++;
    cs->bytes_in += it->text.n;
    st->scored++;
    it->scored = 1;
    it->score = out[j];
    if (out[j] > sc->threshold) {
      st->flagged++;
      if (!sc->tag) {
        it->drop = VKLM_DROP_CLASSIFIER;
        st->drops[VKLM_DROP_CLASSIFIER]++;
        continue;
      }
    }
    cs->docs_out++;
    cs->bytes_out += it->text.n;
    if (build_line(r->c, it)) {
      snprintf(r->err, sizeof r->err, "out of memory");
      rc = -1;
    }
  }
  free(texts), free(lens), free(out), free(idx);
  return rc;
}

/* Consumes a processed batch in input order. Returns 0 or -1 (I/O or memory). */
static int consume(run *r, batch *b, int k) {
  vklm_prepare_stats *st = r->st;
  for (int i = 0; i < b->n; i++) {
    item *it = &b->it[i];
    st->docs_read++;
    st->bytes_read += it->bytes[0];
    if (r->c->src_idx && r->c->src_idx[it->input] >= 0) st->sources[r->c->src_idx[it->input]].docs_in++;
    for (int s = VKLM_STEP_HTML; s <= it->reached; s++) {
      st->step[s].docs_in++;
      st->step[s].bytes_in += it->bytes[s];
      if (s < it->reached || !it->drop) {
        st->step[s].docs_out++;
        st->step[s].bytes_out += it->bytes[s + 1];
      }
    }
    st->clean.invalid_sequences += it->clean.invalid_sequences;
    st->clean.nul_bytes += it->clean.nul_bytes;
    st->c4_lines_in += it->c4.lines_in;
    st->c4_lines_kept += it->c4.lines_kept;
    st->emails += it->emails;
    st->ips += it->ips;
    st->html_failed += (uint64_t)it->html_failed;
    if (it->drop) {
      st->drops[it->drop]++;
      if (it->block >= 0) st->block_removed[it->block]++;
      continue;
    }
    uint64_t n = it->text.n;
    vklm_step_stats *ex = &st->step[VKLM_STEP_EXACT];
    ex->docs_in++;
    ex->bytes_in += n;
    if (r->set) {
      int fresh = vklm_dedup_set_insert(r->set, it->hash);
      if (fresh < 0) return -1;
      if (!fresh) {
        st->drops[VKLM_DROP_EXACT_DUP]++;
        it->drop = VKLM_DROP_EXACT_DUP;
        continue;
      }
    }
    ex->docs_out++;
    ex->bytes_out += n;
  }
  if (r->o->scorer && score_batch(r, b)) return -1;
  for (int i = 0; i < b->n; i++) {
    item *it = &b->it[i];
    if (it->drop) continue;
    uint64_t n = it->text.n;
    if (fwrite(it->line.p, 1, it->line.n, r->out) != it->line.n) return -1;
    tag t = {n, it->lang.index, it->input, it->topic};
    if (r->sigf) {
      if (fwrite(it->sig, sizeof(uint32_t), (size_t)k, r->sigf) != (size_t)k ||
          fwrite(&t, sizeof t, 1, r->lenf) != 1)
        return -1;
      r->pass1++;
    } else {
      st->docs_out++;
      st->bytes_out += n;
      count_keys(r, &t);
    }
  }
  progress(r, 0);
  return 0;
}

/* Fills a batch from the reader (a shard's documents only: *docno counts the input's). Returns
 * the number of items, or -1 when memory runs out. */
static int fill(const vklm_prepare_opts *o, uint64_t *docno, vklm_reader *rd, batch *b,
                int *done) {
  b->n = 0;
  b->bytes = 0;
  while (!*done && b->n < BATCH_DOCS && b->bytes < BATCH_BYTES) {
    item *it = &b->it[b->n];
    if (it->text.cap > KEEP_CAP) vklm_buf_free(&it->text); /* bound what idle items retain */
    if (it->line.cap > KEEP_CAP) vklm_buf_free(&it->line);
    uint32_t *sig = it->sig;
    if (it->url.cap > KEEP_CAP) vklm_buf_free(&it->url);
    vklm_buf text = it->text, line = it->line, url = it->url;
    memset(it, 0, sizeof *it);
    it->text = text;
    it->line = line;
    it->url = url;
    it->sig = sig;
    int rc = vklm_reader_next_meta(rd, &it->text, &it->html, &it->input, &it->url);
    if (rc < 0) return -1;
    if (rc == 0) {
      *done = 1;
      break;
    }
    it->doc = (*docno)++;
    if (o->nshards > 1 && it->doc % o->nshards != o->shard) continue; /* another shard's */
    b->bytes += it->text.n;
    b->n++;
  }
  return b->n;
}

static int batch_alloc(batch *b, int k, int nthreads) {
  b->it = calloc(BATCH_DOCS, sizeof *b->it);
  b->sigs = calloc((size_t)BATCH_DOCS * (size_t)(k ? k : 1), sizeof *b->sigs);
  b->tid = calloc((size_t)nthreads, sizeof *b->tid);
  b->nthreads = nthreads;
  if (!b->it || !b->sigs || !b->tid) return -1;
  for (int i = 0; i < BATCH_DOCS; i++)
    b->it[i].sig = b->sigs + (size_t)i * k;
  return 0;
}

static void batch_free(batch *b) {
  if (b->it)
    for (int i = 0; i < BATCH_DOCS; i++) {
      vklm_buf_free(&b->it[i].text);
      vklm_buf_free(&b->it[i].line);
      vklm_buf_free(&b->it[i].url);
    }
  free(b->it);
  free(b->sigs);
  free(b->tid);
}

FILE *vklm_data_temp_file(const char *dir, const char *tag, const char *base, char *path,
                          size_t n) {
  if (dir)
    snprintf(path, n, "%s/vklm-%s.XXXXXX", dir, tag);
  else
    snprintf(path, n, "%s.XXXXXX", base);
  int fd = mkstemp(path);
  if (fd < 0) return NULL;
  FILE *f = fdopen(fd, "w+b");
  if (!f) close(fd);
  return f;
}

/* Near-dedup: cluster the signatures, then copy the kept lines of the pass-1 file. */
static int near_pass(run *r, FILE *tmp, char *err, size_t errlen) {
  const vklm_prepare_opts *o = r->o;
  int k = vklm_minhash_count(&o->near);
  uint64_t nd = r->pass1;
  vklm_step_stats *ns = &r->st->step[VKLM_STEP_NEAR];
  uint8_t *keep = malloc(nd ? nd : 1);
  if (!keep) return vklm_data_fail(err, errlen, "near-dedup: out of memory for %" PRIu64 " docs", nd);
  if (o->progress) fprintf(stderr, "prepare: near-dedup clustering %" PRIu64 " docs\n", nd);
  int rc = 0;
  if (nd) {
    if (fflush(r->sigf))
      rc = vklm_data_fail(err, errlen, "near-dedup: writing signatures: %s", strerror(errno));
    size_t sz = (size_t)nd * (size_t)k * sizeof(uint32_t);
    void *map = rc ? MAP_FAILED : mmap(NULL, sz, PROT_READ, MAP_PRIVATE, fileno(r->sigf), 0);
    if (!rc && map == MAP_FAILED) rc = vklm_data_fail(err, errlen, "near-dedup: mmap: %s", strerror(errno));
    if (!rc && vklm_minhash_cluster(&o->near, map, nd, keep, &r->st->near))
      rc = vklm_data_fail(err, errlen, "near-dedup: out of memory clustering %" PRIu64 " docs", nd);
    if (map != MAP_FAILED) munmap(map, sz);
  }
  if (!rc && (fflush(tmp) || fseek(tmp, 0, SEEK_SET) || fseek(r->lenf, 0, SEEK_SET)))
    rc = vklm_data_fail(err, errlen, "near-dedup: rewinding temp files: %s", strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  for (uint64_t i = 0; !rc && i < nd; i++) {
    ssize_t got = getline(&line, &cap, tmp);
    tag t;
    if (got <= 0 || fread(&t, sizeof t, 1, r->lenf) != 1) {
      rc = vklm_data_fail(err, errlen, "near-dedup: temp file ended early at doc %" PRIu64, i);
      break;
    }
    uint64_t n = t.bytes;
    ns->docs_in++;
    ns->bytes_in += n;
    if (!keep[i]) {
      r->st->drops[VKLM_DROP_NEAR_DUP]++;
      continue;
    }
    ns->docs_out++;
    ns->bytes_out += n;
    r->st->docs_out++;
    r->st->bytes_out += n;
    count_keys(r, &t);
    if (fwrite(line, 1, (size_t)got, r->out) != (size_t)got)
      rc = vklm_data_fail(err, errlen, "writing output: %s", strerror(errno));
  }
  free(line);
  free(keep);
  return rc;
}

/* Reads the language models, block lists and topic map, and names the per-key statistics:
 * every bad option or unreadable file is reported here, before any document is read. */
static int setup_tags(const vklm_prepare_opts *o, ctx *c, vklm_prepare_stats *st, char *err,
                      size_t errlen) {
  char e[512] = "";
  if (!o->langid && (o->languages || o->min_lang_score > 0))
    return vklm_data_fail(err, errlen, "prepare: --languages and --min-lang-score need language "
                                       "identification (drop --no-langid)");
  if (!(o->min_lang_score >= 0 && o->min_lang_score <= 1))
    return vklm_data_fail(err, errlen, "prepare: the language score threshold must be in [0, 1]");
  if (o->langid) {
    if (vklm_langid_create(o->lang_models, o->lang_candidates, 0, &c->lid, e, sizeof e))
      return vklm_data_fail(err, errlen, "prepare: %s", e);
    int nl = vklm_langid_count(c->lid);
    if (nl + 1 > VKLM_PREPARE_MAX_KEYS)
      return vklm_data_fail(err, errlen, "prepare: more than %d language models",
                            VKLM_PREPARE_MAX_KEYS - 1);
    for (int i = 0; i < nl; i++)
      snprintf(st->langs[i].name, sizeof st->langs[i].name, "%s", vklm_langid_code(c->lid, i));
    strcpy(st->langs[nl].name, "und");
    st->nlangs = nl + 1;
    if (o->languages) {
      if (!(c->keep_lang = calloc((size_t)nl, 1)))
        return vklm_data_fail(err, errlen, "prepare: out of memory");
      int any = 0;
      for (const char *p = o->languages; *p;) {
        size_t len = strcspn(p, ",");
        int i = vklm_langid_find(c->lid, p, len);
        if (i < 0)
          return vklm_data_fail(err, errlen, "prepare: --languages: no language model for '%.*s' "
                                             "(codes are the .lm names in %s)", (int)len, p,
                                o->lang_models ? o->lang_models : VKLM_LANGID_DEFAULT_DIR);
        c->keep_lang[i] = 1;
        any = 1;
        p += len + (p[len] == ',');
      }
      if (!any) return vklm_data_fail(err, errlen, "prepare: --languages lists no language");
    }
  }
  if (o->nblock_words + o->nblock_urls > 0) {
    if (vklm_blocklists_create(&c->block)) return vklm_data_fail(err, errlen, "prepare: out of memory");
    for (int i = 0; i < o->nblock_words; i++)
      if (vklm_blocklists_add_words(c->block, o->block_words[i], e, sizeof e))
        return vklm_data_fail(err, errlen, "prepare: %s", e);
    for (int i = 0; i < o->nblock_urls; i++)
      if (vklm_blocklists_add_urls(c->block, o->block_urls[i], e, sizeof e))
        return vklm_data_fail(err, errlen, "prepare: %s", e);
    st->nblock = vklm_blocklists_count(c->block);
    for (int i = 0; i < st->nblock; i++)
      snprintf(st->block_names[i], sizeof st->block_names[i], "%s", vklm_blocklists_name(c->block, i));
  }
  if (o->block_min_matches < 1)
    return vklm_data_fail(err, errlen, "prepare: --block-min-matches must be >= 1");
  if (o->topics) {
    if (vklm_topics_read(o->topics, &c->topics, e, sizeof e))
      return vklm_data_fail(err, errlen, "prepare: topic map: %s", e);
    int nt = vklm_topics_count(c->topics);
    for (int i = 0; i < nt; i++)
      snprintf(st->topics[i].name, sizeof st->topics[i].name, "%s", vklm_topics_name(c->topics, i));
    strcpy(st->topics[nt].name, "other");
    st->ntopics = nt + 1;
  }
  if (o->sources) {
    if (!(c->src_idx = malloc((size_t)o->ninputs * sizeof *c->src_idx)))
      return vklm_data_fail(err, errlen, "prepare: out of memory");
    for (int i = 0; i < o->ninputs; i++) {
      const char *nm = o->sources[i];
      c->src_idx[i] = -1;
      if (!nm) continue;
      struct stat sb;
      if (stat(o->inputs[i], &sb))
        return vklm_data_fail(err, errlen, "prepare: source %s: cannot read %s: %s", nm,
                              o->inputs[i], strerror(errno));
      if (!nm[0] || strlen(nm) >= sizeof st->sources[0].name)
        return vklm_data_fail(err, errlen, "prepare: a source name must have 1 to %zu characters",
                              sizeof st->sources[0].name - 1);
      int j = 0;
      while (j < st->nsources && strcmp(st->sources[j].name, nm))
        j++;
      if (j == st->nsources) {
        if (j >= VKLM_PREPARE_MAX_KEYS)
          return vklm_data_fail(err, errlen, "prepare: at most %d sources", VKLM_PREPARE_MAX_KEYS);
        strcpy(st->sources[st->nsources++].name, nm);
      }
      c->src_idx[i] = j;
    }
  }
  return 0;
}

int vklm_prepare_run(const vklm_prepare_opts *o, vklm_prepare_stats *st, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  if (!o->output || !o->ninputs) return vklm_data_fail(err, errlen, "prepare: no input or no output");
  if (o->near.enabled && (o->near.bands < 1 || o->near.rows < 1 || o->near.ngram < 1 ||
                          vklm_minhash_count(&o->near) > 1024))
    return vklm_data_fail(err, errlen, "prepare: MinHash needs bands, rows, ngram >= 1, bands*rows <= 1024");
  if (vklm_reader_check_inputs(o->inputs, o->ninputs, err, errlen)) return -1;
  run r = {.o = o, .st = st, .t0 = now()};
  ctx c = {o, NULL, NULL, NULL, NULL, NULL, NULL};
  r.c = &c;
  vklm_reader *rd = NULL;
  batch b[2] = {0};
  worker_arg *args = NULL;
  FILE *tmp = NULL, *final_out = NULL;
  char outtmp[4096], tmppath[4096] = "", sigpath[4096] = "", lenpath[4096] = "";
  int rc = 0, k = o->near.enabled ? vklm_minhash_count(&o->near) : 0;
  uint64_t docno = 0; /* documents the reader gave, every shard's */
  if (o->nshards > 1 && (o->shard >= o->nshards || o->near.enabled))
    return vklm_data_fail(err, errlen, "prepare: shard %u of %u: %s", o->shard, o->nshards,
                          o->shard >= o->nshards ? "no such shard"
                                                 : "near-dedup runs in the merge, not per shard");
  int nthreads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 256) nthreads = 256;
  st->step_on[VKLM_STEP_HTML] = o->html;
  st->step_on[VKLM_STEP_CLEAN] = 1;
  st->step_on[VKLM_STEP_LANG] = o->langid;
  st->step_on[VKLM_STEP_BLOCK] = o->nblock_words + o->nblock_urls > 0;
  st->step_on[VKLM_STEP_GOPHER_REP] = o->gopher_rep.enabled;
  st->step_on[VKLM_STEP_GOPHER_QUALITY] = o->gopher_quality.enabled;
  st->step_on[VKLM_STEP_C4] = o->c4.enabled;
  st->step_on[VKLM_STEP_FINEWEB] = o->fineweb.enabled;
  st->step_on[VKLM_STEP_SCRUB] = o->scrub_emails || o->scrub_ips;
  st->step_on[VKLM_STEP_EXACT] = o->exact_dedup;
  st->step_on[VKLM_STEP_NEAR] = o->near.enabled;
  st->step_on[VKLM_STEP_CLASSIFIER] = o->scorer != NULL;
  if (o->scorer && (!o->scorer->score || !(o->scorer->threshold >= 0 && o->scorer->threshold <= 1)))
    return vklm_data_fail(err, errlen, "prepare: the classifier threshold must be in [0, 1]");

  vklm_html_init();
  snprintf(outtmp, sizeof outtmp, "%s.tmp", o->output);
  if ((rc = setup_tags(o, &c, st, err, errlen))) goto done;
  if ((o->scrub_emails || o->scrub_ips) &&
      vklm_scrub_create(o->scrub_emails, o->scrub_ips, &c.scrub)) {
    rc = vklm_data_fail(err, errlen, "prepare: compiling the scrub patterns failed");
    goto done;
  }
  if (o->exact_dedup && vklm_dedup_set_create(&r.set)) {
    rc = vklm_data_fail(err, errlen, "prepare: out of memory");
    goto done;
  }
  if (vklm_reader_create(o->inputs, o->ninputs, o->text_field, o->max_doc_bytes, &rd) ||
      batch_alloc(&b[0], k, nthreads) || batch_alloc(&b[1], k, nthreads) ||
      !(args = calloc((size_t)nthreads, sizeof *args))) {
    rc = vklm_data_fail(err, errlen, "prepare: out of memory");
    goto done;
  }
  r.out = fopen(outtmp, "wb");
  if (!r.out) {
    rc = vklm_data_fail(err, errlen, "prepare: cannot create %s: %s", outtmp, strerror(errno));
    goto done;
  }
  if (o->near.enabled) {
    tmp = vklm_data_temp_file(o->tmp_dir, "prepare", o->output, tmppath, sizeof tmppath);
    r.sigf = vklm_data_temp_file(o->tmp_dir, "prepare", o->output, sigpath, sizeof sigpath);
    r.lenf = vklm_data_temp_file(o->tmp_dir, "prepare", o->output, lenpath, sizeof lenpath);
    if (!tmp || !r.sigf || !r.lenf) {
      rc = vklm_data_fail(err, errlen, "prepare: cannot create temp files next to %s: %s", o->output,
                strerror(errno));
      goto done;
    }
  }
  final_out = r.out;
  r.rd = rd;
  if (tmp) r.out = tmp; /* pass 1 writes the temp file; pass 2 the output */

  int done = 0, cur = 0;
  if (fill(o, &docno, rd, &b[cur], &done) < 0) {
    rc = vklm_data_fail(err, errlen, "prepare: out of memory reading input");
    goto done;
  }
  if (b[cur].n) batch_start(&b[cur], args, &c);
  while (b[cur].n) {
    batch *nb = &b[cur ^ 1];
    worker_arg *nargs = args; /* both batches share the argument array: only one runs at once */
    int got = fill(o, &docno, rd, nb, &done);
    batch_join(&b[cur]);
    if (got < 0) {
      rc = vklm_data_fail(err, errlen, "prepare: out of memory reading input");
      goto done;
    }
    if (nb->n) batch_start(nb, nargs, &c);
    if (consume(&r, &b[cur], k)) {
      batch_join(nb);
      if (r.err[0])
        rc = vklm_data_fail(err, errlen, "prepare: classifier: %s", r.err);
      else
        rc = vklm_data_fail(err, errlen, "prepare: writing output failed: %s", strerror(errno));
      goto done;
    }
    b[cur].n = 0;
    cur ^= 1;
  }
  st->input = *vklm_reader_counts_get(rd);
  progress(&r, 1);
  if (tmp) {
    r.out = final_out;
    if ((rc = near_pass(&r, tmp, err, errlen))) goto done;
  }
  if (fflush(r.out) || fsync(fileno(r.out))) {
    rc = vklm_data_fail(err, errlen, "prepare: writing %s: %s", outtmp, strerror(errno));
    goto done;
  }
  fclose(r.out);
  r.out = final_out = NULL;
  if (!st->docs_read && o->nshards <= 1) { /* an empty result is an error, not an empty file */
    char what[512];
    vklm_reader_describe(&st->input, what, sizeof what);
    rc = vklm_data_fail(err, errlen, "prepare: no documents in the input (%s)", what);
    goto done;
  }
  for (int i = 0; i < st->nsources; i++)
    if (!st->sources[i].docs_in) {
      rc = vklm_data_fail(err, errlen, "prepare: source %s has no documents (.txt .md .html .jsonl "
                          "files, optionally .gz)", st->sources[i].name);
      goto done;
    }
  if (rename(outtmp, o->output)) {
    rc = vklm_data_fail(err, errlen, "prepare: rename %s -> %s: %s", outtmp, o->output, strerror(errno));
    goto done;
  }
done:
  if (rd) st->input = *vklm_reader_counts_get(rd);
  st->seconds = now() - r.t0;
  if (final_out)
    fclose(final_out);
  else if (r.out && r.out != tmp)
    fclose(r.out);
  if (rc) unlink(outtmp);
  if (tmp) fclose(tmp);
  if (r.sigf) fclose(r.sigf);
  if (r.lenf) fclose(r.lenf);
  if (tmppath[0]) unlink(tmppath);
  if (sigpath[0]) unlink(sigpath);
  if (lenpath[0]) unlink(lenpath);
  batch_free(&b[0]);
  batch_free(&b[1]);
  free(args);
  vklm_reader_destroy(rd);
  vklm_dedup_set_destroy(r.set);
  vklm_scrub_destroy(c.scrub);
  vklm_langid_destroy(c.lid);
  free(c.keep_lang);
  vklm_blocklists_destroy(c.block);
  vklm_topics_destroy(c.topics);
  free(c.src_idx);
  char statpath[4096];
  snprintf(statpath, sizeof statpath, "%s.stats.json", o->output);
  const char *sp = o->stats_path ? o->stats_path : statpath;
  if (!rc && sp[0] && vklm_prepare_stats_write(st, sp))
    rc = vklm_data_fail(err, errlen, "prepare: cannot write stats to %s", sp);
  return rc;
}

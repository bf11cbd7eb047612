/* The prepare pipeline: batches of documents from the reader, per-document steps on a thread
 * pool (while the main thread reads the next batch), then in input order: statistics, exact
 * dedup, output or (with near-dedup) temp files; finally MinHash clustering over the mapped
 * signature file and a second pass that copies the kept lines. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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
} ctx;

typedef struct worker_arg {
  const ctx *c;
  batch *b;
} worker_arg;

/* Runs the per-document steps on one item. */
static void process(const ctx *c, item *it) {
  const vklm_prepare_opts *o = c->o;
  vklm_buf tmp = {0};
  it->drop = VKLM_DROP_NONE;
  it->bytes[0] = it->text.n;
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
    case VKLM_STEP_GOPHER_QUALITY:
      if (o->gopher_quality.enabled)
        d = vklm_gopher_quality(&o->gopher_quality, it->text.p, it->text.n);
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
  vklm_buf_clear(&it->line);
  cJSON *j = cJSON_CreateObject();
  char *js = j && cJSON_AddStringToObject(j, "text", it->text.p) ? cJSON_PrintUnformatted(j) : NULL;
  if (!js || vklm_buf_append(&it->line, js, strlen(js)) || vklm_buf_putc(&it->line, '\n'))
    it->drop = VKLM_DROP_EMPTY;
  cJSON_free(js);
  cJSON_Delete(j);
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


typedef struct run {
  const vklm_prepare_opts *o;
  vklm_prepare_stats *st;
  vklm_dedup_set *set;
  const vklm_reader *rd; /* for the bytes-read counter of the progress line */
  FILE *out;             /* final output (.tmp) or, with near-dedup, the pass-1 temp JSONL */
  FILE *sigf, *lenf;
  uint64_t pass1; /* documents written to the pass-1 files */
  double t0, last_print;
} run;

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

/* Consumes a processed batch in input order. Returns 0 or -1 (I/O or memory). */
static int consume(run *r, batch *b, int k) {
  vklm_prepare_stats *st = r->st;
  for (int i = 0; i < b->n; i++) {
    item *it = &b->it[i];
    st->docs_read++;
    st->bytes_read += it->bytes[0];
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
        continue;
      }
    }
    ex->docs_out++;
    ex->bytes_out += n;
    if (fwrite(it->line.p, 1, it->line.n, r->out) != it->line.n) return -1;
    if (r->sigf) {
      if (fwrite(it->sig, sizeof(uint32_t), (size_t)k, r->sigf) != (size_t)k ||
          fwrite(&n, sizeof n, 1, r->lenf) != 1)
        return -1;
      r->pass1++;
    } else {
      st->docs_out++;
      st->bytes_out += n;
    }
  }
  progress(r, 0);
  return 0;
}

/* Fills a batch from the reader. Returns the number of items, or -1 when memory runs out. */
static int fill(vklm_reader *rd, batch *b, int *done) {
  b->n = 0;
  b->bytes = 0;
  while (!*done && b->n < BATCH_DOCS && b->bytes < BATCH_BYTES) {
    item *it = &b->it[b->n];
    if (it->text.cap > KEEP_CAP) vklm_buf_free(&it->text); /* bound what idle items retain */
    if (it->line.cap > KEEP_CAP) vklm_buf_free(&it->line);
    uint32_t *sig = it->sig;
    vklm_buf text = it->text, line = it->line;
    memset(it, 0, sizeof *it);
    it->text = text;
    it->line = line;
    it->sig = sig;
    int rc = vklm_reader_next(rd, &it->text, &it->html);
    if (rc < 0) return -1;
    if (rc == 0) {
      *done = 1;
      break;
    }
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
    }
  free(b->it);
  free(b->sigs);
  free(b->tid);
}

static FILE *temp_file(const char *dir, const char *base, char *path, size_t n) {
  if (dir)
    snprintf(path, n, "%s/vklm-prepare.XXXXXX", dir);
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
    uint64_t n;
    if (got <= 0 || fread(&n, sizeof n, 1, r->lenf) != 1) {
      rc = vklm_data_fail(err, errlen, "near-dedup: temp file ended early at doc %" PRIu64, i);
      break;
    }
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
    if (fwrite(line, 1, (size_t)got, r->out) != (size_t)got)
      rc = vklm_data_fail(err, errlen, "writing output: %s", strerror(errno));
  }
  free(line);
  free(keep);
  return rc;
}

int vklm_prepare_run(const vklm_prepare_opts *o, vklm_prepare_stats *st, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  if (!o->output || !o->ninputs) return vklm_data_fail(err, errlen, "prepare: no input or no output");
  if (o->near.enabled && (o->near.bands < 1 || o->near.rows < 1 || o->near.ngram < 1 ||
                          vklm_minhash_count(&o->near) > 1024))
    return vklm_data_fail(err, errlen, "prepare: MinHash needs bands, rows, ngram >= 1, bands*rows <= 1024");
  run r = {.o = o, .st = st, .t0 = now()};
  ctx c = {o, NULL};
  vklm_reader *rd = NULL;
  batch b[2] = {0};
  worker_arg *args = NULL;
  FILE *tmp = NULL, *final_out = NULL;
  char outtmp[4096], tmppath[4096] = "", sigpath[4096] = "", lenpath[4096] = "";
  int rc = 0, k = o->near.enabled ? vklm_minhash_count(&o->near) : 0;
  int nthreads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 256) nthreads = 256;
  st->step_on[VKLM_STEP_HTML] = o->html;
  st->step_on[VKLM_STEP_CLEAN] = 1;
  st->step_on[VKLM_STEP_GOPHER_REP] = o->gopher_rep.enabled;
  st->step_on[VKLM_STEP_GOPHER_QUALITY] = o->gopher_quality.enabled;
  st->step_on[VKLM_STEP_C4] = o->c4.enabled;
  st->step_on[VKLM_STEP_FINEWEB] = o->fineweb.enabled;
  st->step_on[VKLM_STEP_SCRUB] = o->scrub_emails || o->scrub_ips;
  st->step_on[VKLM_STEP_EXACT] = o->exact_dedup;
  st->step_on[VKLM_STEP_NEAR] = o->near.enabled;

  vklm_html_init();
  snprintf(outtmp, sizeof outtmp, "%s.tmp", o->output);
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
    tmp = temp_file(o->tmp_dir, o->output, tmppath, sizeof tmppath);
    r.sigf = temp_file(o->tmp_dir, o->output, sigpath, sizeof sigpath);
    r.lenf = temp_file(o->tmp_dir, o->output, lenpath, sizeof lenpath);
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
  if (fill(rd, &b[cur], &done) < 0) {
    rc = vklm_data_fail(err, errlen, "prepare: out of memory reading input");
    goto done;
  }
  if (b[cur].n) batch_start(&b[cur], args, &c);
  while (b[cur].n) {
    batch *nb = &b[cur ^ 1];
    worker_arg *nargs = args; /* both batches share the argument array: only one runs at once */
    int got = fill(rd, nb, &done);
    batch_join(&b[cur]);
    if (got < 0) {
      rc = vklm_data_fail(err, errlen, "prepare: out of memory reading input");
      goto done;
    }
    if (nb->n) batch_start(nb, nargs, &c);
    if (consume(&r, &b[cur], k)) {
      batch_join(nb);
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
  char statpath[4096];
  snprintf(statpath, sizeof statpath, "%s.stats.json", o->output);
  const char *sp = o->stats_path ? o->stats_path : statpath;
  if (!rc && sp[0] && vklm_prepare_stats_write(st, sp))
    rc = vklm_data_fail(err, errlen, "prepare: cannot write stats to %s", sp);
  return rc;
}

/* The merge of sharded prepare outputs: a k-way merge by doc_index, exact dedup across the
 * shards, MinHash near-dedup over the survivors in input order, then the kept lines
 * (shard_merge.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "data/buf.h"
#include "data/shard_merge.h"
#include "data/steps.h"

#define INDEX_KEY ",\"doc_index\":"

void vklm_merge_default(vklm_merge_opts *o) {
  memset(o, 0, sizeof *o);
  o->exact_dedup = 1;
  vklm_minhash_default(&o->near);
}

typedef struct source {
  const char *path;
  FILE *f;
  char *line; /* the current line (getline's buffer) */
  size_t cap;
  ssize_t len; /* its length, without the part from INDEX_KEY on: "...}\n" is appended */
  uint64_t lineno;
  int64_t doc; /* its doc_index; -1 at the end of the file */
  char *text;  /* owned: its text */
} source;

/* Reads the next line of s; s->doc = -1 at the end. */
static int next_line(source *s, char *err, size_t errlen) {
  free(s->text);
  s->text = NULL;
  errno = 0;
  ssize_t got = getline(&s->line, &s->cap, s->f);
  if (got < 0) {
    if (errno) return vklm_data_fail(err, errlen, "merge: reading %s: %s", s->path, strerror(errno));
    s->doc = -1;
    return 0;
  }
  s->lineno++;
  cJSON *j = cJSON_ParseWithLength(s->line, (size_t)got);
  const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
  const cJSON *d = j ? cJSON_GetObjectItemCaseSensitive(j, "doc_index") : NULL;
  char *key = strstr(s->line, INDEX_KEY);
  for (char *k = key; k; k = strstr(k + 1, INDEX_KEY)) key = k; /* the last one */
  if (!cJSON_IsString(t) || !cJSON_IsNumber(d) || d->valuedouble < 0 || !key) {
    cJSON_Delete(j);
    return vklm_data_fail(err, errlen, "merge: %s line %" PRIu64 ": not the output of a sharded "
                          "prepare (a JSON object with \"text\" and, last, \"doc_index\")",
                          s->path, s->lineno);
  }
  int64_t doc = (int64_t)d->valuedouble;
  if (s->doc >= 0 && doc <= s->doc) {
    cJSON_Delete(j);
    return vklm_data_fail(err, errlen, "merge: %s line %" PRIu64 ": doc_index %" PRId64
                          " after %" PRId64 " (the lines of a shard are in input order)",
                          s->path, s->lineno, doc, s->doc);
  }
  s->doc = doc;
  s->text = strdup(t->valuestring);
  cJSON_Delete(j);
  if (!s->text) return vklm_data_fail(err, errlen, "merge: out of memory");
  s->len = key - s->line;
  return 0;
}

/* The line of s without its doc_index: "{...}\n". */
static int put_line(FILE *out, const source *s) {
  return fwrite(s->line, 1, (size_t)s->len, out) != (size_t)s->len || fputs("}\n", out) < 0;
}

int vklm_prepare_merge(const vklm_merge_opts *o, vklm_merge_stats *st, char *err,
                       size_t errlen) {
  memset(st, 0, sizeof *st);
  if (o->ninputs < 1) return vklm_data_fail(err, errlen, "merge: no shard outputs given");
  if (o->near.enabled && (o->near.bands < 1 || o->near.rows < 1 || o->near.ngram < 1 ||
                          vklm_minhash_count(&o->near) > 1024))
    return vklm_data_fail(err, errlen, "merge: bad MinHash options");
  int k = o->near.enabled ? vklm_minhash_count(&o->near) : 0, rc = 0;
  source *src = calloc((size_t)o->ninputs, sizeof *src);
  uint32_t *sig = malloc((size_t)(k ? k : 1) * sizeof *sig);
  uint64_t *bytes = NULL, nbytes = 0, capbytes = 0; /* near: each survivor's text bytes */
  vklm_dedup_set *set = NULL;
  FILE *out = NULL, *tmp = NULL, *sigf = NULL;
  char outtmp[4096], tmppath[4096] = "", sigpath[4096] = "";
  snprintf(outtmp, sizeof outtmp, "%s.tmp", o->output);
  if (!src || !sig || (o->exact_dedup && vklm_dedup_set_create(&set))) {
    rc = vklm_data_fail(err, errlen, "merge: out of memory");
    goto done;
  }
  for (int i = 0; i < o->ninputs && !rc; i++) {
    src[i].path = o->inputs[i];
    src[i].doc = -1;
    if (!(src[i].f = fopen(src[i].path, "rb")))
      rc = vklm_data_fail(err, errlen, "merge: cannot open %s: %s", src[i].path, strerror(errno));
    else
      rc = next_line(&src[i], err, errlen);
  }
  if (rc) goto done;
  if (!(out = fopen(outtmp, "wb"))) {
    rc = vklm_data_fail(err, errlen, "merge: cannot create %s: %s", outtmp, strerror(errno));
    goto done;
  }
  if (k) {
    tmp = vklm_data_temp_file(o->tmp_dir, "merge", o->output, tmppath, sizeof tmppath);
    sigf = vklm_data_temp_file(o->tmp_dir, "merge", o->output, sigpath, sizeof sigpath);
    if (!tmp || !sigf) {
      rc = vklm_data_fail(err, errlen, "merge: cannot create temp files next to %s: %s",
                          o->output, strerror(errno));
      goto done;
    }
  }
  /* Pass 1: the documents in input order; exact dedup; signatures of the survivors. */
  int64_t last = -1;
  for (;;) {
    int best = -1;
    for (int i = 0; i < o->ninputs; i++)
      if (src[i].doc >= 0 && (best < 0 || src[i].doc < src[best].doc)) best = i;
    if (best < 0) break;
    source *s = &src[best];
    if (s->doc == last) {
      rc = vklm_data_fail(err, errlen, "merge: doc_index %" PRId64 " is in two shards (%s and "
                          "another): the shards overlap", s->doc, s->path);
      break;
    }
    last = s->doc;
    st->docs_in++;
    size_t n = strlen(s->text);
    int fresh = 1;
    if (set) {
      uint64_t h[2];
      vklm_hash128(s->text, n, h);
      if ((fresh = vklm_dedup_set_insert(set, h)) < 0) {
        rc = vklm_data_fail(err, errlen, "merge: out of memory");
        break;
      }
    }
    if (!fresh) {
      st->exact_removed++;
    } else if (k) {
      vklm_minhash_signature(&o->near, s->text, n, sig);
      if (nbytes == capbytes) {
        capbytes = capbytes ? 2 * capbytes : 4096;
        uint64_t *nb = realloc(bytes, capbytes * sizeof *nb);
        if (!nb) {
          rc = vklm_data_fail(err, errlen, "merge: out of memory");
          break;
        }
        bytes = nb;
      }
      bytes[nbytes++] = n;
      if (fwrite(sig, sizeof *sig, (size_t)k, sigf) != (size_t)k || put_line(tmp, s)) {
        rc = vklm_data_fail(err, errlen, "merge: writing temp files: %s", strerror(errno));
        break;
      }
    } else {
      if (put_line(out, s)) {
        rc = vklm_data_fail(err, errlen, "merge: writing %s: %s", outtmp, strerror(errno));
        break;
      }
      st->docs_out++;
      st->bytes_out += n;
    }
    if ((rc = next_line(s, err, errlen))) break;
  }
  if (rc) goto done;
  /* Pass 2 (near-dedup): cluster the signatures, copy the kept lines. */
  if (k && nbytes) {
    uint8_t *keep = malloc(nbytes);
    size_t sz = (size_t)nbytes * (size_t)k * sizeof(uint32_t);
    void *map = MAP_FAILED;
    if (!keep || fflush(sigf) || fflush(tmp) ||
        (map = mmap(NULL, sz, PROT_READ, MAP_PRIVATE, fileno(sigf), 0)) == MAP_FAILED ||
        vklm_minhash_cluster(&o->near, map, nbytes, keep, &st->near) || fseek(tmp, 0, SEEK_SET))
      rc = vklm_data_fail(err, errlen, "merge: near-dedup of %" PRIu64 " documents failed (%s)",
                          nbytes, strerror(errno));
    if (map != MAP_FAILED) munmap(map, sz);
    char *line = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; !rc && i < nbytes; i++) {
      ssize_t got = getline(&line, &cap, tmp);
      if (got <= 0) {
        rc = vklm_data_fail(err, errlen, "merge: temp file ended early at doc %" PRIu64, i);
        break;
      }
      if (!keep[i]) {
        st->near_removed++;
        continue;
      }
      st->docs_out++;
      st->bytes_out += bytes[i];
      if (fwrite(line, 1, (size_t)got, out) != (size_t)got)
        rc = vklm_data_fail(err, errlen, "merge: writing %s: %s", outtmp, strerror(errno));
    }
    free(line);
    free(keep);
  }
  if (!rc && (fflush(out) || fsync(fileno(out))))
    rc = vklm_data_fail(err, errlen, "merge: writing %s: %s", outtmp, strerror(errno));
  if (out) fclose(out);
  out = NULL;
  if (!rc && rename(outtmp, o->output))
    rc = vklm_data_fail(err, errlen, "merge: rename %s -> %s: %s", outtmp, o->output,
                        strerror(errno));
  if (!rc && o->progress)
    fprintf(stderr, "merge: %" PRIu64 " documents from %d shard(s): %" PRIu64 " exact and %" PRIu64
            " near duplicates across shards removed, %" PRIu64 " written to %s\n", st->docs_in,
            o->ninputs, st->exact_removed, st->near_removed, st->docs_out, o->output);
done:
  if (out) fclose(out);
  if (rc) unlink(outtmp);
  if (tmp) fclose(tmp);
  if (sigf) fclose(sigf);
  if (tmppath[0]) unlink(tmppath);
  if (sigpath[0]) unlink(sigpath);
  for (int i = 0; src && i < o->ninputs; i++) {
    if (src[i].f) fclose(src[i].f);
    free(src[i].line);
    free(src[i].text);
  }
  free(src);
  free(sig);
  free(bytes);
  vklm_dedup_set_destroy(set);
  return rc;
}

/* Sharded `vklm data prepare` / `tokenize` (--shard i/N, or one shard per MPI rank under mpirun)
 * and `vklm data merge`, which combines the outputs of sharded prepare runs with exact and
 * near-duplicate detection across the shards (engine/data/shard_merge.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/shard_merge.h"
#include "data_cmds.h"
#include "dist/dist.h"
#include "flags.h"

/* "i/N" with 0 <= i < N. */
static int parse_shard(const char *cmd, const char *v, uint32_t *i, uint32_t *n) {
  char *end;
  errno = 0;
  unsigned long a = strtoul(v, &end, 10);
  if (*end == '/' && end > v && v[0] != '-') {
    const char *b = end + 1;
    unsigned long c = strtoul(b, &end, 10);
    if (!*end && end > b && b[0] != '-' && !errno && c >= 1 && c <= 1u << 20 && a < c) {
      *i = (uint32_t)a;
      *n = (uint32_t)c;
      return 0;
    }
  }
  fprintf(stderr, "vklm data %s: --shard wants i/N with 0 <= i < N (e.g. 0/4), not '%s'\n", cmd,
          v);
  return 2;
}

static void part_name(char *buf, size_t n, const char *output, int r, int N) {
  snprintf(buf, n, "%s.shard-%03dof%03d", output, r, N);
}

int data_prepare_run(vklm_prepare_opts *o, const char *shard, vklm_prepare_stats *st, int *quiet) {
  char err[1024] = "";
  if (shard) {
    uint32_t i, n;
    if (parse_shard("prepare", shard, &i, &n)) return 2;
    o->shard = i;
    o->nshards = n;
    if (n > 1) o->near.enabled = 0; /* across the shards: `vklm data merge` */
    int rc = vklm_prepare_run(o, st, err, sizeof err);
    if (rc) fprintf(stderr, "vklm data: %s\n", err);
    else if (n > 1 && !*quiet)
      fprintf(stderr, "prepare: shard %u of %u written to %s; near duplicates across the shards "
              "are removed by `vklm data merge`\n", i, n, o->output);
    return rc ? 1 : 0;
  }
  vklm_dist *d = NULL;
  if (vklm_dist_init(&d, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm data prepare: %s\n", err);
    return 1;
  }
  int N = vklm_dist_size(d), r = vklm_dist_rank(d);
  if (N == 1) {
    vklm_dist_finalize(d);
    int rc = vklm_prepare_run(o, st, err, sizeof err);
    if (rc) fprintf(stderr, "vklm data: %s\n", err);
    return rc ? 1 : 0;
  }
  /* Under mpirun: rank r prepares shard r/N, rank 0 merges. */
  const char *output = o->output;
  vklm_minhash_opts near = o->near;
  char part[4096];
  part_name(part, sizeof part, output, r, N);
  o->output = part;
  o->shard = (uint32_t)r;
  o->nshards = (uint32_t)N;
  o->near.enabled = 0;
  if (r != 0) {
    *quiet = 1;
    o->progress = 0;
  }
  int rc = vklm_prepare_run(o, st, err, sizeof err);
  char e2[1200];
  vklm_status s = vklm_dist_exchange(d, "prepare", !rc, rc ? VKLM_ERROR_IO : VKLM_OK, err, 0,
                                     NULL, 0, NULL, NULL, e2, sizeof e2);
  if (s == VKLM_OK && r == 0) {
    char **names = calloc((size_t)N, sizeof *names);
    vklm_merge_opts mo;
    vklm_merge_default(&mo);
    mo.ninputs = N;
    mo.output = output;
    mo.tmp_dir = o->tmp_dir;
    mo.exact_dedup = o->exact_dedup;
    mo.near = near;
    mo.progress = !*quiet;
    rc = names ? 0 : -1;
    for (int i = 0; i < N && !rc; i++)
      if (!(names[i] = malloc(4096))) rc = -1;
      else part_name(names[i], 4096, output, i, N);
    mo.inputs = (const char *const *)names;
    vklm_merge_stats ms;
    if (rc) snprintf(err, sizeof err, "merge: out of memory");
    else rc = vklm_prepare_merge(&mo, &ms, err, sizeof err);
    for (int i = 0; !rc && i < N; i++) unlink(names[i]); /* merged: the parts are spent */
    for (int i = 0; names && i < N; i++) free(names[i]);
    free(names);
  }
  if (s == VKLM_OK) /* rank 0's merge, for every rank's exit status */
    s = vklm_dist_exchange(d, "merge", !rc, rc ? VKLM_ERROR_IO : VKLM_OK, err, 0, NULL, 0, NULL,
                           NULL, e2, sizeof e2);
  if (s != VKLM_OK && (r == 0 || rc)) fprintf(stderr, "vklm data prepare: rank %d: %s\n", r, e2);
  vklm_dist_finalize(d);
  return s == VKLM_OK ? 0 : 1;
}

int data_tokenize_run(vklm_tokenize_opts *o, const char *shard, vklm_tokenize_stats *st,
                      int *quiet) {
  char err[1024] = "";
  vklm_dist *d = NULL;
  if (shard) {
    uint32_t i, n;
    if (parse_shard("tokenize", shard, &i, &n)) return 2;
    o->shard = i;
    o->nshards = n;
  } else if (vklm_dist_init(&d, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm data tokenize: %s\n", err);
    return 1;
  } else if (vklm_dist_size(d) > 1) { /* under mpirun: rank r tokenizes shard r/N */
    o->shard = (uint32_t)vklm_dist_rank(d);
    o->nshards = (uint32_t)vklm_dist_size(d);
    if (o->shard != 0) {
      *quiet = 1;
      o->progress = 0;
    }
  }
  int rc = vklm_tokenize_run(o, st, err, sizeof err);
  if (vklm_dist_size(d) > 1) {
    double v[8] = {(double)st->docs, (double)st->docs_train, (double)st->docs_val,
                   (double)st->tokens_train, (double)st->tokens_val, (double)st->shards_train,
                   (double)st->shards_val, (double)st->lines_malformed};
    char e2[1200];
    vklm_status s = vklm_dist_exchange(d, "tokenize", !rc, rc ? VKLM_ERROR_IO : VKLM_OK, err, 0,
                                       v, 8, NULL, NULL, e2, sizeof e2);
    if (s != VKLM_OK) {
      if (vklm_dist_rank(d) == 0 || rc) fprintf(stderr, "vklm data tokenize: %s\n", e2);
      vklm_dist_finalize(d);
      return 1;
    }
    st->docs = (uint64_t)v[0], st->docs_train = (uint64_t)v[1], st->docs_val = (uint64_t)v[2];
    st->tokens_train = (uint64_t)v[3], st->tokens_val = (uint64_t)v[4];
    st->shards_train = (uint64_t)v[5], st->shards_val = (uint64_t)v[6];
    st->lines_malformed = (uint64_t)v[7];
  } else if (rc) {
    fprintf(stderr, "vklm data: %s\n", err);
  }
  vklm_dist_finalize(d);
  return rc ? 1 : 0;
}

int cmd_data_merge(int argc, char **argv) {
  vklm_merge_opts o;
  vklm_merge_default(&o);
  int quiet = 0;
  const app_flag fl[] = {
      AF_STRING("--output", "-o", &o.output, "S", "output JSONL (required)"),
      AF_STRING("--tmp-dir", NULL, &o.tmp_dir, "S", "directory for temp files (default: next to output)"),
      AF_FLAG("--no-exact-dedup", NULL, AF_OFF, &o.exact_dedup, 0, 0, NULL, "keep exact duplicates across shards"),
      AF_FLAG("--no-near-dedup", NULL, AF_OFF, &o.near.enabled, 0, 0, NULL, "keep near duplicates"),
      AF_FLAG("--minhash-bands", NULL, AF_I32, &o.near.bands, 1, 1024, "N", "(20)"),
      AF_FLAG("--minhash-rows", NULL, AF_I32, &o.near.rows, 1, 256, "N", "(6)"),
      AF_FLAG("--minhash-ngram", NULL, AF_I32, &o.near.ngram, 1, 1024, "N", "words per shingle (5)"),
      AF_FLAG("--minhash-threshold", NULL, AF_F64, &o.near.threshold, 0, 1, "X", "estimated Jaccard to merge (0.7)"),
      AF_FLAG("--minhash-seed", NULL, AF_U64, &o.near.seed, 0, 18446744073709551615.0, "N", "(1)"),
      AF_FLAG("--quiet", NULL, AF_ON, &quiet, 0, 0, NULL, "no summary"),
      AF_LAST};
  const char **pos = calloc((size_t)argc + 1, sizeof *pos);
  int npos = 0;
  if (!pos) return 1;
  const app_command cmd = {
      "data merge", "data merge -o cleaned.jsonl [flags] SHARD_OUTPUT...",
      "Combines the outputs of `vklm data prepare --shard i/N` runs (any order) into the\n"
      "output one unsharded run gives: exact and near duplicates across the shards are\n"
      "removed (the first in input order kept). Give the MinHash flags of the runs.",
      fl, 0, argc, 0};
  int rc = app_flags_parse(&cmd, argc, argv, NULL, pos, &npos);
  if (!rc && (!o.output || !npos))
    rc = app_flags_missing(&cmd, "give -o OUTPUT and the shard outputs");
  if (rc) {
    free(pos);
    return rc == 1 ? 0 : rc;
  }
  o.inputs = pos;
  o.ninputs = npos;
  o.progress = !quiet;
  vklm_merge_stats st;
  char err[1024] = "";
  rc = vklm_prepare_merge(&o, &st, err, sizeof err);
  if (rc) fprintf(stderr, "vklm data: %s\n", err);
  free(pos);
  return rc ? 1 : 0;
}

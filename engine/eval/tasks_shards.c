/* eval token shards: `shards:PATH` as a perplexity task. PATH is a shard file (data/shard.h) or a
 * directory, whose val_*.bin shards are read in name order. The token stream is split before
 * every end-of-text id into documents ([eot] + tokens, as `vklm data tokenize` writes them); each
 * document is an item holding its ids, scored like a text document (run.c decodes the ids with
 * the model's tokenizer for the byte and word counts). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/shard.h"
#include "eval/eval.h"
#include "eval/eval_internal.h"

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* appends the documents of one shard file to t */
static int add_shard(vklm_eval_task *t, const char *path, char *err, size_t errlen) {
  vklm_shard *s = NULL;
  if (vklm_shard_open(path, &s, err, errlen)) return -1;
  uint64_t n = vklm_shard_count(s);
  int32_t eot = vklm_shard_eot(s);
  uint32_t *u = malloc(sizeof(uint32_t) * (n ? n : 1));
  int rc = -1;
  if (!u) { snprintf(err, errlen, "out of memory"); goto done; }
  if (n && vklm_shard_read(s, 0, n, u)) { snprintf(err, errlen, "%s: cannot read its tokens", path); goto done; }
  for (uint64_t i = 0; i < n;) {
    uint64_t j = i + 1;
    while (j < n && (eot < 0 || (int32_t)u[j] != eot)) j++;
    if (j - i > 0xFFFFFFFFull) { snprintf(err, errlen, "%s: a document of more than 2^32 tokens", path); goto done; }
    vklm_eval_item *it = vklm_eval_task_add_item(t);
    if (!it || !(it->ids = malloc(sizeof(int32_t) * (j - i)))) { snprintf(err, errlen, "out of memory"); goto done; }
    for (uint64_t k = i; k < j; k++) it->ids[k - i] = (int32_t)u[k];
    it->nids = (uint32_t)(j - i);
    it->line = t->n;
    i = j;
  }
  rc = 0;
done:
  free(u);
  vklm_shard_close(s);
  return rc;
}

int vklm_eval_task_load_shards(const char *path, vklm_eval_task **out, char *err, size_t errlen) {
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb)) return snprintf(err, errlen, "%s: no such shard file or directory", path), -1;
  vklm_eval_task *t = calloc(1, sizeof *t);
  if (!t) return snprintf(err, errlen, "out of memory"), -1;
  const char *b = strrchr(path, '/');
  snprintf(t->name, sizeof t->name, "%s", b && b[1] ? b + 1 : path);
  snprintf(t->path, sizeof t->path, "%s", path);
  t->kind = VKLM_TASK_PPL;
  char **names = NULL;
  size_t nn = 0, cap = 0;
  int rc = -1;
  if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d) { snprintf(err, errlen, "%s: cannot list the directory", path); goto done; }
    while ((e = readdir(d))) {
      size_t l = strlen(e->d_name);
      if (strncmp(e->d_name, "val_", 4) || l < 8 || strcmp(e->d_name + l - 4, ".bin")) continue;
      if (nn == cap) {
        char **p = realloc(names, sizeof(char *) * (cap = cap ? cap * 2 : 16));
        if (!p) break;
        names = p;
      }
      size_t need = strlen(path) + l + 2;
      if (!(names[nn] = malloc(need))) break;
      snprintf(names[nn++], need, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (!nn) { snprintf(err, errlen, "%s: no val_*.bin shards in the directory (name a shard file)", path); goto done; }
    qsort(names, nn, sizeof *names, cmp);
    for (size_t i = 0; i < nn; i++)
      if (add_shard(t, names[i], err, errlen)) goto done;
  } else if (add_shard(t, path, err, errlen)) {
    goto done;
  }
  if (!t->n) { snprintf(err, errlen, "%s: the shards hold no tokens", path); goto done; }
  *out = t, t = NULL;
  rc = 0;
done:
  for (size_t i = 0; i < nn; i++) free(names[i]);
  free(names);
  vklm_eval_task_free(t);
  return rc;
}

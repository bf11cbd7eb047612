/* Language identification on libexttextcat's fingerprint API (see langid.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libexttextcat/fingerprint.h>

#include "data/buf.h"
#include "data/langid.h"
#include "data/steps.h"

enum { MAX_NGRAMS = 400 /* the models' size (libexttextcat's MAXNGRAMS) */ };

struct vklm_langid {
  int n;
  char (*code)[VKLM_LANG_CODE_MAX]; /* owned */
  void **fp;                        /* owned: one fingerprint per language */
  size_t max_bytes;
};

int vklm_lang_code_valid(const char *s, size_t n) {
  if (n < 1 || n >= VKLM_LANG_CODE_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-') return 0;
  return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

/* Moves the languages named in dir/fpdb.conf (libexttextcat's list, most spoken languages first)
 * to the front, in its order: the best candidates come early, and the cut-off at the runner-up's
 * distance then ends most other comparisons early. The result does not depend on the order. */
static void order_by_conf(const char *dir, char (*names)[VKLM_LANG_CODE_MAX], int n) {
  char path[4096], line[512];
  snprintf(path, sizeof path, "%s/fpdb.conf", dir);
  FILE *f = fopen(path, "r");
  if (!f) return;
  int front = 0;
  while (front < n && fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    size_t len = strcspn(line, " \t\r\n");
    if (len < 4 || strncmp(line + len - 3, ".lm", 3)) continue;
    len -= 3;
    for (int i = front; i < n; i++)
      if (strlen(names[i]) == len && !strncmp(names[i], line, len)) {
        char t[VKLM_LANG_CODE_MAX];
        memcpy(t, names[i], sizeof t);
        memmove(names[front + 1], names[front], (size_t)(i - front) * sizeof *names);
        memcpy(names[front++], t, sizeof t);
        break;
      }
  }
  fclose(f);
}

static int add(vklm_langid *l, const char *dir, const char *code, size_t cn, char *err,
               size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%.*s.lm", dir, (int)cn, code);
  if (access(path, R_OK)) /* before libexttextcat, which prints its own message */
    return vklm_data_fail(err, errlen, "langid: no readable model for '%.*s' (%s: %s)", (int)cn,
                          code, path, strerror(errno));
  void *fp = fp_Init(NULL);
  if (!fp) return vklm_data_fail(err, errlen, "langid: out of memory");
  fp_SetProperty(fp, TCPROP_UTF8AWARE, TC_TRUE);
  if (fp_Read(fp, path, MAX_NGRAMS) == 0) {
    fp_Done(fp);
    return vklm_data_fail(err, errlen, "langid: cannot read the language model %s", path);
  }
  memcpy(l->code[l->n], code, cn);
  l->code[l->n][cn] = 0;
  l->fp[l->n++] = fp;
  return 0;
}

int vklm_langid_create(const char *models_dir, const char *candidates, size_t max_bytes,
                       vklm_langid **out, char *err, size_t errlen) {
  *out = NULL;
  const char *dir = models_dir && models_dir[0] ? models_dir : VKLM_LANGID_DEFAULT_DIR;
  vklm_langid *l = calloc(1, sizeof *l);
  if (!l) return vklm_data_fail(err, errlen, "langid: out of memory");
  l->max_bytes = max_bytes ? max_bytes : 2048;
  char (*names)[VKLM_LANG_CODE_MAX] = NULL;
  int nn = 0, cap = 0, rc = 0;
  if (candidates && candidates[0]) {
    for (const char *p = candidates; *p;) {
      size_t len = strcspn(p, ",");
      if (!vklm_lang_code_valid(p, len)) {
        rc = vklm_data_fail(err, errlen, "langid: bad language code '%.*s' in '%s'", (int)len, p,
                            candidates);
        goto done;
      }
      if (nn == cap) {
        cap = cap ? 2 * cap : 16;
        void *q = realloc(names, (size_t)cap * sizeof *names);
        if (!q) goto oom;
        names = q;
      }
      memcpy(names[nn], p, len);
      names[nn++][len] = 0;
      p += len + (p[len] == ',');
    }
  } else {
    DIR *d = opendir(dir);
    if (!d) {
      rc = vklm_data_fail(err, errlen, "langid: cannot open the model directory %s "
                                       "(install libexttextcat-data)", dir);
      goto done;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
      size_t len = strlen(e->d_name);
      if (len < 4 || strcmp(e->d_name + len - 3, ".lm") || !vklm_lang_code_valid(e->d_name, len - 3))
        continue;
      if (nn == cap) {
        cap = cap ? 2 * cap : 64;
        void *q = realloc(names, (size_t)cap * sizeof *names);
        if (!q) {
          closedir(d);
          goto oom;
        }
        names = q;
      }
      memcpy(names[nn], e->d_name, len - 3);
      names[nn++][len - 3] = 0;
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str); /* readdir order is not stable */
    order_by_conf(dir, names, nn);
  }
  if (!nn) {
    rc = vklm_data_fail(err, errlen, "langid: no language models in %s", dir);
    goto done;
  }
  l->code = calloc((size_t)nn, sizeof *l->code);
  l->fp = calloc((size_t)nn, sizeof *l->fp);
  if (!l->code || !l->fp) goto oom;
  for (int i = 0; i < nn && !rc; i++)
    rc = add(l, dir, names[i], strlen(names[i]), err, errlen);
  goto done;
oom:
  rc = vklm_data_fail(err, errlen, "langid: out of memory");
done:
  free(names);
  if (rc)
    vklm_langid_destroy(l);
  else
    *out = l;
  return rc;
}

void vklm_langid_destroy(vklm_langid *l) {
  if (!l) return;
  for (int i = 0; i < l->n; i++)
    fp_Done(l->fp[i]);
  free(l->fp);
  free(l->code);
  free(l);
}

int vklm_langid_count(const vklm_langid *l) { return l->n; }
const char *vklm_langid_code(const vklm_langid *l, int i) { return l->code[i]; }

int vklm_langid_find(const vklm_langid *l, const char *code, size_t n) {
  for (int i = 0; i < l->n; i++)
    if (strlen(l->code[i]) == n && !memcmp(l->code[i], code, n)) return i;
  return -1;
}

int vklm_langid_detect(const vklm_langid *l, const char *s, size_t n, vklm_lang_result *r) {
  strcpy(r->code, "und");
  r->score = 0;
  r->index = -1;
  if (n > l->max_bytes) { /* cut on a code point boundary */
    n = l->max_bytes;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
  }
  if (!vklm_words_has_alpha(s, n)) return 0; /* nothing to judge: digits, punctuation, symbols */
  void *u = fp_Init(NULL);
  if (!u) return -1;
  fp_SetProperty(u, TCPROP_UTF8AWARE, TC_TRUE);
  fp_SetProperty(u, TCPROP_MINIMUM_DOCUMENT_SIZE, 1);
  if (n == 0 || fp_Create(u, s, (unsigned)n, MAX_NGRAMS) == 0) {
    fp_Done(u);
    return 0;
  }
  long d1 = LONG_MAX, d2 = LONG_MAX;
  int best = -1;
  for (int i = 0; i < l->n; i++) {
    /* distances past the runner-up need not be exact: cut the sum off there */
    long d = fp_Compare(l->fp[i], u, d2 > INT_MAX ? INT_MAX : (int)d2);
    if (d < d1) {
      d2 = d1;
      d1 = d;
      best = i;
    } else if (d < d2) {
      d2 = d;
    }
  }
  fp_Done(u);
  if (best < 0) return 0;
  strcpy(r->code, l->code[best]);
  r->index = best;
  r->score = d2 == LONG_MAX || d2 <= 0 ? (d1 < d2 ? 1.0 : 0.0) : (double)(d2 - d1) / (double)d2;
  return 0;
}

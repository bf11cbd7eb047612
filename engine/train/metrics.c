/* The metrics history and its JSONL log (one object per step; val_loss only where measured). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/train.h"

void vklm_metrics_add(vklm_metrics *h, const vklm_metric *r) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 256;
    vklm_metric *rows = realloc(h->rows, cap * sizeof *rows);
    VKLM_ASSERT(rows, "out of host memory for the metrics");
    h->rows = rows;
    h->cap = cap;
  }
  h->rows[h->n++] = *r;
}

void vklm_metrics_free(vklm_metrics *h) {
  free(h->rows);
  memset(h, 0, sizeof *h);
}

static void add_num(char *buf, size_t n, size_t *at, const char *key, double v, const char *fmt) {
  if (*at >= n) return;
  if (!isfinite(v)) {
    *at += (size_t)snprintf(buf + *at, n - *at, ",\"%s\":null", key);
    return;
  }
  *at += (size_t)snprintf(buf + *at, n - *at, ",\"%s\":", key);
  if (*at < n) *at += (size_t)snprintf(buf + *at, n - *at, fmt, v);
}

void vklm_metric_json(const vklm_metric *r, char *buf, size_t n) {
  size_t at = (size_t)snprintf(buf, n, "{\"step\":%u", r->step);
  if (r->step > 0 || isfinite(r->train_loss)) add_num(buf, n, &at, "train_loss", r->train_loss, "%.9g");
  if (!isnan(r->val_loss)) add_num(buf, n, &at, "val_loss", r->val_loss, "%.9g");
  add_num(buf, n, &at, "lr", r->lr, "%.9g");
  add_num(buf, n, &at, "grad_norm", r->grad_norm, "%.6g");
  add_num(buf, n, &at, "tokens_per_s", r->tokens_per_s, "%.1f");
  add_num(buf, n, &at, "elapsed_s", r->elapsed_s, "%.3f");
  if (at < n) snprintf(buf + at, n - at, "}");
}

static double num(const cJSON *o, const char *key) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

vklm_status vklm_metrics_load(vklm_metrics *h, const char *path, uint32_t max_step, char *err,
                              size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) return VKLM_OK;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    cJSON *o = cJSON_Parse(line);
    if (!o) continue; /* a torn last line of a killed run */
    vklm_metric r;
    double s = num(o, "step");
    r.step = isfinite(s) ? (uint32_t)s : 0;
    r.train_loss = (float)num(o, "train_loss");
    r.val_loss = (float)num(o, "val_loss");
    r.lr = (float)num(o, "lr");
    r.grad_norm = (float)num(o, "grad_norm");
    r.tokens_per_s = num(o, "tokens_per_s");
    r.elapsed_s = num(o, "elapsed_s");
    cJSON_Delete(o);
    if (isfinite(s) && r.step <= max_step) vklm_metrics_add(h, &r);
  }
  free(line);
  fclose(f);
  return VKLM_OK;
}

vklm_status vklm_metrics_save(const vklm_metrics *h, const char *path, char *err, size_t errlen) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
    return VKLM_ERROR_IO;
  }
  char buf[512];
  for (size_t i = 0; i < h->n; i++) {
    vklm_metric_json(&h->rows[i], buf, sizeof buf);
    fprintf(f, "%s\n", buf);
  }
  int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    unlink(tmp);
    return VKLM_ERROR_IO;
  }
  return VKLM_OK;
}

vklm_status vklm_metrics_append(const vklm_metric *r, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "a");
  if (!f) {
    snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return VKLM_ERROR_IO;
  }
  char buf[512];
  vklm_metric_json(r, buf, sizeof buf);
  fprintf(f, "%s\n", buf);
  if (fclose(f) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return VKLM_ERROR_IO;
  }
  return VKLM_OK;
}

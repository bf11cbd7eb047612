/* Ranking sessions: the items to rank, the output JSONL appended (and synced) after every
 * prompt, resume by source line, undo, typed rankings and the simulated rater. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "align/align.h"
#include "io/file.h"

struct vklm_rank_session {
  char *path;
  const vklm_pref_set *items;
  const char *const *models;
  cJSON *meta;
  char *rater;
  uint8_t *done;      /* per item: already in the output */
  uint64_t ndone;
  uint64_t *history;  /* items this session wrote, in order (for undo) */
  uint64_t nhist;
};


vklm_status vklm_rank_open(const char *out_path, const vklm_pref_set *items,
                           const char *const *models, const char *meta_json, const char *rater,
                           vklm_rank_session **out, char *err, size_t errlen) {
  *out = NULL;
  vklm_rank_session *s = calloc(1, sizeof *s);
  if (!s) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  s->path = strdup(out_path);
  s->items = items;
  s->models = models;
  s->meta = meta_json ? cJSON_Parse(meta_json) : cJSON_CreateObject();
  s->rater = strdup(rater ? rater : "human");
  s->done = calloc(items->n ? items->n : 1, 1);
  s->history = malloc((items->n ? items->n : 1) * sizeof *s->history);
  if (!s->path || !s->meta || !s->rater || !s->done || !s->history) {
    vklm_rank_close(s);
    snprintf(err, errlen, "out of host memory (or bad metadata JSON)");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  size_t len = 0;
  char *text = NULL;
  struct stat sb;
  if (stat(out_path, &sb) == 0 && /* resume: the output exists; else a new one */
      vklm_file_read(out_path, VKLM_FILE_MAX_TEXT, 0, &text, &len, err, errlen) != VKLM_OK) {
    vklm_rank_close(s);
    return VKLM_ERROR_IO;
  }
  uint32_t line = 0;
  for (char *p = text; text && p < text + len;) { /* resume: items already in the output */
    char *nl = memchr(p, '\n', (size_t)(text + len - p));
    if (!nl) {
      vklm_rank_close(s);
      free(text);
      snprintf(err, errlen, "%s: the last line is incomplete (an interrupted write?): remove it "
               "to resume", out_path);
      return VKLM_ERROR_INVALID;
    }
    *nl = 0;
    line++;
    cJSON *j = cJSON_Parse(p);
    const cJSON *src = j ? cJSON_GetObjectItem(j, "source_line") : NULL;
    if (!cJSON_IsNumber(src)) {
      cJSON_Delete(j);
      vklm_rank_close(s);
      free(text);
      snprintf(err, errlen, "%s:%u: not a ranking line of vklm rank (no \"source_line\"): choose "
               "another output file", out_path, line);
      return VKLM_ERROR_INVALID;
    }
    for (uint64_t i = 0; i < items->n; i++)
      if (items->items[i].line == (uint32_t)src->valuedouble && !s->done[i]) s->done[i] = 1, s->ndone++;
    cJSON_Delete(j);
    p = nl + 1;
  }
  free(text);
  *out = s;
  return VKLM_OK;
}

void vklm_rank_close(vklm_rank_session *s) {
  if (!s) return;
  free(s->path);
  cJSON_Delete(s->meta);
  free(s->rater);
  free(s->done);
  free(s->history);
  free(s);
}

uint64_t vklm_rank_done(const vklm_rank_session *s) { return s->ndone; }
int vklm_rank_item_done(const vklm_rank_session *s, uint64_t i) {
  return i < s->items->n && s->done[i];
}

static int64_t current(const vklm_rank_session *s) {
  for (uint64_t i = 0; i < s->items->n; i++)
    if (!s->done[i]) return (int64_t)i;
  return -1;
}

const vklm_pref_item *vklm_rank_current(vklm_rank_session *s, uint64_t *index, uint64_t *total) {
  int64_t i = current(s);
  if (index) *index = s->ndone;
  if (total) *total = s->items->n;
  return i < 0 ? NULL : &s->items->items[i];
}

vklm_status vklm_rank_submit(vklm_rank_session *s, const int32_t *group, int all_bad, char *err,
                             size_t errlen) {
  int64_t i = current(s);
  if (i < 0) {
    snprintf(err, errlen, "every item is ranked");
    return VKLM_ERROR_INVALID;
  }
  const vklm_pref_item *it = &s->items->items[i];
  cJSON *j = cJSON_CreateObject(), *resp = cJSON_CreateArray(), *mods = cJSON_CreateArray();
  cJSON_AddStringToObject(j, "prompt", it->prompt);
  for (uint32_t k = 0; k < it->k; k++) {
    cJSON_AddItemToArray(resp, cJSON_CreateString(it->response[k]));
    const char *m = it->models ? it->models[k] : s->models ? s->models[0] : "";
    cJSON_AddItemToArray(mods, cJSON_CreateString(m));
  }
  cJSON_AddItemToObject(j, "responses", resp);
  if (group) {
    int32_t maxg = -1;
    for (uint32_t k = 0; k < it->k; k++) maxg = group[k] > maxg ? group[k] : maxg;
    cJSON *rk = cJSON_CreateArray();
    for (int32_t g = 0; g <= maxg; g++) {
      uint32_t n = 0, last = 0;
      for (uint32_t k = 0; k < it->k; k++)
        if (group[k] == g) n++, last = k;
      if (n == 1) cJSON_AddItemToArray(rk, cJSON_CreateNumber(last));
      else if (n > 1) {
        cJSON *tie = cJSON_CreateArray();
        for (uint32_t k = 0; k < it->k; k++)
          if (group[k] == g) cJSON_AddItemToArray(tie, cJSON_CreateNumber(k));
        cJSON_AddItemToArray(rk, tie);
      }
    }
    cJSON_AddItemToObject(j, "ranking", rk);
  }
  cJSON_AddBoolToObject(j, "all_bad", all_bad != 0);
  cJSON_AddBoolToObject(j, "skipped", group == NULL);
  cJSON_AddNumberToObject(j, "source_line", it->line);
  cJSON_AddItemToObject(j, "models", mods);
  if (it->answer) cJSON_AddStringToObject(j, "answer", it->answer);
  const cJSON *m;
  cJSON_ArrayForEach(m, s->meta) cJSON_AddItemToObject(j, m->string, cJSON_Duplicate(m, 1));
  cJSON_AddStringToObject(j, "rater", s->rater);
  char ts[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  cJSON_AddStringToObject(j, "time", ts);
  char *line = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  FILE *f = line ? fopen(s->path, "ab") : NULL;
  int ok = f && fprintf(f, "%s\n", line) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (f && fclose(f) != 0) ok = 0;
  free(line);
  if (!ok) {
    snprintf(err, errlen, "cannot append to '%s' (disk full?)", s->path);
    return VKLM_ERROR_IO;
  }
  s->done[i] = 1;
  s->ndone++;
  s->history[s->nhist++] = (uint64_t)i;
  return VKLM_OK;
}

vklm_status vklm_rank_undo(vklm_rank_session *s, char *err, size_t errlen) {
  if (!s->nhist) {
    snprintf(err, errlen, "nothing to undo in this session");
    return VKLM_ERROR_INVALID;
  }
  size_t len = 0;
  char *text = NULL;
  vklm_status rs = vklm_file_read(s->path, VKLM_FILE_MAX_TEXT, 0, &text, &len, err, errlen);
  if (rs != VKLM_OK) return rs;
  if (len == 0) {
    free(text);
    snprintf(err, errlen, "'%s' is empty: nothing to undo", s->path);
    return VKLM_ERROR_IO;
  }
  size_t cut = len - 1; /* the last line's start: after the previous newline */
  while (cut > 0 && text[cut - 1] != '\n') cut--;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", s->path);
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(text, 1, cut, f) == cut && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (f && fclose(f) != 0) ok = 0;
  free(text);
  if (!ok || rename(tmp, s->path) != 0) {
    unlink(tmp);
    snprintf(err, errlen, "cannot rewrite '%s'", s->path);
    return VKLM_ERROR_IO;
  }
  uint64_t i = s->history[--s->nhist];
  s->done[i] = 0;
  s->ndone--;
  return VKLM_OK;
}

const char *vklm_rank_parse(const char *text, uint32_t k, int32_t *group) {
  for (uint32_t i = 0; i < k; i++) group[i] = -1;
  int32_t g = 0;
  uint32_t seen = 0;
  const char *p = text;
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '>' || *p == '\t') p++;
    if (!*p || *p == '\n') break;
    for (;;) { /* one group: n(=n)* */
      if (!isdigit((unsigned char)*p)) return "type the response numbers, best first (e.g. 2 1 3)";
      unsigned long v = strtoul(p, (char **)&p, 10);
      if (v < 1 || v > k) return "a number that is not a response";
      if (group[v - 1] >= 0) return "a response named twice";
      group[v - 1] = g;
      seen++;
      while (*p == ' ') p++;
      if (*p != '=') break;
      p++;
      while (*p == ' ') p++;
    }
    g++;
  }
  if (seen != k) return "rank every response (or tie them with '=')";
  return NULL;
}

static int contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  if (!n) return 0;
  for (const char *p = hay; *p; p++)
    if (!strncasecmp(p, needle, n)) return 1;
  return 0;
}

vklm_status vklm_rank_simulate(const char *rule, const vklm_pref_item *it, const char *answer,
                               int32_t *group, char *err, size_t errlen) {
  int by_answer = !strcmp(rule, "answer");
  if (!by_answer && strcmp(rule, "length")) {
    snprintf(err, errlen, "unknown simulated rater '%s' (answer, length)", rule);
    return VKLM_ERROR_INVALID;
  }
  if (by_answer && !answer) {
    snprintf(err, errlen, "line %u: the \"answer\" rater needs an \"answer\" field", it->line);
    return VKLM_ERROR_INVALID;
  }
  /* key: the class (answer) or the length; places by distinct keys in increasing order; an
   * empty response (the model ended at once) is last */
  uint64_t key[VKLM_PREF_MAX_K];
  for (uint32_t i = 0; i < it->k; i++) {
    const char *t = it->response[i];
    while (*t == ' ' || *t == '\n' || *t == '\t') t++;
    key[i] = !*t ? 3ull << 40
             : by_answer ? (uint64_t)!contains_ci(it->response[i], answer) << 40
                         : strlen(it->response[i]);
  }
  for (uint32_t i = 0; i < it->k; i++) {
    int32_t place = 0;
    for (uint32_t j = 0; j < it->k; j++) { /* distinct smaller keys */
      int dup = 0;
      for (uint32_t q = 0; q < j; q++) dup |= key[q] == key[j];
      if (!dup && key[j] < key[i]) place++;
    }
    group[i] = place;
  }
  return VKLM_OK;
}

/* eval tasks: loading task files into vklm_eval_task. The native JSONL format (docs/eval.md):
 * an optional first line {"task": {"name", "kind", "delimiter", "stop", "regex", "max_new",
 * "greedy"}}, then one item per line — MC {"context", "choices", "gold"}, GEN {"prompt",
 * "answer" | "answers"}, BIAS {"stereo", "anti", "category"}, PPL {"text"}. Public formats as
 * lm-evaluation-harness prepares them are recognised by their fields (or named FORMAT:FILE):
 * HellaSwag, ARC (HF and AI2 layouts), PIQA, LAMBADA, CrowS-Pairs. Every error names file:line. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "eval/eval.h"
#include "eval/eval_internal.h"
#include "io/file.h"

static char *dupn(const char *s, size_t n) {
  char *o = malloc(n + 1);
  if (o) memcpy(o, s, n), o[n] = 0;
  return o;
}
static char *dup(const char *s) { return dupn(s, strlen(s)); }

void vklm_eval_task_free(vklm_eval_task *t) {
  if (!t) return;
  for (uint32_t i = 0; i < t->n; i++) {
    vklm_eval_item *it = &t->items[i];
    free(it->context);
    free(it->category);
    free(it->ids);
    for (uint32_t j = 0; j < it->nchoices; j++) free(it->choices[j]);
    for (uint32_t j = 0; j < it->nanswers; j++) free(it->answers[j]);
    free(it->choices);
    free(it->answers);
  }
  free(t->items);
  free(t->regex);
  free(t);
}

vklm_eval_item *vklm_eval_task_add_item(vklm_eval_task *t) {
  if (t->n == t->cap) {
    uint32_t c = t->cap ? t->cap * 2 : 64;
    vklm_eval_item *p = realloc(t->items, sizeof *p * c);
    if (!p) return NULL;
    t->items = p, t->cap = c;
  }
  vklm_eval_item *it = &t->items[t->n++];
  memset(it, 0, sizeof *it);
  return it;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* strings of a JSON array into *out (n); -1 when a member is not a string */
static int str_array(const cJSON *a, char ***out, uint32_t *n) {
  int k = cJSON_GetArraySize(a);
  *out = calloc(k ? (size_t)k : 1, sizeof(char *));
  *n = 0;
  if (!*out) return -1;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    if (!cJSON_IsString(e)) return -1;
    if (!((*out)[(*n)++] = dup(e->valuestring))) return -1;
  }
  return 0;
}

/* HellaSwag's preprocess (the harness's): strip, " [title]" -> ". ", drop "[...]", "  " -> " " */
static char *hs_pre(const char *s) {
  size_t n = strlen(s);
  char *o = malloc(n + 8), *w = o;
  if (!o) return NULL;
  while (*s && isspace((unsigned char)*s)) s++;
  const char *end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1])) end--;
  for (const char *p = s; p < end;) {
    if (end - p >= 8 && !strncmp(p, " [title]", 8)) { memcpy(w, ". ", 2), w += 2, p += 8; continue; }
    *w++ = *p++;
  }
  *w = 0;
  char *r = o, *q = o; /* remove \[.*?\] (no newline inside, as the regex's '.') */
  for (char *p = o; *p;) {
    char *e = p;
    if (*p == '[')
      while (*e && *e != ']' && *e != '\n') e++;
    if (*p == '[' && *e == ']') { p = e + 1; continue; }
    *q++ = *p++;
  }
  *q = 0;
  q = r; /* one pass of "  " -> " ", as str.replace does */
  for (char *p = r; *p;) {
    if (p[0] == ' ' && p[1] == ' ') { *q++ = ' '; p += 2; continue; }
    *q++ = *p++;
  }
  *q = 0;
  return r;
}

static char *cat3(const char *a, const char *b, const char *c) {
  size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
  char *o = malloc(na + nb + nc + 1);
  if (o) memcpy(o, a, na), memcpy(o + na, b, nb), memcpy(o + na + nb, c, nc + 1);
  return o;
}

static int label_int(const cJSON *v, int *out) {
  if (cJSON_IsNumber(v)) return *out = v->valueint, 0;
  if (cJSON_IsString(v) && *v->valuestring) {
    char *e;
    long x = strtol(v->valuestring, &e, 10);
    if (!*e) return *out = (int)x, 0;
  }
  return -1;
}

/* One item line in format fmt; returns NULL, or the error text */
static const char *parse_item(vklm_eval_task *t, const char *fmt, const cJSON *o, uint32_t line) {
  vklm_eval_item *it = vklm_eval_task_add_item(t);
  if (!it) return "out of memory";
  it->line = line;
  const cJSON *v;
  if (!strcmp(fmt, "mc")) {
    const char *c = str(o, "context");
    v = cJSON_GetObjectItemCaseSensitive(o, "choices");
    if (!c) return "missing string field \"context\"";
    if (!cJSON_IsArray(v)) return "missing array field \"choices\"";
    if (str_array(v, &it->choices, &it->nchoices)) return "\"choices\" must hold strings";
    if (label_int(cJSON_GetObjectItemCaseSensitive(o, "gold"), &it->gold)) return "missing integer field \"gold\"";
    it->context = dup(c);
    const char *cat = str(o, "category");
    if (cat) it->category = dup(cat);
  } else if (!strcmp(fmt, "gen")) {
    const char *p = str(o, "prompt"), *a = str(o, "answer");
    v = cJSON_GetObjectItemCaseSensitive(o, "answers");
    if (!p) return "missing string field \"prompt\"";
    if (a) {
      it->answers = malloc(sizeof(char *));
      if (!it->answers || !(it->answers[0] = dup(a))) return "out of memory";
      it->nanswers = 1;
    } else if (cJSON_IsArray(v)) {
      if (str_array(v, &it->answers, &it->nanswers)) return "\"answers\" must hold strings";
      if (!it->nanswers) return "\"answers\" is empty";
    } else {
      return "missing field \"answer\" (a string) or \"answers\" (an array)";
    }
    it->context = dup(p);
  } else if (!strcmp(fmt, "bias") || !strcmp(fmt, "crows")) {
    const char *s = str(o, "stereo"), *a = str(o, "anti"), *c = str(o, "category");
    if (!s && !a) { /* CrowS-Pairs: sent_more is the more stereotyping sentence */
      s = str(o, "sent_more"), a = str(o, "sent_less"), c = str(o, "bias_type");
    }
    if (!s || !a) return "missing string fields \"stereo\" and \"anti\" (or \"sent_more\", \"sent_less\")";
    it->choices = malloc(2 * sizeof(char *));
    if (!it->choices) return "out of memory";
    it->choices[0] = dup(s), it->choices[1] = dup(a), it->nchoices = 2;
    it->category = dup(c ? c : "all");
  } else if (!strcmp(fmt, "ppl")) {
    const char *x = str(o, "text");
    if (!x) return "missing string field \"text\"";
    it->context = dup(x);
  } else if (!strcmp(fmt, "lambada")) {
    const char *x = str(o, "text");
    if (!x) return "missing string field \"text\"";
    const char *sp = strrchr(x, ' ');
    if (!sp) return "\"text\" has no space before its last word";
    it->context = dupn(x, (size_t)(sp - x));
    it->choices = malloc(sizeof(char *));
    if (!it->choices || !(it->choices[0] = dup(sp + 1))) return "out of memory";
    it->nchoices = 1, it->gold = 0;
  } else if (!strcmp(fmt, "hellaswag")) {
    const char *a = str(o, "ctx_a"), *b = str(o, "ctx_b"), *lab = str(o, "activity_label");
    const char *ctx = str(o, "ctx");
    v = cJSON_GetObjectItemCaseSensitive(o, "endings");
    if ((!a || !b) && !ctx) return "missing \"ctx_a\"/\"ctx_b\" (or \"ctx\")";
    if (!cJSON_IsArray(v)) return "missing array field \"endings\"";
    if (label_int(cJSON_GetObjectItemCaseSensitive(o, "label"), &it->gold)) return "missing \"label\"";
    char *joined;
    if (a && b) {
      char *cb = dup(b);
      if (cb && *cb) cb[0] = (char)toupper((unsigned char)cb[0]);
      for (char *p = cb ? cb + 1 : NULL; p && *p; p++) *p = (char)tolower((unsigned char)*p);
      joined = cb ? cat3(a, " ", cb) : NULL;
      free(cb);
    } else {
      joined = dup(ctx);
    }
    char *q = joined ? cat3(lab ? lab : "", ": ", joined) : NULL;
    free(joined);
    it->context = q ? hs_pre(q) : NULL;
    free(q);
    if (str_array(v, &it->choices, &it->nchoices)) return "\"endings\" must hold strings";
    for (uint32_t j = 0; j < it->nchoices; j++) {
      char *p = hs_pre(it->choices[j]);
      free(it->choices[j]);
      it->choices[j] = p;
    }
  } else if (!strcmp(fmt, "arc")) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    const char *key = str(o, "answerKey"), *stem = cJSON_IsString(q) ? q->valuestring : NULL;
    if (cJSON_IsObject(q)) stem = str(q, "stem"), ch = cJSON_GetObjectItemCaseSensitive(q, "choices");
    if (!stem) return "missing \"question\"";
    if (!key) return "missing string field \"answerKey\"";
    const cJSON *texts = NULL, *labels = NULL;
    if (cJSON_IsObject(ch)) {
      texts = cJSON_GetObjectItemCaseSensitive(ch, "text");
      labels = cJSON_GetObjectItemCaseSensitive(ch, "label");
    }
    it->gold = -1;
    if (cJSON_IsArray(texts) && cJSON_IsArray(labels)) {
      if (str_array(texts, &it->choices, &it->nchoices)) return "\"choices.text\" must hold strings";
      int j = 0;
      const cJSON *e;
      cJSON_ArrayForEach(e, labels) {
        if (cJSON_IsString(e) && !strcmp(e->valuestring, key)) it->gold = j;
        j++;
      }
    } else if (cJSON_IsArray(ch)) {
      int k = cJSON_GetArraySize(ch);
      it->choices = calloc(k ? (size_t)k : 1, sizeof(char *));
      if (!it->choices) return "out of memory";
      const cJSON *e;
      cJSON_ArrayForEach(e, ch) {
        const char *tx = str(e, "text"), *lb = str(e, "label");
        if (!tx || !lb) return "a choice lacks \"text\" or \"label\"";
        if (!strcmp(lb, key)) it->gold = (int)it->nchoices;
        it->choices[it->nchoices++] = dup(tx);
      }
    } else {
      return "missing \"choices\"";
    }
    if (it->gold < 0) return "\"answerKey\" names no choice";
    it->context = cat3("Question: ", stem, "\nAnswer:");
  } else if (!strcmp(fmt, "piqa")) {
    const char *g = str(o, "goal"), *s1 = str(o, "sol1"), *s2 = str(o, "sol2");
    if (!g || !s1 || !s2) return "missing \"goal\", \"sol1\" or \"sol2\"";
    if (label_int(cJSON_GetObjectItemCaseSensitive(o, "label"), &it->gold)) return "missing \"label\"";
    it->context = cat3("Question: ", g, "\nAnswer:");
    it->choices = malloc(2 * sizeof(char *));
    if (!it->choices) return "out of memory";
    it->choices[0] = dup(s1), it->choices[1] = dup(s2), it->nchoices = 2;
  } else {
    return "unknown format";
  }
  if (it->nchoices && t->kind == VKLM_TASK_MC && (it->gold < 0 || (uint32_t)it->gold >= it->nchoices)) {
    static char msg[96];
    snprintf(msg, sizeof msg, "gold index %d is out of range for %u choices", it->gold, it->nchoices);
    return msg;
  }
  if (t->kind == VKLM_TASK_MC && it->nchoices == 0) return "no choices";
  if (t->kind == VKLM_TASK_MC && it->nchoices > 64) return "more than 64 choices";
  return NULL;
}

/* the format of an item line from its fields */
static const char *detect(const cJSON *o) {
  if (cJSON_GetObjectItemCaseSensitive(o, "endings")) return "hellaswag";
  if (cJSON_GetObjectItemCaseSensitive(o, "answerKey")) return "arc";
  if (cJSON_GetObjectItemCaseSensitive(o, "goal")) return "piqa";
  if (cJSON_GetObjectItemCaseSensitive(o, "sent_more") || cJSON_GetObjectItemCaseSensitive(o, "stereo"))
    return "bias";
  if (cJSON_GetObjectItemCaseSensitive(o, "choices")) return "mc";
  if (cJSON_GetObjectItemCaseSensitive(o, "prompt")) return "gen";
  if (cJSON_GetObjectItemCaseSensitive(o, "text")) return "ppl";
  return NULL;
}

static vklm_task_kind kind_of(const char *fmt) {
  if (!strcmp(fmt, "gen")) return VKLM_TASK_GEN;
  if (!strcmp(fmt, "ppl")) return VKLM_TASK_PPL;
  if (!strcmp(fmt, "bias") || !strcmp(fmt, "crows")) return VKLM_TASK_BIAS;
  return VKLM_TASK_MC;
}

static int header(vklm_eval_task *t, const cJSON *h, const char **fmt, char *e, size_t el) {
  const char *s;
  if ((s = str(h, "name"))) snprintf(t->name, sizeof t->name, "%s", s);
  if ((s = str(h, "kind"))) {
    if (strcmp(s, "mc") && strcmp(s, "gen") && strcmp(s, "ppl") && strcmp(s, "bias") &&
        strcmp(s, "lambada"))
      return snprintf(e, el, "\"kind\" must be mc, gen, ppl, bias or lambada, not \"%s\"", s), -1;
    *fmt = !strcmp(s, "mc") ? "mc" : !strcmp(s, "gen") ? "gen" : !strcmp(s, "ppl") ? "ppl"
         : !strcmp(s, "bias") ? "bias" : "lambada";
  }
  if ((s = str(h, "delimiter"))) snprintf(t->delim, sizeof t->delim, "%s", s);
  if ((s = str(h, "stop"))) snprintf(t->stop, sizeof t->stop, "%s", s);
  if ((s = str(h, "regex")) && !(t->regex = dup(s))) return snprintf(e, el, "out of memory"), -1;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "max_new");
  if (cJSON_IsNumber(v)) {
    if (v->valuedouble < 1 || v->valuedouble > 4096) return snprintf(e, el, "\"max_new\" must be in [1, 4096]"), -1;
    t->max_new = (uint32_t)v->valuedouble;
  }
  if (cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(h, "greedy")))
    t->greedy = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "greedy"));
  return 0;
}

int vklm_eval_task_parse(const char *name, const char *text, const char *format,
                         vklm_eval_task **out, char *err, size_t errlen) {
  *out = NULL;
  vklm_eval_task *t = calloc(1, sizeof *t);
  if (!t) return snprintf(err, errlen, "out of memory"), -1;
  const char *base = strrchr(name, '/');
  snprintf(t->path, sizeof t->path, "%s", name);
  snprintf(t->name, sizeof t->name, "%s", base ? base + 1 : name);
  char *dot = strrchr(t->name, '.');
  if (dot && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json"))) *dot = 0;
  if (!strncmp(t->name, "builtin:", 8)) memmove(t->name, t->name + 8, strlen(t->name + 8) + 1);
  snprintf(t->delim, sizeof t->delim, " ");
  snprintf(t->stop, sizeof t->stop, "\n");
  t->max_new = 32;
  const char *fmt = format;
  uint32_t line = 0;
  char msg[512] = "";
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    line++;
    const char *q = p;
    p += len + (nl ? 1 : 0);
    while (len && isspace((unsigned char)*q)) q++, len--;
    if (!len) continue;
    cJSON *o = cJSON_ParseWithLength(q, len);
    if (!cJSON_IsObject(o)) {
      cJSON_Delete(o);
      snprintf(msg, sizeof msg, "not a JSON object");
      goto bad;
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "task");
    if (cJSON_IsObject(h)) {
      if (t->n) { cJSON_Delete(o); snprintf(msg, sizeof msg, "the {\"task\": ...} header must be the first line"); goto bad; }
      int r = header(t, h, &fmt, msg, sizeof msg);
      cJSON_Delete(o);
      if (r) goto bad;
      continue;
    }
    if (!fmt && !(fmt = detect(o))) {
      cJSON_Delete(o);
      snprintf(msg, sizeof msg, "cannot tell the format: no \"choices\", \"prompt\", \"text\", "
               "\"stereo\"/\"sent_more\", \"endings\", \"answerKey\" or \"goal\" field");
      goto bad;
    }
    t->kind = kind_of(fmt);
    if (!strcmp(fmt, "lambada")) t->greedy = 1;
    const char *e = parse_item(t, fmt, o, line);
    cJSON_Delete(o);
    if (e) { snprintf(msg, sizeof msg, "%s", e); goto bad; }
    vklm_eval_item *it = &t->items[t->n - 1];
    if ((t->kind != VKLM_TASK_BIAS && !it->context) ||
        (t->kind == VKLM_TASK_BIAS && (!it->choices[0] || !it->choices[1] || !it->category))) {
      snprintf(msg, sizeof msg, "out of memory");
      goto bad;
    }
  }
  if (t->n == 0) {
    snprintf(err, errlen, "%s: no items", name);
    vklm_eval_task_free(t);
    return -1;
  }
  *out = t;
  return 0;
bad:
  snprintf(err, errlen, "%s:%u: %s", name, line, msg);
  vklm_eval_task_free(t);
  return -1;
}


int vklm_eval_task_load(const char *spec, vklm_eval_task **out, char *err, size_t errlen) {
  static const char *fmts[] = {"mc", "gen", "ppl", "bias", "hellaswag", "arc", "piqa", "lambada", "crows"};
  const char *fmt = NULL, *path = spec;
  const char *colon = strchr(spec, ':');
  for (size_t i = 0; colon && i < sizeof fmts / sizeof fmts[0]; i++)
    if (strlen(fmts[i]) == (size_t)(colon - spec) && !strncmp(spec, fmts[i], strlen(fmts[i])))
      fmt = fmts[i], path = colon + 1;
  if (!strncmp(spec, "shards:", 7)) return vklm_eval_task_load_shards(spec + 7, out, err, errlen);
  char *text = vklm_eval_builtin_text(spec);
  if (text) {
    char name[160];
    snprintf(name, sizeof name, "builtin:%s", spec);
    int r = vklm_eval_task_parse(name, text, NULL, out, err, errlen);
    free(text);
    return r;
  }
  char why[512];
  if (vklm_file_read(path, VKLM_FILE_MAX_TEXT, 0, &text, NULL, why, sizeof why) != VKLM_OK) {
    snprintf(err, errlen, "%s (and it is no built-in task; `vklm eval --list-tasks` lists them)",
             why);
    return -1;
  }
  const char *dot = strrchr(path, '.');
  int plain = !dot || (strcmp(dot, ".jsonl") && strcmp(dot, ".json"));
  int r;
  if (plain && (!fmt || !strcmp(fmt, "ppl"))) { /* a text file: one document */
    vklm_eval_task *t = calloc(1, sizeof *t);
    vklm_eval_item *it = t ? vklm_eval_task_add_item(t) : NULL;
    if (!it) { free(text); free(t); return snprintf(err, errlen, "out of memory"), -1; }
    const char *b = strrchr(path, '/');
    snprintf(t->name, sizeof t->name, "%s", b ? b + 1 : path);
    snprintf(t->path, sizeof t->path, "%s", path);
    t->kind = VKLM_TASK_PPL;
    it->context = text, it->line = 1;
    if (!*text) {
      vklm_eval_task_free(t);
      return snprintf(err, errlen, "%s: the text file is empty", path), -1;
    }
    *out = t;
    return 0;
  }
  r = vklm_eval_task_parse(path, text, fmt, out, err, errlen);
  free(text);
  return r;
}

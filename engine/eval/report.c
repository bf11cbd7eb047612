/* eval reports: the terminal table, the JSON document (every metric with its standard error and
 * item count, plus the robustness drops: each perturbed variant's main metric against the clean
 * one), a self-contained HTML page with inline SVG bar charts (scores by task, robustness drops,
 * bias by category with intervals) and the side-by-side JSONL lines `vklm rank` reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "eval/eval.h"

static const char *kinds[] = {"mc", "gen", "ppl", "bias"};

static void fmt_se(char *b, size_t n, double se) {
  if (se < 0 || isnan(se)) snprintf(b, n, "-");
  else snprintf(b, n, "%.4f", se);
}

void vklm_eval_print_table(FILE *f, const vklm_eval_result *r, uint32_t n) {
  fprintf(f, "%-18s %-10s %-17s %12s %10s %7s\n", "task", "variant", "metric", "value", "stderr", "n");
  for (uint32_t i = 0; i < n; i++) {
    for (uint32_t j = 0; j < r[i].nm; j++) {
      char se[32];
      fmt_se(se, sizeof se, r[i].m[j].se);
      fprintf(f, "%-18s %-10s %-17s %12.4f %10s %7llu\n", j ? "" : r[i].task, j ? "" : r[i].variant,
              r[i].m[j].name, r[i].m[j].value, se, (unsigned long long)r[i].m[j].n);
    }
    for (uint32_t c = 0; c < r[i].ncat; c++)
      fprintf(f, "%-18s %-10s %-17s %12.4f [%.3f, %.3f] %5llu\n", "", "", r[i].cat[c].name,
              r[i].cat[c].frac, r[i].cat[c].lo, r[i].cat[c].hi, (unsigned long long)r[i].cat[c].n);
  }
  /* robustness: the drop of each perturbed variant's main metric from the clean one */
  int head = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!strcmp(r[i].variant, "clean")) continue;
    for (uint32_t k = 0; k < n; k++) {
      if (strcmp(r[k].task, r[i].task) || strcmp(r[k].variant, "clean")) continue;
      const vklm_eval_metric *a = vklm_eval_main_metric(&r[k]), *b = vklm_eval_main_metric(&r[i]);
      if (!a || !b) continue;
      if (!head++) fprintf(f, "\nrobustness (main metric; drop = clean - perturbed)\n");
      fprintf(f, "%-18s %-10s %-17s clean %.4f  perturbed %.4f  drop %+.4f\n", r[i].task,
              r[i].variant, a->name, a->value, b->value, a->value - b->value);
    }
  }
}

static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

char *vklm_eval_json(const char *model, const vklm_eval_result *r, uint32_t n) {
  cJSON *root = cJSON_CreateObject(), *res = cJSON_CreateArray(), *rob = cJSON_CreateArray();
  if (!root || !res || !rob) { cJSON_Delete(root), cJSON_Delete(res), cJSON_Delete(rob); return NULL; }
  cJSON_AddStringToObject(root, "model", model ? model : "");
  for (uint32_t i = 0; i < n; i++) {
    cJSON *o = cJSON_CreateObject(), *ms = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", r[i].task);
    cJSON_AddStringToObject(o, "variant", r[i].variant);
    cJSON_AddStringToObject(o, "kind", kinds[r[i].kind]);
    cJSON_AddNumberToObject(o, "items", (double)r[i].items);
    cJSON_AddNumberToObject(o, "seconds", r[i].seconds);
    cJSON_AddNumberToObject(o, "items_per_s", r[i].seconds > 0 ? r[i].items / r[i].seconds : 0);
    for (uint32_t j = 0; j < r[i].nm; j++) {
      cJSON *m = cJSON_CreateObject();
      cJSON_AddItemToObject(m, "value", num(r[i].m[j].value));
      cJSON_AddItemToObject(m, "stderr", r[i].m[j].se < 0 ? cJSON_CreateNull() : num(r[i].m[j].se));
      cJSON_AddNumberToObject(m, "n", (double)r[i].m[j].n);
      cJSON_AddItemToObject(ms, r[i].m[j].name, m);
    }
    cJSON_AddItemToObject(o, "metrics", ms);
    if (r[i].ncat) {
      cJSON *cs = cJSON_CreateArray();
      for (uint32_t c = 0; c < r[i].ncat; c++) {
        cJSON *g = cJSON_CreateObject();
        cJSON_AddStringToObject(g, "category", r[i].cat[c].name);
        cJSON_AddNumberToObject(g, "pct_stereotype", r[i].cat[c].frac);
        cJSON_AddNumberToObject(g, "ci_low", r[i].cat[c].lo);
        cJSON_AddNumberToObject(g, "ci_high", r[i].cat[c].hi);
        cJSON_AddNumberToObject(g, "n", (double)r[i].cat[c].n);
        cJSON_AddItemToArray(cs, g);
      }
      cJSON_AddItemToObject(o, "categories", cs);
    }
    cJSON_AddItemToArray(res, o);
    if (!strcmp(r[i].variant, "clean")) continue;
    for (uint32_t k = 0; k < n; k++) {
      if (strcmp(r[k].task, r[i].task) || strcmp(r[k].variant, "clean")) continue;
      const vklm_eval_metric *a = vklm_eval_main_metric(&r[k]), *b = vklm_eval_main_metric(&r[i]);
      if (!a || !b) continue;
      cJSON *d = cJSON_CreateObject();
      cJSON_AddStringToObject(d, "task", r[i].task);
      cJSON_AddStringToObject(d, "variant", r[i].variant);
      cJSON_AddStringToObject(d, "metric", a->name);
      cJSON_AddItemToObject(d, "clean", num(a->value));
      cJSON_AddItemToObject(d, "score", num(b->value));
      cJSON_AddItemToObject(d, "drop", num(a->value - b->value));
      cJSON_AddItemToArray(rob, d);
    }
  }
  cJSON_AddItemToObject(root, "results", res);
  cJSON_AddItemToObject(root, "robustness", rob);
  char *s = cJSON_Print(root);
  cJSON_Delete(root);
  return s;
}

static void esc(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '&') fputs("&amp;", f);
    else if (*s == '"') fputs("&quot;", f);
    else fputc(*s, f);
  }
}

/* a horizontal bar chart: labels, values in [lo, hi] (0 at x0), optional intervals */
static void bars(FILE *f, const char *title, const char *const *lab, const double *v,
                 const double *elo, const double *ehi, uint32_t n, double lo, double hi) {
  const int W = 640, L = 220, H = 22, top = 30;
  double span = hi - lo > 0 ? hi - lo : 1;
  fprintf(f, "<h3>");
  esc(f, title);
  fprintf(f, "</h3>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%u\" "
          "font-family=\"sans-serif\" font-size=\"12\">\n", W, top + n * H + 10);
  int x0 = L + (int)((0 - lo) / span * (W - L - 60));
  for (uint32_t i = 0; i < n; i++) {
    double x = isfinite(v[i]) ? v[i] : 0;
    int xe = L + (int)((x - lo) / span * (W - L - 60)), y = top + (int)i * H;
    int a = xe < x0 ? xe : x0, w = abs(xe - x0);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", L - 6, y + 14);
    esc(f, lab[i]);
    fprintf(f, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>"
            "<text x=\"%d\" y=\"%d\">%.3f</text>\n", a, y + 3, w ? w : 1, H - 6,
            x < 0 ? "#c0504d" : "#4f81bd", (xe > x0 ? xe : x0) + 4, y + 14, x);
    if (elo && ehi) {
      int l = L + (int)((elo[i] - lo) / span * (W - L - 60)), h = L + (int)((ehi[i] - lo) / span * (W - L - 60));
      fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", l, h, y + 11, y + 11);
    }
  }
  fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%u\" stroke=\"#888\"/>\n</svg>\n", x0, x0,
          top - 4, top + n * H);
}

int vklm_eval_write_html(const char *path, const char *model, const vklm_eval_result *r,
                         uint32_t n, char *err, size_t errlen) {
  FILE *f = fopen(path, "w");
  if (!f) return snprintf(err, errlen, "cannot write %s", path), -1;
  const char **lab = calloc(n * VKLM_EVAL_MAX_CATS + 1, sizeof(char *));
  char (*names)[200] = calloc(n * VKLM_EVAL_MAX_CATS + 1, 200);
  double *v = calloc(n * VKLM_EVAL_MAX_CATS + 1, sizeof(double));
  double *lo = calloc(n * VKLM_EVAL_MAX_CATS + 1, sizeof(double));
  double *hi = calloc(n * VKLM_EVAL_MAX_CATS + 1, sizeof(double));
  if (!lab || !names || !v || !lo || !hi) {
    fclose(f);
    free(lab), free(names), free(v), free(lo), free(hi);
    return snprintf(err, errlen, "out of memory"), -1;
  }
  fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>vklm eval</title>"
          "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,"
          "th:first-child{text-align:left}</style></head><body>\n<h1>vklm eval</h1>\n<p>model: ");
  esc(f, model ? model : "");
  fprintf(f, "</p>\n<table><tr><th>task</th><th>variant</th><th>metric</th><th>value</th>"
          "<th>stderr</th><th>n</th></tr>\n");
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t j = 0; j < r[i].nm; j++) {
      char se[32];
      fmt_se(se, sizeof se, r[i].m[j].se);
      fprintf(f, "<tr><td>");
      esc(f, r[i].task);
      fprintf(f, "</td><td>%s</td><td>%s</td><td>%.4f</td><td>%s</td><td>%llu</td></tr>\n",
              r[i].variant, r[i].m[j].name, r[i].m[j].value, se, (unsigned long long)r[i].m[j].n);
    }
  fprintf(f, "</table>\n");
  /* scores by task: the main metric of each clean MC/GEN task (accuracies in [0,1]) */
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    const vklm_eval_metric *m = vklm_eval_main_metric(&r[i]);
    if (!m || strcmp(r[i].variant, "clean") || r[i].kind == VKLM_TASK_PPL) continue;
    snprintf(names[k], 200, "%s (%s)", r[i].task, m->name);
    lab[k] = names[k], v[k] = m->value;
    lo[k] = m->se >= 0 ? m->value - 1.96 * m->se : m->value, hi[k] = m->se >= 0 ? m->value + 1.96 * m->se : m->value;
    k++;
  }
  if (k) bars(f, "Scores by task (95% interval)", lab, v, lo, hi, k, 0, 1);
  k = 0;
  for (uint32_t i = 0; i < n; i++) {
    const vklm_eval_metric *m = vklm_eval_main_metric(&r[i]);
    if (!m || strcmp(r[i].variant, "clean") || r[i].kind != VKLM_TASK_PPL) continue;
    snprintf(names[k], 200, "%s", r[i].task);
    lab[k] = names[k], v[k] = m->value, k++;
  }
  if (k) {
    double mx = 0;
    for (uint32_t i = 0; i < k; i++) mx = v[i] > mx ? v[i] : mx;
    bars(f, "Bits per byte by text", lab, v, NULL, NULL, k, 0, mx > 0 ? mx * 1.1 : 1);
  }
  k = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!strcmp(r[i].variant, "clean")) continue;
    for (uint32_t c = 0; c < n; c++) {
      if (strcmp(r[c].task, r[i].task) || strcmp(r[c].variant, "clean")) continue;
      const vklm_eval_metric *a = vklm_eval_main_metric(&r[c]), *b = vklm_eval_main_metric(&r[i]);
      if (!a || !b) continue;
      snprintf(names[k], 200, "%s: %s", r[i].task, r[i].variant);
      lab[k] = names[k], v[k] = a->value - b->value, k++;
    }
  }
  if (k) bars(f, "Robustness: drop of the main metric from clean", lab, v, NULL, NULL, k, -1, 1);
  k = 0;
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t c = 0; c < r[i].ncat && !strcmp(r[i].variant, "clean"); c++) {
      snprintf(names[k], 200, "%s: %s", r[i].task, r[i].cat[c].name);
      lab[k] = names[k], v[k] = r[i].cat[c].frac, lo[k] = r[i].cat[c].lo, hi[k] = r[i].cat[c].hi, k++;
    }
  if (k) bars(f, "Bias: fraction preferring the stereotyped sentence (95% Wilson interval; 0.5 = no preference)",
              lab, v, lo, hi, k, 0, 1);
  fprintf(f, "</body></html>\n");
  free(lab), free(names), free(v), free(lo), free(hi);
  if (fclose(f)) return snprintf(err, errlen, "cannot write %s", path), -1;
  return 0;
}

int vklm_eval_write_compare(FILE *f, const char *prompt, const char *a, const char *b,
                            const char *ma, const char *mb) {
  cJSON *o = cJSON_CreateObject(), *rs = cJSON_CreateArray(), *ms = cJSON_CreateArray();
  if (!o || !rs || !ms) { cJSON_Delete(o), cJSON_Delete(rs), cJSON_Delete(ms); return -1; }
  cJSON_AddStringToObject(o, "prompt", prompt);
  cJSON_AddItemToArray(rs, cJSON_CreateString(a));
  cJSON_AddItemToArray(rs, cJSON_CreateString(b));
  cJSON_AddItemToArray(ms, cJSON_CreateString(ma));
  cJSON_AddItemToArray(ms, cJSON_CreateString(mb));
  cJSON_AddItemToObject(o, "responses", rs);
  cJSON_AddItemToObject(o, "models", ms);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!s) return -1;
  int r = fprintf(f, "%s\n", s) < 0 ? -1 : 0;
  free(s);
  return r;
}

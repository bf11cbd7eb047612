/* The life-cycle report: HTML with the stages' figures, embedded plots and answers side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/report.h"

static void esc(FILE *f, const char *s) {
  for (; s && *s; s++) {
    if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '&') fputs("&amp;", f);
    else if (*s == '"') fputs("&quot;", f);
    else fputc(*s, f);
  }
}

/* The file as a base64 data URI into f; 0 when it cannot be read. */
static int embed_png(FILE *f, const char *path) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  FILE *in = fopen(path, "rb");
  if (!in) return 0;
  unsigned char buf[3 * 1024];
  size_t n;
  fputs("data:image/png;base64,", f);
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    for (size_t i = 0; i < n; i += 3) {
      uint32_t v = (uint32_t)buf[i] << 16 | (i + 1 < n ? (uint32_t)buf[i + 1] << 8 : 0) |
                   (i + 2 < n ? buf[i + 2] : 0);
      fputc(b64[v >> 18 & 63], f);
      fputc(b64[v >> 12 & 63], f);
      fputc(i + 1 < n ? b64[v >> 6 & 63] : '=', f);
      fputc(i + 2 < n ? b64[v & 63] : '=', f);
    }
  fclose(in);
  return 1;
}

vklm_status vklm_report_write(const vklm_report *r, const char *path, char *err, size_t errlen) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write '%s'", tmp);
    return VKLM_ERROR_IO;
  }
  fputs("<!doctype html><html lang=en><head><meta charset=utf-8><title>", f);
  esc(f, r->title);
  fputs("</title><style>body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}h1{margin-bottom:.2em}.sub{color:#666;margin-top:0}"
        ".stages{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1em}"
        ".stage{border:1px solid #ddd;border-radius:8px;padding:.6em 1em}.stage h2{font-size:1.1em;"
        "margin:.2em 0}.cmd{font:12px monospace;color:#555;white-space:pre-wrap}"
        ".stage ul{padding-left:1.2em;margin:.4em 0}.stage img{width:100%;border:1px solid #eee}"
        ".miss{color:#a00}table{border-collapse:collapse;width:100%;margin-top:.6em}"
        "td,th{border:1px solid #ddd;padding:.3em .5em;vertical-align:top;text-align:left;"
        "white-space:pre-wrap}th{background:#f4f6fa}.exp{color:#080}</style></head><body>\n<h1>", f);
  esc(f, r->title);
  fputs("</h1><p class=sub>", f);
  esc(f, r->subtitle);
  fputs("</p>\n<div class=stages>\n", f);
  for (uint32_t i = 0; i < r->nstages; i++) {
    const vklm_report_stage *s = &r->stages[i];
    fprintf(f, "<div class=stage><h2>%u. ", i + 1);
    esc(f, s->title);
    fputs("</h2>", f);
    if (s->command) {
      fputs("<div class=cmd>", f);
      esc(f, s->command);
      fputs("</div>", f);
    }
    fputs("<ul>", f);
    for (uint32_t k = 0; k < s->nfig; k++) {
      fputs("<li>", f);
      esc(f, s->figures[k]);
      fputs("</li>", f);
    }
    fputs("</ul>", f);
    if (s->png) {
      fputs("<img alt=\"plot\" src=\"", f);
      if (!embed_png(f, s->png)) {
        fputs("\"><p class=miss>plot missing: ", f);
        esc(f, s->png);
        fputs("</p>", f);
      } else {
        fputs("\">", f);
      }
    }
    fputs("</div>\n", f);
  }
  fputs("</div>\n", f);
  if (r->nprompts && r->nmodels) {
    fputs("<h2>The same prompts, answered by each model (greedy)</h2><table><tr><th>prompt</th>", f);
    if (r->expected) fputs("<th>expected</th>", f);
    for (uint32_t j = 0; j < r->nmodels; j++) {
      fputs("<th>", f);
      esc(f, r->models[j]);
      fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (uint32_t i = 0; i < r->nprompts; i++) {
      fputs("<tr><td>", f);
      esc(f, r->prompts[i]);
      fputs("</td>", f);
      if (r->expected) {
        fputs("<td class=exp>", f);
        esc(f, r->expected[i]);
        fputs("</td>", f);
      }
      for (uint32_t j = 0; j < r->nmodels; j++) {
        fputs("<td>", f);
        esc(f, r->answers[i * r->nmodels + j]);
        fputs("</td>", f);
      }
      fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
  }
  fputs("</body></html>\n", f);
  int ok = !ferror(f);
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    snprintf(err, errlen, "cannot write '%s' (disk full?)", path);
    return VKLM_ERROR_IO;
  }
  return VKLM_OK;
}

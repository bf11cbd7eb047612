/* The loss-curve PNG: drawn into an RGB buffer (lines, axes, ticks, a legend; text rasterised
 * from stb_easy_font's quads) and written by stb_image_write. This file instantiates
 * stb_image_write. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_easy_font.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_ASSERT(x) ((void)0)
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

typedef struct canvas {
  int w, h;
  uint8_t *px; /* RGB */
} canvas;

typedef struct rgb {
  uint8_t r, g, b;
} rgb;

static void dot(canvas *c, int x, int y, rgb col) {
  if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
  uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
  p[0] = col.r;
  p[1] = col.g;
  p[2] = col.b;
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, rgb col) { /* [x0,x1) x [y0,y1) */
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) dot(c, x, y, col);
}

/* A line of the given thickness (Bresenham, a square brush). */
static void line(canvas *c, int x0, int y0, int x1, int y1, int thick, rgb col) {
  int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int e = dx + dy, lo = -(thick - 1) / 2, hi = thick / 2;
  for (;;) {
    for (int a = lo; a <= hi; a++)
      for (int b = lo; b <= hi; b++) dot(c, x0 + a, y0 + b, col);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * e;
    if (e2 >= dy) { e += dy; x0 += sx; }
    if (e2 <= dx) { e += dx; y0 += sy; }
  }
}

/* Text at (x,y) (top-left), each font pixel drawn as scale x scale. */
static void text(canvas *c, int x, int y, int scale, const char *s, rgb col) {
  static char vbuf[64 * 1024];
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%s", s);
  int quads = stb_easy_font_print(0, 0, tmp, NULL, vbuf, sizeof vbuf);
  for (int q = 0; q < quads; q++) {
    const float *v0 = (const float *)(vbuf + (size_t)q * 64);      /* vertex 0: x, y, z, color */
    const float *v2 = (const float *)(vbuf + (size_t)q * 64 + 32); /* vertex 2: opposite corner */
    int x0 = x + (int)lroundf(v0[0] * scale), y0 = y + (int)lroundf(v0[1] * scale);
    int x1 = x + (int)lroundf(v2[0] * scale), y1 = y + (int)lroundf(v2[1] * scale);
    rect(c, x0, y0, x1, y1, col);
  }
}

static int text_width(const char *s, int scale) {
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%s", s);
  return stb_easy_font_width(tmp) * scale;
}

/* A "nice" tick spacing (1, 2 or 5 times a power of ten) giving about n ticks over span. */
static double nice_step(double span, int n) {
  if (!(span > 0)) return 1;
  double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(char *buf, size_t n, double v, double step) {
  if (step >= 1 && fabs(v) < 1e7) snprintf(buf, n, "%.0f", v);
  else {
    int dec = (int)ceil(-log10(step));
    if (dec < 1) dec = 1;
    if (dec > 6) dec = 6;
    snprintf(buf, n, "%.*f", dec, v);
  }
}

vklm_status vklm_plot_loss(const vklm_metrics *hist, const char *title, const char *path,
                           int width, int height, char *err, size_t errlen) {
  return vklm_plot_curves(hist, title, "loss", "train", "validation", path, width, height, err,
                          errlen);
}

vklm_status vklm_plot_curves(const vklm_metrics *hist, const char *title, const char *ylabel,
                             const char *name0, const char *name1, const char *path, int width,
                             int height, char *err, size_t errlen) {
  canvas c = {width, height, malloc((size_t)width * height * 3)};
  if (!c.px) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  memset(c.px, 255, (size_t)width * height * 3);
  const rgb black = {0, 0, 0}, grid = {225, 225, 225}, blue = {31, 119, 180},
            orange = {230, 110, 20}, grey = {90, 90, 90};
  /* Data ranges over the finite losses. */
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (size_t i = 0; i < hist->n; i++) {
    const vklm_metric *r = &hist->rows[i];
    float ys[2] = {r->train_loss, r->val_loss};
    for (int k = 0; k < 2; k++)
      if (isfinite(ys[k])) {
        if (r->step < xmin) xmin = r->step;
        if (r->step > xmax) xmax = r->step;
        if (ys[k] < ymin) ymin = ys[k];
        if (ys[k] > ymax) ymax = ys[k];
      }
  }
  if (!isfinite(xmin)) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
  if (xmax <= xmin) xmax = xmin + 1;
  if (ymax <= ymin) { ymax += 0.5; ymin -= 0.5; }
  double ystep = nice_step(ymax - ymin, 6), xstep = nice_step(xmax - xmin, 8);
  ymin = floor(ymin / ystep) * ystep;
  ymax = ceil(ymax / ystep) * ystep;
  const int L = 80, R = 24, Tm = 44, Bm = 60, S = 2;
  int pw = width - L - R, ph = height - Tm - Bm;
#define PX(x) (L + (int)lround(((x) - xmin) / (xmax - xmin) * (pw - 1)))
#define PY(y) (Tm + ph - 1 - (int)lround(((y) - ymin) / (ymax - ymin) * (ph - 1)))
  char buf[64];
  /* Grid and y ticks. */
  for (double y = ymin; y <= ymax + ystep * 1e-6; y += ystep) {
    int py = PY(y);
    line(&c, L, py, L + pw - 1, py, 1, grid);
    line(&c, L - 5, py, L, py, 1, black);
    fmt_tick(buf, sizeof buf, y, ystep);
    text(&c, L - 8 - text_width(buf, S), py - 6, S, buf, black);
  }
  for (double x = ceil(xmin / xstep) * xstep; x <= xmax + xstep * 1e-6; x += xstep) {
    int px = PX(x);
    line(&c, px, Tm, px, Tm + ph - 1, 1, grid);
    line(&c, px, Tm + ph, px, Tm + ph + 5, 1, black);
    fmt_tick(buf, sizeof buf, x, xstep);
    text(&c, px - text_width(buf, S) / 2, Tm + ph + 9, S, buf, black);
  }
  /* Axes and labels. */
  line(&c, L, Tm, L, Tm + ph, 1, black);
  line(&c, L, Tm + ph, L + pw, Tm + ph, 1, black);
  text(&c, L + pw / 2 - text_width("step", S) / 2, height - 24, S, "step", black);
  text(&c, 8, 8, S, ylabel, black);
  if (title) text(&c, L + pw / 2 - text_width(title, S) / 2, 10, S, title, grey);
  /* Curves: train (every row with a train loss), validation (rows that measured it). */
  for (int k = 0; k < 2; k++) {
    int have = 0, lx = 0, ly = 0;
    for (size_t i = 0; i < hist->n; i++) {
      const vklm_metric *r = &hist->rows[i];
      float y = k == 0 ? r->train_loss : r->val_loss;
      if (!isfinite(y) || (k == 0 && r->step == 0)) continue;
      int px = PX((double)r->step), py = PY(y);
      if (have) line(&c, lx, ly, px, py, k == 0 ? 2 : 3, k == 0 ? blue : orange);
      else if (k == 1) rect(&c, px - 2, py - 2, px + 3, py + 3, orange);
      if (k == 1) rect(&c, px - 3, py - 3, px + 4, py + 4, orange);
      lx = px;
      ly = py;
      have = 1;
    }
  }
  /* Legend, top right. */
  int wn = text_width(name0, S) > text_width(name1, S) ? text_width(name0, S)
                                                      : text_width(name1, S);
  int lw = wn + 60 > 170 ? wn + 60 : 170, lh = 52, lx0 = L + pw - lw - 10, ly0 = Tm + 10;
  rect(&c, lx0, ly0, lx0 + lw, ly0 + lh, (rgb){255, 255, 255});
  line(&c, lx0, ly0, lx0 + lw, ly0, 1, grey);
  line(&c, lx0, ly0 + lh, lx0 + lw, ly0 + lh, 1, grey);
  line(&c, lx0, ly0, lx0, ly0 + lh, 1, grey);
  line(&c, lx0 + lw, ly0, lx0 + lw, ly0 + lh, 1, grey);
  line(&c, lx0 + 10, ly0 + 15, lx0 + 40, ly0 + 15, 2, blue);
  text(&c, lx0 + 50, ly0 + 9, S, name0, black);
  line(&c, lx0 + 10, ly0 + 37, lx0 + 40, ly0 + 37, 3, orange);
  rect(&c, lx0 + 22, ly0 + 34, lx0 + 29, ly0 + 41, orange);
  text(&c, lx0 + 50, ly0 + 31, S, name1, black);
#undef PX
#undef PY
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.png", path);
  int ok = stbi_write_png(tmp, width, height, 3, c.px, width * 3);
  free(c.px);
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    snprintf(err, errlen, "cannot write the plot '%s'", path);
    return VKLM_ERROR_IO;
  }
  return VKLM_OK;
}

/* The mixture bar chart of `vklm data mix`: per key, the share of tokens before (grey) and after
 * (blue) mixing, and the target (a black tick), drawn on an RGB canvas with stb_easy_font's
 * glyph quads and written by stb_image_write (instantiated in engine/train/plot.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/mix.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

typedef struct img {
  int w, h;
  uint8_t *px;
} img;

static void fill(img *c, int x0, int y0, int x1, int y1, uint32_t rgb) {
  for (int y = y0 < 0 ? 0 : y0; y < y1 && y < c->h; y++)
    for (int x = x0 < 0 ? 0 : x0; x < x1 && x < c->w; x++) {
      uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
      p[0] = (uint8_t)(rgb >> 16);
      p[1] = (uint8_t)(rgb >> 8);
      p[2] = (uint8_t)rgb;
    }
}

static void label(img *c, int x, int y, int scale, const char *s, uint32_t rgb) {
  char vbuf[32 * 1024], tmp[128];
  snprintf(tmp, sizeof tmp, "%s", s);
  int quads = stb_easy_font_print(0, 0, tmp, NULL, vbuf, sizeof vbuf);
  for (int q = 0; q < quads; q++) {
    const float *v0 = (const float *)(vbuf + (size_t)q * 64);
    const float *v2 = (const float *)(vbuf + (size_t)q * 64 + 32);
    fill(c, x + (int)lroundf(v0[0] * scale), y + (int)lroundf(v0[1] * scale),
         x + (int)lroundf(v2[0] * scale), y + (int)lroundf(v2[1] * scale), rgb);
  }
}

static int label_width(const char *s, int scale) {
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s", s);
  return stb_easy_font_width(tmp) * scale;
}

int vklm_mix_plot(const vklm_mix_stats *st, const char *title, const char *path) {
  int n = st->nkeys;
  if (n < 1) return -1;
  int group = 90, left = 70, top = 50, bottom = 60, ph = 320;
  img c = {left + n * group + 30, top + ph + bottom, NULL};
  if (c.w < 420) c.w = 420;
  if (c.w < left + label_width(title, 2) + 20) c.w = left + label_width(title, 2) + 20;
  c.px = malloc((size_t)c.w * (size_t)c.h * 3);
  if (!c.px) return -1;
  fill(&c, 0, 0, c.w, c.h, 0xFFFFFF);
  uint64_t tin = 0;
  double ymax = 0;
  for (int k = 0; k < n; k++)
    tin += st->key[k].tokens_in;
  double before[VKLM_MIX_MAX_KEYS], after[VKLM_MIX_MAX_KEYS];
  for (int k = 0; k < n; k++) {
    before[k] = tin ? (double)st->key[k].tokens_in / (double)tin : 0;
    after[k] = st->tokens_out ? (double)st->key[k].tokens_out / (double)st->tokens_out : 0;
    ymax = fmax(ymax, fmax(before[k], fmax(after[k], st->key[k].weight)));
  }
  ymax = ymax <= 0 ? 1 : fmin(1.0, ceil(ymax * 10 + 1e-9) / 10);
  label(&c, left, 14, 2, title, 0x000000);
  int y0 = top + ph; /* baseline */
  for (int t = 0; t <= 10; t++) { /* grid every tenth of ymax */
    double v = ymax * t / 10;
    int y = y0 - (int)lround(ph * v / ymax);
    fill(&c, left, y, c.w - 20, y + 1, 0xE0E0E0);
    char s[16];
    snprintf(s, sizeof s, "%.0f%%", 100 * v);
    label(&c, left - 8 - label_width(s, 1), y - 3, 1, s, 0x404040);
  }
  fill(&c, left, top, left + 1, y0 + 1, 0x000000);
  fill(&c, left, y0, c.w - 20, y0 + 1, 0x000000);
  for (int k = 0; k < n; k++) {
    int x = left + 10 + k * group, bw = 30;
    int hb = (int)lround(ph * before[k] / ymax), ha = (int)lround(ph * after[k] / ymax);
    fill(&c, x, y0 - hb, x + bw, y0, 0xA0A0A0);
    fill(&c, x + bw + 4, y0 - ha, x + 2 * bw + 4, y0, 0x2060C0);
    if (st->key[k].weight > 0) { /* the target as a tick across the after bar */
      int yt = y0 - (int)lround(ph * st->key[k].weight / ymax);
      fill(&c, x + bw, yt - 1, x + 2 * bw + 8, yt + 2, 0x000000);
    }
    label(&c, x, y0 + 8, 1, st->key[k].name, 0x000000);
  }
  label(&c, left, y0 + 30, 1, "grey: before   blue: after   black tick: target", 0x404040);
  int ok = stbi_write_png(path, c.w, c.h, 3, c.px, c.w * 3);
  free(c.px);
  return ok ? 0 : -1;
}

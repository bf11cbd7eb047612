/* Helpers shared by the sub-commands. */
#include "app_util.h"

#include <stdio.h>
#include <string.h>

int app_config_flag(vklm_config *cfg, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  if (!strcmp(a, "--device") || !strcmp(a, "--limits")) {
    if (*i + 1 >= argc) {
      fprintf(stderr, "vklm: %s needs a value\n", a);
      return -1;
    }
    const char *v = argv[++*i];
    if (!strcmp(a, "--device")) snprintf(cfg->device, sizeof cfg->device, "%s", v);
    else cfg->limits_baseline = !strcmp(v, "baseline");
    return 1;
  }
  if (!strcmp(a, "--validate")) { cfg->validate = 1; return 1; }
  if (!strcmp(a, "--timestamps")) { cfg->timestamps = 1; return 1; }
  return 0;
}

vklm_context *app_context(const vklm_config *cfg) {
  vklm_context *ctx = NULL;
  char err[1024];
  vklm_status st = vklm_context_create(cfg, &ctx, err, sizeof err);
  if (st != VKLM_OK) {
    fprintf(stderr, "vklm: %s: %s\n", vklm_status_name(st), err);
    return NULL;
  }
  return ctx;
}

const char *app_bytes(uint64_t b, char *buf, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  int k = 0;
  while (v >= 1024 && k < 4) { v /= 1024; k++; }
  snprintf(buf, n, k ? "%.1f %s" : "%.0f %s", v, u[k]);
  return buf;
}

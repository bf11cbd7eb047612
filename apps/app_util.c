/* Helpers shared by the sub-commands. */
#include "app_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Validation messages fail the command (issue 14): once a context with validation exists, the
 * process ends with status 3 when any message was raised, whether the command returned from main
 * or called exit(), and whether the message came while it ran or while its context was destroyed
 * (vklm_validation_messages counts both). CLI and Python-driven tests thus fail on any message. */
static void validation_verdict(void) {
  uint32_t n = vklm_validation_messages();
  if (n == 0) return;
  fprintf(stderr, "vklm: %u validation message(s) were raised (VKLM_VALIDATE is set): failing\n",
          n);
  fflush(NULL);
  _exit(3);
}

vklm_context *app_context(const vklm_config *cfg) {
  static int verdict_registered;
  if (cfg->validate && !verdict_registered) verdict_registered = !atexit(validation_verdict);
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

/* Small helpers shared by the sub-commands: the Vulkan context from the environment and
 * --device/--limits flags, and human-readable sizes. */
#ifndef VKLM_APPS_UTIL_H
#define VKLM_APPS_UTIL_H

#include "vklm_runtime.h"

/* Reads the environment into cfg, then applies a flag if argv[*i] is one of
 * --device X, --limits baseline, --validate, --timestamps (advancing *i past its value).
 * Returns 1 if it consumed a flag, 0 if not, -1 on a flag missing its value. */
int app_config_flag(vklm_config *cfg, int argc, char **argv, int *i);
/* Creates the context or prints the error and returns NULL. */
vklm_context *app_context(const vklm_config *cfg);
/* "1.5 GiB" style. */
const char *app_bytes(uint64_t b, char *buf, size_t n);

#endif

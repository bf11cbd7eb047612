/* Small helpers shared by the sub-commands: the Vulkan context (its --device/--limits flags are
 * read by apps/flags.h's parser), and human-readable sizes. */
#ifndef VKLM_APPS_UTIL_H
#define VKLM_APPS_UTIL_H

#include "vklm_runtime.h"

/* Creates the context or prints the error and returns NULL. With validation on, the process then
 * exits with status 3 if any validation message is raised (at teardown too). */
vklm_context *app_context(const vklm_config *cfg);
/* "1.5 GiB" style. */
const char *app_bytes(uint64_t b, char *buf, size_t n);

#endif

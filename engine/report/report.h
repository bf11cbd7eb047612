/* report: the one-page HTML report at the end of a model's life cycle — each stage's figures and
 * plot, and sample answers of several models to the same prompts side by side. Self-contained:
 * plots (PNG files) are embedded as data URIs, nothing is fetched.
 *
 * Owns nothing after it returns; reads the PNG files it is given. Does not gather figures (the
 * caller, `vklm report`, reads them from a run directory) or generate answers. */
#ifndef VKLM_REPORT_H
#define VKLM_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

typedef struct vklm_report_stage {
  const char *title;          /* "Pretraining" */
  const char *command;        /* the command that ran it (shown), or NULL */
  const char *const *figures; /* "label: value" lines, nfig of them */
  uint32_t nfig;
  const char *png;            /* a plot to embed, or NULL (a missing file is noted, not fatal) */
} vklm_report_stage;

typedef struct vklm_report {
  const char *title;
  const char *subtitle;             /* e.g. the device and the total time */
  const vklm_report_stage *stages;
  uint32_t nstages;
  /* sample answers: prompts[i] answered by model j is answers[i * nmodels + j] */
  const char *const *prompts;
  uint32_t nprompts;
  const char *const *models;
  uint32_t nmodels;
  const char *const *answers;
  const char *const *expected;      /* per prompt, or NULL: the expected answer, shown */
} vklm_report;

/* Writes the report to path (atomically: path.tmp, then rename). */
vklm_status vklm_report_write(const vklm_report *r, const char *path, char *err, size_t errlen);

#endif

/* eval internals shared by its files: progress lines (items/s, ETA) on stderr and a clock. */
#ifndef VKLM_EVAL_INTERNAL_H
#define VKLM_EVAL_INTERNAL_H

#include <stdint.h>

#include "eval/eval.h"

/* A new zeroed item at the end of t's items (NULL: no memory). */
vklm_eval_item *vklm_eval_task_add_item(vklm_eval_task *t);

typedef struct vklm_eval_progress {
  const char *label; /* NULL: silent */
  const char *unit;  /* "items" when NULL */
  uint64_t total;
  double t0, last;
} vklm_eval_progress;
double vklm_eval_now(void);
void vklm_eval_progress_start(vklm_eval_progress *p, const char *label, uint64_t total);
/* at most twice a second, and always when done == total (then a newline) */
void vklm_eval_progress_update(vklm_eval_progress *p, uint64_t done);

#endif

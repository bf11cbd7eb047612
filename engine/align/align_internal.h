/* What align_data.c (SFT rows) and pref_data.c (preference rows) share: the JSONL row reader,
 * bad-row reporting, tokenizing and rendering conversations. Internal to engine/align. */
#ifndef VKLM_ALIGN_INTERNAL_H
#define VKLM_ALIGN_INTERNAL_H

#include <cjson/cJSON.h>

#include "align/align.h"

typedef struct reader {
  const char *path;
  const vklm_align_read_opts *o;
  vklm_align_stats *st;
  char *err;
  size_t errlen;
} reader;

typedef enum { BAD_JSON, BAD_FIELD, BAD_EMPTY, BAD_LONG, BAD_RANKING } bad_kind;

/* A bad row at line: VKLM_ERROR_INVALID with "path:line: message" in r->err (bad_rows stop), or
 * VKLM_OK after logging and counting it (skip). */
vklm_status vklm_align_bad(reader *r, uint32_t line, bad_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Calls fn for each non-blank line holding a JSON object (other lines are bad rows). */
typedef vklm_status (*row_fn)(reader *r, cJSON *j, uint32_t line, void *user);
vklm_status vklm_align_each_row(reader *r, row_fn fn, void *user);
/* Appends text's ids (special-token text becomes control tokens, as a template wrote it). */
int vklm_align_encode(reader *r, const char *text, vklm_token_ids *ids);
/* A non-empty array of {"role": string, "content": string}. */
int vklm_align_is_messages(const cJSON *a);
/* The template's rendering of msgs[0..n); NULL with a message in why. */
char *vklm_align_render(reader *r, const cJSON *msgs, int n, int add_gen, char *why, size_t wl);

#endif

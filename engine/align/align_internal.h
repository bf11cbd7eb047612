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

/* The rollout batch on the device (align.h: vklm_ppo_dev), shared by ppo_loss.c (advantages,
 * losses, update) and ppo.c (which fills it from the models' forward passes). All buffers are
 * (N,T) f32 unless said otherwise. */
struct vklm_ppo_dev {
  vklm_context *ctx;  /* borrowed */
  vklm_arena *arena;  /* owned: every buffer below */
  vklm_cmd *cmd;      /* owned */
  uint32_t N, T, updates;
  vklm_buffer mask, old_logp, ref_logp, values;
  vklm_buffer score_src; /* the scores read at last[r]: (N) uploaded, or the reward model's (N,T) */
  vklm_buffer scores;    /* (N) uploaded scores (vklm_ppo_dev_upload) */
  vklm_buffer rm_values; /* (N,T) the reward model's values at rollout */
  vklm_buffer last;      /* (N) u32 index of row r's score in score_src */
  vklm_buffer bonus;     /* (N) added to row r's score (the penalty for no EOS) */
  vklm_buffer rewards, adv, ret;
  vklm_buffer rowstats;  /* (N,4) */
  vklm_buffer order;     /* (epochs * N) u32, capacity order_cap */
  vklm_buffer stats;     /* VKLM_RL_STATS_FLOATS(updates) */
  uint32_t order_cap;
  uint32_t *order_host;  /* owned: the order as uploaded (the minibatch's tokens come from it) */
};

#endif

/* Conversations: an optional system prompt and the messages after it, their prompt tokens for
 * a context budget (dropping the oldest whole turns), and the common prefix of two token
 * arrays for reusing a KV cache. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "chat/chat.h"

struct vklm_chat {
  const vklm_chat_template *t; /* borrowed */
  vklm_chat_message *m;        /* owned strings */
  size_t n, cap;
  int has_system;
  int64_t now;
};

vklm_status vklm_chat_create(const vklm_chat_template *t, const char *system, vklm_chat **out) {
  *out = NULL;
  vklm_chat *c = calloc(1, sizeof *c);
  if (!c) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  c->t = t;
  if (system && *system) {
    if (vklm_chat_add(c, "system", system)) {
      free(c);
      return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    c->has_system = 1;
  }
  *out = c;
  return VKLM_OK;
}

static void free_msg(vklm_chat_message *m) {
  free((char *)m->role);
  free((char *)m->content);
}

void vklm_chat_destroy(vklm_chat *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n; i++) free_msg(&c->m[i]);
  free(c->m);
  free(c);
}

vklm_status vklm_chat_add(vklm_chat *c, const char *role, const char *content) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 16;
    vklm_chat_message *m = realloc(c->m, cap * sizeof *m);
    if (!m) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    c->m = m;
    c->cap = cap;
  }
  char *r = strdup(role), *t = strdup(content);
  if (!r || !t) {
    free(r);
    free(t);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  c->m[c->n++] = (vklm_chat_message){r, t};
  return VKLM_OK;
}

void vklm_chat_pop(vklm_chat *c) {
  if (c->n > (size_t)c->has_system) free_msg(&c->m[--c->n]);
}

void vklm_chat_reset(vklm_chat *c) {
  while (c->n > (size_t)c->has_system) free_msg(&c->m[--c->n]);
}

size_t vklm_chat_count(const vklm_chat *c) { return c->n; }
const vklm_chat_message *vklm_chat_messages(const vklm_chat *c) { return c->m; }
void vklm_chat_set_now(vklm_chat *c, int64_t now) { c->now = now; }

static int is_user(const vklm_chat_message *m) { return !strcmp(m->role, "user"); }

/* The end of the oldest turn [first, e) if it may be dropped (it does not hold the newest user
 * message, nor the last message), else 0. */
static size_t droppable(const vklm_chat *c) {
  size_t first = (size_t)c->has_system, last_user = c->n;
  for (size_t i = c->n; i-- > first;)
    if (is_user(&c->m[i])) {
      last_user = i;
      break;
    }
  if (c->n - first < 2) return 0;
  size_t e = first + 1;
  while (e < c->n && !is_user(&c->m[e])) e++;
  if (e >= c->n || e > last_user) return 0;
  return e;
}

vklm_status vklm_chat_prompt(vklm_chat *c, vklm_tokenizer *tk, size_t budget,
                             vklm_token_ids *ids, uint32_t *dropped, char *err, size_t errlen) {
  if (dropped) *dropped = 0;
  for (;;) {
    char *vars = vklm_chat_vars_json(c->m, c->n, NULL, err, errlen);
    if (!vars) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    ids->n = 0;
    vklm_status st = vklm_chat_template_encode(c->t, tk, vars, 1, c->now, ids, NULL, err, errlen);
    free(vars);
    if (st) return st;
    if (ids->n <= budget) return VKLM_OK;
    size_t e = droppable(c);
    if (!e) {
      snprintf(err, errlen, "the conversation needs %zu tokens, more than the %zu available",
               ids->n, budget);
      return VKLM_ERROR_INVALID;
    }
    size_t first = (size_t)c->has_system;
    for (size_t i = first; i < e; i++) free_msg(&c->m[i]);
    memmove(c->m + first, c->m + e, (c->n - e) * sizeof *c->m);
    c->n -= e - first;
    if (dropped) (*dropped)++;
  }
}

size_t vklm_chat_common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
  size_t n = na < nb ? na : nb, i = 0;
  while (i < n && a[i] == b[i]) i++;
  return i;
}

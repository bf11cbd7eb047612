/* Exact deduplication: an open-addressing set of 128-bit text hashes that doubles as it fills. */
#include <stdlib.h>
#include <string.h>

#include "data/dedup.h"

struct vklm_dedup_set {
  uint64_t *slot; /* owned; 2 words per slot, (0, 0) = empty */
  size_t mask;    /* slots - 1 */
  uint64_t count;
  int has_zero; /* the all-zero hash, which cannot be stored in a slot */
};

int vklm_dedup_set_create(vklm_dedup_set **out) {
  vklm_dedup_set *s = calloc(1, sizeof *s);
  *out = NULL;
  if (!s) return -1;
  s->mask = 1023;
  s->slot = calloc(2 * (s->mask + 1), sizeof *s->slot);
  if (!s->slot) {
    free(s);
    return -1;
  }
  *out = s;
  return 0;
}

void vklm_dedup_set_destroy(vklm_dedup_set *s) {
  if (!s) return;
  free(s->slot);
  free(s);
}

static size_t find(const uint64_t *slot, size_t mask, const uint64_t h[2]) {
  size_t i = (size_t)(h[0] ^ (h[1] >> 7)) & mask;
  while ((slot[2 * i] || slot[2 * i + 1]) && (slot[2 * i] != h[0] || slot[2 * i + 1] != h[1]))
    i = (i + 1) & mask;
  return i;
}

static int grow(vklm_dedup_set *s) {
  size_t nmask = s->mask * 2 + 1;
  uint64_t *ns = calloc(2 * (nmask + 1), sizeof *ns);
  if (!ns) return -1;
  for (size_t i = 0; i <= s->mask; i++) {
    uint64_t *e = s->slot + 2 * i;
    if (!e[0] && !e[1]) continue;
    size_t j = find(ns, nmask, e);
    ns[2 * j] = e[0];
    ns[2 * j + 1] = e[1];
  }
  free(s->slot);
  s->slot = ns;
  s->mask = nmask;
  return 0;
}

int vklm_dedup_set_insert(vklm_dedup_set *s, const uint64_t h[2]) {
  if (!h[0] && !h[1]) {
    int was = s->has_zero;
    s->has_zero = 1;
    s->count += !was;
    return !was;
  }
  if ((s->count + 1) * 2 > s->mask + 1 && grow(s)) return -1;
  size_t i = find(s->slot, s->mask, h);
  if (s->slot[2 * i] || s->slot[2 * i + 1]) return 0;
  s->slot[2 * i] = h[0];
  s->slot[2 * i + 1] = h[1];
  s->count++;
  return 1;
}

uint64_t vklm_dedup_set_count(const vklm_dedup_set *s) { return s->count; }

/* MLM masking on the host (BERT's recipe): 15% of the positions (at least one) are chosen with a
 * seeded generator; of those, 80% become mask_id, 10% a random token, 10% stay; the targets are
 * the original tokens at the chosen positions and VKLM_IGNORE_INDEX elsewhere. */
#include "model.h"

static uint64_t next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void vklm_mlm_mask(const int32_t *tokens, uint32_t n, uint32_t V, int32_t mask_id, uint64_t seed,
                   int32_t *inputs, int32_t *targets) {
  uint64_t s = seed * 0x2545f4914f6cdd1dull + 0x6d6c6dull;
  uint32_t chosen = 0;
  for (uint32_t i = 0; i < n; i++) {
    inputs[i] = tokens[i];
    targets[i] = VKLM_IGNORE_INDEX;
    /* 15%: a 24-bit uniform below 0.15 * 2^24 */
    if ((next(&s) >> 40) < (uint64_t)(0.15 * (1u << 24))) {
      targets[i] = tokens[i];
      chosen++;
    }
  }
  if (chosen == 0 && n > 0) {
    uint32_t i = (uint32_t)(next(&s) % n);
    targets[i] = tokens[i];
  }
  for (uint32_t i = 0; i < n; i++) {
    if (targets[i] == VKLM_IGNORE_INDEX) continue;
    uint64_t r = next(&s) % 10;
    if (r < 8)
      inputs[i] = mask_id;
    else if (r == 8)
      inputs[i] = (int32_t)(next(&s) % V);
  }
}

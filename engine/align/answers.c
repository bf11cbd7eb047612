/* Exact match of a model's greedy answers: what `vklm sft --eval-answers` and the quickstart
 * measure before and after fine-tuning. */
#include <ctype.h>
#include <string.h>

#include "align/align.h"

/* The first line of s, without surrounding whitespace, lower-cased, into out. */
static void normalise(const char *s, char *out, size_t n) {
  while (*s && isspace((unsigned char)*s)) s++;
  size_t k = 0;
  while (s[k] && s[k] != '\n' && k + 1 < n) out[k] = (char)tolower((unsigned char)s[k]), k++;
  while (k > 0 && isspace((unsigned char)out[k - 1])) k--;
  out[k] = 0;
}

int vklm_align_answer_matches(const char *response, const char *answer) {
  char a[512], b[512];
  normalise(response, a, sizeof a);
  normalise(answer, b, sizeof b);
  return b[0] && !strcmp(a, b);
}

vklm_status vklm_align_exact_match(vklm_model *m, vklm_tokenizer *tk, vklm_pref_set *items,
                                   uint32_t max_tokens, int32_t eos, uint64_t *correct,
                                   char *err, size_t errlen) {
  *correct = 0;
  for (uint64_t i = 0; i < items->n; i++)
    if (!items->items[i].answer) {
      snprintf(err, errlen, "line %u has no \"answer\" to match", items->items[i].line);
      return VKLM_ERROR_INVALID;
    }
  vklm_rollout_options o = {.k = 1, .max_tokens = max_tokens, .temp = 0, .top_p = 1, .eos = eos,
                            .slots = 16};
  vklm_status st = vklm_rollout(m, tk, items, &o, err, errlen);
  if (st != VKLM_OK) return st;
  for (uint64_t i = 0; i < items->n; i++)
    *correct += vklm_align_answer_matches(items->items[i].response[0], items->items[i].answer);
  return VKLM_OK;
}

/* eval prompts: perturbations for robustness (typos, letter case, whitespace, reordered choices,
 * paraphrased instruction templates) and few-shot prompts, both producing a new task from a
 * clean one so that every variant runs through the same scoring. Seeded: the same seed gives
 * the same variant on every machine. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

static const char *names[VKLM_PERTURB_COUNT] = {"clean", "typo", "case", "whitespace", "order", "template"};

const char *vklm_perturb_name(vklm_perturb p) { return p < VKLM_PERTURB_COUNT ? names[p] : "?"; }

int vklm_perturb_from_name(const char *s) {
  for (int i = 0; i < VKLM_PERTURB_COUNT; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

static uint64_t mix(uint64_t x) { /* splitmix64 */
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* paraphrases of "answer this"; {} is the prompt */
static const char *templates[] = {
    "Answer the following.\n{}",
    "Here is a question for you.\n{}",
    "Please read carefully and respond.\n{}",
    "Complete the text below.\n{}",
};

char *vklm_perturb_text(vklm_perturb p, const char *text, uint64_t seed) {
  size_t n = strlen(text);
  char *o = malloc(2 * n + 64);
  if (!o) return NULL;
  uint64_t s = mix(seed);
  switch (p) {
  case VKLM_PERTURB_TYPO: {
    memcpy(o, text, n + 1);
    for (size_t i = 0; i < n;) { /* words of 4+ ASCII letters: one in five gets two letters swapped */
      size_t j = i;
      while (j < n && isalpha((unsigned char)o[j])) j++;
      if (j - i >= 4 && (s = mix(s)) % 5 == 0) {
        size_t k = i + 1 + (s >> 8) % (j - i - 2); /* k, k+1 inside the word, not the first letter */
        char c = o[k];
        o[k] = o[k + 1], o[k + 1] = c;
      }
      i = j + (j == i);
    }
    return o;
  }
  case VKLM_PERTURB_CASE:
    for (size_t i = 0; i <= n; i++) o[i] = (char)toupper((unsigned char)text[i]);
    return o;
  case VKLM_PERTURB_SPACE: {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      if (text[i] == ' ') o[k++] = ' ';
      else if (text[i] == '\n') o[k++] = ' ';
      o[k++] = text[i];
    }
    o[k] = 0;
    return o;
  }
  case VKLM_PERTURB_TEMPLATE: {
    const char *t = templates[(s >> 16) % (sizeof templates / sizeof templates[0])];
    const char *h = strstr(t, "{}");
    size_t a = (size_t)(h - t);
    free(o);
    o = malloc(strlen(t) + n + 1);
    if (!o) return NULL;
    memcpy(o, t, a);
    memcpy(o + a, text, n);
    strcpy(o + a + n, h + 2);
    return o;
  }
  default:
    memcpy(o, text, n + 1);
    return o;
  }
}

static char *dup(const char *s) {
  size_t n = strlen(s);
  char *o = malloc(n + 1);
  if (o) memcpy(o, s, n + 1);
  return o;
}

/* "shot context" + delim + "answer" blocks before the item's own prompt */
static char *with_shots(const vklm_eval_task *t, uint32_t self, uint32_t shots, uint64_t seed,
                        const char *prompt) {
  size_t cap = strlen(prompt) + 1, len = 0;
  uint32_t pick[64], np = 0;
  if (shots > 64) shots = 64;
  if (shots > t->n - 1) shots = t->n - 1;
  uint64_t s = mix(seed ^ (0x5107ull * (self + 1)));
  while (np < shots) {
    s = mix(s);
    uint32_t j = (uint32_t)(s % t->n), dupl = j == self;
    for (uint32_t q = 0; q < np; q++) dupl |= pick[q] == j;
    if (!dupl) pick[np++] = j;
  }
  for (uint32_t q = 0; q < np; q++) {
    const vklm_eval_item *e = &t->items[pick[q]];
    const char *ans = t->kind == VKLM_TASK_MC ? e->choices[e->gold] : e->answers[0];
    cap += strlen(e->context) + strlen(t->delim) + strlen(ans) + 4;
  }
  char *o = malloc(cap);
  if (!o) return NULL;
  for (uint32_t q = 0; q < np; q++) {
    const vklm_eval_item *e = &t->items[pick[q]];
    const char *ans = t->kind == VKLM_TASK_MC ? e->choices[e->gold] : e->answers[0];
    len += (size_t)sprintf(o + len, "%s%s%s\n\n", e->context,
                           t->kind == VKLM_TASK_MC ? t->delim : " ", ans);
  }
  strcpy(o + len, prompt);
  return o;
}

vklm_eval_task *vklm_eval_task_variant(const vklm_eval_task *t, vklm_perturb p, uint32_t shots,
                                       uint64_t seed) {
  vklm_eval_task *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  memcpy(v, t, sizeof *v);
  v->items = NULL, v->n = v->cap = 0, v->regex = NULL;
  if (t->regex && !(v->regex = dup(t->regex))) goto oom;
  if (!(v->items = calloc(t->n ? t->n : 1, sizeof *v->items))) goto oom;
  v->cap = t->n;
  int shot_ok = shots && (t->kind == VKLM_TASK_MC || t->kind == VKLM_TASK_GEN) && t->n > 1;
  int text_ok = t->kind == VKLM_TASK_MC || t->kind == VKLM_TASK_GEN;
  for (uint32_t i = 0; i < t->n; i++) {
    v->n = i + 1;
    const vklm_eval_item *a = &t->items[i];
    vklm_eval_item *b = &v->items[i];
    b->line = a->line, b->gold = a->gold;
    if (a->category && !(b->category = dup(a->category))) goto oom;
    if (a->nids) {
      if (!(b->ids = malloc(sizeof(int32_t) * a->nids))) goto oom;
      memcpy(b->ids, a->ids, sizeof(int32_t) * a->nids);
      b->nids = a->nids;
    }
    if (a->nchoices && !(b->choices = calloc(a->nchoices, sizeof(char *)))) goto oom;
    if (a->nanswers && !(b->answers = calloc(a->nanswers, sizeof(char *)))) goto oom;
    for (uint32_t j = 0; j < a->nchoices; j++, b->nchoices++) {
      uint32_t to = p == VKLM_PERTURB_ORDER && t->kind == VKLM_TASK_MC ? (j + 1) % a->nchoices : j;
      if (!(b->choices[to] = dup(a->choices[j]))) goto oom;
    }
    if (p == VKLM_PERTURB_ORDER && t->kind == VKLM_TASK_MC) b->gold = (a->gold + 1) % (int)a->nchoices;
    for (uint32_t j = 0; j < a->nanswers; j++, b->nanswers++)
      if (!(b->answers[j] = dup(a->answers[j]))) goto oom;
    if (!a->context) continue;
    char *ctx = text_ok && p != VKLM_PERTURB_ORDER ? vklm_perturb_text(p, a->context, seed * 1000003 + i)
                                                   : dup(a->context);
    if (!ctx) goto oom;
    if (shot_ok) {
      char *w = with_shots(t, i, shots, seed, ctx);
      free(ctx);
      if (!(ctx = w)) goto oom;
    }
    b->context = ctx;
  }
  return v;
oom:
  vklm_eval_task_free(v);
  return NULL;
}

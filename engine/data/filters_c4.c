/* C4 rules (Raffel et al. 2020, section 2.2) as datatrove's C4QualityFilter applies them, line
 * by line: drop lines without terminal punctuation, with fewer than 3 words, with a word over
 * 1000 characters, mentioning javascript or a terms/privacy/cookie policy; drop the document on
 * "lorem ipsum" or '{' in a kept line, or when fewer than 5 sentences survive. Sentences are
 * counted by a rule (a run of . ! ? followed by space or line end; at least one per line) in
 * place of nltk's punkt model. The bad-words list rule is not applied (datatrove keeps it as a
 * separate filter, off in FineWeb). */
#include <string.h>

#include "data/steps.h"

void vklm_c4_default(vklm_c4_opts *o) {
  *o = (vklm_c4_opts){.enabled = 1,
                      .remove_citations = 1,
                      .terminal_punct = 1,
                      .min_words_per_line = 3,
                      .min_sentences = 5,
                      .max_word_length = 1000,
                      .lorem_ipsum = 1,
                      .javascript = 1,
                      .curly_bracket = 1,
                      .policy = 1};
}

static const char *const policy[] = {"terms of use",
                                     "privacy policy",
                                     "cookie policy",
                                     "uses cookies",
                                     "use of cookies",
                                     "use cookies",
                                     NULL};

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Removes [123], [], [edit] and [citation needed] from line (in place); returns new length. */
static size_t strip_citations(char *l, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (l[i] == '[') {
      size_t j = i + 1;
      while (j < n && l[j] >= '0' && l[j] <= '9')
        j++;
      size_t skip = 0;
      if (j < n && l[j] == ']')
        skip = j + 1 - i;
      else if (n - i >= 6 && !memcmp(l + i, "[edit]", 6))
        skip = 6;
      else if (n - i >= 17 && !memcmp(l + i, "[citation needed]", 17))
        skip = 17;
      if (skip) {
        i += skip;
        continue;
      }
    }
    l[o++] = l[i++];
  }
  return o;
}

static long count_sentences(const char *l, size_t n) {
  long c = 0;
  for (size_t i = 0; i < n; i++) {
    if (l[i] != '.' && l[i] != '!' && l[i] != '?') continue;
    size_t j = i;
    while (j < n && (l[j] == '.' || l[j] == '!' || l[j] == '?'))
      j++;
    while (j < n && (l[j] == '"' || l[j] == '\'' || l[j] == ')' || l[j] == ']'))
      j++;
    if (j == n || is_ws(l[j])) c++;
    i = j - 1;
  }
  return c ? c : 1;
}

static int has(const char *low, size_t n, const char *pat) {
  return memmem(low, n, pat, strlen(pat)) != NULL;
}

vklm_drop vklm_c4_filter(const vklm_c4_opts *o, const char *s, size_t n, vklm_buf *out,
                         vklm_c4_counts *counts) {
  char *line = malloc(n + 1), *low = malloc(n + 1);
  vklm_drop d = VKLM_DROP_NONE;
  long sentences = 0;
  size_t start = out->n;
  if (!line || !low) {
    d = VKLM_DROP_EMPTY;
    goto done;
  }
  for (size_t i = 0; i < n;) {
    const char *e = memchr(s + i, '\n', n - i);
    size_t len = e ? (size_t)(e - (s + i)) : n - i;
    const char *l = s + i;
    i += len + 1;
    while (len && is_ws(*l))
      l++, len--;
    while (len && is_ws(l[len - 1]))
      len--;
    if (counts) counts->lines_in++;
    long words = 0, longest = 0;
    for (size_t k = 0; k < len;) { /* str.split(): runs of non-space */
      while (k < len && is_ws(l[k]))
        k++;
      size_t b = k;
      while (k < len && !is_ws(l[k]))
        k++;
      if (k > b) {
        words++;
        long cp = (long)vklm_words_codepoints(l + b, k - b);
        if (cp > longest) longest = cp;
      }
    }
    if (o->max_word_length > 0 && longest > o->max_word_length) continue;
    memcpy(line, l, len);
    if (o->remove_citations) len = strip_citations(line, len);
    if (o->terminal_punct) {
      char last = len ? line[len - 1] : 0;
      int ok = last == '.' || last == '?' || last == '!' || last == '"' || last == '\'';
      if (!ok || (len >= 3 && !memcmp(line + len - 3, "...", 3))) continue;
    }
    if (words < o->min_words_per_line) continue;
    for (size_t k = 0; k < len; k++)
      low[k] = (line[k] >= 'A' && line[k] <= 'Z') ? (char)(line[k] + 32) : line[k];
    if (o->lorem_ipsum && has(low, len, "lorem ipsum")) {
      d = VKLM_DROP_C4_LOREM_IPSUM;
      goto done;
    }
    if (o->javascript && has(low, len, "javascript")) continue;
    if (o->curly_bracket && memchr(line, '{', len)) {
      d = VKLM_DROP_C4_CURLY_BRACKET;
      goto done;
    }
    int pol = 0;
    for (int p = 0; o->policy && policy[p] && !pol; p++)
      pol = has(low, len, policy[p]);
    if (pol) continue;
    sentences += count_sentences(line, len);
    if (out->n > start && vklm_buf_putc(out, '\n')) d = VKLM_DROP_EMPTY;
    if (vklm_buf_append(out, line, len)) d = VKLM_DROP_EMPTY;
    if (d) goto done;
    if (counts) counts->lines_kept++;
  }
  if (o->min_sentences > 0 && sentences < o->min_sentences)
    d = VKLM_DROP_C4_FEW_SENTENCES;
  else if (out->n == start)
    d = VKLM_DROP_EMPTY;
done:
  free(line);
  free(low);
  return d;
}

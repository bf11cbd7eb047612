/* pretokenize.c: splitting text into pieces (words) before BPE, step by step as a tokenizer.json
 * Sequence describes: Split(regex or literal, behavior, invert), ByteLevel (its optional GPT-2
 * regex and prefix space), Digits (compiled to a Split). Each step splits every piece of the step
 * before independently, so lookarounds never see past a piece, as in Hugging Face tokenizers.
 * Pieces stream to a callback in order: nothing proportional to the text is allocated, except a
 * copy when the text has invalid UTF-8 (each invalid byte is matched as U+FFFD, then mapped back,
 * so every byte lands in a piece and decode(encode(x)) == x holds for any bytes). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

typedef struct run_ctx {
  const vklm_tokenizer *tk;
  tk_pretok_scratch *s;
  const char *subj; /* what the regexes see */
  int substituted;  /* subj differs from s->orig by U+FFFD replacements */
  tk_piece_fn fn;
  void *ctx;
} run_ctx;

static int segs_push(tk_segs *v, size_t off, size_t len, int match) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    tk_seg *p = realloc(v->p, cap * sizeof *p);
    if (!p) return VKLM_TOK_ERR_NOMEM;
    v->p = p;
    v->cap = cap;
  }
  v->p[v->n++] = (tk_seg){off, len, match};
  return 0;
}

/* Subject offset -> offset in s->orig (subs are in increasing order; calls are monotonic). */
static size_t map_back(tk_pretok_scratch *s, size_t x) {
  while (s->cursor < s->nsubs && s->subs[s->cursor] < x) s->cursor++;
  return x - 2 * s->cursor;
}

static int leaf(run_ctx *r, size_t off, size_t len) {
  if (!r->substituted) return r->fn(r->ctx, r->s->orig + off, len);
  size_t a = map_back(r->s, off), b = map_back(r->s, off + len);
  return r->fn(r->ctx, r->s->orig + a, b - a);
}

/* Successive matches of a regex in one piece, with the rules of the onig crate's find_iter
 * (what tokenizers iterates): an empty match right where the previous match ended is skipped by
 * moving one character on; any other empty match counts, and splits the text there. A matching
 * error (resource limit) ends the matches: the rest becomes a gap, never a crash or a hang. */
typedef struct miter {
  size_t last_end, last_match_end;
  int has_last;
} miter;

static int next_match(pcre2_code *re, tk_pretok_scratch *s, const char *subj, size_t len, miter *it,
                      size_t *ms, size_t *me) {
  while (it->last_end <= len) {
    int rc = pcre2_match(re, (PCRE2_SPTR)subj, len, it->last_end, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
    if (rc < 0) return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    if (ov[1] < ov[0] || ov[0] < it->last_end || ov[1] > len) return 0; /* \K oddities */
    if (ov[0] == ov[1] && it->has_last && it->last_match_end == ov[1]) {
      if (it->last_end >= len) return 0;
      int l = tk_utf8_seq_len((const unsigned char *)subj + it->last_end, len - it->last_end);
      it->last_end += l ? (size_t)l : 1;
      continue;
    }
    *ms = ov[0];
    *me = ov[1];
    it->last_end = it->last_match_end = ov[1];
    it->has_last = 1;
    return 1;
  }
  return 0;
}

static int run(run_ctx *r, size_t level, size_t off, size_t len);

static int run_segments(run_ctx *r, size_t level, const tk_step *st, size_t off, size_t len) {
  tk_segs *v = &r->s->levels[level];
  v->n = 0;
  size_t prev = 0, ms, me;
  miter it = {0};
  int rc;
  while (next_match(st->re, r->s, r->subj + off, len, &it, &ms, &me)) {
    if (ms > prev && (rc = segs_push(v, prev, ms - prev, st->invert))) return rc;
    if ((rc = segs_push(v, ms, me - ms, !st->invert))) return rc; /* empty ones too */
    prev = me;
  }
  if (prev < len && (rc = segs_push(v, prev, len - prev, st->invert))) return rc;
  /* apply the behavior in place (the same folds as tokenizers' SplitDelimiterBehavior) */
  size_t n = 0;
  int prev_match = 0;
  switch (st->behavior) {
  case TK_SPLIT_ISOLATED: n = v->n; break;
  case TK_SPLIT_REMOVED:
    for (size_t i = 0; i < v->n; i++)
      if (!v->p[i].match) v->p[n++] = v->p[i];
    break;
  case TK_SPLIT_MERGED_PREV:
    for (size_t i = 0; i < v->n; i++) {
      tk_seg g = v->p[i];
      if (g.match && !prev_match && n) v->p[n - 1].len = g.off + g.len - v->p[n - 1].off;
      else v->p[n++] = g;
      prev_match = g.match;
    }
    break;
  case TK_SPLIT_MERGED_NEXT: /* fold from the right, writing from the end */
    n = v->n;
    {
      size_t w = v->n; /* output occupies [w, v->n) */
      for (size_t i = v->n; i-- > 0;) {
        tk_seg g = v->p[i];
        if (g.match && !prev_match && w < v->n) {
          v->p[w].len = v->p[w].off + v->p[w].len - g.off;
          v->p[w].off = g.off;
        } else {
          v->p[--w] = g;
        }
        prev_match = g.match;
      }
      n = v->n - w;
      memmove(v->p, v->p + w, n * sizeof *v->p);
    }
    break;
  case TK_SPLIT_CONTIGUOUS:
    for (size_t i = 0; i < v->n; i++) {
      tk_seg g = v->p[i];
      if (g.match == prev_match && n) v->p[n - 1].len = g.off + g.len - v->p[n - 1].off;
      else v->p[n++] = g;
      prev_match = g.match;
    }
    break;
  }
  v->n = n;
  for (size_t i = 0; i < n; i++) {
    tk_seg g = r->s->levels[level].p[i]; /* re-read: deeper levels use their own lists */
    if ((rc = run(r, level + 1, off + g.off, g.len))) return rc;
  }
  return 0;
}

static int run(run_ctx *r, size_t level, size_t off, size_t len) {
  if (!len) return 0;
  if (level == r->tk->n_steps) return leaf(r, off, len);
  const tk_step *st = &r->tk->steps[level];
  if (!st->re) return run(r, level + 1, off, len);
  if (st->behavior != TK_SPLIT_ISOLATED || st->invert) return run_segments(r, level, st, off, len);
  /* the common case streams: gap, match, gap, match, ... */
  size_t prev = 0, ms, me;
  miter it = {0};
  int rc;
  while (next_match(st->re, r->s, r->subj + off, len, &it, &ms, &me)) {
    if (ms > prev && (rc = run(r, level + 1, off + prev, ms - prev))) return rc;
    if ((rc = run(r, level + 1, off + ms, me - ms))) return rc; /* an empty match only splits */
    prev = me;
  }
  if (prev < len) return run(r, level + 1, off + prev, len - prev);
  return 0;
}

static int scratch_ready(const vklm_tokenizer *tk, tk_pretok_scratch *s) {
  if (!s->md) {
    s->md = pcre2_match_data_create(1, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    s->jstack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!s->md || !s->mctx || !s->jstack) return VKLM_TOK_ERR_NOMEM;
    pcre2_jit_stack_assign(s->mctx, NULL, s->jstack);
    pcre2_set_depth_limit(s->mctx, 100000);
  }
  if (s->n_levels < tk->n_steps) {
    tk_segs *l = realloc(s->levels, tk->n_steps * sizeof *l);
    if (!l) return VKLM_TOK_ERR_NOMEM;
    memset(l + s->n_levels, 0, (tk->n_steps - s->n_levels) * sizeof *l);
    s->levels = l;
    s->n_levels = tk->n_steps;
  }
  return 0;
}

/* Builds s->subj from text with every invalid byte replaced by U+FFFD. */
static int substitute(tk_pretok_scratch *s, const char *text, size_t len) {
  s->subj.n = 0;
  s->nsubs = 0;
  const unsigned char *p = (const unsigned char *)text;
  size_t i = 0, run_start = 0;
  int rc;
  while (i < len) {
    int l = tk_utf8_seq_len(p + i, len - i);
    if (l) {
      i += (size_t)l;
      continue;
    }
    if ((rc = tk_bytes_append(&s->subj, text + run_start, i - run_start))) return rc;
    if (s->nsubs == s->capsubs) {
      size_t cap = s->capsubs ? s->capsubs * 2 : 64;
      size_t *q = realloc(s->subs, cap * sizeof *q);
      if (!q) return VKLM_TOK_ERR_NOMEM;
      s->subs = q;
      s->capsubs = cap;
    }
    s->subs[s->nsubs++] = s->subj.n;
    if ((rc = tk_bytes_append(&s->subj, "\xEF\xBF\xBD", 3))) return rc;
    i++;
    run_start = i;
  }
  return tk_bytes_append(&s->subj, text + run_start, len - run_start);
}

int tk_pretokenize(const vklm_tokenizer *tk, tk_pretok_scratch *s, const char *text, size_t len,
                   tk_piece_fn fn, void *ctx) {
  int rc = scratch_ready(tk, s);
  if (rc) return rc;
  if (!len) return 0;
  s->orig = text;
  if (tk->n_steps && tk->steps[0].kind == TK_STEP_BYTELEVEL && tk->steps[0].add_prefix_space &&
      text[0] != ' ') {
    s->pref.n = 0;
    if ((rc = tk_bytes_append(&s->pref, " ", 1)) || (rc = tk_bytes_append(&s->pref, text, len)))
      return rc;
    s->orig = s->pref.data;
    len++;
  }
  run_ctx r = {tk, s, s->orig, 0, fn, ctx};
  if (!tk_utf8_valid(s->orig, len)) {
    if ((rc = substitute(s, s->orig, len))) return rc;
    r.subj = s->subj.data;
    r.substituted = 1;
    s->cursor = 0;
    len = s->subj.n;
  }
  return run(&r, 0, 0, len);
}

void tk_pretok_scratch_free(tk_pretok_scratch *s) {
  if (!s) return;
  pcre2_match_data_free(s->md);
  pcre2_match_context_free(s->mctx);
  pcre2_jit_stack_free(s->jstack);
  for (size_t i = 0; i < s->n_levels; i++) free(s->levels[i].p);
  free(s->levels);
  vklm_bytes_free(&s->pref);
  vklm_bytes_free(&s->subj);
  free(s->subs);
  memset(s, 0, sizeof *s);
}

/* ---- step constructors ---- */

int tk_step_split(tk_step *st, const char *pattern, int literal, tk_behavior behavior, int invert,
                  char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  st->kind = TK_STEP_SPLIT;
  st->literal = literal;
  st->behavior = behavior;
  st->invert = invert;
  st->pattern = strdup(pattern);
  if (!st->pattern) return VKLM_TOK_ERR_NOMEM;
  st->re = tk_regex_compile(pattern, literal, err, errlen);
  if (!st->re) {
    tk_step_free(st);
    return VKLM_TOK_ERR_REGEX;
  }
  return 0;
}

int tk_step_bytelevel(tk_step *st, int add_prefix_space, int use_regex, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  st->kind = TK_STEP_BYTELEVEL;
  st->add_prefix_space = add_prefix_space;
  st->use_regex = use_regex;
  st->trim_offsets = 1;
  st->behavior = TK_SPLIT_ISOLATED;
  if (use_regex) {
    st->re = tk_regex_compile(vklm_pretok_pattern_regex(VKLM_PRETOK_GPT2), 0, err, errlen);
    if (!st->re) return VKLM_TOK_ERR_REGEX;
  }
  return 0;
}

int tk_step_digits(tk_step *st, int individual, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  st->kind = TK_STEP_DIGITS;
  st->individual_digits = individual;
  st->behavior = TK_SPLIT_ISOLATED;
  /* tokenizers' Digits: char::is_numeric (Nd, Nl, No), isolated one by one or as runs */
  st->re = tk_regex_compile(individual ? "\\p{N}" : "\\p{N}+", 0, err, errlen);
  return st->re ? 0 : VKLM_TOK_ERR_REGEX;
}

void tk_step_free(tk_step *st) {
  free(st->pattern);
  pcre2_code_free(st->re);
  memset(st, 0, sizeof *st);
}

/* steps: the per-document steps of `vklm data prepare`, each usable on its own (the tests call
 * them one by one). A step reads (text, length) and either rewrites the text into a vklm_buf or
 * returns a verdict: VKLM_DROP_NONE keeps the document, any other value names the rule that
 * removed it. Steps are pure functions of their inputs and options: no globals, safe to call from
 * several threads at once (the HTML step needs vklm_html_init() once, before any thread starts;
 * a scrubber is built once and shared read-only).
 *
 * Thresholds default to the published values (datatrove's GopherQualityFilter,
 * GopherRepetitionFilter, C4QualityFilter, FineWebQualityFilter); docs/data.md lists them with
 * their sources and the places where this C version approximates the Python one (word and
 * sentence splitting). Texts handed to the filters are expected to be valid UTF-8 with "\n" line
 * ends, which is what the clean step produces. */
#ifndef VKLM_DATA_STEPS_H
#define VKLM_DATA_STEPS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "data/buf.h"

/* A temporary file opened "w+b": DIR/vklm-TAG.XXXXXX when dir is given, else BASE.XXXXXX
 * (beside the output); its path into path. NULL on failure (errno set). */
FILE *vklm_data_temp_file(const char *dir, const char *tag, const char *base, char *path,
                          size_t n);

/* Why a document was removed. Names (for reports) come from vklm_drop_name(). */
typedef enum vklm_drop {
  VKLM_DROP_NONE = 0,
  VKLM_DROP_EMPTY,              /* nothing left after extraction / cleaning */
  VKLM_DROP_GOPHER_SHORT,       /* fewer than min_words words */
  VKLM_DROP_GOPHER_LONG,        /* more than max_words words */
  VKLM_DROP_GOPHER_WORDLEN_LOW, /* mean word length below min_mean_word_len */
  VKLM_DROP_GOPHER_WORDLEN_HIGH,
  VKLM_DROP_GOPHER_HASHES,   /* '#' per word above max_symbol_ratio */
  VKLM_DROP_GOPHER_ELLIPSES, /* "..." and U+2026 per word above max_symbol_ratio */
  VKLM_DROP_GOPHER_BULLETS,  /* share of lines starting with a bullet above the limit */
  VKLM_DROP_GOPHER_END_ELLIPSIS,
  VKLM_DROP_GOPHER_ALPHA,      /* share of words with a letter below min_alpha_words */
  VKLM_DROP_GOPHER_STOP_WORDS, /* fewer than min_stop_words stop words */
  VKLM_DROP_REP_DUP_PARA,      /* Gopher repetition: duplicate paragraph fraction */
  VKLM_DROP_REP_DUP_PARA_CHAR,
  VKLM_DROP_REP_DUP_LINE,
  VKLM_DROP_REP_DUP_LINE_CHAR,
  VKLM_DROP_REP_TOP_2GRAM,
  VKLM_DROP_REP_TOP_3GRAM,
  VKLM_DROP_REP_TOP_4GRAM,
  VKLM_DROP_REP_DUP_5GRAM,
  VKLM_DROP_REP_DUP_6GRAM,
  VKLM_DROP_REP_DUP_7GRAM,
  VKLM_DROP_REP_DUP_8GRAM,
  VKLM_DROP_REP_DUP_9GRAM,
  VKLM_DROP_REP_DUP_10GRAM,
  VKLM_DROP_C4_LOREM_IPSUM,
  VKLM_DROP_C4_CURLY_BRACKET,
  VKLM_DROP_C4_FEW_SENTENCES,
  VKLM_DROP_FW_LINE_PUNCT, /* FineWeb: share of lines ending in punctuation too low */
  VKLM_DROP_FW_SHORT_LINES,
  VKLM_DROP_FW_CHAR_DUP,
  VKLM_DROP_FW_LIST, /* newlines per word too high */
  VKLM_DROP_EXACT_DUP,
  VKLM_DROP_NEAR_DUP,
  VKLM_DROP_LANG,        /* detected language not in the --languages list */
  VKLM_DROP_LANG_SCORE,  /* language score below --min-lang-score */
  VKLM_DROP_BLOCK_WORDS, /* a word/phrase block list matched (per-list counts in the stats) */
  VKLM_DROP_BLOCK_URL,   /* the document's URL or domain is on a URL block list */
  VKLM_DROP_CLASSIFIER,  /* a classifier scored it above the threshold */
  VKLM_DROP_COUNT
} vklm_drop;

const char *vklm_drop_name(vklm_drop d);

/* ---- words (words.c): the word splitting every filter shares ---------------------------- */

/* A word is a maximal run of non-space bytes with leading and trailing ASCII punctuation split
 * off as their own one-character tokens (close to nltk's word_tokenize for English). */
typedef struct vklm_span {
  uint32_t off, len; /* byte offset and length in the text */
} vklm_span;

/* Splits text into tokens, appending to *out (reallocated; *cap is its capacity in spans).
 * Returns the token count, or -1 when memory runs out. */
long vklm_words_split(const char *s, size_t n, vklm_span **out, size_t *cap);
int vklm_words_is_punct(const char *s, size_t n);      /* 1 if every byte is ASCII punctuation */
int vklm_words_has_alpha(const char *s, size_t n);     /* 1 if any code point is a letter */
size_t vklm_words_codepoints(const char *s, size_t n); /* UTF-8 code points in s */
/* 64-bit and 128-bit hashes of bytes (not cryptographic; fixed across runs and machines). */
uint64_t vklm_hash64(const void *p, size_t n, uint64_t seed);
void vklm_hash128(const void *p, size_t n, uint64_t out[2]);

/* ---- html.c ------------------------------------------------------------------------------ */
void vklm_html_init(void); /* once per process, before threads: initialises libxml2 */
/* Extracts readable text: drops script/style/nav/header/footer/aside/form and friends, decodes
 * entities, turns block elements into paragraph breaks ("\n\n") and <br> into "\n".
 * Returns 0, or -1 when the parser gives up or memory runs out (out is then empty). */
int vklm_html_extract(const char *s, size_t n, vklm_buf *out);

/* ---- clean.c ----------------------------------------------------------------------------- */
typedef struct vklm_clean_counts {
  uint64_t invalid_sequences; /* invalid UTF-8 sequences replaced by U+FFFD */
  uint64_t nul_bytes;         /* NUL bytes removed */
} vklm_clean_counts;
/* Replaces each invalid UTF-8 sequence (bad lead, truncated, overlong, surrogate, > U+10FFFF)
 * by U+FFFD and removes NUL bytes; counts both into *c (added to). Output is valid UTF-8. */
int vklm_clean_utf8(const char *s, size_t n, vklm_buf *out, vklm_clean_counts *c);
/* Unicode NFC of valid UTF-8 (utf8proc). ASCII input is copied as is. */
int vklm_clean_nfc(const char *s, size_t n, vklm_buf *out);
/* Line ends to "\n"; Unicode spaces and tabs to ' '; runs of spaces to one; spaces at line ends
 * dropped; other control characters and zero-width marks dropped; 3+ newlines to 2 (paragraph
 * breaks kept); leading and trailing whitespace dropped. */
int vklm_clean_whitespace(const char *s, size_t n, vklm_buf *out);

/* ---- filters_gopher.c -------------------------------------------------------------------- */
typedef struct vklm_gopher_quality_opts {
  int enabled;
  long min_words, max_words;                   /* 50, 100000 */
  double min_mean_word_len, max_mean_word_len; /* 3, 10 */
  double max_symbol_ratio;                     /* 0.1: '#' and ellipses per word */
  double max_bullet_lines;                     /* 0.9 */
  double max_ellipsis_lines;                   /* 0.3 */
  double min_alpha_words;                      /* 0.8 */
  long min_stop_words;                         /* 2 of the, be, to, of, and, that, have, with */
} vklm_gopher_quality_opts;

typedef struct vklm_gopher_rep_opts {
  int enabled;
  double dup_line_frac, dup_para_frac;           /* 0.3, 0.3 */
  double dup_line_char_frac, dup_para_char_frac; /* 0.2, 0.2 */
  double top_ngram[3]; /* n = 2, 3, 4: 0.20, 0.18, 0.16 (0 disables one) */
  double dup_ngram[6]; /* n = 5..10: 0.15, 0.14, 0.13, 0.12, 0.11, 0.10 */
} vklm_gopher_rep_opts;

void vklm_gopher_quality_default(vklm_gopher_quality_opts *o);
void vklm_gopher_rep_default(vklm_gopher_rep_opts *o);
vklm_drop vklm_gopher_quality(const vklm_gopher_quality_opts *o, const char *s, size_t n);
/* The same with the thresholds of a language (langrules.c): its stop words and mean word-length
 * bounds in place of the English ones (a bound of 0 in o still disables that rule); no
 * stop-word rule for a language without a list; for scripts written without spaces, no
 * word-count, word-length or stop-word rule. lang NULL: English, as vklm_gopher_quality. */
vklm_drop vklm_gopher_quality_lang(const vklm_gopher_quality_opts *o, const char *lang,
                                   const char *s, size_t n);

/* ---- langrules.c ------------------------------------------------------------------------- */
typedef struct vklm_lang_rules {
  const char *code;
  const char *const *stop_words; /* NULL-terminated; NULL: none known */
  double min_mean_word_len, max_mean_word_len;
  int unspaced; /* written without spaces between words (zh, ja, th, ...) */
} vklm_lang_rules;
/* The rules of a language code; NULL code: English; NULL when the language has none. */
const vklm_lang_rules *vklm_lang_rules_get(const char *code);
vklm_drop vklm_gopher_repetition(const vklm_gopher_rep_opts *o, const char *s, size_t n);

/* ---- filters_c4.c ------------------------------------------------------------------------ */
typedef struct vklm_c4_opts {
  int enabled;
  int remove_citations;    /* strip [12], [edit], [citation needed] */
  int terminal_punct;      /* keep only lines ending in . ? ! " ' (not "...") */
  long min_words_per_line; /* 3 */
  long min_sentences;      /* 5 per document, counted on kept lines */
  long max_word_length;    /* 1000: lines with a longer word are dropped */
  int lorem_ipsum;         /* drop documents containing "lorem ipsum" */
  int javascript;          /* drop lines containing "javascript" */
  int curly_bracket;       /* drop documents containing '{' */
  int policy;              /* drop lines about terms of use, privacy and cookie policies */
} vklm_c4_opts;

typedef struct vklm_c4_counts {
  uint64_t lines_in, lines_kept;
} vklm_c4_counts;

void vklm_c4_default(vklm_c4_opts *o);
/* Line-level filter: writes the kept lines, joined by "\n", to out; returns a document verdict.
 * counts may be NULL. */
vklm_drop vklm_c4_filter(const vklm_c4_opts *o, const char *s, size_t n, vklm_buf *out,
                         vklm_c4_counts *counts);

/* ---- filters_fineweb.c ------------------------------------------------------------------- */
typedef struct vklm_fineweb_opts {
  int enabled;
  double line_punct_thr;  /* 0.12: minimum share of lines ending in terminal punctuation */
  double short_line_thr;  /* 0.67: maximum share of lines of <= short_line_length chars */
  long short_line_length; /* 30 */
  double char_dup_ratio;  /* 0.01: maximum duplicated-line characters / characters */
  double new_line_ratio;  /* 0.3: maximum newlines per word */
} vklm_fineweb_opts;

void vklm_fineweb_default(vklm_fineweb_opts *o);
vklm_drop vklm_fineweb_filter(const vklm_fineweb_opts *o, const char *s, size_t n);

/* ---- scrub.c ----------------------------------------------------------------------------- */
typedef struct vklm_scrubber vklm_scrubber;
/* Compiles the patterns (PCRE2, JIT when available). Returns 0 or -1. */
int vklm_scrub_create(int emails, int ips, vklm_scrubber **out);
void vklm_scrub_destroy(vklm_scrubber *s);
/* Replaces e-mail addresses by "email@example.com" and IPv4/IPv6 addresses by "0.0.0.0" / "::";
 * adds the replacement counts to *emails and *ips. Returns 0 or -1. */
int vklm_scrub_apply(const vklm_scrubber *sc, const char *s, size_t n, vklm_buf *out,
                     uint64_t *emails, uint64_t *ips);

#endif

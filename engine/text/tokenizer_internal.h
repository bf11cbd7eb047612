/* tokenizer_internal: the private layout of vklm_tokenizer and helpers shared by the files of
 * engine/text/.
 * Not a public header: only engine/text/ includes it. */
#ifndef VKLM_ENGINE_TEXT_TOKENIZER_INTERNAL_H
#define VKLM_ENGINE_TEXT_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* ---- byte-string -> id hash map (open addressing; keys point into a caller-owned blob) ---- */
typedef struct tk_strmap {
  uint64_t *hash;  /* 0 = empty slot */
  int32_t *val;
  const char **key;
  uint32_t *klen;
  size_t cap, n;  /* cap a power of two */
} tk_strmap;
uint64_t tk_hash_bytes(const char *s, size_t n);
int tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v); /* keeps an existing key */
int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n);  /* -1 if absent */
void tk_strmap_free(tk_strmap *m);

/* ---- pair (a,b) -> (rank, new id) ---- */
typedef struct tk_pairmap {
  uint64_t *key; /* (a<<32|b) + 1; 0 = empty */
  uint32_t *rank;
  int32_t *id;
  size_t cap, n;
} tk_pairmap;
int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id); /* overwrites */
/* Returns 1 and fills rank/id if present. */
static inline int tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, uint32_t *rank,
                                 int32_t *id) {
  if (!m->cap) return 0;
  uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  uint64_t h = k * 0x9E3779B97F4A7C15ull;
  size_t mask = m->cap - 1, i = (size_t)(h >> 20) & mask;
  for (;;) {
    if (m->key[i] == k) {
      *rank = m->rank[i];
      *id = m->id[i];
      return 1;
    }
    if (!m->key[i]) return 0;
    i = (i + 1) & mask;
  }
}
void tk_pairmap_free(tk_pairmap *m);

/* ---- byte-level (GPT-2 bytes_to_unicode) ---- */
/* The code point byte b maps to. */
uint32_t tk_bytelevel_char(uint8_t b);
/* Appends the byte-level string of bytes[0..n) (UTF-8) to out. */
int tk_bytelevel_encode(const char *bytes, size_t n, vklm_bytes *out);
/* Decodes a byte-level string into bytes; returns 0 if some char is not in the mapping (or the
 * string is not valid UTF-8), then *out holds garbage that the caller discards. */
int tk_bytelevel_decode(const char *s, size_t n, vklm_bytes *out);

int tk_bytes_append(vklm_bytes *b, const void *p, size_t n);
int tk_bytes_printf(vklm_bytes *b, const char *fmt, ...);
int tk_ids_push(vklm_token_ids *v, int32_t id);
void tk_seterr(char *err, size_t errlen, const char *fmt, ...);

/* ---- UTF-8 ---- */
/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the byte at s starts no valid one. */
int tk_utf8_seq_len(const unsigned char *s, size_t avail);
/* 1 if the whole buffer is valid UTF-8. */
int tk_utf8_valid(const char *s, size_t n);

/* ---- pre-tokenizer ---- */
typedef enum tk_step_kind { TK_STEP_SPLIT, TK_STEP_BYTELEVEL, TK_STEP_DIGITS } tk_step_kind;
typedef enum tk_behavior {
  TK_SPLIT_REMOVED, TK_SPLIT_ISOLATED, TK_SPLIT_MERGED_PREV, TK_SPLIT_MERGED_NEXT,
  TK_SPLIT_CONTIGUOUS
} tk_behavior;
typedef struct tk_step {
  tk_step_kind kind;
  char *pattern;      /* owned: the pattern as the file wrote it (Oniguruma syntax), or a literal */
  int literal;        /* Split with a String pattern */
  pcre2_code *re;     /* owned; NULL for ByteLevel without regex and Digits */
  tk_behavior behavior;
  int invert;
  int add_prefix_space, use_regex, trim_offsets; /* ByteLevel */
  int individual_digits;                          /* Digits */
} tk_step;

/* Translates an Oniguruma (Ruby syntax) pattern, as tokenizers/tiktoken files carry, into PCRE2
 * syntax with the same meaning (\s as White_Space, \h as hex digit, X{n,m}+ as (?:X{n,m})+ ...). */
int tk_regex_translate(const char *onig, size_t len, vklm_bytes *out);
/* Compiles a pattern (translated first unless literal) with UTF, UCP, MULTILINE, invalid-UTF
 * tolerance, and JIT when available. */
pcre2_code *tk_regex_compile(const char *pattern, int literal, char *err, size_t errlen);

/* A segment of a piece during splitting: [off, off+len) of the subject, and whether the regex
 * matched it. */
typedef struct tk_seg {
  size_t off, len;
  int match;
} tk_seg;
typedef struct tk_segs {
  tk_seg *p;
  size_t n, cap;
} tk_segs;

/* Per-encoder regex scratch. */
typedef struct tk_pretok_scratch {
  pcre2_match_data *md;  /* sized for one pair of offsets: every step only needs the whole match */
  pcre2_match_context *mctx;
  pcre2_jit_stack *jstack;
  tk_segs *levels;       /* one segment list per step */
  size_t n_levels;
  vklm_bytes pref;       /* " " + text, for ByteLevel's add_prefix_space */
  vklm_bytes subj;       /* the subject with each invalid byte replaced by U+FFFD */
  size_t *subs;          /* offsets in subj of each U+FFFD that replaced one invalid byte */
  size_t nsubs, capsubs, cursor;
  const char *orig;      /* the bytes pieces are reported in */
} tk_pretok_scratch;

/* Called with each piece, in order: p points into the caller's text (or, with ByteLevel's
 * add_prefix_space, into a copy with the space in front). Non-zero stops the split. */
typedef int (*tk_piece_fn)(void *ctx, const char *p, size_t n);
/* Splits text[0..len) with the tokenizer's pre-tokenizer steps. Every byte of the text lands in
 * exactly one piece (unless a Split step says Removed); invalid UTF-8 bytes are matched as if each
 * were U+FFFD. */
int tk_pretokenize(const vklm_tokenizer *tk, tk_pretok_scratch *s, const char *text, size_t len,
                   tk_piece_fn fn, void *ctx);
void tk_pretok_scratch_free(tk_pretok_scratch *s);

/* Step constructors (pattern copied; regex compiled). */
int tk_step_split(tk_step *st, const char *pattern, int literal, tk_behavior behavior, int invert,
                  char *err, size_t errlen);
int tk_step_bytelevel(tk_step *st, int add_prefix_space, int use_regex, char *err, size_t errlen);
int tk_step_digits(tk_step *st, int individual, char *err, size_t errlen);
void tk_step_free(tk_step *st);

/* ---- normalizers ---- */
/* utf8proc options for "NFC", "NFD", "NFKC", "NFKD"; -1 for another name. */
int tk_norm_from_name(const char *name);
const char *tk_norm_name(int form);
/* Applies the tokenizer's normalizers to s (n_norm > 0); the result is in *out (tmp: scratch). */
int tk_normalize(const vklm_tokenizer *tk, const char *s, size_t n, vklm_bytes *out,
                 vklm_bytes *tmp);

/* Reads a whole file (NUL-terminated copy in *buf, free it); errors name the path. */
int tk_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* ---- the tokenizer ---- */
enum {
  TK_TOK_PRESENT = 1,  /* id has a token */
  TK_TOK_MODEL = 2,    /* in the BPE model vocabulary */
  TK_TOK_ADDED = 4,    /* an added token */
  TK_TOK_SPECIAL = 8,  /* added and special */
  TK_TOK_RAW = 16,     /* model string is not byte-level: its UTF-8 is the bytes */
};

typedef struct tk_added {
  int32_t id;
  char *content; /* owned, UTF-8 as written */
  size_t len;
  uint8_t special, single_word, lstrip, rstrip, normalized;
} tk_added;

struct vklm_tokenizer {
  /* vocabulary: id -> bytes (model bytes, or an added token's content) */
  size_t n_ids;
  uint8_t *flags;     /* owned, n_ids */
  size_t *off;        /* owned, n_ids + 1: bytes of id i are blob[off[i]..off[i+1]) */
  char *blob;         /* owned */
  tk_strmap model_map; /* model token bytes -> id */
  int32_t byte_id[256]; /* single-byte model token ids, -1 if missing */
  int32_t unk_id;      /* -1 if none */
  int ignore_merges;
  /* merges, in rank order, and the lookup table */
  int32_t (*merges)[2];
  uint32_t *mrank; /* NULL: a merge's rank is its index; else its own rank (tiktoken: rank of a+b) */
  size_t n_merges;
  tk_pairmap merge_map;
  /* added tokens */
  tk_added *added;
  size_t n_added;
  uint8_t added_first[256]; /* 1 if some added token starts with this byte */
  /* normalizers (utf8proc option sets), applied in order before pre-tokenization */
  int norm[4];
  size_t n_norm;
  /* pre-tokenizer */
  tk_step *steps;
  size_t n_steps;
  vklm_tokenizer_encoder *own; /* lazily created */
  /* build-time scratch (NULL once tk_build_finish ran) */
  char **bstr;
  size_t *blen;
  size_t cap_merges, cap_added;
};

/* Building a tokenizer (loaders and the trainer): create empty, set tokens, add merges, finish. */
int tk_build_begin(vklm_tokenizer **out, size_t n_ids);
/* Sets id's bytes (copied) with flags; duplicate ids are an error. */
int tk_build_set(vklm_tokenizer *tk, int32_t id, const char *bytes, size_t n, unsigned flags,
                 char *err, size_t errlen);
int tk_build_merge(vklm_tokenizer *tk, int32_t a, int32_t b, char *err, size_t errlen);
/* A merge with an explicit rank (ranks may repeat: ties go to the leftmost pair, as tiktoken). */
int tk_build_merge_ranked(vklm_tokenizer *tk, int32_t a, int32_t b, uint32_t rank);
int tk_build_added(vklm_tokenizer *tk, const tk_added *a, char *err, size_t errlen);
int tk_build_step(vklm_tokenizer *tk, const tk_step *st); /* takes ownership of pattern/re */
/* Finishes tables (blob, maps); validates merges (tokens exist, result in vocabulary). */
int tk_build_finish(vklm_tokenizer *tk, char *err, size_t errlen);

#endif

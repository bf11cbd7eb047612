/* tokenizer: byte-level BPE (GPT-2 family) — load, encode, decode, train, save.
 *
 * A vklm_tokenizer owns its vocabulary (tokens as raw byte strings), its merge table (pair of ids ->
 * rank and merged id), its added/special tokens, optional Unicode normalizers, and its
 * pre-tokenizer steps (regexes run by PCRE2 with JIT, UTF+UCP, with Oniguruma's meaning, as
 * Hugging Face tokenizers runs them). Ids are int32_t in [0, vocab_size); an id may be a hole (no
 * token) when a loaded file skips ids.
 *
 * Invariants: decode(encode(x)) == x for every byte string x (invalid UTF-8 and NUL included) for
 * every tokenizer whose vocabulary holds all 256 single bytes (all that vklm trains do) and that
 * has no normalizer, no ByteLevel add_prefix_space and no Split step that removes text. A loaded
 * tokenizer is immutable; encoding goes through a vklm_tokenizer_encoder (its own cache and scratch),
 * one per thread. vklm_tokenizer_encode() uses an encoder built into the tokenizer, so it is not
 * thread-safe; everything else that takes a const tokenizer is.
 *
 * Formats: Hugging Face tokenizer.json (read+write: BPE model, ByteLevel pre-tokenizer/decoder,
 * Split(Regex) inside a Sequence, added tokens), GPT-2 vocab.json + merges.txt (read), tiktoken
 * rank files (read, with a pattern and special tokens given by the caller).
 *
 * Not done here: normalizers other than NFC/NFD/NFKC/NFKD (a tokenizer with a normalizer only
 * round-trips text already normalized), post-processors (BOS/EOS templates: callers add special
 * ids themselves), non-byte-level models (WordPiece, Unigram), BPE dropout (ignored).
 *
 * Errors: functions return VKLM_TOK_OK (0) or a negative vklm_tok_status; functions that can fail
 * for reasons a user should read take `char *err, size_t errlen` and write a one-line message there
 * (may be NULL). */
#ifndef VKLM_ENGINE_TEXT_TOKENIZER_H
#define VKLM_ENGINE_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum vklm_tok_status {
  VKLM_TOK_OK = 0,
  VKLM_TOK_ERR_IO = -1,      /* file cannot be opened / read / written */
  VKLM_TOK_ERR_FORMAT = -2,  /* corrupt or unsupported file contents */
  VKLM_TOK_ERR_NOMEM = -3,   /* allocation failed */
  VKLM_TOK_ERR_ARG = -4,     /* bad argument (unknown id, bad config) */
  VKLM_TOK_ERR_REGEX = -5,   /* pre-tokenizer pattern does not compile */
} vklm_tok_status;

/* Built-in pre-tokenizer patterns (regexes exactly as their reference implementations write them). */
typedef enum vklm_pretok_pattern {
  VKLM_PRETOK_GPT2 = 0,   /* GPT-2 / HF ByteLevel(use_regex=true) */
  VKLM_PRETOK_CL100K,     /* tiktoken cl100k_base (its possessive form; \p{N}{1,3} plain) */
  VKLM_PRETOK_LLAMA3,     /* Llama 3 tokenizer.json (cl100k-style, as HF writes it) */
  VKLM_PRETOK_O200K,      /* tiktoken o200k_base */
  VKLM_PRETOK_COUNT
} vklm_pretok_pattern;

/* The regex string of a built-in pattern; NULL for an out-of-range value. */
const char *vklm_pretok_pattern_regex(vklm_pretok_pattern p);
/* "gpt2", "cl100k", "llama3", "o200k" -> pattern; returns -1 if the name is unknown. */
int vklm_pretok_pattern_from_name(const char *name);

typedef struct vklm_tokenizer vklm_tokenizer;
typedef struct vklm_tokenizer_encoder vklm_tokenizer_encoder;

/* Growable output buffers, owned by the caller: zero-initialise, reuse across calls (encode and
 * decode append), release with the _free functions. */
typedef struct vklm_token_ids {
  int32_t *ids;
  size_t n, cap;
} vklm_token_ids;
typedef struct vklm_bytes {
  char *data; /* always NUL-terminated after a successful call (NUL not counted in n) */
  size_t n, cap;
} vklm_bytes;
void vklm_token_ids_free(vklm_token_ids *v);
void vklm_bytes_free(vklm_bytes *b);

/* ---- loading and saving ---- */

/* Hugging Face tokenizer.json. */
int vklm_tokenizer_load_json(const char *path, vklm_tokenizer **out, char *err, size_t errlen);
/* The same from a buffer in memory (len bytes, need not be NUL-terminated). */
int vklm_tokenizer_load_json_buffer(const char *json, size_t len, vklm_tokenizer **out, char *err,
                                    size_t errlen);
/* GPT-2 vocab.json + merges.txt; pattern NULL means GPT-2's. <|endoftext|> becomes special if the
 * vocabulary has it. */
int vklm_tokenizer_load_gpt2(const char *vocab_json, const char *merges_txt, const char *pattern,
                             vklm_tokenizer **out, char *err, size_t errlen);
/* tiktoken rank file ("<base64 token> <rank>" per line). pattern is required (e.g.
 * vklm_pretok_pattern_regex(VKLM_PRETOK_LLAMA3)); specials[i] gets id special_ids[i], or, if
 * special_ids is NULL, ids counting up from the largest rank + 1. */
int vklm_tokenizer_load_tiktoken(const char *path, const char *pattern, const char *const *specials,
                                 const int32_t *special_ids, size_t n_specials,
                                 vklm_tokenizer **out, char *err, size_t errlen);
/* A file is read as tokenizer.json; a directory must hold tokenizer.json, or vocab.json +
 * merges.txt. (tiktoken files need a pattern: use their loader.) */
int vklm_tokenizer_load(const char *path, vklm_tokenizer **out, char *err, size_t errlen);

/* Writes tokenizer.json the way Hugging Face tokenizers writes a byte-level BPE (it loads back in
 * tokenizers and in vklm with identical ids). */
int vklm_tokenizer_save_json(const vklm_tokenizer *tk, const char *path, char *err, size_t errlen);

/* From GGUF metadata (tokenizer.ggml.*; byte-level BPE "gpt2" only), see tokenizer_gguf.c. bos/eos
 * (may be NULL) receive tokenizer.ggml.bos/eos_token_id when present. On failure note says why. */
struct vklm_gguf;
int vklm_tokenizer_from_gguf(const struct vklm_gguf *g, vklm_tokenizer **out, int32_t *bos,
                             int32_t *eos, char *note, size_t notelen);

void vklm_tokenizer_destroy(vklm_tokenizer *tk); /* accepts NULL */

/* ---- queries ---- */

size_t vklm_tokenizer_vocab_size(const vklm_tokenizer *tk); /* largest id + 1, specials included */
size_t vklm_tokenizer_n_merges(const vklm_tokenizer *tk);
/* The id of an added/special token by its exact text (e.g. "<|endoftext|>"), or -1. */
int32_t vklm_tokenizer_special_id(const vklm_tokenizer *tk, const char *text);
/* The id whose bytes are exactly (s,len) — added tokens first, then the BPE vocabulary — or -1. */
int32_t vklm_tokenizer_token_id(const vklm_tokenizer *tk, const char *s, size_t len);
/* The bytes an id decodes to (not NUL-terminated; *len set); NULL for an unknown id. */
const char *vklm_tokenizer_token_bytes(const vklm_tokenizer *tk, int32_t id, size_t *len);
int vklm_tokenizer_is_special(const vklm_tokenizer *tk, int32_t id);
/* The pre-tokenizer regex (NULL if the tokenizer has none: the whole text is one piece). */
const char *vklm_tokenizer_pattern(const vklm_tokenizer *tk);
/* How many of the 256 byte values have no single-byte token and no unknown token to stand in:
 * text holding them loses those bytes when encoded (as Hugging Face's tokenizers does). A
 * complete byte-level vocabulary has none. *first (may be NULL) receives the smallest such byte,
 * -1 when none. Loaders of user tokenizers warn about it (apps). */
int vklm_tokenizer_missing_bytes(const vklm_tokenizer *tk, int *first);

/* ---- encode / decode ---- */

enum {
  VKLM_ENCODE_SPECIALS = 1, /* added/special tokens in the text become their ids (as HF encode does);
                               without it their text is encoded as ordinary bytes */
};

/* Appends the ids of text[0..len) to out. Thread-unsafe (uses the tokenizer's own encoder). */
int vklm_tokenizer_encode(vklm_tokenizer *tk, const char *text, size_t len, unsigned flags,
                          vklm_token_ids *out);
/* Per-thread encoders over one shared, const tokenizer (which must outlive them). */
int vklm_tokenizer_encoder_create(const vklm_tokenizer *tk, vklm_tokenizer_encoder **out);
void vklm_tokenizer_encoder_destroy(vklm_tokenizer_encoder *enc); /* accepts NULL */
int vklm_tokenizer_encoder_encode(vklm_tokenizer_encoder *enc, const char *text, size_t len,
                                  unsigned flags, vklm_token_ids *out);

enum {
  VKLM_DECODE_SKIP_SPECIALS = 1, /* leave special tokens out of the text */
};
/* Appends the bytes of ids to out. VKLM_TOK_ERR_ARG for an unknown id (out then unchanged). */
int vklm_tokenizer_decode(const vklm_tokenizer *tk, const int32_t *ids, size_t n, unsigned flags,
                          vklm_bytes *out);

/* ---- training ---- */

typedef struct vklm_bpe_train_config {
  size_t vocab_size;             /* target, specials and the 256 bytes included */
  const char *pattern;           /* pre-tokenizer regex; NULL = GPT-2's */
  const char *const *specials;   /* special tokens, given ids 0..n_specials-1 (HF BpeTrainer order) */
  size_t n_specials;
  uint64_t min_frequency;        /* stop when the best pair occurs fewer times (0 or 1: no limit) */
  int verbose;                   /* progress lines on stderr */
} vklm_bpe_train_config;

typedef struct vklm_bpe_trainer vklm_bpe_trainer;

int vklm_bpe_trainer_create(const vklm_bpe_train_config *cfg, vklm_bpe_trainer **out, char *err,
                            size_t errlen);
/* Counts the pre-tokens of one document (any bytes). Special-token text in it is treated as
 * ordinary text, as Hugging Face's trainer does. */
int vklm_bpe_trainer_feed(vklm_bpe_trainer *tr, const char *text, size_t len);
/* Feeds a file: plain text one line (newline included) per sequence, as tokenizers' train(files)
 * reads it; *.jsonl: the "text" field of each line (other lines, and lines whose JSON holds
 * "\u0000", which cJSON would cut the text at, are skipped). Any bytes are accepted. */
int vklm_bpe_trainer_feed_file(vklm_bpe_trainer *tr, const char *path, char *err, size_t errlen);
/* Runs the merges and builds the tokenizer. The trainer can be destroyed afterwards. */
int vklm_bpe_trainer_finish(vklm_bpe_trainer *tr, vklm_tokenizer **out, char *err, size_t errlen);
void vklm_bpe_trainer_destroy(vklm_bpe_trainer *tr); /* accepts NULL */

#endif

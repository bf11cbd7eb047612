/* stream: incremental detokenization of one generated sequence, with stop strings.
 *
 * Push the sequence's token ids one at a time; each push returns the bytes that have become
 * final: whole UTF-8 characters only, and nothing that could still be the beginning of a stop
 * string. A character split across tokens is held until it is complete; a byte that cannot start
 * or continue a character becomes U+FFFD (EF BF BD), as does the lead byte of a sequence that a
 * non-continuation byte interrupts (the rule `vklm generate` has always streamed by). Text that
 * could begin a stop string is held until the stop either completes or can no longer match.
 *
 * Stops are matched on that cleaned text by an Aho-Corasick automaton over all stop strings, one
 * step per byte: the cost of a push is linear in the bytes it adds (amortized), whatever the
 * length of the text so far. The stop reported is the first to complete (the longest of those
 * completing at the same byte); the text before it is emitted, the rest of the token is dropped,
 * and the full text (vklm_stream_text) ends where the stop began. Later pushes do nothing.
 *
 * vklm_stream_finish flushes what is held (an incomplete character becomes U+FFFD per byte as
 * above; a held stop prefix is emitted: nothing more can complete it). Without a stop, the
 * concatenation of everything returned equals the cleaned decode of all the ids, which is
 * vklm_tokenizer_decode's output itself when that is valid UTF-8.
 *
 * Owns: the text so far and the automaton (stop strings are copied). Borrows the tokenizer,
 * which must outlive the stream. One stream per sequence; not thread-safe.
 * Does not: apply a tokenizer's decoder beyond raw token bytes (byte-level BPE only), or
 * normalize text; stop strings must be valid UTF-8 (so that they can match only at character
 * boundaries) and non-empty. */
#ifndef VKLM_INFER_STREAM_H
#define VKLM_INFER_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"
#include "vklm_runtime.h"

enum {
  VKLM_STREAM_SKIP_SPECIALS = 1, /* special tokens contribute no text (and match no stop) */
};

typedef struct vklm_stream_options {
  const char *const *stops; /* stop strings; may be NULL when nstops is 0 */
  const size_t *stop_lens;  /* their lengths in bytes; NULL: each is NUL-terminated */
  uint32_t nstops;
  unsigned flags; /* VKLM_STREAM_* */
} vklm_stream_options;

/* What a push or finish made final. text points into the stream (valid until the next call on
 * it) and is not NUL-terminated. */
typedef struct vklm_stream_piece {
  const char *text;
  size_t n;
  int stop; /* the index of the stop string that completed in this call, or -1 */
} vklm_stream_piece;

typedef struct vklm_stream vklm_stream;

/* o may be NULL (no stops, specials kept). VKLM_ERROR_INVALID for an empty stop or one that is
 * not valid UTF-8; VKLM_ERROR_OUT_OF_HOST_MEMORY. */
vklm_status vklm_stream_create(const vklm_tokenizer *tk, const vklm_stream_options *o,
                               vklm_stream **out);
void vklm_stream_destroy(vklm_stream *s); /* accepts NULL */
/* Starts a new sequence with the same tokenizer and stops. */
void vklm_stream_reset(vklm_stream *s);

/* Adds a token. VKLM_ERROR_INVALID for an id the tokenizer does not have (nothing changes);
 * VKLM_ERROR_OUT_OF_HOST_MEMORY. After a stop or finish: VKLM_OK and an empty piece. */
vklm_status vklm_stream_push(vklm_stream *s, int32_t id, vklm_stream_piece *out);
/* Ends the sequence: everything still held. */
vklm_status vklm_stream_finish(vklm_stream *s, vklm_stream_piece *out);

/* The text so far: what was returned plus what is held (an incomplete character excluded),
 * ending where the stop began when one completed. Not NUL-terminated; valid until the next
 * call. */
const char *vklm_stream_text(const vklm_stream *s, size_t *n);
/* Bytes of vklm_stream_text returned so far. */
size_t vklm_stream_emitted(const vklm_stream *s);
/* The stop string that ended the sequence, or -1. */
int vklm_stream_stopped(const vklm_stream *s);

#endif

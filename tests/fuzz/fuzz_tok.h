/* fuzz_tok: what the tokenizer harnesses do with a tokenizer that loaded: encode a fixed text
 * (with and without specials), decode every id back, and decode the whole vocabulary. */
#ifndef VKLM_FUZZ_TOK_H
#define VKLM_FUZZ_TOK_H

#include "fuzz_util.h"
#include "text/tokenizer.h"

static inline void fuzz_exercise_tokenizer(vklm_tokenizer *tk, const uint8_t *extra,
                                           size_t nextra) {
  vklm_token_ids ids = {0};
  vklm_bytes out = {0};
  for (unsigned flags = 0; flags <= VKLM_ENCODE_SPECIALS; flags++) {
    ids.n = 0;
    if (vklm_tokenizer_encode(tk, fuzz_sample_text, FUZZ_SAMPLE_LEN, flags, &ids) == VKLM_TOK_OK) {
      out.n = 0;
      (void)vklm_tokenizer_decode(tk, ids.ids, ids.n, 0, &out);
      out.n = 0;
      (void)vklm_tokenizer_decode(tk, ids.ids, ids.n, VKLM_DECODE_SKIP_SPECIALS, &out);
    }
  }
  if (nextra > 4096) nextra = 4096;
  ids.n = 0;
  (void)vklm_tokenizer_encode(tk, (const char *)extra, nextra, VKLM_ENCODE_SPECIALS, &ids);
  size_t V = vklm_tokenizer_vocab_size(tk);
  for (size_t i = 0; i < V && i < 65536; i++) {
    size_t len;
    const char *b = vklm_tokenizer_token_bytes(tk, (int32_t)i, &len);
    if (b && len) {
      int32_t id = vklm_tokenizer_token_id(tk, b, len);
      (void)id;
    }
  }
  (void)vklm_tokenizer_pattern(tk);
  (void)vklm_tokenizer_n_merges(tk);
  vklm_token_ids_free(&ids);
  vklm_bytes_free(&out);
}

#endif

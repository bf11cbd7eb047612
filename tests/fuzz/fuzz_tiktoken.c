/* fuzz_tiktoken: tiktoken rank files (vklm_tokenizer_load_tiktoken) with the cl100k pattern and
 * two special tokens given ids above the ranks; a tokenizer that loads encodes and decodes. */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_file("ranks.tiktoken", data, size);
  static const char *const specials[] = {"<|endoftext|>", "<|fim_prefix|>"};
  vklm_tokenizer *tk = NULL;
  char err[512];
  if (vklm_tokenizer_load_tiktoken(p, vklm_pretok_pattern_regex(VKLM_PRETOK_CL100K), specials, NULL,
                                   2, &tk, err, sizeof err) != 0)
    return 0;
  fuzz_exercise_tokenizer(tk, data, size);
  vklm_tokenizer_destroy(tk);
  return 0;
}

/* fuzz_tokenizer_json: Hugging Face tokenizer.json (vklm_tokenizer_load_json_buffer); a
 * tokenizer that loads encodes and decodes a fixed text. */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vklm_tokenizer *tk = NULL;
  char err[512];
  if (vklm_tokenizer_load_json_buffer((const char *)data, size, &tk, err, sizeof err) != 0)
    return 0;
  fuzz_exercise_tokenizer(tk, data, size);
  vklm_tokenizer_destroy(tk);
  return 0;
}

/* fuzz_gguf_tokenizer: the tokenizer of GGUF metadata (tokenizer.ggml.*, vklm_tokenizer_from_gguf)
 * over any file the GGUF reader accepts; a tokenizer that loads encodes and decodes. */
#include "formats/gguf.h"
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vklm_gguf *g = NULL;
  char err[512];
  if (vklm_gguf_open_memory(data, size, &g, err, sizeof err) != 0) return 0;
  vklm_tokenizer *tk = NULL;
  int32_t bos = -1, eos = -1;
  if (vklm_tokenizer_from_gguf(g, &tk, &bos, &eos, err, sizeof err) == 0 && tk) {
    fuzz_exercise_tokenizer(tk, data, size);
    vklm_tokenizer_destroy(tk);
  }
  vklm_gguf_close(g);
  return 0;
}

/* fuzz_gpt2: GPT-2 vocab.json + merges.txt (vklm_tokenizer_load_gpt2). The input is the vocab,
 * a line "\n#merges\n", then the merges file. A tokenizer that loads encodes and decodes. */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *a, *b;
  size_t na, nb;
  fuzz_split(data, size, "\n#merges\n", &a, &na, &b, &nb);
  char vocab[256], merges[256];
  snprintf(vocab, sizeof vocab, "%s", fuzz_file("vocab.json", a, na));
  snprintf(merges, sizeof merges, "%s", fuzz_file("merges.txt", b, nb));
  vklm_tokenizer *tk = NULL;
  char err[512];
  if (vklm_tokenizer_load_gpt2(vocab, merges, NULL, &tk, err, sizeof err) != 0) return 0;
  fuzz_exercise_tokenizer(tk, b, nb);
  vklm_tokenizer_destroy(tk);
  return 0;
}

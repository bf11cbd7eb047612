/* fuzz_jsonl: JSONL input of the data pipeline (vklm_reader over a .jsonl file: one document
 * per line, its "text" field), each document then through the cleaning steps and filters. */
#include "data/reader.h"
#include "fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_file("docs.jsonl", data, size);
  const char *paths[1] = {p};
  vklm_reader *r = NULL;
  if (vklm_reader_create(paths, 1, "text", 1 << 16, &r) != 0) abort();
  vklm_buf text = {0};
  int html = 0, rc;
  while ((rc = vklm_reader_next(r, &text, &html)) == 1)
    fuzz_data_steps(text.p ? text.p : "", text.n);
  if (rc < 0) abort(); /* only when memory runs out */
  (void)vklm_reader_counts_get(r);
  free(text.p);
  vklm_reader_destroy(r);
  return 0;
}

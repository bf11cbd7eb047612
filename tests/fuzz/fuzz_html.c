/* fuzz_html: HTML input of the data pipeline (vklm_html_extract, through libxml2's HTML parser),
 * the extracted text then through the cleaning steps and filters. */
#include "fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) vklm_html_init(), init = 1;
  vklm_buf out = {0};
  if (vklm_html_extract((const char *)data, size, &out) == 0)
    fuzz_data_steps(out.p ? out.p : "", out.n);
  free(out.p);
  return 0;
}

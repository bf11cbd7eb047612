/* fuzz_model_import: importing a GGUF model (vklm_model_load: hyperparameters, tensor names and
 * shapes checked against vklm's table, dequantization, the tokenizer and chat template), then
 * the flat parameter vector of a model it accepted. The file is small, so the model is too. */
#include "formats/model_load.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_file("model.gguf", data, size);
  vklm_loaded_model *m = NULL;
  char err[1024];
  for (int keep_quant = 0; keep_quant <= 1; keep_quant++) {
    if (vklm_model_load(p, keep_quant, &m, err, sizeof err) != VKLM_OK) return 0;
    if (m->nparams <= (1u << 22)) {
      float *flat = malloc(sizeof(float) * (size_t)(m->nparams ? m->nparams : 1));
      if (flat) (void)vklm_loaded_model_params(m, flat, err, sizeof err);
      free(flat);
    }
    vklm_loaded_model_free(m);
    m = NULL;
  }
  return 0;
}

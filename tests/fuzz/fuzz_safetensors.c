/* fuzz_safetensors: the safetensors reader (vklm_safetensors_open_memory), then every tensor
 * (converted to fp32 when its dtype is supported) and metadata entry of a file it accepted. */
#include "formats/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vklm_safetensors *st = NULL;
  char err[512];
  if (vklm_safetensors_open_memory(data, size, &st, err, sizeof err) != 0) return 0;
  for (size_t i = 0; i < vklm_safetensors_count(st); i++) {
    const vklm_st_tensor *t = vklm_safetensors_get(st, i);
    if (vklm_safetensors_find(st, t->name) != t) abort(); /* a listed name must be found */
    if (t->nelem > (1 << 20)) continue;
    float *dst = malloc(sizeof(float) * (size_t)(t->nelem ? t->nelem : 1));
    if (dst) (void)vklm_safetensors_to_f32(t, dst, err, sizeof err);
    free(dst);
  }
  for (size_t i = 0; i < vklm_safetensors_meta_count(st); i++) {
    const char *k, *v;
    vklm_safetensors_meta_get(st, i, &k, &v);
    (void)vklm_safetensors_meta_find(st, k);
  }
  vklm_safetensors_close(st);
  return 0;
}

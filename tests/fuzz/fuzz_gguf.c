/* fuzz_gguf: the GGUF reader (vklm_gguf_open_memory), then every metadata value, array element
 * and tensor (converted to fp32) of a file it accepted. */
#include "formats/gguf.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vklm_gguf *g = NULL;
  char err[512];
  if (vklm_gguf_open_memory(data, size, &g, err, sizeof err) != 0) return 0;
  (void)vklm_gguf_version(g);
  (void)vklm_gguf_alignment(g);
  (void)vklm_gguf_data_offset(g);
  for (size_t i = 0; i < vklm_gguf_kv_count(g); i++) {
    const char *key;
    vklm_gguf_value v;
    vklm_gguf_kv_get(g, i, &key, &v);
    if (vklm_gguf_kv_find(g, key) < 0) abort(); /* a key it listed must be found */
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    int64_t i64;
    float f;
    int b;
    const char *s;
    uint64_t len;
    vklm_gguf_array a;
    (void)vklm_gguf_get_u32(g, key, &u32);
    (void)vklm_gguf_get_u64(g, key, &u64);
    (void)vklm_gguf_get_i32(g, key, &i32);
    (void)vklm_gguf_get_i64(g, key, &i64);
    (void)vklm_gguf_get_f32(g, key, &f);
    (void)vklm_gguf_get_bool(g, key, &b);
    (void)vklm_gguf_get_str(g, key, &s, &len);
    if (vklm_gguf_get_array(g, key, &a) == 0) {
      for (uint64_t k = 0; k < a.n && k < 4096; k++) {
        double d;
        (void)vklm_gguf_array_int(&a, k, &i64);
        (void)vklm_gguf_array_num(&a, k, &d);
        (void)vklm_gguf_array_str(&a, k, &s, &len);
      }
      if (a.n <= 4096) {
        int64_t *iv = malloc(sizeof *iv * (a.n ? a.n : 1));
        float *fv = malloc(sizeof *fv * (a.n ? a.n : 1));
        if (iv && fv) {
          (void)vklm_gguf_array_copy_i64(&a, iv);
          (void)vklm_gguf_array_copy_f32(&a, fv);
        }
        free(iv);
        free(fv);
      }
    }
  }
  for (size_t i = 0; i < vklm_gguf_tensor_count(g); i++) {
    const vklm_gguf_tensor *t = vklm_gguf_tensor_get(g, i);
    if (vklm_gguf_tensor_find(g, t->name) != t) abort();
    if (t->nelem > (1 << 20)) continue;
    float *dst = malloc(sizeof(float) * (size_t)(t->nelem ? t->nelem : 1));
    if (dst) (void)vklm_gguf_tensor_to_f32(t, dst, err, sizeof err);
    free(dst);
  }
  vklm_gguf_close(g);
  return 0;
}

/* fuzz_checkpoint: the checkpoint reader (vklm_ckpt_read) behind its CRCs. The harness rewrites
 * both CRCs (payload at byte 216, then the header's at 220) of every input, as anyone crafting a
 * file can, so the fuzzer reaches the model-config, count and table checks. A checkpoint that
 * is accepted is then exported to safetensors and GGUF (the consumers that read its table). */
#include <zlib.h>

#include "formats/model_load.h"
#include "formats/quant.h"
#include "fuzz_util.h"
#include "train/train.h"

#define HDR 256u

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *b = malloc(size ? size : 1);
  if (!b) return 0;
  if (size) memcpy(b, data, size);
  if (size >= HDR) {
    uLong pc = crc32(0L, Z_NULL, 0);
    size_t rest = size - HDR;
    const uint8_t *q = b + HDR;
    while (rest) {
      uInt k = rest > (1u << 30) ? (1u << 30) : (uInt)rest;
      pc = crc32(pc, q, k);
      q += k, rest -= k;
    }
    put32(b + 216, (uint32_t)pc);
    put32(b + 220, 0);
    put32(b + 220, (uint32_t)crc32(0L, b, HDR));
  }
  const char *p = fuzz_file("model.ckpt", b, size);
  free(b);
  vklm_ckpt *c = NULL;
  char err[1024];
  for (int with_moments = 1; with_moments >= 0; with_moments--) {
    if (vklm_ckpt_read(p, with_moments, &c, err, sizeof err) != VKLM_OK) {
      if (c) abort(); /* a refused file must not hand out a checkpoint */
      return 0;
    }
    if (with_moments) {
      char st[256], cfg[256], gg[256];
      snprintf(st, sizeof st, "%s", fuzz_path("out.safetensors"));
      snprintf(cfg, sizeof cfg, "%s", fuzz_path("config.json"));
      snprintf(gg, sizeof gg, "%s", fuzz_path("out.gguf"));
      (void)vklm_export_safetensors(c, st, cfg, err, sizeof err);
      (void)vklm_export_gguf(gg, &c->st.model, c->table, c->ntensors, c->params,
                             VKLM_GGML_TYPE_Q8_0, NULL, err, sizeof err);
    }
    vklm_ckpt_free(c);
    c = NULL;
  }
  return 0;
}

/* fuzz_shard: token shards (vklm_shard_open, then every token read back in a few chunks). */
#include "data/shard.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_file("tokens.bin", data, size);
  vklm_shard *s = NULL;
  char err[512];
  if (vklm_shard_open(p, &s, err, sizeof err) != 0) return 0;
  uint64_t n = vklm_shard_count(s), V = vklm_shard_vocab_size(s);
  (void)vklm_shard_width(s);
  (void)vklm_shard_eot(s);
  (void)vklm_shard_docs(s);
  uint32_t buf[256];
  for (uint64_t at = 0; at < n; at += 256) {
    size_t k = n - at < 256 ? (size_t)(n - at) : 256;
    if (vklm_shard_read(s, at, k, buf) == 0)
      for (size_t i = 0; i < k; i++)
        if (buf[i] >= V) abort(); /* a token read back must be inside the vocabulary */
  }
  (void)vklm_shard_read(s, n, 1, buf); /* past the end: refused */
  (void)vklm_shard_read(s, UINT64_MAX, 2, buf);
  vklm_shard_close(s);
  return 0;
}

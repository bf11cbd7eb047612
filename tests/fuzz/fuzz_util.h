/* fuzz_util: what the libFuzzer harnesses of tests/fuzz share (docs/security.md).
 * Each harness feeds one parser of outside bytes. Parsers that only read paths get the input
 * through one temporary file per process (rewritten for every input, removed at exit). Nothing
 * here needs a Vulkan device. A harness must never exit or abort on a bad input: the parser
 * under test must refuse it with a status, and any crash, leak or UB is the finding. */
#ifndef VKLM_FUZZ_UTIL_H
#define VKLM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_tmp_dir[64];

static inline void fuzz_tmp_cleanup(void) {
  if (!fuzz_tmp_dir[0]) return;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_tmp_dir);
}

/* A path named `name` inside this process's temporary directory (created on first use). */
static inline const char *fuzz_path(const char *name) {
  static char p[256];
  if (!fuzz_tmp_dir[0]) {
    const char *t = getenv("TMPDIR");
    snprintf(fuzz_tmp_dir, sizeof fuzz_tmp_dir, "%s/vklm-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fuzz_tmp_dir)) {
      perror("fuzz: mkdtemp");
      abort();
    }
    atexit(fuzz_tmp_cleanup);
  }
  snprintf(p, sizeof p, "%s/%s", fuzz_tmp_dir, name);
  return p;
}

/* Writes data to the temporary file `name`; returns its path. */
static inline const char *fuzz_file(const char *name, const void *data, size_t size) {
  const char *p = fuzz_path(name);
  FILE *f = fopen(p, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror("fuzz: writing the temporary file");
    abort();
  }
  return p;
}

/* Splits the input at the first occurrence of sep (a byte string): a = before, b = after.
 * Without sep, a is everything and b is empty. */
static inline void fuzz_split(const uint8_t *data, size_t size, const char *sep,
                              const uint8_t **a, size_t *na, const uint8_t **b, size_t *nb) {
  size_t k = strlen(sep);
  *a = data, *na = size, *b = data + size, *nb = 0;
  for (size_t i = 0; i + k <= size; i++)
    if (memcmp(data + i, sep, k) == 0) {
      *na = i;
      *b = data + i + k;
      *nb = size - i - k;
      return;
    }
}

/* A NUL-terminated copy (malloc'ed). */
static inline char *fuzz_strdup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  if (size) memcpy(s, data, size);
  s[size] = 0;
  return s;
}

/* Text every tokenizer harness encodes: ASCII, multi-byte UTF-8, invalid UTF-8, a NUL and
 * special-token text. */
static const char fuzz_sample_text[] =
    "Hello, world! It's 2024... caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xff\xfe"
    "\xc3 \x80\x80 tab\there\n\n  spaces   <|endoftext|> <s></s> 12345 x\0y end";
#define FUZZ_SAMPLE_LEN (sizeof fuzz_sample_text - 1)

#endif

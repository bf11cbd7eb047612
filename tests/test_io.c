/* The file-reading policy (engine/io/file.h), without a device: a regular file is read whole and
 * NUL-terminated, an empty one is empty; a missing path, a directory, a character device
 * (/dev/zero: an endless read before), a FIFO and a file over the bound are refused with a
 * message naming the path and what is wrong; the bound is exact (max bytes pass, max + 1 do
 * not); standard input is read only where allowed ("-" is otherwise a missing file); a JSON
 * text holding an escaped NUL in a string is recognised (cJSON would cut the string there). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/json.h"

static int failures, checks;
#define CHECK(cond, ...)                             \
  do {                                               \
    checks++;                                        \
    if (cond) {                                      \
      printf("  ok   ");                             \
    } else {                                         \
      printf("  FAIL ");                             \
      failures++;                                    \
    }                                                \
    printf(__VA_ARGS__);                             \
    printf("\n");                                    \
  } while (0)

static void write_file(const char *path, const char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* Reads path with the bound; checks the status and that the message holds want (when failing). */
static void expect(const char *path, uint64_t max, int flags, vklm_status want_st,
                   const char *want, const char *what) {
  char *text = (char *)1, err[512] = "";
  size_t len = 99;
  vklm_status st = vklm_file_read(path, max, flags, &text, &len, err, sizeof err);
  if (want_st == VKLM_OK) {
    CHECK(st == VKLM_OK && text && text[len] == 0 && (!want || (strlen(want) == len &&
                                                                !memcmp(text, want, len))),
          "%s: read %zu bytes", what, st == VKLM_OK ? len : 0);
  } else {
    CHECK(st == want_st && text == NULL && len == 0 && strstr(err, want) && strstr(err, path),
          "%s: refused (%s)", what, err);
  }
  if (st == VKLM_OK) free(text);
}

int main(void) {
  char dir[] = "/tmp/vklm_test_io_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char p[256], big[256], empty[256], fifo[256];
  snprintf(p, sizeof p, "%s/text.txt", dir);
  snprintf(big, sizeof big, "%s/big.bin", dir);
  snprintf(empty, sizeof empty, "%s/empty", dir);
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  write_file(p, "hello\nworld\n", 12);
  write_file(empty, "", 0);
  size_t nb = 200000; /* more than the first read's 64 KiB when the size is unknown */
  char *data = malloc(nb + 1);
  for (size_t i = 0; i < nb; i++) data[i] = (char)('a' + i % 26);
  data[nb] = 0;
  write_file(big, data, nb);

  expect(p, 1 << 20, 0, VKLM_OK, "hello\nworld\n", "a regular file");
  expect(empty, 1 << 20, 0, VKLM_OK, "", "an empty file");
  expect(big, nb, 0, VKLM_OK, data, "a file of exactly the bound");
  expect(big, nb - 1, 0, VKLM_ERROR_INVALID, "larger than", "a file one byte over the bound");
  char missing[300];
  snprintf(missing, sizeof missing, "%s/missing", dir);
  expect(missing, 1 << 20, 0, VKLM_ERROR_IO, "No such file", "a missing path");
  expect(dir, 1 << 20, 0, VKLM_ERROR_IO, "is a directory", "a directory");
  expect("/dev/zero", 1 << 20, 0, VKLM_ERROR_IO, "character device", "/dev/zero");
  if (mkfifo(fifo, 0600) == 0)
    expect(fifo, 1 << 20, 0, VKLM_ERROR_IO, "is a pipe", "a FIFO (it would block)");
  expect("-", 1 << 20, 0, VKLM_ERROR_IO, "No such file", "'-' where stdin is not allowed");

  /* stdin: the bound holds while reading (no size is known in advance) */
  fflush(stdout);
  if (!freopen(big, "rb", stdin)) return 1;
  expect("-", nb - 1, VKLM_FILE_STDIN, VKLM_ERROR_INVALID, "larger than",
         "standard input over the bound");
  if (!freopen(big, "rb", stdin)) return 1;
  expect("-", nb, VKLM_FILE_STDIN, VKLM_OK, data, "standard input of exactly the bound");

  /* JSON: an escaped NUL inside a string is found; an escaped backslash before u0000 is text */
  static const struct { const char *json; int nul; } js[] = {
      {"{\"text\": \"ab\\u0000cd\"}", 1},
      {"{\"text\": \"ab\\\\u0000cd\"}", 0},
      {"{\"a\": \"x\\\"\", \"b\": \"\\u0000\"}", 1},
      {"{\"text\": \"plain\"}", 0},
      {"{\"text\": \"ab\\u00001\"}", 1},
      {"{\"text\": \"\\u0001\"}", 0},
  };
  for (size_t i = 0; i < sizeof js / sizeof js[0]; i++)
    CHECK(vklm_json_has_nul(js[i].json, strlen(js[i].json)) == js[i].nul,
          "vklm_json_has_nul(%s) = %d", js[i].json, js[i].nul);

  char err[256];
  CHECK(vklm_file_check(p, err, sizeof err) == VKLM_OK, "vklm_file_check: a regular file");
  CHECK(vklm_file_check(dir, err, sizeof err) == VKLM_ERROR_IO && strstr(err, "directory"),
        "vklm_file_check: a directory (%s)", err);
  free(data);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  printf("test_io: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}

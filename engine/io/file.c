/* Whole-file reads with the path policy of file.h. */
#include "io/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *kind(mode_t m) {
  return S_ISDIR(m)    ? "a directory"
         : S_ISCHR(m)  ? "a character device"
         : S_ISBLK(m)  ? "a block device"
         : S_ISFIFO(m) ? "a pipe"
         : S_ISSOCK(m) ? "a socket"
                       : "not a regular file";
}

vklm_status vklm_file_check(const char *path, char *err, size_t errlen) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return VKLM_ERROR_IO;
  }
  if (!S_ISREG(sb.st_mode)) {
    snprintf(err, errlen, "'%s' is %s, not a file", path, kind(sb.st_mode));
    return VKLM_ERROR_IO;
  }
  return VKLM_OK;
}

static vklm_status too_big(const char *path, uint64_t max, char *err, size_t errlen) {
  snprintf(err, errlen, "'%s' is larger than %llu bytes, the most this reader takes", path,
           (unsigned long long)max);
  return VKLM_ERROR_INVALID;
}

vklm_status vklm_file_read(const char *path, uint64_t max_bytes, int flags, char **out,
                           size_t *len, char *err, size_t errlen) {
  *out = NULL;
  if (len) *len = 0;
  int std_in = (flags & VKLM_FILE_STDIN) && !strcmp(path, "-");
  FILE *f = stdin;
  size_t cap = 1 << 16;
  if (!std_in) {
    vklm_status st = vklm_file_check(path, err, errlen);
    if (st != VKLM_OK) return st;
    if (!(f = fopen(path, "rb"))) {
      snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
      return VKLM_ERROR_IO;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0) { /* the size known before reading: bound, then one buffer */
      if ((uint64_t)sb.st_size > max_bytes) {
        fclose(f);
        return too_big(path, max_bytes, err, errlen);
      }
      cap = (size_t)sb.st_size + 1;
    }
  }
  char *b = malloc(cap);
  size_t n = 0;
  vklm_status st = b ? VKLM_OK : VKLM_ERROR_OUT_OF_HOST_MEMORY;
  while (st == VKLM_OK) {
    if (n + 1 >= cap) { /* full: at the end, or a file that grew, or stdin */
      int c = fgetc(f);
      if (c == EOF) break;
      if (n >= max_bytes) {
        st = too_big(path, max_bytes, err, errlen);
        break;
      }
      size_t nc = cap * 2 > max_bytes + 2 ? (size_t)max_bytes + 2 : cap * 2;
      char *nb = realloc(b, nc);
      if (!nb) {
        st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
        break;
      }
      b = nb, cap = nc;
      b[n++] = (char)c;
    }
    size_t want = cap - n - 1, got = fread(b + n, 1, want, f);
    n += got;
    if (n > max_bytes) st = too_big(path, max_bytes, err, errlen);
    else if (got < want) break; /* the end (or an error, checked below) */
  }
  if (st == VKLM_ERROR_OUT_OF_HOST_MEMORY)
    snprintf(err, errlen, "out of host memory reading '%s'", path);
  if (st == VKLM_OK && ferror(f)) {
    st = VKLM_ERROR_IO;
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
  }
  if (!std_in) fclose(f);
  if (st != VKLM_OK) {
    free(b);
    return st;
  }
  b[n] = 0;
  *out = b;
  if (len) *len = n;
  return VKLM_OK;
}

/* Token shard files: atomic writer, validating reader (see shard.h and docs/formats.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/buf.h"
#include "data/shard.h"

/* Header layout, all little-endian:
 *  0  char[8]  magic "VKLMTOK1"      8  u32 version       12 u32 token width (2|4)
 *  16 u64 token count                24 u64 vocab size    32 i32 end-of-text id (-1: none)
 *  36 u32 header bytes (64)          40 u64 document count
 *  48 u8[16] reserved, zero */


static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)p[i] << (8 * i);
  return v;
}
static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

uint32_t vklm_shard_width_for(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

struct vklm_shard_writer {
  FILE *f;    /* owned: the temp file */
  char *path; /* owned: final path */
  char *tmp;  /* owned: path.tmp */
  uint64_t vocab, count, docs;
  int32_t eot;
  uint32_t width;
  unsigned char buf[1 << 16];
  size_t nbuf;
};

void vklm_shard_writer_destroy(vklm_shard_writer *w) {
  if (!w) return;
  if (w->f) fclose(w->f);
  if (w->tmp) unlink(w->tmp);
  free(w->path);
  free(w->tmp);
  free(w);
}

int vklm_shard_writer_create(const char *path, uint64_t vocab_size, int32_t eot_id,
                             vklm_shard_writer **out, char *err, size_t errlen) {
  *out = NULL;
  if (!vocab_size || vocab_size > ((uint64_t)1 << 32))
    return vklm_data_fail(err, errlen, "shard %s: vocabulary size %llu out of range", path,
                (unsigned long long)vocab_size);
  vklm_shard_writer *w = calloc(1, sizeof *w);
  size_t n = strlen(path) + 5;
  if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n))) {
    vklm_shard_writer_destroy(w);
    return vklm_data_fail(err, errlen, "shard %s: out of memory", path);
  }
  snprintf(w->tmp, n, "%s.tmp", path);
  w->vocab = vocab_size;
  w->eot = eot_id;
  w->width = vklm_shard_width_for(vocab_size);
  w->f = fopen(w->tmp, "wb");
  unsigned char zero[VKLM_SHARD_HEADER_BYTES] = {0}; /* the real header comes at finish */
  if (!w->f || fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) {
    int e = errno;
    vklm_shard_writer_destroy(w);
    return vklm_data_fail(err, errlen, "shard %s: cannot create: %s", path, strerror(e));
  }
  *out = w;
  return 0;
}

static int flush_buf(vklm_shard_writer *w) {
  if (w->nbuf && fwrite(w->buf, 1, w->nbuf, w->f) != w->nbuf) return -1;
  w->nbuf = 0;
  return 0;
}

int vklm_shard_writer_append(vklm_shard_writer *w, const uint32_t *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (t[i] >= w->vocab) return -1;
  for (size_t i = 0; i < n; i++) {
    if (w->nbuf + 4 > sizeof w->buf && flush_buf(w)) return -1;
    if (w->width == 2) {
      w->buf[w->nbuf++] = (unsigned char)t[i];
      w->buf[w->nbuf++] = (unsigned char)(t[i] >> 8);
    } else {
      put32(w->buf + w->nbuf, t[i]);
      w->nbuf += 4;
    }
  }
  w->count += n;
  return 0;
}

void vklm_shard_writer_add_docs(vklm_shard_writer *w, uint64_t docs) { w->docs += docs; }
uint64_t vklm_shard_writer_count(const vklm_shard_writer *w) { return w->count; }

int vklm_shard_writer_finish(vklm_shard_writer *w, char *err, size_t errlen) {
  unsigned char h[VKLM_SHARD_HEADER_BYTES] = {0};
  memcpy(h, VKLM_SHARD_MAGIC, 8);
  put32(h + 8, VKLM_SHARD_VERSION);
  put32(h + 12, w->width);
  put64(h + 16, w->count);
  put64(h + 24, w->vocab);
  put32(h + 32, (uint32_t)w->eot);
  put32(h + 36, VKLM_SHARD_HEADER_BYTES);
  put64(h + 40, w->docs);
  int rc = 0;
  if (flush_buf(w) || fflush(w->f) || fseek(w->f, 0, SEEK_SET) ||
      fwrite(h, 1, sizeof h, w->f) != sizeof h || fflush(w->f) || fsync(fileno(w->f)))
    rc = vklm_data_fail(err, errlen, "shard %s: write failed: %s", w->path, strerror(errno));
  if (fclose(w->f) && !rc) rc = vklm_data_fail(err, errlen, "shard %s: close: %s", w->path, strerror(errno));
  w->f = NULL;
  if (!rc && rename(w->tmp, w->path))
    rc = vklm_data_fail(err, errlen, "shard %s: rename: %s", w->path, strerror(errno));
  if (!rc) {
    free(w->tmp); /* renamed: nothing to remove */
    w->tmp = NULL;
  }
  vklm_shard_writer_destroy(w);
  return rc;
}

/* ---- reader ---- */

struct vklm_shard {
  int fd;
  uint32_t width;
  int32_t eot;
  uint64_t count, vocab, docs;
};

int vklm_shard_open(const char *path, vklm_shard **out, char *err, size_t errlen) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return vklm_data_fail(err, errlen, "shard %s: cannot open: %s", path, strerror(errno));
  struct stat st;
  unsigned char h[VKLM_SHARD_HEADER_BYTES];
  const char *why = NULL;
  if (fstat(fd, &st))
    why = "cannot stat";
  else if ((uint64_t)st.st_size < VKLM_SHARD_HEADER_BYTES)
    why = "shorter than the 64-byte header";
  else if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h)
    why = "cannot read the header";
  else if (memcmp(h, VKLM_SHARD_MAGIC, 8))
    why = "bad magic (not a vklm token shard)";
  else if (get32(h + 8) != VKLM_SHARD_VERSION)
    why = "unsupported format version";
  else if (get32(h + 12) != 2 && get32(h + 12) != 4)
    why = "token width is not 2 or 4";
  else if (get32(h + 36) != VKLM_SHARD_HEADER_BYTES)
    why = "unexpected header size";
  else if (!get64(h + 24) || get64(h + 24) > ((uint64_t)1 << 32))
    why = "vocabulary size out of range";
  else if (get32(h + 12) == 2 && get64(h + 24) > 65536)
    why = "vocabulary too large for 2-byte tokens";
  if (why) {
    close(fd);
    return vklm_data_fail(err, errlen, "shard %s: %s", path, why);
  }
  uint64_t count = get64(h + 16), width = get32(h + 12);
  uint64_t body = (uint64_t)st.st_size - VKLM_SHARD_HEADER_BYTES;
  if (count > body / width || count * width != body) {
    close(fd);
    return vklm_data_fail(err, errlen,
                "shard %s: header says %llu tokens (%llu bytes) but the file holds "
                "%llu bytes after the header (%s)",
                path, (unsigned long long)count, (unsigned long long)(count * width),
                (unsigned long long)body,
                count * width > body || count > body / width ? "truncated" : "trailing bytes");
  }
  vklm_shard *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return vklm_data_fail(err, errlen, "shard %s: out of memory", path);
  }
  s->fd = fd;
  s->width = (uint32_t)width;
  s->count = count;
  s->vocab = get64(h + 24);
  s->eot = (int32_t)get32(h + 32);
  s->docs = get64(h + 40);
  *out = s;
  return 0;
}

uint64_t vklm_shard_count(const vklm_shard *s) { return s->count; }
uint32_t vklm_shard_width(const vklm_shard *s) { return s->width; }
uint64_t vklm_shard_vocab_size(const vklm_shard *s) { return s->vocab; }
int32_t vklm_shard_eot(const vklm_shard *s) { return s->eot; }
uint64_t vklm_shard_docs(const vklm_shard *s) { return s->docs; }

int vklm_shard_read(const vklm_shard *s, uint64_t start, size_t n, uint32_t *dst) {
  if (start > s->count || n > s->count - start) return -1;
  unsigned char buf[1 << 16];
  size_t per = sizeof buf / s->width, done = 0;
  while (done < n) {
    size_t k = n - done < per ? n - done : per, bytes = k * s->width;
    off_t off = (off_t)(VKLM_SHARD_HEADER_BYTES + (start + done) * s->width);
    size_t got = 0;
    while (got < bytes) {
      ssize_t r = pread(s->fd, buf + got, bytes - got, off + (off_t)got);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        return -1;
      }
      got += (size_t)r;
    }
    for (size_t i = 0; i < k; i++) {
      uint32_t v =
          s->width == 2 ? (uint32_t)buf[2 * i] | (uint32_t)buf[2 * i + 1] << 8 : get32(buf + 4 * i);
      if (v >= s->vocab) return -1;
      dst[done + i] = v;
    }
    done += k;
  }
  return 0;
}

void vklm_shard_close(vklm_shard *s) {
  if (!s) return;
  close(s->fd);
  free(s);
}

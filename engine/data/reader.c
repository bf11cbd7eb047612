/* File walking, gzip, whole-file and JSONL documents (see reader.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "data/dedup.h"
#include "data/reader.h"
#include "io/json.h"

enum kind { K_NONE, K_TEXT, K_HTML, K_JSONL };
enum { CHUNK = 1 << 20, SNIFF = 1 << 16 };

struct vklm_reader {
  const char *const *paths; /* borrowed */
  const char *field;        /* borrowed */
  const char *meta;         /* borrowed: the field vklm_reader_next_meta returns ("url") */
  size_t max;
  char **stack; /* owned: paths waiting to be visited, popped from the end */
  int *stack_input; /* owned: the input (index into paths) each waiting path came from */
  int input;        /* the input of the open file */
  size_t nstack, capstack;
  gzFile gz;   /* the open JSONL file, or NULL */
  char *chunk; /* owned: CHUNK bytes read ahead from gz */
  size_t pos, len;
  int eof, sniffed, failed; /* failed: a read or decompression error ended the file */
  vklm_buf line;
  vklm_dedup_set *dirs; /* owned: (device, inode) of directories walked, against symlink loops */
  vklm_reader_counts c;
};

int vklm_reader_create(const char *const *paths, int npaths, const char *text_field,
                       size_t max_doc_bytes, vklm_reader **out) {
  vklm_reader *r = calloc(1, sizeof *r);
  *out = NULL;
  if (!r || !(r->chunk = malloc(CHUNK)) || vklm_dedup_set_create(&r->dirs)) {
    if (r) free(r->chunk);
    free(r);
    return -1;
  }
  r->paths = paths;
  r->field = text_field ? text_field : "text";
  r->meta = "url";
  r->max = max_doc_bytes ? max_doc_bytes : ((size_t)64 << 20);
  for (int i = npaths; i-- > 0;) {
    if (r->nstack == r->capstack) {
      size_t nc = r->capstack ? r->capstack * 2 : 16;
      char **s = realloc(r->stack, nc * sizeof *s);
      if (s) r->stack = s;
      int *si = s ? realloc(r->stack_input, nc * sizeof *si) : NULL;
      if (!s || !si) {
        vklm_reader_destroy(r);
        return -1;
      }
      r->stack_input = si;
      r->capstack = nc;
    }
    r->stack_input[r->nstack] = i;
    if (!(r->stack[r->nstack] = strdup(paths[i]))) {
      vklm_reader_destroy(r);
      return -1;
    }
    r->nstack++;
  }
  *out = r;
  return 0;
}

void vklm_reader_destroy(vklm_reader *r) {
  if (!r) return;
  if (r->gz) gzclose(r->gz);
  for (size_t i = 0; i < r->nstack; i++)
    free(r->stack[i]);
  free(r->stack);
  free(r->stack_input);
  free(r->chunk);
  vklm_buf_free(&r->line);
  vklm_dedup_set_destroy(r->dirs);
  free(r);
}

const vklm_reader_counts *vklm_reader_counts_get(const vklm_reader *r) { return &r->c; }

int vklm_reader_check_inputs(const char *const *paths, int npaths, char *err, size_t errlen) {
  for (int i = 0; i < npaths; i++) {
    struct stat sb;
    if (stat(paths[i], &sb) != 0) {
      snprintf(err, errlen, "cannot open the input '%s': %s", paths[i], strerror(errno));
      return -1;
    }
    if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
      snprintf(err, errlen, "the input '%s' is neither a file nor a directory", paths[i]);
      return -1;
    }
  }
  return 0;
}

void vklm_reader_describe(const vklm_reader_counts *c, char *buf, size_t n) {
  snprintf(buf, n, "%llu files read, %llu empty, %llu binary, %llu unreadable, %llu skipped (not "
           ".txt .md .html .jsonl, optionally .gz), %llu malformed JSONL lines",
           (unsigned long long)c->files, (unsigned long long)c->files_empty,
           (unsigned long long)c->files_binary, (unsigned long long)c->files_unreadable,
           (unsigned long long)c->files_skipped, (unsigned long long)c->lines_malformed);
}

void vklm_reader_set_meta_field(vklm_reader *r, const char *field) { r->meta = field; }

static enum kind kind_of(const char *path) {
  size_t n = strlen(path);
  if (n > 3 && !strcasecmp(path + n - 3, ".gz")) n -= 3;
  static const struct {
    const char *ext;
    enum kind k;
  } ext[] = {
      {".txt", K_TEXT}, {".md", K_TEXT}, {".html", K_HTML}, {".htm", K_HTML}, {".jsonl", K_JSONL}};
  for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
    size_t m = strlen(ext[i].ext);
    if (n > m && !strncasecmp(path + n - m, ext[i].ext, m)) return ext[i].k;
  }
  return K_NONE;
}

/* Binary: more than 10% NUL bytes (also UTF-16 text), or more than 30% of the bytes are control
 * characters or not part of a well-formed UTF-8 sequence. A few stray bytes are not binary: the
 * clean step repairs them and counts them. */
static int is_binary(const unsigned char *p, size_t n) {
  size_t nul = 0, bad = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      nul += c == 0;
      bad += (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v' &&
              c != 0x1b) ||
             c == 0x7f;
      i++;
      continue;
    }
    size_t need = c >= 0xC2 && c <= 0xDF   ? 1
                  : c >= 0xE0 && c <= 0xEF ? 2
                  : c >= 0xF0 && c <= 0xF4 ? 3
                                           : 0;
    size_t k = 1;
    while (k <= need && i + k < n && (p[i + k] & 0xC0) == 0x80)
      k++;
    if (!need || (k <= need && i + k < n)) { /* invalid (a sequence cut by the sniff end is fine) */
      bad++;
      i++;
    } else
      i += k;
  }
  return nul * 10 > n || bad * 10 > n * 3;
}

static int push_path(vklm_reader *r, const char *dir, const char *name, int input) {
  if (r->nstack == r->capstack) {
    size_t nc = r->capstack ? r->capstack * 2 : 16;
    char **s = realloc(r->stack, nc * sizeof *s);
    if (!s) return -1;
    r->stack = s;
    int *si = realloc(r->stack_input, nc * sizeof *si);
    if (!si) return -1;
    r->stack_input = si;
    r->capstack = nc;
  }
  r->stack_input[r->nstack] = input;
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (!p) return -1;
  snprintf(p, n, "%s/%s", dir, name);
  r->stack[r->nstack++] = p;
  return 0;
}

static int visible(const struct dirent *d) { return d->d_name[0] != '.'; }

/* Pops paths until a supported regular file is found; opens it into r->gz. Directories push
 * their entries. Returns the file's kind, K_NONE at the end, or -1 when memory runs out. */
static int open_next(vklm_reader *r) {
  while (r->nstack) {
    char *path = r->stack[--r->nstack];
    int input = r->stack_input[r->nstack];
    struct stat st;
    if (stat(path, &st)) {
      r->c.files_unreadable++;
      free(path);
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      uint64_t id[2] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino};
      int fresh = vklm_dedup_set_insert(r->dirs, id);
      if (fresh <= 0) { /* seen before (a symlink loop or a repeated argument), or no memory */
        free(path);
        if (fresh < 0) return -1;
        r->c.files_skipped++;
        continue;
      }
      struct dirent **ents = NULL;
      int ne = scandir(path, &ents, visible, alphasort);
      if (ne < 0) r->c.files_unreadable++;
      int rc = 0;
      for (int i = ne; i-- > 0;) {
        if (!rc) rc = push_path(r, path, ents[i]->d_name, input);
        free(ents[i]);
      }
      free(ents);
      free(path);
      if (rc) return -1;
      continue;
    }
    enum kind k = S_ISREG(st.st_mode) ? kind_of(path) : K_NONE;
    if (k == K_NONE) {
      r->c.files_skipped++;
      free(path);
      continue;
    }
    r->gz = gzopen(path, "rb");
    free(path);
    if (!r->gz) {
      r->c.files_unreadable++;
      continue;
    }
    gzbuffer(r->gz, 1 << 18);
    r->input = input;
    r->c.files++;
    r->pos = r->len = 0;
    r->eof = r->sniffed = r->failed = 0;
    return k;
  }
  return K_NONE;
}

/* Refills the chunk; returns bytes available (0 at the end or on an error, which is counted). */
static size_t fill(vklm_reader *r) {
  if (r->pos < r->len) return r->len - r->pos;
  if (r->eof) return 0;
  int got = gzread(r->gz, r->chunk, CHUNK);
  if (got <= 0) {
    if (got < 0) {
      r->c.files_unreadable++;
      r->failed = 1;
    }
    r->eof = 1;
    return 0;
  }
  r->pos = 0;
  r->len = (size_t)got;
  r->c.bytes += (uint64_t)got;
  return r->len;
}

static void close_file(vklm_reader *r) {
  if (r->gz) gzclose(r->gz);
  r->gz = NULL;
}

/* Reads a whole file as one document. Returns 1 (document), 0 (skipped), -1 (no memory). */
static int read_whole(vklm_reader *r, vklm_buf *text) {
  int over = 0;
  while (fill(r)) {
    size_t n = r->len - r->pos;
    if (!r->sniffed) {
      r->sniffed = 1;
      if (is_binary((unsigned char *)r->chunk, n < SNIFF ? n : SNIFF)) {
        r->c.files_binary++;
        close_file(r);
        return 0;
      }
    }
    if (text->n + n > r->max) {
      over = 1;
      break;
    }
    if (vklm_buf_append(text, r->chunk + r->pos, n)) return -1;
    r->pos = r->len;
  }
  int unread = r->eof && !r->sniffed;
  close_file(r);
  if (over) {
    r->c.docs_oversize++;
    return 0;
  }
  if (unread || text->n == 0) {
    r->c.files_empty += !r->failed;
    return 0;
  }
  return 1;
}

/* Next line of the open JSONL file into r->line (without '\n'). Returns 1 with a line,
 * 0 at the end of the file, 2 for a line skipped as oversize, -1 when memory runs out. */
static int next_line(vklm_reader *r) {
  vklm_buf_clear(&r->line);
  int over = 0, any = 0;
  while (fill(r)) {
    if (!r->sniffed) {
      r->sniffed = 1;
      size_t n = r->len - r->pos;
      if (is_binary((unsigned char *)r->chunk + r->pos, n < SNIFF ? n : SNIFF)) {
        r->c.files_binary++;
        r->eof = 1;
        r->pos = r->len;
        return 0;
      }
    }
    any = 1;
    char *s = r->chunk + r->pos;
    size_t n = r->len - r->pos;
    char *nl = memchr(s, '\n', n);
    size_t take = nl ? (size_t)(nl - s) : n;
    if (!over && r->line.n + take > r->max) {
      over = 1;
      vklm_buf_clear(&r->line);
    }
    if (!over && vklm_buf_append(&r->line, s, take)) return -1;
    r->pos += take + (nl != NULL);
    if (nl) break;
  }
  if (!any) {
    if (!r->sniffed && !r->failed) r->c.files_empty++;
    r->sniffed = 1;
    return 0;
  }
  if (over) {
    r->c.docs_oversize++;
    return 2;
  }
  return 1;
}

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
  return 1;
}

int vklm_reader_next(vklm_reader *r, vklm_buf *text, int *html) {
  return vklm_reader_next_meta(r, text, html, NULL, NULL);
}

int vklm_reader_next_meta(vklm_reader *r, vklm_buf *text, int *html, int *input, vklm_buf *url) {
  vklm_buf_clear(text);
  if (url) vklm_buf_clear(url);
  for (;;) {
    if (r->gz) { /* an open JSONL file */
      int rc = next_line(r);
      if (rc < 0) return -1;
      if (rc == 0) {
        close_file(r);
        continue;
      }
      if (rc == 2) continue;
      if (blank(r->line.p ? r->line.p : "", r->line.n)) {
        r->c.lines_blank++;
        continue;
      }
      /* a text holding \u0000 would be cut there (cJSON's strings end at a NUL): malformed */
      cJSON *j = vklm_json_has_nul(r->line.p, r->line.n)
                     ? NULL
                     : cJSON_ParseWithLength(r->line.p, r->line.n);
      cJSON *t = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, r->field) : NULL;
      int ok = cJSON_IsString(t) && t->valuestring;
      cJSON *u = ok && url ? cJSON_GetObjectItemCaseSensitive(j, r->meta) : NULL;
      if ((ok && vklm_buf_append(text, t->valuestring, strlen(t->valuestring))) ||
          (cJSON_IsString(u) && u->valuestring &&
           vklm_buf_append(url, u->valuestring, strlen(u->valuestring)))) {
        cJSON_Delete(j);
        return -1;
      }
      cJSON_Delete(j);
      if (!ok) {
        r->c.lines_malformed++;
        continue;
      }
      *html = 0;
      if (input) *input = r->input;
      return 1;
    }
    int k = open_next(r);
    if (k < 0) return -1;
    if (k == K_NONE) return 0;
    if (k == K_JSONL) continue;
    int rc = read_whole(r, text);
    if (rc < 0) return -1;
    if (rc == 1) {
      *html = k == K_HTML;
      if (input) *input = r->input;
      return 1;
    }
    vklm_buf_clear(text);
  }
}

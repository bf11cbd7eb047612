/* reader: streams documents out of files and directories for `vklm data prepare`.
 * .txt, .md (one document per file), .html/.htm (one HTML document per file), .jsonl (one
 * document per line, its text in a chosen string field), each optionally gzip-compressed (.gz,
 * read through zlib, which also reads plain files). Directories are walked recursively in
 * name order; names starting with '.' and other extensions are skipped and counted.
 * Memory is bounded by max_doc_bytes: a longer document or line is skipped, never stored.
 * Bad input (binary files, empty files, malformed lines, corrupt gzip) is counted, not fatal. */
#ifndef VKLM_DATA_READER_H
#define VKLM_DATA_READER_H

#include <stdint.h>

#include "data/buf.h"

typedef struct vklm_reader_counts {
  uint64_t files;         /* files opened */
  uint64_t files_skipped; /* unsupported extension or not a regular file */
  uint64_t files_empty;
  uint64_t files_binary;     /* NULs or control bytes in the first 64 KiB */
  uint64_t files_unreadable; /* could not open, or a read / decompression error */
  uint64_t lines_malformed;  /* JSONL lines: not JSON, not an object, no string text field, or
                                a text holding \u0000 (it would be cut there) */
  uint64_t lines_blank;      /* JSONL lines with only whitespace */
  uint64_t docs_oversize;    /* documents or lines over max_doc_bytes, skipped */
  uint64_t bytes;            /* bytes read (after decompression) */
} vklm_reader_counts;

typedef struct vklm_reader vklm_reader;

/* Borrows paths and text_field for the reader's lifetime. Returns 0 or -1 (no memory). */
int vklm_reader_create(const char *const *paths, int npaths, const char *text_field,
                       size_t max_doc_bytes, vklm_reader **out);
void vklm_reader_destroy(vklm_reader *r);
/* Next document into text (cleared first); *html says whether it is HTML.
 * Returns 1 with a document, 0 at the end, -1 when memory runs out. */
int vklm_reader_next(vklm_reader *r, vklm_buf *text, int *html);
/* The same, also giving the input (index into paths) the document came from and, for JSONL
 * lines, the string of their "url" field (url cleared first; empty when there is none).
 * input and url may be NULL. */
int vklm_reader_next_meta(vklm_reader *r, vklm_buf *text, int *html, int *input, vklm_buf *url);
/* The JSONL field whose string vklm_reader_next_meta returns in url ("url"); borrowed. */
void vklm_reader_set_meta_field(vklm_reader *r, const char *field);
const vklm_reader_counts *vklm_reader_counts_get(const vklm_reader *r);
/* Before any work: every input must exist and be a file or a directory (0, or -1 with why). */
int vklm_reader_check_inputs(const char *const *paths, int npaths, char *err, size_t errlen);
/* What the reader saw, for "no documents" messages. */
void vklm_reader_describe(const vklm_reader_counts *c, char *buf, size_t n);

#endif

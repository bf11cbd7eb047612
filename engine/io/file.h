/* Reading whole files: the one way every reader of files from outside does it (issue 14's path
 * policy, docs/security.md). The path must name a regular file — or "-", standard input, where the
 * caller allows it — so a directory, a device (/dev/zero), a FIFO or a missing path is a clear
 * error, never an empty or endless read. The size is checked against the caller's bound before
 * anything is read, and the read stops at the bound too (a file that grows while read, stdin).
 * Errors name the path and what is wrong with it. */
#ifndef VKLM_IO_FILE_H
#define VKLM_IO_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

/* Bounds used across the engine (bytes). */
#define VKLM_FILE_MAX_CONFIG (64ull << 20)  /* JSON state, templates, tokenizer configs */
#define VKLM_FILE_MAX_TOKENIZER (1ull << 30) /* tokenizer.json, vocab, merges, rank files */
#define VKLM_FILE_MAX_TEXT (4ull << 30)      /* prompts, JSONL data, task files, text to encode */

enum { VKLM_FILE_STDIN = 1 }; /* flags: "-" reads standard input */

/* The whole file as a NUL-terminated buffer (free() it) and its length in *len (may be NULL).
 * VKLM_ERROR_IO (missing, not a regular file, unreadable), VKLM_ERROR_INVALID (over max_bytes)
 * or VKLM_ERROR_OUT_OF_HOST_MEMORY, with the message in err. */
vklm_status vklm_file_read(const char *path, uint64_t max_bytes, int flags, char **out,
                           size_t *len, char *err, size_t errlen);
/* VKLM_OK when path names a regular file; else VKLM_ERROR_IO and what it is instead. */
vklm_status vklm_file_check(const char *path, char *err, size_t errlen);

#endif

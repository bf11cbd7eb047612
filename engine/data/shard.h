/* shard: token shard files, the input of pretraining (format in docs/formats.md).
 * A 64-byte little-endian header (magic "VKLMTOK1", version, token width 2 or 4 bytes, token
 * count, vocabulary size, end-of-text id, document count, reserved zeros), then the tokens,
 * little-endian, uint16 when the vocabulary fits in 65536 ids, else uint32.
 * The writer is atomic: it writes <path>.tmp, fsyncs and renames, so a shard either exists
 * whole or not at all. The reader checks the header and that the file holds exactly the
 * tokens the header promises (a corrupt or truncated file is rejected with a message); reads
 * use pread, so one open shard can serve several threads. */
#ifndef VKLM_DATA_SHARD_H
#define VKLM_DATA_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define VKLM_SHARD_MAGIC "VKLMTOK1"
#define VKLM_SHARD_VERSION 1u
#define VKLM_SHARD_HEADER_BYTES 64u

/* 2 when every id of a vocab_size vocabulary fits in uint16, else 4. */
uint32_t vklm_shard_width_for(uint64_t vocab_size);

/* ---- writing ---- */
typedef struct vklm_shard_writer vklm_shard_writer;
/* eot_id: the end-of-text id (or -1); recorded in the header for readers that split documents. */
int vklm_shard_writer_create(const char *path, uint64_t vocab_size, int32_t eot_id,
                             vklm_shard_writer **out, char *err, size_t errlen);
/* Appends n tokens (each < vocab_size, else -1 and nothing written). */
int vklm_shard_writer_append(vklm_shard_writer *w, const uint32_t *tokens, size_t n);
void vklm_shard_writer_add_docs(vklm_shard_writer *w, uint64_t docs);
uint64_t vklm_shard_writer_count(const vklm_shard_writer *w);
/* Writes the header, fsyncs, renames into place, frees w (also on failure). */
int vklm_shard_writer_finish(vklm_shard_writer *w, char *err, size_t errlen);
/* Abandons the shard: removes the temp file, frees w. Accepts NULL. */
void vklm_shard_writer_destroy(vklm_shard_writer *w);

/* ---- reading ---- */
typedef struct vklm_shard vklm_shard;
int vklm_shard_open(const char *path, vklm_shard **out, char *err, size_t errlen);
uint64_t vklm_shard_count(const vklm_shard *s); /* tokens */
uint32_t vklm_shard_width(const vklm_shard *s); /* 2 or 4 bytes per token */
uint64_t vklm_shard_vocab_size(const vklm_shard *s);
int32_t vklm_shard_eot(const vklm_shard *s); /* -1 when none was recorded */
uint64_t vklm_shard_docs(const vklm_shard *s);
/* Tokens [start, start + n) into dst. -1 when the range is outside the shard, on a read error,
 * or when a token is >= the vocabulary size (a corrupt file). */
int vklm_shard_read(const vklm_shard *s, uint64_t start, size_t n, uint32_t *dst);
void vklm_shard_close(vklm_shard *s); /* accepts NULL */

#endif

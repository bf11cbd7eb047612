/* shard_merge: the merge step of a sharded `vklm data prepare` (docs/data.md, "Sharded runs").
 * A shard run (vklm_prepare_opts.shard / nshards) processes documents i, i+N, ... of the input,
 * exact-dedups within its shard, skips near-dedup, and writes its kept lines in input order,
 * each ending with "doc_index". The merge reads every shard's output at once, in the order of
 * doc_index (a k-way merge of the sorted files), exact-dedups across the shards (the first
 * occurrence in the whole input wins), computes the MinHash signatures and clusters them as
 * prepare does (engine/data/minhash.c: the smallest index of a cluster is kept), and writes the
 * kept lines without "doc_index" to the output (atomically: <output>.tmp, then renamed). With
 * the same options the result is the output of one unsharded run, line for line.
 *
 * Memory: the exact-dedup set (16 bytes per document) and the near-dedup clustering (a mapped
 * temp file of signatures); the texts stream through. */
#ifndef VKLM_DATA_SHARD_MERGE_H
#define VKLM_DATA_SHARD_MERGE_H

#include <stdint.h>

#include "data/dedup.h"

typedef struct vklm_merge_opts {
  const char *const *inputs; /* borrowed: the shards' output files, any order */
  int ninputs;
  const char *output;
  const char *tmp_dir; /* temp files; NULL: next to the output */
  int exact_dedup;     /* 1 */
  vklm_minhash_opts near;
  int progress;
} vklm_merge_opts;

typedef struct vklm_merge_stats {
  uint64_t docs_in;       /* lines read from the shards */
  uint64_t exact_removed; /* duplicates of an earlier document of another shard */
  uint64_t near_removed;
  uint64_t docs_out, bytes_out; /* documents written and their text bytes */
  vklm_minhash_result near;
} vklm_merge_stats;

void vklm_merge_default(vklm_merge_opts *o);
/* Returns 0, or -1 with a message in err (an unreadable shard, a line without "text" or
 * "doc_index", indices out of order or in two shards, I/O, memory). */
int vklm_prepare_merge(const vklm_merge_opts *o, vklm_merge_stats *st, char *err,
                       size_t errlen);

#endif

/* What `vklm data` (cmd_data.c) calls in its sibling files: sharded and MPI runs of prepare and
 * tokenize and `vklm data merge` (cmd_data_shard.c; docs/data.md, "Sharded runs"), and the
 * learned classifier (cmd_data_classifier.c). Flags come from apps/flags.h like every command's. */
#ifndef VKLM_APPS_DATA_CMDS_H
#define VKLM_APPS_DATA_CMDS_H

#include <stdint.h>

#include "data/prepare.h"
#include "data/tokenize.h"
#include "vklm_runtime.h"

/* Runs prepare as one process (shard NULL), as shard "i/N" of the input, or — launched by
 * mpirun / srun with several ranks — rank r as shard r/N writing <output>.shard-RRRofNNN, then
 * rank 0 merging the shards into <output> (and removing them). *quiet is set on ranks other than
 * 0. Returns 0, 1 (a failure, message printed) or 2 (a usage error). */
int data_prepare_run(vklm_prepare_opts *o, const char *shard, vklm_prepare_stats *st, int *quiet);
/* The same for tokenize: shard i/N, or every MPI rank its shard into the same directory; *st
 * receives the totals of every rank. */
int data_tokenize_run(vklm_tokenize_opts *o, const char *shard, vklm_tokenize_stats *st,
                      int *quiet);
/* `vklm data merge -o OUT SHARD_OUTPUT...` (argv[0] is "merge"). */
int cmd_data_merge(int argc, char **argv);

struct vklm_classifier;
/* `vklm data classifier train|score ...` (argv[0] is "classifier"). */
int data_classifier_cmd(int argc, char **argv);
/* The GPU context and a loaded classifier for `prepare --classifier`; prints the error and
 * returns nonzero on failure. */
int data_classifier_open(const vklm_config *cfg, const char *dir, uint32_t B, vklm_context **ctx,
                         struct vklm_classifier **out);

#endif

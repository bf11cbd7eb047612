/* dist: the process group of a data-parallel job, over MPI (Open MPI's mpirun/mpiexec, or srun
 * with PMIx). The only code in vklm that includes mpi.h.
 *
 * Owns: membership (rank, size, the ranks on this host), host staging for the reductions, and the
 * failure protocol. Borrows nothing.
 *
 * Invariants:
 *  - Reductions are in a fixed order, so their results do not depend on timing or on the MPI
 *    library's algorithms: vklm_dist_sum_f32 is a reduce-scatter (rank j sums shard j of every
 *    rank's vector in the order of the ranks, 0 first, in float) followed by an all-gather; every
 *    rank gets the same bits. ZeRO-1 uses the reduce-scatter alone (each rank updates its shard)
 *    and all-gathers the parameters. vklm_dist_exchange sums its doubles in rank order too.
 *  - Failures end the job, naming the rank: every rank reports its status at each exchange
 *    (rank 0 collects them point to point, so it knows who did not answer); a rank that failed
 *    cleanly makes every rank return an error naming it; a rank that does not answer within the
 *    timeout (VKLM_DIST_TIMEOUT seconds, default 600) at an exchange, a sum or a broadcast makes
 *    the job abort (MPI_Abort) with a message naming the missing ranks. A rank killed by a signal is seen by the launcher, which
 *    ends the others (Open MPI's mpirun names the rank and the signal).
 *  - Without an MPI launcher (none of OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK in the
 *    environment), or on NULL, the group is one rank and MPI is never initialised: every call is
 *    a no-op, so single-process code paths run unchanged.
 *
 * Does not: choose devices (vklm_dist_device_index only suggests one by local rank), touch the
 * GPU, or read data. */
#ifndef VKLM_DIST_H
#define VKLM_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

typedef struct vklm_dist vklm_dist;

/* Joins the MPI job when launched by an MPI launcher, else makes a group of one. */
vklm_status vklm_dist_init(vklm_dist **out, char *err, size_t errlen);
/* Leaves the job (MPI_Finalize) and frees d; accepts NULL. */
void vklm_dist_finalize(vklm_dist *d);

int vklm_dist_rank(const vklm_dist *d);       /* 0 for NULL */
int vklm_dist_size(const vklm_dist *d);       /* 1 for NULL */
int vklm_dist_local_rank(const vklm_dist *d); /* among the ranks on this host; 0 for NULL */
int vklm_dist_local_size(const vklm_dist *d); /* 1 for NULL */
const char *vklm_dist_host(const vklm_dist *d);
double vklm_dist_timeout_s(const vklm_dist *d);

/* The device a rank should open: `want` (a --device value) may be a comma-separated list with
 * one entry per local rank ("0,1"): the local rank's entry (cycling when the list is shorter) is
 * written to out. An empty want with several ranks on the host gives the local rank's index
 * modulo ndev ("1"); otherwise want is copied unchanged. */
void vklm_dist_device_choice(const vklm_dist *d, const char *want, int ndev, char *out,
                             size_t outlen);

/* The status exchange every rank makes at the same points of a run. Each rank gives ok (0 when
 * it failed, with msg saying why), a flag (e.g. "stop requested") and n doubles. On return, when
 * every rank was ok: VKLM_OK, vals[i] = the sum over ranks of vals[i] in rank order, *any_flag =
 * whether any rank raised its flag. When a rank failed: the status VKLM_ERROR_INVALID (or the
 * failed rank's own status code), err = "rank R (host) failed during WHAT: MSG" for the lowest
 * failed rank, and *failed_rank = R. A rank that does not answer within the timeout aborts the
 * job (MPI_Abort) after printing which. n <= 8. */
#define VKLM_DIST_MAX_VALS 8
vklm_status vklm_dist_exchange(vklm_dist *d, const char *what, int ok, vklm_status code,
                               const char *msg, int flag, double *vals, int n, int *any_flag,
                               int *failed_rank, char *err, size_t errlen);

/* This rank's shard [lo, hi) of a vector of n: rank r owns [n*r/size, n*(r+1)/size). */
void vklm_dist_shard(const vklm_dist *d, uint64_t n, uint64_t *lo, uint64_t *hi);
/* x[0..n) <- the sum over ranks of x, in rank order (see the invariants); the same bits on every
 * rank. Point-to-point messages (MPI's own collectives promise no order and cannot say who is
 * late): waits at most the timeout, then aborts the job naming the operation and the ranks whose
 * messages did not arrive. n <= INT_MAX. */
vklm_status vklm_dist_sum_f32(vklm_dist *d, float *x, uint64_t n, char *err, size_t errlen);
/* Its two halves: x[lo, hi) (this rank's shard) <- the sum over ranks of that part of x, in
 * rank order (the rest of x is left as it was); and every rank's shard of x to every rank. */
vklm_status vklm_dist_reduce_scatter_f32(vklm_dist *d, float *x, uint64_t n, char *err,
                                         size_t errlen);
vklm_status vklm_dist_allgather_f32(vklm_dist *d, float *x, uint64_t n, char *err,
                                    size_t errlen);
/* The same restricted to the elements [from, to) of the vector x of n (each element's owner is
 * still the rank whose shard of the whole vector holds it): reducing a vector range by range, in
 * any order of ranges, gives the same bits as reducing it whole (data-parallel training reduces
 * each part of the gradients as soon as the backward has finished it, while the device computes
 * the rest). Every rank must call with the same ranges in the same order. */
vklm_status vklm_dist_reduce_scatter_range_f32(vklm_dist *d, float *x, uint64_t n, uint64_t from,
                                               uint64_t to, char *err, size_t errlen);
vklm_status vklm_dist_allgather_range_f32(vklm_dist *d, float *x, uint64_t n, uint64_t from,
                                          uint64_t to, char *err, size_t errlen);
vklm_status vklm_dist_sum_range_f32(vklm_dist *d, float *x, uint64_t n, uint64_t from,
                                    uint64_t to, char *err, size_t errlen);
/* Rank 0's bytes into every rank's buf (point to point, with the same timeout). */
vklm_status vklm_dist_bcast(vklm_dist *d, void *buf, uint64_t bytes, char *err, size_t errlen);
/* Every rank's (value) gathered on every rank: out[r] = rank r's x (out has size entries). */
vklm_status vklm_dist_gather_f64(vklm_dist *d, double x, double *out, char *err, size_t errlen);

/* Prints "vklm: rank R (host): msg; ending the job" on stderr and aborts the whole job
 * (MPI_Abort; exit(1) in a group of one). */
void vklm_dist_abort(vklm_dist *d, const char *msg);

#endif

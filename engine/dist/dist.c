/* The process group over MPI: membership, the status exchange (gathered by rank 0 point to point,
 * with a deadline), fixed-order sums, broadcast, abort. Non-blocking MPI calls polled against a
 * deadline, so that no rank waits forever on a rank that hangs. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

/* Sanitizer builds (VKLM_SANITIZE): what Open MPI allocates while it starts and stops (PMIx,
 * hwloc, its components) and keeps until exit is not ours; LeakSanitizer ignores allocations made
 * inside these brackets on this thread. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define MPI_LIBRARY_BEGIN() __lsan_disable()
#define MPI_LIBRARY_END() __lsan_enable()
#else
#define MPI_LIBRARY_BEGIN() ((void)0)
#define MPI_LIBRARY_END() ((void)0)
#endif

#include "dist/dist.h"

#define TAG_UP 7101   /* rank -> rank 0: status record */
#define TAG_DOWN 7102 /* rank 0 -> rank: verdict */
#define TAG_RS 7103   /* reduce-scatter */
#define TAG_AG 7104   /* all-gather */
#define TAG_BC 7105   /* broadcast */
#define SEG (1ull << 24) /* floats per reduction round: MPI counts are ints */

struct vklm_dist {
  int mpi; /* MPI was initialised by us */
  int rank, size, local_rank, local_size;
  double timeout_s;
  char host[MPI_MAX_PROCESSOR_NAME];
  float *scratch; /* owned: SEG floats, the reduce-scatter's receive buffer */
};

/* What each rank reports at an exchange. */
typedef struct record {
  int32_t ok, flag, code, rank;
  double vals[VKLM_DIST_MAX_VALS];
  char host[MPI_MAX_PROCESSOR_NAME];
  char msg[512];
} record;

/* Rank 0's answer: the sums, the flag, and the first failure if any. */
typedef struct verdict {
  int32_t failed_rank, flag, code, pad;
  double vals[VKLM_DIST_MAX_VALS];
  char msg[700];
} verdict;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int launched_by_mpi(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

vklm_status vklm_dist_init(vklm_dist **out, char *err, size_t errlen) {
  *out = NULL;
  vklm_dist *d = calloc(1, sizeof *d);
  if (!d) {
    snprintf(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  d->size = d->local_size = 1;
  d->timeout_s = 600;
  const char *t = getenv("VKLM_DIST_TIMEOUT");
  if (t && *t) {
    char *end;
    double v = strtod(t, &end);
    if (*end || !(v > 0)) {
      snprintf(err, errlen, "VKLM_DIST_TIMEOUT wants a number of seconds above 0, not '%s'", t);
      free(d);
      return VKLM_ERROR_INVALID;
    }
    d->timeout_s = v;
  }
  if (gethostname(d->host, sizeof d->host) != 0) snprintf(d->host, sizeof d->host, "?");
  d->host[sizeof d->host - 1] = 0;
  if (!launched_by_mpi()) {
    *out = d;
    return VKLM_OK;
  }
  int inited = 0, ok = 1;
  MPI_Initialized(&inited);
  MPI_LIBRARY_BEGIN();
  if (!inited) ok = MPI_Init(NULL, NULL) == MPI_SUCCESS;
  MPI_LIBRARY_END();
  if (!ok) {
    snprintf(err, errlen, "MPI_Init failed");
    free(d);
    return VKLM_ERROR_UNSUPPORTED;
  }
  d->mpi = !inited;
  /* Errors come back as codes (then the job is aborted with a message), not MPI's own abort. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &d->size);
  MPI_Comm local;
  MPI_LIBRARY_BEGIN();
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local) ==
      MPI_SUCCESS) {
    MPI_Comm_rank(local, &d->local_rank);
    MPI_Comm_size(local, &d->local_size);
    MPI_Comm_free(&local);
  }
  MPI_LIBRARY_END();
  int len = 0;
  if (MPI_Get_processor_name(d->host, &len) != MPI_SUCCESS) snprintf(d->host, sizeof d->host, "?");
  if (d->size > 1) {
    d->scratch = malloc(SEG * sizeof(float));
    if (!d->scratch) {
      snprintf(err, errlen, "rank %d: out of host memory for the reduction buffer", d->rank);
      vklm_dist_abort(d, err);
      return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    }
  }
  *out = d;
  return VKLM_OK;
}

void vklm_dist_finalize(vklm_dist *d) {
  if (!d) return;
  MPI_LIBRARY_BEGIN();
  if (d->mpi) MPI_Finalize();
  MPI_LIBRARY_END();
  free(d->scratch);
  free(d);
}

int vklm_dist_rank(const vklm_dist *d) { return d ? d->rank : 0; }
int vklm_dist_size(const vklm_dist *d) { return d ? d->size : 1; }
int vklm_dist_local_rank(const vklm_dist *d) { return d ? d->local_rank : 0; }
int vklm_dist_local_size(const vklm_dist *d) { return d ? d->local_size : 1; }
const char *vklm_dist_host(const vklm_dist *d) { return d ? d->host : "localhost"; }
double vklm_dist_timeout_s(const vklm_dist *d) { return d ? d->timeout_s : 600; }

void vklm_dist_device_choice(const vklm_dist *d, const char *want, int ndev, char *out,
                             size_t outlen) {
  int lr = vklm_dist_local_rank(d);
  if (want && strchr(want, ',')) {
    int n = 1;
    for (const char *p = want; *p; p++) n += *p == ',';
    int k = lr % n;
    const char *s = want;
    for (int i = 0; i < k; i++) s = strchr(s, ',') + 1;
    size_t len = strcspn(s, ",");
    if (len >= outlen) len = outlen - 1;
    memcpy(out, s, len);
    out[len] = 0;
  } else if ((!want || !*want) && vklm_dist_local_size(d) > 1 && ndev > 1) {
    snprintf(out, outlen, "%d", lr % ndev);
  } else {
    snprintf(out, outlen, "%s", want ? want : "");
  }
}

void vklm_dist_abort(vklm_dist *d, const char *msg) {
  fprintf(stderr, "vklm: rank %d (%s): %s; ending the job\n", vklm_dist_rank(d),
          vklm_dist_host(d), msg);
  fflush(stderr);
  if (d && d->size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Waits for n requests until the deadline; on timeout, aborts the job naming `what` and, when
 * who is given, the peers (who[i]: the rank of request i) that have not answered. */
static void wait_all(vklm_dist *d, MPI_Request *req, int n, const int *who, const char *what) {
  double deadline = now_s() + d->timeout_s;
  int *done = calloc((size_t)n, sizeof *done);
  long nap = 20000; /* ns between polls, doubling to 2 ms: little CPU taken from busy ranks */
  for (;;) {
    int all = 1;
    for (int i = 0; i < n; i++) {
      if (done && done[i]) continue;
      int f = 0;
      if (MPI_Test(&req[i], &f, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        char m[256];
        snprintf(m, sizeof m, "MPI failed during %s", what);
        free(done);
        vklm_dist_abort(d, m);
        return;
      }
      if (f && done) done[i] = 1;
      if (!f) all = 0;
    }
    if (all) break;
    if (now_s() > deadline) {
      char m[1024];
      int k = snprintf(m, sizeof m, "no answer within %.0f s during %s", d->timeout_s, what);
      if (who && done) {
        k += snprintf(m + k, sizeof m - (size_t)k, " from rank(s)");
        for (int i = 0; i < n && k < (int)sizeof m - 16; i++) {
          int seen = 0; /* a rank with a send and a receive pending is named once */
          for (int j = 0; j < i; j++) seen |= !done[j] && who[j] == who[i];
          if (!done[i] && !seen) k += snprintf(m + k, sizeof m - (size_t)k, " %d", who[i]);
        }
      }
      snprintf(m + k, sizeof m - (size_t)k, " (a rank hung or died)");
      free(done);
      vklm_dist_abort(d, m);
      return;
    }
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
    if (nap < 2000000) nap *= 2;
  }
  free(done);
}

vklm_status vklm_dist_exchange(vklm_dist *d, const char *what, int ok, vklm_status code,
                               const char *msg, int flag, double *vals, int n, int *any_flag,
                               int *failed_rank, char *err, size_t errlen) {
  VKLM_ASSERT(n >= 0 && n <= VKLM_DIST_MAX_VALS, "exchange of %d values", n);
  if (any_flag) *any_flag = flag;
  if (failed_rank) *failed_rank = -1;
  if (!d || d->size == 1) {
    if (ok) return VKLM_OK;
    if (failed_rank) *failed_rank = 0;
    snprintf(err, errlen, "%s", msg ? msg : "failed");
    return code != VKLM_OK ? code : VKLM_ERROR_INVALID;
  }
  record mine = {.ok = ok, .flag = flag, .code = (int32_t)code, .rank = d->rank};
  for (int i = 0; i < n; i++) mine.vals[i] = vals[i];
  snprintf(mine.host, sizeof mine.host, "%s", d->host);
  snprintf(mine.msg, sizeof mine.msg, "%s", msg && !ok ? msg : "");
  verdict v;
  memset(&v, 0, sizeof v);
  char wbuf[160];
  if (d->rank == 0) {
    record *all = calloc((size_t)d->size, sizeof *all);
    MPI_Request *req = calloc((size_t)d->size, sizeof *req);
    int *who = calloc((size_t)d->size, sizeof *who);
    if (!all || !req || !who) {
      free(all), free(req), free(who);
      vklm_dist_abort(d, "out of host memory");
      return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    all[0] = mine;
    for (int r = 1; r < d->size; r++) {
      MPI_Irecv(&all[r], (int)sizeof(record), MPI_BYTE, r, TAG_UP, MPI_COMM_WORLD, &req[r - 1]);
      who[r - 1] = r;
    }
    snprintf(wbuf, sizeof wbuf, "the status exchange of %s", what);
    wait_all(d, req, d->size - 1, who, wbuf);
    v.failed_rank = -1;
    for (int r = 0; r < d->size; r++) { /* rank order: the sums are the same on every run */
      if (!all[r].ok && v.failed_rank < 0) {
        v.failed_rank = r;
        v.code = all[r].code;
        snprintf(v.msg, sizeof v.msg, "rank %d (%s) failed during %s: %s", r, all[r].host, what,
                 all[r].msg[0] ? all[r].msg : "(no message)");
      }
      v.flag |= all[r].flag;
      for (int i = 0; i < n; i++) v.vals[i] = r == 0 ? all[r].vals[i] : v.vals[i] + all[r].vals[i];
    }
    for (int r = 1; r < d->size; r++)
      MPI_Isend(&v, (int)sizeof v, MPI_BYTE, r, TAG_DOWN, MPI_COMM_WORLD, &req[r - 1]);
    snprintf(wbuf, sizeof wbuf, "the verdict of %s", what);
    wait_all(d, req, d->size - 1, who, wbuf);
    free(all), free(req), free(who);
  } else {
    MPI_Request req[2];
    MPI_Isend(&mine, (int)sizeof mine, MPI_BYTE, 0, TAG_UP, MPI_COMM_WORLD, &req[0]);
    MPI_Irecv(&v, (int)sizeof v, MPI_BYTE, 0, TAG_DOWN, MPI_COMM_WORLD, &req[1]);
    int who[2] = {0, 0};
    snprintf(wbuf, sizeof wbuf, "the status exchange of %s", what);
    wait_all(d, req, 2, who, wbuf);
  }
  if (any_flag) *any_flag = v.flag;
  if (v.failed_rank >= 0) {
    if (failed_rank) *failed_rank = v.failed_rank;
    snprintf(err, errlen, "%s", v.msg);
    return v.code != VKLM_OK ? (vklm_status)v.code : VKLM_ERROR_INVALID;
  }
  for (int i = 0; i < n; i++) vals[i] = v.vals[i];
  return VKLM_OK;
}

void vklm_dist_shard(const vklm_dist *d, uint64_t n, uint64_t *lo, uint64_t *hi) {
  uint64_t N = (uint64_t)vklm_dist_size(d), r = (uint64_t)vklm_dist_rank(d);
  *lo = n * r / N;
  *hi = n * (r + 1) / N;
}

static vklm_status too_long(vklm_dist *d, uint64_t n, char *err, size_t errlen) {
  if (n <= (uint64_t)INT_MAX) return VKLM_OK;
  snprintf(err, errlen, "rank %d: a vector of %llu floats is longer than MPI's int counts allow",
           d->rank, (unsigned long long)n);
  return VKLM_ERROR_UNSUPPORTED;
}

/* Point-to-point exchanges (not MPI's collectives), so that a timeout can name the ranks whose
 * messages did not arrive. req/who: room for 2(N-1) requests. */
typedef struct p2p {
  MPI_Request *req;
  int *who, n;
} p2p;

static vklm_status p2p_open(vklm_dist *d, p2p *p, char *err, size_t errlen) {
  p->n = 0;
  p->req = calloc(2 * (size_t)d->size, sizeof *p->req);
  p->who = calloc(2 * (size_t)d->size, sizeof *p->who);
  if (p->req && p->who) return VKLM_OK;
  free(p->req), free(p->who);
  snprintf(err, errlen, "rank %d: out of host memory", d->rank);
  return VKLM_ERROR_OUT_OF_HOST_MEMORY;
}

static void p2p_recv(p2p *p, void *buf, int count, MPI_Datatype t, int from, int tag) {
  MPI_Irecv(buf, count, t, from, tag, MPI_COMM_WORLD, &p->req[p->n]);
  p->who[p->n++] = from;
}

static void p2p_send(p2p *p, const void *buf, int count, MPI_Datatype t, int to, int tag) {
  MPI_Isend(buf, count, t, to, tag, MPI_COMM_WORLD, &p->req[p->n]);
  p->who[p->n++] = to;
}

static void p2p_wait(vklm_dist *d, p2p *p, const char *what) {
  wait_all(d, p->req, p->n, p->who, what);
  p->n = 0;
}

static void p2p_close(p2p *p) {
  free(p->req);
  free(p->who);
}

/* Shard j of a vector of n, [n*j/N, n*(j+1)/N), clipped to the range [lo, hi). */
static void shard_in(uint64_t n, int j, int N, uint64_t lo, uint64_t hi, uint64_t *a,
                     uint64_t *b) {
  *a = n * (uint64_t)j / (uint64_t)N;
  *b = n * (uint64_t)(j + 1) / (uint64_t)N;
  if (*a < lo) *a = lo;
  if (*b > hi) *b = hi;
  if (*b < *a) *b = *a;
}

vklm_status vklm_dist_reduce_scatter_range_f32(vklm_dist *d, float *x, uint64_t n, uint64_t from,
                                               uint64_t to, char *err, size_t errlen) {
  if (!d || d->size == 1 || from >= to) return VKLM_OK;
  VKLM_ASSERT(to <= n, "reduce-scatter of [%llu, %llu) in a vector of %llu",
              (unsigned long long)from, (unsigned long long)to, (unsigned long long)n);
  vklm_status st = too_long(d, n, err, errlen);
  p2p p;
  if (st != VKLM_OK || (st = p2p_open(d, &p, err, errlen)) != VKLM_OK) return st;
  int N = d->size, me = d->rank;
  /* Rounds of R floats of every shard: the receive buffer holds N x R floats. */
  uint64_t R = SEG / (uint64_t)N, lo, hi, a, b, longest = 0;
  for (int j = 0; j < N; j++) {
    shard_in(n, j, N, from, to, &a, &b);
    if (b - a > longest) longest = b - a;
  }
  shard_in(n, me, N, from, to, &lo, &hi);
  for (uint64_t at = 0; at < longest; at += R) {
    uint64_t mine = at < hi - lo ? (hi - lo - at < R ? hi - lo - at : R) : 0;
    for (int i = 0; i < N; i++) /* every rank's part of my shard */
      if (i != me) p2p_recv(&p, d->scratch + (size_t)i * R, (int)mine, MPI_FLOAT, i, TAG_RS);
    for (int j = 0; j < N; j++) { /* my part of every rank's shard */
      shard_in(n, j, N, from, to, &a, &b);
      uint64_t k = at < b - a ? (b - a - at < R ? b - a - at : R) : 0;
      if (j != me) p2p_send(&p, x + a + (k ? at : 0), (int)k, MPI_FLOAT, j, TAG_RS);
    }
    memcpy(d->scratch + (size_t)me * R, x + lo + at, mine * sizeof(float));
    p2p_wait(d, &p, "the gradient reduce-scatter");
    /* my shard: the ranks' contributions added in rank order */
    float *dst = x + lo + at;
    for (uint64_t k = 0; k < mine; k++) dst[k] = d->scratch[k];
    for (int i = 1; i < N; i++) {
      const float *src = d->scratch + (size_t)i * R;
      for (uint64_t k = 0; k < mine; k++) dst[k] += src[k];
    }
  }
  p2p_close(&p);
  return VKLM_OK;
}

vklm_status vklm_dist_allgather_range_f32(vklm_dist *d, float *x, uint64_t n, uint64_t from,
                                          uint64_t to, char *err, size_t errlen) {
  if (!d || d->size == 1 || from >= to) return VKLM_OK;
  VKLM_ASSERT(to <= n, "all-gather of [%llu, %llu) in a vector of %llu",
              (unsigned long long)from, (unsigned long long)to, (unsigned long long)n);
  vklm_status st = too_long(d, n, err, errlen);
  p2p p;
  if (st != VKLM_OK || (st = p2p_open(d, &p, err, errlen)) != VKLM_OK) return st;
  int N = d->size, me = d->rank;
  uint64_t lo, hi, a, b;
  shard_in(n, me, N, from, to, &lo, &hi);
  for (int j = 0; j < N; j++) {
    if (j == me) continue;
    shard_in(n, j, N, from, to, &a, &b);
    p2p_recv(&p, x + a, (int)(b - a), MPI_FLOAT, j, TAG_AG);
    p2p_send(&p, x + lo, (int)(hi - lo), MPI_FLOAT, j, TAG_AG);
  }
  p2p_wait(d, &p, "an all-gather");
  p2p_close(&p);
  return VKLM_OK;
}

vklm_status vklm_dist_reduce_scatter_f32(vklm_dist *d, float *x, uint64_t n, char *err,
                                         size_t errlen) {
  return vklm_dist_reduce_scatter_range_f32(d, x, n, 0, n, err, errlen);
}

vklm_status vklm_dist_allgather_f32(vklm_dist *d, float *x, uint64_t n, char *err,
                                    size_t errlen) {
  return vklm_dist_allgather_range_f32(d, x, n, 0, n, err, errlen);
}

vklm_status vklm_dist_sum_range_f32(vklm_dist *d, float *x, uint64_t n, uint64_t from,
                                    uint64_t to, char *err, size_t errlen) {
  vklm_status st = vklm_dist_reduce_scatter_range_f32(d, x, n, from, to, err, errlen);
  return st != VKLM_OK ? st : vklm_dist_allgather_range_f32(d, x, n, from, to, err, errlen);
}

vklm_status vklm_dist_sum_f32(vklm_dist *d, float *x, uint64_t n, char *err, size_t errlen) {
  return vklm_dist_sum_range_f32(d, x, n, 0, n, err, errlen);
}

vklm_status vklm_dist_bcast(vklm_dist *d, void *buf, uint64_t bytes, char *err, size_t errlen) {
  if (!d || d->size == 1) return VKLM_OK;
  p2p p;
  vklm_status st = p2p_open(d, &p, err, errlen);
  if (st != VKLM_OK) return st;
  for (uint64_t done = 0; done < bytes;) {
    uint64_t k = bytes - done < (1ull << 30) ? bytes - done : (1ull << 30);
    char *at = (char *)buf + done;
    if (d->rank == 0)
      for (int j = 1; j < d->size; j++) p2p_send(&p, at, (int)k, MPI_BYTE, j, TAG_BC);
    else
      p2p_recv(&p, at, (int)k, MPI_BYTE, 0, TAG_BC);
    p2p_wait(d, &p, "a broadcast from rank 0");
    done += k;
  }
  p2p_close(&p);
  return VKLM_OK;
}

vklm_status vklm_dist_gather_f64(vklm_dist *d, double x, double *out, char *err, size_t errlen) {
  (void)err, (void)errlen;
  if (!d || d->size == 1) {
    out[0] = x;
    return VKLM_OK;
  }
  MPI_Request req;
  MPI_Iallgather(&x, 1, MPI_DOUBLE, out, 1, MPI_DOUBLE, MPI_COMM_WORLD, &req);
  wait_all(d, &req, 1, NULL, "a gather of figures");
  return VKLM_OK;
}

/* engine/dist against plain C references, on 3 ranks (the test starts itself under
 * `mpirun --oversubscribe -np 3` when it was not launched by MPI): the fixed-order sum of float
 * vectors is bit-identical to ((x0 + x1) + x2) computed on one rank, for lengths that do not
 * divide by 3 and lengths below 3; the reduce-scatter leaves each rank its shard; the all-gather
 * gives every rank every shard; the status exchange sums in rank order, ORs the flags and names
 * the lowest failed rank with its message; a group of one makes every call a no-op; a rank that
 * never joins a reduce-scatter makes the others abort after VKLM_DIST_TIMEOUT, naming it. No GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist.h"

static int failures, passes, rank_;

static void expect(int ok, const char *fmt, const char *what) {
  if (ok) passes++;
  else failures++;
  if (rank_ == 0 || !ok) printf("  %s  [rank %d] %s%s\n", ok ? "ok  " : "FAIL", rank_, fmt, what);
}

/* Rank r's vector: deterministic values of varied magnitudes (so that the order of additions
 * changes the rounding). */
static float value(int r, uint64_t i) {
  uint64_t s = (i + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)(r + 1) << 40);
  s ^= s >> 31;
  s *= 0xBF58476D1CE4E5B9ull;
  s ^= s >> 27;
  double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
  double scale = (i % 7 == 0) ? 1e4 : (i % 3 == 0) ? 1e-3 : 1.0;
  return (float)(u * scale * (r + 1));
}

static void test_sum(vklm_dist *d, uint64_t n) {
  int N = vklm_dist_size(d), me = vklm_dist_rank(d);
  float *x = malloc((n + 1) * sizeof(float)), *ref = malloc((n + 1) * sizeof(float));
  for (uint64_t i = 0; i < n; i++) {
    x[i] = value(me, i);
    ref[i] = value(0, i);
    for (int r = 1; r < N; r++) ref[i] += value(r, i); /* rank order, in float */
  }
  char err[512], what[128];
  vklm_status st = vklm_dist_sum_f32(d, x, n, err, sizeof err);
  int same = st == VKLM_OK && (n == 0 || !memcmp(x, ref, n * sizeof(float)));
  snprintf(what, sizeof what, "sum of %llu floats over %d ranks: bit-identical to the rank-order "
           "reference", (unsigned long long)n, N);
  expect(same, "", what);
  /* the reduce-scatter alone: this rank's shard summed, the rest untouched */
  for (uint64_t i = 0; i < n; i++) x[i] = value(me, i);
  uint64_t lo, hi;
  vklm_dist_shard(d, n, &lo, &hi);
  st = vklm_dist_reduce_scatter_f32(d, x, n, err, sizeof err);
  int ok = st == VKLM_OK;
  for (uint64_t i = 0; i < n && ok; i++)
    ok = i >= lo && i < hi ? x[i] == ref[i] : x[i] == value(me, i);
  snprintf(what, sizeof what, "reduce-scatter of %llu: shard [%llu, %llu) summed, the rest kept",
           (unsigned long long)n, (unsigned long long)lo, (unsigned long long)hi);
  expect(ok, "", what);
  /* the all-gather: every rank's shard (its rank number) everywhere */
  for (uint64_t i = 0; i < n; i++) x[i] = i >= lo && i < hi ? (float)me : -1.0f;
  st = vklm_dist_allgather_f32(d, x, n, err, sizeof err);
  ok = st == VKLM_OK;
  for (int r = 0; r < N && st == VKLM_OK; r++) {
    uint64_t a = n * (uint64_t)r / (uint64_t)N, b = n * (uint64_t)(r + 1) / (uint64_t)N;
    for (uint64_t i = a; i < b; i++) ok &= x[i] == (float)r;
  }
  snprintf(what, sizeof what, "all-gather of %llu: every rank's shard on every rank",
           (unsigned long long)n);
  expect(ok, "", what);
  free(x);
  free(ref);
}

static void test_exchange(vklm_dist *d) {
  int N = vklm_dist_size(d), me = vklm_dist_rank(d);
  char err[512];
  double v[2] = {0.1 * (me + 1), 1e16 * (me == 0 ? 1 : -1)};
  double want0 = 0.1, want1 = 1e16;
  for (int r = 1; r < N; r++) {
    want0 += 0.1 * (r + 1);
    want1 += -1e16;
  }
  int flag = 0, failed = 7;
  vklm_status st = vklm_dist_exchange(d, "test", 1, VKLM_OK, NULL, me == N - 1, v, 2, &flag,
                                      &failed, err, sizeof err);
  expect(st == VKLM_OK && v[0] == want0 && v[1] == want1 && flag == (N > 0) && failed == -1, "",
         "exchange: values summed in rank order, flags ORed, nobody failed");
  /* ranks 1 and 2 fail: the lowest is named, with its message and status, on every rank */
  int bad = me >= 1;
  char msg[64];
  snprintf(msg, sizeof msg, "disk %d on fire", me);
  st = vklm_dist_exchange(d, "step 5", !bad, bad ? VKLM_ERROR_IO : VKLM_OK, bad ? msg : NULL, 0,
                          NULL, 0, NULL, &failed, err, sizeof err);
  expect(N < 2 || (st == VKLM_ERROR_IO && failed == 1 && strstr(err, "rank 1") &&
                   strstr(err, "step 5") && strstr(err, "disk 1 on fire")),
         "exchange with ranks 1 and 2 failing: ", err);
}

static void test_device_choice(vklm_dist *d) {
  char out[64];
  int lr = vklm_dist_local_rank(d);
  vklm_dist_device_choice(d, "0,1,2", 3, out, sizeof out);
  char want[8];
  snprintf(want, sizeof want, "%d", lr % 3);
  expect(!strcmp(out, want), "device list '0,1,2' -> this local rank's entry ", out);
  vklm_dist_device_choice(d, "NVIDIA", 2, out, sizeof out);
  expect(!strcmp(out, "NVIDIA"), "a single --device is kept: ", out);
}

int main(int argc, char **argv) {
  if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) {
    /* the group of one first, then the same test on 3 ranks */
    vklm_dist *d = NULL;
    char err[256];
    if (vklm_dist_init(&d, err, sizeof err) != VKLM_OK) {
      printf("FAIL dist init: %s\n", err);
      return 1;
    }
    float x[3] = {1, 2, 3};
    int ok = vklm_dist_size(d) == 1 && vklm_dist_rank(d) == 0 &&
             vklm_dist_sum_f32(d, x, 3, err, sizeof err) == VKLM_OK && x[0] == 1 && x[2] == 3;
    vklm_dist_finalize(d);
    printf("  %s  no launcher: a group of one, sums unchanged\n", ok ? "ok  " : "FAIL");
    if (!ok) return 1;
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    fflush(stdout);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mpirun --oversubscribe --bind-to none -np 3 '%s'", argv[0]);
    int rc = system(cmd);
    if (rc != 0) {
      printf("FAIL the 3-rank run (exit status %d; is openmpi-bin installed?)\n", rc);
      return 1;
    }
    /* rank 2 never joins: ranks 0 and 1 must give up after 2 s, naming it */
    snprintf(cmd, sizeof cmd, "VKLM_DIST_TIMEOUT=2 mpirun --oversubscribe --bind-to none -np 3 "
             "-x VKLM_DIST_TIMEOUT '%s' hang 2>&1", argv[0]);
    FILE *p = popen(cmd, "r");
    char out[16384] = "";
    size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[got] = 0;
    int st = p ? pclose(p) : -1;
    ok = st != 0 && strstr(out, "no answer within 2 s during the gradient reduce-scatter from "
                                "rank(s) 2");
    printf("  %s  a rank that never joins: the job aborts naming it (exit status %d)\n",
           ok ? "ok  " : "FAIL", st);
    if (!ok) printf("%s\n", out);
    return ok ? 0 : 1;
  }
  if (argc > 1 && !strcmp(argv[1], "hang")) {
    vklm_dist *d = NULL;
    char err[256];
    float x[1000] = {0};
    if (vklm_dist_init(&d, err, sizeof err) != VKLM_OK) return 1;
    if (vklm_dist_rank(d) == 2) {
      sleep(30); /* hung: mpirun ends it when the others abort */
      return 1;
    }
    vklm_dist_reduce_scatter_f32(d, x, 1000, err, sizeof err); /* does not return */
    vklm_dist_finalize(d);
    return 0;
  }
  vklm_dist *d = NULL;
  char err[256];
  if (vklm_dist_init(&d, err, sizeof err) != VKLM_OK) {
    printf("FAIL dist init: %s\n", err);
    return 1;
  }
  rank_ = vklm_dist_rank(d);
  if (rank_ == 0) printf("test_dist_reduce: %d ranks\n", vklm_dist_size(d));
  expect(vklm_dist_size(d) == 3, "", "3 ranks");
  uint64_t sizes[] = {0, 1, 2, 3, 1000, 1000003, (1ull << 24) + 5};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) test_sum(d, sizes[i]);
  test_exchange(d);
  test_device_choice(d);
  /* every rank's verdict: the job fails if any rank saw a failure */
  double f[1] = {(double)failures};
  vklm_dist_exchange(d, "the verdict", 1, VKLM_OK, NULL, 0, f, 1, NULL, NULL, err, sizeof err);
  if (rank_ == 0) printf("%d passed, %.0f failed (all ranks)\n", passes, f[0]);
  vklm_dist_finalize(d);
  return f[0] > 0 ? 1 : 0;
}

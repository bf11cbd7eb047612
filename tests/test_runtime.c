/* Runtime tests (VKLM_TEST_GPU): capabilities, arenas and their split at the storage-buffer
 * range, uploads and downloads on both the direct and the staged path, pipelines reflected from
 * SPIR-V, dependency-driven barriers, replay of a recorded command buffer, the on-disk pipeline
 * cache, two contexts in one process, and clear errors for bad requests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ops/ops.h"
#include "testutil.h"

static void test_caps(vt_env *env) {
  const vklm_caps *c = vklm_context_caps(env->ctx);
  vt_expect(env, c->name[0] != 0, "device has a name: %s (%s, driver %s %s)", c->name, c->vendor,
            c->driver_name, c->driver_version_str);
  vt_expect(env, c->max_workgroup_invocations >= 128, "max invocations %u >= 128", c->max_workgroup_invocations);
  vt_expect(env, c->max_shared_memory >= 16384, "shared memory %u >= 16384", c->max_shared_memory);
  vt_expect(env, c->subgroup_size >= 1, "subgroup size %u (range %u..%u)", c->subgroup_size, c->subgroup_min, c->subgroup_max);
  vt_expect(env, c->heap_count >= 1 && c->device_local_bytes > 0, "%d heaps, %.0f MiB device-local", c->heap_count,
            c->device_local_bytes / 1048576.0);
  if (c->baseline)
    vt_expect(env, c->max_shared_memory == 16384 && c->max_workgroup_invocations == 128 &&
                       c->max_storage_buffer_range == (1u << 27) && !c->fp16_arithmetic,
              "baseline limits are the spec minimums");
}

static void test_arena(vt_env *env) {
  vklm_context *ctx = env->ctx;
  uint32_t align = vklm_buffer_alignment(ctx);
  vklm_arena *a;
  vt_ok(env, vklm_arena_create(ctx, 1 << 20, &a), "arena");
  vklm_buffer b[5];
  for (int i = 0; i < 5; i++) vt_ok(env, vklm_arena_alloc(a, 300000 + 7 * i, &b[i]), "alloc");
  int aligned = 1, disjoint = 1;
  for (int i = 0; i < 5; i++) {
    aligned &= b[i].offset % align == 0;
    for (int j = 0; j < i; j++)
      if (b[i].block == b[j].block && b[i].offset < b[j].offset + b[j].size && b[j].offset < b[i].offset + b[i].size)
        disjoint = 0;
  }
  vt_expect(env, aligned && disjoint, "5 buffers aligned to %u and disjoint", align);
  vt_expect(env, vklm_arena_block_count(a) == 2, "1 MiB blocks: 1.5 MB in %u blocks (want 2)", vklm_arena_block_count(a));
  /* A block larger than the storage-buffer range is split: the arena clamps its block size. */
  vklm_arena *big;
  vt_ok(env, vklm_arena_create(ctx, 1ull << 40, &big), "arena");
  vklm_buffer x;
  vt_ok(env, vklm_arena_alloc(big, 1 << 20, &x), "alloc");
  vt_expect(env, vklm_arena_reserved(big) <= vklm_context_caps(ctx)->max_storage_buffer_range,
            "a 1 TiB block request is clamped to maxStorageBufferRange (%.0f MiB reserved)",
            vklm_arena_reserved(big) / 1048576.0);
  vklm_arena_destroy(big);
  /* Too big for one binding: a clear error, no crash. */
  vklm_status st = vklm_arena_alloc(a, vklm_context_caps(ctx)->max_storage_buffer_range + 4096, &x);
  vt_expect(env, st == VKLM_ERROR_INVALID && strstr(vklm_context_error(ctx), "maxStorageBufferRange"),
            "oversized buffer refused: %s", vklm_context_error(ctx));
  /* Round trip of data through a buffer. */
  float *src = vt_randf(77777, 1, -1, 1);
  vklm_buffer r;
  vt_ok(env, vklm_arena_alloc(a, 77777 * 4, &r), "alloc");
  vt_ok(env, vklm_buffer_upload(ctx, r, 0, src, 77777 * 4), "upload");
  float *back = vt_download(env, r, 77777);
  vt_expect(env, !memcmp(src, back, 77777 * 4), "upload/download round trip of 77777 floats (%s)",
            vklm_context_config(ctx)->force_staging ? "staged" : "default path");
  st = vklm_buffer_download(ctx, r, 8, back, 77777 * 4);
  vt_expect(env, st == VKLM_ERROR_INVALID, "download past the end refused: %s", vklm_context_error(ctx));
  free(src);
  free(back);
  vklm_arena_destroy(a);
}

static void test_staged(vt_env *env) {
  /* A second context forced onto the staging path (what discrete GPUs use). */
  vklm_config cfg = *vklm_context_config(env->ctx);
  cfg.force_staging = 1;
  vklm_context *ctx;
  char err[512];
  vt_ok(env, vklm_context_create(&cfg, &ctx, err, sizeof err), "staged context");
  vklm_arena *a;
  vt_ok(env, vklm_arena_create(ctx, 0, &a), "arena");
  size_t n = (70u << 20) / 4 + 3; /* larger than the 64 MiB staging buffer: chunked */
  float *src = vt_randf(n, 2, -1, 1);
  vklm_buffer b;
  vt_ok(env, vklm_arena_alloc(a, n * 4, &b), "alloc");
  vt_ok(env, vklm_buffer_upload(ctx, b, 0, src, n * 4), "upload");
  vklm_cmd *cmd;
  vt_ok(env, vklm_cmd_create(ctx, &cmd), "cmd");
  vt_ok(env, vklm_cmd_begin(cmd), "begin");
  vt_ok(env, vklm_scale(cmd, b, 2.0f, (uint32_t)n), "scale");
  vt_ok(env, vklm_cmd_end(cmd), "end");
  vt_ok(env, vklm_cmd_run(cmd), "run");
  float *back = malloc(n * 4);
  vt_ok(env, vklm_buffer_download(ctx, b, 0, back, n * 4), "download");
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += back[i] != 2.0f * src[i];
  vt_expect(env, bad == 0, "staged path: upload %.1f MiB, scale on GPU, download: %zu mismatches", n * 4 / 1048576.0, bad);
  vt_expect(env, vklm_context_validation_count(ctx) == 0, "staged context: no validation messages");
  env->failures += 0;
  free(src);
  free(back);
  vklm_cmd_destroy(cmd);
  vklm_arena_destroy(a);
  vklm_context_destroy(ctx);
}

/* Two contexts (two devices, or the same one twice) in one process: each has its own table of
 * device functions (volkLoadDeviceTable), so work interleaves on both, and the first keeps
 * working after the second is destroyed. */
static void test_two_contexts(vt_env *env) {
  vklm_context *ctx[2] = {env->ctx, NULL};
  char err[512];
  vt_ok(env, vklm_context_create(vklm_context_config(env->ctx), &ctx[1], err, sizeof err),
        "second context");
  if (!ctx[1]) return;
  size_t n = 100003;
  float *src = vt_randf(n, 3, -1, 1), *back = malloc(n * 4);
  vklm_arena *a[2] = {NULL, NULL};
  vklm_cmd *cmd[2] = {NULL, NULL};
  vklm_buffer b[2];
  for (int k = 0; k < 2; k++) {
    vt_ok(env, vklm_arena_create(ctx[k], 0, &a[k]), "arena");
    vt_ok(env, vklm_arena_alloc(a[k], n * 4, &b[k]), "alloc");
    vt_ok(env, vklm_buffer_upload(ctx[k], b[k], 0, src, n * 4), "upload");
    vt_ok(env, vklm_cmd_create(ctx[k], &cmd[k]), "cmd");
    vt_ok(env, vklm_cmd_begin(cmd[k]), "begin");
    vt_ok(env, vklm_scale(cmd[k], b[k], k ? 3.0f : 2.0f, (uint32_t)n), "scale");
    vt_ok(env, vklm_cmd_end(cmd[k]), "end");
  }
  for (int k = 0; k < 2; k++) vt_ok(env, vklm_cmd_submit(cmd[k]), "submit"); /* both in flight */
  size_t bad = 0;
  for (int k = 1; k >= 0; k--) {
    vt_ok(env, vklm_cmd_wait(cmd[k]), "wait");
    vt_ok(env, vklm_buffer_download(ctx[k], b[k], 0, back, n * 4), "download");
    for (size_t i = 0; i < n; i++) bad += back[i] != (k ? 3.0f : 2.0f) * src[i];
  }
  vt_expect(env, bad == 0, "two contexts at once: x2 on one, x3 on the other, %zu mismatches", bad);
  vt_expect(env, vklm_context_validation_count(ctx[1]) == 0, "second context: no validation messages");
  vklm_cmd_destroy(cmd[1]);
  vklm_arena_destroy(a[1]);
  vklm_context_destroy(ctx[1]);
  vt_ok(env, vklm_cmd_run(cmd[0]), "replay on the first after the second is gone");
  vt_ok(env, vklm_buffer_download(ctx[0], b[0], 0, back, n * 4), "download");
  bad = 0;
  for (size_t i = 0; i < n; i++) bad += back[i] != 4.0f * src[i];
  vt_expect(env, bad == 0, "the first context still works after the second is destroyed (%zu bad)", bad);
  vklm_cmd_destroy(cmd[0]);
  vklm_arena_destroy(a[0]);
  /* A context without validation after one with it: volk's instance-level pointers are global,
   * and the second instance's debug-utils pointer is NULL; destroying the first context (at the
   * end of this test) must still use its own (it crashed in vt_finish before). */
  vklm_config quiet = *vklm_context_config(env->ctx);
  quiet.validate = 0;
  vklm_context *plain = NULL;
  vt_ok(env, vklm_context_create(&quiet, &plain, err, sizeof err), "a context without validation");
  vklm_context_destroy(plain);
  free(src);
  free(back);
}

static void test_pipeline(vt_env *env) {
  vklm_pipeline *p;
  uint32_t wg = 64;
  vt_ok(env, vklm_pipeline_get(env->ctx, "scale_f32", &wg, 1, &p), "pipeline");
  const vklm_pipeline_info *in = vklm_pipeline_get_info(p);
  vt_expect(env, in->binding_count == 1 && !in->readonly[0] && in->push_size == 8 && in->local_size[0] == 64,
            "scale_f32 reflected: %u binding(s), read-write, %u push bytes, local size %u",
            in->binding_count, in->push_size, in->local_size[0]);
  vt_ok(env, vklm_pipeline_get(env->ctx, "fill_f32", &wg, 1, &p), "pipeline");
  in = vklm_pipeline_get_info(p);
  vt_expect(env, in->writeonly[0], "fill_f32 binding 0 reflected as write-only");
  vklm_pipeline *p2;
  vt_ok(env, vklm_pipeline_get(env->ctx, "fill_f32", &wg, 1, &p2), "pipeline");
  vt_expect(env, p == p2, "same (name, spec) gives the cached pipeline");
  vklm_status st = vklm_pipeline_get(env->ctx, "no_such_shader", NULL, 0, &p);
  vt_expect(env, st == VKLM_ERROR_NOT_FOUND, "unknown shader: %s", vklm_context_error(env->ctx));
  wg = 100000;
  st = vklm_pipeline_get(env->ctx, "fill_f32", &wg, 1, &p);
  vt_expect(env, st == VKLM_ERROR_INVALID, "oversized workgroup refused: %s", vklm_context_error(env->ctx));
}

static void test_barriers_and_replay(vt_env *env) {
  uint32_t n = 1000003; /* not a multiple of any workgroup size */
  vklm_buffer a = vt_alloc(env, n * 4), b = vt_alloc(env, n * 4);
  vt_begin(env);
  vt_ok(env, vklm_fill(env->cmd, a, 1.5f, n), "fill");
  vt_ok(env, vklm_fill(env->cmd, b, -2.0f, n), "fill");   /* independent: no barrier */
  uint32_t before = vklm_cmd_barrier_count(env->cmd);
  vt_ok(env, vklm_scale(env->cmd, a, 3.0f, n), "scale"); /* reads a: barrier */
  vt_run(env);
  vt_expect(env, before == 0 && vklm_cmd_barrier_count(env->cmd) == 1,
            "barriers: 0 between independent fills, 1 before the dependent scale (%u total)",
            vklm_cmd_barrier_count(env->cmd));
  float *x = vt_download(env, a, n), *y = vt_download(env, b, n);
  float *wa = vt_zeros(n), *wb = vt_zeros(n);
  vklm_fill_ref(wa, 1.5f, n);
  vklm_scale_ref(wa, 3.0f, n);
  vklm_fill_ref(wb, -2.0f, n);
  vt_compare(env, "fill + scale", x, wa, n, 0);
  vt_compare(env, "fill", y, wb, n, 0);
  /* Replay: record x *= 2 once, submit three times. */
  vt_begin(env);
  vt_ok(env, vklm_scale(env->cmd, a, 2.0f, n), "scale");
  vt_ok(env, vklm_cmd_end(env->cmd), "end");
  for (int i = 0; i < 3; i++) vt_ok(env, vklm_cmd_run(env->cmd), "replay");
  free(x);
  x = vt_download(env, a, n);
  vklm_scale_ref(wa, 8.0f, n);
  vt_compare(env, "replayed scale x3", x, wa, n, 0);
  free(x); free(y); free(wa); free(wb);
}

static void test_timestamps(vt_env *env) {
  vklm_config cfg = *vklm_context_config(env->ctx);
  cfg.timestamps = 1;
  vklm_context *ctx;
  char err[512];
  vt_ok(env, vklm_context_create(&cfg, &ctx, err, sizeof err), "context");
  if (!vklm_context_caps(ctx)->timestamps) {
    printf("  (device has no compute timestamps)\n");
    vklm_context_destroy(ctx);
    return;
  }
  vklm_arena *a;
  vklm_cmd *cmd;
  vklm_buffer b;
  vt_ok(env, vklm_arena_create(ctx, 0, &a), "arena");
  vt_ok(env, vklm_arena_alloc(a, 4 << 20, &b), "alloc");
  vt_ok(env, vklm_cmd_create(ctx, &cmd), "cmd");
  vt_ok(env, vklm_cmd_begin(cmd), "begin");
  vt_ok(env, vklm_fill(cmd, b, 1, 1 << 20), "fill");
  vt_ok(env, vklm_scale(cmd, b, 2, 1 << 20), "scale");
  vt_ok(env, vklm_cmd_end(cmd), "end");
  vt_ok(env, vklm_cmd_run(cmd), "run");
  vklm_timing t[4];
  uint32_t nt;
  vt_ok(env, vklm_cmd_timings(cmd, t, 4, &nt), "timings");
  vt_expect(env, nt == 2 && !strcmp(t[0].name, "fill_f32") && t[0].ms >= 0 && t[1].ms >= 0,
            "timestamps: %u dispatches timed (%s %.3f ms, %s %.3f ms)", nt, nt ? t[0].name : "-",
            nt ? t[0].ms : 0, nt > 1 ? t[1].name : "-", nt > 1 ? t[1].ms : 0);
  vklm_cmd_destroy(cmd);
  vklm_arena_destroy(a);
  vklm_context_destroy(ctx);
}

static void test_cache(vt_env *env) {
  const vklm_config *cfg = vklm_context_config(env->ctx);
  if (!cfg->cache_dir[0]) return;
  /* A fresh context builds a pipeline and saves the cache; a second one loads it. */
  vklm_context *ctx;
  char err[512];
  vt_ok(env, vklm_context_create(cfg, &ctx, err, sizeof err), "context");
  vklm_pipeline *p;
  uint32_t wg = 32;
  vt_ok(env, vklm_pipeline_get(ctx, "scale_f32", &wg, 1, &p), "pipeline");
  vklm_context_destroy(ctx);
  char path[700];
  const vklm_caps *c = vklm_context_caps(env->ctx);
  int k = snprintf(path, sizeof path, "%s/pipelines-", cfg->cache_dir);
  for (int i = 0; i < 16; i++) k += snprintf(path + k, sizeof path - k, "%02x", c->device_uuid[i]);
  k += snprintf(path + k, sizeof path - k, "-");
  for (int i = 0; i < 16; i++) k += snprintf(path + k, sizeof path - k, "%02x", c->driver_uuid[i]);
  snprintf(path + k, sizeof path - k, ".bin");
  struct stat sb;
  vt_expect(env, stat(path, &sb) == 0 && sb.st_size >= 32, "pipeline cache written: %s (%lld bytes)", path,
            (long long)(stat(path, &sb) == 0 ? sb.st_size : 0));
}

/* Two command buffers recorded apart run as one submission, in order (the second reads what the
 * first wrote), the count of submissions says one, and both replay; a host arena's buffer is
 * mapped and a recorded copy into it is readable after the wait. */
static void test_run_many(vt_env *env) {
  uint32_t n = 4099;
  vklm_buffer a = vt_alloc(env, n * 4);
  vklm_arena *host = NULL;
  vklm_buffer h = {0};
  vt_ok(env, vklm_arena_create_host(env->ctx, 0, &host), "host arena");
  vt_ok(env, vklm_arena_alloc(host, (uint64_t)n * 4, &h), "host buffer");
  vt_expect(env, vklm_buffer_host(h) != NULL, "a host arena's buffer is mapped");
  vklm_cmd *c1 = NULL, *c2 = NULL;
  vt_ok(env, vklm_cmd_create(env->ctx, &c1), "cmd 1");
  vt_ok(env, vklm_cmd_create(env->ctx, &c2), "cmd 2");
  vt_ok(env, vklm_cmd_begin(c1), "begin 1");
  vt_ok(env, vklm_fill(c1, a, 1.25f, n), "fill");
  vt_ok(env, vklm_cmd_end(c1), "end 1");
  vt_ok(env, vklm_cmd_begin(c2), "begin 2");
  vt_ok(env, vklm_scale(c2, a, 2.0f, n), "scale");
  vt_ok(env, vklm_cmd_copy(c2, a, h, (uint64_t)n * 4), "copy to the host buffer");
  vt_ok(env, vklm_cmd_end(c2), "end 2");
  vklm_cmd *both[2] = {c1, c2};
  uint64_t s0 = vklm_context_submit_count(env->ctx);
  vt_ok(env, vklm_cmd_run_many(both, 2), "run_many");
  vt_ok(env, vklm_cmd_run_many(both, 2), "run_many again");
  uint64_t subs = vklm_context_submit_count(env->ctx) - s0;
  const float *x = vklm_buffer_host(h);
  int ok = x != NULL;
  for (uint32_t i = 0; ok && i < n; i++) ok = x[i] == 2.5f;
  vt_expect(env, ok && subs == 2 && vklm_cmd_done(c2),
            "run_many: fill then scale in one submission each time (%llu for 2 runs), copied "
            "into mapped host memory: %s", (unsigned long long)subs, ok ? "2.5 everywhere" : "wrong");
  vklm_cmd_destroy(c2);
  vklm_cmd_destroy(c1);
  vklm_arena_destroy(host);
}

int main(void) {
  vt_env env;
  vt_init(&env, "test_runtime");
  test_caps(&env);
  test_arena(&env);
  test_staged(&env);
  test_two_contexts(&env);
  test_pipeline(&env);
  test_barriers_and_replay(&env);
  test_run_many(&env);
  test_timestamps(&env);
  test_cache(&env);
  return vt_finish(&env);
}

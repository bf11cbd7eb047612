/* test_validation: the validation layer fails tests (issue 14).
 *   - VKLM_VALIDATE set and the layer missing (VK_LAYER_PATH pointing nowhere) is an error of
 *     vklm_context_create that names the layer, not a warning; without validation the same
 *     environment still gives a context;
 *   - a message raised on purpose while a context is destroyed (a Vulkan object leaked through the
 *     test hook vklm_context_debug_leak) is counted by vklm_validation_messages, and a test that
 *     ends with vt_finish fails on it (in a child process);
 *   - a context made as the environment says (VKLM_VALIDATE=1, or sync in the sanitizer pass) runs
 *     a copy / dispatch / copy chain without a message;
 *   - two fills of one buffer with no barrier between them (the test hook
 *     vklm_context_debug_hazard) raise a message with VKLM_VALIDATE=sync and none without it:
 *     synchronization validation is really on, and a missing barrier fails a test.
 * It cannot end with vt_finish: the messages it provokes would fail it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static int failures, checks;
#define CHECK(cond, ...)                          \
  do {                                            \
    int ok_ = (cond);                             \
    checks++;                                     \
    printf("  %s ", ok_ ? "ok  " : "FAIL");       \
    printf(__VA_ARGS__);                          \
    printf("\n");                                 \
    fflush(stdout);                               \
    if (!ok_) failures++;                         \
  } while (0)

/* Runs fn in a child process; returns its exit status (or 128 + signal). */
static int in_child(int (*fn)(void)) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int ws = 0;
  waitpid(pid, &ws, 0);
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* 1: with the layer hidden, validation requested is an error; 0 if so (exit status). */
static int missing_layer_child(void) {
  setenv("VK_LAYER_PATH", "/nonexistent-vklm-layers", 1);
  unsetenv("VK_ADD_LAYER_PATH");
  unsetenv("VK_INSTANCE_LAYERS");
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  cfg.validate = 1;
  vklm_context *ctx = NULL;
  char err[1024] = "";
  vklm_status st = vklm_context_create(&cfg, &ctx, err, sizeof err);
  printf("    (child) validation without the layer: %s: %s\n", vklm_status_name(st), err);
  if (st == VKLM_OK || ctx || !strstr(err, "VK_LAYER_KHRONOS_validation")) return 1;
  cfg.validate = 0;
  st = vklm_context_create(&cfg, &ctx, err, sizeof err);
  printf("    (child) no validation, same environment: %s\n", vklm_status_name(st));
  if (st != VKLM_OK) return 2;
  vklm_context_destroy(ctx);
  return 0;
}

/* A test that leaks an object: vt_finish must fail it (returns 1: exit status 11; a context that
 * could not be made exits 1 in vt_init instead). */
static int leaking_test_child(void) {
  vt_env env;
  vt_init(&env, "leaking_test");
  vklm_context_debug_leak(env.ctx);
  return 10 + vt_finish(&env);
}

int main(void) {
  printf("test_validation\n");
  CHECK(in_child(missing_layer_child) == 0,
        "VKLM_VALIDATE with the validation layer missing: vklm_context_create fails and names the "
        "layer; without validation a context is made");
  /* both children run before this process touches Vulkan (no fork of a live driver) */
  int rc = in_child(leaking_test_child);
  CHECK(rc == 11, "a test that leaks an object fails in vt_finish (exit status %d, want 11)", rc);

  vklm_config cfg;
  vklm_config_from_env(&cfg);
  if (!cfg.validate) cfg.validate = 1;
  vklm_context *ctx = NULL;
  char err[1024];
  vklm_status st = vklm_context_create(&cfg, &ctx, err, sizeof err);
  CHECK(st == VKLM_OK && vklm_context_validation_enabled(ctx) == cfg.validate,
        "context with validation %s: %s", cfg.validate == VKLM_VALIDATE_SYNC ? "sync" : "on",
        st ? err : "ok");
  if (st != VKLM_OK) return 1;
  /* a chain of dispatches (write, read-modify-write, copy) with the layer on: no message */
  {
    vklm_arena *a = NULL;
    vklm_cmd *cmd = NULL;
    vklm_buffer x, y;
    vklm_pipeline *p = NULL;
    uint32_t wg = 64;
    size_t n = 1000;
    float *h = vt_randf(n, 1, -1, 1), *back = vt_zeros(n);
    int ok = vklm_arena_create(ctx, 0, &a) == VKLM_OK &&
             vklm_arena_alloc(a, n * 4, &x) == VKLM_OK &&
             vklm_arena_alloc(a, n * 4, &y) == VKLM_OK && vklm_cmd_create(ctx, &cmd) == VKLM_OK &&
             vklm_buffer_upload(ctx, x, 0, h, n * 4) == VKLM_OK &&
             vklm_pipeline_get(ctx, "scale_f32", &wg, 1, &p) == VKLM_OK;
    if (ok) {
      struct { uint32_t n; float s; } pc = {(uint32_t)n, 2.0f};
      vklm_buffer b[1] = {y};
      ok = vklm_cmd_begin(cmd) == VKLM_OK && vklm_cmd_copy(cmd, x, y, n * 4) == VKLM_OK &&
           vklm_cmd_dispatch(cmd, p, b, 1, &pc, sizeof pc, (uint32_t)((n + 63) / 64), 1, 1) ==
               VKLM_OK &&
           vklm_cmd_copy(cmd, y, x, n * 4) == VKLM_OK && vklm_cmd_end(cmd) == VKLM_OK &&
           vklm_cmd_run(cmd) == VKLM_OK && vklm_buffer_download(ctx, x, 0, back, n * 4) == VKLM_OK;
    }
    for (size_t i = 0; ok && i < n; i++) ok = back[i] == 2.0f * h[i];
    CHECK(ok && vklm_context_validation_count(ctx) == 0,
          "copy, in-place scale, copy back and readback (x == 2 x0) with validation%s: %u "
          "messages (%s)",
          cfg.validate == VKLM_VALIDATE_SYNC ? " and sync validation" : "",
          vklm_context_validation_count(ctx), ok ? "ran" : vklm_context_error(ctx));
    vklm_cmd_destroy(cmd);
    vklm_arena_destroy(a);
    free(h);
    free(back);
  }
  /* a missing barrier on purpose: only synchronization validation reports it */
  for (int mode = 1; mode <= VKLM_VALIDATE_SYNC; mode++) {
    vklm_config c2 = cfg;
    c2.validate = mode;
    vklm_context *x = NULL;
    vklm_arena *a = NULL;
    vklm_buffer b;
    uint32_t n0 = vklm_validation_messages(), n1 = n0;
    st = vklm_context_create(&c2, &x, err, sizeof err);
    if (st == VKLM_OK && (st = vklm_arena_create(x, 0, &a)) == VKLM_OK &&
        (st = vklm_arena_alloc(a, 4096, &b)) == VKLM_OK) {
      n0 = vklm_validation_messages();
      st = vklm_context_debug_hazard(x, b);
      n1 = vklm_validation_messages();
    }
    vklm_arena_destroy(a);
    vklm_context_destroy(x);
    if (mode == VKLM_VALIDATE_SYNC)
      CHECK(st == VKLM_OK && n1 > n0, "two fills of one buffer without a barrier, "
            "VKLM_VALIDATE=sync: %u message(s) (the hazard is reported)", n1 - n0);
    else
      CHECK(st == VKLM_OK && n1 == n0, "the same with VKLM_VALIDATE=1: %u messages (only "
            "synchronization validation sees it)", n1 - n0);
  }
  uint32_t hazards = vklm_validation_messages();
  uint32_t before = vklm_validation_messages();
  vklm_context_debug_leak(ctx);
  uint32_t leaked = vklm_validation_messages();
  vklm_context_destroy(ctx);
  uint32_t after = vklm_validation_messages();
  CHECK(before == hazards && leaked == before && after > leaked,
        "a leaked fence is reported while the context is destroyed, and counted: %u messages "
        "before the destroy, %u after", leaked, after);
  printf("test_validation: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}

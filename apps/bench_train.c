/* vklm bench train: training throughput of named model configurations at a given batch x
 * sequence — tokens/s, ms/step (forward + backward + AdamW), MFU against the device's measured
 * fp32 matmul peak, and peak device memory.
 *
 * FLOPs per token: 6N + 6*L*C*T (N parameters; the second term is the attention's score and
 * value products, forward and backward). The peak is the tiled fp32 GEMM's rate at a large
 * square shape, measured in the same run on the same device. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_util.h"
#include "commands.h"
#include "model/model.h"
#include "ops/ops.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* fp32 GEMM GFLOP/s at S x S x S (the best of a few timed batches of repetitions). */
static double matmul_peak(const vklm_config *cfg, uint32_t S, double seconds) {
  vklm_context *ctx = app_context(cfg);
  if (!ctx) return -1;
  vklm_arena *ar = NULL;
  vklm_cmd *cmd = NULL;
  double best = -1;
  vklm_buffer a, b, c;
  uint64_t n = (uint64_t)S * S;
  if (vklm_arena_create(ctx, 0, &ar) || vklm_cmd_create(ctx, &cmd) ||
      vklm_arena_alloc(ar, n * 4, &a) || vklm_arena_alloc(ar, n * 4, &b) ||
      vklm_arena_alloc(ar, n * 4, &c))
    goto done;
  vklm_gemm g = vklm_gemm_make(S, S, S);
  if (vklm_cmd_begin(cmd) || vklm_fill(cmd, a, 0.01f, (uint32_t)n) ||
      vklm_fill(cmd, b, 0.02f, (uint32_t)n) || vklm_matmul(cmd, c, a, b, &g) ||
      vklm_cmd_end(cmd) || vklm_cmd_run(cmd))
    goto done;
  double t0 = now_s();
  if (vklm_cmd_begin(cmd) || vklm_matmul(cmd, c, a, b, &g) || vklm_cmd_end(cmd) || vklm_cmd_run(cmd))
    goto done;
  double one = now_s() - t0;
  int reps = one > 0 ? (int)(seconds / 4 / one) : 10;
  if (reps < 1) reps = 1;
  if (reps > 50) reps = 50;
  if (vklm_cmd_begin(cmd)) goto done;
  for (int r = 0; r < reps; r++)
    if (vklm_matmul(cmd, c, a, b, &g)) goto done;
  if (vklm_cmd_end(cmd)) goto done;
  double start = now_s();
  while (now_s() - start < seconds || best < 0) {
    t0 = now_s();
    if (vklm_cmd_run(cmd)) goto done;
    double gf = vklm_matmul_flops(&g) * reps / (now_s() - t0) / 1e9;
    if (gf > best) best = gf;
  }
done:
  if (best < 0) fprintf(stderr, "vklm bench train: matmul peak: %s\n", vklm_context_error(ctx));
  vklm_cmd_destroy(cmd);
  vklm_arena_destroy(ar);
  vklm_context_destroy(ctx);
  return best;
}

typedef struct result {
  double ms_step, tok_s, mfu, peak_mem, flops_tok, loss0, loss1;
  uint64_t params;
} result;

/* Times `steps` training steps of config `name` at (B,T) on a fresh context (so that the peak
 * memory is this model's). Random tokens (seeded). */
static int bench_one(const vklm_config *cfg, const char *name, uint32_t B, uint32_t T,
                     uint32_t steps, double peak_gflops, result *r) {
  vklm_model_config mc;
  if (vklm_model_config_preset(name, &mc) != VKLM_OK) {
    fprintf(stderr, "vklm bench train: unknown model '%s'\n", name);
    return -1;
  }
  if (T > mc.max_seq) mc.max_seq = T;
  vklm_context *ctx = app_context(cfg);
  if (!ctx) return -1;
  int rc = -1;
  vklm_model *m = NULL;
  size_t n = (size_t)B * T;
  int32_t *tok = malloc((n + 1) * sizeof(int32_t));
  uint64_t s = 42;
  for (size_t i = 0; i <= n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tok[i] = (int32_t)((s >> 33) % mc.vocab_size);
  }
  vklm_optim_config oc = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_clip = 1.0f};
  if (vklm_model_create(ctx, &mc, B, T, VKLM_OBJ_CAUSAL, &m) || vklm_model_init(m, 1)) goto done;
  float loss = 0;
  for (uint32_t w = 0; w < 2; w++) /* warm-up: pipelines, caches */
    if (vklm_model_forward_backward(m, tok, tok + 1, 1.0f, &loss) ||
        vklm_model_update(m, &oc, w + 1, NULL))
      goto done;
  r->loss0 = loss;
  double t0 = now_s();
  for (uint32_t i = 0; i < steps; i++)
    if (vklm_model_forward_backward(m, tok, tok + 1, 1.0f, &loss) ||
        vklm_model_update(m, &oc, 3 + i, NULL))
      goto done;
  double dt = (now_s() - t0) / steps;
  r->loss1 = loss;
  r->params = vklm_model_num_params(m);
  r->ms_step = dt * 1e3;
  r->tok_s = n / dt;
  r->flops_tok = 6.0 * r->params + 6.0 * mc.n_layer * mc.n_embd * T;
  r->mfu = peak_gflops > 0 ? r->flops_tok * r->tok_s / (peak_gflops * 1e9) : 0;
  r->peak_mem = (double)vklm_context_memory_peak(ctx);
  rc = 0;
done:
  if (rc) fprintf(stderr, "vklm bench train: %s: %s\n", name, vklm_model_error(m));
  free(tok);
  vklm_model_destroy(m);
  vklm_context_destroy(ctx);
  return rc;
}

int bench_train(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  const char *models = NULL;
  uint32_t B = 0, T = 0, steps = 0, square = 0;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    int r = app_config_flag(&cfg, argc, argv, &i);
    if (r < 0) return 2;
    if (r) continue;
    const char *a = argv[i];
    if (!strcmp(a, "--json")) json = 1;
    else if (i + 1 < argc && (!strcmp(a, "--model") || !strcmp(a, "-m"))) models = argv[++i];
    else if (i + 1 < argc && (!strcmp(a, "-b") || !strcmp(a, "--batch"))) B = (uint32_t)atol(argv[++i]);
    else if (i + 1 < argc && (!strcmp(a, "-T") || !strcmp(a, "--seq"))) T = (uint32_t)atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--steps")) steps = (uint32_t)atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--peak-size")) square = (uint32_t)atol(argv[++i]);
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      printf("usage: vklm bench train [--model gpt2-tiny,gpt2-124M] [-b B] [-T T] [--steps N]\n"
             "                        [--peak-size S] [--json] [--device D] [--limits baseline]\n"
             "  tokens/s, ms/step, MFU (6N + 6*L*C*T FLOPs/token against the fp32 GEMM rate at\n"
             "  S x S x S, measured in the same run) and peak device memory per model.\n"
             "  Defaults: B 8, T 1024, 20 steps, S 4096 on a GPU; B 4, T 64, 3 steps, S 512 and\n"
             "  gpt2-tiny only on a CPU device.\n");
      return 0;
    } else {
      fprintf(stderr, "vklm bench train: unknown flag '%s'\n", a);
      return 2;
    }
  }
  vklm_caps caps[16];
  int nd = 0;
  char err[512];
  if (vklm_devices_query(&cfg, caps, 16, &nd, err, sizeof err) != VKLM_OK || nd == 0) {
    fprintf(stderr, "vklm bench train: %s\n", nd ? err : "no Vulkan device");
    return 1;
  }
  int di = vklm_devices_choose(caps, nd, cfg.device);
  int cpu = di >= 0 && caps[di].type == VKLM_DEVICE_CPU;
  if (!models) models = cpu ? "gpt2-tiny" : "gpt2-tiny,gpt2-124M";
  if (!B) B = cpu ? 4 : 8;
  if (!T) T = cpu ? 64 : 1024;
  if (!steps) steps = cpu ? 3 : 20;
  if (!square) square = cpu ? 512 : 4096;
  double peak = matmul_peak(&cfg, square, cpu ? 1.0 : 2.0);
  if (peak < 0) return 1;
  cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "models");
  cJSON_AddStringToObject(root, "device", di >= 0 ? caps[di].name : "?");
  cJSON_AddNumberToObject(root, "B", B);
  cJSON_AddNumberToObject(root, "T", T);
  cJSON_AddNumberToObject(root, "steps", steps);
  cJSON_AddNumberToObject(root, "peak_size", square);
  cJSON_AddNumberToObject(root, "peak_gflops_f32", peak);
  if (!json) {
    printf("device: %s%s\n", di >= 0 ? caps[di].name : "?", cfg.limits_baseline ? " [baseline limits]" : "");
    printf("fp32 matmul peak (%u^3): %.1f GFLOP/s\n", square, peak);
    printf("%-12s %10s %5s %5s %10s %12s %8s %10s %10s\n", "model", "params", "B", "T", "ms/step",
           "tokens/s", "MFU", "peak mem", "loss");
  }
  int rc = 0;
  char list[512];
  snprintf(list, sizeof list, "%s", models);
  for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
    result r = {0};
    if (bench_one(&cfg, name, B, T, steps, peak, &r) != 0) {
      rc = 1;
      continue;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", name);
    cJSON_AddNumberToObject(o, "params", (double)r.params);
    cJSON_AddNumberToObject(o, "ms_per_step", r.ms_step);
    cJSON_AddNumberToObject(o, "tokens_per_s", r.tok_s);
    cJSON_AddNumberToObject(o, "flops_per_token", r.flops_tok);
    cJSON_AddNumberToObject(o, "mfu", r.mfu);
    cJSON_AddNumberToObject(o, "peak_memory_bytes", r.peak_mem);
    cJSON_AddNumberToObject(o, "loss_first", r.loss0);
    cJSON_AddNumberToObject(o, "loss_last", r.loss1);
    cJSON_AddItemToArray(arr, o);
    if (!json) {
      char mem[32];
      printf("%-12s %10llu %5u %5u %10.1f %12.0f %7.2f%% %10s %10.4f\n", name,
             (unsigned long long)r.params, B, T, r.ms_step, r.tok_s, 100 * r.mfu,
             app_bytes((uint64_t)r.peak_mem, mem, sizeof mem), r.loss1);
      fflush(stdout);
    }
  }
  if (json) {
    char *s = cJSON_Print(root);
    printf("%s\n", s);
    cJSON_free(s);
  }
  cJSON_Delete(root);
  return rc;
}

/* vklm bench train: training throughput of named model configurations at a given batch x
 * sequence — tokens/s, ms/step (forward + backward + AdamW), MFU against the device's measured
 * fp32 matmul peak, and peak device memory.
 *
 * FLOPs per token: 6N + 6*L*C*T (N parameters; the second term is the attention's score and
 * value products, forward and backward). The peak is the tiled fp32 GEMM's rate at a large
 * square shape, measured in the same run on the same device.
 *
 * Under mpirun (docs/distributed.md), every rank runs the model on its own device with B x T
 * tokens per step, and the gradients are summed over the ranks every step as `vklm train` does
 * (host staging, fixed-order reduce-scatter + all-gather). Reported by rank 0: tokens/s of each
 * rank and in all, rank 0's rate alone (the others idle) and the scaling efficiency
 * total / (ranks x alone). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_util.h"
#include "bench.h"
#include "commands.h"
#include "dist/dist.h"
#include "flags.h"
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

typedef train_result result; /* apps/bench.h (the benchmark card runs bench_one too) */

/* Times `steps` training steps of config `name` at (B,T) on a fresh context (so that the peak
 * memory is this model's). Random tokens (seeded). */
/* One timed step: forward + backward and AdamW in one submission; data parallel, the gradients
 * summed over the ranks part by part while the backward runs, then the update (as vklm train
 * does). */
typedef struct sum_ctx {
  vklm_dist *d;
  uint64_t n;
  char err[512];
} sum_ctx;

static vklm_status sum_part(void *user, float *grads, uint64_t lo, uint64_t hi) {
  sum_ctx *c = user;
  return vklm_dist_sum_range_f32(c->d, grads, c->n, lo, hi, c->err, sizeof c->err);
}

static int timed_step(vklm_model *m, vklm_dist *d, float *gbuf, const int32_t *tok,
                      const vklm_optim_config *oc, uint32_t step, float *loss,
                      vklm_overlap_stats *ov) {
  if (!gbuf) /* the pass and the update in one submission, as vklm train runs them */
    return vklm_model_train_step(m, tok, tok + 1, 1.0f, oc, step, loss, NULL) ? -1 : 0;
  {
    sum_ctx c = {d, vklm_model_num_params(m), ""};
    vklm_status st = vklm_model_forward_backward_parts(m, tok, tok + 1, 1.0f, loss, gbuf,
                                                       sum_part, &c, ov);
    if (st != VKLM_OK && c.err[0]) fprintf(stderr, "vklm bench train: %s\n", c.err);
    if (st != VKLM_OK || vklm_model_set_grads(m, gbuf)) return -1;
  }
  return vklm_model_update(m, oc, step, NULL) ? -1 : 0;
}

int bench_one(const vklm_config *cfg, const char *name, uint32_t B, uint32_t T,
              uint32_t steps, double peak_gflops, const vklm_model_options *opt, vklm_dist *d,
              result *r) {
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
  float *gbuf = NULL;
  int nranks = vklm_dist_size(d), rank = vklm_dist_rank(d);
  size_t n = (size_t)B * T;
  int32_t *tok = malloc((n + 1) * sizeof(int32_t));
  uint64_t s = 42;
  for (size_t i = 0; i <= n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tok[i] = (int32_t)((s >> 33) % mc.vocab_size);
  }
  vklm_optim_config oc = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_clip = 1.0f};
  vklm_model_options mo = opt ? *opt : (vklm_model_options){0};
  if (vklm_model_create_ex(ctx, &mc, B, T, VKLM_OBJ_CAUSAL, &mo, &m) || vklm_model_init(m, 1))
    goto done;
  float loss = 0;
  for (uint32_t w = 0; w < 2; w++) /* warm-up: pipelines, caches */
    if (vklm_model_forward_backward(m, tok, tok + 1, 1.0f, &loss) ||
        vklm_model_update(m, &oc, w + 1, NULL))
      goto done;
  r->loss0 = loss;
  uint32_t step = 3;
  double t0;
  if (nranks > 1) {
    char err[512];
    gbuf = malloc(vklm_model_num_params(m) * sizeof(float));
    r->rank_tok_s = calloc((size_t)nranks, sizeof(double));
    if (!gbuf || !r->rank_tok_s) goto done;
    if (rank == 0) { /* the one-rank figure: rank 0 alone, no communication */
      t0 = now_s();
      for (uint32_t i = 0; i < steps; i++)
        if (timed_step(m, d, NULL, tok, &oc, step++, &loss, NULL)) goto done;
      r->alone_tok_s = n / ((now_s() - t0) / steps);
    }
    if (vklm_dist_exchange(d, "the one-rank baseline", 1, VKLM_OK, NULL, 0, NULL, 0, NULL, NULL,
                           err, sizeof err) != VKLM_OK)
      goto done;
  }
  uint64_t sub0 = vklm_context_submit_count(ctx);
  t0 = now_s();
  for (uint32_t i = 0; i < steps; i++)
    if (timed_step(m, d, gbuf, tok, &oc, step++, &loss, &r->overlap)) goto done;
  double dt = (now_s() - t0) / steps;
  r->submits = (double)(vklm_context_submit_count(ctx) - sub0) / steps;
  vklm_model_step_counts(m, &r->dispatches, &r->barriers);
  if (nranks > 1) {
    char err[512];
    if (vklm_dist_gather_f64(d, n / dt, r->rank_tok_s, err, sizeof err) != VKLM_OK) goto done;
    double slowest = r->rank_tok_s[0];
    for (int i = 1; i < nranks; i++)
      if (r->rank_tok_s[i] < slowest) slowest = r->rank_tok_s[i];
    r->total_tok_s = nranks * slowest;
  }
  r->loss1 = loss;
  r->params = vklm_model_num_params(m);
  r->ms_step = dt * 1e3;
  r->tok_s = n / dt;
  r->flops_tok = 6.0 * r->params + 6.0 * mc.n_layer * mc.n_embd * T;
  r->mfu = peak_gflops > 0 ? r->flops_tok * r->tok_s / (peak_gflops * 1e9) : 0;
  r->peak_mem = (double)vklm_context_memory_peak(ctx);
  rc = 0;
done:
  if (rc) {
    fprintf(stderr, "vklm bench train: %s: %s\n", name, vklm_model_error(m));
    if (nranks > 1) vklm_dist_abort(d, "the benchmark failed");
  }
  free(gbuf);
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
  int json = 0, recompute = 0, precision = 0;
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &models, "NAMES", "comma-separated presets (gpt2-tiny,gpt2-124M)"),
      AF_FLAG("--batch", "-b", AF_U32, &B, 1, 1u << 16, "B", "sequences per step"),
      AF_FLAG("--seq", "-T", AF_U32, &T, 1, 1u << 20, "T", "sequence length"),
      AF_FLAG("--steps", NULL, AF_U32, &steps, 1, 1u << 20, "N", "timed steps"),
      AF_FLAG("--peak-size", NULL, AF_U32, &square, 16, 1u << 16, "S",
              "the S x S x S GEMM whose rate MFU is measured against"),
      AF_BOOL("--recompute", &recompute,
              "recompute the norms and the MLP activation in the backward (less memory)"),
      AF_FLAG("--precision", NULL, AF_CHOICE, &precision, 0, 0, "f32|bf16|f16",
              "the GEMMs' weight dtype (f32; bf16/f16: 16-bit copies of the fp32 master)"),
      AF_BOOL("--json", &json, "JSON instead of a table"),
      AF_LAST};
  const app_command c = {
      "bench train", "bench train [--model gpt2-tiny,gpt2-124M] [-b B] [-T T] [--steps N] [flags]",
      "tokens/s, ms/step, MFU (6N + 6*L*C*T FLOPs/token against the fp32 GEMM rate at\n"
      "S x S x S, measured in the same run) and peak device memory per model.\n"
      "Defaults: B 8, T 1024, 20 steps, S 4096 on a GPU; B 4, T 64, 3 steps, S 512 and\n"
      "gpt2-tiny only on a CPU device. Under mpirun: tokens/s per rank and in all, and the\n"
      "scaling efficiency against one rank (docs/distributed.md).",
      flags, 0, 0, 1};
  int pr = app_flags_parse(&c, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  vklm_caps caps[16];
  int nd = 0;
  char err[512];
  if (vklm_devices_query(&cfg, caps, 16, &nd, err, sizeof err) != VKLM_OK || nd == 0) {
    fprintf(stderr, "vklm bench train: %s\n", nd ? err : "no Vulkan device");
    return 1;
  }
  vklm_dist *d = NULL; /* under mpirun: data parallel, one device per rank */
  if (vklm_dist_init(&d, err, sizeof err) != VKLM_OK) {
    fprintf(stderr, "vklm bench train: %s\n", err);
    return 1;
  }
  int nranks = vklm_dist_size(d), lead = vklm_dist_rank(d) == 0;
  if (nranks > 1) {
    char want[128];
    vklm_dist_device_choice(d, cfg.device, nd, want, sizeof want);
    snprintf(cfg.device, sizeof cfg.device, "%s", want);
    json = json && lead;
  }
  int di = vklm_devices_choose(caps, nd, cfg.device);
  int cpu = di >= 0 && caps[di].type == VKLM_DEVICE_CPU;
  if (!models) models = cpu ? "gpt2-tiny" : "gpt2-tiny,gpt2-124M";
  if (!B) B = cpu ? 4 : 8;
  if (!T) T = cpu ? 64 : 1024;
  if (!steps) steps = cpu ? 3 : 20;
  if (!square) square = cpu ? 512 : 4096;
  double peak = matmul_peak(&cfg, square, cpu ? 1.0 : 2.0);
  if (peak < 0) {
    if (nranks > 1) vklm_dist_abort(d, "the matmul peak could not be measured");
    vklm_dist_finalize(d);
    return 1;
  }
  cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "models");
  cJSON_AddStringToObject(root, "device", di >= 0 ? caps[di].name : "?");
  cJSON_AddNumberToObject(root, "B", B);
  cJSON_AddNumberToObject(root, "T", T);
  cJSON_AddNumberToObject(root, "steps", steps);
  cJSON_AddNumberToObject(root, "peak_size", square);
  cJSON_AddNumberToObject(root, "peak_gflops_f32", peak);
  cJSON_AddNumberToObject(root, "ranks", nranks);
  cJSON_AddBoolToObject(root, "recompute", recompute);
  cJSON_AddStringToObject(root, "precision", precision == 1 ? "bf16" : precision == 2 ? "f16" : "f32");
  if (!lead) {
    /* rank 0 prints */
  } else if (!json) {
    printf("device: %s%s\n", di >= 0 ? caps[di].name : "?", cfg.limits_baseline ? " [baseline limits]" : "");
    printf("fp32 matmul peak (%u^3): %.1f GFLOP/s\n", square, peak);
    if (precision) printf("mixed precision: the GEMMs read %s copies of the weights\n",
                          precision == 1 ? "bf16" : "f16");
    printf("%-12s %10s %5s %5s %10s %12s %8s %10s %10s %6s %6s %6s\n", "model", "params", "B",
           "T", "ms/step", "tokens/s", "MFU", "peak mem", "loss", "disp", "barr", "subm");
  }
  int rc = 0;
  char list[512];
  snprintf(list, sizeof list, "%s", models);
  for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
    result r = {0};
    vklm_model_options mo = {.recompute = recompute,
                             .precision = precision == 1   ? VKLM_DTYPE_BF16
                                          : precision == 2 ? VKLM_DTYPE_F16
                                                           : VKLM_DTYPE_F32};
    if (bench_one(&cfg, name, B, T, steps, peak, &mo, d, &r) != 0) {
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
    cJSON_AddNumberToObject(o, "dispatches_per_step", r.dispatches);
    cJSON_AddNumberToObject(o, "barriers_per_step", r.barriers);
    cJSON_AddNumberToObject(o, "submits_per_step", r.submits);
    cJSON_AddItemToArray(arr, o);
    if (!json && lead) {
      char mem[32];
      printf("%-12s %10llu %5u %5u %10.1f %12.0f %7.2f%% %10s %10.4f %6u %6u %6.1f\n", name,
             (unsigned long long)r.params, B, T, r.ms_step, r.tok_s, 100 * r.mfu,
             app_bytes((uint64_t)r.peak_mem, mem, sizeof mem), r.loss1, r.dispatches,
             r.barriers, r.submits);
      fflush(stdout);
    }
    if (nranks > 1) { /* per rank (the figures above are rank 0's), in all, and the scaling */
      cJSON *per = cJSON_AddArrayToObject(o, "tokens_per_s_per_rank");
      for (int i = 0; i < nranks; i++) cJSON_AddItemToArray(per, cJSON_CreateNumber(r.rank_tok_s[i]));
      double eff = r.alone_tok_s > 0 ? r.total_tok_s / (nranks * r.alone_tok_s) : 0;
      cJSON_AddNumberToObject(o, "tokens_per_s_total", r.total_tok_s);
      cJSON_AddNumberToObject(o, "tokens_per_s_one_rank", r.alone_tok_s);
      cJSON_AddNumberToObject(o, "scaling_efficiency", eff);
      cJSON_AddNumberToObject(o, "overlap_parts", r.overlap.parts);
      cJSON_AddNumberToObject(o, "overlap_parts_early", r.overlap.early);
      cJSON_AddNumberToObject(o, "overlap_wait_ms", r.overlap.wait_s * 1e3);
      cJSON_AddNumberToObject(o, "overlap_reduce_ms", r.overlap.ready_s * 1e3);
      if (lead && !json) {
        printf("  %d ranks, B x T tokens each per step, gradients summed every step:\n", nranks);
        for (int i = 0; i < nranks; i++) printf("    rank %d: %.0f tokens/s\n", i, r.rank_tok_s[i]);
        printf("    total: %.0f tokens/s; one rank alone: %.0f tokens/s; scaling efficiency "
               "%.1f%%\n", r.total_tok_s, r.alone_tok_s, 100 * eff);
        printf("    reduction in %u parts during the backward (%u while the device still "
               "computed): %.1f ms reducing, %.1f ms waiting for the device per step\n",
               r.overlap.parts, r.overlap.early, r.overlap.ready_s * 1e3,
               r.overlap.wait_s * 1e3);
        fflush(stdout);
      }
      free(r.rank_tok_s);
    }
  }
  vklm_dist_finalize(d);
  if (json) {
    char *s = cJSON_Print(root);
    printf("%s\n", s);
    cJSON_free(s);
  }
  cJSON_Delete(root);
  return rc;
}

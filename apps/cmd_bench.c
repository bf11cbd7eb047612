/* vklm bench: benchmarks that print figures.
 *   vklm bench ops        matmul GFLOP/s (tiled fp32, the CPU-type fp32 kernel where the context
 *                         runs CPU kernels, fp16 storage, and the naive kernel for comparison)
 *                         over square shapes, the shapes of GPT-2 124M and, on CPU devices,
 *                         gpt2-tiny's, and elementwise GB/s; a table, or --json.
 *   vklm bench tokenizer  see engine/text (encode MB/s and training time).
 *   vklm bench [all]      the benchmark card of the device (apps/bench_card.c). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_util.h"
#include "bench.h"
#include "commands.h"
#include "flags.h"
#include "ops/ops.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Times rec(): one repetition recorded and run to warm up (pipelines, caches, clocks) and to
 * estimate its cost, then as many repetitions per command buffer as fit in a fraction of the time
 * budget, run until min_seconds have passed. Returns seconds per repetition, or -1 with the
 * error printed. */
/* (record_fn, bench, mm_shape, mm_arg: apps/bench.h, shared with the card, bench_card.c) */
static vklm_status record(bench *b, record_fn rec, void *arg, int reps) {
  vklm_status st = vklm_cmd_begin(b->cmd);
  for (int r = 0; r < reps && st == VKLM_OK; r++) st = rec(b->cmd, arg);
  return st == VKLM_OK ? vklm_cmd_end(b->cmd) : st;
}

double time_recorded(bench *b, record_fn rec, void *arg) {
  vklm_status st = record(b, rec, arg, 1);
  double t0 = now_s();
  if (st == VKLM_OK) st = vklm_cmd_run(b->cmd);
  double one = now_s() - t0;
  int reps = one > 0 ? (int)(b->min_seconds / 4 / one) : 50;
  if (reps < 1) reps = 1;
  if (reps > 50) reps = 50;
  if (st == VKLM_OK) st = record(b, rec, arg, reps);
  t0 = now_s();
  double t = 0;
  int runs = 0;
  while (st == VKLM_OK && (runs < 1 || t < b->min_seconds) && runs < 1000) {
    st = vklm_cmd_run(b->cmd);
    runs++;
    t = now_s() - t0;
  }
  if (st != VKLM_OK) {
    fprintf(stderr, "vklm bench: %s: %s\n", vklm_status_name(st), vklm_context_error(b->ctx));
    return -1;
  }
  return t / runs / reps;
}

/* A GEMM whose B or C would exceed the largest bindable buffer (GPT-2's 50257 x 768 fp32 LM
 * head is 147 MiB; lavapipe and baseline limits bind 128 MiB) is split along N into chunks with
 * their own buffers, as the engine must do for such tensors. */
void bench_gpt2_shapes(uint32_t T, mm_shape *out) {
  const mm_shape g[BENCH_GPT2_SHAPES] = {
      {"gpt2 qkv", T, 2304, 768, 0, 1},      {"gpt2 attn proj", T, 768, 768, 0, 1},
      {"gpt2 mlp fc", T, 3072, 768, 0, 1},   {"gpt2 mlp proj", T, 768, 3072, 0, 1},
      {"gpt2 lm head", T, 50257, 768, 0, 1}, {"gpt2 dW mlp fc", 3072, 768, T, 1, 0},
  };
  for (int i = 0; i < BENCH_GPT2_SHAPES; i++) out[i] = g[i];
}

int bench_dbuf_fits(vklm_context *ctx, const vklm_gemm *g) {
  vklm_matmul_config cf = vklm_matmul_config_choose(ctx, g), all[32];
  uint32_t n = vklm_matmul_configs(ctx, all, 32);
  for (uint32_t i = 0; i < n; i++)
    if (all[i].dbuf && all[i].BM == cf.BM && all[i].BN == cf.BN && all[i].BK == cf.BK &&
        all[i].TM == cf.TM && all[i].TN == cf.TN)
      return 1;
  return 0;
}

vklm_status rec_mm(vklm_cmd *cmd, void *p) {
  mm_arg *m = p;
  vklm_status st = VKLM_OK;
  for (int i = 0; i < m->nchunks && st == VKLM_OK; i++) {
    if (m->kind == 1) { /* the tiled kernel (no configuration would pick coopmat where it is) */
      vklm_matmul_config cf = vklm_matmul_config_choose(vklm_cmd_context(cmd), &m->g[i]);
      st = vklm_matmul_ex(cmd, m->c[i], m->a, VKLM_GEMM_F16, m->b[i], VKLM_GEMM_F16, &m->g[i], &cf);
    } else if (m->kind == 5) {
      st = vklm_matmul_splitk(cmd, m->c[i], m->a, m->b[i], &m->g[i], m->splits, m->scratch);
    } else if (m->kind == 4 || m->kind == 6) {
      /* the chosen tile, double-buffered (4: checked by the caller) or with scalar loads (6) */
      vklm_matmul_config cf = vklm_matmul_config_choose(vklm_cmd_context(cmd), &m->g[i]);
      if (m->kind == 4) cf.dbuf = 1;
      else cf.novec = 1;
      st = vklm_matmul_ex(cmd, m->c[i], m->a, VKLM_GEMM_F32, m->b[i], VKLM_GEMM_F32, &m->g[i], &cf);
    } else if (m->kind == 3)
      st = vklm_matmul_ex(cmd, m->c[i], m->a, VKLM_GEMM_F16, m->b[i], VKLM_GEMM_F16, &m->g[i],
                          &vklm_matmul_config_coopmat);
    else if (m->kind == 2) st = vklm_matmul_naive(cmd, m->c[i], m->a, m->b[i], &m->g[i]);
    else st = vklm_matmul(cmd, m->c[i], m->a, m->b[i], &m->g[i]);
  }
  return st;
}

/* Allocates and fills the operands of shape sh, splitting N into chunks where needed. */
int mm_setup(bench *b, const mm_shape *sh, mm_arg *m) {
  uint64_t range = vklm_context_caps(b->ctx)->max_storage_buffer_range;
  uint64_t na = (uint64_t)sh->M * sh->K, nb = (uint64_t)sh->K * sh->N, nc = (uint64_t)sh->M * sh->N;
  uint64_t big = nb > nc ? nb : nc;
  int chunks = (int)((big * 4 + range - 1) / range);
  if (na * 4 > range || chunks > MAX_CHUNKS || (chunks > 1 && sh->trans_b == 0)) {
    fprintf(stderr, "vklm bench: shape %s (%u x %u x %u) does not fit this device's %llu-byte buffers\n",
            sh->name, sh->M, sh->N, sh->K, (unsigned long long)range);
    return -1;
  }
  vklm_arena_reset(b->arena);
  vklm_cmd_begin(b->cmd);
  if (vklm_arena_alloc(b->arena, na * 4, &m->a)) goto fail;
  vklm_fill(b->cmd, m->a, 0.01f, (uint32_t)na);
  m->nchunks = chunks;
  uint32_t per = (sh->N + chunks - 1) / chunks;
  for (int i = 0; i < chunks; i++) {
    uint32_t n = i == chunks - 1 ? sh->N - per * (uint32_t)i : per;
    m->g[i] = (vklm_gemm){.M = sh->M, .N = n, .K = sh->K, .batch = 1, .trans_a = sh->trans_a,
                          .trans_b = sh->trans_b, .alpha = 1.0f, .beta = 0.0f};
    if (vklm_arena_alloc(b->arena, (uint64_t)sh->K * n * 4, &m->b[i]) ||
        vklm_arena_alloc(b->arena, (uint64_t)sh->M * n * 4, &m->c[i]))
      goto fail;
    /* 0.02f read as packed halves is a pair of finite fp16 values: fine for timing. */
    vklm_fill(b->cmd, m->b[i], 0.02f, (uint32_t)((uint64_t)sh->K * n));
  }
  if (vklm_cmd_end(b->cmd) || vklm_cmd_run(b->cmd)) goto fail;
  return 0;
fail:
  fprintf(stderr, "vklm bench: %s\n", vklm_context_error(b->ctx));
  return -1;
}

typedef struct ew_arg {
  vklm_buffer x;
  uint32_t n;
} ew_arg;

static vklm_status rec_scale(vklm_cmd *cmd, void *p) {
  ew_arg *e = p;
  return vklm_scale(cmd, e->x, 1.0f, e->n);
}

static int bench_ops(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  int json = 0, tokens = 0, naive = 1;
  double min_s = 0.5;
  uint32_t ntok = 0;
  int no_naive = 0;
  const app_flag flags[] = {
      AF_BOOL("--json", &json, "JSON instead of a table"),
      AF_FLAG("--tokens", NULL, AF_U32, &ntok, 1, 1u << 20, "N",
              "rows (batch x sequence) of the GPT-2 124M shapes (default 1024 on a\n"
              "GPU, 128 on a CPU device)"),
      AF_FLAG("--seconds", NULL, AF_F64, &min_s, 0.01, 3600, "S",
              "time spent per measurement (default 0.5)"),
      AF_BOOL("--no-naive", &no_naive, "skip the naive GEMM"),
      AF_LAST};
  const app_command c = {"bench ops", "bench ops [flags]",
                         "GEMM GFLOP/s at the GPT-2 shapes (fp32 tiled and CPU-type, fp16 "
                         "storage, naive) and elementwise GB/s.", flags, 0, 0, 1};
  int pr = app_flags_parse(&c, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  tokens = (int)ntok, naive = !no_naive;
  bench b = {.min_seconds = min_s};
  if (!(b.ctx = app_context(&cfg))) return 1;
  const vklm_caps *caps = vklm_context_caps(b.ctx);
  int cpu = caps->type == VKLM_DEVICE_CPU;
  if (tokens <= 0) tokens = cpu ? 128 : 1024;
  int rc = 1;
  cJSON *root = cJSON_CreateObject(), *mmj = cJSON_CreateArray();
  cJSON_AddStringToObject(root, "device", caps->name);
  cJSON_AddStringToObject(root, "driver", caps->driver_name);
  cJSON_AddStringToObject(root, "driver_info", caps->driver_info);
  cJSON_AddBoolToObject(root, "baseline_limits", caps->baseline);
  cJSON_AddNumberToObject(root, "tokens", tokens);
  cJSON_AddItemToObject(root, "matmul", mmj);
  if (vklm_arena_create(b.ctx, 0, &b.arena) != VKLM_OK || vklm_cmd_create(b.ctx, &b.cmd) != VKLM_OK) {
    fprintf(stderr, "vklm bench: %s\n", vklm_context_error(b.ctx));
    goto done;
  }
  uint32_t sq = cpu ? 512 : 2048, T = (uint32_t)tokens;
  /* The fp32 GEMM's two paths: the tiled kernel (the GPU family) and, where the context runs
   * CPU-type kernels (lavapipe by default, or VKLM_KERNELS=cpu), matmul_cpu_f32, timed side by side
   * by switching the context's kernel family; on CPU devices also the shapes of a gpt2-tiny
   * training step (B4 T64: C 64, MLP 256, vocabulary 256), forward and backward. */
  int cpu_path = (cpu || vklm_context_cpu_kernels(b.ctx)) && vklm_matmul_cpu_available(b.ctx);
  mm_shape shapes[] = {
      {"square", sq, sq, sq, 0, 0},
      {0}, {0}, {0}, {0}, {0}, {0}, /* bench_gpt2_shapes */
      {"dW 64x64 splitK", 64, 64, 16384, 1, 0}, /* a narrow layer's weight gradient */
      {"tiny qkv", 256, 192, 64, 0, 1},
      {"tiny attn proj", 256, 64, 64, 0, 1},
      {"tiny fc, head", 256, 256, 64, 0, 1},
      {"tiny mlp proj", 256, 64, 256, 0, 1},
      {"tiny dinp qkv", 256, 64, 192, 0, 0},
      {"tiny dinp attn", 256, 64, 64, 0, 0},
      {"tiny dinp fc,hd", 256, 64, 256, 0, 0},
      {"tiny dinp proj", 256, 256, 64, 0, 0},
      {"tiny dW qkv", 192, 64, 256, 1, 0},
      {"tiny dW attn", 64, 64, 256, 1, 0},
      {"tiny dW fc,head", 256, 64, 256, 1, 0},
      {"tiny dW proj", 64, 256, 256, 1, 0},
  };
  bench_gpt2_shapes(T, shapes + 1);
  int nshapes = (int)(sizeof shapes / sizeof shapes[0]) - (cpu ? 0 : 12);
  if (!json) {
    printf("device: %s (%s)%s\n", caps->name, caps->driver_info[0] ? caps->driver_info : caps->driver_name,
           caps->baseline ? " [baseline limits]" : "");
    printf("\nmatmul C = op(A) @ op(B), fp32 accumulate; GFLOP/s = 2*M*N*K / time\n");
    printf("%-16s %6s %6s %6s %3s %10s %10s %10s %10s %10s %14s %10s\n", "shape", "M", "N", "K",
           "op", "fp32 tiled", cpu_path ? "fp32 cpu" : "", "fp16 st.", naive ? "naive" : "",
           "tiled dbuf", "split-K (S)", "scalar ld");
  }
  for (int s = 0; s < nshapes; s++) {
    mm_shape *sh = &shapes[s];
    mm_arg m;
    if (mm_setup(&b, sh, &m)) goto done;
    vklm_gemm whole = {.M = sh->M, .N = sh->N, .K = sh->K, .batch = 1};
    /* gf: tiled fp32, fp16 storage, naive, CPU-type fp32, tiled fp32 double-buffered, split-K
     * with the slices vklm_matmul_splitk_choose picks (the GPU family's kernels per slice), the
     * chosen tile with scalar loads (the first column has vector loads where the shape allows) */
    double flops = vklm_matmul_flops(&whole), gf[7] = {0, 0, 0, 0, 0, 0, 0};
    m.splits = m.nchunks == 1 ? vklm_matmul_splitk_choose(b.ctx, &m.g[0]) : 1;
    for (int kind = 0; kind < 7; kind++) {
      if (kind == 2 && (!naive || flops > (cpu ? 2e9 : 2e12))) continue;
      if (kind == 3 && !cpu_path) continue;
      if (kind == 4 && !bench_dbuf_fits(b.ctx, &m.g[0])) continue;
      if (kind == 5 && (m.splits < 2 || vklm_arena_alloc(b.arena,
                                                         vklm_matmul_splitk_scratch_bytes(
                                                             b.ctx, &m.g[0], m.splits),
                                                         &m.scratch) != VKLM_OK))
        continue;
      m.kind = kind == 3 ? 0 : kind;
      vklm_context_set_kernels(b.ctx, kind == 0 || kind >= 4 ? VKLM_KERNELS_GPU
                                      : kind == 3            ? VKLM_KERNELS_CPU
                                                             : cfg.kernels);
      double t = time_recorded(&b, rec_mm, &m);
      vklm_context_set_kernels(b.ctx, cfg.kernels);
      if (t < 0) goto done;
      gf[kind] = flops / t / 1e9;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "shape", sh->name);
    cJSON_AddNumberToObject(o, "M", sh->M);
    cJSON_AddNumberToObject(o, "N", sh->N);
    cJSON_AddNumberToObject(o, "K", sh->K);
    cJSON_AddBoolToObject(o, "trans_a", sh->trans_a);
    cJSON_AddBoolToObject(o, "trans_b", sh->trans_b);
    cJSON_AddNumberToObject(o, "chunks", m.nchunks);
    cJSON_AddNumberToObject(o, "gflops_f32", gf[0]);
    if (gf[3] > 0) cJSON_AddNumberToObject(o, "gflops_f32_cpu", gf[3]);
    cJSON_AddNumberToObject(o, "gflops_f16_storage", gf[1]);
    if (gf[2] > 0) cJSON_AddNumberToObject(o, "gflops_naive", gf[2]);
    if (gf[4] > 0) cJSON_AddNumberToObject(o, "gflops_f32_dbuf", gf[4]);
    cJSON_AddNumberToObject(o, "gflops_f32_scalar_loads", gf[6]);
    if (gf[5] > 0) {
      cJSON_AddNumberToObject(o, "gflops_f32_splitk", gf[5]);
      cJSON_AddNumberToObject(o, "splitk_slices", m.splits);
    }
    cJSON_AddItemToArray(mmj, o);
    if (!json) {
      char nv[16] = "";
      if (gf[2] > 0) snprintf(nv, sizeof nv, "%10.1f", gf[2]);
      else if (naive) snprintf(nv, sizeof nv, "%10s", "-");
      char cv[16] = "";
      if (cpu_path) snprintf(cv, sizeof cv, "%10.1f", gf[3]);
      char dv[16] = "         -";
      if (gf[4] > 0) snprintf(dv, sizeof dv, "%10.1f", gf[4]);
      char sv[24] = "             -";
      if (gf[5] > 0) snprintf(sv, sizeof sv, "%9.1f (%2u)", gf[5], m.splits);
      printf("%-16s %6u %6u %6u %s%s %10.1f %10s %10.1f %10s %s %s %10.1f\n", sh->name, sh->M,
             sh->N, sh->K, sh->trans_a ? "T" : "N", sh->trans_b ? "T" : "N", gf[0], cv, gf[1],
             naive ? nv : "", dv, sv, gf[6]);
      fflush(stdout);
    }
  }
  /* Elementwise: x *= 1 over 64 MiB (16 MiB under a CPU driver): read + write per element. */
  {
    ew_arg e = {.n = (uint32_t)((cpu ? 16u : 64u) << 20) / 4};
    vklm_arena_reset(b.arena);
    if (vklm_arena_alloc(b.arena, (uint64_t)e.n * 4, &e.x)) {
      fprintf(stderr, "vklm bench: %s\n", vklm_context_error(b.ctx));
      goto done;
    }
    double t = time_recorded(&b, rec_scale, &e);
    if (t < 0) goto done;
    double gbs = 2.0 * e.n * 4 / t / 1e9;
    cJSON *o = cJSON_AddObjectToObject(root, "elementwise");
    cJSON_AddStringToObject(o, "op", "scale_f32 (read + write)");
    cJSON_AddNumberToObject(o, "bytes", 2.0 * e.n * 4);
    cJSON_AddNumberToObject(o, "gb_per_s", gbs);
    if (!json) printf("\nelementwise scale_f32 over %.0f MiB: %.1f GB/s (read + write)\n", e.n * 4 / 1048576.0, gbs);
  }
  cJSON_AddNumberToObject(root, "pipelines", vklm_pipeline_count(b.ctx));
  cJSON_AddNumberToObject(root, "pipeline_build_ms", vklm_pipeline_build_ms(b.ctx));
  if (!json)
    printf("%u pipelines built in %.1f ms (pipeline cache: %s)\n", vklm_pipeline_count(b.ctx),
           vklm_pipeline_build_ms(b.ctx), cfg.cache_dir[0] ? cfg.cache_dir : "off");
  if (json) {
    char *s = cJSON_Print(root);
    printf("%s\n", s);
    cJSON_free(s);
  }
  rc = 0;
done:
  cJSON_Delete(root);
  vklm_cmd_destroy(b.cmd);
  vklm_arena_destroy(b.arena);
  vklm_context_destroy(b.ctx);
  return rc;
}

int cmd_bench(int argc, char **argv) {
  /* `vklm bench [flags]` and `vklm bench all [flags]`: the benchmark card (bench_card.c) */
  if (argc < 2 || argv[1][0] == '-') return bench_card(argc, argv);
  if (!strcmp(argv[1], "all")) return bench_card(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "ops")) return bench_ops(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "tokenizer")) return bench_tokenizer(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "train")) return bench_train(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "infer")) return bench_infer(argc - 1, argv + 1);
  fprintf(stderr, "vklm bench: unknown benchmark '%s'\n"
                  "usage: vklm bench [all|ops|tokenizer|train|infer] [flags]   (vklm bench --help)\n",
          argv[1]);
  return 2;
}

/* vklm bench [all]: the benchmark card of one device, the figures a user compares across vendors
 * (issue 13), as a table on the terminal, --json (the card scripts/bench-compare.py lines up) or
 * --md (a Markdown block for docs/benchmarks.md).
 *
 * What it holds: the device, vendor, driver, Vulkan API version and the capabilities the kernels
 * use (subgroup size, shared memory, fp16 arithmetic, 16-bit storage, cooperative-matrix shapes,
 * the kernel family: vklm_context_cpu_kernels); GEMM GFLOP/s by path (fp32 tiled, fp32 CPU-type
 * variant on CPU devices, fp16 storage, naive as a floor, cooperative matrices where the device
 * has them) at the GPT-2 124M and Llama shapes;
 * attention forward and backward at a GPT-2 shape; training tokens/s, ms/step, MFU, dispatches,
 * barriers and queue submissions per step and peak memory (gpt2-124M at T 1024 and the largest
 * batch up to 16 whose vklm_model_config_bytes fits the device; gpt2-tiny at 4 x 64 on a CPU
 * device); prefill and decode
 * tokens/s by batch size and KV-cache precision; the peak device memory.
 *
 * It runs the other benchmarks' own code (apps/bench.h): bench ops' GEMM timing, bench train's
 * bench_one, bench infer's session timings. MFU is measured against the device's fp32 peak from
 * the table below (by PCI vendor and device ID) where the device is known, else against the best
 * fp32 GEMM of the same card; the card says which.
 *
 * Every figure is also a row of "figures" (section, name, value, unit, better) in the JSON, which
 * is what the terminal and Markdown tables and bench-compare.py read. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_util.h"
#include "bench.h"
#include "commands.h"
#include "flags.h"
#include "gen_common.h"

/* ---- known peaks (dense TFLOP/s, no sparsity) by PCI vendor and device ID ------------------
 * fp32: the non-tensor (vector/shader) fp32 rate; fp16/bf16: the matrix units with fp32
 * accumulation. Sources (vendor documents; the sparse figures they headline are halved):
 *  [nv-h100]  NVIDIA H100 Tensor Core GPU datasheet: SXM5 FP32 67, BF16/FP16 Tensor 1,979
 *             (sparse); PCIe FP32 51, BF16/FP16 Tensor 1,513 (sparse).
 *  [nv-h200]  NVIDIA H200 Tensor Core GPU datasheet: SXM FP32 67, BF16/FP16 Tensor 1,979
 *             (sparse); NVL FP32 60, BF16/FP16 Tensor 1,671 (sparse).
 *  [nv-a100]  NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5, BF16/FP16 Tensor 312 (624
 *             sparse), SXM4 and PCIe alike.
 *  [nv-ada]   NVIDIA Ada GPU architecture whitepaper, RTX 4090: FP32 82.6, FP16/BF16 Tensor with
 *             FP32 accumulate 165.2 (330.4 sparse).
 *  [nv-ampere] NVIDIA Ampere GA102 GPU architecture whitepaper, RTX 3090: FP32 35.6, FP16/BF16
 *             Tensor with FP32 accumulate 71 (142 sparse).
 *  [amd-mi300x] AMD Instinct MI300X data sheet: FP32 vector 163.4, FP16/BF16 1,307.4 (dense).
 *  [amd-mi250] AMD Instinct MI250 data sheet: FP32 vector 45.3, FP16/BF16 362.1. PCI ID 0x740c
 *             is shared by the MI250 and MI250X (47.9 / 383): the lower figures are used.
 *  [intel-a770] derived from Intel's Arc A770 specification (32 Xe-cores = 4096 FP32 lanes and
 *             512 XMX engines, 2.1 GHz graphics clock): FP32 4096 x 2 x 2.1 GHz = 17.2;
 *             FP16/BF16 XMX 512 x 128 x 2.1 GHz = 137.6. Not a figure Intel prints: marked
 *             "derived".
 * PCI IDs as the PCI ID database names them. Peaks assume the boost clock; a card held to a lower
 * power limit reaches less. */
typedef struct known_peak {
  uint32_t vendor_id, device_id;
  const char *name;
  double fp32, fp16, bf16; /* TFLOP/s */
  const char *source;
} known_peak;

static const known_peak PEAKS[] = {
    {0x10de, 0x2330, "NVIDIA H100 SXM5 80GB", 66.9, 989.5, 989.5, "datasheet [nv-h100]"},
    {0x10de, 0x2331, "NVIDIA H100 PCIe", 51.2, 756.5, 756.5, "datasheet [nv-h100]"},
    {0x10de, 0x2335, "NVIDIA H200 SXM 141GB", 66.9, 989.5, 989.5, "datasheet [nv-h200]"},
    {0x10de, 0x233b, "NVIDIA H200 NVL", 60.0, 835.5, 835.5, "datasheet [nv-h200]"},
    {0x10de, 0x20b0, "NVIDIA A100 SXM4 40GB", 19.5, 312, 312, "datasheet [nv-a100]"},
    {0x10de, 0x20b2, "NVIDIA A100 SXM4 80GB", 19.5, 312, 312, "datasheet [nv-a100]"},
    {0x10de, 0x20b5, "NVIDIA A100 PCIe 80GB", 19.5, 312, 312, "datasheet [nv-a100]"},
    {0x10de, 0x20f1, "NVIDIA A100 PCIe 40GB", 19.5, 312, 312, "datasheet [nv-a100]"},
    {0x10de, 0x2684, "NVIDIA GeForce RTX 4090", 82.6, 165.2, 165.2, "whitepaper [nv-ada]"},
    {0x10de, 0x2204, "NVIDIA GeForce RTX 3090", 35.6, 71, 71, "whitepaper [nv-ampere]"},
    {0x1002, 0x74a1, "AMD Instinct MI300X", 163.4, 1307.4, 1307.4, "data sheet [amd-mi300x]"},
    {0x1002, 0x740c, "AMD Instinct MI250", 45.3, 362.1, 362.1, "data sheet [amd-mi250]"},
    {0x8086, 0x56a0, "Intel Arc A770", 17.2, 137.6, 137.6, "derived [intel-a770]"},
};

static const known_peak *peak_find(uint32_t vendor, uint32_t device) {
  for (size_t i = 0; i < sizeof PEAKS / sizeof PEAKS[0]; i++)
    if (PEAKS[i].vendor_id == vendor && PEAKS[i].device_id == device) return &PEAKS[i];
  return NULL;
}

/* ---- the card ------------------------------------------------------------------------------ */
typedef struct card {
  vklm_config cfg;
  vklm_caps caps; /* a copy: the GEMM context is gone before training starts */
  int cpu, quick;
  double seconds; /* per GEMM and attention measurement */
  cJSON *root;    /* owned */
  cJSON *figs;    /* borrowed: root's "figures" */
} card;

/* One figure: better is 1 when higher is better, -1 when lower is, 0 for neither. */
static void fig(card *k, const char *section, const char *name, double v, const char *unit,
                int better) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "section", section);
  cJSON_AddStringToObject(o, "name", name);
  cJSON_AddNumberToObject(o, "value", v);
  cJSON_AddStringToObject(o, "unit", unit);
  cJSON_AddStringToObject(o, "better", better > 0 ? "higher" : better < 0 ? "lower" : "none");
  cJSON_AddItemToArray(k->figs, o);
}

static void device_info(card *k, vklm_context *ctx) {
  const vklm_caps *c = &k->caps;
  char s[96];
  cJSON *d = cJSON_AddObjectToObject(k->root, "device");
  cJSON_AddStringToObject(d, "name", c->name);
  cJSON_AddStringToObject(d, "vendor", c->vendor);
  snprintf(s, sizeof s, "0x%04x", c->vendor_id);
  cJSON_AddStringToObject(d, "vendor_id", s);
  snprintf(s, sizeof s, "0x%04x", c->device_id);
  cJSON_AddStringToObject(d, "device_id", s);
  cJSON_AddStringToObject(d, "type", vklm_device_type_name(c->type));
  cJSON_AddStringToObject(d, "driver", c->driver_name);
  cJSON_AddStringToObject(d, "driver_info", c->driver_info);
  cJSON_AddStringToObject(d, "driver_version", c->driver_version_str);
  snprintf(s, sizeof s, "%u.%u.%u", c->api_version >> 22, (c->api_version >> 12) & 0x3ff,
           c->api_version & 0xfff);
  cJSON_AddStringToObject(d, "api_version", s);
  cJSON_AddNumberToObject(d, "device_local_bytes", (double)c->device_local_bytes);
  cJSON_AddBoolToObject(d, "unified_memory", c->unified_memory);
  cJSON_AddBoolToObject(d, "baseline_limits", c->baseline);
  cJSON *p = cJSON_AddObjectToObject(k->root, "capabilities");
  cJSON_AddNumberToObject(p, "subgroup_size", c->subgroup_size);
  cJSON_AddNumberToObject(p, "subgroup_min", c->subgroup_min);
  cJSON_AddNumberToObject(p, "subgroup_max", c->subgroup_max);
  cJSON_AddBoolToObject(p, "subgroup_arithmetic", (c->subgroup_ops & VKLM_SUBGROUP_ARITHMETIC) != 0);
  cJSON_AddNumberToObject(p, "shared_memory_bytes", c->max_shared_memory);
  cJSON_AddBoolToObject(p, "fp16_arithmetic", c->fp16_arithmetic);
  cJSON_AddBoolToObject(p, "storage_16bit", c->storage_16bit);
  cJSON *cm = cJSON_AddArrayToObject(p, "cooperative_matrix");
  for (int i = 0; i < c->coopmat_count; i++) {
    const vklm_coopmat_shape *m = &c->coopmat[i];
    snprintf(s, sizeof s, "%ux%ux%u %s*%s+%s->%s (%s)", m->m, m->n, m->k, m->a_type, m->b_type,
             m->c_type, m->result_type, m->source);
    cJSON_AddItemToArray(cm, cJSON_CreateString(s));
  }
  cJSON_AddStringToObject(p, "kernels", vklm_context_cpu_kernels(ctx) ? "cpu" : "gpu");
  cJSON_AddBoolToObject(p, "cpu_matmul_available", vklm_matmul_cpu_available(ctx));
  char coop[200];
  vklm_matmul_coopmat_describe(ctx, coop, sizeof coop);
  cJSON_AddStringToObject(p, "coopmat_gemm", coop[0] ? coop : "none");
}

/* ---- GEMM ----------------------------------------------------------------------------------- */
enum { P_TILED, P_CPU, P_F16, P_NAIVE, P_COOP, NPATHS };
static const char *PATH_NAMES[NPATHS] = {"fp32 tiled", "fp32 cpu", "fp16 storage", "naive",
                                         "coopmat fp16"};

static int gemm_section(card *k, bench *b, uint32_t rows, double *best_f32, char *best_what,
                        size_t best_len) {
  vklm_context *ctx = b->ctx;
  uint32_t T = rows;
  /* GPT-2 124M (C 768, 4C MLP, V 50257) and Llama shapes: Llama 3.2 1B (C 2048, 32 query and 8
   * key/value heads of 64, F 8192) everywhere, Llama 2 7B (C 4096, F 11008) on GPUs. On CPU
   * devices, where one repetition of the GPU-type kernels takes seconds, the LM head and the 7B
   * shapes are left out, and the GPU-type paths (tiled, fp16 storage, naive) run only at the
   * shapes marked in `every_path` beside the CPU-type variant. */
  static const int every_path[] = {0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  mm_shape all[] = {
      {0}, {0}, {0}, {0}, {0}, {0}, /* bench_gpt2_shapes */
      {"llama-1b qkv", T, 3072, 2048, 0, 1},
      {"llama-1b mlp down", T, 2048, 8192, 0, 1},
      {"llama-7b qkv", T, 12288, 4096, 0, 1},
      {"llama-7b mlp gate+up", T, 22016, 4096, 0, 1},
      {"llama-7b mlp down", T, 4096, 11008, 0, 1},
  };
  bench_gpt2_shapes(T, all);
  int cpu_variant = k->cpu && vklm_matmul_cpu_available(ctx);
  cJSON *arr = cJSON_AddArrayToObject(k->root, "gemm");
  cJSON_AddNumberToObject(k->root, "gemm_rows", rows);
  *best_f32 = 0;
  for (size_t s = 0; s < sizeof all / sizeof all[0]; s++) {
    const mm_shape *sh = &all[s];
    int big = !strcmp(sh->name, "gpt2 lm head") || !strncmp(sh->name, "llama-7b", 8);
    if (k->cpu && big) continue;
    mm_arg m;
    if (mm_setup(b, sh, &m)) return -1;
    vklm_gemm whole = {.M = sh->M, .N = sh->N, .K = sh->K, .batch = 1};
    double flops = vklm_matmul_flops(&whole);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "shape", sh->name);
    cJSON_AddNumberToObject(o, "M", sh->M);
    cJSON_AddNumberToObject(o, "N", sh->N);
    cJSON_AddNumberToObject(o, "K", sh->K);
    char op[3] = {sh->trans_a ? 'T' : 'N', sh->trans_b ? 'T' : 'N', 0};
    cJSON_AddStringToObject(o, "op", op);
    cJSON_AddNumberToObject(o, "chunks", m.nchunks);
    cJSON *g = cJSON_AddObjectToObject(o, "gflops");
    cJSON_AddItemToArray(arr, o);
    for (int p = 0; p < NPATHS; p++) {
      if (p == P_CPU && !cpu_variant) continue;
      if (p == P_COOP && !vklm_matmul_coopmat_available(ctx)) continue;
      if (p != P_CPU && cpu_variant && !every_path[s]) continue;
      if (p == P_NAIVE && flops > (k->cpu ? 3e8 : 2e12)) continue; /* a floor, not a wait */
      /* the kernel family decides which fp32 kernel vklm_matmul records */
      vklm_context_set_kernels(ctx, p == P_CPU ? VKLM_KERNELS_CPU : VKLM_KERNELS_GPU);
      m.kind = p == P_F16 ? 1 : p == P_NAIVE ? 2 : p == P_COOP ? 3 : 0;
      double t = time_recorded(b, rec_mm, &m);
      vklm_context_set_kernels(ctx, k->cfg.kernels);
      if (t < 0) return -1;
      double gf = flops / t / 1e9;
      cJSON_AddNumberToObject(g, PATH_NAMES[p], gf);
      char name[96];
      snprintf(name, sizeof name, "%s %s", sh->name, PATH_NAMES[p]);
      fig(k, "gemm", name, gf, "GFLOP/s", 1);
      if ((p == P_TILED || p == P_CPU) && gf > *best_f32) {
        *best_f32 = gf;
        snprintf(best_what, best_len, "%s at %s (%u x %u x %u)", PATH_NAMES[p], sh->name, sh->M,
                 sh->N, sh->K);
      }
    }
  }
  return 0;
}

/* ---- attention ------------------------------------------------------------------------------ */
typedef struct att_arg {
  vklm_buffer qkv, out, lse, dout, dqkv, scratch;
  uint32_t B, T, NH, HS;
} att_arg;

static vklm_status rec_att_fwd(vklm_cmd *cmd, void *p) {
  att_arg *a = p;
  return vklm_attention_forward(cmd, a->out, a->lse, a->qkv, a->B, a->T, a->NH, a->NH, a->HS, 1);
}

static vklm_status rec_att_bwd(vklm_cmd *cmd, void *p) {
  att_arg *a = p;
  return vklm_attention_backward(cmd, a->dqkv, a->scratch, a->dout, a->lse, a->qkv, a->B, a->T,
                                 a->NH, a->NH, a->HS, 1);
}

static int attention_section(card *k, bench *b) {
  /* GPT-2 124M's attention (12 heads of 64), causal, at its full context on a GPU */
  att_arg a = {.B = k->cpu ? 1 : 8, .T = k->cpu ? 128 : 1024, .NH = 12, .HS = 64};
  uint64_t C = (uint64_t)a.NH * a.HS, BT = (uint64_t)a.B * a.T;
  vklm_arena_reset(b->arena);
  if (vklm_arena_alloc(b->arena, BT * 3 * C * 4, &a.qkv) ||
      vklm_arena_alloc(b->arena, BT * 3 * C * 4, &a.dqkv) ||
      vklm_arena_alloc(b->arena, BT * C * 4, &a.out) ||
      vklm_arena_alloc(b->arena, BT * C * 4, &a.dout) ||
      vklm_arena_alloc(b->arena, BT * a.NH * 4, &a.lse) ||
      vklm_arena_alloc(b->arena, BT * a.NH * 4, &a.scratch) || vklm_cmd_begin(b->cmd) ||
      vklm_fill(b->cmd, a.qkv, 0.01f, (uint32_t)(BT * 3 * C)) ||
      vklm_fill(b->cmd, a.dout, 0.02f, (uint32_t)(BT * C)) || vklm_cmd_end(b->cmd) ||
      vklm_cmd_run(b->cmd)) {
    fprintf(stderr, "vklm bench: attention: %s\n", vklm_context_error(b->ctx));
    return -1;
  }
  /* FLOPs: Q K^T and P V over the causal half (T(T+1)/2 pairs) forward; the backward recomputes
   * the scores and does four more such products (dV, dP, dQ, dK): 5/2 of the forward */
  double fwd = 4.0 * a.B * a.NH * a.HS * (a.T * (a.T + 1.0) / 2), bwd = 2.5 * fwd;
  double tf = time_recorded(b, rec_att_fwd, &a); /* also leaves out and lse for the backward */
  if (tf < 0) return -1;
  double tb = time_recorded(b, rec_att_bwd, &a);
  if (tb < 0) return -1;
  cJSON *o = cJSON_AddObjectToObject(k->root, "attention");
  cJSON_AddNumberToObject(o, "B", a.B);
  cJSON_AddNumberToObject(o, "T", a.T);
  cJSON_AddNumberToObject(o, "NH", a.NH);
  cJSON_AddNumberToObject(o, "HS", a.HS);
  cJSON_AddBoolToObject(o, "causal", 1);
  cJSON_AddNumberToObject(o, "forward_ms", tf * 1e3);
  cJSON_AddNumberToObject(o, "forward_gflops", fwd / tf / 1e9);
  cJSON_AddNumberToObject(o, "backward_ms", tb * 1e3);
  cJSON_AddNumberToObject(o, "backward_gflops", bwd / tb / 1e9);
  fig(k, "attention", "forward ms", tf * 1e3, "ms", -1);
  fig(k, "attention", "forward GFLOP/s", fwd / tf / 1e9, "GFLOP/s", 1);
  fig(k, "attention", "backward ms", tb * 1e3, "ms", -1);
  fig(k, "attention", "backward GFLOP/s", bwd / tb / 1e9, "GFLOP/s", 1);
  return 0;
}

/* ---- training -------------------------------------------------------------------------------- */
static int training_section(card *k, const char *model, uint32_t B, uint32_t T, double peak,
                            uint64_t *peak_mem) {
  vklm_model_config mc;
  if (vklm_model_config_preset(model, &mc)) {
    fprintf(stderr, "vklm bench: unknown model '%s'\n", model);
    return -1;
  }
  if (!T) T = k->cpu ? 64 : mc.max_seq;
  if (T > mc.max_seq) mc.max_seq = T;
  uint64_t room = k->caps.device_local_bytes - k->caps.device_local_bytes / 10;
  if (!B && k->cpu) B = 4;
  /* the largest power of two up to 16 (a card is minutes, not hours) whose weights, gradients,
   * moments and activations fit 90% of the device-local memory */
  if (!B)
    for (B = 16; B > 1 && vklm_model_config_bytes(&mc, B, T) > room; B /= 2) {
    }
  uint32_t steps = k->cpu ? (k->quick ? 2 : 3) : (k->quick ? 3 : 5);
  train_result r = {0};
  if (bench_one(&k->cfg, model, B, T, steps, peak, NULL, NULL, &r)) return -1;
  cJSON *o = cJSON_AddObjectToObject(k->root, "training");
  cJSON_AddStringToObject(o, "model", model);
  cJSON_AddNumberToObject(o, "params", (double)r.params);
  cJSON_AddNumberToObject(o, "B", B);
  cJSON_AddNumberToObject(o, "T", T);
  cJSON_AddNumberToObject(o, "steps", steps);
  cJSON_AddStringToObject(o, "precision", "fp32");
  cJSON_AddNumberToObject(o, "ms_per_step", r.ms_step);
  cJSON_AddNumberToObject(o, "tokens_per_s", r.tok_s);
  cJSON_AddNumberToObject(o, "flops_per_token", r.flops_tok);
  cJSON_AddNumberToObject(o, "mfu", r.mfu);
  cJSON_AddNumberToObject(o, "dispatches_per_step", r.dispatches);
  cJSON_AddNumberToObject(o, "barriers_per_step", r.barriers);
  cJSON_AddNumberToObject(o, "submits_per_step", r.submits);
  cJSON_AddNumberToObject(o, "peak_memory_bytes", r.peak_mem);
  cJSON_AddNumberToObject(o, "loss_first", r.loss0);
  cJSON_AddNumberToObject(o, "loss_last", r.loss1);
  fig(k, "training", "tokens/s", r.tok_s, "tokens/s", 1);
  fig(k, "training", "ms/step", r.ms_step, "ms", -1);
  fig(k, "training", "MFU", 100 * r.mfu, "%", 1);
  fig(k, "training", "dispatches/step", r.dispatches, "", -1);
  fig(k, "training", "barriers/step", r.barriers, "", -1);
  fig(k, "training", "submissions/step", r.submits, "", -1);
  fig(k, "training", "peak memory", r.peak_mem / 1048576.0, "MiB", -1);
  *peak_mem = (uint64_t)r.peak_mem;
  return 0;
}

/* ---- inference ------------------------------------------------------------------------------- */
static int inference_section(card *k, const char *model, uint64_t *peak_mem) {
  vklm_model_config mc;
  if (vklm_model_config_preset(model, &mc)) {
    fprintf(stderr, "vklm bench: unknown model '%s'\n", model);
    return -1;
  }
  uint32_t n_ctx = k->cpu ? 64 : 1024, prefill = k->cpu ? 32 : 512, dctx = k->cpu ? 16 : 128;
  uint32_t nd = k->cpu ? (k->quick ? 8 : 16) : (k->quick ? 32 : 64), bctx = dctx;
  static const uint32_t gpu_b[] = {1, 4, 16}, cpu_b[] = {1, 4};
  const uint32_t *bats = k->cpu ? cpu_b : gpu_b;
  int nbat = k->cpu ? 2 : 3;
  if (n_ctx > mc.max_seq) n_ctx = mc.max_seq;
  if (prefill > n_ctx) prefill = n_ctx;
  if (dctx + nd + 2 > n_ctx) dctx = bctx = n_ctx - nd - 2;
  double seconds = k->cpu ? (k->quick ? 0.1 : 0.25) : (k->quick ? 0.3 : 1.0);
  uint32_t ntok = n_ctx + 64;
  int32_t *tok = malloc(ntok * sizeof *tok);
  if (!tok) return -1;
  uint64_t ts = 7;
  for (uint32_t i = 0; i < ntok; i++) {
    ts = ts * 6364136223846793005ull + 1442695040888963407ull;
    tok[i] = (int32_t)((ts >> 33) % mc.vocab_size);
  }
  vklm_context *ctx = app_context(&k->cfg);
  int rc = ctx ? 0 : -1;
  cJSON *o = cJSON_AddObjectToObject(k->root, "inference");
  cJSON_AddStringToObject(o, "model", model);
  cJSON_AddStringToObject(o, "weights_source", "f32");
  cJSON_AddNumberToObject(o, "n_ctx", n_ctx);
  cJSON_AddNumberToObject(o, "prefill_tokens", prefill);
  cJSON_AddNumberToObject(o, "decode_context", dctx);
  cJSON_AddNumberToObject(o, "decode_steps", nd);
  cJSON *runs = cJSON_AddArrayToObject(o, "runs");
  /* the automatic weights and KV cache (fp16 weights on GPUs, an f16 cache with 16-bit
   * storage) and all-fp32 beside them where they differ */
  int kvs[2] = {0, VKLM_DTYPE_F32 + 1}, wts[2] = {0, VKLM_DTYPE_F32 + 1};
  int nkv = k->caps.storage_16bit || vklm_infer_weight_dtype(ctx, NULL) != VKLM_DTYPE_F32 ? 2 : 1;
  for (int v = 0; v < nkv && rc == 0; v++) {
    char err[1024] = "";
    rnd_src rs = {.type = VKLM_DTYPE_F32, .seed = 1234};
    vklm_infer *s = NULL;
    vklm_infer_options io = {.n_seq = bats[nbat - 1], .kv_type = kvs[v], .weight_type = wts[v]};
    vklm_status st = vklm_infer_create(ctx, &mc, n_ctx, &io, rnd_get, &rs, &s, err, sizeof err);
    rnd_free(&rs);
    if (st) {
      fprintf(stderr, "vklm bench: inference: %s\n", err);
      rc = -1;
      break;
    }
    char kv[48]; /* "weights f16, kv f16" */
    snprintf(kv, sizeof kv, "weights %s, kv %s", vklm_dtype_name(vklm_infer_weights_dtype(s)),
             vklm_dtype_name(vklm_infer_kv_dtype(s)));
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToArray(runs, r);
    cJSON_AddStringToObject(r, "weights", vklm_dtype_name(vklm_infer_weights_dtype(s)));
    cJSON_AddStringToObject(r, "kv_cache", vklm_dtype_name(vklm_infer_kv_dtype(s)));
    cJSON_AddNumberToObject(r, "session_memory_bytes", (double)vklm_infer_memory(s));
    double sub = 0, tp = time_prefill(s, tok, prefill, seconds);
    double td = tp < 0 ? -1 : time_decode(s, tok, dctx, nd, &sub);
    char name[96];
    if (tp < 0 || td < 0) rc = -1;
    if (rc == 0) {
      cJSON_AddNumberToObject(r, "prefill_tok_s", prefill / tp);
      cJSON_AddNumberToObject(r, "decode_tok_s", 1.0 / td);
      cJSON_AddNumberToObject(r, "submits_per_token", sub);
      snprintf(name, sizeof name, "prefill %u tokens, %s", prefill, kv);
      fig(k, "inference", name, prefill / tp, "tokens/s", 1);
      snprintf(name, sizeof name, "decode batch 1, %s", kv);
      fig(k, "inference", name, 1.0 / td, "tokens/s", 1);
      snprintf(name, sizeof name, "decode submissions/token, %s", kv);
      fig(k, "inference", name, sub, "", -1);
    }
    cJSON *bj = cJSON_AddArrayToObject(r, "batch");
    for (int i = 0; i < nbat && rc == 0; i++) {
      if (bats[i] == 1) continue; /* batch 1 is the decode above */
      double t = time_batch(s, tok, bats[i], bctx, nd);
      if (t < 0) {
        rc = -1;
        break;
      }
      cJSON *e = cJSON_CreateObject();
      cJSON_AddNumberToObject(e, "sequences", bats[i]);
      cJSON_AddNumberToObject(e, "tok_s", bats[i] / t);
      cJSON_AddItemToArray(bj, e);
      snprintf(name, sizeof name, "decode batch %u, %s", bats[i], kv);
      fig(k, "inference", name, bats[i] / t, "tokens/s", 1);
    }
    vklm_infer_destroy(s);
  }
  if (rc == 0) {
    *peak_mem = vklm_context_memory_peak(ctx);
    cJSON_AddNumberToObject(o, "peak_memory_bytes", (double)*peak_mem);
    fig(k, "inference", "peak memory", *peak_mem / 1048576.0, "MiB", -1);
  }
  vklm_context_destroy(ctx);
  free(tok);
  return rc;
}

/* ---- output ---------------------------------------------------------------------------------- */
static const char *jstr(const cJSON *o, const char *key) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
  return s ? s : "?";
}

static double jnum(const cJSON *o, const char *key) {
  return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static int jbool(const cJSON *o, const char *key) {
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* The header lines and then the tables, plain (aligned columns) or Markdown. */
static void render(const cJSON *root, int md) {
  const cJSON *d = cJSON_GetObjectItem(root, "device"), *c = cJSON_GetObjectItem(root, "capabilities");
  const cJSON *pk = cJSON_GetObjectItem(root, "mfu_peak");
  char cm[512] = "";
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "cooperative_matrix")) {
    size_t n = strlen(cm);
    snprintf(cm + n, sizeof cm - n, "%s%s", n ? ", " : "", cJSON_GetStringValue(e));
  }
  const char *b = md ? "**" : "";
  printf("%sdevice%s: %s (%s, vendor %s, device %s), %s%s\n", b, b, jstr(d, "name"),
         jstr(d, "type"), jstr(d, "vendor_id"), jstr(d, "device_id"), jstr(d, "vendor"),
         jbool(d, "baseline_limits") ? " [baseline limits]" : "");
  if (md) printf("\n");
  printf("%sdriver%s: %s %s (%s); Vulkan %s; vklm %s; %s\n", b, b, jstr(d, "driver"),
         jstr(d, "driver_version"), jstr(d, "driver_info"), jstr(d, "api_version"),
         jstr(root, "vklm_version"), jstr(root, "date"));
  if (md) printf("\n");
  printf("%scapabilities%s: subgroup %.0f (%.0f-%.0f%s), shared memory %.0f KiB, fp16 arithmetic "
         "%s, 16-bit storage %s, cooperative matrix %s; kernels: %s\n",
         b, b, jnum(c, "subgroup_size"), jnum(c, "subgroup_min"), jnum(c, "subgroup_max"),
         jbool(c, "subgroup_arithmetic") ? ", arithmetic" : "", jnum(c, "shared_memory_bytes") / 1024,
         jbool(c, "fp16_arithmetic") ? "yes" : "no", jbool(c, "storage_16bit") ? "yes" : "no",
         cm[0] ? cm : "none", !strcmp(jstr(c, "kernels"), "cpu") ? "CPU-type variants" : "GPU");
  if (md) printf("\n");
  printf("%sMFU peak%s: %.1f GFLOP/s fp32, %s\n\n", b, b, jnum(pk, "gflops"), jstr(pk, "source"));

  /* GEMM: shapes as rows, paths as columns */
  printf(md ? "| GEMM GFLOP/s | M | N | K | op |" : "%-22s %6s %6s %6s %3s", "GEMM GFLOP/s", "M", "N",
         "K", "op");
  for (int p = 0; p < NPATHS; p++) printf(md ? " %s |" : " %12s", PATH_NAMES[p]);
  printf(md ? "\n| --- | ---: | ---: | ---: | --- |" : "\n");
  for (int p = 0; md && p < NPATHS; p++) printf(" ---: |");
  if (md) printf("\n");
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "gemm")) {
    printf(md ? "| %s | %.0f | %.0f | %.0f | %s |" : "%-22s %6.0f %6.0f %6.0f %3s", jstr(e, "shape"),
           jnum(e, "M"), jnum(e, "N"), jnum(e, "K"), jstr(e, "op"));
    const cJSON *g = cJSON_GetObjectItem(e, "gflops");
    for (int p = 0; p < NPATHS; p++) {
      const cJSON *v = cJSON_GetObjectItem(g, PATH_NAMES[p]);
      if (v) printf(md ? " %.1f |" : " %12.1f", cJSON_GetNumberValue(v));
      else printf(md ? " – |" : " %12s", "-");
    }
    printf("\n");
  }
  printf("\n");
  /* everything else: one figure a row */
  const cJSON *at = cJSON_GetObjectItem(root, "attention"), *tr = cJSON_GetObjectItem(root, "training");
  const cJSON *in = cJSON_GetObjectItem(root, "inference");
  printf("attention: B %.0f, T %.0f, %.0f heads of %.0f, causal; training: %s, B %.0f x T %.0f, "
         "fp32; inference: %s, f32 weights, prefill %.0f tokens, decode after %.0f\n\n",
         jnum(at, "B"), jnum(at, "T"), jnum(at, "NH"), jnum(at, "HS"), jstr(tr, "model"),
         jnum(tr, "B"), jnum(tr, "T"), jstr(in, "model"), jnum(in, "prefill_tokens"),
         jnum(in, "decode_context"));
  if (md) printf("| section | figure | value | unit |\n| --- | --- | ---: | --- |\n");
  else printf("%-10s %-36s %12s %s\n", "section", "figure", "value", "unit");
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "figures")) {
    if (!strcmp(jstr(e, "section"), "gemm")) continue;
    double v = jnum(e, "value");
    const char *fmt = v >= 100 || v == (double)(long long)v ? "%.0f" : v >= 10 ? "%.1f" : "%.3g";
    char val[32];
    snprintf(val, sizeof val, fmt, v);
    if (md)
      printf("| %s | %s | %s | %s |\n", jstr(e, "section"), jstr(e, "name"), val, jstr(e, "unit"));
    else
      printf("%-10s %-36s %12s %s\n", jstr(e, "section"), jstr(e, "name"), val, jstr(e, "unit"));
  }
}

int bench_card(int argc, char **argv) {
  card k = {0};
  vklm_config_from_env(&k.cfg);
  int json = 0, md = 0;
  uint32_t rows = 0, B = 0, T = 0;
  const char *train_model = NULL, *infer_model = NULL, *json_file = NULL;
  double seconds = 0;
  const app_flag flags[] = {
      AF_BOOL("--json", &json, "the card as JSON (what scripts/bench-compare.py reads)"),
      AF_BOOL("--md", &md, "the card as Markdown tables (for docs/benchmarks.md)"),
      AF_STRING("--json-file", NULL, &json_file, "F", "also write the card's JSON to F"),
      AF_BOOL("--quick", &k.quick, "shorter measurements (noisier figures)"),
      AF_FLAG("--seconds", NULL, AF_F64, &seconds, 0.005, 60, "S",
              "time per GEMM and attention measurement (default 0.3 GPU, 0.05 CPU;\n"
              "--quick: a third)"),
      AF_FLAG("--tokens", NULL, AF_U32, &rows, 1, 1u << 16, "N",
              "rows M of the GEMM shapes (default 1024 GPU, 32 CPU)"),
      AF_STRING("--train-model", NULL, &train_model, "NAME",
                "preset trained (default gpt2-124M; gpt2-tiny on a CPU device)"),
      AF_FLAG("--batch", "-b", AF_U32, &B, 1, 1024, "B",
              "training batch (default: the largest power of two up to 16 that fits;\n"
              "4 on a CPU device)"),
      AF_FLAG("--seq", "-T", AF_U32, &T, 1, 1u << 16, "T",
              "training sequence length (default the model's context; 64 on a CPU)"),
      AF_STRING("--infer-model", NULL, &infer_model, "NAME",
                "preset decoded (default gpt2-124M; gpt2-tiny on a CPU device)"),
      AF_LAST};
  const app_command c = {
      "bench", "bench [all] [--json | --md] [--quick] [flags]",
      "The benchmark card of the device: capabilities, GEMM GFLOP/s by path, attention,\n"
      "training tokens/s and MFU, prefill and decode tokens/s, peak memory. The other\n"
      "benchmarks: vklm bench ops|train|infer|tokenizer --help.",
      flags, 0, 0, 1};
  int pr = app_flags_parse(&c, argc, argv, &k.cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  if (json && md) {
    fprintf(stderr, "vklm bench: give --json or --md, not both\n");
    return 2;
  }
  vklm_model_config mc;
  const char *given[2] = {train_model, infer_model}, *flag[2] = {"--train-model", "--infer-model"};
  for (int i = 0; i < 2; i++)
    if (given[i] && vklm_model_config_preset(given[i], &mc)) {
      fprintf(stderr, "vklm bench: %s: unknown model '%s' (presets: gpt2-tiny, llama-tiny, "
              "gpt2-124M, gpt2-350M, llama-60M)\n", flag[i], given[i]);
      return 2;
    }
  bench b = {0};
  int rc = 1;
  k.root = cJSON_CreateObject();
  if (!(b.ctx = app_context(&k.cfg))) goto done;
  k.caps = *vklm_context_caps(b.ctx);
  k.cpu = k.caps.type == VKLM_DEVICE_CPU;
  if (seconds <= 0) seconds = (k.cpu ? 0.05 : 0.3) / (k.quick ? 3 : 1);
  b.min_seconds = k.seconds = seconds;
  if (!rows) rows = k.cpu ? 32 : 1024;
  if (!train_model) train_model = k.cpu ? "gpt2-tiny" : "gpt2-124M";
  if (!infer_model) infer_model = k.cpu ? "gpt2-tiny" : "gpt2-124M";
  char date[32];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  cJSON_AddNumberToObject(k.root, "card_version", 1);
  cJSON_AddStringToObject(k.root, "vklm_version", app_version());
  cJSON_AddStringToObject(k.root, "date", date);
  cJSON_AddBoolToObject(k.root, "quick", k.quick);
  device_info(&k, b.ctx);
  k.figs = cJSON_AddArrayToObject(k.root, "figures");
  if (!json && !md) {
    fprintf(stderr, "vklm bench: measuring %s (GEMM, attention, training, inference)...\n",
            k.caps.name);
  }
  double best = 0;
  char best_what[160] = "";
  if (vklm_arena_create(b.ctx, 0, &b.arena) || vklm_cmd_create(b.ctx, &b.cmd)) {
    fprintf(stderr, "vklm bench: %s\n", vklm_context_error(b.ctx));
    goto done;
  }
  double t0 = gen_now_s(), t1, t2, t3;
  if (gemm_section(&k, &b, rows, &best, best_what, sizeof best_what)) goto done;
  t1 = gen_now_s();
  if (attention_section(&k, &b)) goto done;
  t2 = gen_now_s();
  /* the GEMM operands (hundreds of MiB at the 7B shapes) go before the model is created */
  vklm_cmd_destroy(b.cmd);
  vklm_arena_destroy(b.arena);
  vklm_context_destroy(b.ctx);
  b = (bench){0};
  /* MFU: the table's fp32 peak for a known device, else the best fp32 GEMM measured above */
  const known_peak *kp = peak_find(k.caps.vendor_id, k.caps.device_id);
  cJSON *pk = cJSON_AddObjectToObject(k.root, "mfu_peak");
  char src[256];
  if (kp) snprintf(src, sizeof src, "table: %s, %s", kp->name, kp->source);
  else snprintf(src, sizeof src, "measured: the best fp32 GEMM of this card, %s", best_what);
  double peak = kp ? kp->fp32 * 1e3 : best;
  cJSON_AddNumberToObject(pk, "gflops", peak);
  cJSON_AddStringToObject(pk, "precision", "fp32");
  cJSON_AddStringToObject(pk, "source", src);
  cJSON_AddBoolToObject(pk, "known_device", kp != NULL);
  if (kp) {
    cJSON_AddNumberToObject(pk, "table_fp16_tflops", kp->fp16);
    cJSON_AddNumberToObject(pk, "table_bf16_tflops", kp->bf16);
  }
  cJSON_AddNumberToObject(pk, "best_measured_fp32_gflops", best);
  uint64_t mem_train = 0, mem_infer = 0;
  if (training_section(&k, train_model, B, T, peak, &mem_train)) goto done;
  t3 = gen_now_s();
  if (inference_section(&k, infer_model, &mem_infer)) goto done;
  cJSON *sec = cJSON_AddObjectToObject(k.root, "seconds"); /* wall time of each section */
  cJSON_AddNumberToObject(sec, "gemm", t1 - t0);
  cJSON_AddNumberToObject(sec, "attention", t2 - t1);
  cJSON_AddNumberToObject(sec, "training", t3 - t2);
  cJSON_AddNumberToObject(sec, "inference", gen_now_s() - t3);
  uint64_t mem = mem_train > mem_infer ? mem_train : mem_infer;
  cJSON_AddNumberToObject(k.root, "peak_memory_bytes", (double)mem);
  fig(&k, "memory", "peak device memory", mem / 1048576.0, "MiB", -1);
  char *s = cJSON_Print(k.root);
  if (json_file) {
    FILE *f = fopen(json_file, "w");
    int bad = !f || fprintf(f, "%s\n", s) < 0;
    if (f && fclose(f)) bad = 1;
    if (bad) {
      fprintf(stderr, "vklm bench: cannot write %s\n", json_file);
      cJSON_free(s);
      goto done;
    }
  }
  if (json) printf("%s\n", s);
  else render(k.root, md);
  cJSON_free(s);
  rc = 0;
done:
  cJSON_Delete(k.root);
  vklm_cmd_destroy(b.cmd);
  vklm_arena_destroy(b.arena);
  vklm_context_destroy(b.ctx);
  return rc;
}

/* Fused multi-head attention, forward and backward (shaders/attention_forward_f32.comp,
 * attention_backward_f32_dq.comp, attention_backward_f32_dkv.comp and their *_cpu variants), and
 * their plain C references. */
#include "attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention_tiles.h"
#include "op_util.h"

typedef struct attn_push {
  uint32_t T, NH, NKV, causal;
  float scale;
} attn_push;
_Static_assert(sizeof(attn_push) == 20, "attention_*_f32.comp push constants");

#define ATTN_MAX_HS 256
/* qkv's format in every forward and backward kernel (shaders/load16.glsl); set (with the ids
 * below it, unused ones 0) only for a 16-bit qkv, so the fp32 pipelines stay as they were */
#define SPEC_QKV_FMT 6

/* (attention_tiles.h) */
vklm_attn_tiles vklm_attn_choose(const vklm_context *ctx, uint32_t T, uint32_t HS,
                                 uint32_t rm_max, uint32_t a, uint32_t b, uint32_t e, uint32_t f) {
  const vklm_caps *caps = vklm_context_caps(ctx);
  uint32_t nt_max = vklm_op_wg_fit(ctx, 128, 0);
  uint32_t br_max = 1;
  while (br_max < 64 && br_max < T && br_max * 2 <= nt_max) br_max *= 2;
  for (int pass = 0; pass < 2; pass++) {
    uint32_t bc_min = pass == 0 ? 8 : 1;
    for (uint32_t br = br_max; br >= 1; br /= 2) {
      for (uint32_t bc = 32; bc >= bc_min; bc /= 2) {
        uint64_t floats = (uint64_t)(a * br + b * bc) * (HS + 1) + (uint64_t)e * br * (bc + 1) +
                          (uint64_t)f * bc;
        if (floats * 4 > caps->max_shared_memory) continue;
        uint32_t rm = br < rm_max ? br : rm_max;
        while (rm > 1 && nt_max / (br / rm) > bc) rm /= 2; /* keep every thread busy on scores */
        uint32_t tpr = nt_max / (br / rm);
        if (tpr > 32) tpr = 32; /* few rows (short T): no more threads than useful */
        vklm_attn_tiles t = {tpr * (br / rm), br, bc, rm};
        return t;
      }
    }
  }
  VKLM_ASSERT(0, "attention: HS=%u does not fit in %u bytes of shared memory", HS,
              caps->max_shared_memory);
  vklm_attn_tiles none = {0, 0, 0, 0};
  return none;
}

/* (attention_tiles.h) */
uint64_t vklm_attn_cpu_loops(uint64_t rows) { return 2 * rows + rows / VKLM_ATTN_CPU_BK + 8; }

uint32_t vklm_attn_cpu_rows(uint32_t HS, uint32_t arrays) {
  uint32_t r = VKLM_ATTN_CPU_R;
  while (r > 1 && r * HS * arrays > VKLM_ATTN_CPU_REGS) r /= 2;
  return r;
}

static void attn_check(const char *what, vklm_buffer qkv, int qkv_fmt, uint32_t B, uint32_t T,
                       uint32_t NH, uint32_t NKV, uint32_t HS) {
  VKLM_ASSERT(qkv_fmt >= 0 && qkv_fmt <= 2 && (qkv_fmt == 0 || HS % 2 == 0),
              "%s: qkv format %d (0 f32, 1 f16, 2 bf16; 16-bit needs an even HS, not %u)", what,
              qkv_fmt, HS);
  VKLM_ASSERT(B >= 1 && T >= 1 && NH >= 1 && NKV >= 1 && HS >= 1, "%s: empty shape", what);
  VKLM_ASSERT(NH % NKV == 0, "%s: NKV=%u does not divide NH=%u", what, NKV, NH);
  VKLM_ASSERT(HS <= ATTN_MAX_HS, "%s: HS=%u > %u", what, HS, ATTN_MAX_HS);
  uint64_t n = (uint64_t)B * T * (NH + 2 * NKV) * HS;
  VKLM_ASSERT(n < (1ull << 32), "%s: qkv of %llu floats exceeds 32-bit indexing", what,
              (unsigned long long)n);
  VKLM_ASSERT(qkv.size >= (qkv_fmt ? (n + 1) / 2 : n) * 4, "%s: qkv buffer of %llu bytes < %llu %s",
              what, (unsigned long long)qkv.size, (unsigned long long)n,
              qkv_fmt ? "16-bit elements" : "floats");
}

static void attn_check_grid(const vklm_context *ctx, const char *what, uint32_t gx, uint32_t gy,
                            uint32_t gz) {
  const vklm_caps *c = vklm_context_caps(ctx);
  VKLM_ASSERT(gx <= c->max_workgroup_count[0] && gy <= c->max_workgroup_count[1] &&
                  gz <= c->max_workgroup_count[2],
              "%s: grid (%u,%u,%u) exceeds the device's workgroup counts", what, gx, gy, gz);
}

/* out of n elements in format fmt (0 fp32, 1 fp16, 2 bf16; 16-bit needs an even HS). */
static void check_out(const char *what, vklm_buffer out, uint64_t n, int fmt, uint32_t HS) {
  VKLM_ASSERT(fmt >= 0 && fmt <= 2 && (fmt == 0 || HS % 2 == 0),
              "%s: out format %d (0 f32, 1 f16, 2 bf16; 16-bit needs an even HS, not %u)", what,
              fmt, HS);
  VKLM_ASSERT(out.size >= (fmt ? (n + 1) / 2 : n) * 4, "%s: out buffer too small", what);
}

vklm_status vklm_attention_forward(vklm_cmd *cmd, vklm_buffer out, vklm_buffer lse,
                                   vklm_buffer qkv, uint32_t B, uint32_t T, uint32_t NH,
                                   uint32_t NKV, uint32_t HS, int causal) {
  return vklm_attention_forward_fmt(cmd, out, 0, lse, qkv, 0, B, T, NH, NKV, HS, causal);
}

vklm_status vklm_attention_forward_fmt(vklm_cmd *cmd, vklm_buffer out, int out_fmt,
                                       vklm_buffer lse, vklm_buffer qkv, int qkv_fmt, uint32_t B,
                                       uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS,
                                       int causal) {
  attn_check("attention_forward", qkv, qkv_fmt, B, T, NH, NKV, HS);
  uint64_t nout = (uint64_t)B * T * NH * HS, nlse = (uint64_t)B * NH * T;
  check_out("attention_forward", out, nout, out_fmt, HS);
  VKLM_ASSERT(lse.size >= nlse * 4, "attention_forward: lse buffer too small");
  vklm_context *ctx = vklm_cmd_context(cmd);
  attn_push pc = {T, NH, NKV, causal ? 1u : 0u, (float)(1.0 / sqrt((double)HS))};
  vklm_buffer bufs[3] = {out, lse, qkv};
  if (vklm_context_cpu_kernels(ctx) && HS <= VKLM_ATTN_CPU_MAX_HS &&
      vklm_attn_cpu_loops(T) <= VKLM_CPU_LOOP_BUDGET) {
    uint32_t spec[SPEC_QKV_FMT + 1] = {vklm_op_wg_fit(ctx, VKLM_ATTN_CPU_W, 0), HS,
                                       VKLM_ATTN_CPU_BK, vklm_attn_cpu_rows(HS, 2),
                                       (uint32_t)out_fmt, 0, (uint32_t)qkv_fmt};
    uint32_t gx = (T + spec[0] * spec[3] - 1) / (spec[0] * spec[3]);
    attn_check_grid(ctx, "attention_forward", gx, NH, B);
    return vklm_op_dispatch(cmd, "attention_forward_f32_cpu", spec,
                            qkv_fmt ? SPEC_QKV_FMT + 1 : out_fmt ? 5 : 4, bufs, 3, &pc, sizeof pc,
                            gx, NH, B);
  }
  vklm_attn_tiles t = vklm_attn_choose(ctx, T, HS, 4, 1, 2, 1, 0);
  uint32_t spec[SPEC_QKV_FMT + 1] = {t.nt, t.br, t.bc, HS, t.rm, (uint32_t)out_fmt,
                                     (uint32_t)qkv_fmt};
  uint32_t gx = (T + t.br - 1) / t.br;
  attn_check_grid(ctx, "attention_forward", gx, NH, B);
  return vklm_op_dispatch(cmd, "attention_forward_f32", spec,
                          qkv_fmt ? SPEC_QKV_FMT + 1 : out_fmt ? 6 : 5, bufs, 3, &pc, sizeof pc,
                          gx, NH, B);
}

vklm_status vklm_attention_backward(vklm_cmd *cmd, vklm_buffer dqkv, vklm_buffer scratch,
                                    vklm_buffer dout, vklm_buffer lse, vklm_buffer qkv,
                                    uint32_t B, uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS,
                                    int causal) {
  return vklm_attention_backward_fmt(cmd, dqkv, scratch, dout, lse, qkv, 0, B, T, NH, NKV, HS,
                                     causal);
}

vklm_status vklm_attention_backward_fmt(vklm_cmd *cmd, vklm_buffer dqkv, vklm_buffer scratch,
                                        vklm_buffer dout, vklm_buffer lse, vklm_buffer qkv,
                                        int qkv_fmt, uint32_t B, uint32_t T, uint32_t NH,
                                        uint32_t NKV, uint32_t HS, int causal) {
  attn_check("attention_backward", qkv, qkv_fmt, B, T, NH, NKV, HS);
  uint64_t nqkv = (uint64_t)B * T * (NH + 2 * NKV) * HS;
  uint64_t nout = (uint64_t)B * T * NH * HS, nrow = (uint64_t)B * NH * T;
  VKLM_ASSERT(dqkv.size >= nqkv * 4, "attention_backward: dqkv buffer too small");
  VKLM_ASSERT(dout.size >= nout * 4, "attention_backward: dout buffer too small");
  /* the forward's output is not needed: the dQ kernels take D = sum_j p_j dp_j from P and dP */
  VKLM_ASSERT(lse.size >= nrow * 4 && scratch.size >= nrow * 4,
              "attention_backward: lse/scratch buffer too small");
  vklm_context *ctx = vklm_cmd_context(cmd);

  /* dQ first: it also writes D = sum_j p_j dp_j into scratch, which dK/dV read */
  vklm_status st;
  attn_push pc = {T, NH, NKV, causal ? 1u : 0u, (float)(1.0 / sqrt((double)HS))};
  vklm_buffer bufs[5] = {dqkv, dout, lse, scratch, qkv};

  /* CPU-type devices: dQ and dK/dV by the CPU variants, each where it fits the loop budget */
  int cpu = vklm_context_cpu_kernels(ctx) && HS <= VKLM_ATTN_CPU_MAX_HS;
  int cpu_dq = cpu && vklm_attn_cpu_loops(T) <= VKLM_CPU_LOOP_BUDGET;
  int cpu_dkv = cpu && vklm_attn_cpu_loops((uint64_t)(NH / NKV) * T) <= VKLM_CPU_LOOP_BUDGET;
  uint32_t cw = vklm_op_wg_fit(ctx, VKLM_ATTN_CPU_W, 0);
  if (cpu_dq) {
    /* q, dout and the two accumulators per row */
    uint32_t spec[SPEC_QKV_FMT + 1] = {cw, HS, vklm_attn_cpu_rows(HS, 4), 0, 0, 0,
                                       (uint32_t)qkv_fmt};
    uint32_t gx = (T + cw * spec[2] - 1) / (cw * spec[2]);
    attn_check_grid(ctx, "attention_backward", gx, NH, B);
    st = vklm_op_dispatch(cmd, "attention_backward_f32_dq_cpu", spec,
                          qkv_fmt ? SPEC_QKV_FMT + 1 : 3, bufs, 5, &pc, sizeof pc, gx, NH, B);
    if (st != VKLM_OK) return st;
    if (cpu_dkv) {
      spec[2] = vklm_attn_cpu_rows(HS, 4);
      gx = (T + cw * spec[2] - 1) / (cw * spec[2]);
      attn_check_grid(ctx, "attention_backward", gx, NKV, B);
      return vklm_op_dispatch(cmd, "attention_backward_f32_dkv_cpu", spec,
                              qkv_fmt ? SPEC_QKV_FMT + 1 : 3, bufs, 5, &pc, sizeof pc, gx, NKV, B);
    }
  }

  /* dQ: a workgroup per (query block, query head, batch) */
  vklm_attn_tiles tq = vklm_attn_choose(ctx, T, HS, 4, 2, 2, 2, 0); /* the p*dp and p tiles */
  uint32_t specq[SPEC_QKV_FMT + 1] = {tq.nt, tq.br, tq.bc, HS, tq.rm, 0, (uint32_t)qkv_fmt};
  uint32_t gq = (T + tq.br - 1) / tq.br;
  attn_check_grid(ctx, "attention_backward", gq, NH, B);
  if (!cpu_dq) {
    st = vklm_op_dispatch(cmd, "attention_backward_f32_dq", specq, qkv_fmt ? SPEC_QKV_FMT + 1 : 5,
                          bufs, 5, &pc, sizeof pc, gq, NH, B);
    if (st != VKLM_OK) return st;
  }

  /* dK, dV: a workgroup per (key block, key/value head, batch) */
  vklm_attn_tiles tk = vklm_attn_choose(ctx, T, HS, 2, 2, 2, 2, 2);
  uint32_t speck[SPEC_QKV_FMT + 1] = {tk.nt, tk.br, tk.bc, HS, tk.rm, 0, (uint32_t)qkv_fmt};
  uint32_t gk = (T + tk.br - 1) / tk.br;
  attn_check_grid(ctx, "attention_backward", gk, NKV, B);
  return vklm_op_dispatch(cmd, "attention_backward_f32_dkv", speck,
                          qkv_fmt ? SPEC_QKV_FMT + 1 : 5, bufs, 5, &pc, sizeof pc, gk, NKV, B);
}

/* ---- plain C references ------------------------------------------------------------------ */

/* The softmax row of query t of head h (batch b) into p[0..T), in double; returns the row's
 * log-sum-exp. Keys past t are 0 when causal. */
static double ref_softmax_row(double *p, const float *qkv, uint32_t b, uint32_t t, uint32_t h,
                              uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS, int causal) {
  uint32_t C3 = (NH + 2 * NKV) * HS, g = h / (NH / NKV);
  const float *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * HS;
  double scale = 1.0 / sqrt((double)HS), mx = -INFINITY;
  uint32_t n = causal ? t + 1 : T;
  for (uint32_t j = 0; j < n; j++) {
    const float *k = qkv + ((size_t)b * T + j) * C3 + (size_t)(NH + g) * HS;
    double s = 0;
    for (uint32_t d = 0; d < HS; d++) s += (double)q[d] * k[d];
    p[j] = s * scale;
    if (p[j] > mx) mx = p[j];
  }
  double sum = 0;
  for (uint32_t j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
  for (uint32_t j = 0; j < n; j++) p[j] /= sum;
  for (uint32_t j = n; j < T; j++) p[j] = 0;
  return mx + log(sum);
}

void vklm_attention_forward_ref(float *out, float *lse, const float *qkv, uint32_t B, uint32_t T,
                                uint32_t NH, uint32_t NKV, uint32_t HS, int causal) {
  VKLM_ASSERT(NH % NKV == 0, "attention_forward_ref: NKV=%u does not divide NH=%u", NKV, NH);
  uint32_t C3 = (NH + 2 * NKV) * HS;
  double *p = malloc(T * sizeof *p), *o = malloc(HS * sizeof *o);
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t h = 0; h < NH; h++) {
      uint32_t g = h / (NH / NKV);
      for (uint32_t t = 0; t < T; t++) {
        lse[((size_t)b * NH + h) * T + t] =
            (float)ref_softmax_row(p, qkv, b, t, h, T, NH, NKV, HS, causal);
        memset(o, 0, HS * sizeof *o);
        for (uint32_t j = 0; j < T; j++) {
          const float *v = qkv + ((size_t)b * T + j) * C3 + (size_t)(NH + NKV + g) * HS;
          for (uint32_t d = 0; d < HS; d++) o[d] += p[j] * v[d];
        }
        float *y = out + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
        for (uint32_t d = 0; d < HS; d++) y[d] = (float)o[d];
      }
    }
  free(p);
  free(o);
}

void vklm_attention_backward_ref(float *dqkv, const float *dout, const float *qkv, uint32_t B,
                                 uint32_t T, uint32_t NH, uint32_t NKV, uint32_t HS, int causal) {
  VKLM_ASSERT(NH % NKV == 0, "attention_backward_ref: NKV=%u does not divide NH=%u", NKV, NH);
  uint32_t C3 = (NH + 2 * NKV) * HS;
  size_t n = (size_t)B * T * C3;
  double *acc = calloc(n, sizeof *acc); /* dqkv accumulated in double */
  double *p = malloc(T * sizeof *p), *dp = malloc(T * sizeof *dp);
  double scale = 1.0 / sqrt((double)HS);
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t h = 0; h < NH; h++) {
      uint32_t g = h / (NH / NKV);
      size_t qc = (size_t)h * HS, kc = (size_t)(NH + g) * HS, vc = (size_t)(NH + NKV + g) * HS;
      for (uint32_t t = 0; t < T; t++) {
        ref_softmax_row(p, qkv, b, t, h, T, NH, NKV, HS, causal);
        const float *dy = dout + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
        const float *q = qkv + ((size_t)b * T + t) * C3 + qc;
        /* dp_j = dy . v_j; dv_j += p_j dy; then ds_j = p_j (dp_j - sum_i p_i dp_i) */
        double dot = 0;
        for (uint32_t j = 0; j < T; j++) {
          const float *v = qkv + ((size_t)b * T + j) * C3 + vc;
          double *dv = acc + ((size_t)b * T + j) * C3 + vc;
          double s = 0;
          for (uint32_t d = 0; d < HS; d++) {
            s += (double)dy[d] * v[d];
            dv[d] += p[j] * dy[d];
          }
          dp[j] = s;
          dot += p[j] * s;
        }
        double *dq = acc + ((size_t)b * T + t) * C3 + qc;
        for (uint32_t j = 0; j < T; j++) {
          double ds = p[j] * (dp[j] - dot) * scale;
          if (ds == 0) continue;
          const float *k = qkv + ((size_t)b * T + j) * C3 + kc;
          double *dk = acc + ((size_t)b * T + j) * C3 + kc;
          for (uint32_t d = 0; d < HS; d++) {
            dq[d] += ds * k[d];
            dk[d] += ds * q[d];
          }
        }
      }
    }
  for (size_t i = 0; i < n; i++) dqkv[i] = (float)acc[i];
  free(acc);
  free(p);
  free(dp);
}

/* GEMMs on cooperative matrices (tensor cores through Vulkan): shaders/matmul_coopmat_khr.comp
 * (VK_KHR_cooperative_matrix; in the build when its glslang compiles it) and
 * matmul_coopmat_nv.comp (VK_NV_cooperative_matrix), bodies in shaders/matmul_coopmat.glsl.
 * Everything here comes from the device: the shape (one the driver reports for fp16 A and B,
 * fp32 C and result, subgroup scope), the subgroup size, the shared memory and the invocation
 * limits; nothing assumes 32-wide subgroups. VKLM_COOPMAT=emulate runs matmul_coopmat_emu (the
 * same tiling with plain arithmetic) on any device, for tests. matmul.c's gemm_one() asks vklm__matmul_coopmat_pick
 * whether a GEMM goes here, after its operand checks, and hands over its push constants. */
#include <stdio.h>
#include <string.h>

#include "matmul.h"
#include "op_util.h"

typedef struct coop_plan {
  const char *shader;
  uint32_t cm, cn, ck;   /* the shape */
  uint32_t sg;           /* the subgroup size the workgroup is sized for */
  uint32_t wm, wn;       /* subgroups along M and N */
  uint32_t sm, sn;       /* accumulators per subgroup along M and N */
  uint32_t ks;           /* CK-steps per shared-memory stage */
  uint32_t elem;         /* bytes of a staged element: 2 (float16_t), 4 in the emulation */
} coop_plan;

#define COOP_SPECS 14 /* the last, 13: C's format (matmul_store.glsl's C_FMT) */
const vklm_matmul_config vklm_matmul_config_coopmat = {0, 0, 0, 0, 0, 0};

static uint32_t shared_bytes(const coop_plan *p) {
  uint32_t bm = p->wm * p->sm * p->cm, bn = p->wn * p->sn * p->cn, bk = p->ks * p->ck;
  return p->elem * (bm * (bk + 8) + bk * (bn + 8)) + 4 * p->wm * p->wn * p->cm * p->cn;
}

static int usable_shape(const vklm_caps *caps, const vklm_coopmat_shape *s, const char **shader) {
  if (!s->subgroup_scope || strcmp(s->a_type, "f16") || strcmp(s->b_type, "f16") ||
      strcmp(s->c_type, "f32") || strcmp(s->result_type, "f32"))
    return 0;
  /* the shader's 16-byte alignment of shared-memory rows and offsets wants multiples of 8 */
  if (s->m % 8 || s->n % 8 || s->k % 8 || s->m > 64 || s->n > 64 || s->k > 64) return 0;
  if (!strcmp(s->source, "KHR") && caps->coopmat_khr && vklm_shader_find("matmul_coopmat_khr", NULL))
    *shader = "matmul_coopmat_khr";
  else if (!strcmp(s->source, "NV") && caps->coopmat_nv && vklm_shader_find("matmul_coopmat_nv", NULL))
    *shader = "matmul_coopmat_nv";
  else
    return 0;
  return 1;
}

/* VKLM_COOPMAT=emulate (tests): matmul_coopmat_emu, an 8 x 8 x 8 shape, one accumulator a
 * subgroup (two in the large tile), one CK-step a stage, and workgroups sized for subgroups of
 * half the device's size, so each real subgroup takes two blocks in turn (the shader's passes):
 * small loops, for llvmpipe's loop limit (matmul.c) and the per-invocation products. */
static int plan_emulated(const vklm_caps *caps, int large, coop_plan *p) {
  memset(p, 0, sizeof *p);
  p->shader = "matmul_coopmat_emu";
  p->elem = 4;
  p->cm = p->cn = p->ck = 8;
  p->sg = caps->subgroup_size > 1 ? caps->subgroup_size / 2 : 1;
  p->wm = 2, p->wn = large ? 4 : 2;
  p->sm = large ? 2 : 1, p->sn = 1, p->ks = 1;
  uint32_t lim = caps->max_workgroup_invocations < caps->max_workgroup_size[0]
                     ? caps->max_workgroup_invocations
                     : caps->max_workgroup_size[0];
  return p->wm * p->wn * p->sg <= lim && shared_bytes(p) <= caps->max_shared_memory;
}

/* The plan for this device, with a large tile (128 x 128 on 16 x 16 shapes: 8 subgroups of 64 x 32
 * outputs each) for grids of many workgroups, else 64 x 64 (4 subgroups of 32 x 32); each shrunk
 * until it fits the device's invocation and shared-memory limits. 0: no usable shape. */
static int plan_choose(const vklm_context *ctx, int large, coop_plan *p) {
  const vklm_caps *caps = vklm_context_caps(ctx);
  if (vklm_context_config(ctx)->coopmat == VKLM_COOPMAT_EMULATE)
    return plan_emulated(caps, large, p);
  const vklm_coopmat_shape *best = NULL;
  const char *shader = NULL;
  for (int i = 0; i < caps->coopmat_count; i++) {
    const char *sh;
    const vklm_coopmat_shape *s = &caps->coopmat[i];
    if (!usable_shape(caps, s, &sh)) continue;
    if (!best || s->m * s->n * s->k > best->m * best->n * best->k) {
      best = s;
      shader = sh;
    }
  }
  uint32_t sg = caps->subgroup_size;
  if (!best || sg == 0) return 0;
  uint32_t lim = caps->max_workgroup_invocations < caps->max_workgroup_size[0]
                     ? caps->max_workgroup_invocations
                     : caps->max_workgroup_size[0];
  memset(p, 0, sizeof *p);
  p->shader = shader;
  p->elem = 2;
  p->cm = best->m, p->cn = best->n, p->ck = best->k, p->sg = sg;
  p->wm = 2, p->wn = large ? 4 : 2;
  uint32_t rows = large ? 64 : 32, cols = 32; /* outputs per subgroup */
  p->sm = rows > p->cm ? rows / p->cm : 1;
  p->sn = cols > p->cn ? cols / p->cn : 1;
  while (p->sm * p->sn > 8) { /* at most 8 accumulators a subgroup (registers) */
    if (p->sm >= p->sn) p->sm /= 2;
    else p->sn /= 2;
  }
  p->ks = 32 > p->ck ? 32 / p->ck : 1;
  while (p->wm * p->wn * sg > lim && p->wm * p->wn > 1) {
    if (p->wn >= p->wm) p->wn /= 2;
    else p->wm /= 2;
  }
  if (p->wm * p->wn * sg > lim) return 0;
  while (shared_bytes(p) > caps->max_shared_memory) {
    if (p->ks > 1) p->ks /= 2;
    else if (p->sm * p->sn > 1) {
      if (p->sm >= p->sn) p->sm /= 2;
      else p->sn /= 2;
    } else if (p->wm * p->wn > 1) {
      if (p->wn >= p->wm) p->wn /= 2;
      else p->wm /= 2;
    } else
      return 0;
  }
  return 1;
}

int vklm_matmul_coopmat_available(const vklm_context *ctx) {
  coop_plan p;
  return plan_choose(ctx, 0, &p);
}

int vklm__matmul_coopmat_pick(const vklm_context *ctx, int fmt_a, int fmt_b,
                              const vklm_matmul_config *cfg) {
  if (cfg == &vklm_matmul_config_coopmat) return 1; /* forced: recording says if it cannot */
  if (cfg || vklm_context_config(ctx)->coopmat == VKLM_COOPMAT_OFF) return 0;
  if (fmt_b != VKLM_GEMM_F16 || (fmt_a != VKLM_GEMM_F32 && fmt_a != VKLM_GEMM_F16)) return 0;
  return vklm_matmul_coopmat_available(ctx);
}

vklm_status vklm__matmul_coopmat_record(vklm_cmd *cmd, const vklm_buffer bufs[4], const void *push,
                                        uint32_t push_size, const vklm_gemm *g, int fmt_a,
                                        int fmt_b, int fmt_c) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t batch = g->batch ? g->batch : 1;
  coop_plan p;
  if (!plan_choose(ctx, 0, &p))
    return vklm_context_fail(ctx, VKLM_ERROR_UNSUPPORTED,
                             "matmul_coopmat: device '%s' has no usable cooperative-matrix shape "
                             "(fp16 A/B, fp32 C, subgroup scope) for this build's shaders",
                             vklm_context_caps(ctx)->name);
  uint32_t bm = p.wm * p.sm * p.cm, bn = p.wn * p.sn * p.cn;
  uint64_t groups = (uint64_t)((g->M + 127) / 128) * ((g->N + 127) / 128) * batch;
  coop_plan big;
  if (groups >= 128 && plan_choose(ctx, 1, &big)) { /* enough work: large */
    p = big;
    bm = p.wm * p.sm * p.cm, bn = p.wn * p.sn * p.cn;
  }
  uint32_t spec[COOP_SPECS] = {p.wm * p.wn * p.sg, p.cm, p.cn, p.ck, p.wm, p.wn, p.sm, p.sn, p.ks,
                               g->trans_a ? 1u : 0u, g->trans_b ? 1u : 0u, (uint32_t)fmt_a,
                               (uint32_t)fmt_b, (uint32_t)fmt_c};
  return vklm_op_dispatch(cmd, p.shader, spec, COOP_SPECS, bufs, 4, push, push_size,
                          (g->N + bn - 1) / bn, (g->M + bm - 1) / bm, batch);
}

uint32_t vklm_matmul_coopmat_describe(const vklm_context *ctx, char *out, uint32_t len) {
  coop_plan p;
  if (!plan_choose(ctx, 0, &p)) {
    if (len) out[0] = 0;
    return 0;
  }
  int n = snprintf(out, len, "%s %ux%ux%u, subgroup %u, tile %ux%ux%u (%u subgroups)", p.shader,
                   p.cm, p.cn, p.ck, p.sg, p.wm * p.sm * p.cm, p.wn * p.sn * p.cn, p.ks * p.ck,
                   p.wm * p.wn);
  return n < 0 ? 0 : (uint32_t)n;
}

/* Workgroup-size choice and dispatch helpers for engine/ops. */
#include "op_util.h"

#include <stdio.h>

uint32_t vklm_op_wg_fit(const vklm_context *ctx, uint32_t want, uint32_t bytes_per_thread) {
  const vklm_caps *c = vklm_context_caps(ctx);
  uint32_t lim = c->max_workgroup_invocations < c->max_workgroup_size[0]
                     ? c->max_workgroup_invocations
                     : c->max_workgroup_size[0];
  uint32_t wg = 1;
  while (wg * 2 <= want && wg * 2 <= lim &&
         (bytes_per_thread == 0 || (uint64_t)wg * 2 * bytes_per_thread <= c->max_shared_memory))
    wg *= 2;
  return wg;
}

uint32_t vklm_op_wg1d(const vklm_context *ctx) { return vklm_op_wg_fit(ctx, 256, 0); }

vklm_status vklm_op_dispatch(vklm_cmd *cmd, const char *name, const uint32_t *spec,
                             uint32_t nspec, const vklm_buffer *bufs, uint32_t nbufs,
                             const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                             uint32_t gz) {
  vklm_pipeline *p;
  vklm_status st = vklm_pipeline_get(vklm_cmd_context(cmd), name, spec, nspec, &p);
  if (st != VKLM_OK) return st;
  return vklm_cmd_dispatch(cmd, p, bufs, nbufs, push, push_size, gx, gy, gz);
}

vklm_status vklm_op_dispatch_1d(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                uint32_t nbufs, const void *push, uint32_t push_size, uint64_t n) {
  return vklm_op_dispatch_1d_spec(cmd, name, bufs, nbufs, push, push_size, n, NULL, 0);
}

vklm_status vklm_op_dispatch_1d_spec(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                     uint32_t nbufs, const void *push, uint32_t push_size,
                                     uint64_t n, const uint32_t *spec, uint32_t nspec) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t all[8], gx, gy;
  VKLM_ASSERT(nspec < 8, "%s: %u spec constants (at most 7 after the workgroup size)", name, nspec);
  all[0] = vklm_op_wg1d(ctx);
  for (uint32_t i = 0; i < nspec; i++) all[i + 1] = spec[i];
  vklm_groups_1d(ctx, (n + all[0] - 1) / all[0], &gx, &gy);
  return vklm_op_dispatch(cmd, name, all, nspec + 1, bufs, nbufs, push, push_size, gx, gy, 1);
}

vklm_status vklm_op_dispatch_rows_spec(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                       uint32_t nbufs, const void *push, uint32_t push_size,
                                       uint32_t N, uint32_t C, uint32_t gpu_wg, uint32_t cpu_wg,
                                       uint32_t spec1) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t spec[2] = {0, spec1}, ns = spec1 ? 2 : 1, gx, gy;
  /* loop iterations of a CPU invocation: three passes over the row (rows_cpu.glsl) */
  uint64_t loops = 3ull * (C / 8 + C / 64 + 8) + 8;
  if (vklm_context_cpu_kernels(ctx) && loops <= VKLM_CPU_LOOP_BUDGET) {
    char cpu[64];
    snprintf(cpu, sizeof cpu, "%s_cpu", name);
    spec[0] = vklm_op_wg_fit(ctx, cpu_wg, 0);
    vklm_groups_1d(ctx, (N + spec[0] - 1) / spec[0], &gx, &gy);
    return vklm_op_dispatch(cmd, cpu, spec, ns, bufs, nbufs, push, push_size, gx, gy, 1);
  }
  spec[0] = vklm_op_wg_fit(ctx, gpu_wg, 8);
  vklm_groups_1d(ctx, N, &gx, &gy);
  return vklm_op_dispatch(cmd, name, spec, ns, bufs, nbufs, push, push_size, gx, gy, 1);
}

vklm_status vklm_op_dispatch_rows(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                  uint32_t nbufs, const void *push, uint32_t push_size,
                                  uint32_t N, uint32_t C, uint32_t gpu_wg, uint32_t cpu_wg) {
  return vklm_op_dispatch_rows_spec(cmd, name, bufs, nbufs, push, push_size, N, C, gpu_wg, cpu_wg,
                                    0);
}

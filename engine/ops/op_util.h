/* Private to engine/ops: the small helpers every op uses to pick a workgroup size from the
 * device's limits and to dispatch an embedded shader by name. */
#ifndef VKLM_OPS_UTIL_H
#define VKLM_OPS_UTIL_H

#include "vklm_runtime.h"

/* Threads per workgroup for 1-D elementwise kernels: 256, or less where the device allows less
 * (128 under baseline limits). Shaders take it as specialization constant 0 (local_size_x_id). */
uint32_t vklm_op_wg1d(const vklm_context *ctx);
/* The largest power of two <= want that the device allows as a 1-D workgroup, and whose
 * `bytes_per_thread` of shared memory fits. */
uint32_t vklm_op_wg_fit(const vklm_context *ctx, uint32_t want, uint32_t bytes_per_thread);

/* Mesa's llvmpipe (lavapipe) ends every loop of a shader invocation after 65535 iterations in
 * all, counted over every loop its compiler did not unroll (a guard against infinite loops).
 * The CPU-type kernel variants walk whole rows in one invocation, so ops record them only where
 * their estimate of the iterations per invocation stays within this budget, and the GPU kernels
 * (correct on lavapipe too) beyond it. */
#define VKLM_CPU_LOOP_BUDGET 60000u

/* Records a per-row kernel over N rows of C elements. GPU kernels: `name`, one workgroup per row
 * of a power-of-two size up to gpu_wg with 8 bytes of shared memory per thread. CPU-type devices
 * (vklm_context_cpu_kernels): "<name>_cpu", one invocation per row in workgroups of cpu_wg rows,
 * no shared memory and no barrier (rows_cpu.glsl: three passes over a row), unless a row is too
 * long for llvmpipe's loop budget, where the GPU kernel runs instead. Spec constant 0: the
 * workgroup size. */
vklm_status vklm_op_dispatch_rows(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                  uint32_t nbufs, const void *push, uint32_t push_size,
                                  uint32_t N, uint32_t C, uint32_t gpu_wg, uint32_t cpu_wg);
/* vklm_op_dispatch_rows with spec constant 1 = spec1 as well (both families; a shader without
 * it ignores it): e.g. the norms' output format (store16.glsl's OUT_FMT). */
vklm_status vklm_op_dispatch_rows_spec(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                       uint32_t nbufs, const void *push, uint32_t push_size,
                                       uint32_t N, uint32_t C, uint32_t gpu_wg, uint32_t cpu_wg,
                                       uint32_t spec1);

/* Gets the pipeline `name` with the given specialization constants and records one dispatch. */
vklm_status vklm_op_dispatch(vklm_cmd *cmd, const char *name, const uint32_t *spec,
                             uint32_t nspec, const vklm_buffer *bufs, uint32_t nbufs,
                             const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                             uint32_t gz);
/* One thread per element over n elements, workgroup size vklm_op_wg1d as spec constant 0,
 * the grid split over x and y (shaders use vklm_global_linear() and bound-check). */
vklm_status vklm_op_dispatch_1d(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                uint32_t nbufs, const void *push, uint32_t push_size, uint64_t n);
/* The same with spec constants 1..nspec = spec[0..nspec-1] after the workgroup size (nspec 0:
 * vklm_op_dispatch_1d's pipeline), e.g. the formats of 16-bit inputs and outputs. */
vklm_status vklm_op_dispatch_1d_spec(vklm_cmd *cmd, const char *name, const vklm_buffer *bufs,
                                     uint32_t nbufs, const void *push, uint32_t push_size,
                                     uint64_t n, const uint32_t *spec, uint32_t nspec);

#endif

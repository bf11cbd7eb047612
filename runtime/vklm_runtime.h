/* vklm runtime: the only part of vklm that talks to Vulkan.
 *
 * Owns the instance, the chosen device and its capability record, device memory (arenas of a few
 * large allocations, sub-allocated into buffers), compute pipelines built from the SPIR-V embedded
 * at build time, command recording with dependency-driven barriers, submission and timestamps.
 * No Vulkan type appears in this header: engine/ and apps/ see only the vklm_ types below.
 *
 * Status convention: every fallible function returns vklm_status; on failure the context keeps a
 * message naming the Vulkan call, its VkResult, the file:line and the sizes involved
 * (vklm_context_error). Nothing here calls exit(). Programmer errors (a NULL argument, a slice
 * out of range) hit VKLM_ASSERT, which stays on in release builds.
 *
 * Buffers are views (block, offset, size) into an arena; their offsets are always aligned to the
 * device's minStorageBufferOffsetAlignment so that any buffer can be bound to any shader. */
#ifndef VKLM_RUNTIME_H
#define VKLM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VKLM_ASSERT(cond, ...)                                                                   \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "%s:%d: assertion failed: %s: ", __FILE__, __LINE__, #cond);               \
      fprintf(stderr, __VA_ARGS__);                                                              \
      fputc('\n', stderr);                                                                       \
      abort();                                                                                   \
    }                                                                                            \
  } while (0)

typedef enum vklm_status {
  VKLM_OK = 0,
  VKLM_ERROR_VULKAN,               /* a Vulkan call failed; the message names it */
  VKLM_ERROR_OUT_OF_DEVICE_MEMORY, /* the device has no memory left for this request */
  VKLM_ERROR_OUT_OF_HOST_MEMORY,
  VKLM_ERROR_DEVICE_LOST,          /* the device was lost; the context is unusable */
  VKLM_ERROR_UNSUPPORTED,          /* no device, a missing feature or layer */
  VKLM_ERROR_INVALID,              /* a bad argument, shape or input */
  VKLM_ERROR_NOT_FOUND,            /* a shader or device name that does not exist */
  VKLM_ERROR_IO,                   /* a file could not be read or written */
} vklm_status;

const char *vklm_status_name(vklm_status s);

/* ---- configuration: environment variables are read once, here, into this struct ----------
 * VKLM_VALIDATE=1        enable the Khronos validation layer (tests force it on); a missing layer is
 *                        then an error of vklm_context_create, not a warning
 * VKLM_VALIDATE=sync     the same plus the layer's synchronization validation (VKLM_VALIDATE_SYNC)
 * VKLM_DEVICE=N|name     choose device by index or by a case-insensitive name substring
 * VKLM_LIMITS=baseline   hold the engine to the Vulkan spec minimum limits (see vklm_caps)
 * VKLM_TIMESTAMPS=1      record a GPU timestamp around every dispatch
 * VKLM_STAGING=1         use staging buffers even on unified-memory devices (tests both paths)
 * VKLM_CACHE_DIR=path    pipeline cache directory (default $XDG_CACHE_HOME/vklm or
 *                        ~/.cache/vklm); VKLM_CACHE_DIR=off disables the cache
 * VKLM_VERBOSE=1         log device choice and pipeline cache use to stderr
 * VKLM_KERNELS=auto|gpu|cpu  which kernel variants ops run: auto (default) gives CPU-type devices
 *                        (lavapipe) the variants written for CPUs and every other device the GPU
 *                        kernels; gpu or cpu forces one family everywhere (tests, comparisons)
 * VKLM_COOPMAT=0         ops do not choose cooperative-matrix (tensor core) kernels by themselves;
 *                        VKLM_COOPMAT=emulate (tests) runs their tiling with plain arithmetic on
 *                        any device (engine/ops/matmul_coopmat.c) */
#define VKLM_VALIDATE_SYNC 2 /* vklm_config.validate: validation with synchronization validation */
typedef enum vklm_kernels {
  VKLM_KERNELS_AUTO = 0, /* by device type */
  VKLM_KERNELS_GPU,      /* the GPU kernels, whatever the device */
  VKLM_KERNELS_CPU,      /* the CPU-type variants where an op has one */
} vklm_kernels;
typedef enum vklm_coopmat_mode {
  VKLM_COOPMAT_AUTO = 0, /* where the device has them */
  VKLM_COOPMAT_OFF,      /* never chosen by an op (still on explicit request) */
  VKLM_COOPMAT_EMULATE,  /* tests: the cooperative-matrix kernel's emulation, any device */
} vklm_coopmat_mode;
typedef struct vklm_config {
  int validate; /* 0: off, 1: the validation layer, VKLM_VALIDATE_SYNC: and sync validation */
  int limits_baseline;
  int timestamps;
  int force_staging;
  int verbose;
  vklm_kernels kernels;
  vklm_coopmat_mode coopmat; /* VKLM_COOPMAT: unset AUTO, 0 OFF, emulate EMULATE */
  char device[128];
  char cache_dir[512]; /* empty: no pipeline cache on disk */
  /* Fault injection (tests; docs/security.md): device allocations beyond memory_limit bytes
   * (VKLM_DEVICE_MEMORY_LIMIT; 0: none) fail as if the device were full, and so does the
   * fail_alloc-th allocation (VKLM_FAULT_ALLOC=N, counting from 1; 0: none). */
  uint64_t memory_limit;
  uint32_t fail_alloc;
} vklm_config;

void vklm_config_from_env(vklm_config *cfg);

/* ---- capabilities: read once per device ---------------------------------------------------- */
typedef enum vklm_device_type {
  VKLM_DEVICE_OTHER = 0,
  VKLM_DEVICE_DISCRETE,
  VKLM_DEVICE_INTEGRATED,
  VKLM_DEVICE_VIRTUAL,
  VKLM_DEVICE_CPU,
} vklm_device_type;

/* Subgroup operation bits (as Vulkan's VkSubgroupFeatureFlagBits). */
enum {
  VKLM_SUBGROUP_BASIC = 1u << 0,
  VKLM_SUBGROUP_VOTE = 1u << 1,
  VKLM_SUBGROUP_ARITHMETIC = 1u << 2,
  VKLM_SUBGROUP_BALLOT = 1u << 3,
  VKLM_SUBGROUP_SHUFFLE = 1u << 4,
  VKLM_SUBGROUP_SHUFFLE_RELATIVE = 1u << 5,
  VKLM_SUBGROUP_CLUSTERED = 1u << 6,
  VKLM_SUBGROUP_QUAD = 1u << 7,
};

#define VKLM_MAX_HEAPS 16
#define VKLM_MAX_COOPMAT 32

typedef struct vklm_coopmat_shape {
  uint32_t m, n, k;
  char a_type[8], b_type[8], c_type[8], result_type[8]; /* "f16", "f32", "s8", ... */
  char source[4];                                       /* "KHR" or "NV" */
  int subgroup_scope; /* the shape is for one subgroup (VK_SCOPE_SUBGROUP) */
} vklm_coopmat_shape;

typedef struct vklm_caps {
  int index; /* position in the instance's device list */
  char name[256];
  char vendor[32]; /* NVIDIA, AMD, Intel, ARM, Qualcomm, Apple, Mesa, ... */
  char driver_name[256];
  char driver_info[256];
  uint32_t vendor_id, device_id;
  uint32_t driver_version; /* raw */
  char driver_version_str[64];
  uint32_t api_version;
  vklm_device_type type;
  uint8_t device_uuid[16], driver_uuid[16];

  int heap_count;
  struct {
    uint64_t size;
    int device_local;
  } heaps[VKLM_MAX_HEAPS];
  uint64_t device_local_bytes; /* sum of device-local heaps */
  int unified_memory;          /* a memory type is both device-local and host-visible and covers
                                  the largest device-local heap */

  uint32_t max_shared_memory;          /* maxComputeSharedMemorySize, bytes */
  uint32_t max_workgroup_invocations;  /* maxComputeWorkGroupInvocations */
  uint32_t max_workgroup_size[3];
  uint32_t max_workgroup_count[3];
  uint32_t max_push_constants;
  uint64_t max_storage_buffer_range;
  uint64_t max_allocation_size;
  uint32_t min_storage_offset_alignment;

  uint32_t subgroup_size;              /* the default size */
  uint32_t subgroup_min, subgroup_max; /* with subgroup size control, else == subgroup_size */
  int subgroup_size_control;
  uint32_t subgroup_ops; /* VKLM_SUBGROUP_* bits available in compute */

  int fp16_arithmetic; /* shaderFloat16 */
  int int8_arithmetic; /* shaderInt8 */
  int storage_16bit;   /* storageBuffer16BitAccess */
  int storage_8bit;    /* storageBuffer8BitAccess */
  /* VK_KHR_cooperative_matrix / VK_NV_cooperative_matrix: offered (vklm_devices_query); in a
   * context's record (vklm_context_caps), offered AND enabled at device creation together with
   * what the cooperative-matrix shaders need (shaderFloat16, the Vulkan memory model), else 0.
   * coopmat[] lists the shapes of every offered extension, KHR's first, each with its source. */
  int coopmat_khr, coopmat_nv;
  int coopmat_count;
  vklm_coopmat_shape coopmat[VKLM_MAX_COOPMAT];

  int timestamps;               /* compute queue supports timestamps */
  double timestamp_period_ns;

  int baseline; /* limits above are clamped to the Vulkan spec minimums (VKLM_LIMITS=baseline) */
} vklm_caps;

const char *vklm_device_type_name(vklm_device_type t);

/* Lists the devices of a temporary instance with their capabilities (baseline clamping applied
 * when cfg asks for it). *count receives the number found (up to max). On failure, err receives a
 * message. */
vklm_status vklm_devices_query(const vklm_config *cfg, vklm_caps *out, int max, int *count,
                               char *err, size_t errlen);

/* The index vklm_context_create would choose among caps[0..n): `want` is an index or a
 * case-insensitive name substring; empty or NULL picks discrete > integrated > virtual > CPU.
 * -1 when nothing matches. */
int vklm_devices_choose(const vklm_caps *caps, int n, const char *want);

/* ---- context: instance + one device + its queue, memory, pipelines ------------------------- */
typedef struct vklm_context vklm_context;

/* Creates the instance (with validation when cfg->validate), chooses a device (discrete >
 * integrated > virtual > CPU unless cfg->device names one) and creates it. On failure *out is NULL
 * and err holds the message. */
vklm_status vklm_context_create(const vklm_config *cfg, vklm_context **out, char *err,
                                size_t errlen);
void vklm_context_destroy(vklm_context *ctx); /* accepts NULL; saves the pipeline cache */
const char *vklm_context_error(const vklm_context *ctx);
const vklm_caps *vklm_context_caps(const vklm_context *ctx);
/* Whether ops should record their CPU-type variants (barrier-free, register-blocked kernels for
 * CPU Vulkan devices such as lavapipe) on this context: cfg.kernels, or with AUTO the device
 * type. set_kernels changes the choice for recordings made after it (tests run both families on
 * one context); a recorded command buffer keeps the kernels it was recorded with. */
int vklm_context_cpu_kernels(const vklm_context *ctx);
void vklm_context_set_kernels(vklm_context *ctx, vklm_kernels k);
const vklm_config *vklm_context_config(const vklm_context *ctx);
/* Keeps a message for a failure found above the runtime (engine/) in the context, as the
 * runtime's own failures are kept (vklm_context_error), and returns st. */
vklm_status vklm_context_fail(vklm_context *ctx, vklm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Number of validation-layer errors and warnings seen so far (each is also printed to stderr). */
uint32_t vklm_context_validation_count(const vklm_context *ctx);
int vklm_context_validation_enabled(const vklm_context *ctx); /* 0, 1 or VKLM_VALIDATE_SYNC */
/* Validation messages of every context of this process so far, including those raised while a
 * context was created or destroyed (a test or the CLI checks it after destroying its context). */
uint32_t vklm_validation_messages(void);
/* Test hook: creates a Vulkan object and never destroys it, so that destroying ctx makes the
 * validation layer report a leak (tests/test_validation.c proves teardown messages are counted). */
void vklm_context_debug_leak(vklm_context *ctx);
/* Bytes of device memory allocated by this context now, and at most so far. */
uint64_t vklm_context_memory_used(const vklm_context *ctx);
uint64_t vklm_context_memory_peak(const vklm_context *ctx);
/* Queue submissions so far (recorded command buffers, staged uploads and downloads, one-off
 * commands): each is a host round trip when waited for; benchmarks report them per step. */
uint64_t vklm_context_submit_count(const vklm_context *ctx);

/* ---- memory ------------------------------------------------------------------------------ */
typedef struct vklm_block vklm_block; /* one VkBuffer over one VkDeviceMemory */
typedef struct vklm_arena vklm_arena;

typedef struct vklm_buffer {
  vklm_block *block; /* borrowed from the arena */
  uint64_t offset;   /* bytes from the block's start; aligned */
  uint64_t size;     /* bytes */
} vklm_buffer;

/* Test hook: records two fills of b with no barrier between them and runs them: a write-after-write
 * hazard that only synchronization validation (VKLM_VALIDATE=sync) reports. */
vklm_status vklm_context_debug_hazard(vklm_context *ctx, vklm_buffer b);

/* An arena hands out buffers from a few large device-local blocks of block_bytes each
 * (0: 256 MiB), each clamped to maxStorageBufferRange and the allocation limit, allocated on
 * demand. A request larger than a block gets a block of its own. */
vklm_status vklm_arena_create(vklm_context *ctx, uint64_t block_bytes, vklm_arena **out);
vklm_status vklm_arena_alloc(vklm_arena *a, uint64_t bytes, vklm_buffer *out);
void vklm_arena_reset(vklm_arena *a); /* forgets every buffer; keeps the blocks */
/* An arena of host-visible, host-coherent memory (cached where the device offers it), every block
 * mapped: what command buffers copy results into for the host to read without another
 * submission (read-backs while later work still runs), and stage inputs from. */
vklm_status vklm_arena_create_host(vklm_context *ctx, uint64_t block_bytes, vklm_arena **out);
/* The host address of b's first byte when its memory is mapped (a host arena's buffers; every
 * buffer on unified-memory devices unless VKLM_STAGING=1), else NULL. Reads are valid once the
 * command buffer that wrote b has completed (vklm_cmd_wait); writes are seen by command buffers
 * submitted after them. */
void *vklm_buffer_host(vklm_buffer b);
uint64_t vklm_arena_used(const vklm_arena *a);
uint64_t vklm_arena_reserved(const vklm_arena *a);
uint32_t vklm_arena_block_count(const vklm_arena *a);
void vklm_arena_destroy(vklm_arena *a); /* accepts NULL */

/* A sub-range of b (offset must be aligned: see vklm_buffer_alignment). */
vklm_buffer vklm_buffer_slice(vklm_buffer b, uint64_t offset, uint64_t size);
uint32_t vklm_buffer_alignment(const vklm_context *ctx);

/* Copies between host memory and a buffer, waiting for completion. Direct memcpy on unified
 * memory, staged copies otherwise. */
vklm_status vklm_buffer_upload(vklm_context *ctx, vklm_buffer dst, uint64_t offset, const void *src,
                               uint64_t bytes);
vklm_status vklm_buffer_download(vklm_context *ctx, vklm_buffer src, uint64_t offset, void *dst,
                                 uint64_t bytes);

/* ---- pipelines ---------------------------------------------------------------------------- */
typedef struct vklm_pipeline vklm_pipeline; /* owned by the context's cache */

#define VKLM_MAX_BINDINGS 16
#define VKLM_MAX_SPEC 16

typedef struct vklm_pipeline_info {
  uint32_t local_size[3];   /* after specialization */
  uint32_t binding_count;   /* storage buffers at set 0, bindings 0..binding_count-1 */
  uint8_t readonly[VKLM_MAX_BINDINGS];
  uint8_t writeonly[VKLM_MAX_BINDINGS];
  uint32_t push_size;       /* bytes of the push-constant block, 0 if none */
  uint32_t shared_bytes;    /* not reflected: 0 */
} vklm_pipeline_info;

/* The pipeline of the embedded shader `name` (file name without .comp) with specialization
 * constants spec[i] for constant_id i (i < nspec). Built once per (name, spec) and cached. */
vklm_status vklm_pipeline_get(vklm_context *ctx, const char *name, const uint32_t *spec,
                              uint32_t nspec, vklm_pipeline **out);
const vklm_pipeline_info *vklm_pipeline_get_info(const vklm_pipeline *p);
/* Whether the build embedded a shader named `name` (some are built only where the build's
 * glslang can: matmul_coopmat_khr). With info, also what its SPIR-V says before specialization
 * (bindings, push-constant size, literal local size); 0 as well when that cannot be read. Needs
 * no device. */
int vklm_shader_find(const char *name, vklm_pipeline_info *info);
const char *vklm_pipeline_name(const vklm_pipeline *p);
/* How many pipelines were built, and how many of them the on-disk cache already held
 * (a pipeline cache hit is only visible as speed; this counts the creation time instead). */
uint32_t vklm_pipeline_count(const vklm_context *ctx);
double vklm_pipeline_build_ms(const vklm_context *ctx);

/* ---- commands ----------------------------------------------------------------------------- */
typedef struct vklm_cmd vklm_cmd;

vklm_status vklm_cmd_create(vklm_context *ctx, vklm_cmd **out);
void vklm_cmd_destroy(vklm_cmd *c); /* accepts NULL; waits for pending work */
vklm_context *vklm_cmd_context(vklm_cmd *c);

/* Recording. begin resets the command buffer. Each dispatch binds bufs[i] at binding i (their
 * count must equal the shader's) and pushes `push`. A barrier is inserted before a dispatch only
 * when it reads or writes memory that an earlier dispatch since the last barrier wrote, or writes
 * memory that one read. */
vklm_status vklm_cmd_begin(vklm_cmd *c);
vklm_status vklm_cmd_dispatch(vklm_cmd *c, vklm_pipeline *p, const vklm_buffer *bufs,
                              uint32_t nbufs, const void *push, uint32_t push_size, uint32_t gx,
                              uint32_t gy, uint32_t gz);
/* Sets every 32-bit word of dst to `word` (0 zeroes; 0x3f800000 is 1.0f). */
vklm_status vklm_cmd_fill_words(vklm_cmd *c, vklm_buffer dst, uint32_t word);
vklm_status vklm_cmd_copy(vklm_cmd *c, vklm_buffer src, vklm_buffer dst, uint64_t bytes);
/* The same from src_offset to dst_offset (bytes, multiples of 4, within the buffers). */
vklm_status vklm_cmd_copy_at(vklm_cmd *c, vklm_buffer src, uint64_t src_offset, vklm_buffer dst,
                             uint64_t dst_offset, uint64_t bytes);
vklm_status vklm_cmd_end(vklm_cmd *c);

/* Submission: a recorded command buffer can be submitted again and again unchanged (replay). */
vklm_status vklm_cmd_submit(vklm_cmd *c);
vklm_status vklm_cmd_wait(vklm_cmd *c);
vklm_status vklm_cmd_run(vklm_cmd *c); /* submit + wait */
/* Runs cs[0..n) (1 <= n <= 16, recorded on one context) as ONE queue submission, in order (each
 * command buffer's closing barrier orders it before the next), and waits for them: one host round
 * trip for work recorded apart (a training pass and its update). */
vklm_status vklm_cmd_run_many(vklm_cmd *const *cs, uint32_t n);
/* The same submission without the wait: cs[n-1] is pending until vklm_cmd_wait(cs[n-1]) (the
 * others are not marked pending: the caller waits on the last before resubmitting any). */
vklm_status vklm_cmd_submit_many(vklm_cmd *const *cs, uint32_t n);
/* Whether c's last submission has completed (or nothing is pending), without waiting; an error
 * (a lost device) counts as done: the next wait reports it. */
int vklm_cmd_done(vklm_cmd *c);

uint32_t vklm_cmd_dispatch_count(const vklm_cmd *c);
uint32_t vklm_cmd_barrier_count(const vklm_cmd *c);

/* GPU time per dispatch of the last completed submission (requires cfg.timestamps and a device
 * that supports them; otherwise *n = 0). */
typedef struct vklm_timing {
  const char *name; /* the pipeline's shader name */
  double ms;
} vklm_timing;
vklm_status vklm_cmd_timings(vklm_cmd *c, vklm_timing *out, uint32_t max, uint32_t *n);

/* Splits a count of workgroups over x and y so that each stays within the device's limit.
 * Shaders recover the linear index with vklm_group_linear() from shaders/common.glsl. */
void vklm_groups_1d(const vklm_context *ctx, uint64_t groups, uint32_t *gx, uint32_t *gy);

#ifdef __cplusplus
}
#endif
#endif

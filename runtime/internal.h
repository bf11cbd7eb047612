/* Private to runtime/: the structs behind the opaque vklm_ handles, and the error macro that turns
 * a failed Vulkan call into a status with a message and jumps to the function's cleanup label. */
#ifndef VKLM_RUNTIME_INTERNAL_H
#define VKLM_RUNTIME_INTERNAL_H

#include <stdarg.h>
#include <volk.h>

#include "vklm_runtime.h"

#define VKLM_ERR_LEN 1024

struct vklm_block {
  VkBuffer buffer;       /* owned */
  VkDeviceMemory memory; /* owned */
  uint64_t size;
  void *mapped; /* persistent mapping when host-visible, else NULL */
  vklm_context *ctx;
};

struct vklm_arena {
  vklm_context *ctx;
  uint64_t block_bytes;
  vklm_block **blocks; /* owned */
  uint64_t *used;      /* bytes used in each block */
  uint32_t nblocks, cap;
  int host; /* vklm_arena_create_host: host-visible, mapped blocks */
};

typedef struct pipeline_reflect {
  uint32_t binding_count;
  uint8_t readonly[VKLM_MAX_BINDINGS], writeonly[VKLM_MAX_BINDINGS];
  uint32_t push_size;
  uint32_t local_size[3];
  int32_t local_size_spec[3]; /* spec constant id per dimension, -1 when literal */
} pipeline_reflect;

/* What vkCreateDevice enables for the cooperative-matrix shaders (caps.c): the structures stay
 * alive until the device is created. */
typedef struct coopmat_features_khr { /* VkPhysicalDeviceCooperativeMatrixFeaturesKHR */
  VkStructureType sType;
  void *pNext;
  VkBool32 cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
} coopmat_features_khr;
typedef struct coopmat_enable {
  VkPhysicalDeviceShaderFloat16Int8Features f16;
  VkPhysicalDeviceVulkanMemoryModelFeatures vmm;
  VkPhysicalDeviceCooperativeMatrixFeaturesNV nv;
  coopmat_features_khr khr;
  const char *exts[4];
  uint32_t nexts;
} coopmat_enable;
/* Where caps offers VK_KHR/NV_cooperative_matrix (never under baseline limits) and the device has
 * the features their shaders need (cooperativeMatrix, shaderFloat16, vulkanMemoryModel), puts the
 * feature structures to enable in front of `chain` and the extensions in e->exts, and returns the
 * new chain; caps->coopmat_khr / coopmat_nv become what is enabled. Elsewhere (lavapipe) returns
 * chain unchanged with no extension. */
void *vklm__coopmat_enable(VkPhysicalDevice phys, vklm_caps *caps, coopmat_enable *e, void *chain);

struct vklm_pipeline {
  char name[64];
  uint32_t spec[VKLM_MAX_SPEC];
  uint32_t nspec;
  vklm_pipeline_info info;
  VkShaderModule module;
  VkDescriptorSetLayout set_layout;
  VkPipelineLayout layout;
  VkPipeline pipeline;
  struct vklm_pipeline *next; /* the context's list */
};

struct vklm_context {
  vklm_config cfg;
  vklm_caps caps;
  char err[VKLM_ERR_LEN];
  int lost;

  VkInstance instance;
  VkDebugUtilsMessengerEXT messenger;
  PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger; /* this instance's (volk's is global) */
  int validation;
  uint32_t validation_count;
  uint64_t submits; /* vkQueueSubmit calls: recorded work, staged copies, one-off commands */
  VkPhysicalDevice phys;
  VkDevice device;
  struct VolkDeviceTable vk; /* this device's functions: every device-level call goes through it */
  VkQueue queue;
  uint32_t queue_family;
  VkPhysicalDeviceMemoryProperties memprops;

  /* memory */
  uint64_t mem_used, mem_peak;
  uint32_t allocations; /* vkAllocateMemory calls so far (cfg.fail_alloc counts them) */
  int direct_map; /* unified memory and not forced to stage: map device-local memory */
  VkBuffer staging;
  VkDeviceMemory staging_mem;
  void *staging_ptr;
  uint64_t staging_size;
  VkCommandPool pool;
  VkCommandBuffer xfer_cb;
  VkFence xfer_fence;

  /* pipelines */
  struct vklm_pipeline *pipelines;
  uint32_t pipeline_count;
  double pipeline_ms;
  VkPipelineCache cache;
  char cache_path[600];
};

/* Records a formatted message in ctx->err ("what: detail (file:line)"). Returns status. */
vklm_status vklm__fail(vklm_context *ctx, vklm_status st, const char *file, int line,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Maps a VkResult to a status and records "call failed: VK_ERROR_X (file:line) detail". */
vklm_status vklm__vkfail(vklm_context *ctx, VkResult r, const char *call, const char *file,
                         int line, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
const char *vklm__result_name(VkResult r);

#define FAIL(ctx, st, ...) vklm__fail((ctx), (st), __FILE__, __LINE__, __VA_ARGS__)

/* VK_TRY(ctx, call, "detail fmt", ...): on failure sets `st` and jumps to `fail`. */
#define VK_TRY(ctx, call, ...)                                                                   \
  do {                                                                                           \
    VkResult r_ = (call);                                                                        \
    if (r_ != VK_SUCCESS) {                                                                      \
      st = vklm__vkfail((ctx), r_, #call, __FILE__, __LINE__, __VA_ARGS__);                      \
      goto fail;                                                                                 \
    }                                                                                            \
  } while (0)

/* caps.c */
void vklm__caps_read(VkPhysicalDevice phys, int index, int baseline, vklm_caps *out);
/* memory.c */
int32_t vklm__memory_type(vklm_context *ctx, uint32_t bits, VkMemoryPropertyFlags want,
                          VkMemoryPropertyFlags avoid);
void vklm__memory_teardown(vklm_context *ctx);
/* pipeline.c */
void vklm__pipelines_teardown(vklm_context *ctx);
void vklm__cache_open(vklm_context *ctx);
int vklm__reflect(const uint32_t *words, size_t nwords, pipeline_reflect *out, char *err,
                  size_t errlen);

#endif

/* Device memory: arenas of a few large blocks (one VkBuffer over one VkDeviceMemory each),
 * sub-allocated into aligned buffer views; uploads and downloads through a staging buffer, or by
 * direct mapping on unified-memory devices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_BLOCK (256ull << 20)
#define STAGING_MAX (64ull << 20)

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

int32_t vklm__memory_type(vklm_context *ctx, uint32_t bits, VkMemoryPropertyFlags want,
                          VkMemoryPropertyFlags avoid) {
  for (uint32_t t = 0; t < ctx->memprops.memoryTypeCount; t++) {
    VkMemoryPropertyFlags f = ctx->memprops.memoryTypes[t].propertyFlags;
    if ((bits & (1u << t)) && (f & want) == want && !(f & avoid)) return (int32_t)t;
  }
  return -1;
}

/* Creates a buffer of `size` bytes with memory of the wanted properties (trying `want` first, then
 * `fallback`), mapped when host-visible. */
static vklm_status raw_create(vklm_context *ctx, uint64_t size, VkMemoryPropertyFlags want,
                              VkMemoryPropertyFlags fallback, VkBuffer *buf, VkDeviceMemory *mem,
                              void **mapped, const char *what) {
  vklm_status st = VKLM_OK;
  *buf = VK_NULL_HANDLE;
  *mem = VK_NULL_HANDLE;
  *mapped = NULL;
  VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                            .size = size,
                            .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  VK_TRY(ctx, ctx->vk.vkCreateBuffer(ctx->device, &bci, NULL, buf), "%s of %.1f MiB", what, mib(size));
  VkMemoryRequirements req;
  ctx->vk.vkGetBufferMemoryRequirements(ctx->device, *buf, &req);
  int32_t type = vklm__memory_type(ctx, req.memoryTypeBits, want, 0);
  if (type < 0) type = vklm__memory_type(ctx, req.memoryTypeBits, fallback, 0);
  if (type < 0) {
    st = FAIL(ctx, VKLM_ERROR_UNSUPPORTED, "no suitable memory type for %s (%.1f MiB)", what, mib(size));
    goto fail;
  }
  VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                              .allocationSize = req.size,
                              .memoryTypeIndex = (uint32_t)type};
  /* injected faults stand for a full device: the same result as the driver's */
  uint32_t nth = ++ctx->allocations;
  int injected = (ctx->cfg.memory_limit && ctx->mem_used + req.size > ctx->cfg.memory_limit) ||
                 nth == ctx->cfg.fail_alloc;
  VkResult r = injected ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                        : ctx->vk.vkAllocateMemory(ctx->device, &mai, NULL, mem);
  if (r != VK_SUCCESS) {
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
      st = FAIL(ctx, VKLM_ERROR_OUT_OF_DEVICE_MEMORY,
                "out of device memory: %s needs %.1f MiB more; vklm already holds %.1f MiB of "
                "the device's %.1f MiB (vkAllocateMemory: %s%s)",
                what, mib(req.size), mib(ctx->mem_used), mib(ctx->caps.device_local_bytes),
                vklm__result_name(r),
                injected ? ", injected by VKLM_DEVICE_MEMORY_LIMIT / VKLM_FAULT_ALLOC" : "");
    } else {
      st = vklm__vkfail(ctx, r, "vkAllocateMemory", __FILE__, __LINE__, "%s of %.1f MiB", what,
                        mib(req.size));
    }
    *mem = VK_NULL_HANDLE;
    goto fail;
  }
  VK_TRY(ctx, ctx->vk.vkBindBufferMemory(ctx->device, *buf, *mem, 0), "%s", what);
  if (ctx->memprops.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
    VK_TRY(ctx, ctx->vk.vkMapMemory(ctx->device, *mem, 0, VK_WHOLE_SIZE, 0, mapped), "%s", what);
  ctx->mem_used += req.size;
  if (ctx->mem_used > ctx->mem_peak) ctx->mem_peak = ctx->mem_used;
  return VKLM_OK;
fail:
  if (*mem) ctx->vk.vkFreeMemory(ctx->device, *mem, NULL);
  if (*buf) ctx->vk.vkDestroyBuffer(ctx->device, *buf, NULL);
  *buf = VK_NULL_HANDLE;
  *mem = VK_NULL_HANDLE;
  return st;
}

static void raw_destroy(vklm_context *ctx, VkBuffer buf, VkDeviceMemory mem) {
  if (!ctx->device) return;
  if (mem) {
    VkMemoryRequirements req;
    ctx->vk.vkGetBufferMemoryRequirements(ctx->device, buf, &req);
    ctx->mem_used -= req.size;
    ctx->vk.vkFreeMemory(ctx->device, mem, NULL);
  }
  if (buf) ctx->vk.vkDestroyBuffer(ctx->device, buf, NULL);
}

/* host: host-visible memory the host reads and writes through its mapping (read-backs and
 * uploads recorded in command buffers); else device-local, mapped on unified memory. */
static vklm_status block_create(vklm_context *ctx, uint64_t size, int host, vklm_block **out) {
  vklm_block *b = calloc(1, sizeof *b);
  if (!b) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "block");
  b->ctx = ctx;
  b->size = size;
  VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                        fallback = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  if (host) {
    want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
           VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    fallback = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  } else if (ctx->direct_map) {
    want |= VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  }
  vklm_status st = raw_create(ctx, size, want, fallback, &b->buffer, &b->memory, &b->mapped,
                              host ? "host-visible block" : "arena block");
  if (st != VKLM_OK) {
    free(b);
    return st;
  }
  if (!host && !ctx->direct_map) b->mapped = NULL; /* staged path: never touch device memory */
  *out = b;
  return VKLM_OK;
}

static void block_destroy(vklm_block *b) {
  if (!b) return;
  if (b->mapped) b->ctx->vk.vkUnmapMemory(b->ctx->device, b->memory);
  raw_destroy(b->ctx, b->buffer, b->memory);
  free(b);
}

uint32_t vklm_buffer_alignment(const vklm_context *ctx) {
  uint32_t a = ctx->caps.min_storage_offset_alignment;
  return a < 16 ? 16 : a;
}

static uint64_t block_limit(const vklm_context *ctx) {
  uint64_t lim = ctx->caps.max_storage_buffer_range;
  if (ctx->caps.max_allocation_size && ctx->caps.max_allocation_size < lim)
    lim = ctx->caps.max_allocation_size;
  return lim & ~(uint64_t)(vklm_buffer_alignment(ctx) - 1);
}

vklm_status vklm_arena_create(vklm_context *ctx, uint64_t block_bytes, vklm_arena **out) {
  *out = NULL;
  vklm_arena *a = calloc(1, sizeof *a);
  if (!a) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "arena");
  a->ctx = ctx;
  uint64_t lim = block_limit(ctx);
  a->block_bytes = block_bytes ? block_bytes : DEFAULT_BLOCK;
  if (a->block_bytes > lim) a->block_bytes = lim; /* split at maxStorageBufferRange */
  *out = a;
  return VKLM_OK;
}

vklm_status vklm_arena_create_host(vklm_context *ctx, uint64_t block_bytes, vklm_arena **out) {
  vklm_status st = vklm_arena_create(ctx, block_bytes, out);
  if (st == VKLM_OK) (*out)->host = 1;
  return st;
}

void *vklm_buffer_host(vklm_buffer b) {
  return b.block && b.block->mapped ? (char *)b.block->mapped + b.offset : NULL;
}

vklm_status vklm_arena_alloc(vklm_arena *a, uint64_t bytes, vklm_buffer *out) {
  vklm_context *ctx = a->ctx;
  if (ctx->lost) return FAIL(ctx, VKLM_ERROR_DEVICE_LOST, "device lost");
  uint64_t align = vklm_buffer_alignment(ctx);
  uint64_t need = (bytes + align - 1) & ~(align - 1);
  if (need == 0) need = align;
  if (need > block_limit(ctx))
    return FAIL(ctx, VKLM_ERROR_INVALID,
                "a buffer of %.1f MiB exceeds the device's largest bindable range %.1f MiB "
                "(maxStorageBufferRange%s); split the tensor", mib(bytes), mib(block_limit(ctx)),
                ctx->caps.baseline ? ", baseline limits" : "");
  for (uint32_t i = 0; i < a->nblocks; i++) {
    if (a->blocks[i]->size - a->used[i] >= need) {
      *out = (vklm_buffer){a->blocks[i], a->used[i], bytes};
      a->used[i] += need;
      return VKLM_OK;
    }
  }
  if (a->nblocks == a->cap) {
    uint32_t cap = a->cap ? a->cap * 2 : 4;
    vklm_block **nb = realloc(a->blocks, cap * sizeof *nb);
    if (!nb) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "arena");
    a->blocks = nb;
    uint64_t *nu = realloc(a->used, cap * sizeof *nu);
    if (!nu) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "arena");
    a->used = nu;
    a->cap = cap;
  }
  uint64_t size = need > a->block_bytes ? need : a->block_bytes;
  vklm_block *b = NULL;
  vklm_status st = block_create(ctx, size, a->host, &b);
  if (st != VKLM_OK) return st;
  a->blocks[a->nblocks] = b;
  a->used[a->nblocks] = need;
  a->nblocks++;
  *out = (vklm_buffer){b, 0, bytes};
  return VKLM_OK;
}

void vklm_arena_reset(vklm_arena *a) {
  for (uint32_t i = 0; i < a->nblocks; i++) a->used[i] = 0;
}

uint64_t vklm_arena_used(const vklm_arena *a) {
  uint64_t s = 0;
  for (uint32_t i = 0; i < a->nblocks; i++) s += a->used[i];
  return s;
}

uint64_t vklm_arena_reserved(const vklm_arena *a) {
  uint64_t s = 0;
  for (uint32_t i = 0; i < a->nblocks; i++) s += a->blocks[i]->size;
  return s;
}

uint32_t vklm_arena_block_count(const vklm_arena *a) { return a->nblocks; }

void vklm_arena_destroy(vklm_arena *a) {
  if (!a) return;
  if (a->ctx->device) a->ctx->vk.vkDeviceWaitIdle(a->ctx->device);
  for (uint32_t i = a->nblocks; i-- > 0;) block_destroy(a->blocks[i]);
  free(a->blocks);
  free(a->used);
  free(a);
}

vklm_buffer vklm_buffer_slice(vklm_buffer b, uint64_t offset, uint64_t size) {
  VKLM_ASSERT(offset + size <= b.size, "slice [%llu, +%llu) outside a buffer of %llu bytes",
              (unsigned long long)offset, (unsigned long long)size, (unsigned long long)b.size);
  VKLM_ASSERT(offset % vklm_buffer_alignment(b.block->ctx) == 0,
              "slice offset %llu is not a multiple of the device's alignment %u",
              (unsigned long long)offset, vklm_buffer_alignment(b.block->ctx));
  return (vklm_buffer){b.block, b.offset + offset, size};
}

/* ---- transfers ----------------------------------------------------------------------------- */
static vklm_status staging_ensure(vklm_context *ctx, uint64_t want) {
  if (want > STAGING_MAX) want = STAGING_MAX;
  if (ctx->staging && ctx->staging_size >= want) return VKLM_OK;
  if (ctx->staging) {
    ctx->vk.vkUnmapMemory(ctx->device, ctx->staging_mem);
    raw_destroy(ctx, ctx->staging, ctx->staging_mem);
    ctx->staging = VK_NULL_HANDLE;
  }
  uint64_t size = 1ull << 20;
  while (size < want) size <<= 1;
  vklm_status st = raw_create(
      ctx, size, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT | VK_MEMORY_PROPERTY_HOST_CACHED_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, &ctx->staging,
      &ctx->staging_mem, &ctx->staging_ptr, "staging buffer");
  if (st == VKLM_OK) ctx->staging_size = size;
  return st;
}

/* One copy between a block and the staging buffer, with the barriers that make earlier compute
 * writes visible to the copy and the copy visible to later compute work and the host. */
static vklm_status staged_copy(vklm_context *ctx, VkBuffer src, uint64_t so, VkBuffer dst,
                               uint64_t dof, uint64_t bytes) {
  vklm_status st = VKLM_OK;
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  VK_TRY(ctx, ctx->vk.vkBeginCommandBuffer(ctx->xfer_cb, &bi), "");
  VkMemoryBarrier pre = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT,
                         .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
  ctx->vk.vkCmdPipelineBarrier(ctx->xfer_cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                       VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &pre, 0, NULL, 0, NULL);
  VkBufferCopy region = {.srcOffset = so, .dstOffset = dof, .size = bytes};
  ctx->vk.vkCmdCopyBuffer(ctx->xfer_cb, src, dst, 1, &region);
  VkMemoryBarrier post = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT};
  ctx->vk.vkCmdPipelineBarrier(ctx->xfer_cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &post,
                       0, NULL, 0, NULL);
  VK_TRY(ctx, ctx->vk.vkEndCommandBuffer(ctx->xfer_cb), "");
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                     .commandBufferCount = 1,
                     .pCommandBuffers = &ctx->xfer_cb};
  ctx->submits++;
  VK_TRY(ctx, ctx->vk.vkQueueSubmit(ctx->queue, 1, &si, ctx->xfer_fence), "copy of %llu bytes",
         (unsigned long long)bytes);
  VK_TRY(ctx, ctx->vk.vkWaitForFences(ctx->device, 1, &ctx->xfer_fence, VK_TRUE, UINT64_MAX), "");
  VK_TRY(ctx, ctx->vk.vkResetFences(ctx->device, 1, &ctx->xfer_fence), "");
  return VKLM_OK;
fail:
  return st;
}

static vklm_status check_range(vklm_context *ctx, vklm_buffer b, uint64_t offset, uint64_t bytes,
                               const char *what) {
  if (ctx->lost) return FAIL(ctx, VKLM_ERROR_DEVICE_LOST, "device lost");
  if (offset > b.size || bytes > b.size - offset)
    return FAIL(ctx, VKLM_ERROR_INVALID, "%s of %llu bytes at offset %llu outside a buffer of %llu bytes",
                what, (unsigned long long)bytes, (unsigned long long)offset, (unsigned long long)b.size);
  return VKLM_OK;
}

vklm_status vklm_buffer_upload(vklm_context *ctx, vklm_buffer dst, uint64_t offset, const void *src,
                               uint64_t bytes) {
  vklm_status st = check_range(ctx, dst, offset, bytes, "upload");
  if (st != VKLM_OK || bytes == 0) return st;
  if (dst.block->mapped) {
    memcpy((char *)dst.block->mapped + dst.offset + offset, src, bytes);
    return VKLM_OK;
  }
  if ((st = staging_ensure(ctx, bytes)) != VKLM_OK) return st;
  for (uint64_t done = 0; done < bytes;) {
    uint64_t n = bytes - done < ctx->staging_size ? bytes - done : ctx->staging_size;
    memcpy(ctx->staging_ptr, (const char *)src + done, n);
    st = staged_copy(ctx, ctx->staging, 0, dst.block->buffer, dst.offset + offset + done, n);
    if (st != VKLM_OK) return st;
    done += n;
  }
  return VKLM_OK;
}

vklm_status vklm_buffer_download(vklm_context *ctx, vklm_buffer src, uint64_t offset, void *dst,
                                 uint64_t bytes) {
  vklm_status st = check_range(ctx, src, offset, bytes, "download");
  if (st != VKLM_OK || bytes == 0) return st;
  if (src.block->mapped) {
    memcpy(dst, (const char *)src.block->mapped + src.offset + offset, bytes);
    return VKLM_OK;
  }
  if ((st = staging_ensure(ctx, bytes)) != VKLM_OK) return st;
  for (uint64_t done = 0; done < bytes;) {
    uint64_t n = bytes - done < ctx->staging_size ? bytes - done : ctx->staging_size;
    st = staged_copy(ctx, src.block->buffer, src.offset + offset + done, ctx->staging, 0, n);
    if (st != VKLM_OK) return st;
    memcpy((char *)dst + done, ctx->staging_ptr, n);
    done += n;
  }
  return VKLM_OK;
}

void vklm__memory_teardown(vklm_context *ctx) {
  if (ctx->staging) {
    ctx->vk.vkUnmapMemory(ctx->device, ctx->staging_mem);
    raw_destroy(ctx, ctx->staging, ctx->staging_mem);
    ctx->staging = VK_NULL_HANDLE;
  }
}

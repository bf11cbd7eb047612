/* Command recording and submission. Many dispatches go into one command buffer; a barrier is
 * recorded only where a dispatch touches memory in a way that conflicts with an access since the
 * last barrier (read after write, write after write, write after read). A recorded command buffer
 * is replayed unchanged by submitting it again. Optional timestamps around every dispatch. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SETS_PER_POOL 256
#define MAX_TIMESTAMPS 4096

typedef struct access {
  const vklm_block *block;
  uint64_t start, end;
  int written;
} access;

struct vklm_cmd {
  vklm_context *ctx;
  VkCommandBuffer cb;
  VkFence fence;
  int recording, recorded, pending;

  VkDescriptorPool *pools; /* owned; reset at begin */
  uint32_t npools, cap_pools, sets_in_last;

  access *acc; /* accesses since the last barrier */
  uint32_t nacc, cap_acc;

  uint32_t dispatches, barriers;

  VkQueryPool queries; /* owned, when timing */
  const vklm_pipeline **timed; /* pipeline of each timed dispatch */
  uint32_t ntimed, cap_timed;
};

vklm_context *vklm_cmd_context(vklm_cmd *c) { return c->ctx; }
uint32_t vklm_cmd_dispatch_count(const vklm_cmd *c) { return c->dispatches; }
uint32_t vklm_cmd_barrier_count(const vklm_cmd *c) { return c->barriers; }

vklm_status vklm_cmd_create(vklm_context *ctx, vklm_cmd **out) {
  vklm_status st = VKLM_OK;
  *out = NULL;
  vklm_cmd *c = calloc(1, sizeof *c);
  if (!c) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "command buffer");
  c->ctx = ctx;
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .commandPool = ctx->pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                    .commandBufferCount = 1};
  VK_TRY(ctx, ctx->vk.vkAllocateCommandBuffers(ctx->device, &ai, &c->cb), "");
  VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VK_TRY(ctx, ctx->vk.vkCreateFence(ctx->device, &fi, NULL, &c->fence), "");
  if (ctx->cfg.timestamps && ctx->caps.timestamps) {
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                .queryCount = MAX_TIMESTAMPS};
    VK_TRY(ctx, ctx->vk.vkCreateQueryPool(ctx->device, &qi, NULL, &c->queries), "%d timestamps", MAX_TIMESTAMPS);
  }
  *out = c;
  return VKLM_OK;
fail:
  vklm_cmd_destroy(c);
  return st;
}

void vklm_cmd_destroy(vklm_cmd *c) {
  if (!c) return;
  vklm_context *ctx = c->ctx;
  if (c->pending && c->fence) ctx->vk.vkWaitForFences(ctx->device, 1, &c->fence, VK_TRUE, UINT64_MAX);
  for (uint32_t i = 0; i < c->cap_pools; i++)
    if (c->pools[i]) ctx->vk.vkDestroyDescriptorPool(ctx->device, c->pools[i], NULL);
  if (c->queries) ctx->vk.vkDestroyQueryPool(ctx->device, c->queries, NULL);
  if (c->fence) ctx->vk.vkDestroyFence(ctx->device, c->fence, NULL);
  if (c->cb) ctx->vk.vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &c->cb);
  free(c->pools);
  free(c->acc);
  free(c->timed);
  free(c);
}

vklm_status vklm_cmd_begin(vklm_cmd *c) {
  vklm_context *ctx = c->ctx;
  vklm_status st = VKLM_OK;
  if (ctx->lost) return FAIL(ctx, VKLM_ERROR_DEVICE_LOST, "device lost");
  if (c->pending && (st = vklm_cmd_wait(c)) != VKLM_OK) return st;
  VK_TRY(ctx, ctx->vk.vkResetCommandBuffer(c->cb, 0), "");
  for (uint32_t i = 0; i < c->npools; i++) VK_TRY(ctx, ctx->vk.vkResetDescriptorPool(ctx->device, c->pools[i], 0), "");
  c->sets_in_last = 0;
  c->npools = c->npools ? 1 : 0; /* keep the first pool; free the rest */
  c->nacc = c->dispatches = c->barriers = c->ntimed = 0;
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  VK_TRY(ctx, ctx->vk.vkBeginCommandBuffer(c->cb, &bi), "");
  if (c->queries) ctx->vk.vkCmdResetQueryPool(c->cb, c->queries, 0, MAX_TIMESTAMPS);
  c->recording = 1;
  c->recorded = 0;
  return VKLM_OK;
fail:
  return st;
}

static void barrier(vklm_cmd *c) {
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
  VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  c->ctx->vk.vkCmdPipelineBarrier(c->cb, stages, stages, 0, 1, &mb, 0, NULL, 0, NULL);
  c->barriers++;
  c->nacc = 0;
}

static int conflicts(const vklm_cmd *c, const vklm_buffer *b, int writes) {
  for (uint32_t i = 0; i < c->nacc; i++) {
    const access *a = &c->acc[i];
    if (a->block == b->block && a->start < b->offset + b->size && b->offset < a->end &&
        (a->written || writes))
      return 1;
  }
  return 0;
}

static vklm_status track(vklm_cmd *c, const vklm_buffer *b, int writes) {
  if (c->nacc == c->cap_acc) {
    uint32_t cap = c->cap_acc ? c->cap_acc * 2 : 64;
    access *n = realloc(c->acc, cap * sizeof *n);
    if (!n) return FAIL(c->ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "access list");
    c->acc = n;
    c->cap_acc = cap;
  }
  c->acc[c->nacc++] = (access){b->block, b->offset, b->offset + b->size, writes};
  return VKLM_OK;
}

static vklm_status alloc_set(vklm_cmd *c, VkDescriptorSetLayout layout, VkDescriptorSet *set) {
  vklm_context *ctx = c->ctx;
  vklm_status st = VKLM_OK;
  if (c->npools == 0 || c->sets_in_last == SETS_PER_POOL) {
    if (c->npools < c->cap_pools && c->pools[c->npools]) {
      /* a pool kept from an earlier recording */
      VK_TRY(ctx, ctx->vk.vkResetDescriptorPool(ctx->device, c->pools[c->npools], 0), "");
    } else {
      if (c->npools == c->cap_pools) {
        uint32_t cap = c->cap_pools ? c->cap_pools * 2 : 4;
        VkDescriptorPool *n = realloc(c->pools, cap * sizeof *n);
        if (!n) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "descriptor pools");
        memset(n + c->cap_pools, 0, (cap - c->cap_pools) * sizeof *n);
        c->pools = n;
        c->cap_pools = cap;
      }
      VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VKLM_MAX_BINDINGS};
      VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                       .maxSets = SETS_PER_POOL,
                                       .poolSizeCount = 1,
                                       .pPoolSizes = &ps};
      VK_TRY(ctx, ctx->vk.vkCreateDescriptorPool(ctx->device, &pi, NULL, &c->pools[c->npools]), "%d sets", SETS_PER_POOL);
    }
    c->npools++;
    c->sets_in_last = 0;
  }
  VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                    .descriptorPool = c->pools[c->npools - 1],
                                    .descriptorSetCount = 1,
                                    .pSetLayouts = &layout};
  VK_TRY(ctx, ctx->vk.vkAllocateDescriptorSets(ctx->device, &ai, set), "");
  c->sets_in_last++;
  return VKLM_OK;
fail:
  return st;
}

vklm_status vklm_cmd_dispatch(vklm_cmd *c, vklm_pipeline *p, const vklm_buffer *bufs,
                              uint32_t nbufs, const void *push, uint32_t push_size, uint32_t gx,
                              uint32_t gy, uint32_t gz) {
  vklm_context *ctx = c->ctx;
  VKLM_ASSERT(c->recording, "dispatch of %s outside begin/end", p->name);
  VKLM_ASSERT(nbufs == p->info.binding_count, "shader %s has %u bindings, %u buffers given", p->name,
              p->info.binding_count, nbufs);
  VKLM_ASSERT(push_size == p->info.push_size, "shader %s takes %u bytes of push constants, %u given",
              p->name, p->info.push_size, push_size);
  for (uint32_t i = 0; i < nbufs; i++)
    VKLM_ASSERT(bufs[i].block && bufs[i].size > 0, "shader %s: binding %u has no buffer", p->name, i);
  if (gx == 0 || gy == 0 || gz == 0) return VKLM_OK;
  if (gx > ctx->caps.max_workgroup_count[0] || gy > ctx->caps.max_workgroup_count[1] ||
      gz > ctx->caps.max_workgroup_count[2])
    return FAIL(ctx, VKLM_ERROR_INVALID, "shader %s: %u x %u x %u workgroups exceed the device's %u x %u x %u",
                p->name, gx, gy, gz, ctx->caps.max_workgroup_count[0], ctx->caps.max_workgroup_count[1],
                ctx->caps.max_workgroup_count[2]);
  vklm_status st;
  int need = 0;
  for (uint32_t i = 0; i < nbufs && !need; i++) need = conflicts(c, &bufs[i], !p->info.readonly[i]);
  if (need) barrier(c);
  for (uint32_t i = 0; i < nbufs; i++)
    if ((st = track(c, &bufs[i], !p->info.readonly[i])) != VKLM_OK) return st;

  VkDescriptorSet set;
  if ((st = alloc_set(c, p->set_layout, &set)) != VKLM_OK) return st;
  VkDescriptorBufferInfo bi[VKLM_MAX_BINDINGS];
  VkWriteDescriptorSet wr[VKLM_MAX_BINDINGS];
  for (uint32_t i = 0; i < nbufs; i++) {
    bi[i] = (VkDescriptorBufferInfo){bufs[i].block->buffer, bufs[i].offset, bufs[i].size};
    wr[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                   .dstSet = set,
                                   .dstBinding = i,
                                   .descriptorCount = 1,
                                   .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                   .pBufferInfo = &bi[i]};
  }
  ctx->vk.vkUpdateDescriptorSets(ctx->device, nbufs, wr, 0, NULL);
  ctx->vk.vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
  ctx->vk.vkCmdBindDescriptorSets(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
  if (push_size) ctx->vk.vkCmdPushConstants(c->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
  int timed = c->queries && 2 * (c->ntimed + 1) <= MAX_TIMESTAMPS;
  if (timed) ctx->vk.vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, c->queries, 2 * c->ntimed);
  ctx->vk.vkCmdDispatch(c->cb, gx, gy, gz);
  if (timed) {
    ctx->vk.vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, c->queries, 2 * c->ntimed + 1);
    if (c->ntimed == c->cap_timed) {
      uint32_t cap = c->cap_timed ? c->cap_timed * 2 : 64;
      const vklm_pipeline **n = realloc(c->timed, cap * sizeof *n);
      if (!n) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "timings");
      c->timed = n;
      c->cap_timed = cap;
    }
    c->timed[c->ntimed++] = p;
  }
  c->dispatches++;
  return VKLM_OK;
}

vklm_status vklm_cmd_fill_words(vklm_cmd *c, vklm_buffer dst, uint32_t word) {
  VKLM_ASSERT(c->recording, "fill outside begin/end");
  VKLM_ASSERT(dst.size % 4 == 0, "fill of %llu bytes: not whole words", (unsigned long long)dst.size);
  if (conflicts(c, &dst, 1)) barrier(c);
  vklm_status st = track(c, &dst, 1);
  if (st != VKLM_OK) return st;
  c->ctx->vk.vkCmdFillBuffer(c->cb, dst.block->buffer, dst.offset, dst.size, word);
  return VKLM_OK;
}

vklm_status vklm_cmd_copy(vklm_cmd *c, vklm_buffer src, vklm_buffer dst, uint64_t bytes) {
  return vklm_cmd_copy_at(c, src, 0, dst, 0, bytes);
}

vklm_status vklm_cmd_copy_at(vklm_cmd *c, vklm_buffer src, uint64_t src_offset, vklm_buffer dst,
                             uint64_t dst_offset, uint64_t bytes) {
  VKLM_ASSERT(c->recording, "copy outside begin/end");
  VKLM_ASSERT(src_offset % 4 == 0 && dst_offset % 4 == 0, "copy offsets must be multiples of 4");
  VKLM_ASSERT(src_offset <= src.size && bytes <= src.size - src_offset &&
                  dst_offset <= dst.size && bytes <= dst.size - dst_offset,
              "copy of %llu bytes exceeds a buffer", (unsigned long long)bytes);
  src = (vklm_buffer){src.block, src.offset + src_offset, bytes};
  dst = (vklm_buffer){dst.block, dst.offset + dst_offset, bytes};
  if (conflicts(c, &src, 0) || conflicts(c, &dst, 1)) barrier(c);
  vklm_status st;
  if ((st = track(c, &src, 0)) != VKLM_OK || (st = track(c, &dst, 1)) != VKLM_OK) return st;
  VkBufferCopy r = {src.offset, dst.offset, bytes};
  c->ctx->vk.vkCmdCopyBuffer(c->cb, src.block->buffer, dst.block->buffer, 1, &r);
  return VKLM_OK;
}

vklm_status vklm_cmd_end(vklm_cmd *c) {
  vklm_context *ctx = c->ctx;
  vklm_status st = VKLM_OK;
  VKLM_ASSERT(c->recording, "end without begin");
  /* Make every write visible to the host (direct-mapped reads) and to the next submission. */
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                        .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT |
                                         VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                                         VK_ACCESS_TRANSFER_WRITE_BIT};
  ctx->vk.vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                           VK_PIPELINE_STAGE_TRANSFER_BIT,
                       0, 1, &mb, 0, NULL, 0, NULL);
  c->recording = 0;
  VK_TRY(ctx, ctx->vk.vkEndCommandBuffer(c->cb), "%u dispatches", c->dispatches);
  c->recorded = 1;
  return VKLM_OK;
fail:
  return st;
}

vklm_status vklm_cmd_submit(vklm_cmd *c) {
  vklm_context *ctx = c->ctx;
  vklm_status st = VKLM_OK;
  VKLM_ASSERT(c->recorded, "submit of a command buffer that was not recorded");
  if (ctx->lost) return FAIL(ctx, VKLM_ERROR_DEVICE_LOST, "device lost");
  if (c->pending && (st = vklm_cmd_wait(c)) != VKLM_OK) return st;
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &c->cb};
  ctx->submits++;
  VK_TRY(ctx, ctx->vk.vkQueueSubmit(ctx->queue, 1, &si, c->fence), "%u dispatches", c->dispatches);
  c->pending = 1;
  return VKLM_OK;
fail:
  return st;
}

vklm_status vklm_cmd_wait(vklm_cmd *c) {
  vklm_context *ctx = c->ctx;
  vklm_status st = VKLM_OK;
  if (!c->pending) return VKLM_OK;
  c->pending = 0;
  VK_TRY(ctx, ctx->vk.vkWaitForFences(ctx->device, 1, &c->fence, VK_TRUE, UINT64_MAX), "%u dispatches", c->dispatches);
  VK_TRY(ctx, ctx->vk.vkResetFences(ctx->device, 1, &c->fence), "");
  return VKLM_OK;
fail:
  return st;
}

vklm_status vklm_cmd_submit_many(vklm_cmd *const *cs, uint32_t n) {
  VKLM_ASSERT(n >= 1 && n <= 16, "submit_many of %u command buffers (1..16)", n);
  vklm_context *ctx = cs[0]->ctx;
  vklm_status st = VKLM_OK;
  VkCommandBuffer cbs[16];
  for (uint32_t i = 0; i < n; i++) {
    VKLM_ASSERT(cs[i]->ctx == ctx && cs[i]->recorded, "submit_many: command buffer %u not "
                "recorded on this context", i);
    if (cs[i]->pending && (st = vklm_cmd_wait(cs[i])) != VKLM_OK) return st;
    cbs[i] = cs[i]->cb;
  }
  if (ctx->lost) return FAIL(ctx, VKLM_ERROR_DEVICE_LOST, "device lost");
  vklm_cmd *last = cs[n - 1];
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = n, .pCommandBuffers = cbs};
  ctx->submits++;
  VK_TRY(ctx, ctx->vk.vkQueueSubmit(ctx->queue, 1, &si, last->fence), "%u command buffers", n);
  last->pending = 1;
  return VKLM_OK;
fail:
  return st;
}

vklm_status vklm_cmd_run_many(vklm_cmd *const *cs, uint32_t n) {
  vklm_status st = vklm_cmd_submit_many(cs, n);
  return st == VKLM_OK ? vklm_cmd_wait(cs[n - 1]) : st;
}

int vklm_cmd_done(vklm_cmd *c) {
  return !c->pending || c->ctx->vk.vkGetFenceStatus(c->ctx->device, c->fence) != VK_NOT_READY;
}

vklm_status vklm_cmd_run(vklm_cmd *c) {
  vklm_status st = vklm_cmd_submit(c);
  return st == VKLM_OK ? vklm_cmd_wait(c) : st;
}

vklm_status vklm_cmd_timings(vklm_cmd *c, vklm_timing *out, uint32_t max, uint32_t *n) {
  vklm_context *ctx = c->ctx;
  vklm_status st = VKLM_OK;
  *n = 0;
  if (!c->queries || c->ntimed == 0) return VKLM_OK;
  uint32_t k = c->ntimed < max ? c->ntimed : max;
  uint64_t *t = calloc(2 * (size_t)k, sizeof *t);
  if (!t) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "timings");
  VK_TRY(ctx, ctx->vk.vkGetQueryPoolResults(ctx->device, c->queries, 0, 2 * k, 2 * k * sizeof *t, t, sizeof *t,
                                    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT), "%u timestamps", 2 * k);
  for (uint32_t i = 0; i < k; i++) {
    out[i].name = c->timed[i]->name;
    out[i].ms = (double)(t[2 * i + 1] - t[2 * i]) * ctx->caps.timestamp_period_ns / 1e6;
  }
  *n = k;
  free(t);
  return VKLM_OK;
fail:
  free(t);
  return st;
}

void vklm_groups_1d(const vklm_context *ctx, uint64_t groups, uint32_t *gx, uint32_t *gy) {
  uint64_t maxx = ctx->caps.max_workgroup_count[0];
  if (groups <= maxx) {
    *gx = (uint32_t)(groups ? groups : 1);
    *gy = 1;
    return;
  }
  uint64_t y = (groups + maxx - 1) / maxx;
  *gx = (uint32_t)((groups + y - 1) / y);
  *gy = (uint32_t)y;
}

/* Compute pipelines from the SPIR-V embedded at build time. Bindings, their access, the push-
 * constant size and the local size are read back from the SPIR-V (never typed by hand);
 * specialization constants set tile and workgroup sizes; a VkPipelineCache is kept on disk,
 * keyed by device and driver UUID, so that a second start is fast. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "shader_table.h"

/* ---- SPIR-V reflection ------------------------------------------------------------------- */
enum {
  OP_EXECUTION_MODE = 16, OP_TYPE_INT = 21, OP_TYPE_FLOAT = 22, OP_TYPE_VECTOR = 23,
  OP_TYPE_MATRIX = 24, OP_TYPE_ARRAY = 28, OP_TYPE_STRUCT = 30, OP_TYPE_POINTER = 32,
  OP_CONSTANT = 43, OP_SPEC_CONSTANT = 50, OP_SPEC_CONSTANT_COMPOSITE = 51,
  OP_CONSTANT_COMPOSITE = 44, OP_VARIABLE = 59, OP_DECORATE = 71, OP_MEMBER_DECORATE = 72,
};
enum { DEC_SPEC_ID = 1, DEC_ARRAY_STRIDE = 6, DEC_BUILTIN = 11, DEC_NON_WRITABLE = 24,
       DEC_NON_READABLE = 25, DEC_BINDING = 33, DEC_SET = 34, DEC_OFFSET = 35 };
enum { SC_UNIFORM = 2, SC_PUSH_CONSTANT = 9, SC_STORAGE_BUFFER = 12 };
enum { BUILTIN_WORKGROUP_SIZE = 25, MODE_LOCAL_SIZE = 17, MODE_LOCAL_SIZE_ID = 38 };

typedef struct idinfo {
  uint16_t op;
  uint32_t a, b, c;  /* op-specific operands */
  int32_t binding, set, spec_id, builtin;
  uint8_t nonwritable, nonreadable, member_nw, member_nr; /* member_*: every member marked */
  uint32_t members, member_nw_count, member_nr_count;
  uint32_t array_stride;
  uint32_t first_word; /* index of the instruction (for composites and structs) */
} idinfo;

#define MAX_MEMBER_OFFSETS 64

static uint32_t type_size(const idinfo *ids, uint32_t bound, const uint32_t *w, size_t n,
                          uint32_t t, int depth);

int vklm__reflect(const uint32_t *w, size_t n, pipeline_reflect *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < 3; i++) { out->local_size[i] = 1; out->local_size_spec[i] = -1; }
  if (n < 5 || w[0] != 0x07230203u) {
    snprintf(err, errlen, "not a SPIR-V module");
    return -1;
  }
  uint32_t bound = w[3];
  if (bound == 0 || bound > (1u << 22)) {
    snprintf(err, errlen, "SPIR-V id bound %u out of range", bound);
    return -1;
  }
  idinfo *ids = calloc(bound, sizeof *ids);
  if (!ids) {
    snprintf(err, errlen, "out of host memory");
    return -1;
  }
  for (uint32_t i = 0; i < bound; i++) ids[i].binding = ids[i].set = ids[i].spec_id = ids[i].builtin = -1;
  int rc = -1;
  uint32_t ls_mode[3] = {1, 1, 1}, ls_id[3] = {0, 0, 0};
  int have_ls_id = 0;
  /* Member offsets of the push-constant struct (and any struct): word index of each OpMemberDecorate. */
  for (size_t i = 5; i < n;) {
    uint32_t op = w[i] & 0xffff, len = w[i] >> 16;
    if (len == 0 || i + len > n) {
      snprintf(err, errlen, "malformed SPIR-V instruction at word %zu", i);
      goto done;
    }
    const uint32_t *o = &w[i + 1];
#define ID_OK(x) ((x) < bound)
    switch (op) {
    case OP_EXECUTION_MODE:
      if (len >= 6 && o[1] == MODE_LOCAL_SIZE) { ls_mode[0] = o[2]; ls_mode[1] = o[3]; ls_mode[2] = o[4]; }
      if (len >= 6 && o[1] == MODE_LOCAL_SIZE_ID) { ls_id[0] = o[2]; ls_id[1] = o[3]; ls_id[2] = o[4]; have_ls_id = 1; }
      break;
    case OP_TYPE_INT: case OP_TYPE_FLOAT:
      if (len >= 3 && ID_OK(o[0])) { ids[o[0]].op = (uint16_t)op; ids[o[0]].a = o[1]; }
      break;
    case OP_TYPE_VECTOR: case OP_TYPE_MATRIX: case OP_TYPE_ARRAY:
      if (len >= 4 && ID_OK(o[0])) { ids[o[0]].op = (uint16_t)op; ids[o[0]].a = o[1]; ids[o[0]].b = o[2]; }
      break;
    case OP_TYPE_STRUCT:
      if (len >= 2 && ID_OK(o[0])) { ids[o[0]].op = (uint16_t)op; ids[o[0]].members = len - 2; ids[o[0]].first_word = (uint32_t)i; }
      break;
    case OP_TYPE_POINTER:
      if (len >= 4 && ID_OK(o[0])) { ids[o[0]].op = (uint16_t)op; ids[o[0]].a = o[1]; ids[o[0]].b = o[2]; }
      break;
    case OP_CONSTANT: case OP_SPEC_CONSTANT:
      if (len >= 4 && ID_OK(o[1])) { ids[o[1]].op = (uint16_t)op; ids[o[1]].a = o[2]; }
      break;
    case OP_SPEC_CONSTANT_COMPOSITE: case OP_CONSTANT_COMPOSITE:
      if (len >= 3 && ID_OK(o[1])) { ids[o[1]].op = (uint16_t)op; ids[o[1]].first_word = (uint32_t)i; }
      break;
    case OP_VARIABLE:
      if (len >= 4 && ID_OK(o[1])) { ids[o[1]].op = (uint16_t)op; ids[o[1]].a = o[0]; ids[o[1]].b = o[2]; }
      break;
    case OP_DECORATE:
      if (len >= 3 && ID_OK(o[0])) {
        idinfo *d = &ids[o[0]];
        uint32_t lit = len >= 4 ? o[2] : 0;
        if (o[1] == DEC_BINDING) d->binding = (int32_t)lit;
        else if (o[1] == DEC_SET) d->set = (int32_t)lit;
        else if (o[1] == DEC_SPEC_ID) d->spec_id = (int32_t)lit;
        else if (o[1] == DEC_BUILTIN) d->builtin = (int32_t)lit;
        else if (o[1] == DEC_NON_WRITABLE) d->nonwritable = 1;
        else if (o[1] == DEC_NON_READABLE) d->nonreadable = 1;
        else if (o[1] == DEC_ARRAY_STRIDE) d->array_stride = lit;
      }
      break;
    case OP_MEMBER_DECORATE:
      if (len >= 4 && ID_OK(o[0])) {
        if (o[2] == DEC_NON_WRITABLE) ids[o[0]].member_nw_count++;
        if (o[2] == DEC_NON_READABLE) ids[o[0]].member_nr_count++;
      }
      break;
    }
    i += len;
  }
  /* Storage buffers at set 0. */
  uint32_t seen = 0;
  for (uint32_t v = 0; v < bound; v++) {
    idinfo *d = &ids[v];
    if (d->op != OP_VARIABLE || !ID_OK(d->a)) continue;
    idinfo *ptr = &ids[d->a];
    uint32_t sc = d->b;
    if (sc == SC_PUSH_CONSTANT && ptr->op == OP_TYPE_POINTER && ID_OK(ptr->b)) {
      out->push_size = type_size(ids, bound, w, n, ptr->b, 0);
      continue;
    }
    if (sc != SC_STORAGE_BUFFER && sc != SC_UNIFORM) continue;
    if (d->binding < 0) continue;
    if (d->set != 0 && d->set != -1) {
      snprintf(err, errlen, "binding %d uses descriptor set %d; vklm shaders use set 0 only", d->binding, d->set);
      goto done;
    }
    if (sc == SC_UNIFORM && ptr->op == OP_TYPE_POINTER) {
      /* a uniform block: vklm binds storage buffers only */
      snprintf(err, errlen, "binding %d is a uniform block; use a storage buffer", d->binding);
      goto done;
    }
    if (d->binding >= VKLM_MAX_BINDINGS) {
      snprintf(err, errlen, "binding %d exceeds %d", d->binding, VKLM_MAX_BINDINGS);
      goto done;
    }
    uint32_t b = (uint32_t)d->binding;
    seen |= 1u << b;
    idinfo *st = ptr->op == OP_TYPE_POINTER && ID_OK(ptr->b) ? &ids[ptr->b] : NULL;
    int ro = d->nonwritable || (st && st->members && st->member_nw_count >= st->members);
    int wo = d->nonreadable || (st && st->members && st->member_nr_count >= st->members);
    out->readonly[b] = (uint8_t)ro;
    out->writeonly[b] = (uint8_t)wo;
  }
  while (seen & (1u << out->binding_count)) out->binding_count++;
  if (seen != (out->binding_count ? (1u << out->binding_count) - 1 : 0)) {
    snprintf(err, errlen, "storage buffer bindings are not contiguous from 0 (mask 0x%x)", seen);
    goto done;
  }
  /* Local size: the WorkgroupSize built-in wins, then LocalSizeId, then LocalSize. */
  uint32_t comp[3] = {0, 0, 0};
  int have_comp = 0;
  for (uint32_t v = 0; v < bound; v++)
    if (ids[v].builtin == BUILTIN_WORKGROUP_SIZE &&
        (ids[v].op == OP_SPEC_CONSTANT_COMPOSITE || ids[v].op == OP_CONSTANT_COMPOSITE)) {
      const uint32_t *o = &w[ids[v].first_word + 1];
      if ((w[ids[v].first_word] >> 16) >= 6) { comp[0] = o[2]; comp[1] = o[3]; comp[2] = o[4]; have_comp = 1; }
    }
  if (!have_comp && have_ls_id) { memcpy(comp, ls_id, sizeof comp); have_comp = 1; }
  for (int k = 0; k < 3; k++) {
    out->local_size[k] = ls_mode[k];
    if (have_comp && ID_OK(comp[k])) {
      idinfo *c = &ids[comp[k]];
      out->local_size[k] = c->a;
      if (c->op == OP_SPEC_CONSTANT && c->spec_id >= 0) out->local_size_spec[k] = c->spec_id;
    }
  }
  rc = 0;
done:
  free(ids);
  return rc;
}

static uint32_t type_size(const idinfo *ids, uint32_t bound, const uint32_t *w, size_t n,
                          uint32_t t, int depth) {
  if (t >= bound || depth > 8) return 0;
  const idinfo *d = &ids[t];
  switch (d->op) {
  case OP_TYPE_INT: case OP_TYPE_FLOAT: return d->a / 8;
  case OP_TYPE_VECTOR: case OP_TYPE_MATRIX: return d->b * type_size(ids, bound, w, n, d->a, depth + 1);
  case OP_TYPE_ARRAY: {
    uint32_t len = d->b < bound ? ids[d->b].a : 0;
    uint32_t stride = d->array_stride ? d->array_stride : type_size(ids, bound, w, n, d->a, depth + 1);
    return len * stride;
  }
  case OP_TYPE_STRUCT: {
    /* size = max over members of (Offset decoration + member size) */
    uint32_t nmem = d->members, size = 0;
    const uint32_t *members = &w[d->first_word + 2];
    for (size_t i = 5; i < n;) {
      uint32_t op = w[i] & 0xffff, len = w[i] >> 16;
      if (len == 0 || i + len > n || op == 54 /* OpFunction: decorations are all before */) break;
      if (op == OP_MEMBER_DECORATE && len >= 5 && w[i + 1] == t && w[i + 3] == DEC_OFFSET && w[i + 2] < nmem) {
        uint32_t end = w[i + 4] + type_size(ids, bound, w, n, members[w[i + 2]], depth + 1);
        if (end > size) size = end;
      }
      i += len;
    }
    return size;
  }
  default: return 0;
  }
}

/* ---- pipeline cache on disk --------------------------------------------------------------- */
static void hex(const uint8_t *b, int n, char *out) {
  for (int i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static int mkdirs(const char *path) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

void vklm__cache_open(vklm_context *ctx) {
  void *data = NULL;
  size_t size = 0;
  if (ctx->cfg.cache_dir[0]) {
    char dev[33], drv[33];
    hex(ctx->caps.device_uuid, 16, dev);
    hex(ctx->caps.driver_uuid, 16, drv);
    snprintf(ctx->cache_path, sizeof ctx->cache_path, "%s/pipelines-%s-%s.bin", ctx->cfg.cache_dir, dev, drv);
    FILE *f = fopen(ctx->cache_path, "rb");
    if (f) {
      if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len > 32 && len < (256l << 20) && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)len))) {
          if (fread(data, 1, (size_t)len, f) == (size_t)len) size = (size_t)len;
        }
      }
      fclose(f);
    }
    /* The driver checks the header too; check it here so a stale file is dropped quietly. */
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(ctx->phys, &p);
    if (size) {
      uint32_t hdr[4];
      memcpy(hdr, data, sizeof hdr);
      if (hdr[0] < 32 || hdr[1] != 1 || hdr[2] != p.vendorID || hdr[3] != p.deviceID ||
          memcmp((char *)data + 16, p.pipelineCacheUUID, 16) != 0)
        size = 0;
    }
    if (ctx->cfg.verbose)
      fprintf(stderr, "vklm: pipeline cache %s: %s\n", ctx->cache_path, size ? "loaded" : "new");
  }
  VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                  .initialDataSize = size,
                                  .pInitialData = size ? data : NULL};
  if (ctx->vk.vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->cache) != VK_SUCCESS) {
    ci.initialDataSize = 0;
    ci.pInitialData = NULL;
    if (ctx->vk.vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->cache) != VK_SUCCESS) ctx->cache = VK_NULL_HANDLE;
  }
  free(data);
}

/* Writes the cache atomically: temporary file, fsync, rename. Failures are only reported. */
static void cache_save(vklm_context *ctx) {
  if (!ctx->cache || !ctx->cache_path[0] || ctx->pipeline_count == 0) return;
  size_t size = 0;
  if (ctx->vk.vkGetPipelineCacheData(ctx->device, ctx->cache, &size, NULL) != VK_SUCCESS || size == 0) return;
  void *data = malloc(size);
  if (!data) return;
  if (ctx->vk.vkGetPipelineCacheData(ctx->device, ctx->cache, &size, data) == VK_SUCCESS &&
      mkdirs(ctx->cfg.cache_dir) == 0) {
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", ctx->cache_path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t wr = write(fd, data, size);
      int ok = wr == (ssize_t)size && fsync(fd) == 0;
      close(fd);
      if (!ok || rename(tmp, ctx->cache_path) != 0) {
        unlink(tmp);
        if (ctx->cfg.verbose) fprintf(stderr, "vklm: could not write pipeline cache %s\n", ctx->cache_path);
      }
    }
  }
  free(data);
}

/* ---- pipelines ----------------------------------------------------------------------------- */
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pipeline_free(vklm_context *ctx, struct vklm_pipeline *p) {
  if (!p) return;
  if (p->pipeline) ctx->vk.vkDestroyPipeline(ctx->device, p->pipeline, NULL);
  if (p->layout) ctx->vk.vkDestroyPipelineLayout(ctx->device, p->layout, NULL);
  if (p->set_layout) ctx->vk.vkDestroyDescriptorSetLayout(ctx->device, p->set_layout, NULL);
  if (p->module) ctx->vk.vkDestroyShaderModule(ctx->device, p->module, NULL);
  free(p);
}

int vklm_shader_find(const char *name, vklm_pipeline_info *info) {
  const vklm_shader_entry *e = NULL;
  for (const vklm_shader_entry *s = vklm_shader_table; s->name; s++)
    if (!strcmp(s->name, name)) e = s;
  if (!e) return 0;
  if (!info) return 1;
  pipeline_reflect r;
  char rerr[256];
  if (vklm__reflect(e->words, *e->size / 4, &r, rerr, sizeof rerr) != 0) return 0;
  memset(info, 0, sizeof *info);
  info->binding_count = r.binding_count;
  memcpy(info->readonly, r.readonly, sizeof r.readonly);
  memcpy(info->writeonly, r.writeonly, sizeof r.writeonly);
  info->push_size = r.push_size;
  memcpy(info->local_size, r.local_size, sizeof r.local_size);
  return 1;
}

vklm_status vklm_pipeline_get(vklm_context *ctx, const char *name, const uint32_t *spec,
                              uint32_t nspec, vklm_pipeline **out) {
  VKLM_ASSERT(nspec <= VKLM_MAX_SPEC, "%u specialization constants (max %d)", nspec, VKLM_MAX_SPEC);
  *out = NULL;
  for (struct vklm_pipeline *p = ctx->pipelines; p; p = p->next)
    if (p->nspec == nspec && !strcmp(p->name, name) &&
        (nspec == 0 || !memcmp(p->spec, spec, nspec * sizeof *spec))) {
      *out = p;
      return VKLM_OK;
    }
  const vklm_shader_entry *e = NULL;
  for (const vklm_shader_entry *s = vklm_shader_table; s->name; s++)
    if (!strcmp(s->name, name)) e = s;
  if (!e) return FAIL(ctx, VKLM_ERROR_NOT_FOUND, "no embedded shader named '%s'", name);

  vklm_status st = VKLM_OK;
  double t0 = now_ms();
  struct vklm_pipeline *p = calloc(1, sizeof *p);
  if (!p) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "pipeline");
  snprintf(p->name, sizeof p->name, "%s", name);
  p->nspec = nspec;
  if (nspec) memcpy(p->spec, spec, nspec * sizeof *spec);

  pipeline_reflect r;
  char rerr[256];
  if (vklm__reflect(e->words, *e->size / 4, &r, rerr, sizeof rerr) != 0) {
    st = FAIL(ctx, VKLM_ERROR_INVALID, "shader %s: %s", name, rerr);
    goto fail;
  }
  p->info.binding_count = r.binding_count;
  memcpy(p->info.readonly, r.readonly, sizeof r.readonly);
  memcpy(p->info.writeonly, r.writeonly, sizeof r.writeonly);
  p->info.push_size = r.push_size;
  uint64_t inv = 1;
  for (int k = 0; k < 3; k++) {
    uint32_t v = r.local_size[k];
    if (r.local_size_spec[k] >= 0 && (uint32_t)r.local_size_spec[k] < nspec) v = spec[r.local_size_spec[k]];
    p->info.local_size[k] = v;
    inv *= v;
    if (v == 0 || v > ctx->caps.max_workgroup_size[k]) {
      st = FAIL(ctx, VKLM_ERROR_INVALID, "shader %s: local size %u in dimension %d exceeds the device's %u",
                name, v, k, ctx->caps.max_workgroup_size[k]);
      goto fail;
    }
  }
  if (inv > ctx->caps.max_workgroup_invocations) {
    st = FAIL(ctx, VKLM_ERROR_INVALID, "shader %s: %llu invocations per workgroup exceed the device's %u",
              name, (unsigned long long)inv, ctx->caps.max_workgroup_invocations);
    goto fail;
  }
  if (r.push_size > ctx->caps.max_push_constants) {
    st = FAIL(ctx, VKLM_ERROR_UNSUPPORTED, "shader %s: %u bytes of push constants exceed the device's %u",
              name, r.push_size, ctx->caps.max_push_constants);
    goto fail;
  }

  VkShaderModuleCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                  .codeSize = *e->size,
                                  .pCode = e->words};
  VK_TRY(ctx, ctx->vk.vkCreateShaderModule(ctx->device, &smi, NULL, &p->module), "shader %s", name);
  VkDescriptorSetLayoutBinding lb[VKLM_MAX_BINDINGS];
  for (uint32_t b = 0; b < r.binding_count; b++)
    lb[b] = (VkDescriptorSetLayoutBinding){.binding = b,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .descriptorCount = 1,
                                           .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
  VkDescriptorSetLayoutCreateInfo dli = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                         .bindingCount = r.binding_count,
                                         .pBindings = lb};
  VK_TRY(ctx, ctx->vk.vkCreateDescriptorSetLayout(ctx->device, &dli, NULL, &p->set_layout), "shader %s", name);
  VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = r.push_size};
  VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                    .setLayoutCount = 1,
                                    .pSetLayouts = &p->set_layout,
                                    .pushConstantRangeCount = r.push_size ? 1 : 0,
                                    .pPushConstantRanges = &pcr};
  VK_TRY(ctx, ctx->vk.vkCreatePipelineLayout(ctx->device, &pli, NULL, &p->layout), "shader %s", name);
  VkSpecializationMapEntry me[VKLM_MAX_SPEC];
  for (uint32_t i = 0; i < nspec; i++) me[i] = (VkSpecializationMapEntry){i, i * 4, 4};
  VkSpecializationInfo si = {.mapEntryCount = nspec, .pMapEntries = me, .dataSize = nspec * 4, .pData = spec};
  VkComputePipelineCreateInfo cpi = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = p->module,
                .pName = "main",
                .pSpecializationInfo = nspec ? &si : NULL},
      .layout = p->layout};
  VK_TRY(ctx, ctx->vk.vkCreateComputePipelines(ctx->device, ctx->cache, 1, &cpi, NULL, &p->pipeline),
         "shader %s with %u specialization constant(s)", name, nspec);
  p->next = ctx->pipelines;
  ctx->pipelines = p;
  ctx->pipeline_count++;
  ctx->pipeline_ms += now_ms() - t0;
  *out = p;
  return VKLM_OK;
fail:
  pipeline_free(ctx, p);
  return st;
}

const vklm_pipeline_info *vklm_pipeline_get_info(const vklm_pipeline *p) { return &p->info; }
const char *vklm_pipeline_name(const vklm_pipeline *p) { return p->name; }
uint32_t vklm_pipeline_count(const vklm_context *ctx) { return ctx->pipeline_count; }
double vklm_pipeline_build_ms(const vklm_context *ctx) { return ctx->pipeline_ms; }

void vklm__pipelines_teardown(vklm_context *ctx) {
  if (!ctx->device) return;
  cache_save(ctx);
  struct vklm_pipeline *p = ctx->pipelines;
  while (p) {
    struct vklm_pipeline *next = p->next;
    pipeline_free(ctx, p);
    p = next;
  }
  ctx->pipelines = NULL;
  if (ctx->cache) ctx->vk.vkDestroyPipelineCache(ctx->device, ctx->cache, NULL);
  ctx->cache = VK_NULL_HANDLE;
}

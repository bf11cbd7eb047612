/* The context: configuration from the environment, the instance (with validation on request),
 * device choice, the logical device and its compute queue, and error messages. */
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

const char *vklm_status_name(vklm_status s) {
  switch (s) {
  case VKLM_OK: return "ok";
  case VKLM_ERROR_VULKAN: return "vulkan error";
  case VKLM_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
  case VKLM_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
  case VKLM_ERROR_DEVICE_LOST: return "device lost";
  case VKLM_ERROR_UNSUPPORTED: return "unsupported";
  case VKLM_ERROR_INVALID: return "invalid argument";
  case VKLM_ERROR_NOT_FOUND: return "not found";
  case VKLM_ERROR_IO: return "i/o error";
  }
  return "unknown status";
}

const char *vklm__result_name(VkResult r) {
  switch (r) {
#define R(x) case x: return #x;
    R(VK_SUCCESS) R(VK_NOT_READY) R(VK_TIMEOUT) R(VK_INCOMPLETE)
    R(VK_ERROR_OUT_OF_HOST_MEMORY) R(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    R(VK_ERROR_INITIALIZATION_FAILED) R(VK_ERROR_DEVICE_LOST) R(VK_ERROR_MEMORY_MAP_FAILED)
    R(VK_ERROR_LAYER_NOT_PRESENT) R(VK_ERROR_EXTENSION_NOT_PRESENT)
    R(VK_ERROR_FEATURE_NOT_PRESENT) R(VK_ERROR_INCOMPATIBLE_DRIVER) R(VK_ERROR_TOO_MANY_OBJECTS)
    R(VK_ERROR_FORMAT_NOT_SUPPORTED) R(VK_ERROR_FRAGMENTED_POOL) R(VK_ERROR_UNKNOWN)
    R(VK_ERROR_OUT_OF_POOL_MEMORY) R(VK_ERROR_INVALID_EXTERNAL_HANDLE) R(VK_ERROR_FRAGMENTATION)
    R(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS) R(VK_PIPELINE_COMPILE_REQUIRED)
    R(VK_ERROR_INVALID_SHADER_NV)
#undef R
  default: return "VK_RESULT_UNKNOWN";
  }
}

vklm_status vklm_context_fail(vklm_context *ctx, vklm_status st, const char *fmt, ...) {
  if (!ctx) return st;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
  va_end(ap);
  return st;
}

vklm_status vklm__fail(vklm_context *ctx, vklm_status st, const char *file, int line,
                       const char *fmt, ...) {
  if (!ctx) return st;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n < sizeof ctx->err)
    snprintf(ctx->err + n, sizeof ctx->err - (size_t)n, " (%s:%d)", file, line);
  return st;
}

vklm_status vklm__vkfail(vklm_context *ctx, VkResult r, const char *call, const char *file,
                         int line, const char *fmt, ...) {
  vklm_status st = VKLM_ERROR_VULKAN;
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY) st = VKLM_ERROR_OUT_OF_DEVICE_MEMORY;
  else if (r == VK_ERROR_OUT_OF_HOST_MEMORY) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  else if (r == VK_ERROR_DEVICE_LOST) st = VKLM_ERROR_DEVICE_LOST;
  else if (r == VK_ERROR_FEATURE_NOT_PRESENT || r == VK_ERROR_EXTENSION_NOT_PRESENT ||
           r == VK_ERROR_LAYER_NOT_PRESENT || r == VK_ERROR_INCOMPATIBLE_DRIVER)
    st = VKLM_ERROR_UNSUPPORTED;
  if (!ctx) return st;
  if (st == VKLM_ERROR_DEVICE_LOST) ctx->lost = 1;
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  const char *fn = call;
  char name[96];
  /* "vkFoo(dev, ...)" or "ctx->vk.vkFoo(dev, ...)" -> "vkFoo" */
  const char *paren = strchr(call, '(');
  for (const char *q = call; *q && (!paren || q < paren); q++)
    if (*q == '.') fn = q + 1;
  size_t k = 0;
  while (fn[k] && fn[k] != '(' && k + 1 < sizeof name) { name[k] = fn[k]; k++; }
  name[k] = 0;
  snprintf(ctx->err, sizeof ctx->err, "%s failed: %s%s%s (%s:%d)", name, vklm__result_name(r),
           detail[0] ? ", " : "", detail, file, line);
  return st;
}

static int env_true(const char *name) {
  const char *v = getenv(name);
  return v && *v && strcmp(v, "0") != 0 && strcasecmp(v, "off") != 0 && strcasecmp(v, "no") != 0;
}

void vklm_config_from_env(vklm_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  const char *val = getenv("VKLM_VALIDATE");
  cfg->validate = val && strcasecmp(val, "sync") == 0 ? VKLM_VALIDATE_SYNC
                                                       : env_true("VKLM_VALIDATE");
  cfg->timestamps = env_true("VKLM_TIMESTAMPS");
  cfg->force_staging = env_true("VKLM_STAGING");
  cfg->verbose = env_true("VKLM_VERBOSE");
  const char *kn = getenv("VKLM_KERNELS");
  cfg->kernels = !kn ? VKLM_KERNELS_AUTO
                 : strcasecmp(kn, "gpu") == 0 ? VKLM_KERNELS_GPU
                 : strcasecmp(kn, "cpu") == 0 ? VKLM_KERNELS_CPU
                                              : VKLM_KERNELS_AUTO;
  const char *cm = getenv("VKLM_COOPMAT");
  cfg->coopmat = !cm ? VKLM_COOPMAT_AUTO
                 : !strcmp(cm, "0") ? VKLM_COOPMAT_OFF
                 : !strcasecmp(cm, "emulate") ? VKLM_COOPMAT_EMULATE
                                              : VKLM_COOPMAT_AUTO;
  const char *lim = getenv("VKLM_LIMITS");
  cfg->limits_baseline = lim && strcasecmp(lim, "baseline") == 0;
  const char *ml = getenv("VKLM_DEVICE_MEMORY_LIMIT"), *fa = getenv("VKLM_FAULT_ALLOC");
  cfg->memory_limit = ml && *ml ? strtoull(ml, NULL, 10) : 0;
  cfg->fail_alloc = fa && *fa ? (uint32_t)strtoul(fa, NULL, 10) : 0;
  const char *dev = getenv("VKLM_DEVICE");
  if (dev) snprintf(cfg->device, sizeof cfg->device, "%s", dev);
  const char *cd = getenv("VKLM_CACHE_DIR");
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (cd && *cd) {
    if (strcasecmp(cd, "off") != 0) snprintf(cfg->cache_dir, sizeof cfg->cache_dir, "%s", cd);
  } else if (xdg && *xdg) {
    snprintf(cfg->cache_dir, sizeof cfg->cache_dir, "%s/vklm", xdg);
  } else if (home && *home) {
    snprintf(cfg->cache_dir, sizeof cfg->cache_dir, "%s/.cache/vklm", home);
  }
}

/* ---- validation messages ------------------------------------------------------------------ */
/* Every message of every context of the process, those raised while a context is created or
 * destroyed included (the per-context count cannot see those: the context is gone). */
static atomic_uint process_messages;

uint32_t vklm_validation_messages(void) { return atomic_load(&process_messages); }

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *d,
                                                 void *user) {
  vklm_context *ctx = user;
  if (!(type & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT)))
    return VK_FALSE;
  atomic_fetch_add(&process_messages, 1);
  if (ctx) ctx->validation_count++;
  fprintf(stderr, "vklm: validation %s: %s\n",
          (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning",
          d && d->pMessage ? d->pMessage : "(no message)");
  return VK_FALSE;
}

/* The layer's Vulkan header version (specVersion), 0 when it is not installed. */
static uint32_t layer_version(const char *name) {
  uint32_t n = 0;
  if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return 0;
  VkLayerProperties *p = calloc(n, sizeof *p);
  if (!p) return 0;
  uint32_t found = 0;
  if (vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++)
      if (!strcmp(p[i].layerName, name)) found = p[i].specVersion ? p[i].specVersion : 1;
  free(p);
  return found;
}

static int layer_available(const char *name) { return layer_version(name) != 0; }

/* An instance extension of the loader and drivers (layer NULL) or of one layer. */
static int layer_ext_available(const char *layer, const char *name) {
  uint32_t n = 0;
  if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0) return 0;
  VkExtensionProperties *p = calloc(n, sizeof *p);
  if (!p) return 0;
  int found = 0;
  if (vkEnumerateInstanceExtensionProperties(layer, &n, p) == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++)
      if (!strcmp(p[i].extensionName, name)) found = 1;
  free(p);
  return found;
}

static int instance_ext_available(const char *name) { return layer_ext_available(NULL, name); }

/* Creates ctx->instance (and the messenger when validating). */
static vklm_status instance_create(vklm_context *ctx, int validate) {
  vklm_status st = VKLM_OK;
  if (volkInitialize() != VK_SUCCESS)
    return FAIL(ctx, VKLM_ERROR_UNSUPPORTED,
                "no Vulkan loader: libvulkan.so.1 could not be loaded (install libvulkan1 and a "
                "driver, e.g. mesa-vulkan-drivers for the CPU driver lavapipe)");
  uint32_t api = volkGetInstanceVersion();
  if (api < VK_API_VERSION_1_1)
    return FAIL(ctx, VKLM_ERROR_UNSUPPORTED, "the Vulkan loader supports only 1.0; vklm needs 1.1");
  if (api > VK_API_VERSION_1_3) api = VK_API_VERSION_1_3;

  const char *layers[1];
  uint32_t nlayers = 0;
  const char *exts[4];
  uint32_t nexts = 0;
  VkInstanceCreateFlags flags = 0;
  /* Validation that was asked for and cannot be had is an error, not a warning: a test run
   * without the layer would pass whatever the validation layer would have said. */
  if (validate) {
    if (!layer_available(VALIDATION_LAYER) || !instance_ext_available("VK_EXT_debug_utils"))
      return FAIL(ctx, VKLM_ERROR_UNSUPPORTED, "validation requested (VKLM_VALIDATE) but %s (with "
                  "VK_EXT_debug_utils) is not installed: install vulkan-validationlayers, or unset "
                  "VKLM_VALIDATE", VALIDATION_LAYER);
    if (validate == VKLM_VALIDATE_SYNC &&
        !layer_ext_available(VALIDATION_LAYER, "VK_EXT_validation_features"))
      return FAIL(ctx, VKLM_ERROR_UNSUPPORTED, "synchronization validation requested "
                  "(VKLM_VALIDATE=sync) but %s has no VK_EXT_validation_features",
                  VALIDATION_LAYER);
    layers[nlayers++] = VALIDATION_LAYER;
    exts[nexts++] = "VK_EXT_debug_utils";
    if (validate == VKLM_VALIDATE_SYNC) exts[nexts++] = "VK_EXT_validation_features";
    ctx->validation = validate == VKLM_VALIDATE_SYNC ? VKLM_VALIDATE_SYNC : 1;
  }
  if (instance_ext_available("VK_KHR_portability_enumeration")) {
    exts[nexts++] = "VK_KHR_portability_enumeration";
    flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
  }
  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                           .pApplicationName = "vklm",
                           .pEngineName = "vklm",
                           .apiVersion = api};
  VkDebugUtilsMessengerCreateInfoEXT dbg = {
      .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
      .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
      .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
      .pfnUserCallback = on_message,
      .pUserData = ctx};
  /* VKLM_VALIDATE=sync: the layer's synchronization validation (hazards between dispatches,
   * copies and host access that no barrier orders) on top of the standard checks. */
  static const VkValidationFeatureEnableEXT sync_on[] = {
      VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
                                      .pNext = &dbg,
                                      .enabledValidationFeatureCount = 1,
                                      .pEnabledValidationFeatures = sync_on};
  VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                              .pNext = ctx->validation == VKLM_VALIDATE_SYNC ? (void *)&features
                                       : ctx->validation ? (void *)&dbg : NULL,
                              .flags = flags,
                              .pApplicationInfo = &app,
                              .enabledLayerCount = nlayers,
                              .ppEnabledLayerNames = layers,
                              .enabledExtensionCount = nexts,
                              .ppEnabledExtensionNames = exts};
  VK_TRY(ctx, vkCreateInstance(&ici, NULL, &ctx->instance), "api %u.%u, %u layer(s)",
         VK_API_VERSION_MAJOR(api), VK_API_VERSION_MINOR(api), nlayers);
  volkLoadInstanceOnly(ctx->instance);
  /* volk's instance-level pointers are global: the next context's instance replaces them, and an
   * extension's pointer (debug utils) is NULL for an instance without it. Keep this instance's. */
  ctx->destroy_messenger = (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
      ctx->instance, "vkDestroyDebugUtilsMessengerEXT");
  if (ctx->validation)
    VK_TRY(ctx, vkCreateDebugUtilsMessengerEXT(ctx->instance, &dbg, NULL, &ctx->messenger), "");
  return VKLM_OK;
fail:
  return st;
}

static vklm_status physical_list(vklm_context *ctx, VkPhysicalDevice **out, uint32_t *n) {
  vklm_status st = VKLM_OK;
  *out = NULL;
  *n = 0;
  VK_TRY(ctx, vkEnumeratePhysicalDevices(ctx->instance, n, NULL), "");
  if (*n == 0)
    return FAIL(ctx, VKLM_ERROR_UNSUPPORTED,
                "no Vulkan device found (install a driver; for the CPU: mesa-vulkan-drivers)");
  *out = calloc(*n, sizeof **out);
  if (!*out) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "device list");
  VK_TRY(ctx, vkEnumeratePhysicalDevices(ctx->instance, n, *out), "");
  return VKLM_OK;
fail:
  free(*out);
  *out = NULL;
  return st;
}

static int type_rank(vklm_device_type t) {
  switch (t) {
  case VKLM_DEVICE_DISCRETE: return 4;
  case VKLM_DEVICE_INTEGRATED: return 3;
  case VKLM_DEVICE_VIRTUAL: return 2;
  case VKLM_DEVICE_CPU: return 1;
  default: return 0;
  }
}

static int name_matches(const char *name, const char *want) {
  size_t n = strlen(want);
  for (const char *p = name; *p; p++)
    if (strncasecmp(p, want, n) == 0) return 1;
  return 0;
}

int vklm_devices_choose(const vklm_caps *caps, int n, const char *want) {
  if (want && *want) {
    int digits = 1;
    for (const char *p = want; *p; p++) digits &= isdigit((unsigned char)*p) != 0;
    if (digits) {
      long i = strtol(want, NULL, 10);
      return i >= 0 && i < n ? (int)i : -1;
    }
    for (int i = 0; i < n; i++)
      if (name_matches(caps[i].name, want)) return i;
    return -1;
  }
  int best = 0;
  for (int i = 1; i < n; i++)
    if (type_rank(caps[i].type) > type_rank(caps[best].type)) best = i;
  return n > 0 ? best : -1;
}

vklm_status vklm_devices_query(const vklm_config *cfg, vklm_caps *out, int max, int *count,
                               char *err, size_t errlen) {
  vklm_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  VkPhysicalDevice *phys = NULL;
  uint32_t n = 0;
  vklm_status st = instance_create(ctx, 0);
  if (st == VKLM_OK) st = physical_list(ctx, &phys, &n);
  *count = 0;
  for (uint32_t i = 0; st == VKLM_OK && i < n && (int)i < max; i++) {
    vklm__caps_read(phys[i], (int)i, cfg->limits_baseline, &out[i]);
    (*count)++;
  }
  if (st != VKLM_OK && err) snprintf(err, errlen, "%s", ctx->err);
  free(phys);
  if (ctx->instance) vkDestroyInstance(ctx->instance, NULL);
  free(ctx);
  return st;
}

static vklm_status device_create(vklm_context *ctx) {
  vklm_status st = VKLM_OK;
  uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, NULL);
  VkQueueFamilyProperties *qf = calloc(nq ? nq : 1, sizeof *qf);
  if (!qf) return FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "queue families");
  vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, qf);
  int fam = -1;
  for (uint32_t i = 0; i < nq && fam < 0; i++)
    if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && qf[i].timestampValidBits) fam = (int)i;
  for (uint32_t i = 0; i < nq && fam < 0; i++)
    if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) fam = (int)i;
  int ts_ok = fam >= 0 && qf[fam].timestampValidBits > 0;
  free(qf);
  if (fam < 0)
    return FAIL(ctx, VKLM_ERROR_UNSUPPORTED, "device '%s' has no compute queue", ctx->caps.name);
  ctx->queue_family = (uint32_t)fam;
  if (!ts_ok) ctx->caps.timestamps = 0;

  /* Features worth having; enabled only where present (and never fp16 math under baseline). */
  VkPhysicalDevice16BitStorageFeatures s16 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                  .pNext = &s16};
  vkGetPhysicalDeviceFeatures2(ctx->phys, &f2);
  VkPhysicalDevice16BitStorageFeatures s16_on = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
      .storageBuffer16BitAccess = s16.storageBuffer16BitAccess};
  VkPhysicalDeviceFeatures2 f2_on = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                     .pNext = &s16_on};
  f2_on.features.shaderInt64 = f2.features.shaderInt64;
  /* Cooperative matrices (and the fp16 math and memory model their shaders use) where offered;
   * ctx->caps then says which extension is on. */
  coopmat_enable ce;
  /* A validation layer older than VK_KHR_cooperative_matrix (Vulkan headers 1.3.255; Debian 12's
   * is 1.3.239) reports its structures as unknown: there the NV extension is used, if offered. */
  if (ctx->validation && layer_version(VALIDATION_LAYER) < VK_MAKE_API_VERSION(0, 1, 3, 255))
    ctx->caps.coopmat_khr = 0;
  s16_on.pNext = vklm__coopmat_enable(ctx->phys, &ctx->caps, &ce, NULL);

  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = ctx->queue_family,
                                 .queueCount = 1,
                                 .pQueuePriorities = &prio};
  VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                            .pNext = &f2_on,
                            .queueCreateInfoCount = 1,
                            .pQueueCreateInfos = &qci,
                            .enabledExtensionCount = ce.nexts,
                            .ppEnabledExtensionNames = ce.nexts ? ce.exts : NULL};
  VK_TRY(ctx, vkCreateDevice(ctx->phys, &dci, NULL, &ctx->device), "device '%s'", ctx->caps.name);
  /* This context's own table of device functions: several contexts (devices) may live in one
   * process, so nothing here goes through volk's global device-level pointers. */
  volkLoadDeviceTable(&ctx->vk, ctx->device);
  ctx->vk.vkGetDeviceQueue(ctx->device, ctx->queue_family, 0, &ctx->queue);
  vkGetPhysicalDeviceMemoryProperties(ctx->phys, &ctx->memprops);

  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                 .queueFamilyIndex = ctx->queue_family};
  VK_TRY(ctx, ctx->vk.vkCreateCommandPool(ctx->device, &pci, NULL, &ctx->pool), "");
  VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                     .commandPool = ctx->pool,
                                     .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                     .commandBufferCount = 1};
  VK_TRY(ctx, ctx->vk.vkAllocateCommandBuffers(ctx->device, &cai, &ctx->xfer_cb), "");
  VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VK_TRY(ctx, ctx->vk.vkCreateFence(ctx->device, &fci, NULL, &ctx->xfer_fence), "");
  ctx->direct_map = ctx->caps.unified_memory && !ctx->cfg.force_staging;
  return VKLM_OK;
fail:
  return st;
}

vklm_status vklm_context_create(const vklm_config *cfg, vklm_context **out, char *err,
                                size_t errlen) {
  *out = NULL;
  vklm_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx) {
    if (err) snprintf(err, errlen, "out of host memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  ctx->cfg = *cfg;
  VkPhysicalDevice *phys = NULL;
  vklm_caps *caps = NULL;
  uint32_t n = 0;
  vklm_status st = instance_create(ctx, cfg->validate);
  if (st == VKLM_OK) st = physical_list(ctx, &phys, &n);
  if (st == VKLM_OK) {
    caps = calloc(n, sizeof *caps);
    if (!caps) st = FAIL(ctx, VKLM_ERROR_OUT_OF_HOST_MEMORY, "caps");
  }
  if (st == VKLM_OK) {
    for (uint32_t i = 0; i < n; i++) vklm__caps_read(phys[i], (int)i, cfg->limits_baseline, &caps[i]);
    int i = vklm_devices_choose(caps, (int)n, cfg->device);
    if (i < 0) {
      st = FAIL(ctx, VKLM_ERROR_NOT_FOUND, "no device matches '%s' among %u (see vklm devices)",
                cfg->device, n);
    } else {
      ctx->phys = phys[i];
      ctx->caps = caps[i];
      if (cfg->verbose)
        fprintf(stderr, "vklm: device %d: %s (%s)%s\n", i, ctx->caps.name,
                vklm_device_type_name(ctx->caps.type), cfg->limits_baseline ? " [baseline limits]" : "");
      st = device_create(ctx);
    }
  }
  free(phys);
  free(caps);
  if (st == VKLM_OK) vklm__cache_open(ctx);
  if (st != VKLM_OK) {
    if (err) snprintf(err, errlen, "%s", ctx->err);
    vklm_context_destroy(ctx);
    return st;
  }
  *out = ctx;
  return VKLM_OK;
}

void vklm_context_destroy(vklm_context *ctx) {
  if (!ctx) return;
  if (ctx->device) ctx->vk.vkDeviceWaitIdle(ctx->device);
  vklm__pipelines_teardown(ctx);
  vklm__memory_teardown(ctx);
  if (ctx->device) {
    if (ctx->xfer_fence) ctx->vk.vkDestroyFence(ctx->device, ctx->xfer_fence, NULL);
    if (ctx->pool) ctx->vk.vkDestroyCommandPool(ctx->device, ctx->pool, NULL);
    ctx->vk.vkDestroyDevice(ctx->device, NULL);
  }
  if (ctx->messenger && ctx->destroy_messenger)
    ctx->destroy_messenger(ctx->instance, ctx->messenger, NULL);
  if (ctx->instance) vkDestroyInstance(ctx->instance, NULL);
  free(ctx);
}

const char *vklm_context_error(const vklm_context *ctx) { return ctx ? ctx->err : "no context"; }
const vklm_caps *vklm_context_caps(const vklm_context *ctx) { return &ctx->caps; }

uint64_t vklm_context_submit_count(const vklm_context *ctx) { return ctx->submits; }

int vklm_context_cpu_kernels(const vklm_context *ctx) {
  return ctx->cfg.kernels == VKLM_KERNELS_CPU ||
         (ctx->cfg.kernels == VKLM_KERNELS_AUTO && ctx->caps.type == VKLM_DEVICE_CPU);
}

void vklm_context_set_kernels(vklm_context *ctx, vklm_kernels k) { ctx->cfg.kernels = k; }
const vklm_config *vklm_context_config(const vklm_context *ctx) { return &ctx->cfg; }
uint32_t vklm_context_validation_count(const vklm_context *ctx) { return ctx->validation_count; }
int vklm_context_validation_enabled(const vklm_context *ctx) { return ctx->validation; }

void vklm_context_debug_leak(vklm_context *ctx) {
  if (!ctx || !ctx->device) return;
  VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkFence f = VK_NULL_HANDLE;
  (void)ctx->vk.vkCreateFence(ctx->device, &fi, NULL, &f); /* never destroyed, on purpose */
}

vklm_status vklm_context_debug_hazard(vklm_context *ctx, vklm_buffer b) {
  vklm_status st = VKLM_OK;
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  VK_TRY(ctx, ctx->vk.vkBeginCommandBuffer(ctx->xfer_cb, &bi), "");
  /* two writes of the same bytes with no barrier between them, on purpose */
  ctx->vk.vkCmdFillBuffer(ctx->xfer_cb, b.block->buffer, b.offset, b.size, 0);
  ctx->vk.vkCmdFillBuffer(ctx->xfer_cb, b.block->buffer, b.offset, b.size, 1);
  VK_TRY(ctx, ctx->vk.vkEndCommandBuffer(ctx->xfer_cb), "");
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                     .commandBufferCount = 1,
                     .pCommandBuffers = &ctx->xfer_cb};
  ctx->submits++;
  VK_TRY(ctx, ctx->vk.vkQueueSubmit(ctx->queue, 1, &si, ctx->xfer_fence), "");
  VK_TRY(ctx, ctx->vk.vkWaitForFences(ctx->device, 1, &ctx->xfer_fence, VK_TRUE, UINT64_MAX), "");
  VK_TRY(ctx, ctx->vk.vkResetFences(ctx->device, 1, &ctx->xfer_fence), "");
  return VKLM_OK;
fail:
  return st;
}
uint64_t vklm_context_memory_used(const vklm_context *ctx) { return ctx->mem_used; }
uint64_t vklm_context_memory_peak(const vklm_context *ctx) { return ctx->mem_peak; }

const char *vklm_device_type_name(vklm_device_type t) {
  switch (t) {
  case VKLM_DEVICE_DISCRETE: return "discrete";
  case VKLM_DEVICE_INTEGRATED: return "integrated";
  case VKLM_DEVICE_VIRTUAL: return "virtual";
  case VKLM_DEVICE_CPU: return "cpu";
  default: return "other";
  }
}

/* The capability record: read once per physical device, clamped to the Vulkan spec minimums
 * when baseline limits are asked for (VKLM_LIMITS=baseline). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* VK_KHR_cooperative_matrix postdates Debian 12's Vulkan headers (1.3.239): the two structures
 * and the query it adds are declared here from the registry's definitions. */
#define KHR_COOPMAT_EXT "VK_KHR_cooperative_matrix"
#define STYPE_COOPMAT_PROPS_KHR ((VkStructureType)1000506001)
#define STYPE_COOPMAT_FEATURES_KHR ((VkStructureType)1000506000)
typedef struct coopmat_props_khr {
  VkStructureType sType;
  void *pNext;
  uint32_t MSize, NSize, KSize;
  int32_t AType, BType, CType, ResultType; /* VkComponentTypeKHR == VkComponentTypeNV values */
  VkBool32 saturatingAccumulation;
  int32_t scope;
} coopmat_props_khr;
typedef VkResult(VKAPI_PTR *coopmat_query_khr)(VkPhysicalDevice, uint32_t *, coopmat_props_khr *);

static const char *component_name(int32_t t) {
  static const char *names[] = {"f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"};
  if (t >= 0 && t < (int32_t)(sizeof names / sizeof names[0])) return names[t];
  if (t == 1000141000) return "bf16";
  return "?";
}

static int has_ext(VkExtensionProperties *e, uint32_t n, const char *name) {
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(e[i].extensionName, name)) return 1;
  return 0;
}

static const char *vendor_name(uint32_t id) {
  switch (id) {
  case 0x10DE: return "NVIDIA";
  case 0x1002: return "AMD";
  case 0x1022: return "AMD";
  case 0x8086: return "Intel";
  case 0x13B5: return "ARM";
  case 0x5143: return "Qualcomm";
  case 0x1010: return "ImgTec";
  case 0x106B: return "Apple";
  case 0x10005: return "Mesa";
  case 0x14E4: return "Broadcom";
  case 0x19E5: return "Huawei";
  case 0x1AE0: return "Google";
  default: return "unknown";
  }
}

static void driver_version_string(uint32_t vendor, uint32_t v, char *out, size_t n) {
  if (vendor == 0x10DE) /* NVIDIA: 10.8.8.6 bits */
    snprintf(out, n, "%u.%u.%u", (v >> 22) & 0x3ff, (v >> 14) & 0xff, (v >> 6) & 0xff);
  else if (vendor == 0x8086) /* Intel on Windows: 18.14 bits; elsewhere Vulkan's encoding */
    snprintf(out, n, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
  else
    snprintf(out, n, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

void vklm__caps_read(VkPhysicalDevice phys, int index, int baseline, vklm_caps *c) {
  memset(c, 0, sizeof *c);
  c->index = index;
  uint32_t next = 0;
  vkEnumerateDeviceExtensionProperties(phys, NULL, &next, NULL);
  VkExtensionProperties *ext = calloc(next ? next : 1, sizeof *ext);
  if (ext) vkEnumerateDeviceExtensionProperties(phys, NULL, &next, ext);
  else next = 0;

  VkPhysicalDeviceProperties p0;
  vkGetPhysicalDeviceProperties(phys, &p0);
  int v12 = p0.apiVersion >= VK_API_VERSION_1_2;
  int v13 = p0.apiVersion >= VK_API_VERSION_1_3;

  VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceIDProperties idp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES, .pNext = &sg};
  VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceSubgroupSizeControlProperties ssc = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
  VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  void *chain = &idp;
  m3.pNext = chain;
  chain = &m3;
  int has_drv = v12 || has_ext(ext, next, "VK_KHR_driver_properties");
  int has_ssc = v13 || has_ext(ext, next, "VK_EXT_subgroup_size_control");
  if (has_drv) { drv.pNext = chain; chain = &drv; }
  if (has_ssc) { ssc.pNext = chain; chain = &ssc; }
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = chain};
  vkGetPhysicalDeviceProperties2(phys, &p2);
  const VkPhysicalDeviceLimits *L = &p2.properties.limits;

  snprintf(c->name, sizeof c->name, "%s", p2.properties.deviceName);
  c->vendor_id = p2.properties.vendorID;
  c->device_id = p2.properties.deviceID;
  snprintf(c->vendor, sizeof c->vendor, "%s", vendor_name(c->vendor_id));
  c->driver_version = p2.properties.driverVersion;
  driver_version_string(c->vendor_id, c->driver_version, c->driver_version_str, sizeof c->driver_version_str);
  c->api_version = p2.properties.apiVersion;
  switch (p2.properties.deviceType) {
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: c->type = VKLM_DEVICE_DISCRETE; break;
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: c->type = VKLM_DEVICE_INTEGRATED; break;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: c->type = VKLM_DEVICE_VIRTUAL; break;
  case VK_PHYSICAL_DEVICE_TYPE_CPU: c->type = VKLM_DEVICE_CPU; break;
  default: c->type = VKLM_DEVICE_OTHER;
  }
  memcpy(c->device_uuid, idp.deviceUUID, 16);
  memcpy(c->driver_uuid, idp.driverUUID, 16);
  if (has_drv) {
    snprintf(c->driver_name, sizeof c->driver_name, "%s", drv.driverName);
    snprintf(c->driver_info, sizeof c->driver_info, "%s", drv.driverInfo);
  }

  VkPhysicalDeviceMemoryProperties mp;
  vkGetPhysicalDeviceMemoryProperties(phys, &mp);
  c->heap_count = (int)min_u32(mp.memoryHeapCount, VKLM_MAX_HEAPS);
  uint64_t biggest = 0;
  uint32_t biggest_heap = 0;
  for (int h = 0; h < c->heap_count; h++) {
    c->heaps[h].size = mp.memoryHeaps[h].size;
    c->heaps[h].device_local = (mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0;
    if (c->heaps[h].device_local) {
      c->device_local_bytes += c->heaps[h].size;
      if (c->heaps[h].size > biggest) { biggest = c->heaps[h].size; biggest_heap = (uint32_t)h; }
    }
  }
  for (uint32_t t = 0; t < mp.memoryTypeCount; t++) {
    VkMemoryPropertyFlags f = mp.memoryTypes[t].propertyFlags;
    if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
        (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) && mp.memoryTypes[t].heapIndex == biggest_heap &&
        c->type != VKLM_DEVICE_DISCRETE)
      c->unified_memory = 1;
  }

  c->max_shared_memory = L->maxComputeSharedMemorySize;
  c->max_workgroup_invocations = L->maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; i++) {
    c->max_workgroup_size[i] = L->maxComputeWorkGroupSize[i];
    c->max_workgroup_count[i] = L->maxComputeWorkGroupCount[i];
  }
  c->max_push_constants = L->maxPushConstantsSize;
  c->max_storage_buffer_range = L->maxStorageBufferRange;
  c->max_allocation_size = m3.maxMemoryAllocationSize;
  c->min_storage_offset_alignment = (uint32_t)L->minStorageBufferOffsetAlignment;
  c->timestamps = L->timestampComputeAndGraphics; /* refined by the queue family at device creation */
  c->timestamp_period_ns = L->timestampPeriod;

  c->subgroup_size = c->subgroup_min = c->subgroup_max = sg.subgroupSize;
  if (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) c->subgroup_ops = sg.supportedOperations;
  if (has_ssc && ssc.minSubgroupSize) {
    c->subgroup_size_control = 1;
    c->subgroup_min = ssc.minSubgroupSize;
    c->subgroup_max = ssc.maxSubgroupSize;
  }

  VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDevice8BitStorageFeatures s8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
  VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  chain = &s16;
  if (v12 || has_ext(ext, next, "VK_KHR_8bit_storage")) { s8.pNext = chain; chain = &s8; }
  if (v12 || has_ext(ext, next, "VK_KHR_shader_float16_int8")) { f16.pNext = chain; chain = &f16; }
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = chain};
  vkGetPhysicalDeviceFeatures2(phys, &f2);
  c->storage_16bit = s16.storageBuffer16BitAccess;
  c->storage_8bit = s8.storageBuffer8BitAccess;
  c->fp16_arithmetic = f16.shaderFloat16;
  c->int8_arithmetic = f16.shaderInt8;

  /* Cooperative matrices, KHR's shapes first, then NV's. */
  c->coopmat_khr = has_ext(ext, next, KHR_COOPMAT_EXT);
  c->coopmat_nv = has_ext(ext, next, "VK_NV_cooperative_matrix");
  VkInstance inst = volkGetLoadedInstance();
  if (c->coopmat_khr && inst) {
    coopmat_query_khr q = (coopmat_query_khr)vkGetInstanceProcAddr(
        inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (q && q(phys, &n, NULL) == VK_SUCCESS && n) {
      coopmat_props_khr props[VKLM_MAX_COOPMAT];
      if (n > VKLM_MAX_COOPMAT) n = VKLM_MAX_COOPMAT;
      for (uint32_t i = 0; i < n; i++) props[i] = (coopmat_props_khr){.sType = STYPE_COOPMAT_PROPS_KHR};
      VkResult r = q(phys, &n, props);
      if (r == VK_SUCCESS || r == VK_INCOMPLETE)
        for (uint32_t i = 0; i < n && c->coopmat_count < VKLM_MAX_COOPMAT; i++) {
          vklm_coopmat_shape *s = &c->coopmat[c->coopmat_count++];
          s->m = props[i].MSize; s->n = props[i].NSize; s->k = props[i].KSize;
          snprintf(s->a_type, sizeof s->a_type, "%s", component_name(props[i].AType));
          snprintf(s->b_type, sizeof s->b_type, "%s", component_name(props[i].BType));
          snprintf(s->c_type, sizeof s->c_type, "%s", component_name(props[i].CType));
          snprintf(s->result_type, sizeof s->result_type, "%s", component_name(props[i].ResultType));
          snprintf(s->source, sizeof s->source, "KHR");
          s->subgroup_scope = props[i].scope == 3; /* VK_SCOPE_SUBGROUP_KHR */
        }
    }
  }
  /* NV's shapes too when the device offers both (a build without the KHR shader uses them). */
  if (c->coopmat_nv && vkGetPhysicalDeviceCooperativeMatrixPropertiesNV) {
    uint32_t n = 0;
    if (vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(phys, &n, NULL) == VK_SUCCESS && n) {
      VkCooperativeMatrixPropertiesNV props[VKLM_MAX_COOPMAT];
      if (n > VKLM_MAX_COOPMAT) n = VKLM_MAX_COOPMAT;
      for (uint32_t i = 0; i < n; i++)
        props[i] = (VkCooperativeMatrixPropertiesNV){.sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV};
      VkResult r = vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(phys, &n, props);
      if (r == VK_SUCCESS || r == VK_INCOMPLETE)
        for (uint32_t i = 0; i < n && c->coopmat_count < VKLM_MAX_COOPMAT; i++) {
          vklm_coopmat_shape *s = &c->coopmat[c->coopmat_count++];
          s->m = props[i].MSize; s->n = props[i].NSize; s->k = props[i].KSize;
          snprintf(s->a_type, sizeof s->a_type, "%s", component_name(props[i].AType));
          snprintf(s->b_type, sizeof s->b_type, "%s", component_name(props[i].BType));
          snprintf(s->c_type, sizeof s->c_type, "%s", component_name(props[i].CType));
          snprintf(s->result_type, sizeof s->result_type, "%s", component_name(props[i].DType));
          snprintf(s->source, sizeof s->source, "NV");
          s->subgroup_scope = props[i].scope == VK_SCOPE_SUBGROUP_NV;
        }
    }
  }
  free(ext);

  if (baseline) {
    /* The minimums every conformant Vulkan 1.1 device guarantees (the spec's Required Limits). */
    c->baseline = 1;
    c->max_shared_memory = min_u32(c->max_shared_memory, 16384);
    c->max_workgroup_invocations = min_u32(c->max_workgroup_invocations, 128);
    c->max_workgroup_size[0] = min_u32(c->max_workgroup_size[0], 128);
    c->max_workgroup_size[1] = min_u32(c->max_workgroup_size[1], 128);
    c->max_workgroup_size[2] = min_u32(c->max_workgroup_size[2], 64);
    for (int i = 0; i < 3; i++) c->max_workgroup_count[i] = min_u32(c->max_workgroup_count[i], 65535);
    c->max_push_constants = min_u32(c->max_push_constants, 128);
    if (c->max_storage_buffer_range > (1ull << 27)) c->max_storage_buffer_range = 1ull << 27;
    if (c->min_storage_offset_alignment < 256) c->min_storage_offset_alignment = 256;
    c->fp16_arithmetic = 0;
    c->int8_arithmetic = 0;
    c->storage_16bit = 0; /* optional in Vulkan 1.1: fp16 KV caches fall back to fp32 */
    c->storage_8bit = 0;
    c->coopmat_count = 0;
    c->coopmat_khr = c->coopmat_nv = 0;
  }
}

void *vklm__coopmat_enable(VkPhysicalDevice phys, vklm_caps *caps, coopmat_enable *e, void *chain) {
  memset(e, 0, sizeof *e);
  if (!caps->coopmat_khr && !caps->coopmat_nv) return chain;
  uint32_t next = 0;
  vkEnumerateDeviceExtensionProperties(phys, NULL, &next, NULL);
  VkExtensionProperties *ext = calloc(next ? next : 1, sizeof *ext);
  if (ext) vkEnumerateDeviceExtensionProperties(phys, NULL, &next, ext);
  else next = 0;
  /* shaderFloat16 and vulkanMemoryModel: core in 1.2 (instance and device), else extensions */
  int core12 = caps->api_version >= VK_API_VERSION_1_2 && volkGetInstanceVersion() >= VK_API_VERSION_1_2;
  int ext_f16 = has_ext(ext, next, "VK_KHR_shader_float16_int8");
  int ext_vmm = has_ext(ext, next, "VK_KHR_vulkan_memory_model");
  free(ext);
  VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDeviceVulkanMemoryModelFeatures vmm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES};
  VkPhysicalDeviceCooperativeMatrixFeaturesNV nv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  coopmat_features_khr khr = {.sType = STYPE_COOPMAT_FEATURES_KHR};
  void *q = NULL;
  if (core12 || ext_f16) { f16.pNext = q; q = &f16; }
  if (core12 || ext_vmm) { vmm.pNext = q; q = &vmm; }
  if (caps->coopmat_nv) { nv.pNext = q; q = &nv; }
  if (caps->coopmat_khr) { khr.pNext = q; q = &khr; }
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = q};
  vkGetPhysicalDeviceFeatures2(phys, &f2);
  int base = f16.shaderFloat16 && vmm.vulkanMemoryModel;
  caps->coopmat_khr = caps->coopmat_khr && base && khr.cooperativeMatrix;
  caps->coopmat_nv = caps->coopmat_nv && base && nv.cooperativeMatrix;
  if (!caps->coopmat_khr && !caps->coopmat_nv) return chain;
  e->f16 = (VkPhysicalDeviceShaderFloat16Int8Features){
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .pNext = chain, .shaderFloat16 = VK_TRUE};
  e->vmm = (VkPhysicalDeviceVulkanMemoryModelFeatures){
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES, .pNext = &e->f16, .vulkanMemoryModel = VK_TRUE};
  chain = &e->vmm;
  if (!core12) {
    e->exts[e->nexts++] = "VK_KHR_shader_float16_int8";
    e->exts[e->nexts++] = "VK_KHR_vulkan_memory_model";
  }
  if (caps->coopmat_nv) {
    e->nv = (VkPhysicalDeviceCooperativeMatrixFeaturesNV){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .pNext = chain, .cooperativeMatrix = VK_TRUE};
    chain = &e->nv;
    e->exts[e->nexts++] = "VK_NV_cooperative_matrix";
  }
  if (caps->coopmat_khr) {
    e->khr = (coopmat_features_khr){.sType = STYPE_COOPMAT_FEATURES_KHR, .pNext = chain, .cooperativeMatrix = VK_TRUE};
    chain = &e->khr;
    e->exts[e->nexts++] = KHR_COOPMAT_EXT;
  }
  return chain;
}

/* vklm devices: every Vulkan device with its capability record, as a readable table or --json. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "app_util.h"
#include "commands.h"
#include "flags.h"

#define MAX_DEVICES 16

static void subgroup_ops(uint32_t ops, char *out, size_t n) {
  static const char *names[] = {"basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle_relative", "clustered", "quad"};
  out[0] = 0;
  for (int i = 0; i < 8; i++)
    if (ops & (1u << i)) {
      size_t k = strlen(out);
      snprintf(out + k, n - k, "%s%s", k ? "," : "", names[i]);
    }
}

static void uuid(const uint8_t *u, char *out) {
  for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", u[i]);
}

static void print_table(const vklm_caps *c, int n, int chosen) {
  char b1[32], b2[32], ops[128];
  for (int i = 0; i < n; i++) {
    const vklm_caps *d = &c[i];
    printf("%s device %d: %s\n", i == chosen ? "*" : " ", d->index, d->name);
    printf("    type            %s, vendor %s (0x%04x), device 0x%04x\n", vklm_device_type_name(d->type), d->vendor,
           d->vendor_id, d->device_id);
    printf("    driver          %s %s (%s)\n", d->driver_name[0] ? d->driver_name : "?", d->driver_version_str,
           d->driver_info[0] ? d->driver_info : "-");
    printf("    Vulkan          %u.%u.%u\n", d->api_version >> 22, (d->api_version >> 12) & 0x3ff,
           d->api_version & 0xfff);
    printf("    memory          %s device-local in %d heap(s)%s\n", app_bytes(d->device_local_bytes, b1, sizeof b1),
           d->heap_count, d->unified_memory ? ", unified (host-visible device memory)" : "");
    for (int h = 0; h < d->heap_count; h++)
      printf("      heap %d        %s%s\n", h, app_bytes(d->heaps[h].size, b1, sizeof b1),
             d->heaps[h].device_local ? " device-local" : "");
    printf("    workgroup       %u invocations, size %u x %u x %u, shared memory %s\n", d->max_workgroup_invocations,
           d->max_workgroup_size[0], d->max_workgroup_size[1], d->max_workgroup_size[2],
           app_bytes(d->max_shared_memory, b1, sizeof b1));
    subgroup_ops(d->subgroup_ops, ops, sizeof ops);
    printf("    subgroup        %u (range %u..%u%s), ops: %s\n", d->subgroup_size, d->subgroup_min, d->subgroup_max,
           d->subgroup_size_control ? ", size control" : "", ops[0] ? ops : "none");
    printf("    storage buffer  max range %s, offset alignment %u, push constants %u B, max allocation %s\n",
           app_bytes(d->max_storage_buffer_range, b1, sizeof b1), d->min_storage_offset_alignment,
           d->max_push_constants, app_bytes(d->max_allocation_size, b2, sizeof b2));
    printf("    arithmetic      fp16 %s, int8 %s; 16-bit storage %s, 8-bit storage %s\n", d->fp16_arithmetic ? "yes" : "no",
           d->int8_arithmetic ? "yes" : "no", d->storage_16bit ? "yes" : "no", d->storage_8bit ? "yes" : "no");
    printf("    coop. matrix    %s", d->coopmat_khr ? "KHR" : d->coopmat_nv ? "NV" : "none");
    for (int k = 0; k < d->coopmat_count; k++)
      printf("%s %ux%ux%u %s*%s+%s", k ? "," : ":", d->coopmat[k].m, d->coopmat[k].n, d->coopmat[k].k,
             d->coopmat[k].a_type, d->coopmat[k].b_type, d->coopmat[k].c_type);
    printf("\n    timestamps      %s (period %.2f ns)\n", d->timestamps ? "yes" : "no", d->timestamp_period_ns);
    if (d->baseline) printf("    limits          BASELINE (held to the Vulkan spec minimums)\n");
    printf("\n");
  }
}

static cJSON *caps_json(const vklm_caps *d, int chosen) {
  char ops[128], u[40];
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "index", d->index);
  cJSON_AddBoolToObject(o, "default", chosen);
  cJSON_AddStringToObject(o, "name", d->name);
  cJSON_AddStringToObject(o, "type", vklm_device_type_name(d->type));
  cJSON_AddStringToObject(o, "vendor", d->vendor);
  cJSON_AddNumberToObject(o, "vendor_id", d->vendor_id);
  cJSON_AddNumberToObject(o, "device_id", d->device_id);
  cJSON_AddStringToObject(o, "driver", d->driver_name);
  cJSON_AddStringToObject(o, "driver_info", d->driver_info);
  cJSON_AddStringToObject(o, "driver_version", d->driver_version_str);
  char api[32];
  snprintf(api, sizeof api, "%u.%u.%u", d->api_version >> 22, (d->api_version >> 12) & 0x3ff, d->api_version & 0xfff);
  cJSON_AddStringToObject(o, "api_version", api);
  uuid(d->device_uuid, u);
  cJSON_AddStringToObject(o, "device_uuid", u);
  uuid(d->driver_uuid, u);
  cJSON_AddStringToObject(o, "driver_uuid", u);
  cJSON_AddNumberToObject(o, "device_local_bytes", (double)d->device_local_bytes);
  cJSON_AddBoolToObject(o, "unified_memory", d->unified_memory);
  cJSON *heaps = cJSON_AddArrayToObject(o, "heaps");
  for (int h = 0; h < d->heap_count; h++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "size", (double)d->heaps[h].size);
    cJSON_AddBoolToObject(x, "device_local", d->heaps[h].device_local);
    cJSON_AddItemToArray(heaps, x);
  }
  cJSON_AddNumberToObject(o, "max_shared_memory", d->max_shared_memory);
  cJSON_AddNumberToObject(o, "max_workgroup_invocations", d->max_workgroup_invocations);
  cJSON_AddItemToObject(o, "max_workgroup_size", cJSON_CreateIntArray((const int[]){(int)d->max_workgroup_size[0], (int)d->max_workgroup_size[1], (int)d->max_workgroup_size[2]}, 3));
  cJSON_AddItemToObject(o, "max_workgroup_count", cJSON_CreateIntArray((const int[]){(int)d->max_workgroup_count[0], (int)d->max_workgroup_count[1], (int)d->max_workgroup_count[2]}, 3));
  cJSON_AddNumberToObject(o, "subgroup_size", d->subgroup_size);
  cJSON_AddNumberToObject(o, "subgroup_min", d->subgroup_min);
  cJSON_AddNumberToObject(o, "subgroup_max", d->subgroup_max);
  subgroup_ops(d->subgroup_ops, ops, sizeof ops);
  cJSON_AddStringToObject(o, "subgroup_ops", ops);
  cJSON_AddBoolToObject(o, "fp16_arithmetic", d->fp16_arithmetic);
  cJSON_AddBoolToObject(o, "int8_arithmetic", d->int8_arithmetic);
  cJSON_AddBoolToObject(o, "storage_16bit", d->storage_16bit);
  cJSON_AddBoolToObject(o, "storage_8bit", d->storage_8bit);
  cJSON_AddNumberToObject(o, "max_storage_buffer_range", (double)d->max_storage_buffer_range);
  cJSON_AddNumberToObject(o, "min_storage_offset_alignment", d->min_storage_offset_alignment);
  cJSON_AddNumberToObject(o, "max_push_constants", d->max_push_constants);
  cJSON_AddNumberToObject(o, "max_allocation_size", (double)d->max_allocation_size);
  cJSON_AddStringToObject(o, "cooperative_matrix", d->coopmat_khr ? "KHR" : d->coopmat_nv ? "NV" : "none");
  cJSON *cm = cJSON_AddArrayToObject(o, "cooperative_matrix_shapes");
  for (int k = 0; k < d->coopmat_count; k++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "m", d->coopmat[k].m);
    cJSON_AddNumberToObject(x, "n", d->coopmat[k].n);
    cJSON_AddNumberToObject(x, "k", d->coopmat[k].k);
    cJSON_AddStringToObject(x, "a", d->coopmat[k].a_type);
    cJSON_AddStringToObject(x, "b", d->coopmat[k].b_type);
    cJSON_AddStringToObject(x, "c", d->coopmat[k].c_type);
    cJSON_AddStringToObject(x, "result", d->coopmat[k].result_type);
    cJSON_AddItemToArray(cm, x);
  }
  cJSON_AddBoolToObject(o, "timestamps", d->timestamps);
  cJSON_AddNumberToObject(o, "timestamp_period_ns", d->timestamp_period_ns);
  cJSON_AddBoolToObject(o, "baseline_limits", d->baseline);
  return o;
}

int cmd_devices(int argc, char **argv) {
  vklm_config cfg;
  vklm_config_from_env(&cfg);
  int json = 0;
  const app_flag flags[] = {AF_BOOL("--json", &json, "the list as JSON"), AF_LAST};
  const app_command c = {"devices", "devices [--json] [--limits baseline]",
                         "Lists every Vulkan device and its capabilities; * marks the one vklm uses "
                         "by default\n(discrete > integrated > virtual > CPU; choose with --device "
                         "N|name or VKLM_DEVICE).", flags, 0, 0, 1};
  int pr = app_flags_parse(&c, argc, argv, &cfg, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  vklm_caps caps[MAX_DEVICES];
  int n = 0;
  char err[1024];
  vklm_status st = vklm_devices_query(&cfg, caps, MAX_DEVICES, &n, err, sizeof err);
  if (st != VKLM_OK) {
    fprintf(stderr, "vklm devices: %s: %s\n", vklm_status_name(st), err);
    return 1;
  }
  int chosen = vklm_devices_choose(caps, n, cfg.device);
  if (json) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, caps_json(&caps[i], i == chosen));
    char *s = cJSON_Print(arr);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(arr);
  } else {
    print_table(caps, n, chosen);
  }
  return 0;
}

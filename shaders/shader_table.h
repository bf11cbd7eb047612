/* The table of SPIR-V modules embedded at build time (generated from the .comp files in shaders/).
 * Each entry names a shader by its file name without .comp; size is in bytes. The table ends with
 * a NULL name. Only runtime/ reads it. */
#ifndef VKLM_SHADER_TABLE_H
#define VKLM_SHADER_TABLE_H
#include <stddef.h>
#include <stdint.h>

typedef struct vklm_shader_entry {
  const char *name;
  const uint32_t *words;
  const size_t *size;
} vklm_shader_entry;

extern const vklm_shader_entry vklm_shader_table[];

#endif

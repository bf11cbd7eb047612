/* What cJSON does not say about JSON input: a string value holding "\u0000" is cut at that NUL
 * when read as a C string (cJSON keeps no length), so a reader that takes text from JSON must
 * refuse such a value rather than keep half of it. */
#ifndef VKLM_IO_JSON_H
#define VKLM_IO_JSON_H

#include <stddef.h>

/* Whether the JSON text s[0..n) has the escape \u0000 inside a string (an escaped backslash
 * followed by "u0000" is text, not a NUL). */
int vklm_json_has_nul(const char *s, size_t n);

#endif

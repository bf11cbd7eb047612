/* See json.h. */
#include "io/json.h"

#include <string.h>

int vklm_json_has_nul(const char *s, size_t n) {
  int in_string = 0;
  for (size_t i = 0; i < n; i++) {
    if (!in_string) {
      in_string = s[i] == '"';
      continue;
    }
    if (s[i] == '"') {
      in_string = 0;
    } else if (s[i] == '\\' && i + 1 < n) {
      if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4)) return 1;
      i++; /* the escaped character (a backslash, a quote, u...) */
    }
  }
  return 0;
}

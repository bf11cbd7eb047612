/* bytelevel.c: GPT-2's bytes_to_unicode — every byte maps to a printable code point, so a byte
 * string becomes a Unicode string that JSON files can hold. Printable Latin-1 bytes ('!'..'~',
 * '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes, in increasing order, to U+0100... */
#include <pthread.h>
#include <string.h>

#include "text/tokenizer_internal.h"

static uint16_t byte_to_cp[256];
static int16_t cp_to_byte[324]; /* -1: not a byte-level char */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static int printable(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void build_tables(void) {
  unsigned extra = 0;
  for (unsigned i = 0; i < 324; i++) cp_to_byte[i] = -1;
  for (unsigned b = 0; b < 256; b++) {
    unsigned cp = printable(b) ? b : 256 + extra++;
    byte_to_cp[b] = (uint16_t)cp;
    cp_to_byte[cp] = (int16_t)b;
  }
}

static void init_tables(void) { pthread_once(&tables_once, build_tables); }

uint32_t tk_bytelevel_char(uint8_t b) {
  init_tables();
  return byte_to_cp[b];
}

int tk_bytelevel_encode(const char *bytes, size_t n, vklm_bytes *out) {
  init_tables();
  for (size_t i = 0; i < n; i++) {
    unsigned cp = byte_to_cp[(uint8_t)bytes[i]];
    char u[2];
    int rc;
    if (cp < 0x80) {
      u[0] = (char)cp;
      rc = tk_bytes_append(out, u, 1);
    } else {
      u[0] = (char)(0xC0 | (cp >> 6));
      u[1] = (char)(0x80 | (cp & 0x3F));
      rc = tk_bytes_append(out, u, 2);
    }
    if (rc) return rc;
  }
  return 0;
}

int tk_bytelevel_decode(const char *s, size_t n, vklm_bytes *out) {
  init_tables();
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned cp;
    if (p[i] < 0x80) {
      cp = p[i];
      i++;
    } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < n && (p[i + 1] & 0xC0) == 0x80) {
      cp = ((unsigned)(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
      i += 2;
    } else {
      return 0;
    }
    if (cp >= 324 || cp_to_byte[cp] < 0) return 0;
    char c = (char)cp_to_byte[cp];
    if (tk_bytes_append(out, &c, 1)) return 0;
  }
  return 1;
}

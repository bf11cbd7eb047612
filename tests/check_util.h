/* The check counter of the device-free C tests (test_data, test_data_lang, test_data_mix): each
 * check prints "ok" or "FAIL" and its message; a test ends with failures ? 1 : 0. Everything is
 * static: each test program includes this once. */
#ifndef VKLM_TESTS_CHECK_UTIL_H
#define VKLM_TESTS_CHECK_UTIL_H

#include <stdarg.h>
#include <stdio.h>

static int failures, checks;

__attribute__((format(printf, 2, 3), unused)) static void expect(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  checks++;
  if (!ok) failures++;
  printf("%s ", ok ? "ok  " : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

#endif

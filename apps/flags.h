/* One flag parser for every command (issue 14): a command declares its flags in a table — names,
 * the value's type, where it goes, its range, its help — and parsing, range checks, --help and
 * --version all come from that table. Nothing parses a flag by hand.
 *
 * Values: integers are decimal digits only (no sign, no blank, no junk, no overflow) within
 * [min, max]; numbers are finite (no NaN, no inf, no junk) within [min, max]; a choice is one of
 * its listed words; a string is taken as given. `--flag=value` and `--flag value` both work.
 * Flags may repeat (the last wins) unless they collect (AF_FN, e.g. --stop). The runtime flags
 * (--device, --limits, --validate, --timestamps) are accepted by every command that passes a
 * vklm_config. */
#ifndef VKLM_APPS_FLAGS_H
#define VKLM_APPS_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vklm_runtime.h"

typedef enum app_flag_type {
  AF_END = 0, /* ends a table */
  AF_ON,      /* no value: *(int *)p = 1 */
  AF_OFF,     /* no value: *(int *)p = 0 */
  AF_I32,     /* int in [min, max] (decimal digits; a sign only when min < 0) */
  AF_LONG,    /* long in [min, max] */
  AF_SIZE,    /* size_t in [min, max] */
  AF_U32,     /* uint32_t in [min, max] */
  AF_U64,     /* uint64_t in [min, max] (max >= 2^64 - 1: no upper bound) */
  AF_F32,     /* float, finite, in [min, max] */
  AF_F64,     /* double, finite, in [min, max] */
  AF_STR,     /* const char *: the argument itself */
  AF_CHOICE,  /* int: the index of the value among choices ("a|b|c") */
  AF_FN,      /* fn(p, value, err, errlen): 0, or nonzero with a message (after the name) */
  AF_LIST,    /* app_strlist: each use appends its value (a repeatable flag) */
  AF_TABLE,   /* p is another table (const app_flag *), included here */
} app_flag_type;

/* The values of a repeatable flag (AF_LIST): v has room for cap entries (argc is enough). */
typedef struct app_strlist {
  const char **v;
  int n, cap;
} app_strlist;

typedef struct app_flag {
  const char *name;  /* "--n-predict" */
  const char *alias; /* "-n", or NULL */
  app_flag_type type;
  void *p;
  double min, max;   /* numbers */
  const char *arg;   /* the value's name in the help ("N"); AF_CHOICE: the choices "a|b|c" */
  const char *help;  /* may hold "\n" for more lines */
  int (*fn)(void *p, const char *v, char *err, size_t errlen);
  uint32_t *given, bit; /* when set: *given |= bit once the flag is given (AF_GIVEN) */
} app_flag;

typedef struct app_command {
  const char *name;  /* "generate" (messages say "vklm generate: ...") */
  const char *usage; /* the synopsis after "usage: vklm " */
  const char *about; /* a paragraph printed before the flags, or NULL */
  const app_flag *flags;
  int npos_min, npos_max; /* positional arguments allowed */
  int device;             /* takes the runtime flags (and a vklm_config) */
} app_command;

/* Parses argv[1..argc) against the command's table; positional arguments go to pos (argv order,
 * at most npos_max). cfg (may be NULL) takes the runtime flags. Returns 0 to go on, 1 when
 * --help or --version was printed (exit 0), 2 on a usage error (printed with a pointer to
 * --help; exit 2). */
int app_flags_parse(const app_command *c, int argc, char **argv, vklm_config *cfg,
                    const char **pos, int *npos);
/* A required argument is missing: prints "vklm NAME: what" and the usage line; returns 2. */
int app_flags_missing(const app_command *c, const char *what);
/* The generated help: usage, about, then every flag with its value, range and help. */
void app_flags_help(const app_command *c, FILE *out);
/* vklm's version (the project's, from CMake). */
const char *app_version(void);

/* Convenience initialisers for table rows. */
#define AF_FLAG(n, a, t, ptr, lo, hi, arg, help) {n, a, t, ptr, lo, hi, arg, help, NULL, NULL, 0}
#define AF_BOOL(n, ptr, help) {n, NULL, AF_ON, ptr, 0, 0, NULL, help, NULL, NULL, 0}
#define AF_NOT(n, ptr, help) {n, NULL, AF_OFF, ptr, 0, 0, NULL, help, NULL, NULL, 0}
#define AF_STRING(n, a, ptr, arg, help) {n, a, AF_STR, ptr, 0, 0, arg, help, NULL, NULL, 0}
#define AF_INCLUDE(tbl) {"", NULL, AF_TABLE, (void *)(tbl), 0, 0, NULL, NULL, NULL, NULL, 0}
#define AF_LAST {NULL, NULL, AF_END, NULL, 0, 0, NULL, NULL, NULL, NULL, 0}
/* A number flag that also records that it was given: *given |= bit. */
#define AF_GIVEN(n, a, t, ptr, lo, hi, arg, help, gv, b) {n, a, t, ptr, lo, hi, arg, help, NULL, gv, b}

#endif

/* The table-driven flag parser of every command. See flags.h. */
#include "flags.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app_util.h"

#ifndef VKLM_VERSION
#define VKLM_VERSION "unknown"
#endif

const char *app_version(void) { return VKLM_VERSION; }

/* The row for name (a long name or an alias, compared up to len bytes), searching included
 * tables too; NULL when none. */
static const app_flag *find(const app_flag *t, const char *name, size_t len) {
  for (; t && t->type != AF_END; t++) {
    if (t->type == AF_TABLE) {
      const app_flag *f = find(t->p, name, len);
      if (f) return f;
      continue;
    }
    if ((strlen(t->name) == len && !strncmp(t->name, name, len)) ||
        (t->alias && strlen(t->alias) == len && !strncmp(t->alias, name, len)))
      return t;
  }
  return NULL;
}

static int takes_value(const app_flag *f) { return f->type != AF_ON && f->type != AF_OFF; }

static int is_int(app_flag_type t) {
  return t == AF_I32 || t == AF_LONG || t == AF_SIZE || t == AF_U32 || t == AF_U64;
}

/* The range as text for messages and help. */
static void range_text(const app_flag *f, char *buf, size_t n) {
  if (is_int(f->type)) {
    if (f->max >= 18446744073709551615.0) snprintf(buf, n, "an integer >= %.0f", f->min);
    else snprintf(buf, n, "an integer in [%.0f, %.0f]", f->min, f->max);
  } else {
    snprintf(buf, n, "a number in [%g, %g]", f->min, f->max);
  }
}

/* Stores v into f's target; 0, or 1 with a message in err. */
static int store(const app_flag *f, const char *v, char *err, size_t errlen) {
  char rng[96];
  switch (f->type) {
  case AF_U32:
  case AF_U64: {
    range_text(f, rng, sizeof rng);
    int digits = *v != 0;
    for (const char *s = v; *s; s++) digits &= *s >= '0' && *s <= '9';
    errno = 0;
    unsigned long long x = digits ? strtoull(v, NULL, 10) : 0;
    int inf = f->max >= 18446744073709551615.0;
    if (!digits || errno == ERANGE || (double)x < f->min || (!inf && (double)x > f->max) ||
        (f->type == AF_U32 && x > UINT32_MAX)) {
      snprintf(err, errlen, "%s wants %s, not '%s'", f->name, rng, v);
      return 1;
    }
    if (f->type == AF_U32) *(uint32_t *)f->p = (uint32_t)x;
    else *(uint64_t *)f->p = (uint64_t)x;
    return 0;
  }
  case AF_I32:
  case AF_LONG:
  case AF_SIZE: {
    range_text(f, rng, sizeof rng);
    const char *d = v + (f->min < 0 && v[0] == '-'); /* a sign only where negatives are allowed */
    int digits = *d != 0;
    for (const char *q = d; *q; q++) digits &= *q >= '0' && *q <= '9';
    errno = 0;
    long long x = digits ? strtoll(v, NULL, 10) : 0;
    if (!digits || errno == ERANGE || (double)x < f->min || (double)x > f->max) {
      snprintf(err, errlen, "%s wants %s, not '%s'", f->name, rng, v);
      return 1;
    }
    if (f->type == AF_I32) *(int *)f->p = (int)x;
    else if (f->type == AF_LONG) *(long *)f->p = (long)x;
    else *(size_t *)f->p = (size_t)x;
    return 0;
  }
  case AF_LIST: {
    app_strlist *l = f->p;
    if (l->n >= l->cap) {
      snprintf(err, errlen, "%s is given too often (at most %d)", f->name, l->cap);
      return 1;
    }
    l->v[l->n++] = v;
    return 0;
  }
  case AF_F32:
  case AF_F64: {
    range_text(f, rng, sizeof rng);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno == ERANGE || !isfinite(x) || x < f->min || x > f->max) {
      snprintf(err, errlen, "%s wants %s, not '%s'", f->name, rng, v);
      return 1;
    }
    if (f->type == AF_F32) *(float *)f->p = (float)x;
    else *(double *)f->p = x;
    return 0;
  }
  case AF_STR: *(const char **)f->p = v; return 0;
  case AF_CHOICE: {
    int k = 0;
    for (const char *s = f->arg; *s; k++) {
      size_t n = strcspn(s, "|");
      if (strlen(v) == n && !strncmp(s, v, n)) {
        *(int *)f->p = k;
        return 0;
      }
      s += n + (s[n] == '|');
    }
    snprintf(err, errlen, "%s wants one of %s, not '%s'", f->name, f->arg, v);
    return 1;
  }
  case AF_FN: { /* the function's message follows the flag's name */
    int n = snprintf(err, errlen, "%s ", f->name);
    return f->fn(f->p, v, err + n, errlen - (size_t)n) != 0;
  }
  default: return 1;
  }
}

/* The runtime flags: every command that runs on a device takes them. */
static const char *config_flag(vklm_config *cfg, const char *a, size_t len, const char *v,
                               int *used_value, char *err, size_t errlen) {
  *used_value = 0;
#define IS(s) (strlen(s) == len && !strncmp(a, s, len))
  if (IS("--validate")) return cfg->validate = 1, "";
  if (IS("--timestamps")) return cfg->timestamps = 1, "";
  if (IS("--device") || IS("--limits")) {
    if (!v) return snprintf(err, errlen, "%.*s needs a value", (int)len, a), NULL;
    *used_value = 1;
    if (IS("--device")) {
      if (strlen(v) >= sizeof cfg->device)
        return snprintf(err, errlen, "--device: '%.40s...' is too long", v), NULL;
      snprintf(cfg->device, sizeof cfg->device, "%s", v);
    } else if (!strcmp(v, "baseline") || !strcmp(v, "device")) {
      cfg->limits_baseline = !strcmp(v, "baseline");
    } else {
      return snprintf(err, errlen, "--limits wants baseline or device, not '%s'", v), NULL;
    }
    return "";
  }
#undef IS
  return NULL;
}

int app_flags_parse(const app_command *c, int argc, char **argv, vklm_config *cfg,
                    const char **pos, int *npos) {
  char err[512];
  int n = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !a[1] || !strcmp(a, "--")) {
      int rest = !strcmp(a, "--"); /* everything after -- is positional */
      for (int j = rest ? i + 1 : i; j < (rest ? argc : i + 1); j++) {
        if (n >= c->npos_max) {
          fprintf(stderr, "vklm %s: unexpected argument '%s' (see vklm %s --help)\n", c->name,
                  argv[j], c->name);
          return 2;
        }
        pos[n++] = argv[j];
      }
      if (rest) break;
      continue;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return app_flags_help(c, stdout), 1;
    if (!strcmp(a, "--version")) return printf("vklm %s\n", app_version()), 1;
    const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    const char *v = eq ? eq + 1 : i + 1 < argc ? argv[i + 1] : NULL;
    const app_flag *f = find(c->flags, a, len);
    if (!f && cfg && c->device) {
      int used;
      err[0] = 0;
      const char *r = config_flag(cfg, a, len, v, &used, err, sizeof err);
      if (r) {
        if (used && !eq) i++;
        continue;
      }
      if (err[0]) {
        fprintf(stderr, "vklm %s: %s\n", c->name, err);
        return 2;
      }
    }
    if (!f) {
      fprintf(stderr, "vklm %s: unknown flag '%.*s' (see vklm %s --help)\n", c->name, (int)len,
              a, c->name);
      return 2;
    }
    if (f->given) *f->given |= f->bit;
    if (!takes_value(f)) {
      if (eq) {
        fprintf(stderr, "vklm %s: %s takes no value\n", c->name, f->name);
        return 2;
      }
      *(int *)f->p = f->type == AF_ON;
      continue;
    }
    if (!v) {
      fprintf(stderr, "vklm %s: %s needs a value (%s)\n", c->name, f->name,
              f->arg ? f->arg : "see --help");
      return 2;
    }
    if (!eq) i++;
    if (store(f, v, err, sizeof err)) {
      fprintf(stderr, "vklm %s: %s\n", c->name, err);
      return 2;
    }
  }
  if (npos) *npos = n;
  if (n < c->npos_min) return app_flags_missing(c, "missing arguments");
  return 0;
}

int app_flags_missing(const app_command *c, const char *what) {
  fprintf(stderr, "vklm %s: %s\nusage: vklm %s   (vklm %s --help)\n", c->name, what, c->usage,
          c->name);
  return 2;
}

static void help_rows(const app_flag *t, FILE *out) {
  for (; t && t->type != AF_END; t++) {
    if (t->type == AF_TABLE) {
      help_rows(t->p, out);
      continue;
    }
    char left[96], rng[96] = "";
    const char *arg = t->type == AF_CHOICE ? t->arg
                      : takes_value(t)     ? (t->arg ? t->arg : "X")
                                           : NULL;
    snprintf(left, sizeof left, "%s%s%s%s%s", t->alias ? t->alias : "", t->alias ? ", " : "",
             t->name, arg ? " " : "", arg ? arg : "");
    if (t->type == AF_LIST) snprintf(rng, sizeof rng, " (repeatable)");
    if (is_int(t->type) || t->type == AF_F32 || t->type == AF_F64) {
      char r[80];
      range_text(t, r, sizeof r);
      snprintf(rng, sizeof rng, " (%s)", r);
    }
    fprintf(out, "  %-26s ", left);
    if (strlen(left) > 26) fprintf(out, "\n  %-26s ", "");
    size_t col = 0; /* of the help's last line */
    for (const char *h = t->help ? t->help : ""; *h;) { /* continuation lines indented */
      size_t k = strcspn(h, "\n");
      fprintf(out, "%.*s", (int)k, h);
      col = k, h += k;
      if (*h) fprintf(out, "\n  %-26s ", ""), h++;
    }
    if (rng[0] && col + strlen(rng) > 70) fprintf(out, "\n  %-26s%s\n", "", rng);
    else fprintf(out, "%s\n", rng);
  }
}

void app_flags_help(const app_command *c, FILE *out) {
  fprintf(out, "usage: vklm %s\n", c->usage);
  if (c->about) fprintf(out, "\n%s\n", c->about);
  fprintf(out, "\nflags:\n");
  help_rows(c->flags, out);
  if (c->device)
    fprintf(out, "  %-26s the Vulkan device (index or name); the spec-minimum limits\n"
                 "  %-26s (baseline) or the device's; validation layers; GPU timestamps\n",
            "--device D  --limits L", "--validate --timestamps");
  fprintf(out, "  %-26s this help; the version\n", "-h, --help  --version");
}

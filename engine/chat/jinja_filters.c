/* Jinja built-ins, part two: the filters (jinja2's, with tojson as transformers overrides it:
 * json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)) and the
 * tests (`is defined`, `is string`, ...), with jinja2's handling of Undefined inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_internal.h"

enum {
  F_ABS, F_ATTR, F_CAPITALIZE, F_COUNT, F_D, F_DEFAULT, F_DICTSORT, F_E, F_ESCAPE, F_FIRST,
  F_FLOAT, F_INDENT, F_INT, F_ITEMS, F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_MAX,
  F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE, F_REVERSE, F_ROUND, F_SAFE, F_SELECT, F_SELECTATTR,
  F_SORT, F_STRING, F_SUM, F_TITLE, F_TOJSON, F_TRIM, F_UNIQUE, F_UPPER, F_WORDCOUNT, F_N
};
static const char *const fnames[F_N] = {
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
    "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
    "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper",
    "wordcount"};

enum {
  X_DEFINED, X_UNDEFINED, X_NONE, X_STRING, X_NUMBER, X_INTEGER, X_FLOAT, X_BOOLEAN, X_TRUE,
  X_FALSE, X_MAPPING, X_ITERABLE, X_SEQUENCE, X_CALLABLE, X_ODD, X_EVEN, X_DIVISIBLEBY,
  X_EQ, X_EQUALTO, X_EQ2, X_NE, X_NE2, X_LT, X_LESSTHAN, X_LT2, X_LE, X_LE2, X_GT, X_GREATERTHAN,
  X_GT2, X_GE, X_GE2, X_IN, X_LOWER, X_UPPER, X_SAMEAS, X_ESCAPED, X_N
};
static const char *const tnames[X_N] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true",
    "false", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq",
    "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">",
    "ge", ">=", "in", "lower", "upper", "sameas", "escaped"};

static int find(const char *const *tab, int n, const char *name, size_t len) {
  for (int i = 0; i < n; i++)
    if (strlen(tab[i]) == len && !memcmp(tab[i], name, len)) return i;
  return -1;
}
int jfilter_id(const char *name, size_t n) { return find(fnames, F_N, name, n); }
int jtest_id(const char *name, size_t n) { return find(tnames, X_N, name, n); }

/* ---- tests --------------------------------------------------------------------------------- */
int jtest_call(jctx *c, int id, const jv *in, const jv *args, size_t n, size_t pos) {
  int need = id == X_DIVISIBLEBY || (id >= X_EQ && id <= X_IN) || id == X_SAMEAS;
  if ((size_t)need != n)
    jrfail(c, pos, "test '%s' takes %d argument%s, got %zu", tnames[id], need,
           need == 1 ? "" : "s", n);
  int t = in->t;
  switch (id) {
  case X_DEFINED: return t != JV_UNDEF;
  case X_UNDEFINED: return t == JV_UNDEF;
  case X_NONE: return t == JV_NONE;
  case X_STRING: return t == JV_STR;
  case X_NUMBER: return t == JV_INT || t == JV_FLOAT || t == JV_BOOL;
  case X_INTEGER: return t == JV_INT;
  case X_FLOAT: return t == JV_FLOAT;
  case X_BOOLEAN: return t == JV_BOOL;
  case X_TRUE: return t == JV_BOOL && in->u.i;
  case X_FALSE: return t == JV_BOOL && !in->u.i;
  case X_MAPPING: return t == JV_DICT;
  case X_ITERABLE: return t == JV_STR || t == JV_LIST || t == JV_DICT || t == JV_UNDEF;
  case X_SEQUENCE: return t == JV_STR || t == JV_LIST || t == JV_DICT;
  case X_CALLABLE: return t == JV_FUNC || t == JV_METHOD || t == JV_MACRO;
  case X_ODD:
  case X_EVEN:
  case X_DIVISIBLEBY: {
    if (t != JV_INT && t != JV_BOOL) jrfail(c, pos, "test '%s' needs an integer, not %s",
                                           tnames[id], jv_typename(in));
    int64_t d = 2;
    if (id == X_DIVISIBLEBY) {
      if (args[0].t != JV_INT || !args[0].u.i) jrfail(c, pos, "divisibleby needs a non-zero int");
      d = args[0].u.i;
    }
    int64_t m = in->u.i % d;
    return id == X_ODD ? m != 0 : m == 0;
  }
  case X_EQ: case X_EQUALTO: case X_EQ2: return jv_eq(in, &args[0]);
  case X_NE: case X_NE2: return !jv_eq(in, &args[0]);
  case X_LT: case X_LESSTHAN: case X_LT2: return jv_cmp(c, pos, in, &args[0]) < 0;
  case X_LE: case X_LE2: return jv_cmp(c, pos, in, &args[0]) <= 0;
  case X_GT: case X_GREATERTHAN: case X_GT2: return jv_cmp(c, pos, in, &args[0]) > 0;
  case X_GE: case X_GE2: return jv_cmp(c, pos, in, &args[0]) >= 0;
  case X_IN: {
    const jv *it;
    size_t k;
    if (args[0].t == JV_STR) {
      if (t != JV_STR) jrfail(c, pos, "'in <string>' requires string as left operand");
      return !in->u.s.n || memmem(args[0].u.s.p, args[0].u.s.n, in->u.s.p, in->u.s.n) != NULL;
    }
    jiter(c, &args[0], pos, &it, &k);
    for (size_t i = 0; i < k; i++)
      if (jv_eq(in, &it[i])) return 1;
    return 0;
  }
  case X_LOWER:
  case X_UPPER: {
    jv s = jv_tostr(c, in, pos), cs = js_case(c, &s, id == X_LOWER ? JS_LOWER : JS_UPPER);
    return jv_eq(&s, &cs);
  }
  case X_SAMEAS:
    if (t != args[0].t) return 0;
    if (t == JV_NONE || t == JV_UNDEF) return 1;
    if (t == JV_BOOL || t == JV_INT) return in->u.i == args[0].u.i;
    return jv_eq(in, &args[0]) && (t != JV_LIST || in->u.l == args[0].u.l) &&
           (t != JV_DICT || in->u.d == args[0].u.d);
  case X_ESCAPED: return 0;
  }
  jrfail(c, pos, "internal error: test %d", id);
}

/* ---- helpers ------------------------------------------------------------------------------- */
static jv mklist(jlist *l, int tuple) {
  jv r = {.t = JV_LIST, .tuple = (uint8_t)tuple};
  r.u.l = l;
  return r;
}

static jv seq_list(jctx *c, const jv *in, size_t pos) {
  const jv *it;
  size_t k;
  jiter(c, in, pos, &it, &k);
  jlist *l = jl_new(c, k);
  for (size_t i = 0; i < k; i++) jl_push(c, l, it[i]);
  return mklist(l, 0);
}

/* attribute "a.b.1" of v, as jinja2's make_attrgetter does */
static jv attr_path(jctx *c, const jv *v, const jv *attr, size_t pos) {
  if (attr->t == JV_INT) return jgetitem(c, v, attr, pos);
  if (attr->t != JV_STR) jrfail(c, pos, "attribute must be a string, not %s", jv_typename(attr));
  jv cur = *v;
  const char *p = attr->u.s.p, *e = p + attr->u.s.n;
  while (p <= e) {
    const char *d = memchr(p, '.', (size_t)(e - p));
    if (!d) d = e;
    size_t len = (size_t)(d - p);
    char *end;
    char tmp[24];
    long long idx = 0;
    int isnum = 0;
    if (len && len < sizeof tmp) {
      memcpy(tmp, p, len);
      tmp[len] = 0;
      idx = strtoll(tmp, &end, 10);
      isnum = *end == 0 && tmp[0] != '+' && tmp[0] != '-';
    }
    jv key = isnum ? jv_int(idx) : jv_str(p, len);
    if (cur.t == JV_UNDEF) return cur;
    cur = jgetitem(c, &cur, &key, pos);
    p = d + 1;
  }
  return cur;
}

static int run_test(jctx *c, const jv *v, const jv *args, size_t n, size_t pos) {
  /* args[0]: test name, args[1..]: its arguments; no name: truthiness */
  if (!n) return jv_truthy(v);
  if (args[0].t != JV_STR) jrfail(c, pos, "a test name must be a string");
  int id = jtest_id(args[0].u.s.p, args[0].u.s.n);
  if (id < 0) jrfail(c, pos, "unknown test '%.*s'", (int)args[0].u.s.n, args[0].u.s.p);
  return jtest_call(c, id, v, args + 1, n - 1, pos);
}

static int sort_less(jctx *c, const jv *a, const jv *b, int cs, size_t pos) {
  jv x = *a, y = *b;
  if (!cs && x.t == JV_STR) x = js_case(c, &x, JS_LOWER);
  if (!cs && y.t == JV_STR) y = js_case(c, &y, JS_LOWER);
  return jv_cmp(c, pos, &x, &y) < 0;
}

static double to_num(const jv *v) { return v->t == JV_FLOAT ? v->u.f : (double)v->u.i; }

/* Python's int(str) / float(str): surrounding whitespace allowed, underscores between digits */
static int parse_num(const jv *s, int want_int, int64_t base, int64_t *iv, double *fv) {
  jv t = js_strip(NULL, s, NULL, 1, 1);
  if (!t.u.s.n || t.u.s.n > 300) return 0;
  char buf[320];
  size_t k = 0;
  for (size_t i = 0; i < t.u.s.n; i++)
    if (t.u.s.p[i] != '_') buf[k++] = t.u.s.p[i];
  buf[k] = 0;
  char *end;
  if (want_int) {
    *iv = strtoll(buf, &end, (int)base);
    return *end == 0;
  }
  *fv = strtod(buf, &end);
  return *end == 0;
}

/* ---- filters ------------------------------------------------------------------------------- */
jv jfilter_call(jctx *c, int id, const jv *in, const jv *args, const char **names, size_t n,
                size_t pos) {
  jv a[4];
  char what[40];
  snprintf(what, sizeof what, "filter '%s'", fnames[id]);
#define BIND(...)                                                    \
  do {                                                               \
    static const char *const prm_[] = {__VA_ARGS__, NULL};           \
    jbind(c, what, prm_, args, names, n, a, pos);                    \
  } while (0)
#define NOARGS()                                                     \
  do {                                                               \
    static const char *const prm_[] = {NULL};                        \
    jbind(c, what, prm_, args, names, n, a, pos);                    \
  } while (0)
  switch (id) {
  case F_ABS:
    NOARGS();
    if (in->t == JV_FLOAT) return jv_float(fabs(in->u.f));
    if (in->t == JV_INT || in->t == JV_BOOL) return jv_int(in->u.i < 0 ? -in->u.i : in->u.i);
    jrfail(c, pos, "bad operand type for abs(): '%s'", jv_typename(in));
  case F_ATTR:
    BIND("name");
    if (a[0].t != JV_STR) jrfail(c, pos, "%s needs a string", what);
    return jgetattr(c, in, a[0].u.s.p, a[0].u.s.n, pos);
  case F_CAPITALIZE:
  case F_LOWER:
  case F_UPPER:
  case F_TITLE: {
    NOARGS();
    jv s = jv_tostr(c, in, pos);
    return js_case(c, &s, id == F_CAPITALIZE ? JS_CAPITALIZE : id == F_LOWER ? JS_LOWER
                          : id == F_UPPER ? JS_UPPER : JS_JTITLE);
  }
  case F_COUNT:
  case F_LENGTH: NOARGS(); return jv_int((int64_t)jlength(c, in, pos));
  case F_D:
  case F_DEFAULT:
    BIND("default_value", "boolean");
    if (in->t == JV_UNDEF || (!jabsent(&a[1]) && jv_truthy(&a[1]) && !jv_truthy(in)))
      return jabsent(&a[0]) ? jv_str("", 0) : a[0];
    return *in;
  case F_DICTSORT: {
    BIND("case_sensitive", "by", "reverse");
    if (in->t != JV_DICT) jrfail(c, pos, "dictsort needs a dict, not %s", jv_typename(in));
    int cs = !jabsent(&a[0]) && jv_truthy(&a[0]), rev = !jabsent(&a[2]) && jv_truthy(&a[2]);
    int byv = !jabsent(&a[1]) && a[1].t == JV_STR && a[1].u.s.n == 5 &&
              !memcmp(a[1].u.s.p, "value", 5);
    const jdict *d = in->u.d;
    jlist *l = jl_new(c, d->n);
    for (size_t i = 0; i < d->n; i++) {
      jlist *pr = jl_new(c, 2);
      jl_push(c, pr, d->k[i]);
      jl_push(c, pr, d->v[i]);
      jl_push(c, l, mklist(pr, 1));
    }
    for (size_t i = 1; i < l->n; i++)
      for (size_t j = i; j > 0; j--) {
        const jv *x = &l->v[j].u.l->v[byv], *y = &l->v[j - 1].u.l->v[byv];
        if (!(rev ? sort_less(c, y, x, cs, pos) : sort_less(c, x, y, cs, pos))) break;
        jv t = l->v[j];
        l->v[j] = l->v[j - 1];
        l->v[j - 1] = t;
      }
    return mklist(l, 0);
  }
  case F_E:
  case F_ESCAPE: {
    NOARGS();
    jv s = jv_tostr(c, in, pos);
    jbuf b = {0};
    for (size_t i = 0; i < s.u.s.n; i++) {
      char ch = s.u.s.p[i];
      const char *r = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;"
                      : ch == '"' ? "&#34;" : ch == '\'' ? "&#39;" : NULL;
      if (r) jb_put(c, &b, r, strlen(r));
      else jb_putc(c, &b, ch);
    }
    return jb_take(c, &b);
  }
  case F_FIRST:
  case F_LAST: {
    NOARGS();
    const jv *it;
    size_t k;
    jiter(c, in, pos, &it, &k);
    if (!k) return jv_undef(id == F_FIRST ? "No first item, sequence was empty."
                                          : "No last item, sequence was empty.");
    return it[id == F_FIRST ? 0 : k - 1];
  }
  case F_FLOAT: {
    BIND("default");
    jv dflt = jabsent(&a[0]) ? jv_float(0.0) : a[0];
    if (in->t == JV_FLOAT) return *in;
    if (in->t == JV_INT || in->t == JV_BOOL) return jv_float((double)in->u.i);
    double f;
    if (in->t == JV_STR && parse_num(in, 0, 10, NULL, &f)) return jv_float(f);
    return dflt;
  }
  case F_INT: {
    BIND("default", "base");
    jv dflt = jabsent(&a[0]) ? jv_int(0) : a[0];
    int64_t base = jabsent(&a[1]) ? 10 : a[1].t == JV_INT ? a[1].u.i : 10;
    if (in->t == JV_INT || in->t == JV_BOOL) return jv_int(in->u.i);
    if (in->t == JV_FLOAT) {
      if (!isfinite(in->u.f) || fabs(in->u.f) > 9.2e18) return dflt;
      return jv_int((int64_t)in->u.f);
    }
    int64_t iv;
    double f;
    if (in->t == JV_STR) {
      if (parse_num(in, 1, base, &iv, NULL)) return jv_int(iv);
      if (parse_num(in, 0, 10, NULL, &f) && isfinite(f) && fabs(f) < 9.2e18)
        return jv_int((int64_t)f);
    }
    return dflt;
  }
  case F_INDENT: {
    BIND("width", "first", "blank");
    jv s = jv_tostr(c, in, pos);
    jv ind = jabsent(&a[0]) ? jv_str("    ", 4) : a[0];
    if (ind.t == JV_INT) {
      if (ind.u.i < 0 || ind.u.i > 4096) jrfail(c, pos, "indent width %lld", (long long)ind.u.i);
      char *sp = ja_alloc(&c->ar, (size_t)ind.u.i + 1);
      memset(sp, ' ', (size_t)ind.u.i);
      ind = jv_str(sp, (size_t)ind.u.i);
    } else if (ind.t != JV_STR) {
      jrfail(c, pos, "%s: width must be an int or a string", what);
    }
    int first = !jabsent(&a[1]) && jv_truthy(&a[1]), blank = !jabsent(&a[2]) && jv_truthy(&a[2]);
    jbuf t = {0};
    jb_put(c, &t, s.u.s.p, s.u.s.n);
    jb_putc(c, &t, '\n'); /* jinja2 appends a newline before splitting lines */
    jv tv = jb_take(c, &t);
    jv lines = jmethod_call(c, jmethod_id(&tv, "splitlines", 10), &tv, NULL, NULL, 0, pos);
    jbuf b = {0};
    if (first) jb_put(c, &b, ind.u.s.p, ind.u.s.n);
    for (size_t i = 0; i < lines.u.l->n; i++) {
      const jv *ln = &lines.u.l->v[i];
      if (i) {
        jb_putc(c, &b, '\n');
        if (blank || ln->u.s.n) jb_put(c, &b, ind.u.s.p, ind.u.s.n);
      }
      jb_put(c, &b, ln->u.s.p, ln->u.s.n);
    }
    return jb_take(c, &b);
  }
  case F_ITEMS: {
    NOARGS();
    if (in->t == JV_UNDEF) return mklist(jl_new(c, 0), 0);
    if (in->t != JV_DICT) jrfail(c, pos, "can only get item pairs from a mapping, not %s",
                                jv_typename(in));
    return jmethod_call(c, jmethod_id(in, "items", 5), in, NULL, NULL, 0, pos);
  }
  case F_JOIN: {
    BIND("d", "attribute");
    jv sep = jabsent(&a[0]) ? jv_str("", 0) : jv_tostr(c, &a[0], pos);
    const jv *it;
    size_t k;
    jiter(c, in, pos, &it, &k);
    jbuf b = {0};
    for (size_t i = 0; i < k; i++) {
      if (i) jb_put(c, &b, sep.u.s.p, sep.u.s.n);
      jv v = jabsent(&a[1]) ? it[i] : attr_path(c, &it[i], &a[1], pos);
      jv_str_to(c, &b, &v, pos);
    }
    return jb_take(c, &b);
  }
  case F_LIST: NOARGS(); return seq_list(c, in, pos);
  case F_MAP: {
    const jv *it;
    size_t k;
    jiter(c, in, pos, &it, &k);
    jlist *l = jl_new(c, k);
    int by_attr = 0;
    jv dflt = jv_undef(NULL);
    for (size_t i = 0; i < n; i++)
      if (names && names[i]) {
        if (!strcmp(names[i], "attribute")) by_attr = 1;
        else if (!strcmp(names[i], "default")) dflt = args[i];
        else jrfail(c, pos, "%s got an unexpected keyword argument '%s'", what, names[i]);
      }
    if (by_attr) {
      jv at = jv_undef(NULL);
      for (size_t i = 0; i < n; i++)
        if (names && names[i] && !strcmp(names[i], "attribute")) at = args[i];
      for (size_t i = 0; i < k; i++) {
        jv v = attr_path(c, &it[i], &at, pos);
        jl_push(c, l, v.t == JV_UNDEF && !jabsent(&dflt) ? dflt : v);
      }
      return mklist(l, 0);
    }
    if (!n || args[0].t != JV_STR) jrfail(c, pos, "map needs a filter name or attribute=");
    int fid = jfilter_id(args[0].u.s.p, args[0].u.s.n);
    if (fid < 0) jrfail(c, pos, "unknown filter '%.*s'", (int)args[0].u.s.n, args[0].u.s.p);
    for (size_t i = 0; i < k; i++)
      jl_push(c, l, jfilter_call(c, fid, &it[i], args + 1, names ? names + 1 : NULL, n - 1, pos));
    return mklist(l, 0);
  }
  case F_MAX:
  case F_MIN: {
    BIND("case_sensitive", "attribute");
    const jv *it;
    size_t k;
    jiter(c, in, pos, &it, &k);
    if (!k) return jv_undef(id == F_MAX ? "No aggregated item, sequence was empty." :
                                          "No aggregated item, sequence was empty.");
    int cs = !jabsent(&a[0]) && jv_truthy(&a[0]);
    size_t best = 0;
    for (size_t i = 1; i < k; i++) {
      jv x = jabsent(&a[1]) ? it[i] : attr_path(c, &it[i], &a[1], pos);
      jv y = jabsent(&a[1]) ? it[best] : attr_path(c, &it[best], &a[1], pos);
      if (id == F_MAX ? sort_less(c, &y, &x, cs, pos) : sort_less(c, &x, &y, cs, pos)) best = i;
    }
    return it[best];
  }
  case F_SELECT:
  case F_REJECT:
  case F_SELECTATTR:
  case F_REJECTATTR: {
    for (size_t i = 0; i < n; i++)
      if (names && names[i]) jrfail(c, pos, "%s takes no keyword arguments", what);
    int byattr = id == F_SELECTATTR || id == F_REJECTATTR, want = id == F_SELECT || id == F_SELECTATTR;
    if (byattr && !n) jrfail(c, pos, "%s needs an attribute name", what);
    const jv *it;
    size_t k;
    jiter(c, in, pos, &it, &k);
    jlist *l = jl_new(c, 0);
    for (size_t i = 0; i < k; i++) {
      jstep(c, pos);
      jv v = byattr ? attr_path(c, &it[i], &args[0], pos) : it[i];
      if (run_test(c, &v, args + byattr, n - (size_t)byattr, pos) == want) jl_push(c, l, it[i]);
    }
    return mklist(l, 0);
  }
  case F_REPLACE: {
    BIND("old", "new", "count");
    jv s = jv_tostr(c, in, pos);
    jv o = jv_tostr(c, &a[0], pos), r = jv_tostr(c, &a[1], pos);
    int64_t cnt = jabsent(&a[2]) || a[2].t == JV_NONE ? -1 : a[2].u.i;
    return js_replace(c, &s, &o, &r, cnt, pos);
  }
  case F_REVERSE: {
    NOARGS();
    if (in->t == JV_STR) {
      jbuf b = {0};
      size_t e = in->u.s.n;
      while (e > 0) {
        size_t st = e - 1;
        while (st > 0 && ((unsigned char)in->u.s.p[st] & 0xC0) == 0x80) st--;
        jb_put(c, &b, in->u.s.p + st, e - st);
        e = st;
      }
      return jb_take(c, &b);
    }
    jv l = seq_list(c, in, pos);
    for (size_t i = 0, j = l.u.l->n; i + 1 < j; i++, j--) {
      jv t = l.u.l->v[i];
      l.u.l->v[i] = l.u.l->v[j - 1];
      l.u.l->v[j - 1] = t;
    }
    return l;
  }
  case F_ROUND: {
    BIND("precision", "method");
    if (in->t != JV_INT && in->t != JV_FLOAT && in->t != JV_BOOL)
      jrfail(c, pos, "round needs a number, not %s", jv_typename(in));
    int64_t p = jabsent(&a[0]) ? 0 : a[0].u.i;
    const char *m = jabsent(&a[1]) ? "common" : a[1].t == JV_STR ? a[1].u.s.p : "?";
    double x = to_num(in), s = pow(10.0, (double)p), y = x * s;
    if (!strncmp(m, "common", 6)) y = nearbyint(y); /* Python's round: half to even */
    else if (!strncmp(m, "ceil", 4)) y = ceil(y);
    else if (!strncmp(m, "floor", 5)) y = floor(y);
    else jrfail(c, pos, "round: method must be common, ceil or floor");
    return jv_float(y / s);
  }
  case F_SAFE: NOARGS(); return *in;
  case F_SORT: {
    BIND("reverse", "case_sensitive", "attribute");
    jv l = seq_list(c, in, pos);
    int rev = !jabsent(&a[0]) && jv_truthy(&a[0]), cs = !jabsent(&a[1]) && jv_truthy(&a[1]);
    jv *v = l.u.l->v;
    jv *key = ja_alloc(&c->ar, (l.u.l->n + 1) * sizeof(jv));
    for (size_t i = 0; i < l.u.l->n; i++)
      key[i] = jabsent(&a[2]) ? v[i] : attr_path(c, &v[i], &a[2], pos);
    for (size_t i = 1; i < l.u.l->n; i++) /* stable insertion sort */
      for (size_t j = i; j > 0; j--) {
        jstep(c, pos);
        if (!(rev ? sort_less(c, &key[j - 1], &key[j], cs, pos)
                  : sort_less(c, &key[j], &key[j - 1], cs, pos)))
          break;
        jv t = v[j], tk = key[j];
        v[j] = v[j - 1];
        key[j] = key[j - 1];
        v[j - 1] = t;
        key[j - 1] = tk;
      }
    return l;
  }
  case F_STRING: NOARGS(); return jv_tostr(c, in, pos);
  case F_SUM: {
    BIND("attribute", "start");
    const jv *it;
    size_t k;
    jiter(c, in, pos, &it, &k);
    jv acc = jabsent(&a[1]) ? jv_int(0) : a[1];
    for (size_t i = 0; i < k; i++) {
      jv x = jabsent(&a[0]) ? it[i] : attr_path(c, &it[i], &a[0], pos);
      if ((acc.t != JV_INT && acc.t != JV_FLOAT && acc.t != JV_BOOL) ||
          (x.t != JV_INT && x.t != JV_FLOAT && x.t != JV_BOOL))
        jrfail(c, pos, "sum: unsupported operand types '%s' and '%s'", jv_typename(&acc),
               jv_typename(&x));
      if (acc.t != JV_FLOAT && x.t != JV_FLOAT) {
        int64_t r;
        if (__builtin_add_overflow(acc.u.i, x.u.i, &r)) jrfail(c, pos, "integer overflow");
        acc = jv_int(r);
      } else {
        acc = jv_float(to_num(&acc) + to_num(&x));
      }
    }
    return acc;
  }
  case F_TOJSON: {
    BIND("ensure_ascii", "indent", "separators", "sort_keys");
    int ascii = !jabsent(&a[0]) && jv_truthy(&a[0]);
    int has_indent = !jabsent(&a[1]) && a[1].t != JV_NONE;
    const char *ind = "";
    if (has_indent) {
      if (a[1].t == JV_STR) {
        ind = ja_strdup(&c->ar, a[1].u.s.p, a[1].u.s.n);
      } else if (a[1].t == JV_INT) {
        int64_t w = a[1].u.i < 0 ? 0 : a[1].u.i;
        if (w > 1024) jrfail(c, pos, "tojson: indent %lld is too large", (long long)w);
        char *sp = ja_alloc(&c->ar, (size_t)w + 1);
        memset(sp, ' ', (size_t)w);
        ind = sp;
      } else {
        jrfail(c, pos, "tojson: indent must be an int or a string");
      }
    }
    const char *isep = has_indent ? "," : ", ", *ksep = ": ";
    if (!jabsent(&a[2]) && a[2].t != JV_NONE) {
      if (a[2].t != JV_LIST || a[2].u.l->n != 2 || a[2].u.l->v[0].t != JV_STR ||
          a[2].u.l->v[1].t != JV_STR)
        jrfail(c, pos, "tojson: separators must be a pair of strings");
      isep = ja_strdup(&c->ar, a[2].u.l->v[0].u.s.p, a[2].u.l->v[0].u.s.n);
      ksep = ja_strdup(&c->ar, a[2].u.l->v[1].u.s.p, a[2].u.l->v[1].u.s.n);
    }
    if (in->t == JV_UNDEF)
      jrfail(c, pos, "tojson: Object of type Undefined is not JSON serializable (%.*s)",
             (int)in->u.s.n, in->u.s.p ? in->u.s.p : "");
    jbuf b = {0};
    jv_json_to(c, &b, in, ind, has_indent, isep, ksep, !jabsent(&a[3]) && jv_truthy(&a[3]), ascii,
               pos);
    return jb_take(c, &b);
  }
  case F_TRIM: {
    BIND("chars");
    jv s = jv_tostr(c, in, pos);
    if (!jabsent(&a[0]) && a[0].t != JV_NONE && a[0].t != JV_STR)
      jrfail(c, pos, "trim: chars must be a string");
    return js_strip(c, &s, jabsent(&a[0]) || a[0].t == JV_NONE ? NULL : &a[0], 1, 1);
  }
  case F_UNIQUE: {
    BIND("case_sensitive", "attribute");
    const jv *it;
    size_t k;
    jiter(c, in, pos, &it, &k);
    int cs = !jabsent(&a[0]) && jv_truthy(&a[0]);
    jlist *l = jl_new(c, 0), *seen = jl_new(c, 0);
    for (size_t i = 0; i < k; i++) {
      jv key = jabsent(&a[1]) ? it[i] : attr_path(c, &it[i], &a[1], pos);
      if (!cs && key.t == JV_STR) key = js_case(c, &key, JS_LOWER);
      int dup = 0;
      for (size_t j = 0; j < seen->n && !dup; j++) dup = jv_eq(&seen->v[j], &key);
      if (dup) continue;
      jl_push(c, seen, key);
      jl_push(c, l, it[i]);
    }
    return mklist(l, 0);
  }
  case F_WORDCOUNT: {
    NOARGS();
    jv s = jv_tostr(c, in, pos);
    int64_t k = 0, inw = 0;
    for (size_t i = 0; i < s.u.s.n; i++) {
      unsigned char ch = (unsigned char)s.u.s.p[i];
      int w = ch >= 0x80 || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || ch == '_';
      if (w && !inw) k++;
      inw = w;
    }
    return jv_int(k);
  }
  }
#undef BIND
#undef NOARGS
  jrfail(c, pos, "internal error: filter %d", id);
}

/* Jinja built-ins, part one: argument binding, the string helpers filters share, the global
 * functions (range, namespace, dict, raise_exception, strftime_now) and the methods of
 * strings, dicts, lists and loops that templates call (.strip(), .items(), .get(), ...), with
 * Python's semantics on code points. Mutating methods do not exist here, as in jinja2's
 * immutable sandbox. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "chat/jinja_internal.h"

#define MAX_RANGE 100000 /* jinja2's sandbox limit */

int jabsent(const jv *v) { return v->t == JV_UNDEF && !v->u.s.p; }

void jbind(jctx *c, const char *what, const char *const *params, const jv *args,
           const char **names, size_t n, jv *out, size_t pos) {
  size_t np = 0;
  while (params[np]) np++;
  for (size_t i = 0; i < np; i++) out[i] = jv_undef(NULL);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!names || !names[i]) {
      if (k >= np) jrfail(c, pos, "%s takes at most %zu argument%s", what, np, np == 1 ? "" : "s");
      out[k++] = args[i];
      continue;
    }
    size_t j = 0;
    while (j < np && strcmp(params[j], names[i])) j++;
    if (j == np) jrfail(c, pos, "%s got an unexpected keyword argument '%s'", what, names[i]);
    out[j] = args[i];
  }
}

size_t jlength(jctx *c, const jv *v, size_t pos) {
  switch (v->t) {
  case JV_UNDEF: return 0;
  case JV_STR: return ju_len(v->u.s.p, v->u.s.n);
  case JV_LIST: return v->u.l->n;
  case JV_DICT: return v->u.d->n;
  default: jrfail(c, pos, "object of type '%s' has no len()", jv_typename(v));
  }
}

/* ---- string helpers ------------------------------------------------------------------------ */
static void put_cp(jctx *c, jbuf *b, int32_t cp) {
  char e[4];
  jb_put(c, b, e, ju_enc((uint32_t)cp, e));
}

static int cased(int32_t cp) {
  return utf8proc_isupper(cp) || utf8proc_islower(cp) || utf8proc_totitle(cp) != cp ||
         utf8proc_category(cp) == UTF8PROC_CATEGORY_LT;
}

static int jtitle_sep(uint32_t cp) {
  return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ju_isspace(cp);
}

jv js_case(jctx *c, const jv *s, int mode) {
  jbuf b = {0};
  const char *p = s->u.s.p;
  size_t n = s->u.s.n;
  int prev_cased = 0, start = 1;
  for (size_t i = 0; i < n;) {
    int32_t cp = (int32_t)ju_dec(p, n, &i), o = cp;
    switch (mode) {
    case JS_UPPER: o = utf8proc_toupper(cp); break;
    case JS_LOWER: o = utf8proc_tolower(cp); break;
    case JS_CAPITALIZE: o = start ? utf8proc_totitle(cp) : utf8proc_tolower(cp); break;
    case JS_PYTITLE:
      o = prev_cased ? utf8proc_tolower(cp) : utf8proc_totitle(cp);
      prev_cased = cased(cp);
      break;
    case JS_JTITLE: /* jinja2's title: words start after - ( { [ < or whitespace */
      if (jtitle_sep((uint32_t)cp)) {
        start = 1;
        put_cp(c, &b, cp);
        continue;
      }
      o = start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
      break;
    }
    start = 0;
    put_cp(c, &b, o);
  }
  return jb_take(c, &b);
}

static int in_chars(const jv *chars, uint32_t cp) {
  for (size_t i = 0; i < chars->u.s.n;)
    if (ju_dec(chars->u.s.p, chars->u.s.n, &i) == cp) return 1;
  return 0;
}

jv js_strip(jctx *c, const jv *s, const jv *chars, int left, int right) {
  (void)c;
  const char *p = s->u.s.p;
  size_t a = 0, e = s->u.s.n;
  if (left)
    while (a < e) {
      size_t j = a;
      uint32_t cp = ju_dec(p, e, &j);
      if (chars ? !in_chars(chars, cp) : !ju_isspace(cp)) break;
      a = j;
    }
  if (right)
    while (e > a) {
      size_t st = e - 1;
      while (st > a && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
      size_t j = st;
      uint32_t cp = ju_dec(p, e, &j);
      if (chars ? !in_chars(chars, cp) : !ju_isspace(cp)) break;
      e = st;
    }
  return jv_str(p + a, e - a);
}

jv js_replace(jctx *c, const jv *s, const jv *old, const jv *rep, int64_t count, size_t pos) {
  jbuf b = {0};
  const char *p = s->u.s.p;
  size_t n = s->u.s.n, i = 0;
  int64_t done = 0;
  if (!old->u.s.n) { /* Python inserts rep between every character and at both ends */
    for (;;) {
      jstep(c, pos);
      if (count < 0 || done < count) {
        jb_put(c, &b, rep->u.s.p, rep->u.s.n);
        done++;
      }
      if (i >= n) break;
      size_t st = i;
      ju_dec(p, n, &i);
      jb_put(c, &b, p + st, i - st);
    }
    return jb_take(c, &b);
  }
  while (i < n && (count < 0 || done < count)) {
    const char *f = memmem(p + i, n - i, old->u.s.p, old->u.s.n);
    if (!f) break;
    jstep(c, pos);
    jb_put(c, &b, p + i, (size_t)(f - (p + i)));
    jb_put(c, &b, rep->u.s.p, rep->u.s.n);
    i = (size_t)(f - p) + old->u.s.n;
    done++;
  }
  if (!done) return *s;
  jb_put(c, &b, p + i, n - i);
  return jb_take(c, &b);
}

/* ---- global functions ---------------------------------------------------------------------- */
static const char *const funcs[] = {"range", "namespace", "dict", "raise_exception",
                                    "strftime_now", NULL};

int jfunc_id(const char *name, size_t n) {
  for (int i = 0; funcs[i]; i++)
    if (strlen(funcs[i]) == n && !memcmp(funcs[i], name, n)) return i;
  return -1;
}
const char *jfunc_name(int id) { return id >= 0 && id < 5 ? funcs[id] : "?"; }

static int64_t need_int(jctx *c, const jv *v, const char *what, size_t pos) {
  if (v->t != JV_INT && v->t != JV_BOOL)
    jrfail(c, pos, "%s needs an integer, not %s", what, jv_typename(v));
  return v->u.i;
}

static const jv *need_str(jctx *c, const jv *v, const char *what, size_t pos) {
  if (v->t != JV_STR) jrfail(c, pos, "%s needs a string, not %s", what, jv_typename(v));
  return v;
}

jv jfunc_call(jctx *c, int id, const jv *args, const char **names, size_t n, size_t pos) {
  switch (id) {
  case 0: { /* range */
    for (size_t i = 0; i < n; i++)
      if (names && names[i]) jrfail(c, pos, "range() takes no keyword arguments");
    if (n < 1 || n > 3) jrfail(c, pos, "range expected 1 to 3 arguments, got %zu", n);
    int64_t a = 0, b, s = 1;
    if (n == 1) b = need_int(c, &args[0], "range()", pos);
    else {
      a = need_int(c, &args[0], "range()", pos);
      b = need_int(c, &args[1], "range()", pos);
      if (n == 3) s = need_int(c, &args[2], "range()", pos);
    }
    if (!s) jrfail(c, pos, "range() arg 3 must not be zero");
    int64_t cnt = s > 0 ? (b > a ? (b - a + s - 1) / s : 0) : (a > b ? (a - b - s - 1) / -s : 0);
    if (cnt > MAX_RANGE)
      jrfail(c, pos, "range of %lld items is too big (the sandbox allows %d)", (long long)cnt,
             MAX_RANGE);
    jlist *l = jl_new(c, (size_t)cnt);
    for (int64_t i = 0; i < cnt; i++) jl_push(c, l, jv_int(a + i * s));
    jv r = {.t = JV_LIST};
    r.u.l = l;
    return r;
  }
  case 1:   /* namespace(dict?, **kw) */
  case 2: { /* dict(**kw) */
    jdict *d = jd_new(c, n);
    for (size_t i = 0; i < n; i++) {
      if (names && names[i]) {
        jd_set(c, d, jv_cstr(names[i]), args[i]);
      } else if (i == 0 && args[0].t == JV_DICT) {
        for (size_t k = 0; k < args[0].u.d->n; k++)
          jd_set(c, d, args[0].u.d->k[k], args[0].u.d->v[k]);
      } else {
        jrfail(c, pos, "%s() takes keyword arguments (or one dict)", funcs[id]);
      }
    }
    jv r = {.t = id == 1 ? JV_NS : JV_DICT};
    r.u.d = d;
    return r;
  }
  case 3: { /* raise_exception(msg) */
    jv m = n ? jv_tostr(c, &args[0], pos) : jv_str("", 0);
    unsigned l, col;
    jlinecol(c->e.src, c->e.srclen, pos, &l, &col);
    jrfail(c, SIZE_MAX, "raise_exception: %.*s (line %u:%u)", (int)(m.u.s.n > 600 ? 600 : m.u.s.n),
           m.u.s.p, l, col);
  }
  case 4: { /* strftime_now(format) */
    jv p[1];
    static const char *const prm[] = {"format", NULL};
    jbind(c, "strftime_now()", prm, args, names, n, p, pos);
    const jv *f = need_str(c, &p[0], "strftime_now()", pos);
    if (memchr(f->u.s.p, 0, f->u.s.n)) jrfail(c, pos, "strftime_now(): NUL in the format");
    char *fmt = ja_strdup(&c->ar, f->u.s.p, f->u.s.n);
    time_t t = (time_t)c->now;
    struct tm tm;
    localtime_r(&t, &tm);
    size_t cap = 64 + 4 * f->u.s.n;
    char *o = ja_alloc(&c->ar, cap);
    size_t k = f->u.s.n ? strftime(o, cap, fmt, &tm) : 0;
    return jv_str(o, k);
  }
  }
  jrfail(c, pos, "internal error: function %d", id);
}

/* ---- methods ------------------------------------------------------------------------------- */
enum {
  M_STRIP, M_LSTRIP, M_RSTRIP, M_STARTSWITH, M_ENDSWITH, M_SPLIT, M_RSPLIT, M_UPPER, M_LOWER,
  M_REPLACE, M_TITLE, M_CAPITALIZE, M_FIND, M_RFIND, M_COUNT, M_JOIN, M_ISDIGIT, M_ISALPHA,
  M_ISSPACE, M_ISUPPER, M_ISLOWER, M_SPLITLINES, /* str */
  M_ITEMS, M_KEYS, M_VALUES, M_GET,              /* dict */
  M_INDEX, M_LCOUNT,                             /* list, tuple */
  M_CYCLE,                                       /* loop */
  M_N
};
static const char *const mnames[M_N] = {
    "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "upper", "lower",
    "replace", "title", "capitalize", "find", "rfind", "count", "join", "isdigit", "isalpha",
    "isspace", "isupper", "islower", "splitlines", "items", "keys", "values", "get", "index",
    "count", "cycle"};

int jmethod_id(const jv *self, const char *name, size_t n) {
  int lo, hi;
  if (self->t == JV_STR) lo = M_STRIP, hi = M_SPLITLINES;
  else if (self->t == JV_DICT) lo = M_ITEMS, hi = M_GET;
  else if (self->t == JV_LIST) lo = M_INDEX, hi = M_LCOUNT;
  else if (self->t == JV_LOOP) lo = M_CYCLE, hi = M_CYCLE;
  else return -1;
  for (int i = lo; i <= hi; i++)
    if (strlen(mnames[i]) == n && !memcmp(mnames[i], name, n)) return i;
  return -1;
}
const char *jmethod_name(int id) { return id >= 0 && id < M_N ? mnames[id] : "?"; }

static jv mklist(jlist *l, int tuple) {
  jv r = {.t = JV_LIST, .tuple = (uint8_t)tuple};
  r.u.l = l;
  return r;
}

static int affix(const jv *s, const jv *a, int end) {
  if (a->u.s.n > s->u.s.n) return 0;
  return !memcmp(s->u.s.p + (end ? s->u.s.n - a->u.s.n : 0), a->u.s.p, a->u.s.n);
}

static jv split(jctx *c, const jv *s, const jv *sep, int64_t maxsplit, int right, size_t pos) {
  jlist *l = jl_new(c, 0);
  const char *p = s->u.s.p;
  size_t n = s->u.s.n;
  if (!jabsent(sep) && sep->t != JV_NONE) {
    need_str(c, sep, "split()", pos);
    if (!sep->u.s.n) jrfail(c, pos, "split(): empty separator");
    size_t m = sep->u.s.n;
    if (!right) {
      size_t i = 0;
      for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
        const char *f = memmem(p + i, n - i, sep->u.s.p, m);
        if (!f) break;
        jl_push(c, l, jv_str(p + i, (size_t)(f - p) - i));
        i = (size_t)(f - p) + m;
      }
      jl_push(c, l, jv_str(p + i, n - i));
      return mklist(l, 0);
    }
    size_t e = n;
    jlist *r = jl_new(c, 0);
    for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
      size_t j = e;
      while (j >= m && memcmp(p + j - m, sep->u.s.p, m)) j--;
      if (j < m) break;
      jl_push(c, r, jv_str(p + j, e - j));
      e = j - m;
    }
    jl_push(c, l, jv_str(p, e));
    for (size_t k = r->n; k-- > 0;) jl_push(c, l, r->v[k]);
    return mklist(l, 0);
  }
  /* whitespace runs */
  if (!right) {
    size_t i = 0;
    int64_t k = 0;
    for (;;) {
      jv t = jv_str(p + i, n - i);
      i = (size_t)(js_strip(c, &t, NULL, 1, 0).u.s.p - p);
      if (i >= n) break;
      if (maxsplit >= 0 && k >= maxsplit) {
        jl_push(c, l, jv_str(p + i, n - i));
        break;
      }
      size_t j = i;
      while (j < n) {
        size_t q = j;
        if (ju_isspace(ju_dec(p, n, &q))) break;
        j = q;
      }
      jl_push(c, l, jv_str(p + i, j - i));
      i = j;
      k++;
    }
    return mklist(l, 0);
  }
  jlist *r = jl_new(c, 0);
  size_t e = n;
  int64_t k = 0;
  for (;;) {
    jv t = jv_str(p, e);
    e = js_strip(c, &t, NULL, 0, 1).u.s.n;
    if (!e) break;
    if (maxsplit >= 0 && k >= maxsplit) {
      jl_push(c, r, jv_str(p, e));
      break;
    }
    size_t j = e;
    while (j > 0) {
      size_t st = j - 1;
      while (st > 0 && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
      size_t q = st;
      if (ju_isspace(ju_dec(p, e, &q))) break;
      j = st;
    }
    jl_push(c, r, jv_str(p + j, e - j));
    e = j;
    k++;
  }
  for (size_t q = r->n; q-- > 0;) jl_push(c, l, r->v[q]);
  return mklist(l, 0);
}

static int all_cp(const jv *s, int what) {
  if (!s->u.s.n) return 0;
  int any_cased = 0;
  for (size_t i = 0; i < s->u.s.n;) {
    int32_t cp = (int32_t)ju_dec(s->u.s.p, s->u.s.n, &i);
    utf8proc_category_t k = utf8proc_category(cp);
    switch (what) {
    case M_ISDIGIT: if (k != UTF8PROC_CATEGORY_ND) return 0; break;
    case M_ISALPHA: if (k < UTF8PROC_CATEGORY_LU || k > UTF8PROC_CATEGORY_LO) return 0; break;
    case M_ISSPACE: if (!ju_isspace((uint32_t)cp)) return 0; break;
    case M_ISUPPER: if (utf8proc_islower(cp)) return 0; any_cased |= utf8proc_isupper(cp); break;
    case M_ISLOWER: if (utf8proc_isupper(cp)) return 0; any_cased |= utf8proc_islower(cp); break;
    }
  }
  return what == M_ISUPPER || what == M_ISLOWER ? any_cased : 1;
}

static jv splitlines(jctx *c, const jv *s) {
  jlist *l = jl_new(c, 0);
  const char *p = s->u.s.p;
  size_t n = s->u.s.n, st = 0;
  for (size_t i = 0; i < n;) {
    size_t q = i;
    uint32_t cp = ju_dec(p, n, &q);
    if (cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) ||
        cp == 0x85 || cp == 0x2028 || cp == 0x2029) {
      jl_push(c, l, jv_str(p + st, i - st));
      if (cp == '\r' && q < n && p[q] == '\n') q++;
      st = q;
    }
    i = q;
  }
  if (st < n) jl_push(c, l, jv_str(p + st, n - st));
  return mklist(l, 0);
}

jv jmethod_call(jctx *c, int id, const jv *self, const jv *args, const char **names, size_t n,
                size_t pos) {
  jv a[3];
  char what[48];
  snprintf(what, sizeof what, "%s.%s()", jv_typename(self), mnames[id]);
  static const char *const p_chars[] = {"chars", NULL}, *const p_affix[] = {"prefix", "start", "end", NULL},
                           *const p_split[] = {"sep", "maxsplit", NULL},
                           *const p_repl[] = {"old", "new", "count", NULL},
                           *const p_sub[] = {"sub", NULL}, *const p_it[] = {"iterable", NULL},
                           *const p_none[] = {NULL}, *const p_get[] = {"key", "default", NULL},
                           *const p_keep[] = {"keepends", NULL};
  switch (id) {
  case M_STRIP:
  case M_LSTRIP:
  case M_RSTRIP:
    jbind(c, what, p_chars, args, names, n, a, pos);
    if (!jabsent(&a[0]) && a[0].t != JV_NONE) need_str(c, &a[0], what, pos);
    return js_strip(c, self, jabsent(&a[0]) || a[0].t == JV_NONE ? NULL : &a[0],
                    id != M_RSTRIP, id != M_LSTRIP);
  case M_STARTSWITH:
  case M_ENDSWITH: {
    jbind(c, what, p_affix, args, names, n, a, pos);
    if (!jabsent(&a[1]) || !jabsent(&a[2]))
      jrfail(c, pos, "%s: start/end arguments are not supported", what);
    if (a[0].t == JV_LIST && a[0].tuple) {
      for (size_t i = 0; i < a[0].u.l->n; i++)
        if (affix(self, need_str(c, &a[0].u.l->v[i], what, pos), id == M_ENDSWITH))
          return jv_bool(1);
      return jv_bool(0);
    }
    return jv_bool(affix(self, need_str(c, &a[0], what, pos), id == M_ENDSWITH));
  }
  case M_SPLIT:
  case M_RSPLIT:
    jbind(c, what, p_split, args, names, n, a, pos);
    return split(c, self, &a[0], jabsent(&a[1]) ? -1 : need_int(c, &a[1], what, pos),
                 id == M_RSPLIT, pos);
  case M_UPPER: jbind(c, what, p_none, args, names, n, a, pos); return js_case(c, self, JS_UPPER);
  case M_LOWER: jbind(c, what, p_none, args, names, n, a, pos); return js_case(c, self, JS_LOWER);
  case M_TITLE: jbind(c, what, p_none, args, names, n, a, pos); return js_case(c, self, JS_PYTITLE);
  case M_CAPITALIZE:
    jbind(c, what, p_none, args, names, n, a, pos);
    return js_case(c, self, JS_CAPITALIZE);
  case M_REPLACE:
    jbind(c, what, p_repl, args, names, n, a, pos);
    return js_replace(c, self, need_str(c, &a[0], what, pos), need_str(c, &a[1], what, pos),
                      jabsent(&a[2]) ? -1 : need_int(c, &a[2], what, pos), pos);
  case M_FIND:
  case M_RFIND:
  case M_COUNT: {
    jbind(c, what, p_sub, args, names, n, a, pos);
    const jv *sub = need_str(c, &a[0], what, pos);
    const char *p = self->u.s.p;
    size_t len = self->u.s.n, m = sub->u.s.n;
    if (id == M_COUNT) {
      if (!m) return jv_int((int64_t)ju_len(p, len) + 1);
      int64_t k = 0;
      for (const char *f = p; (f = memmem(f, len - (size_t)(f - p), sub->u.s.p, m)); f += m) k++;
      return jv_int(k);
    }
    if (m > len) return jv_int(-1);
    for (size_t i = 0; i + m <= len; i++) {
      size_t j = id == M_FIND ? i : len - m - i;
      if (!memcmp(p + j, sub->u.s.p, m)) return jv_int((int64_t)ju_len(p, j));
    }
    return jv_int(-1);
  }
  case M_JOIN: {
    jbind(c, what, p_it, args, names, n, a, pos);
    const jv *items;
    size_t k;
    jiter(c, &a[0], pos, &items, &k);
    jbuf b = {0};
    for (size_t i = 0; i < k; i++) {
      if (i) jb_put(c, &b, self->u.s.p, self->u.s.n);
      const jv *s = need_str(c, &items[i], "str.join()", pos);
      jb_put(c, &b, s->u.s.p, s->u.s.n);
    }
    return jb_take(c, &b);
  }
  case M_ISDIGIT:
  case M_ISALPHA:
  case M_ISSPACE:
  case M_ISUPPER:
  case M_ISLOWER:
    jbind(c, what, p_none, args, names, n, a, pos);
    return jv_bool(all_cp(self, id));
  case M_SPLITLINES:
    jbind(c, what, p_keep, args, names, n, a, pos);
    if (!jabsent(&a[0]) && jv_truthy(&a[0])) jrfail(c, pos, "%s: keepends is not supported", what);
    return splitlines(c, self);
  case M_ITEMS:
  case M_KEYS:
  case M_VALUES: {
    jbind(c, what, p_none, args, names, n, a, pos);
    const jdict *d = self->u.d;
    jlist *l = jl_new(c, d->n);
    for (size_t i = 0; i < d->n; i++) {
      if (id == M_KEYS) jl_push(c, l, d->k[i]);
      else if (id == M_VALUES) jl_push(c, l, d->v[i]);
      else {
        jlist *pr = jl_new(c, 2);
        jl_push(c, pr, d->k[i]);
        jl_push(c, pr, d->v[i]);
        jl_push(c, l, mklist(pr, 1));
      }
    }
    return mklist(l, 0);
  }
  case M_GET: {
    jbind(c, what, p_get, args, names, n, a, pos);
    const jv *v = jd_get(self->u.d, a[0]);
    return v ? *v : jabsent(&a[1]) ? jv_none() : a[1];
  }
  case M_INDEX:
  case M_LCOUNT: {
    jbind(c, what, p_sub, args, names, n, a, pos);
    int64_t k = 0;
    for (size_t i = 0; i < self->u.l->n; i++)
      if (jv_eq(&self->u.l->v[i], &a[0])) {
        if (id == M_INDEX) return jv_int((int64_t)i);
        k++;
      }
    if (id == M_INDEX) jrfail(c, pos, "%s: the value is not in the list", what);
    return jv_int(k);
  }
  case M_CYCLE:
    if (!n) jrfail(c, pos, "loop.cycle() needs at least one argument");
    return args[self->u.loop->i % n];
  }
  jrfail(c, pos, "internal error: method %d", id);
}

/* The Jinja evaluator: scopes (a frame per loop iteration, per macro call and per `with`; `if`
 * opens none), expressions with Python's operator semantics, attribute and item lookup as
 * jinja2's sandbox does it (attribute first for `.`, item first for `[]`, a missing one is
 * Undefined), slicing by code point, statements and loop control. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_internal.h"

#define MAX_REC 3000 /* nested evaluations and blocks: bounds the C stack */

void jrfail(jctx *c, size_t pos, const char *fmt, ...) {
  char m[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  jfail(&c->e, pos, "%s", m);
}

void jstep(jctx *c, size_t pos) {
  if (++c->steps > c->lim.max_steps)
    jrfail(c, pos, "the template ran more than %llu steps (the limit)",
           (unsigned long long)c->lim.max_steps);
}

static const char *why(jctx *c, const char *fmt, ...) J_PRINTF(2, 3);
static const char *why(jctx *c, const char *fmt, ...) {
  char m[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  return ja_strdup(&c->ar, m, n < 0 ? 0 : (size_t)n >= sizeof m ? sizeof m - 1 : (size_t)n);
}

J_NORETURN static void undef_fail(jctx *c, const jv *u, size_t pos) {
  jrfail(c, pos, "%.*s", (int)u->u.s.n, u->u.s.p);
}

/* ---- frames ------------------------------------------------------------------------------- */
static jframe *frame_new(jctx *c, jframe *parent) {
  jframe *f = ja_alloc(&c->ar, sizeof *f);
  f->parent = parent;
  return f;
}

static void frame_set(jctx *c, jframe *f, const char *name, size_t n, jv v) {
  for (uint32_t i = 0; i < f->n; i++)
    if (f->v[i].nlen == n && !memcmp(f->v[i].name, name, n)) {
      f->v[i].v = v;
      return;
    }
  if (f->n == f->cap) {
    uint32_t cap = f->cap ? 2 * f->cap : 8;
    jvar *nv = ja_alloc(&c->ar, cap * sizeof *nv);
    if (f->n) memcpy(nv, f->v, f->n * sizeof *nv);
    f->v = nv;
    f->cap = cap;
  }
  f->v[f->n++] = (jvar){name, n, v};
}

static jv lookup(jctx *c, const char *name, size_t n) {
  for (const jframe *f = c->top; f; f = f->parent)
    for (uint32_t i = f->n; i-- > 0;)
      if (f->v[i].nlen == n && !memcmp(f->v[i].name, name, n)) return f->v[i].v;
  const jv *g = jd_getn(c->globals, name, n);
  if (g) return *g;
  int id = jfunc_id(name, n);
  if (id >= 0) {
    jv v = {.t = JV_FUNC, .fn = (uint16_t)id};
    return v;
  }
  return jv_undef(why(c, "'%.*s' is undefined", (int)n, name));
}

/* ---- lookup ------------------------------------------------------------------------------- */
static const char *objname(const jv *o) {
  switch (o->t) {
  case JV_DICT: return "dict object";
  case JV_LIST: return o->tuple ? "tuple object" : "list object";
  case JV_STR: return "str object";
  case JV_NONE: return "None";
  default: return jv_typename(o);
  }
}

static jv method(jctx *c, const jv *obj, int id) {
  jv m = {.t = JV_METHOD, .fn = (uint16_t)id};
  m.u.self = ja_alloc(&c->ar, sizeof(jv));
  *m.u.self = *obj;
  return m;
}

static int unsafe_name(const jv *o, const char *name, size_t n) {
  static const char *const dm[] = {"pop", "popitem", "update", "clear", "setdefault", NULL};
  static const char *const lm[] = {"append", "extend", "insert", "pop", "remove", "clear",
                                   "sort", "reverse", NULL};
  const char *const *m = o->t == JV_DICT ? dm : o->t == JV_LIST && !o->tuple ? lm : NULL;
  for (; m && *m; m++)
    if (strlen(*m) == n && !memcmp(*m, name, n)) return 1;
  return 0;
}

static jv loop_attr(jctx *c, const jv *o, const char *name, size_t n) {
  const jloop *L = o->u.loop;
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
  if (IS("index")) return jv_int((int64_t)L->i + 1);
  if (IS("index0")) return jv_int((int64_t)L->i);
  if (IS("revindex")) return jv_int((int64_t)(L->n - L->i));
  if (IS("revindex0")) return jv_int((int64_t)(L->n - L->i - 1));
  if (IS("first")) return jv_bool(L->i == 0);
  if (IS("last")) return jv_bool(L->i + 1 == L->n);
  if (IS("length")) return jv_int((int64_t)L->n);
  if (IS("depth")) return jv_int((int64_t)L->depth);
  if (IS("depth0")) return jv_int((int64_t)L->depth - 1);
  if (IS("previtem"))
    return L->i ? L->items[L->i - 1] : jv_undef("there is no previous item");
  if (IS("nextitem"))
    return L->i + 1 < L->n ? L->items[L->i + 1] : jv_undef("there is no next item");
#undef IS
  int id = jmethod_id(o, name, n);
  if (id >= 0) return method(c, o, id);
  return jv_undef(why(c, "'LoopContext' has no attribute '%.*s'", (int)n, name));
}

jv jgetattr(jctx *c, const jv *obj, const char *name, size_t n, size_t pos) {
  if (obj->t == JV_UNDEF) undef_fail(c, obj, pos);
  if (obj->t == JV_LOOP) return loop_attr(c, obj, name, n);
  int id = jmethod_id(obj, name, n);
  if (id >= 0) return method(c, obj, id);
  if (unsafe_name(obj, name, n))
    return jv_undef(why(c, "access to attribute '%.*s' of '%s' object is unsafe", (int)n, name,
                        jv_typename(obj)));
  if (obj->t == JV_DICT || obj->t == JV_NS) {
    const jv *v = jd_getn(obj->u.d, name, n);
    if (v) return *v;
  }
  return jv_undef(why(c, "'%s' has no attribute '%.*s'", objname(obj), (int)n, name));
}

static jv str_char(jctx *c, const jv *s, int64_t i) {
  size_t len = ju_len(s->u.s.p, s->u.s.n);
  if (i < 0) i += (int64_t)len;
  if (i < 0 || (size_t)i >= len) return jv_undef(why(c, "'str object' has no element %lld",
                                                     (long long)i));
  size_t a = ju_off(s->u.s.p, s->u.s.n, (size_t)i), k = a;
  ju_dec(s->u.s.p, s->u.s.n, &k);
  return jv_str(s->u.s.p + a, k - a);
}

jv jgetitem(jctx *c, const jv *obj, const jv *key, size_t pos) {
  if (obj->t == JV_UNDEF) undef_fail(c, obj, pos);
  if (obj->t == JV_DICT || obj->t == JV_NS) {
    const jv *v = jd_get(obj->u.d, *key);
    if (v) return *v;
  } else if ((obj->t == JV_LIST || obj->t == JV_STR) && (key->t == JV_INT || key->t == JV_BOOL)) {
    if (obj->t == JV_STR) return str_char(c, obj, key->u.i);
    int64_t i = key->u.i, n = (int64_t)obj->u.l->n;
    if (i < 0) i += n;
    if (i >= 0 && i < n) return obj->u.l->v[i];
    return jv_undef(why(c, "'%s' has no element %lld", objname(obj), (long long)key->u.i));
  }
  if (key->t == JV_STR) return jgetattr(c, obj, key->u.s.p, key->u.s.n, pos);
  jbuf b = {0};
  jv_repr_to(c, &b, key, pos);
  return jv_undef(why(c, "'%s' has no element %.*s", objname(obj), (int)(b.n > 60 ? 60 : b.n),
                      b.p));
}

static int64_t slice_arg(jctx *c, const jnode *n, int64_t dflt, size_t pos) {
  if (!n) return dflt;
  jv v = jeval(c, n);
  if (v.t == JV_NONE) return dflt;
  if (v.t != JV_INT && v.t != JV_BOOL)
    jrfail(c, pos, "slice indices must be integers or None, not %s", jv_typename(&v));
  return v.u.i;
}

static jv do_slice(jctx *c, const jnode *n) {
  jv o = jeval(c, n->a);
  if (o.t == JV_UNDEF) undef_fail(c, &o, n->pos);
  if (o.t != JV_LIST && o.t != JV_STR) jrfail(c, n->pos, "'%s' object is not subscriptable",
                                             jv_typename(&o));
  int64_t step = slice_arg(c, n->d, 1, n->pos);
  if (!step) jrfail(c, n->pos, "slice step cannot be zero");
  int64_t len = o.t == JV_STR ? (int64_t)ju_len(o.u.s.p, o.u.s.n) : (int64_t)o.u.l->n;
  int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
  int64_t st = slice_arg(c, n->b, INT64_MIN, n->pos), sp = slice_arg(c, n->c, INT64_MIN, n->pos);
  if (st == INT64_MIN) st = step < 0 ? hi : lo;
  else {
    if (st < 0) st += len;
    st = st < lo ? lo : st > hi ? hi : st;
  }
  if (sp == INT64_MIN) sp = step < 0 ? lo : hi;
  else {
    if (sp < 0) sp += len;
    sp = sp < lo ? lo : sp > hi ? hi : sp;
  }
  if (o.t == JV_STR && step == 1) {
    if (sp <= st) return jv_str("", 0);
    size_t a = ju_off(o.u.s.p, o.u.s.n, (size_t)st), b = ju_off(o.u.s.p, o.u.s.n, (size_t)sp);
    return jv_str(o.u.s.p + a, b - a);
  }
  jbuf b = {0};
  jlist *l = o.t == JV_LIST ? jl_new(c, 0) : NULL;
  size_t *offs = NULL;
  if (o.t == JV_STR) { /* code point start offsets */
    offs = ja_alloc(&c->ar, ((size_t)len + 1) * sizeof *offs);
    size_t k = 0;
    for (size_t i = 0; i < o.u.s.n; i++)
      if (((unsigned char)o.u.s.p[i] & 0xC0) != 0x80) offs[k++] = i;
    offs[k] = o.u.s.n;
  }
  for (int64_t i = st; step > 0 ? i < sp : i > sp; i += step) {
    jstep(c, n->pos);
    if (l) jl_push(c, l, o.u.l->v[i]);
    else jb_put(c, &b, o.u.s.p + offs[i], offs[i + 1] - offs[i]);
  }
  if (!l) return jb_take(c, &b);
  jv r = {.t = JV_LIST, .tuple = o.tuple};
  r.u.l = l;
  return r;
}

void jiter(jctx *c, const jv *v, size_t pos, const jv **items, size_t *n) {
  switch (v->t) {
  case JV_UNDEF:
    *items = NULL;
    *n = 0;
    return;
  case JV_LIST:
    *items = v->u.l->v;
    *n = v->u.l->n;
    return;
  case JV_DICT:
    *items = v->u.d->k;
    *n = v->u.d->n;
    return;
  case JV_STR: {
    size_t len = ju_len(v->u.s.p, v->u.s.n);
    jv *it = ja_alloc(&c->ar, (len ? len : 1) * sizeof(jv));
    size_t k = 0;
    for (size_t i = 0; i < v->u.s.n;) {
      size_t st = i;
      ju_dec(v->u.s.p, v->u.s.n, &i);
      it[k++] = jv_str(v->u.s.p + st, i - st);
    }
    *items = it;
    *n = k;
    return;
  }
  default: jrfail(c, pos, "'%s' object is not iterable", jv_typename(v));
  }
}

/* ---- operators ---------------------------------------------------------------------------- */
static int isnum(const jv *v) { return v->t == JV_INT || v->t == JV_BOOL || v->t == JV_FLOAT; }
static double fnum(const jv *v) { return v->t == JV_FLOAT ? v->u.f : (double)v->u.i; }

static const char *opsym(int op) {
  static const char *const s[] = {"+", "-", "*", "/", "//", "%", "**"};
  return op <= OP_POW ? s[op] : "?";
}

J_NORETURN static void bad_operands(jctx *c, size_t pos, int op, const jv *a, const jv *b) {
  if (a->t == JV_UNDEF) undef_fail(c, a, pos);
  if (b->t == JV_UNDEF) undef_fail(c, b, pos);
  if (op == OP_ADD && a->t == JV_STR)
    jrfail(c, pos, "can only concatenate str (not \"%s\") to str", jv_typename(b));
  if (op == OP_MOD && a->t == JV_STR)
    jrfail(c, pos, "Python's %% string formatting is not supported");
  jrfail(c, pos, "unsupported operand type(s) for %s: '%s' and '%s'", opsym(op),
         jv_typename(a), jv_typename(b));
}

static jv repeat(jctx *c, const jv *s, int64_t k, size_t pos) {
  if (k <= 0) {
    if (s->t == JV_STR) return jv_str("", 0);
    jv r = {.t = JV_LIST, .tuple = s->tuple};
    r.u.l = jl_new(c, 0);
    return r;
  }
  size_t unit = s->t == JV_STR ? s->u.s.n : s->u.l->n * sizeof(jv);
  if (unit && (uint64_t)k > c->lim.max_memory / unit)
    jrfail(c, pos, "repetition by %lld is too large", (long long)k);
  if (s->t == JV_STR) {
    jbuf b = {0};
    for (int64_t i = 0; i < k; i++) jb_put(c, &b, s->u.s.p, s->u.s.n);
    return jb_take(c, &b);
  }
  jlist *l = jl_new(c, s->u.l->n * (size_t)k);
  for (int64_t i = 0; i < k; i++)
    for (size_t j = 0; j < s->u.l->n; j++) jl_push(c, l, s->u.l->v[j]);
  jv r = {.t = JV_LIST, .tuple = s->tuple};
  r.u.l = l;
  return r;
}

static jv binop(jctx *c, int op, const jv *a, const jv *b, size_t pos) {
  if (isnum(a) && isnum(b)) {
    int ints = a->t != JV_FLOAT && b->t != JV_FLOAT;
    int64_t x = ints ? a->u.i : 0, y = ints ? b->u.i : 0, r;
    double f = fnum(a), g = fnum(b);
    switch (op) {
    case OP_ADD:
      if (ints) {
        if (__builtin_add_overflow(x, y, &r)) jrfail(c, pos, "integer overflow");
        return jv_int(r);
      }
      return jv_float(f + g);
    case OP_SUB:
      if (ints) {
        if (__builtin_sub_overflow(x, y, &r)) jrfail(c, pos, "integer overflow");
        return jv_int(r);
      }
      return jv_float(f - g);
    case OP_MUL:
      if (ints) {
        if (__builtin_mul_overflow(x, y, &r)) jrfail(c, pos, "integer overflow");
        return jv_int(r);
      }
      return jv_float(f * g);
    case OP_DIV:
      if (g == 0.0) jrfail(c, pos, "division by zero");
      return jv_float(f / g);
    case OP_FLOORDIV:
    case OP_MOD:
      if (ints) {
        if (!y) jrfail(c, pos, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) jrfail(c, pos, "integer overflow");
        int64_t q = x / y, m = x % y;
        if (m && ((m < 0) != (y < 0))) {
          q--;
          m += y;
        }
        return jv_int(op == OP_MOD ? m : q);
      }
      if (g == 0.0) jrfail(c, pos, "float division or modulo by zero");
      if (op == OP_FLOORDIV) return jv_float(floor(f / g));
      {
        double m = fmod(f, g);
        if (m != 0.0 && ((m < 0) != (g < 0))) m += g;
        return jv_float(m);
      }
    case OP_POW:
      if (ints && y >= 0) {
        int64_t acc = 1, base = x;
        for (int64_t e = y; e > 0; e >>= 1) {
          if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
            jrfail(c, pos, "integer overflow");
          if (e > 1 && __builtin_mul_overflow(base, base, &base))
            jrfail(c, pos, "integer overflow");
        }
        return jv_int(acc);
      }
      return jv_float(pow(f, g));
    }
  }
  if (op == OP_ADD && a->t == JV_STR && b->t == JV_STR) {
    if (!a->u.s.n) return *b;
    if (!b->u.s.n) return *a;
    jbuf bf = {0};
    jb_put(c, &bf, a->u.s.p, a->u.s.n);
    jb_put(c, &bf, b->u.s.p, b->u.s.n);
    return jb_take(c, &bf);
  }
  if (op == OP_ADD && a->t == JV_LIST && b->t == JV_LIST && a->tuple == b->tuple) {
    jlist *l = jl_new(c, a->u.l->n + b->u.l->n);
    for (size_t i = 0; i < a->u.l->n; i++) jl_push(c, l, a->u.l->v[i]);
    for (size_t i = 0; i < b->u.l->n; i++) jl_push(c, l, b->u.l->v[i]);
    jv r = {.t = JV_LIST, .tuple = a->tuple};
    r.u.l = l;
    return r;
  }
  if (op == OP_MUL && (a->t == JV_STR || a->t == JV_LIST) && (b->t == JV_INT || b->t == JV_BOOL))
    return repeat(c, a, b->u.i, pos);
  if (op == OP_MUL && (b->t == JV_STR || b->t == JV_LIST) && (a->t == JV_INT || a->t == JV_BOOL))
    return repeat(c, b, a->u.i, pos);
  bad_operands(c, pos, op, a, b);
}

static int contains(jctx *c, const jv *item, const jv *cont, size_t pos) {
  switch (cont->t) {
  case JV_UNDEF: return 0;
  case JV_STR:
    if (item->t != JV_STR)
      jrfail(c, pos, "'in <string>' requires string as left operand, not %s", jv_typename(item));
    if (!item->u.s.n) return 1;
    return memmem(cont->u.s.p, cont->u.s.n, item->u.s.p, item->u.s.n) != NULL;
  case JV_LIST:
    for (size_t i = 0; i < cont->u.l->n; i++)
      if (jv_eq(item, &cont->u.l->v[i])) return 1;
    return 0;
  case JV_DICT: return jd_get(cont->u.d, *item) != NULL;
  default: jrfail(c, pos, "argument of type '%s' is not iterable", jv_typename(cont));
  }
}

static int compare(jctx *c, int op, const jv *a, const jv *b, size_t pos) {
  switch (op) {
  case OP_EQ: return jv_eq(a, b);
  case OP_NE: return !jv_eq(a, b);
  case OP_IN: return contains(c, a, b, pos);
  case OP_NOTIN: return !contains(c, a, b, pos);
  default: {
    int r = jv_cmp(c, pos, a, b);
    return op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0;
  }
  }
}

/* ---- calls -------------------------------------------------------------------------------- */
static void exec_block(jctx *c, const jblock *b);

static jv call_macro(jctx *c, const jnode *m, const jv *args, const char **names, size_t n,
                     size_t pos) {
  if (c->depth >= c->lim.max_depth)
    jrfail(c, pos, "macro calls nest deeper than %u (the limit)", c->lim.max_depth);
  jframe *f = frame_new(c, c->root), *saved_top = c->top;
  jbuf *saved_out = c->out, out = {0};
  uint8_t *bound = ja_alloc(&c->ar, m->nargs + 1);
  size_t npos = 0;
  for (size_t i = 0; i < n; i++) {
    if (!names || !names[i]) {
      if (npos >= m->nargs)
        jrfail(c, pos, "macro '%s' takes not more than %u argument(s)", m->s, m->nargs);
      frame_set(c, f, m->names[npos], strlen(m->names[npos]), args[i]);
      bound[npos++] = 1;
      continue;
    }
    size_t k = 0;
    while (k < m->nargs && strcmp(m->names[k], names[i])) k++;
    if (k == m->nargs) jrfail(c, pos, "macro '%s' has no parameter '%s'", m->s, names[i]);
    frame_set(c, f, m->names[k], strlen(m->names[k]), args[i]);
    bound[k] = 1;
  }
  c->top = f;
  for (uint32_t k = 0; k < m->nargs; k++)
    if (!bound[k])
      frame_set(c, f, m->names[k], strlen(m->names[k]),
                m->args[k] ? jeval(c, m->args[k])
                           : jv_undef(why(c, "parameter '%s' was not provided", m->names[k])));
  c->depth++;
  c->out = &out;
  int flow = c->flow;
  exec_block(c, &m->body);
  c->flow = flow;
  c->out = saved_out;
  c->top = saved_top;
  c->depth--;
  return jb_take(c, &out);
}

jv jcall_value(jctx *c, const jv *fnv, const jv *args, const char **names, size_t n, size_t pos) {
  switch (fnv->t) {
  case JV_FUNC: return jfunc_call(c, fnv->fn, args, names, n, pos);
  case JV_METHOD: return jmethod_call(c, fnv->fn, fnv->u.self, args, names, n, pos);
  case JV_MACRO: return call_macro(c, fnv->u.macro, args, names, n, pos);
  case JV_UNDEF: undef_fail(c, fnv, pos);
  default: jrfail(c, pos, "'%s' object is not callable", jv_typename(fnv));
  }
}

static jv *eval_args(jctx *c, const jnode *n) {
  jv *a = ja_alloc(&c->ar, (n->nargs ? n->nargs : 1) * sizeof(jv));
  for (uint32_t i = 0; i < n->nargs; i++) a[i] = jeval(c, n->args[i]);
  return a;
}

/* ---- expressions -------------------------------------------------------------------------- */
static jv eval_inner(jctx *c, const jnode *n) {
  switch (n->kind) {
  case N_CONST: return n->val;
  case N_NAME: return lookup(c, n->s, n->slen);
  case N_GETATTR: {
    jv o = jeval(c, n->a);
    return jgetattr(c, &o, n->s, n->slen, n->pos);
  }
  case N_GETITEM: {
    jv o = jeval(c, n->a), k = jeval(c, n->b);
    return jgetitem(c, &o, &k, n->pos);
  }
  case N_SLICE: return do_slice(c, n);
  case N_CALL: {
    jv f = jeval(c, n->a);
    jv *a = eval_args(c, n);
    return jcall_value(c, &f, a, n->names, n->nargs, n->pos);
  }
  case N_FILTER: {
    jv in = jeval(c, n->a);
    jv *a = eval_args(c, n);
    return jfilter_call(c, n->fid, &in, a, n->names, n->nargs, n->pos);
  }
  case N_TEST: {
    jv in = jeval(c, n->a);
    jv *a = eval_args(c, n);
    int r = jtest_call(c, n->fid, &in, a, n->nargs, n->pos);
    return jv_bool(n->op ? !r : r);
  }
  case N_NEG:
  case N_POS: {
    jv v = jeval(c, n->a);
    if (v.t == JV_UNDEF) undef_fail(c, &v, n->pos);
    if (!isnum(&v)) jrfail(c, n->pos, "bad operand type for unary %c: '%s'",
                           n->kind == N_NEG ? '-' : '+', jv_typename(&v));
    if (n->kind == N_POS) return v.t == JV_BOOL ? jv_int(v.u.i) : v;
    if (v.t == JV_FLOAT) return jv_float(-v.u.f);
    if (v.u.i == INT64_MIN) jrfail(c, n->pos, "integer overflow");
    return jv_int(-v.u.i);
  }
  case N_BIN: {
    jv a = jeval(c, n->a), b = jeval(c, n->b);
    return binop(c, n->op, &a, &b, n->pos);
  }
  case N_AND: {
    jv a = jeval(c, n->a);
    return jv_truthy(&a) ? jeval(c, n->b) : a;
  }
  case N_OR: {
    jv a = jeval(c, n->a);
    return jv_truthy(&a) ? a : jeval(c, n->b);
  }
  case N_NOT: {
    jv a = jeval(c, n->a);
    return jv_bool(!jv_truthy(&a));
  }
  case N_CMP: {
    jv l = jeval(c, n->args[0]);
    for (uint32_t i = 1; i < n->nargs; i++) {
      jv r = jeval(c, n->args[i]);
      if (!compare(c, n->ops[i - 1], &l, &r, n->pos)) return jv_bool(0);
      l = r;
    }
    return jv_bool(1);
  }
  case N_CONCAT: {
    jbuf b = {0};
    for (uint32_t i = 0; i < n->nargs; i++) {
      jv v = jeval(c, n->args[i]);
      jv_str_to(c, &b, &v, n->pos);
    }
    return jb_take(c, &b);
  }
  case N_COND: {
    jv t = jeval(c, n->a);
    if (jv_truthy(&t)) return jeval(c, n->b);
    return n->c ? jeval(c, n->c) : jv_undef("the inline if's condition was false and it has "
                                            "no else");
  }
  case N_LIST:
  case N_TUPLE: {
    jlist *l = jl_new(c, n->nargs);
    for (uint32_t i = 0; i < n->nargs; i++) jl_push(c, l, jeval(c, n->args[i]));
    jv r = {.t = JV_LIST, .tuple = n->kind == N_TUPLE};
    r.u.l = l;
    return r;
  }
  case N_DICT: {
    jdict *d = jd_new(c, n->nargs / 2);
    for (uint32_t i = 0; i + 1 < n->nargs; i += 2) {
      jv k = jeval(c, n->args[i]);
      if (k.t == JV_LIST && !k.tuple) jrfail(c, n->args[i]->pos, "unhashable type: 'list'");
      if (k.t == JV_DICT) jrfail(c, n->args[i]->pos, "unhashable type: 'dict'");
      jd_set(c, d, k, jeval(c, n->args[i + 1]));
    }
    jv r = {.t = JV_DICT};
    r.u.d = d;
    return r;
  }
  default: jrfail(c, n->pos, "internal error: node %d is not an expression", n->kind);
  }
}

jv jeval(jctx *c, const jnode *n) {
  jstep(c, n->pos);
  if (++c->rec > MAX_REC) jrfail(c, n->pos, "the template nests too deeply");
  jv v = eval_inner(c, n);
  c->rec--;
  return v;
}

/* ---- statements --------------------------------------------------------------------------- */
static void assign(jctx *c, jframe *f, const jnode *n, const jv *v) {
  if (n->nargs == 1) {
    frame_set(c, f, n->names[0], strlen(n->names[0]), *v);
    return;
  }
  const jv *items;
  size_t k;
  jiter(c, v, n->pos, &items, &k);
  if (k != n->nargs)
    jrfail(c, n->pos, "cannot unpack %zu value%s into %u names", k, k == 1 ? "" : "s",
           n->nargs);
  for (uint32_t i = 0; i < n->nargs; i++)
    frame_set(c, f, n->names[i], strlen(n->names[i]), items[i]);
}

static void exec_for(jctx *c, const jnode *n) {
  jv seq = jeval(c, n->a);
  const jv *items;
  size_t cnt;
  jiter(c, &seq, n->pos, &items, &cnt);
  jframe *outer = c->top;
  if (n->b) { /* for x in xs if cond: the loop sees only the items that pass */
    jv *kept = ja_alloc(&c->ar, (cnt ? cnt : 1) * sizeof(jv));
    size_t k = 0;
    jframe *f = frame_new(c, outer);
    for (size_t i = 0; i < cnt; i++) {
      jstep(c, n->pos);
      f->n = 0;
      assign(c, f, n, &items[i]);
      c->top = f;
      jv t = jeval(c, n->b);
      c->top = outer;
      if (jv_truthy(&t)) kept[k++] = items[i];
    }
    items = kept;
    cnt = k;
  }
  jloop *L = ja_alloc(&c->ar, sizeof *L);
  L->items = items;
  L->n = cnt;
  L->depth = 1; /* jinja2 counts depth in recursive loops only, which are not supported */
  jv lv = {.t = JV_LOOP};
  lv.u.loop = L;
  jframe *f = frame_new(c, outer); /* one frame, emptied for each iteration */
  for (size_t i = 0; i < cnt; i++) {
    jstep(c, n->pos);
    L->i = i;
    f->n = 0;
    assign(c, f, n, &items[i]);
    frame_set(c, f, "loop", 4, lv);
    c->top = f;
    exec_block(c, &n->body);
    c->top = outer;
    int fl = c->flow;
    c->flow = 0;
    if (fl == 1) break;
  }
  if (!cnt) exec_block(c, &n->orelse);
}

static void exec_stmt(jctx *c, const jnode *n) {
  jstep(c, n->pos);
  switch (n->kind) {
  case N_TEXT: jb_put(c, c->out, n->s, n->slen); return;
  case N_OUT: {
    jv v = jeval(c, n->a);
    jv_str_to(c, c->out, &v, n->pos);
    return;
  }
  case N_IF: {
    jv t = jeval(c, n->a);
    exec_block(c, jv_truthy(&t) ? &n->body : &n->orelse);
    return;
  }
  case N_FOR: exec_for(c, n); return;
  case N_SET: {
    jv v = jeval(c, n->a);
    if (n->s) {
      jv ns = lookup(c, n->s, n->slen);
      if (ns.t != JV_NS)
        jrfail(c, n->pos, "can't assign attribute '%s' of '%s': it is not a namespace()",
               n->names[0], n->s);
      jd_set(c, ns.u.d, jv_cstr(n->names[0]), v);
      return;
    }
    assign(c, c->top, n, &v);
    return;
  }
  case N_SETBLOCK: {
    jbuf *saved = c->out, b = {0};
    c->out = &b;
    exec_block(c, &n->body);
    c->out = saved;
    frame_set(c, c->top, n->names[0], strlen(n->names[0]), jb_take(c, &b));
    return;
  }
  case N_BREAK: c->flow = 1; return;
  case N_CONTINUE: c->flow = 2; return;
  case N_MACRO: {
    jv m = {.t = JV_MACRO};
    m.u.macro = n;
    frame_set(c, c->top, n->s, n->slen, m);
    return;
  }
  case N_BLOCK: {
    if (!n->op) { /* {% generation %} */
      exec_block(c, &n->body);
      return;
    }
    jframe *outer = c->top, *f = frame_new(c, outer);
    for (uint32_t i = 0; i < n->nargs; i++) {
      jv v = jeval(c, n->args[i]);
      frame_set(c, f, n->names[i], strlen(n->names[i]), v);
    }
    c->top = f;
    exec_block(c, &n->body);
    c->top = outer;
    return;
  }
  default: jrfail(c, n->pos, "internal error: node %d is not a statement", n->kind);
  }
}

static void exec_block(jctx *c, const jblock *b) {
  if (++c->rec > MAX_REC) jrfail(c, b->n ? b->v[0]->pos : SIZE_MAX, "the template nests too deeply");
  for (uint32_t i = 0; i < b->n && !c->flow; i++) exec_stmt(c, b->v[i]);
  c->rec--;
}

void jrun(jctx *c, const jblock *b) {
  c->root = c->top = frame_new(c, NULL);
  exec_block(c, b);
}

/* Jinja values as Python sees them: construction, lists and ordered dicts, truthiness,
 * equality and ordering, str() and repr() (Python's float repr, its string quoting and escaping
 * of non-printable characters), json.dumps as transformers' tojson calls it, and a JSON reader
 * for the caller's variables (integers stay ints, key order is kept). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "chat/jinja_internal.h"

#define MAX_NEST 200

jv jv_str(const char *p, size_t n) {
  jv v = {.t = JV_STR};
  v.u.s.p = p;
  v.u.s.n = n;
  return v;
}
jv jv_cstr(const char *p) { return jv_str(p, strlen(p)); }
jv jv_int(int64_t i) {
  jv v = {.t = JV_INT};
  v.u.i = i;
  return v;
}
jv jv_float(double f) {
  jv v = {.t = JV_FLOAT};
  v.u.f = f;
  return v;
}
jv jv_bool(int b) {
  jv v = {.t = JV_BOOL};
  v.u.i = b != 0;
  return v;
}
jv jv_none(void) { return (jv){.t = JV_NONE}; }
jv jv_undef(const char *why) {
  jv v = {.t = JV_UNDEF};
  v.u.s.p = why;
  v.u.s.n = why ? strlen(why) : 0;
  return v;
}

jlist *jl_new(jctx *c, size_t cap) {
  jlist *l = ja_alloc(&c->ar, sizeof *l);
  if (cap) {
    if (cap > c->lim.max_memory / sizeof(jv)) jrfail(c, SIZE_MAX, "a list is too large");
    l->v = ja_alloc(&c->ar, cap * sizeof(jv));
  }
  l->cap = cap;
  return l;
}

void jl_push(jctx *c, jlist *l, jv v) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    jv *nv = ja_alloc(&c->ar, cap * sizeof(jv));
    if (l->n) memcpy(nv, l->v, l->n * sizeof(jv));
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = v;
}

jdict *jd_new(jctx *c, size_t cap) {
  jdict *d = ja_alloc(&c->ar, sizeof *d);
  if (cap) {
    d->k = ja_alloc(&c->ar, cap * sizeof(jv));
    d->v = ja_alloc(&c->ar, cap * sizeof(jv));
  }
  d->cap = cap;
  return d;
}

const jv *jd_get(const jdict *d, jv k) {
  for (size_t i = 0; i < d->n; i++)
    if (jv_eq(&d->k[i], &k)) return &d->v[i];
  return NULL;
}

const jv *jd_getn(const jdict *d, const char *name, size_t n) {
  for (size_t i = 0; i < d->n; i++)
    if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, name, n))
      return &d->v[i];
  return NULL;
}

void jd_set(jctx *c, jdict *d, jv k, jv v) {
  for (size_t i = 0; i < d->n; i++)
    if (jv_eq(&d->k[i], &k)) {
      d->v[i] = v;
      return;
    }
  if (d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 8;
    jv *nk = ja_alloc(&c->ar, cap * sizeof(jv)), *nv = ja_alloc(&c->ar, cap * sizeof(jv));
    if (d->n) {
      memcpy(nk, d->k, d->n * sizeof(jv));
      memcpy(nv, d->v, d->n * sizeof(jv));
    }
    d->k = nk;
    d->v = nv;
    d->cap = cap;
  }
  d->k[d->n] = k;
  d->v[d->n++] = v;
}

int jv_truthy(const jv *v) {
  switch (v->t) {
  case JV_UNDEF:
  case JV_NONE: return 0;
  case JV_BOOL:
  case JV_INT: return v->u.i != 0;
  case JV_FLOAT: return v->u.f != 0.0;
  case JV_STR: return v->u.s.n != 0;
  case JV_LIST: return v->u.l->n != 0;
  case JV_DICT: return v->u.d->n != 0;
  default: return 1;
  }
}

static int isnum(const jv *v) { return v->t == JV_INT || v->t == JV_BOOL || v->t == JV_FLOAT; }
static double num(const jv *v) { return v->t == JV_FLOAT ? v->u.f : (double)v->u.i; }

int jv_eq(const jv *a, const jv *b) {
  if (isnum(a) && isnum(b)) {
    if (a->t != JV_FLOAT && b->t != JV_FLOAT) return a->u.i == b->u.i;
    return num(a) == num(b);
  }
  if (a->t != b->t) return 0;
  switch (a->t) {
  case JV_UNDEF:
  case JV_NONE: return 1;
  case JV_STR: return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
  case JV_LIST:
    if (a->tuple != b->tuple || a->u.l->n != b->u.l->n) return 0;
    for (size_t i = 0; i < a->u.l->n; i++)
      if (!jv_eq(&a->u.l->v[i], &b->u.l->v[i])) return 0;
    return 1;
  case JV_DICT:
    if (a->u.d->n != b->u.d->n) return 0;
    for (size_t i = 0; i < a->u.d->n; i++) {
      const jv *o = jd_get(b->u.d, a->u.d->k[i]);
      if (!o || !jv_eq(&a->u.d->v[i], o)) return 0;
    }
    return 1;
  case JV_NS: return a->u.d == b->u.d;
  case JV_FUNC: return a->fn == b->fn;
  case JV_METHOD: return a->fn == b->fn && jv_eq(a->u.self, b->u.self);
  case JV_LOOP: return a->u.loop == b->u.loop;
  case JV_MACRO: return a->u.macro == b->u.macro;
  default: return 0;
  }
}

const char *jv_typename(const jv *v) {
  switch (v->t) {
  case JV_UNDEF: return "Undefined";
  case JV_NONE: return "NoneType";
  case JV_BOOL: return "bool";
  case JV_INT: return "int";
  case JV_FLOAT: return "float";
  case JV_STR: return "str";
  case JV_LIST: return v->tuple ? "tuple" : "list";
  case JV_DICT: return "dict";
  case JV_NS: return "Namespace";
  case JV_FUNC: return "function";
  case JV_METHOD: return "builtin_function_or_method";
  case JV_LOOP: return "LoopContext";
  case JV_MACRO: return "Macro";
  default: return "object";
  }
}

int jv_cmp(jctx *c, size_t pos, const jv *a, const jv *b) {
  if (isnum(a) && isnum(b)) {
    if (a->t != JV_FLOAT && b->t != JV_FLOAT) return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    double x = num(a), y = num(b);
    return (x > y) - (x < y);
  }
  if (a->t == JV_STR && b->t == JV_STR) {
    size_t m = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    int r = m ? memcmp(a->u.s.p, b->u.s.p, m) : 0;
    if (r) return r;
    return (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
  }
  if (a->t == JV_LIST && b->t == JV_LIST && a->tuple == b->tuple) {
    size_t m = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
    for (size_t i = 0; i < m; i++) {
      if (jv_eq(&a->u.l->v[i], &b->u.l->v[i])) continue;
      return jv_cmp(c, pos, &a->u.l->v[i], &b->u.l->v[i]);
    }
    return (a->u.l->n > b->u.l->n) - (a->u.l->n < b->u.l->n);
  }
  if (a->t == JV_UNDEF || b->t == JV_UNDEF)
    jrfail(c, pos, "comparison with an undefined value%s%.*s", a->t == JV_UNDEF ? ": " : "",
           (int)(a->t == JV_UNDEF ? a->u.s.n : b->u.s.n),
           a->t == JV_UNDEF ? a->u.s.p : b->u.s.p);
  jrfail(c, pos, "'<' not supported between instances of '%s' and '%s'", jv_typename(a),
         jv_typename(b));
}

/* ---- buffers ---------------------------------------------------------------------------- */
void jb_put(jctx *c, jbuf *b, const char *s, size_t n) {
  if (!n) return;
  if (n > c->lim.max_output || b->n > c->lim.max_output - n)
    jrfail(c, SIZE_MAX, "the output (or a string built) is longer than %zu bytes (the limit)",
           c->lim.max_output);
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = ja_alloc(&c->ar, cap);
    if (b->n) memcpy(p, b->p, b->n);
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
void jb_putc(jctx *c, jbuf *b, char ch) { jb_put(c, b, &ch, 1); }

jv jb_take(jctx *c, jbuf *b) {
  (void)c;
  return b->n ? jv_str(b->p, b->n) : jv_str("", 0);
}

/* ---- str() and repr() ---------------------------------------------------------------------- */
static void put_s(jctx *c, jbuf *b, const char *s) { jb_put(c, b, s, strlen(s)); }

/* Python's repr(float): the shortest digits that round-trip, fixed notation for exponents in
 * [-4, 16), scientific otherwise. */
static void fmt_float(double f, char *out, size_t outn) {
  if (isnan(f)) {
    snprintf(out, outn, "nan");
    return;
  }
  if (isinf(f)) {
    snprintf(out, outn, f < 0 ? "-inf" : "inf");
    return;
  }
  char buf[40];
  int p = 1;
  for (; p <= 17; p++) {
    snprintf(buf, sizeof buf, "%.*e", p - 1, f);
    if (strtod(buf, NULL) == f) break;
  }
  const char *s = buf;
  int neg = *s == '-';
  if (neg) s++;
  char dig[24];
  int nd = 0;
  for (; *s && *s != 'e'; s++)
    if (*s >= '0' && *s <= '9') dig[nd++] = *s;
  int ex = atoi(s + 1);
  while (nd > 1 && dig[nd - 1] == '0') nd--;
  size_t k = 0;
  if (neg) out[k++] = '-';
  if (ex >= -4 && ex < 16) {
    if (ex >= 0) {
      for (int i = 0; i <= ex; i++) out[k++] = i < nd ? dig[i] : '0';
      out[k++] = '.';
      if (nd > ex + 1)
        for (int i = ex + 1; i < nd; i++) out[k++] = dig[i];
      else
        out[k++] = '0';
    } else {
      out[k++] = '0';
      out[k++] = '.';
      for (int i = 0; i < -ex - 1; i++) out[k++] = '0';
      for (int i = 0; i < nd; i++) out[k++] = dig[i];
    }
    out[k] = 0;
  } else {
    out[k++] = dig[0];
    if (nd > 1) {
      out[k++] = '.';
      for (int i = 1; i < nd; i++) out[k++] = dig[i];
    }
    snprintf(out + k, outn - k, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
  }
}

static int printable(uint32_t cp) {
  if (cp == ' ') return 1;
  if (cp < 0x20 || cp == 0x7F) return 0;
  if (cp < 0x7F) return 1;
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
  return !(k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
           k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN || k == UTF8PROC_CATEGORY_ZS ||
           k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP);
}

static void repr_str(jctx *c, jbuf *b, const char *s, size_t n) {
  int sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
  char q = sq && !dq ? '"' : '\'';
  jb_putc(c, b, q);
  for (size_t i = 0; i < n;) {
    size_t st = i;
    uint32_t cp = ju_dec(s, n, &i);
    char e[16];
    if (cp == (uint32_t)q || cp == '\\') {
      e[0] = '\\';
      e[1] = (char)cp;
      jb_put(c, b, e, 2);
    } else if (cp == '\n') {
      jb_put(c, b, "\\n", 2);
    } else if (cp == '\r') {
      jb_put(c, b, "\\r", 2);
    } else if (cp == '\t') {
      jb_put(c, b, "\\t", 2);
    } else if (printable(cp)) {
      jb_put(c, b, s + st, i - st);
    } else {
      int m = cp < 0x100 ? snprintf(e, sizeof e, "\\x%02x", cp)
              : cp < 0x10000 ? snprintf(e, sizeof e, "\\u%04x", cp)
                             : snprintf(e, sizeof e, "\\U%08x", cp);
      jb_put(c, b, e, (size_t)m);
    }
  }
  jb_putc(c, b, q);
}

static void to_str(jctx *c, jbuf *b, const jv *v, size_t pos, int repr, int depth) {
  char t[64];
  if (depth > MAX_NEST) jrfail(c, pos, "a value nests more than %d levels deep", MAX_NEST);
  switch (v->t) {
  case JV_UNDEF:
    if (repr) put_s(c, b, "Undefined");
    return;
  case JV_NONE: put_s(c, b, "None"); return;
  case JV_BOOL: put_s(c, b, v->u.i ? "True" : "False"); return;
  case JV_INT:
    snprintf(t, sizeof t, "%lld", (long long)v->u.i);
    put_s(c, b, t);
    return;
  case JV_FLOAT:
    fmt_float(v->u.f, t, sizeof t);
    put_s(c, b, t);
    return;
  case JV_STR:
    if (repr) repr_str(c, b, v->u.s.p, v->u.s.n);
    else jb_put(c, b, v->u.s.p, v->u.s.n);
    return;
  case JV_LIST:
    jb_putc(c, b, v->tuple ? '(' : '[');
    for (size_t i = 0; i < v->u.l->n; i++) {
      if (i) put_s(c, b, ", ");
      to_str(c, b, &v->u.l->v[i], pos, 1, depth + 1);
    }
    if (v->tuple && v->u.l->n == 1) jb_putc(c, b, ',');
    jb_putc(c, b, v->tuple ? ')' : ']');
    return;
  case JV_NS:
  case JV_DICT:
    if (v->t == JV_NS) put_s(c, b, "<Namespace ");
    jb_putc(c, b, '{');
    for (size_t i = 0; i < v->u.d->n; i++) {
      if (i) put_s(c, b, ", ");
      to_str(c, b, &v->u.d->k[i], pos, 1, depth + 1);
      put_s(c, b, ": ");
      to_str(c, b, &v->u.d->v[i], pos, 1, depth + 1);
    }
    jb_putc(c, b, '}');
    if (v->t == JV_NS) jb_putc(c, b, '>');
    return;
  case JV_FUNC:
    snprintf(t, sizeof t, "<function %s>", jfunc_name(v->fn));
    put_s(c, b, t);
    return;
  case JV_METHOD:
    snprintf(t, sizeof t, "<built-in method %s>", jmethod_name(v->fn));
    put_s(c, b, t);
    return;
  case JV_LOOP:
    snprintf(t, sizeof t, "<LoopContext %zu/%zu>", v->u.loop->i + 1, v->u.loop->n);
    put_s(c, b, t);
    return;
  case JV_MACRO:
    snprintf(t, sizeof t, "<Macro '%.40s'>", v->u.macro->s);
    put_s(c, b, t);
    return;
  }
}

void jv_str_to(jctx *c, jbuf *b, const jv *v, size_t pos) { to_str(c, b, v, pos, 0, 0); }
void jv_repr_to(jctx *c, jbuf *b, const jv *v, size_t pos) { to_str(c, b, v, pos, 1, 0); }

jv jv_tostr(jctx *c, const jv *v, size_t pos) {
  if (v->t == JV_STR) return *v;
  if (v->t == JV_UNDEF) return jv_str("", 0);
  jbuf b = {0};
  jv_str_to(c, &b, v, pos);
  return jb_take(c, &b);
}

/* ---- json.dumps ------------------------------------------------------------------------- */
static void json_str(jctx *c, jbuf *b, const char *s, size_t n, int ascii) {
  jb_putc(c, b, '"');
  size_t run = 0;
  for (size_t i = 0; i < n;) {
    unsigned char ch = (unsigned char)s[i];
    char e[16];
    const char *rep = NULL;
    int m = 0;
    if (ch == '"') rep = "\\\"";
    else if (ch == '\\') rep = "\\\\";
    else if (ch == '\n') rep = "\\n";
    else if (ch == '\r') rep = "\\r";
    else if (ch == '\t') rep = "\\t";
    else if (ch == '\b') rep = "\\b";
    else if (ch == '\f') rep = "\\f";
    else if (ch < 0x20) m = snprintf(e, sizeof e, "\\u%04x", ch);
    if (!rep && !m && (ch < 0x80 || !ascii)) {
      i++;
      continue;
    }
    jb_put(c, b, s + run, i - run);
    if (rep) {
      put_s(c, b, rep);
      i++;
    } else if (m) {
      jb_put(c, b, e, (size_t)m);
      i++;
    } else {
      uint32_t cp = ju_dec(s, n, &i);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        m = snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        m = snprintf(e, sizeof e, "\\u%04x", cp);
      }
      jb_put(c, b, e, (size_t)m);
    }
    run = i;
  }
  jb_put(c, b, s + run, n - run);
  jb_putc(c, b, '"');
}

typedef struct jsopt {
  const char *indent, *item_sep, *key_sep;
  int has_indent, sort_keys, ascii;
  size_t pos;
} jsopt;

static void json_nl(jctx *c, jbuf *b, const jsopt *o, int level) {
  jb_putc(c, b, '\n');
  for (int i = 0; i < level; i++) put_s(c, b, o->indent);
}

static int key_less(const jv *a, const jv *b) {
  size_t m = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
  int r = m ? memcmp(a->u.s.p, b->u.s.p, m) : 0;
  return r < 0 || (r == 0 && a->u.s.n < b->u.s.n);
}

static void json_val(jctx *c, jbuf *b, const jv *v, const jsopt *o, int level) {
  char t[64];
  if (level > MAX_NEST) jrfail(c, o->pos, "tojson: a value nests more than %d levels", MAX_NEST);
  switch (v->t) {
  case JV_NONE: put_s(c, b, "null"); return;
  case JV_BOOL: put_s(c, b, v->u.i ? "true" : "false"); return;
  case JV_INT:
    snprintf(t, sizeof t, "%lld", (long long)v->u.i);
    put_s(c, b, t);
    return;
  case JV_FLOAT:
    if (isnan(v->u.f)) put_s(c, b, "NaN");
    else if (isinf(v->u.f)) put_s(c, b, v->u.f < 0 ? "-Infinity" : "Infinity");
    else {
      fmt_float(v->u.f, t, sizeof t);
      put_s(c, b, t);
    }
    return;
  case JV_STR: json_str(c, b, v->u.s.p, v->u.s.n, o->ascii); return;
  case JV_LIST:
    if (!v->u.l->n) {
      put_s(c, b, "[]");
      return;
    }
    jb_putc(c, b, '[');
    for (size_t i = 0; i < v->u.l->n; i++) {
      if (i) put_s(c, b, o->item_sep);
      if (o->has_indent) json_nl(c, b, o, level + 1);
      json_val(c, b, &v->u.l->v[i], o, level + 1);
    }
    if (o->has_indent) json_nl(c, b, o, level);
    jb_putc(c, b, ']');
    return;
  case JV_DICT: {
    const jdict *d = v->u.d;
    if (!d->n) {
      put_s(c, b, "{}");
      return;
    }
    jv *keys = ja_alloc(&c->ar, d->n * sizeof(jv));
    size_t *ord = ja_alloc(&c->ar, d->n * sizeof(size_t));
    for (size_t i = 0; i < d->n; i++) {
      const jv *k = &d->k[i];
      ord[i] = i;
      if (k->t == JV_STR) keys[i] = *k;
      else if (k->t == JV_NONE) keys[i] = jv_cstr("null");
      else if (k->t == JV_BOOL) keys[i] = jv_cstr(k->u.i ? "true" : "false");
      else if (k->t == JV_INT || k->t == JV_FLOAT) keys[i] = jv_tostr(c, k, o->pos);
      else
        jrfail(c, o->pos, "tojson: keys must be str, int, float, bool or None, not %s",
               jv_typename(k));
      if (o->sort_keys && k->t != JV_STR)
        jrfail(c, o->pos, "tojson: sort_keys needs string keys");
    }
    if (o->sort_keys) /* insertion sort: stable, dicts here are small */
      for (size_t i = 1; i < d->n; i++)
        for (size_t j = i; j > 0 && key_less(&keys[ord[j]], &keys[ord[j - 1]]); j--) {
          size_t x = ord[j];
          ord[j] = ord[j - 1];
          ord[j - 1] = x;
        }
    jb_putc(c, b, '{');
    for (size_t i = 0; i < d->n; i++) {
      if (i) put_s(c, b, o->item_sep);
      if (o->has_indent) json_nl(c, b, o, level + 1);
      json_str(c, b, keys[ord[i]].u.s.p, keys[ord[i]].u.s.n, o->ascii);
      put_s(c, b, o->key_sep);
      json_val(c, b, &d->v[ord[i]], o, level + 1);
    }
    if (o->has_indent) json_nl(c, b, o, level);
    jb_putc(c, b, '}');
    return;
  }
  default:
    jrfail(c, o->pos, "tojson: Object of type %s is not JSON serializable", jv_typename(v));
  }
}

void jv_json_to(jctx *c, jbuf *b, const jv *v, const char *indent, int has_indent,
                const char *item_sep, const char *key_sep, int sort_keys, int ensure_ascii,
                size_t pos) {
  jsopt o = {indent ? indent : "", item_sep, key_sep, has_indent, sort_keys, ensure_ascii, pos};
  json_val(c, b, v, &o, 0);
}

/* ---- JSON reader ------------------------------------------------------------------------ */
typedef struct jr {
  jctx *c;
  const char *s;
  size_t n, i;
  const char *what;
} jr;

J_NORETURN static void jr_fail(jr *r, const char *msg) {
  jrfail(r->c, SIZE_MAX, "%s: invalid JSON at byte %zu: %s", r->what, r->i, msg);
}

static void jr_ws(jr *r) {
  while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' ||
                         r->s[r->i] == '\r'))
    r->i++;
}

static uint32_t jr_hex4(jr *r) {
  if (r->n - r->i < 4) jr_fail(r, "truncated \\u escape");
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    char ch = r->s[r->i++];
    int h = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
            : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
    if (h < 0) jr_fail(r, "bad \\u escape");
    v = v * 16 + (uint32_t)h;
  }
  return v;
}

static jv jr_string(jr *r) {
  r->i++; /* '"' */
  size_t st = r->i;
  while (r->i < r->n && r->s[r->i] != '"' && r->s[r->i] != '\\') {
    if ((unsigned char)r->s[r->i] < 0x20) jr_fail(r, "control character in a string");
    r->i++;
  }
  if (r->i < r->n && r->s[r->i] == '"') { /* no escapes: a view into the text */
    jv v = jv_str(ja_strdup(&r->c->ar, r->s + st, r->i - st), r->i - st);
    r->i++;
    return v;
  }
  jbuf b = {0};
  jb_put(r->c, &b, r->s + st, r->i - st);
  for (;;) {
    if (r->i >= r->n) jr_fail(r, "unterminated string");
    char ch = r->s[r->i++];
    if (ch == '"') break;
    if ((unsigned char)ch < 0x20) jr_fail(r, "control character in a string");
    if (ch != '\\') {
      jb_putc(r->c, &b, ch);
      continue;
    }
    if (r->i >= r->n) jr_fail(r, "unterminated string");
    ch = r->s[r->i++];
    const char *m = strchr("\"\\/bfnrt", ch);
    if (m && ch) {
      static const char rep[] = "\"\\/\b\f\n\r\t";
      jb_putc(r->c, &b, rep[m - "\"\\/bfnrt"]);
    } else if (ch == 'u') {
      uint32_t cp = jr_hex4(r);
      if (cp >= 0xD800 && cp < 0xDC00) {
        if (r->n - r->i < 6 || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u')
          jr_fail(r, "lone surrogate in a \\u escape");
        r->i += 2;
        uint32_t lo = jr_hex4(r);
        if (lo < 0xDC00 || lo > 0xDFFF) jr_fail(r, "lone surrogate in a \\u escape");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        jr_fail(r, "lone surrogate in a \\u escape");
      }
      char e[4];
      jb_put(r->c, &b, e, ju_enc(cp, e));
    } else {
      jr_fail(r, "bad escape");
    }
  }
  return jb_take(r->c, &b);
}

static jv jr_value(jr *r, int depth) {
  if (depth > MAX_NEST) jr_fail(r, "nested too deeply");
  jr_ws(r);
  if (r->i >= r->n) jr_fail(r, "unexpected end");
  char ch = r->s[r->i];
  if (ch == '"') return jr_string(r);
  if (ch == '{') {
    r->i++;
    jdict *d = jd_new(r->c, 0);
    jr_ws(r);
    if (r->i < r->n && r->s[r->i] == '}') {
      r->i++;
    } else {
      for (;;) {
        jr_ws(r);
        if (r->i >= r->n || r->s[r->i] != '"') jr_fail(r, "expected a key");
        jv k = jr_string(r);
        jr_ws(r);
        if (r->i >= r->n || r->s[r->i] != ':') jr_fail(r, "expected ':'");
        r->i++;
        jd_set(r->c, d, k, jr_value(r, depth + 1));
        jr_ws(r);
        if (r->i < r->n && r->s[r->i] == ',') {
          r->i++;
          continue;
        }
        if (r->i < r->n && r->s[r->i] == '}') {
          r->i++;
          break;
        }
        jr_fail(r, "expected ',' or '}'");
      }
    }
    jv v = {.t = JV_DICT};
    v.u.d = d;
    return v;
  }
  if (ch == '[') {
    r->i++;
    jlist *l = jl_new(r->c, 0);
    jr_ws(r);
    if (r->i < r->n && r->s[r->i] == ']') {
      r->i++;
    } else {
      for (;;) {
        jl_push(r->c, l, jr_value(r, depth + 1));
        jr_ws(r);
        if (r->i < r->n && r->s[r->i] == ',') {
          r->i++;
          continue;
        }
        if (r->i < r->n && r->s[r->i] == ']') {
          r->i++;
          break;
        }
        jr_fail(r, "expected ',' or ']'");
      }
    }
    jv v = {.t = JV_LIST};
    v.u.l = l;
    return v;
  }
  static const char *const lits[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t m = strlen(lits[k]);
    if (r->n - r->i >= m && !memcmp(r->s + r->i, lits[k], m)) {
      r->i += m;
      return k == 2 ? jv_none() : jv_bool(k == 0);
    }
  }
  size_t st = r->i;
  int isf = 0;
  if (r->s[r->i] == '-') r->i++;
  if (r->i >= r->n || r->s[r->i] < '0' || r->s[r->i] > '9') jr_fail(r, "unexpected character");
  if (r->s[r->i] == '0') r->i++;
  else
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') r->i++;
  if (r->i < r->n && r->s[r->i] == '.') {
    isf = 1;
    r->i++;
    if (r->i >= r->n || r->s[r->i] < '0' || r->s[r->i] > '9') jr_fail(r, "bad number");
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') r->i++;
  }
  if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
    isf = 1;
    r->i++;
    if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-')) r->i++;
    if (r->i >= r->n || r->s[r->i] < '0' || r->s[r->i] > '9') jr_fail(r, "bad number");
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') r->i++;
  }
  char buf[400];
  size_t len = r->i - st;
  if (len >= sizeof buf) jr_fail(r, "number too long");
  memcpy(buf, r->s + st, len);
  buf[len] = 0;
  if (isf) return jv_float(strtod(buf, NULL));
  if (len > 18 + (buf[0] == '-')) jr_fail(r, "integer too large");
  return jv_int(strtoll(buf, NULL, 10));
}

jv jv_from_json(jctx *c, const char *s, size_t n, const char *what) {
  jr r = {c, s, n, 0, what};
  jv v = jr_value(&r, 0);
  jr_ws(&r);
  if (r.i != n) jr_fail(&r, "trailing characters");
  return v;
}

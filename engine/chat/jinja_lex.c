/* The Jinja lexer: arenas and errors, newline normalization, and the split of a template into
 * text and tags with jinja2's whitespace control (trim_blocks, lstrip_blocks, "-" and "+"
 * modifiers), comments and raw blocks, then the tokens inside each tag. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "chat/jinja_internal.h"

/* ---- arena ---------------------------------------------------------------------------------- */
struct jblk {
  jblk *next;
  size_t size, used;
  _Alignas(16) unsigned char data[];
};

void *ja_alloc(jarena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!n) n = 16;
  if (a->limit && (n > a->limit || a->used > a->limit - n))
    jfail(a->e, SIZE_MAX, "the template used more than %zu MiB of memory", a->limit >> 20);
  jblk *b = a->head;
  if (!b || b->size - b->used < n) {
    size_t sz = n > (60u << 10) ? n : (64u << 10) - sizeof(jblk);
    b = malloc(sizeof(jblk) + sz);
    if (!b) jfail(a->e, SIZE_MAX, "out of memory");
    b->size = sz;
    b->used = 0;
    if (a->head && n > (60u << 10)) { /* a big block goes behind the current one */
      b->next = a->head->next;
      a->head->next = b;
    } else {
      b->next = a->head;
      a->head = b;
    }
  }
  void *p = b->data + b->used;
  b->used += n;
  a->used += n;
  memset(p, 0, n);
  return p;
}

void ja_free(jarena *a) {
  for (jblk *b = a->head, *nx; b; b = nx) {
    nx = b->next;
    free(b);
  }
  a->head = NULL;
  a->used = 0;
}

char *ja_strdup(jarena *a, const char *s, size_t n) {
  char *p = ja_alloc(a, n + 1);
  if (n) memcpy(p, s, n);
  p[n] = 0;
  return p;
}

void jlinecol(const char *src, size_t len, size_t pos, unsigned *line, unsigned *col) {
  unsigned l = 1, c = 1;
  for (size_t i = 0; i < pos && i < len; i++) {
    if (src[i] == '\n') {
      l++;
      c = 1;
    } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
      c++;
    }
  }
  *line = l;
  *col = c;
}

void jfail(jerr *e, size_t pos, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (e->msg && e->msglen) {
    if (pos != SIZE_MAX && e->src) {
      unsigned l, c;
      jlinecol(e->src, e->srclen, pos, &l, &c);
      snprintf(e->msg, e->msglen, "line %u:%u: %s", l, c, msg);
    } else {
      snprintf(e->msg, e->msglen, "%s", msg);
    }
  }
  longjmp(e->jb, 1);
}

/* ---- UTF-8 and Python's whitespace ---------------------------------------------------------- */
uint32_t ju_dec(const char *s, size_t n, size_t *i) {
  const unsigned char *u = (const unsigned char *)s;
  size_t k = *i;
  uint32_t c = u[k];
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (len == 1 || k + (size_t)len > n) {
    *i = k + 1;
    return c;
  }
  uint32_t cp = c & (0x7Fu >> len);
  for (int j = 1; j < len; j++) {
    if ((u[k + j] & 0xC0) != 0x80) {
      *i = k + 1;
      return c;
    }
    cp = (cp << 6) | (u[k + j] & 0x3F);
  }
  *i = k + (size_t)len;
  return cp;
}

size_t ju_enc(uint32_t cp, char *o) {
  if (cp > 0x10FFFF) cp = 0xFFFD; /* utf8proc encodes valid code points only */
  return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)o);
}

size_t ju_len(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
  return k;
}

size_t ju_off(const char *s, size_t n, size_t cp) {
  size_t k = 0, i = 0;
  for (; i < n; i++) {
    if (((unsigned char)s[i] & 0xC0) != 0x80) {
      if (k == cp) return i;
      k++;
    }
  }
  return n;
}

int ju_isspace(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Length of s[0..n) without its trailing whitespace. */
static size_t rstrip_len(const char *s, size_t n) {
  while (n > 0) {
    size_t st = n - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80 && n - st < 4) st--;
    size_t i = st;
    if (!ju_isspace(ju_dec(s, n, &i)) || i != n) break;
    n = st;
  }
  return n;
}

/* The end of the whitespace starting at s[i]. */
static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n) {
    size_t j = i;
    if (!ju_isspace(ju_dec(s, n, &j))) break;
    i = j;
  }
  return i;
}

static int all_ws(const char *s, size_t n) { return n > 0 && skip_ws(s, n, 0) == n; }

/* ---- newlines ------------------------------------------------------------------------------- */
char *jlex_normalize(jarena *a, const char *text, size_t len, size_t *outlen) {
  char *o = ja_alloc(a, len + 1);
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '\r') {
      o[k++] = '\n';
      if (i + 1 < len && text[i + 1] == '\n') i++;
    } else {
      o[k++] = text[i];
    }
  }
  if (k && o[k - 1] == '\n') k--; /* keep_trailing_newline=False */
  o[k] = 0;
  *outlen = k;
  return o;
}

/* ---- tokens --------------------------------------------------------------------------------- */
typedef struct lx {
  jarena *a;
  jerr *e;
  const char *s;
  size_t n;
  jtok *t;
  size_t nt, cap;
} lx;

static jtok *push(lx *L, int kind, size_t pos) {
  if (L->nt == L->cap) {
    size_t cap = L->cap ? 2 * L->cap : 256;
    jtok *t = ja_alloc(L->a, cap * sizeof *t);
    if (L->nt) memcpy(t, L->t, L->nt * sizeof *t);
    L->t = t;
    L->cap = cap;
  }
  jtok *t = &L->t[L->nt++];
  memset(t, 0, sizeof *t);
  t->kind = (uint8_t)kind;
  t->pos = (uint32_t)pos;
  return t;
}

static void data(lx *L, size_t pos, size_t len) {
  if (!len) return;
  jtok *t = push(L, T_DATA, pos);
  t->s = L->s + pos;
  t->n = len;
}

static int hexv(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string literal s[i] = quote ... closing quote; decodes Python's escapes. Returns the end. */
static size_t lex_string(lx *L, size_t i, jtok *t) {
  char q = L->s[i];
  size_t j = i + 1;
  while (j < L->n && L->s[j] != q) j += L->s[j] == '\\' ? 2 : 1;
  if (j >= L->n) jfail(L->e, i, "unterminated string literal");
  char *o = ja_alloc(L->a, j - i + 1);
  size_t k = 0;
  for (size_t p = i + 1; p < j; p++) {
    char c = L->s[p];
    if (c != '\\') {
      o[k++] = c;
      continue;
    }
    char d = L->s[++p];
    uint32_t cp = 0;
    int nd = 0;
    switch (d) {
    case '\n': break;
    case '\\': o[k++] = '\\'; break;
    case '\'': o[k++] = '\''; break;
    case '"': o[k++] = '"'; break;
    case 'a': o[k++] = 7; break;
    case 'b': o[k++] = 8; break;
    case 'f': o[k++] = 12; break;
    case 'n': o[k++] = '\n'; break;
    case 'r': o[k++] = '\r'; break;
    case 't': o[k++] = '\t'; break;
    case 'v': o[k++] = 11; break;
    case 'x': nd = 2; break;
    case 'u': nd = 4; break;
    case 'U': nd = 8; break;
    case 'N': jfail(L->e, p - 1, "\\N{...} escapes are not supported");
    default:
      if (d >= '0' && d <= '7') {
        cp = (uint32_t)(d - '0');
        for (int m = 0; m < 2 && p + 1 < j && L->s[p + 1] >= '0' && L->s[p + 1] <= '7'; m++)
          cp = cp * 8 + (uint32_t)(L->s[++p] - '0');
        k += ju_enc(cp, o + k);
      } else {
        o[k++] = '\\';
        o[k++] = d;
      }
    }
    if (nd) {
      for (int m = 0; m < nd; m++) {
        int h = p + 1 < j ? hexv(L->s[p + 1]) : -1;
        if (h < 0) jfail(L->e, p - 1, "truncated \\%c escape in a string literal", d);
        cp = cp * 16 + (uint32_t)h;
        p++;
      }
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        jfail(L->e, p, "escape \\%c gives an invalid code point U+%X", d, cp);
      k += ju_enc(cp, o + k);
    }
  }
  o[k] = 0;
  t->s = o;
  t->n = k;
  return j + 1;
}

static int isdig(char c) { return c >= '0' && c <= '9'; }
static int isname0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* digits with '_' separators: returns the end, copies the digits to buf */
static size_t digits(const char *s, size_t n, size_t i, char *buf, size_t *bk, size_t bmax) {
  while (i < n && (isdig(s[i]) || (s[i] == '_' && i + 1 < n && isdig(s[i + 1]) && i > 0 &&
                                    isdig(s[i - 1])))) {
    if (s[i] != '_' && *bk + 1 < bmax) buf[(*bk)++] = s[i];
    i++;
  }
  return i;
}

static size_t lex_number(lx *L, size_t i) {
  char buf[128];
  size_t bk = 0, j = digits(L->s, L->n, i, buf, &bk, sizeof buf);
  int isf = 0;
  int after_dot = i > 0 && L->s[i - 1] == '.';
  /* digits() stops storing one byte short of the end; the separators below must too */
  if (!after_dot && j + 1 < L->n && L->s[j] == '.' && isdig(L->s[j + 1])) {
    if (bk + 1 < sizeof buf) buf[bk++] = '.';
    j = digits(L->s, L->n, j + 1, buf, &bk, sizeof buf);
    isf = 1;
  }
  if (!after_dot && j < L->n && (L->s[j] == 'e' || L->s[j] == 'E')) {
    size_t k = j + 1;
    if (k < L->n && (L->s[k] == '+' || L->s[k] == '-')) k++;
    if (k < L->n && isdig(L->s[k])) {
      if (bk + 1 < sizeof buf) buf[bk++] = 'e';
      if (L->s[j + 1] == '-' && bk + 1 < sizeof buf) buf[bk++] = '-';
      j = digits(L->s, L->n, k, buf, &bk, sizeof buf);
      isf = 1;
    }
  }
  /* a full buffer may have dropped digits: refuse rather than read a different number */
  if (bk + 1 >= sizeof buf)
    jfail(L->e, i, "number literal is too long (at most %zu characters)", sizeof buf - 2);
  buf[bk] = 0;
  jtok *t = push(L, isf ? T_FLOAT : T_INT, i);
  if (isf) {
    t->f = strtod(buf, NULL);
  } else {
    if (bk > 18) jfail(L->e, i, "integer literal %s is too large", buf);
    t->i = strtoll(buf, NULL, 10);
  }
  return j;
}

static const char *const ops2[] = {"//", "**", "==", "!=", ">=", "<="};

/* Tokens of one tag from s[i]; end: "%}" for blocks, "}}" for variables. Returns the index
 * just past the end marker (after trim_blocks' newline or "-"'s whitespace). */
static size_t lex_tag(lx *L, size_t i, int block, size_t start) {
  int depth = 0;
  char e0 = block ? '%' : '}';
  for (;;) {
    i = skip_ws(L->s, L->n, i);
    if (i >= L->n)
      jfail(L->e, start, "unexpected end of template: the tag opened here has no '%s'",
            block ? "%}" : "}}");
    const char *s = L->s + i;
    size_t left = L->n - i;
    if (depth == 0) {
      size_t m = 0;
      int sign = 0;
      if (left >= 3 && (s[0] == '-' || (block && s[0] == '+')) && s[1] == e0 && s[2] == '}') {
        m = 3;
        sign = s[0];
      } else if (left >= 2 && s[0] == e0 && s[1] == '}') {
        m = 2;
      }
      if (m) {
        push(L, block ? T_BLOCK_END : T_VAR_END, i);
        i += m;
        if (sign == '-') i = skip_ws(L->s, L->n, i);
        else if (block && !sign && i < L->n && L->s[i] == '\n') i++;
        return i;
      }
    }
    char c = s[0];
    if (c == '\'' || c == '"') {
      jtok *t = push(L, T_STRING, i);
      i = lex_string(L, i, t);
    } else if (isdig(c)) {
      i = lex_number(L, i);
    } else if (isname0(c)) {
      size_t j = i;
      while (j < L->n && (isname0(L->s[j]) || isdig(L->s[j]))) j++;
      jtok *t = push(L, T_NAME, i);
      t->s = s;
      t->n = j - i;
      i = j;
    } else {
      size_t m = 0;
      for (size_t k = 0; k < sizeof ops2 / sizeof *ops2 && !m; k++)
        if (left >= 2 && s[0] == ops2[k][0] && s[1] == ops2[k][1]) m = 2;
      if (!m && strchr("+-/*%~[](){}><=.:|,;!", c) && c) m = 1;
      if (!m || (m == 1 && c == '!'))
        jfail(L->e, i, "unexpected character '%c' in a %s", c, block ? "tag" : "{{ }} expression");
      if (c == '(' || c == '[' || c == '{') depth++;
      if ((c == ')' || c == ']' || c == '}') && m == 1) {
        if (!depth) jfail(L->e, i, "unexpected '%c'", c);
        depth--;
      }
      jtok *t = push(L, T_OP, i);
      t->s = s;
      t->n = m;
      i += m;
    }
  }
}

/* "{% raw %}" at s[i] ("{%" already seen, sign at i+2): the end of its begin tag, or 0. */
static size_t raw_begin(lx *L, size_t i) {
  size_t j = i + 2;
  if (j < L->n && (L->s[j] == '-' || L->s[j] == '+')) j++;
  j = skip_ws(L->s, L->n, j);
  if (L->n - j < 3 || memcmp(L->s + j, "raw", 3)) return 0;
  j = skip_ws(L->s, L->n, j + 3);
  if (L->n - j >= 3 && L->s[j] == '-' && L->s[j + 1] == '%' && L->s[j + 2] == '}')
    return skip_ws(L->s, L->n, j + 3);
  if (L->n - j >= 2 && L->s[j] == '%' && L->s[j + 1] == '}') return j + 2;
  return 0;
}

/* Applies the begin tag's whitespace rules to the text s[p..q) before it; returns its new end. */
static size_t strip_before(lx *L, size_t p, size_t q, int sign, int is_var, int line_starting) {
  if (sign == '-') return p + rstrip_len(L->s + p, q - p);
  if (sign == '+' || is_var) return q; /* lstrip_blocks is on; it skips {{ and "+" */
  size_t l = q;
  while (l > p && L->s[l - 1] != '\n') l--;
  if ((l > p || line_starting) && all_ws(L->s + l, q - l)) return l;
  return q;
}

jtok *jlex(jarena *a, jerr *e, const char *src, size_t len, size_t *n) {
  lx L = {a, e, src, len, NULL, 0, 0};
  size_t pos = 0;
  int line_starting = 1;
  while (pos < len) {
    size_t i = pos;
    while (i + 1 < len && !(src[i] == '{' && (src[i + 1] == '{' || src[i + 1] == '%' ||
                                               src[i + 1] == '#')))
      i++;
    if (i + 1 >= len) {
      data(&L, pos, len - pos);
      break;
    }
    char kind = src[i + 1];
    int sign = i + 2 < len && (src[i + 2] == '-' || src[i + 2] == '+') ? src[i + 2] : 0;
    size_t te = strip_before(&L, pos, i, sign, kind == '{', line_starting);
    data(&L, pos, te - pos);
    size_t body = i + 2 + (sign ? 1 : 0), end;
    if (kind == '#') {
      size_t q = body;
      while (q + 1 < len && !(src[q] == '#' && src[q + 1] == '}')) q++;
      if (q + 1 >= len) jfail(e, i, "missing end of comment tag '#}'");
      end = q + 2;
      if (q > body && src[q - 1] == '-') end = skip_ws(src, len, end);
      else if (!(q > body && src[q - 1] == '+') && end < len && src[end] == '\n') end++;
    } else if (kind == '%' && (end = raw_begin(&L, i)) != 0) {
      size_t q = end, rb = 0, re = 0;
      int rsign = 0;
      for (; q + 1 < len; q++) {
        if (src[q] != '{' || src[q + 1] != '%') continue;
        size_t j = q + 2;
        int sg = j < len && (src[j] == '-' || src[j] == '+') ? src[j] : 0;
        if (sg) j++;
        j = skip_ws(src, len, j);
        if (len - j < 6 || memcmp(src + j, "endraw", 6)) continue;
        j = skip_ws(src, len, j + 6);
        if (len - j >= 3 && (src[j] == '-' || src[j] == '+') && src[j + 1] == '%' &&
            src[j + 2] == '}') {
          re = src[j] == '-' ? skip_ws(src, len, j + 3) : j + 3;
        } else if (len - j >= 2 && src[j] == '%' && src[j + 1] == '}') {
          re = j + 2 < len && src[j + 2] == '\n' ? j + 3 : j + 2;
        } else {
          continue;
        }
        rb = q;
        rsign = sg;
        break;
      }
      if (!re) jfail(e, i, "missing {%% endraw %%} for this raw block");
      int ls = end > 0 && src[end - 1] == '\n';
      size_t ce = strip_before(&L, end, rb, rsign, 0, ls);
      data(&L, end, ce - end);
      end = re;
    } else {
      push(&L, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, i);
      end = lex_tag(&L, body, kind == '%', i);
    }
    line_starting = end > 0 && src[end - 1] == '\n';
    pos = end;
  }
  push(&L, T_EOF, len);
  *n = L.nt;
  return L.t;
}

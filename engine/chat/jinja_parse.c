/* The Jinja parser: tokens to a syntax tree, following jinja2's grammar and precedence
 * (conditional expression < or < and < not < comparison < + - < ~ < * / // % < ** < unary
 * minus < postfix . [] () < filters and tests). Filter and test names are checked here, as
 * jinja2 checks them when it compiles, so an unknown one fails before anything renders. */
#include <string.h>

#include "chat/jinja_internal.h"

#define MAX_NEST 200

typedef struct ps {
  jarena *a;
  jerr *e;
  const jtok *t;
  size_t n, i;
  int depth;     /* expression / statement nesting */
  int loops;     /* enclosing for loops (break/continue) */
} ps;

static const jtok *cur(ps *P) { return &P->t[P->i]; }
static const jtok *peek(ps *P, size_t k) {
  return P->i + k < P->n ? &P->t[P->i + k] : &P->t[P->n - 1];
}
static const jtok *next(ps *P) {
  const jtok *t = &P->t[P->i];
  if (P->i + 1 < P->n) P->i++;
  return t;
}

static int is_op(const jtok *t, const char *op) {
  return t->kind == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}
static int is_name(const jtok *t, const char *nm) {
  return t->kind == T_NAME && t->n == strlen(nm) && !memcmp(t->s, nm, t->n);
}

static const char *describe(const jtok *t, char *buf, size_t n) {
  switch (t->kind) {
  case T_EOF: return "end of template";
  case T_DATA: return "template text";
  case T_BLOCK_BEGIN: return "'{%'";
  case T_BLOCK_END: return "end of tag '%}'";
  case T_VAR_BEGIN: return "'{{'";
  case T_VAR_END: return "end of expression '}}'";
  case T_STRING: return "a string";
  case T_INT: return "an integer";
  case T_FLOAT: return "a number";
  default: snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s); return buf;
  }
}

J_NORETURN static void unexpected(ps *P, const char *what) {
  char b[64];
  jfail(P->e, cur(P)->pos, "expected %s, got %s", what, describe(cur(P), b, sizeof b));
}

static void expect_op(ps *P, const char *op) {
  if (!is_op(cur(P), op)) {
    char w[16];
    snprintf(w, sizeof w, "'%s'", op);
    unexpected(P, w);
  }
  next(P);
}

static jnode *nn(ps *P, int kind, size_t pos) {
  jnode *n = ja_alloc(P->a, sizeof *n);
  n->kind = (uint8_t)kind;
  n->pos = (uint32_t)pos;
  return n;
}

/* growable node list */
typedef struct nl {
  jnode **v;
  const char **names;
  uint32_t n, cap;
} nl;
static void nl_push(ps *P, nl *l, jnode *x, const char *name) {
  if (l->n == l->cap) {
    uint32_t cap = l->cap ? 2 * l->cap : 4;
    jnode **v = ja_alloc(P->a, cap * sizeof *v);
    const char **nm = ja_alloc(P->a, cap * sizeof *nm);
    if (l->n) {
      memcpy(v, l->v, l->n * sizeof *v);
      memcpy(nm, l->names, l->n * sizeof *nm);
    }
    l->v = v;
    l->names = nm;
    l->cap = cap;
  }
  l->names[l->n] = name;
  l->v[l->n++] = x;
}

static const char *tokstr(ps *P, const jtok *t) { return ja_strdup(P->a, t->s, t->n); }

static jnode *parse_expr(ps *P, int condexpr);
static jnode *parse_tuple(ps *P, int condexpr, int explicit_parens, const char *end_name);
static jnode *parse_unary(ps *P, int with_filter);

static void enter(ps *P) {
  if (++P->depth > MAX_NEST)
    jfail(P->e, cur(P)->pos, "the template nests more than %d levels deep", MAX_NEST);
}

/* ( args ) of a call, filter or test */
static void parse_args(ps *P, jnode *n) {
  nl l = {0};
  expect_op(P, "(");
  int kw = 0;
  while (!is_op(cur(P), ")")) {
    if (l.n) {
      expect_op(P, ",");
      if (is_op(cur(P), ")")) break;
    }
    if (is_op(cur(P), "*") || is_op(cur(P), "**"))
      jfail(P->e, cur(P)->pos, "*args and **kwargs in calls are not supported");
    if (cur(P)->kind == T_NAME && is_op(peek(P, 1), "=")) {
      const char *name = tokstr(P, next(P));
      next(P);
      nl_push(P, &l, parse_expr(P, 1), name);
      kw = 1;
    } else {
      if (kw) jfail(P->e, cur(P)->pos, "a positional argument follows a keyword argument");
      nl_push(P, &l, parse_expr(P, 1), NULL);
    }
  }
  next(P);
  n->args = l.v;
  n->names = l.names;
  n->nargs = l.n;
}

static jnode *parse_primary(ps *P) {
  const jtok *t = cur(P);
  jnode *n;
  char b[64];
  if (t->kind == T_NAME) {
    next(P);
    n = nn(P, N_CONST, t->pos);
    if (is_name(t, "true") || is_name(t, "True")) n->val = jv_bool(1);
    else if (is_name(t, "false") || is_name(t, "False")) n->val = jv_bool(0);
    else if (is_name(t, "none") || is_name(t, "None")) n->val = jv_none();
    else {
      n->kind = N_NAME;
      n->s = tokstr(P, t);
      n->slen = t->n;
    }
    return n;
  }
  if (t->kind == T_STRING) {
    size_t len = 0, k = P->i;
    while (P->t[k].kind == T_STRING) len += P->t[k++].n;
    char *s = ja_alloc(P->a, len + 1);
    len = 0;
    while (cur(P)->kind == T_STRING) {
      memcpy(s + len, cur(P)->s, cur(P)->n);
      len += cur(P)->n;
      next(P);
    }
    n = nn(P, N_CONST, t->pos);
    n->val = jv_str(s, len);
    return n;
  }
  if (t->kind == T_INT || t->kind == T_FLOAT) {
    next(P);
    n = nn(P, N_CONST, t->pos);
    n->val = t->kind == T_INT ? jv_int(t->i) : jv_float(t->f);
    return n;
  }
  if (is_op(t, "(")) {
    next(P);
    n = parse_tuple(P, 1, 1, NULL);
    expect_op(P, ")");
    return n;
  }
  if (is_op(t, "[")) {
    next(P);
    nl l = {0};
    while (!is_op(cur(P), "]")) {
      if (l.n) {
        expect_op(P, ",");
        if (is_op(cur(P), "]")) break;
      }
      nl_push(P, &l, parse_expr(P, 1), NULL);
    }
    next(P);
    n = nn(P, N_LIST, t->pos);
    n->args = l.v;
    n->nargs = l.n;
    return n;
  }
  if (is_op(t, "{")) {
    next(P);
    nl l = {0};
    while (!is_op(cur(P), "}")) {
      if (l.n) {
        expect_op(P, ",");
        if (is_op(cur(P), "}")) break;
      }
      nl_push(P, &l, parse_expr(P, 1), NULL);
      expect_op(P, ":");
      nl_push(P, &l, parse_expr(P, 1), NULL);
    }
    next(P);
    n = nn(P, N_DICT, t->pos);
    n->args = l.v;
    n->nargs = l.n;
    return n;
  }
  jfail(P->e, t->pos, "unexpected %s in an expression", describe(t, b, sizeof b));
}

/* [a], [a:b:c] */
static jnode *parse_subscript(ps *P, jnode *obj, size_t pos) {
  jnode *idx[3] = {0};
  int colons = 0;
  if (!is_op(cur(P), ":")) idx[0] = parse_expr(P, 1);
  while (is_op(cur(P), ":") && colons < 2) {
    next(P);
    colons++;
    if (!is_op(cur(P), ":") && !is_op(cur(P), "]") && !is_op(cur(P), ","))
      idx[colons] = parse_expr(P, 1);
  }
  if (is_op(cur(P), ",")) jfail(P->e, cur(P)->pos, "tuple subscripts are not supported");
  expect_op(P, "]");
  jnode *n;
  if (!colons) {
    n = nn(P, N_GETITEM, pos);
    n->b = idx[0];
  } else {
    n = nn(P, N_SLICE, pos);
    n->b = idx[0];
    n->c = idx[1];
    n->d = idx[2];
  }
  n->a = obj;
  return n;
}

static jnode *parse_postfix(ps *P, jnode *n) {
  for (;;) {
    const jtok *t = cur(P);
    if (is_op(t, ".")) {
      next(P);
      const jtok *a = cur(P);
      if (a->kind == T_NAME) {
        next(P);
        jnode *g = nn(P, N_GETATTR, t->pos);
        g->a = n;
        g->s = tokstr(P, a);
        g->slen = a->n;
        n = g;
      } else if (a->kind == T_INT) {
        next(P);
        jnode *g = nn(P, N_GETITEM, t->pos), *k = nn(P, N_CONST, a->pos);
        k->val = jv_int(a->i);
        g->a = n;
        g->b = k;
        n = g;
      } else {
        unexpected(P, "an attribute name after '.'");
      }
    } else if (is_op(t, "[")) {
      next(P);
      n = parse_subscript(P, n, t->pos);
    } else if (is_op(t, "(")) {
      jnode *c = nn(P, N_CALL, t->pos);
      c->a = n;
      parse_args(P, c);
      n = c;
    } else {
      return n;
    }
  }
}

static jnode *parse_filter_expr(ps *P, jnode *n) {
  for (;;) {
    const jtok *t = cur(P);
    if (is_op(t, "|")) {
      next(P);
      const jtok *nm = cur(P);
      if (nm->kind != T_NAME) unexpected(P, "a filter name after '|'");
      next(P);
      int id = jfilter_id(nm->s, nm->n);
      if (id < 0) jfail(P->e, nm->pos, "unknown filter '%.*s'", (int)nm->n, nm->s);
      jnode *f = nn(P, N_FILTER, nm->pos);
      f->a = n;
      f->fid = (uint16_t)id;
      f->s = tokstr(P, nm);
      f->slen = nm->n;
      if (is_op(cur(P), "(")) parse_args(P, f);
      n = f;
    } else if (is_name(t, "is")) {
      next(P);
      int neg = 0;
      if (is_name(cur(P), "not")) {
        next(P);
        neg = 1;
      }
      const jtok *nm = cur(P);
      const char *tn = nm->s;
      size_t tl = nm->n;
      if (nm->kind == T_NAME) {
      } else if (nm->kind == T_OP && (is_op(nm, "==") || is_op(nm, "!=") || is_op(nm, "<") ||
                                      is_op(nm, "<=") || is_op(nm, ">") || is_op(nm, ">="))) {
      } else {
        unexpected(P, "a test name after 'is'");
      }
      next(P);
      int id = jtest_id(tn, tl);
      if (id < 0) jfail(P->e, nm->pos, "unknown test '%.*s'", (int)tl, tn);
      jnode *x = nn(P, N_TEST, nm->pos);
      x->a = n;
      x->fid = (uint16_t)id;
      x->op = (uint8_t)neg;
      x->s = ja_strdup(P->a, tn, tl);
      x->slen = tl;
      const jtok *c = cur(P);
      if (is_op(c, "(")) {
        parse_args(P, x);
      } else if ((c->kind == T_NAME || c->kind == T_STRING || c->kind == T_INT ||
                  c->kind == T_FLOAT || is_op(c, "[") || is_op(c, "{")) &&
                 !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and") &&
                 !is_name(c, "is") && !is_name(c, "if") && !is_name(c, "in") &&
                 !is_name(c, "not")) {
        jnode *arg = parse_postfix(P, parse_primary(P));
        x->args = ja_alloc(P->a, sizeof(jnode *));
        x->names = ja_alloc(P->a, sizeof(char *));
        x->args[0] = arg;
        x->nargs = 1;
      }
      n = x;
    } else if (is_op(t, "(")) {
      jnode *c = nn(P, N_CALL, t->pos);
      c->a = n;
      parse_args(P, c);
      n = c;
    } else {
      return n;
    }
  }
}

static jnode *parse_unary(ps *P, int with_filter) {
  enter(P);
  const jtok *t = cur(P);
  jnode *n;
  if (is_op(t, "-") || is_op(t, "+")) {
    next(P);
    n = nn(P, is_op(t, "-") ? N_NEG : N_POS, t->pos);
    n->a = parse_unary(P, 0);
  } else {
    n = parse_primary(P);
  }
  n = parse_postfix(P, n);
  if (with_filter) n = parse_filter_expr(P, n);
  P->depth--;
  return n;
}

static jnode *bin(ps *P, int op, jnode *a, jnode *b, size_t pos) {
  jnode *n = nn(P, N_BIN, pos);
  n->op = (uint8_t)op;
  n->a = a;
  n->b = b;
  return n;
}

static jnode *parse_pow(ps *P) {
  jnode *l = parse_unary(P, 1);
  while (is_op(cur(P), "**")) {
    size_t pos = next(P)->pos;
    l = bin(P, OP_POW, l, parse_unary(P, 1), pos);
  }
  return l;
}

static jnode *parse_math2(ps *P) {
  jnode *l = parse_pow(P);
  for (;;) {
    const jtok *t = cur(P);
    int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV
             : is_op(t, "%") ? OP_MOD : -1;
    if (op < 0) return l;
    next(P);
    l = bin(P, op, l, parse_pow(P), t->pos);
  }
}

static jnode *parse_concat(ps *P) {
  jnode *first = parse_math2(P);
  if (!is_op(cur(P), "~")) return first;
  nl l = {0};
  nl_push(P, &l, first, NULL);
  size_t pos = cur(P)->pos;
  while (is_op(cur(P), "~")) {
    next(P);
    nl_push(P, &l, parse_math2(P), NULL);
  }
  jnode *n = nn(P, N_CONCAT, pos);
  n->args = l.v;
  n->nargs = l.n;
  return n;
}

static jnode *parse_math1(ps *P) {
  jnode *l = parse_concat(P);
  for (;;) {
    const jtok *t = cur(P);
    int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
    if (op < 0) return l;
    next(P);
    l = bin(P, op, l, parse_concat(P), t->pos);
  }
}

static jnode *parse_compare(ps *P) {
  jnode *first = parse_math1(P);
  nl l = {0};
  uint8_t ops[64];
  size_t pos = cur(P)->pos;
  for (;;) {
    const jtok *t = cur(P);
    int op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT
             : is_op(t, "<=") ? OP_LE : is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE
             : is_name(t, "in") ? OP_IN : -1;
    if (op < 0 && is_name(t, "not") && is_name(peek(P, 1), "in")) {
      next(P);
      op = OP_NOTIN;
    }
    if (op < 0) break;
    if (l.n == 63) jfail(P->e, t->pos, "too many chained comparisons");
    next(P);
    if (!l.n) nl_push(P, &l, first, NULL);
    ops[l.n - 1] = (uint8_t)op;
    nl_push(P, &l, parse_math1(P), NULL);
  }
  if (!l.n) return first;
  jnode *n = nn(P, N_CMP, pos);
  n->args = l.v;
  n->nargs = l.n;
  n->ops = ja_alloc(P->a, l.n);
  memcpy(n->ops, ops, l.n - 1);
  return n;
}

static jnode *parse_not(ps *P) {
  if (is_name(cur(P), "not")) {
    size_t pos = next(P)->pos;
    enter(P);
    jnode *n = nn(P, N_NOT, pos);
    n->a = parse_not(P);
    P->depth--;
    return n;
  }
  return parse_compare(P);
}

static jnode *parse_and(ps *P) {
  jnode *l = parse_not(P);
  while (is_name(cur(P), "and")) {
    jnode *n = nn(P, N_AND, next(P)->pos);
    n->a = l;
    n->b = parse_not(P);
    l = n;
  }
  return l;
}

static jnode *parse_or(ps *P) {
  jnode *l = parse_and(P);
  while (is_name(cur(P), "or")) {
    jnode *n = nn(P, N_OR, next(P)->pos);
    n->a = l;
    n->b = parse_and(P);
    l = n;
  }
  return l;
}

static jnode *parse_expr(ps *P, int condexpr) {
  enter(P);
  jnode *e = parse_or(P);
  while (condexpr && is_name(cur(P), "if")) {
    jnode *n = nn(P, N_COND, next(P)->pos);
    n->b = e;
    n->a = parse_or(P);
    if (is_name(cur(P), "else")) {
      next(P);
      n->c = parse_expr(P, 1);
    }
    e = n;
  }
  P->depth--;
  return e;
}

static int tuple_end(ps *P, const char *end_name) {
  const jtok *t = cur(P);
  return t->kind == T_VAR_END || t->kind == T_BLOCK_END || t->kind == T_EOF || is_op(t, ")") ||
         (end_name && is_name(t, end_name));
}

static jnode *parse_tuple(ps *P, int condexpr, int explicit_parens, const char *end_name) {
  nl l = {0};
  size_t pos = cur(P)->pos;
  int is_tuple = 0;
  for (;;) {
    if (l.n) expect_op(P, ",");
    if (tuple_end(P, end_name)) break;
    nl_push(P, &l, parse_expr(P, condexpr), NULL);
    if (is_op(cur(P), ",")) is_tuple = 1;
    else break;
  }
  if (!is_tuple) {
    if (l.n) return l.v[0];
    if (!explicit_parens) unexpected(P, "an expression");
  }
  jnode *n = nn(P, N_TUPLE, pos);
  n->args = l.v;
  n->nargs = l.n;
  return n;
}

/* ---- statements ----------------------------------------------------------------------------- */
static void expect_end(ps *P) {
  if (cur(P)->kind != T_BLOCK_END) unexpected(P, "the end of the tag '%}'");
  next(P);
}

/* name[, name...] (for targets and set) */
static void parse_targets(ps *P, jnode *n, const char *stop) {
  nl l = {0};
  int paren = is_op(cur(P), "(");
  if (paren) next(P);
  for (;;) {
    const jtok *t = cur(P);
    if (t->kind != T_NAME) unexpected(P, "a variable name");
    next(P);
    nl_push(P, &l, NULL, tokstr(P, t));
    if (!is_op(cur(P), ",")) break;
    next(P);
    if ((stop && is_name(cur(P), stop)) || (paren && is_op(cur(P), ")"))) break;
  }
  if (paren) expect_op(P, ")");
  n->names = l.names;
  n->nargs = l.n;
}

static void parse_body(ps *P, jblock *b, const char *const *ends, const char *opener,
                       size_t opos);

static jnode *parse_statement(ps *P) {
  const jtok *kw = cur(P);
  char bf[64];
  if (kw->kind != T_NAME) jfail(P->e, kw->pos, "expected a tag name, got %s",
                                describe(kw, bf, sizeof bf));
  next(P);
  enter(P);
  jnode *n;
  if (is_name(kw, "for")) {
    n = nn(P, N_FOR, kw->pos);
    parse_targets(P, n, "in");
    if (!is_name(cur(P), "in")) unexpected(P, "'in'");
    next(P);
    n->a = parse_tuple(P, 0, 0, "recursive");
    if (is_name(cur(P), "if")) {
      next(P);
      n->b = parse_expr(P, 1);
    }
    if (is_name(cur(P), "recursive")) jfail(P->e, cur(P)->pos, "recursive loops are not supported");
    expect_end(P);
    static const char *const e1[] = {"endfor", "else", NULL}, *const e2[] = {"endfor", NULL};
    P->loops++;
    parse_body(P, &n->body, e1, "for", kw->pos);
    P->loops--;
    if (is_name(next(P), "else")) {
      expect_end(P);
      parse_body(P, &n->orelse, e2, "for", kw->pos);
      next(P);
    }
    expect_end(P);
  } else if (is_name(kw, "if")) {
    n = nn(P, N_IF, kw->pos);
    jnode *c = n;
    static const char *const e1[] = {"elif", "else", "endif", NULL}, *const e2[] = {"endif", NULL};
    for (;;) {
      c->a = parse_tuple(P, 0, 0, NULL);
      expect_end(P);
      parse_body(P, &c->body, e1, "if", kw->pos);
      const jtok *t = next(P);
      if (is_name(t, "elif")) {
        jnode *e = nn(P, N_IF, t->pos);
        c->orelse.v = ja_alloc(P->a, sizeof(jnode *));
        c->orelse.v[0] = e;
        c->orelse.n = 1;
        c = e;
        continue;
      }
      if (is_name(t, "else")) {
        expect_end(P);
        parse_body(P, &c->orelse, e2, "if", kw->pos);
        next(P);
      }
      break;
    }
    expect_end(P);
  } else if (is_name(kw, "set")) {
    n = nn(P, N_SET, kw->pos);
    if (cur(P)->kind == T_NAME && is_op(peek(P, 1), ".")) { /* ns.attr */
      n->s = tokstr(P, next(P));
      n->slen = strlen(n->s);
      next(P);
      if (cur(P)->kind != T_NAME) unexpected(P, "an attribute name");
      n->names = ja_alloc(P->a, sizeof(char *));
      n->names[0] = tokstr(P, next(P));
      n->nargs = 1;
    } else {
      parse_targets(P, n, NULL);
    }
    if (is_op(cur(P), "=")) {
      next(P);
      n->a = parse_tuple(P, 1, 0, NULL);
      expect_end(P);
    } else {
      if (n->s) jfail(P->e, kw->pos, "a block set cannot assign a namespace attribute");
      if (n->nargs != 1) jfail(P->e, kw->pos, "a block set assigns one name");
      if (is_op(cur(P), "|")) jfail(P->e, cur(P)->pos, "filters on a block set are not supported");
      expect_end(P);
      static const char *const e1[] = {"endset", NULL};
      n->kind = N_SETBLOCK;
      parse_body(P, &n->body, e1, "set", kw->pos);
      next(P);
      expect_end(P);
    }
  } else if (is_name(kw, "break") || is_name(kw, "continue")) {
    if (!P->loops) jfail(P->e, kw->pos, "'%.*s' outside a for loop", (int)kw->n, kw->s);
    n = nn(P, is_name(kw, "break") ? N_BREAK : N_CONTINUE, kw->pos);
    expect_end(P);
  } else if (is_name(kw, "macro")) {
    n = nn(P, N_MACRO, kw->pos);
    const jtok *nm = cur(P);
    if (nm->kind != T_NAME) unexpected(P, "a macro name");
    next(P);
    n->s = tokstr(P, nm);
    n->slen = nm->n;
    nl l = {0};
    expect_op(P, "(");
    while (!is_op(cur(P), ")")) {
      if (l.n) expect_op(P, ",");
      if (cur(P)->kind != T_NAME) unexpected(P, "a parameter name");
      const char *pn = tokstr(P, next(P));
      jnode *def = NULL;
      if (is_op(cur(P), "=")) {
        next(P);
        def = parse_expr(P, 1);
      }
      nl_push(P, &l, def, pn);
    }
    next(P);
    n->args = l.v;
    n->names = l.names;
    n->nargs = l.n;
    expect_end(P);
    static const char *const e1[] = {"endmacro", NULL};
    int loops = P->loops;
    P->loops = 0;
    parse_body(P, &n->body, e1, "macro", kw->pos);
    P->loops = loops;
    next(P);
    expect_end(P);
  } else if (is_name(kw, "generation") || is_name(kw, "with")) {
    /* {% generation %} (transformers' assistant-mask marker) renders its body as is;
     * {% with a = 1 %} opens a scope */
    int with = is_name(kw, "with");
    n = nn(P, N_BLOCK, kw->pos);
    n->op = (uint8_t)with;
    nl l = {0};
    while (with && cur(P)->kind == T_NAME) {
      const char *vn = tokstr(P, next(P));
      expect_op(P, "=");
      nl_push(P, &l, parse_expr(P, 1), vn);
      if (!is_op(cur(P), ",")) break;
      next(P);
    }
    n->args = l.v;
    n->names = l.names;
    n->nargs = l.n;
    expect_end(P);
    static const char *const e1[] = {"endgeneration", NULL}, *const e2[] = {"endwith", NULL};
    parse_body(P, &n->body, with ? e2 : e1, with ? "with" : "generation", kw->pos);
    next(P);
    expect_end(P);
  } else if (is_name(kw, "print")) {
    n = nn(P, N_OUT, kw->pos);
    n->a = parse_tuple(P, 1, 0, NULL);
    expect_end(P);
  } else {
    static const char *const unsup[] = {"include", "import", "from", "extends", "block",
                                        "call", "filter", "autoescape", "do", "trans", NULL};
    for (int k = 0; unsup[k]; k++)
      if (is_name(kw, unsup[k]))
        jfail(P->e, kw->pos, "the '%s' tag is not supported", unsup[k]);
    jfail(P->e, kw->pos, "unknown tag '%.*s'", (int)kw->n, kw->s);
  }
  P->depth--;
  return n;
}

/* Statements until a {% name %} with name in ends (left unconsumed: cur is that name). */
static void parse_body(ps *P, jblock *b, const char *const *ends, const char *opener,
                       size_t opos) {
  nl l = {0};
  for (;;) {
    const jtok *t = cur(P);
    if (t->kind == T_EOF) {
      if (ends) {
        unsigned ln, col;
        jlinecol(P->e->src, P->e->srclen, opos, &ln, &col);
        jfail(P->e, t->pos, "unexpected end of template: the '%s' opened at line %u:%u has "
              "no {%% %s %%}", opener, ln, col, ends[0]);
      }
      break;
    }
    if (t->kind == T_DATA) {
      jnode *n = nn(P, N_TEXT, t->pos);
      n->s = t->s;
      n->slen = t->n;
      nl_push(P, &l, n, NULL);
      next(P);
    } else if (t->kind == T_VAR_BEGIN) {
      next(P);
      jnode *n = nn(P, N_OUT, t->pos);
      n->a = parse_tuple(P, 1, 0, NULL);
      if (cur(P)->kind != T_VAR_END) unexpected(P, "the end of the expression '}}'");
      next(P);
      nl_push(P, &l, n, NULL);
    } else if (t->kind == T_BLOCK_BEGIN) {
      next(P);
      const jtok *kw = cur(P);
      if (ends && kw->kind == T_NAME)
        for (int k = 0; ends[k]; k++)
          if (is_name(kw, ends[k])) {
            b->v = l.v;
            b->n = l.n;
            return;
          }
      if (kw->kind == T_NAME) {
        static const char *const closers[] = {"endfor", "endif", "elif", "else", "endset",
                                              "endmacro", "endwith", "endgeneration", NULL};
        for (int k = 0; closers[k]; k++)
          if (is_name(kw, closers[k]))
            jfail(P->e, kw->pos, "unexpected {%% %s %%}%s%s", closers[k],
                  opener ? " inside this " : "", opener ? opener : "");
      }
      nl_push(P, &l, parse_statement(P), NULL);
    } else {
      char bf[64];
      jfail(P->e, t->pos, "unexpected %s", describe(t, bf, sizeof bf));
    }
  }
  b->v = l.v;
  b->n = l.n;
}

void jparse(jarena *a, jerr *e, const jtok *toks, size_t n, jblock *root) {
  ps P = {a, e, toks, n, 0, 0, 0};
  parse_body(&P, root, NULL, NULL, 0);
}

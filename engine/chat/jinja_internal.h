/* jinja_internal: the types the Jinja interpreter's files share (lexer, parser, values,
 * evaluator, built-ins). Not a public header: engine/chat/jinja.h is the interface.
 *
 * Memory: a compiled template owns one arena holding its tokens' strings and its syntax tree; a
 * render owns another arena holding every value it creates (freed whole when the render ends),
 * bounded by vklm_jinja_limits.max_memory. Nothing is reference-counted: values are immutable
 * except namespaces (ns.x = ...) and frames.
 *
 * Errors: the lexer, parser and evaluator stop at the first error by longjmp to the entry point
 * (vklm_jinja_parse / vklm_jinja_render), which returns the message "line L:C: what". Nothing
 * else needs cleaning up: everything lives in the arenas or in the context's output buffer. */
#ifndef VKLM_CHAT_JINJA_INTERNAL_H
#define VKLM_CHAT_JINJA_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/jinja.h"

#if defined(__GNUC__)
#define J_NORETURN __attribute__((noreturn))
#define J_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define J_NORETURN
#define J_PRINTF(a, b)
#endif

/* ---- arena and errors ------------------------------------------------------------------- */
typedef struct jblk jblk;
typedef struct jerr {
  jmp_buf jb;
  const char *src; /* the normalized template text, for line:column */
  size_t srclen;
  char *msg;       /* the message buffer and its size */
  size_t msglen;
} jerr;

typedef struct jarena {
  jblk *head;
  size_t used, limit; /* bytes handed out; 0 limit: none */
  jerr *e;            /* where an exhausted limit is reported */
} jarena;

void *ja_alloc(jarena *a, size_t n); /* zeroed, 16-byte aligned; fails through a->e */
void ja_free(jarena *a);
char *ja_strdup(jarena *a, const char *s, size_t n); /* NUL-terminated copy */

/* Formats "line L:C: msg" (pos: a byte offset into e->src, or SIZE_MAX: none) and longjmps. */
J_NORETURN void jfail(jerr *e, size_t pos, const char *fmt, ...) J_PRINTF(3, 4);
void jlinecol(const char *src, size_t len, size_t pos, unsigned *line, unsigned *col);

/* ---- values ------------------------------------------------------------------------------ */
typedef enum jvt {
  JV_UNDEF, /* jinja2's default Undefined: prints "", falsy, error on attribute access */
  JV_NONE,
  JV_BOOL,
  JV_INT,
  JV_FLOAT,
  JV_STR,
  JV_LIST,  /* also tuples (tuple flag) */
  JV_DICT,
  JV_NS,    /* namespace(): a dict whose attributes can be assigned */
  JV_FUNC,  /* a global function (range, namespace, raise_exception, ...) */
  JV_METHOD,/* a bound method of a str / dict / list / loop */
  JV_LOOP,  /* the loop variable of a for loop */
  JV_MACRO,
} jvt;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jloop jloop;
typedef struct jnode jnode;
typedef struct jv jv;

struct jv {
  uint8_t t;
  uint8_t tuple;  /* JV_LIST: a tuple */
  uint16_t fn;    /* JV_FUNC / JV_METHOD: which one */
  union {
    int64_t i;                       /* JV_BOOL, JV_INT */
    double f;                        /* JV_FLOAT */
    struct { const char *p; size_t n; } s; /* JV_STR; JV_UNDEF: why it is undefined */
    jlist *l;
    jdict *d;                        /* JV_DICT, JV_NS */
    jloop *loop;
    const jnode *macro;
    jv *self;                        /* JV_METHOD: the bound object */
  } u;
};

struct jlist {
  jv *v;
  size_t n, cap;
};
struct jdict { /* insertion-ordered; linear lookup */
  jv *k, *v;
  size_t n, cap;
};
struct jloop {
  const jv *items;
  size_t n, i;
  uint32_t depth;
};

/* ---- the syntax tree ---------------------------------------------------------------------- */
typedef enum jnk {
  /* expressions */
  N_CONST, N_NAME, N_GETATTR, N_GETITEM, N_SLICE, N_CALL, N_FILTER, N_TEST, N_NEG, N_POS,
  N_BIN, N_AND, N_OR, N_NOT, N_CMP, N_CONCAT, N_COND, N_LIST, N_TUPLE, N_DICT,
  /* statements */
  N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_BREAK, N_CONTINUE, N_MACRO, N_BLOCK,
} jnk;

typedef enum jop {
  OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
  OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
} jop;

typedef struct jblock {
  jnode **v;
  uint32_t n;
} jblock;

struct jnode {
  uint8_t kind;
  uint8_t op;       /* N_BIN: jop; N_TEST: negated */
  uint16_t fid;     /* N_FILTER / N_TEST: the built-in's index */
  uint32_t pos;     /* byte offset in the source */
  jnode *a, *b, *c, *d;
  jnode **args;     /* call/filter/test arguments, list/tuple items, dict keys+values, cmp operands */
  const char **names; /* per argument: keyword name or NULL; N_SET/N_FOR targets; macro params */
  uint8_t *ops;     /* N_CMP: one jop per operand after the first */
  uint32_t nargs;
  const char *s;    /* N_NAME / N_GETATTR / N_FILTER / N_TEST / N_MACRO / N_SET ns name; N_TEXT */
  size_t slen;
  jv val;           /* N_CONST */
  jblock body, orelse;
};

struct vklm_jinja {
  jarena ar;
  char *src;        /* normalized text (owned by the arena) */
  size_t srclen;
  jblock root;
};

/* lexer + parser (jinja_lex.c, jinja_parse.c) */
typedef enum jtk {
  T_EOF, T_DATA, T_BLOCK_BEGIN, T_BLOCK_END, T_VAR_BEGIN, T_VAR_END, T_NAME, T_STRING, T_INT,
  T_FLOAT, T_OP,
} jtk;
typedef struct jtok {
  uint8_t kind;
  uint32_t pos;
  const char *s; /* T_DATA / T_NAME / T_STRING (decoded) / T_OP text */
  size_t n;
  int64_t i;
  double f;
} jtok;
/* Normalizes newlines (and drops one trailing newline, as jinja2 does) into a fresh arena copy. */
char *jlex_normalize(jarena *a, const char *text, size_t len, size_t *outlen);
/* Splits the template into tokens (whitespace control applied); *n set; terminated by T_EOF. */
jtok *jlex(jarena *a, jerr *e, const char *src, size_t len, size_t *n);
void jparse(jarena *a, jerr *e, const jtok *toks, size_t n, jblock *root);

/* ---- render context --------------------------------------------------------------------- */
typedef struct jbuf {
  char *p;
  size_t n, cap;
} jbuf;

typedef struct jvar {
  const char *name;
  size_t nlen;
  jv v;
} jvar;
typedef struct jframe jframe;
struct jframe {
  jframe *parent;
  jvar *v;
  uint32_t n, cap;
};

typedef struct jctx {
  jerr e;
  jarena ar;
  const vklm_jinja *t;
  vklm_jinja_limits lim;
  int64_t now;
  jbuf *out;          /* the current output (a set block or macro captures into its own) */
  jframe *root;       /* template-level variables */
  jframe *top;        /* the innermost frame */
  jdict *globals;     /* the caller's variables */
  uint64_t steps;
  uint32_t depth;
  int flow;           /* 1 break, 2 continue */
  uint32_t rec;        /* nested evaluations (bounds the C stack) */
} jctx;

/* values (jinja_value.c) */
jv jv_str(const char *p, size_t n);
jv jv_cstr(const char *p);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_bool(int b);
jv jv_none(void);
jv jv_undef(const char *why);
jlist *jl_new(jctx *c, size_t cap);
void jl_push(jctx *c, jlist *l, jv v);
jdict *jd_new(jctx *c, size_t cap);
void jd_set(jctx *c, jdict *d, jv k, jv v);
const jv *jd_get(const jdict *d, jv k);
const jv *jd_getn(const jdict *d, const char *name, size_t n);
int jv_truthy(const jv *v);
int jv_eq(const jv *a, const jv *b);
/* <0, 0, >0; fails on types Python cannot order */
int jv_cmp(jctx *c, size_t pos, const jv *a, const jv *b);
const char *jv_typename(const jv *v); /* Python's type name: 'str', 'dict', 'NoneType', ... */
void jb_put(jctx *c, jbuf *b, const char *s, size_t n);
void jb_putc(jctx *c, jbuf *b, char ch);
/* str(v) / repr(v) appended to b */
void jv_str_to(jctx *c, jbuf *b, const jv *v, size_t pos);
void jv_repr_to(jctx *c, jbuf *b, const jv *v, size_t pos);
jv jv_tostr(jctx *c, const jv *v, size_t pos); /* str(v) as a value */
jv jb_take(jctx *c, jbuf *b);                  /* the buffer's bytes as a string value (copied) */
/* json.dumps with transformers' defaults; indent < 0: none (indent_str NULL) */
void jv_json_to(jctx *c, jbuf *b, const jv *v, const char *indent, int has_indent,
                const char *item_sep, const char *key_sep, int sort_keys, int ensure_ascii,
                size_t pos);
/* Parses JSON text into values (ints stay ints, floats floats; keys keep their order). */
jv jv_from_json(jctx *c, const char *s, size_t n, const char *what);
/* UTF-8 helpers */
size_t ju_len(const char *s, size_t n);                   /* code points */
size_t ju_off(const char *s, size_t n, size_t cp);        /* byte offset of code point cp */
uint32_t ju_dec(const char *s, size_t n, size_t *i);      /* decode at *i, advance */
size_t ju_enc(uint32_t cp, char *out);                    /* encode, returns bytes (1..4) */
int ju_isspace(uint32_t cp);                              /* Python's str.isspace */

/* evaluator (jinja_eval.c) */
void jrun(jctx *c, const jblock *b); /* executes the template body in a fresh root frame */
jv jeval(jctx *c, const jnode *n);
J_NORETURN void jrfail(jctx *c, size_t pos, const char *fmt, ...) J_PRINTF(3, 4);
void jstep(jctx *c, size_t pos);  /* counts a step; fails past the limit */
jv jcall_value(jctx *c, const jv *fnv, const jv *args, const char **names, size_t n, size_t pos);
jv jgetattr(jctx *c, const jv *obj, const char *name, size_t nlen, size_t pos);
jv jgetitem(jctx *c, const jv *obj, const jv *key, size_t pos);
/* the items a for loop walks (dict keys, string characters, ...) */
void jiter(jctx *c, const jv *v, size_t pos, const jv **items, size_t *n);

/* string helpers shared by filters and methods (jinja_methods.c) */
enum { JS_UPPER, JS_LOWER, JS_PYTITLE, JS_CAPITALIZE, JS_JTITLE };
jv js_case(jctx *c, const jv *s, int mode);
jv js_strip(jctx *c, const jv *s, const jv *chars, int left, int right); /* chars NULL: spaces */
jv js_replace(jctx *c, const jv *s, const jv *old, const jv *rep, int64_t count, size_t pos);
size_t jlength(jctx *c, const jv *v, size_t pos); /* len(v); undefined: 0 */
/* Binds args to the named parameters (positional first, then keywords) into out[] (JV_UNDEF
 * with a NULL reason when absent); fails on extra or unknown arguments. */
void jbind(jctx *c, const char *what, const char *const *params, const jv *args,
           const char **names, size_t n, jv *out, size_t pos);
int jabsent(const jv *v); /* a parameter jbind left unset */

/* built-ins (jinja_filters.c: filters and tests; jinja_methods.c: functions and methods) */
int jfilter_id(const char *name, size_t n); /* -1 if unknown */
int jtest_id(const char *name, size_t n);
int jfunc_id(const char *name, size_t n);   /* global functions */
int jmethod_id(const jv *self, const char *name, size_t n);
jv jfilter_call(jctx *c, int id, const jv *in, const jv *args, const char **names, size_t n,
                size_t pos);
int jtest_call(jctx *c, int id, const jv *in, const jv *args, size_t n, size_t pos);
jv jfunc_call(jctx *c, int id, const jv *args, const char **names, size_t n, size_t pos);
jv jmethod_call(jctx *c, int id, const jv *self, const jv *args, const char **names, size_t n,
                size_t pos);
const char *jfunc_name(int id);
const char *jmethod_name(int id);

#endif

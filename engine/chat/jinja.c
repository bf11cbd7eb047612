/* The Jinja entry points: compiling a template (lexer + parser under one error trap) and
 * rendering it (a fresh context and arena per render, the caller's variables read from JSON). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/jinja_internal.h"

/* ---- entry points ------------------------------------------------------------------------- */
void vklm_jinja_limits_default(vklm_jinja_limits *l) {
  l->max_output = 8u << 20;
  l->max_steps = 20000000;
  l->max_memory = 256u << 20;
  l->max_depth = 64;
}

/* The guarded parts of the entry points: a failure longjmps back here (nothing in these
 * frames is modified after setjmp). */
static int parse_guarded(vklm_jinja *t, jerr *e, const char *text, size_t len) {
  if (setjmp(e->jb)) return -1;
  t->src = jlex_normalize(&t->ar, text, len, &t->srclen);
  e->src = t->src;
  e->srclen = t->srclen;
  size_t nt;
  jtok *toks = jlex(&t->ar, e, t->src, t->srclen, &nt);
  jparse(&t->ar, e, toks, nt, &t->root);
  return 0;
}

static int render_guarded(jctx *c, const vklm_jinja *t, const char *vars_json, jbuf *o) {
  if (setjmp(c->e.jb)) return -1;
  if (vars_json && *vars_json) {
    jv g = jv_from_json(c, vars_json, strlen(vars_json), "the variables");
    if (g.t != JV_DICT) jrfail(c, SIZE_MAX, "the variables must be a JSON object");
    c->globals = g.u.d;
  } else {
    c->globals = jd_new(c, 0);
  }
  c->out = o;
  jrun(c, &t->root);
  return 0;
}

vklm_status vklm_jinja_parse(const char *text, size_t len, vklm_jinja **out, char *err,
                             size_t errlen) {
  *out = NULL;
  if (err && errlen) err[0] = 0;
  vklm_jinja *t = calloc(1, sizeof *t);
  jerr *e = calloc(1, sizeof *e);
  if (!t || !e) {
    free(t);
    free(e);
    if (err) snprintf(err, errlen, "out of memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  e->msg = err;
  e->msglen = errlen;
  t->ar.e = e;
  int rc = parse_guarded(t, e, text ? text : "", text ? len : 0);
  t->ar.e = NULL;
  free(e);
  if (rc) {
    ja_free(&t->ar);
    free(t);
    return VKLM_ERROR_INVALID;
  }
  *out = t;
  return VKLM_OK;
}

void vklm_jinja_destroy(vklm_jinja *t) {
  if (!t) return;
  ja_free(&t->ar);
  free(t);
}

vklm_status vklm_jinja_render(const vklm_jinja *t, const char *vars_json,
                              const vklm_jinja_opts *opts, char **out, size_t *outlen, char *err,
                              size_t errlen) {
  *out = NULL;
  if (outlen) *outlen = 0;
  if (err && errlen) err[0] = 0;
  jctx *c = calloc(1, sizeof *c);
  if (!c) {
    if (err) snprintf(err, errlen, "out of memory");
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  if (opts && opts->limits) c->lim = *opts->limits;
  else vklm_jinja_limits_default(&c->lim);
  c->now = opts && opts->now ? opts->now : (int64_t)time(NULL);
  c->t = t;
  c->e.msg = err;
  c->e.msglen = errlen;
  c->e.src = t->src;
  c->e.srclen = t->srclen;
  c->ar.limit = c->lim.max_memory;
  c->ar.e = &c->e;
  jbuf o = {0};
  vklm_status st = VKLM_OK;
  if (render_guarded(c, t, vars_json, &o)) {
    st = VKLM_ERROR_INVALID;
  } else {
    char *r = malloc(o.n + 1);
    if (!r) {
      if (err) snprintf(err, errlen, "out of memory");
      st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    } else {
      if (o.n) memcpy(r, o.p, o.n);
      r[o.n] = 0;
      *out = r;
      if (outlen) *outlen = o.n;
    }
  }
  ja_free(&c->ar);
  free(c);
  return st;
}

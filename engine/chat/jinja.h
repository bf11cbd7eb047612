/* jinja: an interpreter for the subset of Jinja that Hugging Face and GGUF chat templates use.
 *
 * It renders as transformers' apply_chat_template does: jinja2's ImmutableSandboxedEnvironment
 * with trim_blocks, lstrip_blocks and the loopcontrols extension, `tojson` as transformers
 * overrides it (json.dumps with ensure_ascii=False, indent, separators, sort_keys), and the
 * globals raise_exception(msg) and strftime_now(fmt). Output is byte-for-byte what jinja2 gives
 * for the templates and values this subset covers (docs/chat.md lists it): Python's str() and
 * repr() of values, its float formatting, code-point string indexing, jinja2's Undefined.
 *
 * Owns: a compiled template (its text, tokens and syntax tree). A render owns nothing after it
 * returns but the output string it hands the caller.
 * Invariants: a compiled template is immutable and may be rendered from several threads at once.
 * Every render is bounded (vklm_jinja_limits): output bytes, evaluation steps (loop iterations
 * and expression nodes), memory and call depth; crossing a bound is an error, never a hang.
 * Errors name the construct and where it is: "line 3:14: unknown filter 'frobnicate'".
 * Not done: template inheritance and includes (extends, block, include, import), the call and
 * filter blocks, autoescaping, Python's % string formatting, mutating methods (the sandbox
 * forbids them too). Using one is a parse error, never undefined behaviour. */
#ifndef VKLM_CHAT_JINJA_H
#define VKLM_CHAT_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

typedef struct vklm_jinja vklm_jinja;

typedef struct vklm_jinja_limits {
  size_t max_output;  /* bytes of rendered text (and of any one string built) */
  uint64_t max_steps; /* expression evaluations + loop iterations */
  size_t max_memory;  /* bytes of values created during one render */
  uint32_t max_depth; /* nested macro calls */
} vklm_jinja_limits;

/* 8 MiB output, 20 M steps, 256 MiB memory, depth 64. */
void vklm_jinja_limits_default(vklm_jinja_limits *l);

typedef struct vklm_jinja_opts {
  int64_t now;                     /* strftime_now's clock (Unix seconds); 0: the current time */
  const vklm_jinja_limits *limits; /* NULL: the defaults */
} vklm_jinja_opts;

/* Compiles len bytes of template text. VKLM_ERROR_INVALID with "line L:C: ..." on a syntax
 * error or an unsupported construct (unknown filters and tests are reported here too). */
vklm_status vklm_jinja_parse(const char *text, size_t len, vklm_jinja **out, char *err,
                             size_t errlen);
void vklm_jinja_destroy(vklm_jinja *t); /* accepts NULL */

/* Renders with the variables of vars_json, a JSON object (NULL: none), e.g.
 * {"messages": [...], "add_generation_prompt": true, "bos_token": "<s>"}. JSON integers become
 * Python ints, other numbers floats; object keys keep their order. *out is malloc'ed and
 * NUL-terminated (*outlen bytes, which may include NULs). On failure *out is NULL and err
 * holds "line L:C: ..."; raise_exception(msg) fails with "raise_exception: msg (line L:C)". */
vklm_status vklm_jinja_render(const vklm_jinja *t, const char *vars_json,
                              const vklm_jinja_opts *opts, char **out, size_t *outlen, char *err,
                              size_t errlen);

#endif

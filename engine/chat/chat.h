/* chat: chat templates and conversations, shared by `vklm chat` and the HTTP server.
 *
 * A vklm_chat_template is a compiled Jinja chat template (engine/chat/jinja.h) with the
 * bos/eos token texts it renders with and the strings that end an assistant turn. It comes from
 * template text, from a built-in by name ("chatml", "llama3", "plain"), or from a model: the
 * template a GGUF carries, else chat_template.jinja beside the model, else
 * tokenizer_config.json's "chat_template" (a string, or a list of {name, template} of which
 * "default" is taken); bos_token / eos_token come from tokenizer_config.json when it has them.
 *
 * Rendering takes the template's variables as a JSON object ({"messages": [...], "tools": ...})
 * and adds bos_token, eos_token and add_generation_prompt, as transformers' apply_chat_template
 * does. Encoding renders and tokenizes so that special-token text only becomes a control token
 * where the template wrote it: wherever the caller's variables (message contents, roles, tool
 * arguments) contain the text of a special token, that text is swapped for a private-use
 * placeholder before rendering and encoded as ordinary text afterwards. When no variable holds
 * such text (the usual case) the rendered prompt is encoded in one piece, exactly as Hugging
 * Face's tokenizer encodes it. A placeholder the template cut apart is an error, never a leak.
 *
 * A vklm_chat is a conversation: an optional system prompt and the messages after it. Its
 * prompt tokens for a budget are the encoded rendering of all messages; when they do not fit,
 * whole turns (a user message and the replies up to the next user message) are dropped from the
 * oldest on, never the system prompt and never the newest user message, and the count is
 * reported. Owns copies of every string it is given. No inference here: the caller keeps the
 * KV cache and reuses it up to vklm_chat_common_prefix of the old and new token arrays.
 *
 * Errors: VKLM_ERROR_INVALID (a template that does not parse or raises), VKLM_ERROR_IO,
 * VKLM_ERROR_NOT_FOUND (no template), with a message in err. */
#ifndef VKLM_CHAT_CHAT_H
#define VKLM_CHAT_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"
#include "vklm_runtime.h"

typedef struct vklm_chat_template vklm_chat_template;
typedef struct vklm_chat vklm_chat;

typedef struct vklm_chat_message {
  const char *role;    /* "system", "user", "assistant", "tool" or any other string */
  const char *content;
} vklm_chat_message;

/* The built-in templates' names, NULL-terminated: "chatml", "llama3", "plain". */
const char *const *vklm_chat_builtin_names(void);

/* Compiles template text; bos/eos may be NULL (then undefined in the template). */
vklm_status vklm_chat_template_create(const char *text, size_t len, const char *bos,
                                      const char *eos, vklm_chat_template **out, char *err,
                                      size_t errlen);
/* A built-in renders an unset (NULL) bos / eos as "". */
vklm_status vklm_chat_template_builtin(const char *name, const char *bos, const char *eos,
                                       vklm_chat_template **out, char *err, size_t errlen);
/* A model's own template (see the file comment). model_path: a model file or directory;
 * embedded: the template text a loaded GGUF carried (NULL: read it from model_path when that is
 * a .gguf); bos/eos: the token texts to use when tokenizer_config.json names none. *from says
 * where the template came from. VKLM_ERROR_NOT_FOUND (and *out NULL) when the model has none. */
vklm_status vklm_chat_template_find(const char *model_path, const char *embedded,
                                    const char *bos, const char *eos, vklm_chat_template **out,
                                    char *from, size_t fromlen, char *err, size_t errlen);
void vklm_chat_template_destroy(vklm_chat_template *t); /* accepts NULL */

const char *vklm_chat_template_name(const vklm_chat_template *t); /* a built-in's, or "jinja" */
const char *vklm_chat_template_text(const vklm_chat_template *t);
const char *vklm_chat_template_bos(const vklm_chat_template *t);  /* NULL when unset */
const char *vklm_chat_template_eos(const vklm_chat_template *t);
/* The strings that end an assistant turn (e.g. "<|im_end|>", "<|eot_id|>", "<end_of_turn>",
 * the eos token): for a built-in its own, otherwise the known markers its text contains plus
 * the eos text. Writes up to max pointers (valid while t lives); returns how many there are. */
size_t vklm_chat_template_stops(const vklm_chat_template *t, const char **out, size_t max);

/* Renders with the variables of vars_json (a JSON object holding at least "messages"; NULL: no
 * messages) plus bos_token, eos_token and add_generation_prompt. now: strftime_now's clock
 * (Unix seconds, 0: the current time). *out is malloc'ed, NUL-terminated, *outlen bytes. */
vklm_status vklm_chat_template_apply(const vklm_chat_template *t, const char *vars_json,
                                     int add_generation_prompt, int64_t now, char **out,
                                     size_t *outlen, char *err, size_t errlen);
/* Renders as above and appends the prompt's token ids to ids (see the file comment for how
 * special-token text in the variables is kept out of the control tokens). text (may be NULL)
 * receives the rendered prompt, malloc'ed. */
vklm_status vklm_chat_template_encode(const vklm_chat_template *t, vklm_tokenizer *tk,
                                      const char *vars_json, int add_generation_prompt,
                                      int64_t now, vklm_token_ids *ids, char **text, char *err,
                                      size_t errlen);
/* {"messages": [{"role": ..., "content": ...}, ...]} for n messages, merged into the JSON
 * object extra_json when not NULL (e.g. {"tools": [...]}). malloc'ed; NULL on bad extra_json
 * (message in err). */
char *vklm_chat_vars_json(const vklm_chat_message *msgs, size_t n, const char *extra_json,
                          char *err, size_t errlen);

/* ---- conversations ---------------------------------------------------------------------- */
/* t is borrowed and must outlive the conversation; system may be NULL or "" (none). */
vklm_status vklm_chat_create(const vklm_chat_template *t, const char *system, vklm_chat **out);
void vklm_chat_destroy(vklm_chat *c); /* accepts NULL */
vklm_status vklm_chat_add(vklm_chat *c, const char *role, const char *content);
void vklm_chat_pop(vklm_chat *c);   /* removes the newest message (never the system prompt) */
void vklm_chat_reset(vklm_chat *c); /* back to the system prompt alone */
size_t vklm_chat_count(const vklm_chat *c); /* messages, the system prompt included */
const vklm_chat_message *vklm_chat_messages(const vklm_chat *c);
/* strftime_now's clock for this conversation's renders (0: the current time) */
void vklm_chat_set_now(vklm_chat *c, int64_t now);

/* The conversation's prompt (add_generation_prompt on) as token ids in *ids (replacing its
 * contents), dropping the oldest whole turns while it is longer than budget tokens;
 * *dropped (may be NULL) counts the turns dropped by this call. When even the system prompt and
 * the newest turn do not fit: VKLM_ERROR_INVALID, ids holding that shortest prompt, nothing
 * further dropped than what was droppable. */
vklm_status vklm_chat_prompt(vklm_chat *c, vklm_tokenizer *tk, size_t budget,
                             vklm_token_ids *ids, uint32_t *dropped, char *err, size_t errlen);

/* The length of the longest common prefix of a[0..na) and b[0..nb): the tokens a KV cache
 * holding a can keep when the prompt becomes b. */
size_t vklm_chat_common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb);

#endif

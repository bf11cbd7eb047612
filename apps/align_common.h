/* What the alignment commands (sft, reward, dpo, rank, ppo) share: the tokenizer, chat template
 * and end-of-sequence id of the model they start from. Their flags come from apps/flags.h. */
#ifndef VKLM_APPS_ALIGN_COMMON_H
#define VKLM_APPS_ALIGN_COMMON_H

#include <stdint.h>

#include "align/align.h"

/* The text side of a model: its tokenizer (tok, else tokenizer.json beside model), its chat
 * template (tmpl: a built-in name or a Jinja file; else the model's own; else chatml) and eos id
 * (<|endoftext|> or </s>; -1 when none). 1 on success, 0 with a message on stderr. */
typedef struct align_text {
  vklm_tokenizer *tk;
  vklm_chat_template *tmpl;
  int32_t eos;
} align_text;
int align_text_open(const char *cmd, const char *model, const char *tok, const char *tmpl,
                    align_text *out);
void align_text_close(align_text *t);
/* Copies the model's tokenizer.json (tok, else the one beside model; when there is none, tk —
 * a GGUF's own — is written) and its chat template files (tokenizer_config.json,
 * chat_template.jinja, when beside it) into dir, so that the model written there is used like
 * the one it came from. 1, or 0 with a message. */
int align_copy_text_files(const char *cmd, const char *model, const char *tok,
                          const vklm_tokenizer *tk, const char *dir);

#endif

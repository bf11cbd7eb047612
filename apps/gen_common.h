/* gen_common: the pieces `vklm generate` and `vklm chat` share — opening a model (a vklm
 * checkpoint, or an HF directory / safetensors / GGUF through engine/formats/model_load.h with
 * quantized linear weights kept), finding its tokenizer and end-of-sequence id, the sampling
 * flags and stop strings (streaming text is engine/infer/stream.h's).
 *
 * Owns (in gen_model): the loaded checkpoint or model, the tokenizer, the chat template text.
 * Does not create the Vulkan context or the inference session (the commands do). */
#ifndef VKLM_APPS_GEN_COMMON_H
#define VKLM_APPS_GEN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chat/chat.h"
#include "flags.h"
#include "formats/model_load.h"
#include "infer/infer.h"
#include "infer/sample.h"
#include "text/tokenizer.h"
#include "train/train.h"

#define GEN_MAX_STOPS 16

/* An opened model: one of ck / lm, plus its tokenizer. */
typedef struct gen_model {
  vklm_ckpt *ck;                /* owned; or */
  vklm_loaded_model *lm;        /* owned */
  vklm_tokenizer *tk;           /* owned */
  const vklm_model_config *cfg; /* borrowed from ck or lm */
  char path[4096];              /* the file actually read */
  char tokpath[4096];           /* the tokenizer.json read, "" when it came from the model */
  int32_t eos;                  /* <|endoftext|>, </s> or the GGUF's; -1 when none */
} gen_model;

/* Opens model (a checkpoint, a directory holding checkpoint.bin, or an HF directory /
 * .safetensors / .gguf) and its tokenizer: tok when not NULL, else tokenizer.json beside the
 * model file, else the loaded model's own. Nonzero with a message in err on failure (m is then
 * safe to pass to gen_model_close). */
int gen_model_open(gen_model *m, const char *model, const char *tok, char *err, size_t errlen);
void gen_model_close(gen_model *m);
/* Warns on stderr (prefixed by cmd) when the tokenizer lacks byte tokens, so that encoding
 * silently drops those bytes (vklm_tokenizer_missing_bytes). */
void gen_tokenizer_warn(const char *cmd, const vklm_tokenizer *tk, const char *path);
/* After a failed vklm_infer_create: when the device is full, appends what to change to err. */
void gen_oom_hint(vklm_status st, char *err, size_t errlen);
/* vklm_infer_create's tensor callback over a gen_model (user). */
vklm_status gen_model_tensor(void *user, const vklm_param_info *info, vklm_model_tensor *out,
                             char *err, size_t errlen);

/* --chat-template's value is usable: a built-in (chatml, llama3, plain) or a regular file; 0
 * with a message on stderr prefixed by cmd. */
int gen_template_flag_ok(const char *cmd, const char *tpl);
/* A chat template: tpl (a built-in name or a Jinja file) when given, else the model's own (the
 * template a GGUF carried, `embedded`, or chat_template.jinja / tokenizer_config.json beside
 * model_path), else ChatML. bos/eos texts come from the token ids (-1: none). *from says where
 * the template came from. */
vklm_status gen_template_open(const char *model_path, const char *embedded,
                              const vklm_tokenizer *tk, int32_t bos_id, int32_t eos_id,
                              const char *tpl, vklm_chat_template **t, char *from, size_t fromlen,
                              char *err, size_t errlen);
/* The same for an opened model. */
vklm_status gen_model_template(const gen_model *gm, const char *tpl, vklm_chat_template **t,
                               char *from, size_t fromlen, char *err, size_t errlen);

/* The whole file as a NUL-terminated string (NULL when unreadable); free() it. */
char *gen_read_file(const char *path);
double gen_now_s(void);

/* Sampling and stopping flags shared by generate and chat: gen_sampling_default fills `flags`,
 * a flag table (apps/flags.h) pointing into this struct, which the commands include in theirs
 * (so the struct must not be copied after it). */
typedef struct gen_sampling {
  vklm_sampler_params sp;
  int seed_set;
  const char *stops[GEN_MAX_STOPS];
  int nstops;
  app_flag flags[10];
} gen_sampling;
void gen_sampling_default(gen_sampling *s);
#endif

/* A model's tokenizer / chat template for the alignment commands. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "align_common.h"
#include "gen_common.h"

int align_text_open(const char *cmd, const char *model, const char *tok, const char *tmpl,
                    align_text *out) {
  memset(out, 0, sizeof *out);
  out->eos = -1;
  char err[2048] = "", tokpath[4096], dir[4096];
  struct stat sb;
  if (!tok) {
    snprintf(dir, sizeof dir, "%s", model);
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode))
      snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", model);
    else
      snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", dirname(dir));
    tok = tokpath;
  }
  size_t ml = strlen(model);
  char *embedded = NULL; /* a GGUF's chat template */
  int32_t gguf_eos = -1;
  if (tok == tokpath && stat(tokpath, &sb) != 0 && ml > 5 && !strcmp(model + ml - 5, ".gguf")) {
    gen_model g; /* a GGUF carries its tokenizer */
    if (gen_model_open(&g, model, NULL, err, sizeof err) != 0) {
      fprintf(stderr, "%s: %s\n", cmd, err);
      gen_model_close(&g);
      return 0;
    }
    out->tk = g.tk;
    g.tk = NULL;
    gguf_eos = g.eos;
    if (g.lm && g.lm->chat_template) embedded = strdup(g.lm->chat_template);
    gen_model_close(&g);
  } else if (vklm_tokenizer_load(tok, &out->tk, err, sizeof err) != VKLM_TOK_OK) {
    fprintf(stderr, "%s: tokenizer '%s': %s (give -t tokenizer.json)\n", cmd, tok, err);
    return 0;
  } else {
    gen_tokenizer_warn(cmd, out->tk, tok);
  }
  out->eos = gguf_eos >= 0 ? gguf_eos : vklm_tokenizer_special_id(out->tk, "<|endoftext|>");
  if (out->eos < 0) out->eos = vklm_tokenizer_special_id(out->tk, "</s>");
  char from[4096];
  vklm_status st = gen_template_open(model, embedded, out->tk, -1, out->eos, tmpl, &out->tmpl, from,
                                     sizeof from, err, sizeof err);
  free(embedded);
  if (st != VKLM_OK) {
    fprintf(stderr, "%s: chat template: %s\n", cmd, err);
    align_text_close(out);
    return 0;
  }
  return 1;
}

void align_text_close(align_text *t) {
  vklm_chat_template_destroy(t->tmpl);
  vklm_tokenizer_destroy(t->tk);
  t->tmpl = NULL;
  t->tk = NULL;
}

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb");
  if (!a) return 0;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", to);
  FILE *b = fopen(tmp, "wb");
  char buf[65536];
  size_t n;
  int ok = b != NULL;
  while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
  ok = ok && !ferror(a);
  fclose(a);
  if (b && fclose(b) != 0) ok = 0;
  if (ok) ok = rename(tmp, to) == 0;
  else unlink(tmp);
  return ok;
}

static void dir_of(const char *model, char *out, size_t n) {
  struct stat sb;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", model);
  if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(out, n, "%s", model);
  else snprintf(out, n, "%s", dirname(tmp));
}

int align_copy_text_files(const char *cmd, const char *model, const char *tok,
                          const vklm_tokenizer *tk, const char *dir) {
  char src[4096], from[8300], to[8300], rs[4096], rd[4096];
  dir_of(model, src, sizeof src);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "%s: cannot create '%s'\n", cmd, dir);
    return 0;
  }
  snprintf(from, sizeof from, "%s/tokenizer.json", src);
  if (tok) snprintf(from, sizeof from, "%s", tok);
  snprintf(to, sizeof to, "%s/tokenizer.json", dir);
  struct stat fs;
  if (stat(from, &fs) != 0 && tk) { /* the tokenizer came from the model file (a GGUF) */
    if (vklm_tokenizer_save_json(tk, to, rs, sizeof rs) != VKLM_TOK_OK) {
      fprintf(stderr, "%s: cannot write '%s': %s\n", cmd, to, rs);
      return 0;
    }
    return 1;
  }
  if (realpath(from, rs) && realpath(dir, rd) && !strcmp(dirname(rs), rd)) return 1; /* in place */
  if (!copy_file(from, to)) {
    fprintf(stderr, "%s: cannot copy the tokenizer '%s' to '%s'\n", cmd, from, to);
    return 0;
  }
  const char *extra[] = {"tokenizer_config.json", "chat_template.jinja"};
  for (int i = 0; i < 2; i++) {
    snprintf(from, sizeof from, "%s/%s", src, extra[i]);
    snprintf(to, sizeof to, "%s/%s", dir, extra[i]);
    struct stat sb;
    if (stat(from, &sb) == 0 && !copy_file(from, to)) {
      fprintf(stderr, "%s: cannot copy '%s' to '%s'\n", cmd, from, to);
      return 0;
    }
  }
  return 1;
}

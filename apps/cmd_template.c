/* vklm template: renders a chat template over a conversation from a JSON file and prints the
 * prompt exactly (no newline added), or its token ids. The template is a model's own
 * (engine/chat/chat.h's lookup), a Jinja file or a built-in. The JSON file holds a list of
 * messages, or an object with "messages" and any other variables (tools, documents, ...);
 * --var adds or replaces variables. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/chat.h"
#include "commands.h"
#include "flags.h"
#include "io/file.h"
#include "text/tokenizer.h"


static int parse_now(const char *s, int64_t *out) {
  struct tm tm = {0};
  char *end;
  long long v = strtoll(s, &end, 10);
  if (*end == 0 && end != s) {
    *out = v;
    return 0;
  }
  int y, mo, d, h = 0, mi = 0, se = 0;
  if (sscanf(s, "%d-%d-%d%*[T ]%d:%d:%d", &y, &mo, &d, &h, &mi, &se) < 3) return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  tm.tm_isdst = -1;
  *out = (int64_t)mktime(&tm);
  return 0;
}

/* Appends "name": value to the JSON object text obj (malloc'ed; replaced). */
static char *add_var(char *obj, const char *name, const char *value) {
  cJSON *v = cJSON_Parse(value);
  char *val = v ? strdup(value) : NULL;
  if (!v) {
    cJSON *s = cJSON_CreateString(value);
    val = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
  }
  cJSON_Delete(v);
  cJSON *k = cJSON_CreateString(name);
  char *key = cJSON_PrintUnformatted(k);
  cJSON_Delete(k);
  char *end = strrchr(obj, '}');
  int empty = 1;
  for (char *p = strchr(obj, '{') + 1; p < end; p++)
    if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') empty = 0;
  size_t n = (size_t)(end - obj) + strlen(key) + strlen(val) + 8;
  char *r = malloc(n);
  if (r && key && val)
    snprintf(r, n, "%.*s%s%s: %s}", (int)(end - obj), obj, empty ? "" : ", ", key, val);
  free(key);
  free(val);
  free(obj);
  return r;
}

typedef struct var_list {
  const char **v;
  int *n;
} var_list;

static int var_flag(void *p, const char *v, char *err, size_t errlen) {
  var_list *l = p;
  if (!strchr(v, '=') || v[0] == '=' || *l->n == 64) {
    snprintf(err, errlen, "wants NAME=VALUE (at most 64), not '%s'", v);
    return 1;
  }
  l->v[(*l->n)++] = v;
  return 0;
}

static int now_flag(void *p, const char *v, char *err, size_t errlen) {
  if (parse_now(v, p)) {
    snprintf(err, errlen, "wants YYYY-MM-DD[THH:MM:SS] or seconds, not '%s'", v);
    return 1;
  }
  return 0;
}

int cmd_template(int argc, char **argv) {
  const char *model = NULL, *file = NULL, *builtin = NULL, *msgs = NULL, *bos = NULL,
             *eos = NULL, *tokpath = NULL;
  const char *vars[64];
  int nvars = 0, agp = 0, tokens = 0, bi = -1;
  int64_t now = 0;
  var_list vl = {vars, &nvars};
  const app_flag flags[] = {
      AF_STRING("--model", "-m", &model, "M",
                "the model's own template (GGUF tokenizer.chat_template, else\n"
                "chat_template.jinja, else tokenizer_config.json beside it)"),
      AF_STRING("--template", NULL, &file, "FILE", "a Jinja chat template file"),
      AF_FLAG("--builtin", NULL, AF_CHOICE, &bi, 0, 0, "chatml|llama3|plain", "a built-in template"),
      AF_STRING("--messages", NULL, &msgs, "FILE",
                "JSON: [{\"role\":..., \"content\":...}, ...] or {\"messages\": [...],\n"
                "other variables...}; - reads stdin"),
      AF_BOOL("--add-generation-prompt", &agp, "end with the assistant's header"),
      AF_STRING("--bos", NULL, &bos, "S", "bos_token (default: the model's, else unset)"),
      AF_STRING("--eos", NULL, &eos, "S", "eos_token (default: the model's, else unset)"),
      {"--var", NULL, AF_FN, &vl, 0, 0, "NAME=VALUE",
       "another variable; VALUE is JSON when it parses, else a string\n(repeatable, at most 64)",
       var_flag},
      {"--now", NULL, AF_FN, &now, 0, 0, "DATE",
       "strftime_now's date: YYYY-MM-DD[THH:MM:SS] or Unix seconds", now_flag},
      AF_BOOL("--tokens", &tokens, "print the token ids instead (needs -t, or -m with a tokenizer)"),
      AF_STRING("--tokenizer", "-t", &tokpath, "F", "tokenizer.json for --tokens"),
      AF_LAST};
  const app_command c = {"template", "template (-m MODEL | --template FILE.jinja | --builtin NAME) "
                         "--messages FILE [flags]", NULL, flags, 0, 0, 0};
  int pr = app_flags_parse(&c, argc, argv, NULL, NULL, NULL);
  if (pr) return pr == 1 ? 0 : pr;
  static const char *const builtins[] = {"chatml", "llama3", "plain"};
  if (bi >= 0) builtin = builtins[bi];
  if ((model != NULL) + (file != NULL) + (builtin != NULL) != 1 || !msgs) {
    return app_flags_missing(&c, "give one of -m, --template, --builtin, and --messages");
  }
  char err[1024] = "", from[256] = "";
  int rc = 1;
  vklm_chat_template *t = NULL;
  vklm_tokenizer *tk = NULL;
  char *text = NULL, *json = NULL, *obj = NULL, *out = NULL;
  vklm_token_ids ids = {0};
  vklm_status st;
  if (builtin) {
    st = vklm_chat_template_builtin(builtin, bos, eos, &t, err, sizeof err);
  } else if (file) {
    if (vklm_file_read(file, VKLM_FILE_MAX_CONFIG, 0, &text, NULL, err, sizeof err) != VKLM_OK) {
      fprintf(stderr, "vklm template: %s\n", err);
      return 1;
    }
    st = vklm_chat_template_create(text, strlen(text), bos, eos, &t, err, sizeof err);
  } else {
    st = vklm_chat_template_find(model, NULL, NULL, NULL, &t, from, sizeof from, err, sizeof err);
    if (!st && (bos || eos)) { /* the flags override the model's texts */
      vklm_chat_template *o = t;
      const char *ot = vklm_chat_template_text(o);
      st = vklm_chat_template_create(ot, strlen(ot), bos ? bos : vklm_chat_template_bos(o),
                                     eos ? eos : vklm_chat_template_eos(o), &t, err, sizeof err);
      vklm_chat_template_destroy(o);
    }
  }
  if (st) goto fail;
  if (vklm_file_read(msgs, VKLM_FILE_MAX_TEXT, VKLM_FILE_STDIN, &json, NULL, err, sizeof err))
    goto fail;
  cJSON *parsed = cJSON_Parse(json);
  int is_list = cJSON_IsArray(parsed), is_obj = cJSON_IsObject(parsed);
  cJSON_Delete(parsed);
  if (!is_list && !is_obj) {
    snprintf(err, sizeof err, "%s: want a JSON list of messages or an object", msgs);
    goto fail;
  }
  if (is_list) {
    size_t n = strlen(json) + 32;
    if (!(obj = malloc(n))) goto fail;
    snprintf(obj, n, "{\"messages\": %s}", json);
  } else {
    obj = json;
    json = NULL;
  }
  for (int k = 0; k < nvars && obj; k++) {
    char name[256];
    const char *eq = strchr(vars[k], '=');
    snprintf(name, sizeof name, "%.*s", (int)(eq - vars[k]), vars[k]);
    obj = add_var(obj, name, eq + 1);
  }
  if (!obj) goto fail;
  if (tokens) {
    const char *tp = tokpath ? tokpath : model;
    if (!tp) {
      snprintf(err, sizeof err, "--tokens needs -t tokenizer.json (or -m MODEL_DIR)");
      goto fail;
    }
    if (vklm_tokenizer_load(tp, &tk, err, sizeof err)) goto fail;
    if (vklm_chat_template_encode(t, tk, obj, agp, now, &ids, NULL, err, sizeof err)) goto fail;
    for (size_t i = 0; i < ids.n; i++) printf("%s%d", i ? " " : "", ids.ids[i]);
    printf("\n");
  } else {
    size_t n;
    if (vklm_chat_template_apply(t, obj, agp, now, &out, &n, err, sizeof err)) goto fail;
    fwrite(out, 1, n, stdout);
  }
  fflush(stdout);
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "vklm template: %s\n", err[0] ? err : "out of memory");
done:
  vklm_token_ids_free(&ids);
  vklm_tokenizer_destroy(tk);
  vklm_chat_template_destroy(t);
  free(text);
  free(json);
  free(obj);
  free(out);
  return rc;
}

/* Reading alignment JSONL: SFT examples and preference items (pairs, rankings, Anthropic HH
 * transcripts, conversational rows rendered with the chat template), tokenized, with every bad
 * row reported by file and line (docs/alignment.md). */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "align/align_internal.h"
#include "io/file.h"
#include "io/json.h"


/* A bad row: VKLM_ERROR_INVALID (stop) with the message in err, or VKLM_OK after logging and
 * counting it (skip). */
vklm_status vklm_align_bad(reader *r, uint32_t line, bad_kind kind, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->o->bad_rows == VKLM_BAD_ROWS_STOP) {
    snprintf(r->err, r->errlen, "%s:%u: %s (--bad-rows skip skips such rows)", r->path, line, msg);
    return VKLM_ERROR_INVALID;
  }
  r->st->skipped++;
  uint64_t *c[] = {&r->st->bad_json, &r->st->bad_field, &r->st->empty, &r->st->too_long,
                   &r->st->bad_ranking};
  (*c[kind])++;
  if (!r->o->quiet) fprintf(r->o->log ? r->o->log : stderr, "%s:%u: skipped: %s\n", r->path, line, msg);
  return VKLM_OK;
}


/* Calls row(r, json, line, user) for each non-blank line; a line that is not a JSON object is a
 * bad row. */
vklm_status vklm_align_each_row(reader *r, row_fn fn, void *user) {
  size_t len = 0;
  char *text = NULL;
  vklm_status rs = vklm_file_read(r->path, VKLM_FILE_MAX_TEXT, 0, &text, &len, r->err, r->errlen);
  if (rs != VKLM_OK) return rs;
  vklm_status st = VKLM_OK;
  uint32_t line = 0;
  for (char *p = text; st == VKLM_OK && p < text + len;) {
    char *nl = memchr(p, '\n', (size_t)(text + len - p));
    char *end = nl ? nl : text + len;
    line++;
    size_t n = (size_t)(end - p);
    *end = 0;
    char *q = p;
    while (*q == ' ' || *q == '\t' || *q == '\r') q++;
    if (*q) {
      r->st->rows++;
      int nul = strlen(p) != n || vklm_json_has_nul(p, n); /* a text would be cut there */
      cJSON *j = nul ? NULL : cJSON_ParseWithLength(p, n);
      if (!j || !cJSON_IsObject(j))
        st = vklm_align_bad(r, line, BAD_JSON,
                            nul ? "a NUL character (a raw byte or \\u0000): the text would be cut"
                            : j ? "not a JSON object"
                                : "not valid JSON");
      else
        st = fn(r, j, line, user);
      cJSON_Delete(j);
    }
    p = end + 1;
  }
  free(text);
  return st;
}

/* Appends the ids of text (special-token text becomes control tokens: a template wrote it). */
int vklm_align_encode(reader *r, const char *text, vklm_token_ids *ids) {
  return vklm_tokenizer_encode(r->o->tk, text, strlen(text), VKLM_ENCODE_SPECIALS, ids) ==
         VKLM_TOK_OK;
}

int vklm_align_is_messages(const cJSON *a) {
  if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0) return 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, a) {
    if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItem(m, "role")) ||
        !cJSON_IsString(cJSON_GetObjectItem(m, "content")))
      return 0;
  }
  return 1;
}

/* The template's rendering of messages[0..n) (add_generation_prompt as asked); NULL with a
 * message in why. */
char *vklm_align_render(reader *r, const cJSON *msgs, int n, int add_gen, char *why, size_t wl) {
  if (!r->o->tmpl) {
    snprintf(why, wl, "a conversation needs a chat template (the model has none: give --template)");
    return NULL;
  }
  cJSON *vars = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(vars, "messages");
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_Duplicate(cJSON_GetArrayItem(msgs, i), 1));
  char *js = cJSON_PrintUnformatted(vars);
  cJSON_Delete(vars);
  char *out = NULL;
  size_t outlen = 0;
  if (vklm_chat_template_apply(r->o->tmpl, js, add_gen, 1, &out, &outlen, why, wl) != VKLM_OK)
    out = NULL;
  free(js);
  return out;
}

/* ---- SFT ---------------------------------------------------------------------------------- */
typedef struct sft_build {
  vklm_sft_set *s;
  size_t cap_ids, cap_ex;
} sft_build;

static int sft_push(sft_build *b, const int32_t *ids, const uint8_t *tg, size_t n, uint32_t line) {
  vklm_sft_set *s = b->s;
  size_t have = s->n ? s->off[s->n] : 0;
  if (have + n > b->cap_ids) {
    size_t cap = (have + n) * 2 + 1024;
    int32_t *ni = realloc(s->ids, cap * sizeof *ni);
    if (ni) s->ids = ni;
    uint8_t *nt = realloc(s->target, cap);
    if (nt) s->target = nt;
    if (!ni || !nt) return 0;
    b->cap_ids = cap;
  }
  if (s->n + 2 > b->cap_ex) {
    size_t cap = b->cap_ex * 2 + 64;
    uint64_t *no = realloc(s->off, cap * sizeof *no);
    if (no) s->off = no;
    uint32_t *nl = realloc(s->line, cap * sizeof *nl);
    if (nl) s->line = nl;
    if (!no || !nl) return 0;
    b->cap_ex = cap;
  }
  s->off[0] = 0;
  memcpy(s->ids + have, ids, n * sizeof *ids);
  memcpy(s->target + have, tg, n);
  s->line[s->n] = line;
  s->off[++s->n] = have + n;
  return 1;
}

/* Tokens of consecutive text segments, each a target (1) or context (0). */
typedef struct seq {
  vklm_token_ids ids;
  uint8_t *tg;
  size_t cap;
} seq;
static int seq_add(reader *r, seq *q, const char *text, int target) {
  size_t before = q->ids.n;
  if (!vklm_align_encode(r, text, &q->ids)) return 0;
  if (q->ids.n > q->cap) {
    q->cap = q->ids.n * 2;
    uint8_t *nt = realloc(q->tg, q->cap);
    if (!nt) return 0;
    q->tg = nt;
  }
  memset(q->tg + before, target, q->ids.n - before);
  return 1;
}
static int seq_eos(reader *r, seq *q) {
  if (r->o->eos < 0) return 1;
  int32_t e = r->o->eos;
  size_t n = q->ids.n;
  if (n + 1 > q->cap) {
    q->cap = (n + 1) * 2;
    uint8_t *nt = realloc(q->tg, q->cap);
    if (!nt) return 0;
    q->tg = nt;
  }
  if (n + 1 > q->ids.cap) {
    size_t cap = (n + 1) * 2;
    int32_t *ni = realloc(q->ids.ids, cap * sizeof *ni);
    if (!ni) return 0;
    q->ids.ids = ni;
    q->ids.cap = cap;
  }
  q->ids.ids[n] = e;
  q->ids.n = n + 1;
  q->tg[n] = 1;
  return 1;
}

/* Conversation: the assistant turns are targets; everything else is context. */
static vklm_status sft_messages(reader *r, const cJSON *msgs, uint32_t line, seq *q) {
  int n = cJSON_GetArraySize(msgs), nassist = 0;
  char why[600] = "";
  char *prev = strdup("");
  for (int i = 0; i < n; i++) {
    const char *role = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, i), "role")->valuestring;
    if (strcmp(role, "assistant")) continue;
    nassist++;
    char *pre = vklm_align_render(r, msgs, i, 1, why, sizeof why);
    char *post = pre ? vklm_align_render(r, msgs, i + 1, 0, why, sizeof why) : NULL;
    size_t lp = strlen(prev), lpre = pre ? strlen(pre) : 0;
    int ok = pre && post && !strncmp(pre, prev, lp) && !strncmp(post, pre, lpre);
    if (!ok && !why[0])
      snprintf(why, sizeof why, "the chat template does not render message %d as a continuation "
               "of the ones before it", i);
    ok = ok && seq_add(r, q, pre + lp, r->o->loss_on_prompt) && seq_add(r, q, post + lpre, 1);
    free(prev);
    free(pre);
    prev = post;
    if (!ok) {
      free(prev);
      return vklm_align_bad(r, line, BAD_FIELD, "%s", why[0] ? why : "cannot tokenize the conversation");
    }
  }
  free(prev);
  if (!nassist) return vklm_align_bad(r, line, BAD_FIELD, "the conversation has no assistant message");
  return VKLM_OK;
}

static vklm_status sft_row(reader *r, cJSON *j, uint32_t line, void *user) {
  sft_build *b = user;
  const cJSON *text = cJSON_GetObjectItem(j, "text"), *prompt = cJSON_GetObjectItem(j, "prompt"),
              *completion = cJSON_GetObjectItem(j, "completion"),
              *msgs = cJSON_GetObjectItem(j, "messages");
  seq q = {0};
  vklm_status st = VKLM_OK;
  uint64_t skipped = r->st->skipped;
  if (msgs) {
    if (!vklm_align_is_messages(msgs)) st = vklm_align_bad(r, line, BAD_FIELD, "\"messages\" must be a non-empty list of {\"role\", \"content\"} strings");
    else st = sft_messages(r, msgs, line, &q);
  } else if (prompt || completion) {
    if (vklm_align_is_messages(prompt) && vklm_align_is_messages(completion)) { /* conversational prompt-completion */
      cJSON *all = cJSON_Duplicate(prompt, 1);
      const cJSON *m;
      cJSON_ArrayForEach(m, completion) cJSON_AddItemToArray(all, cJSON_Duplicate(m, 1));
      st = sft_messages(r, all, line, &q);
      cJSON_Delete(all);
    } else if (!cJSON_IsString(prompt) || !cJSON_IsString(completion))
      st = vklm_align_bad(r, line, BAD_FIELD, "\"prompt\" and \"completion\" must both be strings (or both lists of messages)");
    else if (!completion->valuestring[0])
      st = vklm_align_bad(r, line, BAD_EMPTY, "empty completion");
    else if (!seq_add(r, &q, prompt->valuestring, r->o->loss_on_prompt) ||
             !seq_add(r, &q, completion->valuestring, 1) || !seq_eos(r, &q))
      st = vklm_align_bad(r, line, BAD_FIELD, "cannot tokenize the row");
  } else if (text) {
    if (!cJSON_IsString(text)) st = vklm_align_bad(r, line, BAD_FIELD, "\"text\" must be a string");
    else if (!text->valuestring[0]) st = vklm_align_bad(r, line, BAD_EMPTY, "empty text");
    else if (!seq_add(r, &q, text->valuestring, 1) || !seq_eos(r, &q))
      st = vklm_align_bad(r, line, BAD_FIELD, "cannot tokenize the row");
  } else {
    st = vklm_align_bad(r, line, BAD_FIELD, "no \"prompt\"/\"completion\", \"messages\" or \"text\" field");
  }
  if (st == VKLM_OK && r->st->skipped == skipped) {
    size_t ntg = 0;
    for (size_t i = 1; i < q.ids.n; i++) ntg += q.tg[i];
    if (q.ids.n < 2 || ntg == 0)
      st = vklm_align_bad(r, line, BAD_EMPTY, "nothing to learn: the row has no target token after the first");
    else if (r->o->max_len && q.ids.n > r->o->max_len)
      st = vklm_align_bad(r, line, BAD_LONG, "%zu tokens, longer than the context allows (%u)", q.ids.n,
               r->o->max_len);
    else if (!sft_push(b, q.ids.ids, q.tg, q.ids.n, line)) {
      snprintf(r->err, r->errlen, "out of host memory");
      st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    } else {
      r->st->kept++;
      r->st->tokens += q.ids.n;
      r->st->target_tokens += ntg;
    }
  }
  vklm_token_ids_free(&q.ids);
  free(q.tg);
  return st;
}

vklm_status vklm_sft_read(const char *path, const vklm_align_read_opts *o, vklm_sft_set *out,
                          vklm_align_stats *stats, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  memset(stats, 0, sizeof *stats);
  reader r = {path, o, stats, err, errlen};
  sft_build b = {out, 0, 0};
  vklm_status st = vklm_align_each_row(&r, sft_row, &b);
  if (st == VKLM_OK && out->n == 0) {
    snprintf(err, errlen, "%s: no usable example (%llu rows, %llu skipped)", path,
             (unsigned long long)stats->rows, (unsigned long long)stats->skipped);
    st = VKLM_ERROR_INVALID;
  }
  if (st != VKLM_OK) vklm_sft_free(out);
  return st;
}

void vklm_sft_free(vklm_sft_set *s) {
  free(s->ids);
  free(s->target);
  free(s->off);
  free(s->line);
  memset(s, 0, sizeof *s);
}

vklm_status vklm_sft_tokens(const vklm_sft_set *s, uint64_t from, uint64_t to, uint64_t vocab,
                            vklm_tokens **out) {
  *out = NULL;
  if (from >= to || to > s->n) return VKLM_ERROR_INVALID;
  uint64_t n = to - from, base = s->off[from];
  uint64_t *off = malloc((n + 1) * sizeof *off);
  if (!off) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint64_t e = 0; e <= n; e++) off[e] = s->off[from + e] - base;
  vklm_status st = vklm_tokens_from_examples(s->ids + base, s->target + base, off, n, vocab, out);
  free(off);
  return st;
}

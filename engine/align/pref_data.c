/* Reading preference JSONL: TRL's {"prompt","chosen","rejected"} (strings or conversations),
 * implicit-prompt pairs and Anthropic HH transcripts, and vklm rank's rankings of K responses
 * (ties and "all bad" included); tokenized for the reward model and DPO. */
#include <stdlib.h>
#include <string.h>

#include "align/align_internal.h"

static void item_free(vklm_pref_item *it) {
  {
    free(it->prompt);
    free(it->prompt_ids);
    for (uint32_t k = 0; k < it->k; k++) {
      free(it->response ? it->response[k] : NULL);
      free(it->resp_ids ? it->resp_ids[k] : NULL);
    }
    free(it->response);
    free(it->resp_ids);
    free(it->nr);
    free(it->group);
    free(it->answer);
    for (uint32_t k = 0; it->models && k < it->k; k++) free(it->models[k]);
    free(it->models);
  }
}

void vklm_pref_free(vklm_pref_set *s) {
  for (uint64_t i = 0; i < s->n; i++) item_free(&s->items[i]);
  free(s->items);
  memset(s, 0, sizeof *s);
}

uint32_t vklm_pref_pairs(const vklm_pref_item *it, uint32_t *better, uint32_t *worse,
                         uint32_t max) {
  uint32_t n = 0;
  for (uint32_t g = 0; g < it->k; g++) /* better responses first, in group order */
    for (uint32_t w = 0; w < it->k; w++) {
      if (it->group[w] != (int32_t)g) continue;
      for (uint32_t l = 0; l < it->k; l++)
        if (it->group[l] > it->group[w] && n < max) better[n] = w, worse[n++] = l;
    }
  return n;
}

#define HH_MARK "\n\nAssistant:"

/* A row being built: texts (owned) and places. */
typedef struct row {
  char *prompt;
  char **resp;
  int32_t *group;
  uint32_t k;
  int all_bad;
} row;

static void row_free(row *w) {
  free(w->prompt);
  for (uint32_t i = 0; i < w->k; i++) free(w->resp ? w->resp[i] : NULL);
  free(w->resp);
  free(w->group);
  memset(w, 0, sizeof *w);
}

static int row_alloc(row *w, uint32_t k) {
  w->k = k;
  w->resp = calloc(k ? k : 1, sizeof *w->resp);
  w->group = malloc((k ? k : 1) * sizeof *w->group);
  if (!w->resp || !w->group) return 0;
  for (uint32_t i = 0; i < k; i++) w->group[i] = -1;
  return 1;
}

/* The response text a conversation adds after prompt_text: the rendering of msgs (prompt
 * messages followed by the response's, or one assistant message of text) minus the prompt's
 * rendering with the generation prompt. NULL with a message in why. */
static char *conv_response(reader *r, const cJSON *prompt, const cJSON *resp,
                           const char *prompt_text, char *why, size_t wl) {
  cJSON *all = cJSON_Duplicate(prompt, 1);
  if (cJSON_IsString(resp)) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", resp->valuestring);
    cJSON_AddItemToArray(all, m);
  } else {
    const cJSON *m;
    cJSON_ArrayForEach(m, resp) cJSON_AddItemToArray(all, cJSON_Duplicate(m, 1));
  }
  char *full = vklm_align_render(r, all, cJSON_GetArraySize(all), 0, why, wl), *out = NULL;
  cJSON_Delete(all);
  size_t lp = strlen(prompt_text);
  if (full && strncmp(full, prompt_text, lp))
    snprintf(why, wl, "the chat template does not render the response as a continuation of the "
             "prompt");
  else if (full)
    out = strdup(full + lp);
  free(full);
  return out;
}

/* Messages equal in role and content. */
static int same_msg(const cJSON *a, const cJSON *b) {
  return !strcmp(cJSON_GetObjectItem(a, "role")->valuestring,
                 cJSON_GetObjectItem(b, "role")->valuestring) &&
         !strcmp(cJSON_GetObjectItem(a, "content")->valuestring,
                 cJSON_GetObjectItem(b, "content")->valuestring);
}

/* Ranking: indices best first, an inner list a tie group; a permutation of [0, k). */
static const char *parse_ranking(const cJSON *rk, uint32_t k, int32_t *group) {
  if (!cJSON_IsArray(rk)) return "\"ranking\" must be a list of response indices (best first)";
  int32_t g = 0;
  uint32_t seen = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, rk) {
    const cJSON *members = cJSON_IsArray(e) ? e : NULL, *one;
    int count = members ? cJSON_GetArraySize(members) : 1;
    if (members && count == 0) return "an empty tie group in \"ranking\"";
    for (int i = 0; i < count; i++) {
      one = members ? cJSON_GetArrayItem(members, i) : e;
      double v = cJSON_IsNumber(one) ? one->valuedouble : -1;
      if (v < 0 || v >= k || v != (double)(uint32_t)v)
        return "\"ranking\" holds something other than a response index";
      if (group[(uint32_t)v] >= 0) return "\"ranking\" names a response twice: not a permutation";
      group[(uint32_t)v] = g;
      seen++;
    }
    g++;
  }
  if (seen != k) return "\"ranking\" leaves out a response: not a permutation";
  return NULL;
}

static const char *texts_of(reader *r, const cJSON *prompt, row *w, const cJSON *resps,
                            char *why, size_t wl) {
  (void)r;
  uint32_t i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, resps) {
    if (vklm_align_is_messages(prompt) ? !(cJSON_IsString(e) || vklm_align_is_messages(e))
                                       : !cJSON_IsString(e))
      return "a response is neither a string nor (with a conversational prompt) a list of "
             "messages";
    w->resp[i] = vklm_align_is_messages(prompt) ? conv_response(r, prompt, e, w->prompt, why, wl)
                                                : strdup(e->valuestring);
    if (!w->resp[i]) return why;
    i++;
  }
  return NULL;
}

/* The row's prompt and responses as texts; NULL, or the reason it is bad (kind in *kind). */
static const char *row_texts(reader *r, cJSON *j, int allow_unranked, row *w, bad_kind *kind,
                             char *why, size_t wl) {
  const cJSON *prompt = cJSON_GetObjectItem(j, "prompt"), *ch = cJSON_GetObjectItem(j, "chosen"),
              *rj = cJSON_GetObjectItem(j, "rejected"), *rs = cJSON_GetObjectItem(j, "responses"),
              *rk = cJSON_GetObjectItem(j, "ranking");
  *kind = BAD_FIELD;
  int conv = vklm_align_is_messages(prompt);
  if (prompt && !conv && !cJSON_IsString(prompt))
    return "\"prompt\" must be a string or a list of {\"role\", \"content\"} messages";
  if (prompt) {
    w->prompt = conv ? vklm_align_render(r, prompt, cJSON_GetArraySize(prompt), 1, why, wl)
                     : strdup(prompt->valuestring);
    if (!w->prompt) return why;
  }
  if (rs) {
    if (!prompt) return "\"responses\" needs a \"prompt\"";
    if (!cJSON_IsArray(rs)) return "\"responses\" must be a list";
    if (cJSON_GetArraySize(rs) > VKLM_PREF_MAX_K) return "more than 64 responses to one prompt";
    if (!row_alloc(w, (uint32_t)cJSON_GetArraySize(rs))) return "out of memory";
    const char *e = texts_of(r, prompt, w, rs, why, wl);
    if (e) return e;
    if (rk) {
      *kind = BAD_RANKING;
      if (w->k < 2) return "a ranking needs at least 2 responses";
      if ((e = parse_ranking(rk, w->k, w->group))) return e;
      const cJSON *ab = cJSON_GetObjectItem(j, "all_bad");
      if (ab && !cJSON_IsBool(ab)) return "\"all_bad\" must be true or false";
      w->all_bad = cJSON_IsTrue(ab);
    } else if (!allow_unranked) {
      *kind = BAD_RANKING;
      return "no \"ranking\" for the responses";
    }
    return NULL;
  }
  if (ch || rj) {
    if (!ch || !rj) return "\"chosen\" and \"rejected\" come together";
    cJSON *pair = cJSON_CreateArray();
    cJSON_AddItemToArray(pair, cJSON_Duplicate(ch, 1));
    cJSON_AddItemToArray(pair, cJSON_Duplicate(rj, 1));
    const char *e = NULL;
    if (!row_alloc(w, 2)) e = "out of memory";
    else if (prompt) e = texts_of(r, prompt, w, pair, why, wl);
    else if (cJSON_IsString(ch) && cJSON_IsString(rj)) { /* implicit prompt */
      const char *a = ch->valuestring, *b = rj->valuestring;
      size_t p = 0;
      while (a[p] && a[p] == b[p]) p++;
      size_t cut = p;
      for (size_t i = 0; i + strlen(HH_MARK) <= p; i++)
        if (!strncmp(a + i, HH_MARK, strlen(HH_MARK))) cut = i + strlen(HH_MARK);
      while (cut > 0 && ((unsigned char)a[cut] & 0xC0) == 0x80) cut--; /* a UTF-8 boundary */
      w->prompt = strndup(a, cut);
      w->resp[0] = strdup(a + cut);
      w->resp[1] = strdup(b + cut);
    } else if (vklm_align_is_messages(ch) && vklm_align_is_messages(rj)) {
      int n = 0, na = cJSON_GetArraySize(ch), nb = cJSON_GetArraySize(rj);
      while (n < na && n < nb && same_msg(cJSON_GetArrayItem(ch, n), cJSON_GetArrayItem(rj, n))) n++;
      if (n == 0) e = "the conversations share no prompt";
      else {
        cJSON *pm = cJSON_CreateArray(), *c2 = cJSON_CreateArray(), *r2 = cJSON_CreateArray();
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(pm, cJSON_Duplicate(cJSON_GetArrayItem(ch, i), 1));
        for (int i = n; i < na; i++) cJSON_AddItemToArray(c2, cJSON_Duplicate(cJSON_GetArrayItem(ch, i), 1));
        for (int i = n; i < nb; i++) cJSON_AddItemToArray(r2, cJSON_Duplicate(cJSON_GetArrayItem(rj, i), 1));
        w->prompt = vklm_align_render(r, pm, n, 1, why, wl);
        if (!w->prompt) e = why;
        else if (!cJSON_GetArraySize(c2) || !cJSON_GetArraySize(r2)) {
          *kind = BAD_EMPTY;
          e = "a conversation ends where the other does: an empty response";
        } else if (!(w->resp[0] = conv_response(r, pm, c2, w->prompt, why, wl)) ||
                   !(w->resp[1] = conv_response(r, pm, r2, w->prompt, why, wl)))
          e = why;
        cJSON_Delete(pm), cJSON_Delete(c2), cJSON_Delete(r2);
      }
    } else
      e = "\"chosen\" and \"rejected\" must both be strings or both lists of messages";
    cJSON_Delete(pair);
    if (!e) w->group[0] = 0, w->group[1] = 1;
    return e;
  }
  const cJSON *one = cJSON_GetObjectItem(j, "response");
  if (one && prompt && allow_unranked) { /* a single response to score */
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_Duplicate(one, 1));
    const char *e = row_alloc(w, 1) ? texts_of(r, prompt, w, arr, why, wl) : "out of memory";
    cJSON_Delete(arr);
    return e;
  }
  if (prompt && allow_unranked) return row_alloc(w, 0) ? NULL : "out of memory";
  return "no \"chosen\"/\"rejected\" pair or \"responses\" with a \"ranking\"";
}

static vklm_status pref_row(reader *r, cJSON *j, uint32_t line, void *user) {
  vklm_pref_set *s = ((void **)user)[0];
  int allow_unranked = *(int *)((void **)user)[1];
  row w = {0};
  char why[600] = "";
  bad_kind kind;
  const char *e = row_texts(r, j, allow_unranked, &w, &kind, why, sizeof why);
  vklm_status st = VKLM_OK;
  if (e) {
    st = vklm_align_bad(r, line, kind, "%s", e);
    row_free(&w);
    return st;
  }
  /* an empty chosen/rejected is a bad row; in a ranking of sampled responses (vklm rank's rows)
   * an empty one is what the model wrote (it ended at once) and ranks like any other */
  int sampled = cJSON_GetObjectItem(j, "responses") != NULL && r->o->eos >= 0;
  for (uint32_t i = 0; i < w.k && !sampled; i++)
    if (!w.resp[i][0]) {
      st = vklm_align_bad(r, line, BAD_EMPTY, "response %u is empty", i);
      row_free(&w);
      return st;
    }
  vklm_pref_item it = {.prompt = w.prompt ? w.prompt : strdup(""), .response = w.resp,
                       .group = w.group, .k = w.k, .all_bad = w.all_bad, .line = line};
  w.prompt = NULL, w.resp = NULL, w.group = NULL;
  const cJSON *ans = cJSON_GetObjectItem(j, "answer"), *mods = cJSON_GetObjectItem(j, "models");
  if (cJSON_IsString(ans)) it.answer = strdup(ans->valuestring);
  if (cJSON_IsArray(mods) && cJSON_GetArraySize(mods) == (int)it.k && it.k) {
    it.models = calloc(it.k, sizeof *it.models);
    for (uint32_t i = 0; it.models && i < it.k; i++) {
      const cJSON *m = cJSON_GetArrayItem(mods, (int)i);
      it.models[i] = strdup(cJSON_IsString(m) ? m->valuestring : "");
    }
  }
  vklm_token_ids ids = {0};
  int ok = vklm_align_encode(r, it.prompt, &ids);
  it.prompt_ids = ids.ids, it.np = (uint32_t)ids.n;
  it.resp_ids = calloc(it.k ? it.k : 1, sizeof *it.resp_ids);
  it.nr = calloc(it.k ? it.k : 1, sizeof *it.nr);
  ok = ok && it.resp_ids && it.nr;
  uint32_t longest = 0;
  for (uint32_t i = 0; ok && i < it.k; i++) {
    vklm_token_ids rid = {0};
    ok = vklm_align_encode(r, it.response[i], &rid);
    if (ok && r->o->eos >= 0) {
      int32_t *n2 = realloc(rid.ids, (rid.n + 1) * sizeof *n2);
      if (n2) rid.ids = n2, rid.ids[rid.n++] = r->o->eos;
      ok = n2 != NULL;
    }
    it.resp_ids[i] = rid.ids, it.nr[i] = (uint32_t)rid.n;
    if (it.nr[i] > longest) longest = it.nr[i];
  }
  if (!ok) {
    st = vklm_align_bad(r, line, BAD_FIELD, "cannot tokenize the row");
  } else if (r->o->max_len && it.np + longest > r->o->max_len) {
    st = vklm_align_bad(r, line, BAD_LONG, "prompt and response of %u tokens, longer than the "
                        "context allows (%u)", it.np + longest, r->o->max_len);
  } else if (it.k && it.np + it.nr[0] < 2) {
    st = vklm_align_bad(r, line, BAD_EMPTY, "prompt and response hold fewer than 2 tokens");
  } else {
    if (s->n % 64 == 0) {
      vklm_pref_item *ni = realloc(s->items, (s->n + 64) * sizeof *ni);
      if (!ni) {
        snprintf(r->err, r->errlen, "out of host memory");
        item_free(&it);
        return VKLM_ERROR_OUT_OF_HOST_MEMORY;
      }
      s->items = ni;
    }
    s->items[s->n++] = it;
    r->st->kept++;
    r->st->tokens += it.np;
    for (uint32_t i = 0; i < it.k; i++) r->st->tokens += it.nr[i], r->st->target_tokens += it.nr[i];
    return VKLM_OK;
  }
  item_free(&it);
  return st;
}

vklm_status vklm_pref_read(const char *path, const vklm_align_read_opts *o, int allow_unranked,
                           vklm_pref_set *out, vklm_align_stats *stats, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  memset(stats, 0, sizeof *stats);
  reader r = {path, o, stats, err, errlen};
  void *user[2] = {out, &allow_unranked};
  vklm_status st = vklm_align_each_row(&r, pref_row, user);
  if (st == VKLM_OK && out->n == 0) {
    snprintf(err, errlen, "%s: no usable row (%llu rows, %llu skipped)", path,
             (unsigned long long)stats->rows, (unsigned long long)stats->skipped);
    st = VKLM_ERROR_INVALID;
  }
  if (st != VKLM_OK) vklm_pref_free(out);
  return st;
}

/* tokenizer_json.c: Hugging Face tokenizer.json, read and written (cJSON). Reads a byte-level BPE
 * model (vocab, merges as "a b" strings or [a, b] pairs, unk_token, ignore_merges), added tokens,
 * the Unicode normalizers (NFC/NFD/NFKC/NFKD, alone or in a Sequence), the pre-tokenizer
 * (ByteLevel, Split with Regex or String, Digits, or a Sequence of them) and checks the rest:
 * anything vklm would encode differently from tokenizers (another normalizer, a subword prefix, a
 * non-BPE model) is refused with a message, never guessed. Every count, id and
 * string is checked before use. Writes what tokenizers writes for a trained byte-level BPE. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "io/file.h"

enum { MAX_IDS = 1 << 24 };

int tk_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen) {
  vklm_status st = vklm_file_read(path, VKLM_FILE_MAX_TOKENIZER, 0, buf, len, err, errlen);
  return st == VKLM_OK                            ? VKLM_TOK_OK
         : st == VKLM_ERROR_OUT_OF_HOST_MEMORY ? VKLM_TOK_ERR_NOMEM
                                               : VKLM_TOK_ERR_IO;
}

/* An integer in [0, MAX_IDS) from a JSON number, or -1. */
static long json_id(const cJSON *v) {
  if (!cJSON_IsNumber(v)) return -1;
  double d = v->valuedouble;
  if (!(d >= 0 && d < MAX_IDS) || floor(d) != d) return -1;
  return (long)d;
}

static int json_bool(const cJSON *o, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *json_type(const cJSON *o) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
  return cJSON_IsString(t) ? t->valuestring : "";
}

static int load_step(vklm_tokenizer *tk, const cJSON *p, char *err, size_t errlen) {
  if (!cJSON_IsObject(p)) {
    tk_seterr(err, errlen, "pre_tokenizer entry is not an object");
    return VKLM_TOK_ERR_FORMAT;
  }
  const char *type = json_type(p);
  tk_step st;
  int rc;
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!cJSON_IsArray(list)) {
      tk_seterr(err, errlen, "pre_tokenizer Sequence without a pretokenizers array");
      return VKLM_TOK_ERR_FORMAT;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, list) if ((rc = load_step(tk, it, err, errlen))) return rc;
    return 0;
  } else if (!strcmp(type, "ByteLevel")) {
    int aps = json_bool(p, "add_prefix_space", 1);
    if (aps && tk->n_steps) {
      tk_seterr(err, errlen, "ByteLevel with add_prefix_space after another step is not supported");
      return VKLM_TOK_ERR_FORMAT;
    }
    rc = tk_step_bytelevel(&st, aps, json_bool(p, "use_regex", 1), err, errlen);
  } else if (!strcmp(type, "Split")) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                        "MergedWithNext", "Contiguous"};
    int b = -1;
    for (int i = 0; i < 5 && cJSON_IsString(beh); i++)
      if (!strcmp(beh->valuestring, names[i])) b = i;
    if ((!cJSON_IsString(re) && !cJSON_IsString(lit)) || b < 0) {
      tk_seterr(err, errlen, "Split pre-tokenizer needs pattern.Regex or pattern.String and a "
                             "known behavior");
      return VKLM_TOK_ERR_FORMAT;
    }
    rc = tk_step_split(&st, cJSON_IsString(re) ? re->valuestring : lit->valuestring,
                       !cJSON_IsString(re), (tk_behavior)b, json_bool(p, "invert", 0), err, errlen);
  } else if (!strcmp(type, "Digits")) {
    rc = tk_step_digits(&st, json_bool(p, "individual_digits", 0), err, errlen);
  } else {
    tk_seterr(err, errlen, "pre_tokenizer type '%s' is not supported (ByteLevel, Split, Digits, "
                           "Sequence are)", type);
    return VKLM_TOK_ERR_FORMAT;
  }
  if (rc) return rc;
  if ((rc = tk_build_step(tk, &st))) tk_step_free(&st);
  return rc;
}

static int has_bytelevel(const cJSON *p) {
  if (!cJSON_IsObject(p)) return 0;
  if (!strcmp(json_type(p), "ByteLevel")) return 1;
  const cJSON *it, *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
  if (!list) list = cJSON_GetObjectItemCaseSensitive(p, "decoders");
  cJSON_ArrayForEach(it, list) if (has_bytelevel(it)) return 1;
  return 0;
}

static int empty_or_null(const cJSON *v) {
  return !v || cJSON_IsNull(v) || (cJSON_IsString(v) && !v->valuestring[0]);
}

static int load_tree(const cJSON *root, vklm_tokenizer **out, char *err, size_t errlen) {
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
  const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
  const cJSON *it;
  if (!cJSON_IsObject(root) || !cJSON_IsObject(model)) {
    tk_seterr(err, errlen, "not a tokenizer.json: no \"model\" object");
    return VKLM_TOK_ERR_FORMAT;
  }
  const char *mtype = json_type(model);
  if (*mtype && strcmp(mtype, "BPE")) {
    tk_seterr(err, errlen, "model type '%s' is not supported (only BPE)", mtype);
    return VKLM_TOK_ERR_FORMAT;
  }
  if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
    tk_seterr(err, errlen, "BPE model needs a \"vocab\" object and a \"merges\" array");
    return VKLM_TOK_ERR_FORMAT;
  }
  int forms[4], n_forms = 0;
  if (norm && !cJSON_IsNull(norm)) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
    int seq = !strcmp(json_type(norm), "Sequence") && cJSON_IsArray(list);
    const cJSON *one = seq ? (list ? list->child : NULL) : norm;
    for (; one; one = seq ? one->next : NULL) {
      int f = tk_norm_from_name(json_type(one));
      if (f < 0 || n_forms == 4) {
        tk_seterr(err, errlen, "normalizer '%s' is not supported (NFC, NFD, NFKC, NFKD, or a "
                               "Sequence of up to 4 of them)", json_type(one));
        return VKLM_TOK_ERR_FORMAT;
      }
      forms[n_forms++] = f;
    }
  }
  if (!empty_or_null(cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix")) ||
      !empty_or_null(cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix"))) {
    tk_seterr(err, errlen, "continuing_subword_prefix / end_of_word_suffix are not supported");
    return VKLM_TOK_ERR_FORMAT;
  }
  if (!has_bytelevel(pre) && !has_bytelevel(dec)) {
    tk_seterr(err, errlen, "not a byte-level BPE (no ByteLevel pre-tokenizer or decoder)");
    return VKLM_TOK_ERR_FORMAT;
  }
  if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
    tk_seterr(err, errlen, "\"added_tokens\" is not an array");
    return VKLM_TOK_ERR_FORMAT;
  }
  /* sizes */
  long max_id = -1;
  cJSON_ArrayForEach(it, vocab) {
    long id = json_id(it);
    if (id < 0 || !it->string) {
      tk_seterr(err, errlen, "vocab entry '%.60s' has no valid id (integer in [0, %d))",
                it->string ? it->string : "?", MAX_IDS);
      return VKLM_TOK_ERR_FORMAT;
    }
    if (id > max_id) max_id = id;
  }
  cJSON_ArrayForEach(it, added) {
    long id = json_id(cJSON_GetObjectItemCaseSensitive(it, "id"));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
    if (id < 0 || !cJSON_IsString(c)) {
      tk_seterr(err, errlen, "added token without a valid id and content");
      return VKLM_TOK_ERR_FORMAT;
    }
    if (id > max_id) max_id = id;
  }
  vklm_tokenizer *tk;
  int rc = tk_build_begin(&tk, (size_t)(max_id + 1));
  if (rc) return rc;
  tk->ignore_merges = json_bool(model, "ignore_merges", 0);
  for (int i = 0; i < n_forms; i++) tk->norm[tk->n_norm++] = forms[i];
  /* vocabulary: byte-level strings decode to bytes; others keep their UTF-8 (as tokenizers'
   * ByteLevel decoder does) */
  tk_strmap names = {0}; /* vocab string -> id, for merges */
  vklm_bytes b = {0};
  cJSON_ArrayForEach(it, vocab) {
    long id = json_id(it);
    size_t klen = strlen(it->string);
    unsigned fl = TK_TOK_MODEL;
    b.n = 0;
    if (!tk_bytelevel_decode(it->string, klen, &b)) {
      b.n = 0;
      if ((rc = tk_bytes_append(&b, it->string, klen))) goto fail;
      fl |= TK_TOK_RAW;
    }
    if ((rc = tk_build_set(tk, (int32_t)id, b.data ? b.data : "", b.n, fl, err, errlen))) goto fail;
    if ((rc = tk_strmap_put(&names, it->string, klen, (int32_t)id))) goto fail;
  }
  /* merges */
  long idx = 0;
  cJSON_ArrayForEach(it, merges) {
    const char *l = NULL, *r = NULL;
    size_t ll = 0, rl = 0;
    if (cJSON_IsString(it)) {
      const char *s = it->valuestring, *sp = strchr(s, ' ');
      if (sp && !strchr(sp + 1, ' ')) l = s, ll = (size_t)(sp - s), r = sp + 1, rl = strlen(r);
    } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
               cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
      l = cJSON_GetArrayItem(it, 0)->valuestring, ll = strlen(l);
      r = cJSON_GetArrayItem(it, 1)->valuestring, rl = strlen(r);
    }
    int32_t a = l ? tk_strmap_get(&names, l, ll) : -1, c = r ? tk_strmap_get(&names, r, rl) : -1;
    if (!l) {
      tk_seterr(err, errlen, "merge #%ld is neither \"a b\" nor [\"a\", \"b\"]", idx);
      rc = VKLM_TOK_ERR_FORMAT;
      goto fail;
    }
    if (a < 0 || c < 0) {
      tk_seterr(err, errlen, "merge #%ld uses a token that is not in the vocabulary", idx);
      rc = VKLM_TOK_ERR_FORMAT;
      goto fail;
    }
    if ((rc = tk_build_merge(tk, a, c, err, errlen))) goto fail;
    idx++;
  }
  /* unk */
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  if (cJSON_IsString(unk)) tk->unk_id = tk_strmap_get(&names, unk->valuestring, strlen(unk->valuestring));
  /* added tokens */
  cJSON_ArrayForEach(it, added) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
    tk_added a = {(int32_t)json_id(cJSON_GetObjectItemCaseSensitive(it, "id")), c->valuestring,
                  strlen(c->valuestring), (uint8_t)json_bool(it, "special", 0),
                  (uint8_t)json_bool(it, "single_word", 0), (uint8_t)json_bool(it, "lstrip", 0),
                  (uint8_t)json_bool(it, "rstrip", 0), (uint8_t)json_bool(it, "normalized", 0)};
    if ((rc = tk_build_added(tk, &a, err, errlen))) goto fail;
  }
  if (pre && !cJSON_IsNull(pre) && (rc = load_step(tk, pre, err, errlen))) goto fail;
  if ((rc = tk_build_finish(tk, err, errlen))) goto fail;
  tk_strmap_free(&names);
  vklm_bytes_free(&b);
  *out = tk;
  return 0;
fail:
  tk_strmap_free(&names);
  vklm_bytes_free(&b);
  vklm_tokenizer_destroy(tk);
  return rc;
}

int vklm_tokenizer_load_json_buffer(const char *json, size_t len, vklm_tokenizer **out, char *err,
                                    size_t errlen) {
  *out = NULL;
  if (!len) {
    tk_seterr(err, errlen, "empty input: not a tokenizer.json");
    return VKLM_TOK_ERR_FORMAT;
  }
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long off = (at && at >= json && at <= json + len) ? (long)(at - json) : -1;
    tk_seterr(err, errlen, "not valid JSON (error near byte %ld)", off);
    return VKLM_TOK_ERR_FORMAT;
  }
  int rc = load_tree(root, out, err, errlen);
  cJSON_Delete(root);
  return rc;
}

int vklm_tokenizer_load_json(const char *path, vklm_tokenizer **out, char *err, size_t errlen) {
  char *buf;
  size_t len;
  *out = NULL;
  int rc = tk_read_file(path, &buf, &len, err, errlen);
  if (rc) return rc;
  rc = vklm_tokenizer_load_json_buffer(buf, len, out, err, errlen);
  free(buf);
  if (rc && err && errlen) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s: %s", path, err);
    snprintf(err, errlen, "%s", tmp);
  }
  return rc;
}

/* ---- writing ---- */

static cJSON *step_json(const tk_step *st) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                      "MergedWithNext", "Contiguous"};
  if (st->kind == TK_STEP_BYTELEVEL) {
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", st->add_prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", st->use_regex);
  } else if (st->kind == TK_STEP_DIGITS) {
    cJSON_AddStringToObject(o, "type", "Digits");
    cJSON_AddBoolToObject(o, "individual_digits", st->individual_digits);
  } else {
    cJSON_AddStringToObject(o, "type", "Split");
    cJSON *p = cJSON_AddObjectToObject(o, "pattern");
    if (p) cJSON_AddStringToObject(p, st->literal ? "String" : "Regex", st->pattern);
    cJSON_AddStringToObject(o, "behavior", names[st->behavior]);
    cJSON_AddBoolToObject(o, "invert", st->invert);
  }
  return o;
}

/* The string tokenizers stores for model token id. */
static int token_string(const vklm_tokenizer *tk, size_t id, vklm_bytes *s) {
  s->n = 0;
  const char *p = tk->blob + tk->off[id];
  size_t n = tk->off[id + 1] - tk->off[id];
  if (tk->flags[id] & TK_TOK_RAW) return tk_bytes_append(s, p, n);
  if (tk_bytes_append(s, "", 0)) return VKLM_TOK_ERR_NOMEM;
  return tk_bytelevel_encode(p, n, s);
}

static cJSON *tokenizer_json(const vklm_tokenizer *tk) {
  cJSON *root = cJSON_CreateObject(), *o;
  vklm_bytes s = {0}, s2 = {0};
  if (!root) return NULL;
  cJSON_AddStringToObject(root, "version", "1.0");
  cJSON_AddNullToObject(root, "truncation");
  cJSON_AddNullToObject(root, "padding");
  cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
  for (size_t id = 0; id < tk->n_ids && added; id++) /* in id order, as tokenizers writes */
    for (size_t k = 0; k < tk->n_added; k++) {
      const tk_added *a = &tk->added[k];
      if ((size_t)a->id != id || !(o = cJSON_CreateObject())) continue;
      cJSON_AddNumberToObject(o, "id", a->id);
      cJSON_AddStringToObject(o, "content", a->content);
      cJSON_AddBoolToObject(o, "single_word", a->single_word);
      cJSON_AddBoolToObject(o, "lstrip", a->lstrip);
      cJSON_AddBoolToObject(o, "rstrip", a->rstrip);
      cJSON_AddBoolToObject(o, "normalized", a->normalized);
      cJSON_AddBoolToObject(o, "special", a->special);
      cJSON_AddItemToArray(added, o);
    }
  if (!tk->n_norm) {
    cJSON_AddNullToObject(root, "normalizer");
  } else if (tk->n_norm == 1) {
    cJSON *n = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(n, "type", tk_norm_name(tk->norm[0]));
  } else {
    cJSON *n = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(n, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(n, "normalizers");
    for (size_t i = 0; i < tk->n_norm && list; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "type", tk_norm_name(tk->norm[i]));
      cJSON_AddItemToArray(list, o);
    }
  }
  if (!tk->n_steps) {
    cJSON_AddNullToObject(root, "pre_tokenizer");
  } else if (tk->n_steps == 1) {
    cJSON_AddItemToObject(root, "pre_tokenizer", step_json(&tk->steps[0]));
  } else {
    cJSON *seq = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
    for (size_t i = 0; i < tk->n_steps && list; i++) cJSON_AddItemToArray(list, step_json(&tk->steps[i]));
  }
  cJSON_AddNullToObject(root, "post_processor");
  cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
  cJSON_AddStringToObject(dec, "type", "ByteLevel");
  cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
  cJSON_AddBoolToObject(dec, "trim_offsets", 1);
  cJSON_AddBoolToObject(dec, "use_regex", 1);
  cJSON *model = cJSON_AddObjectToObject(root, "model");
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON_AddNullToObject(model, "dropout");
  if (tk->unk_id >= 0 && !token_string(tk, (size_t)tk->unk_id, &s))
    cJSON_AddStringToObject(model, "unk_token", s.data);
  else
    cJSON_AddNullToObject(model, "unk_token");
  cJSON_AddNullToObject(model, "continuing_subword_prefix");
  cJSON_AddNullToObject(model, "end_of_word_suffix");
  cJSON_AddBoolToObject(model, "fuse_unk", 0);
  cJSON_AddBoolToObject(model, "byte_fallback", 0);
  cJSON_AddBoolToObject(model, "ignore_merges", tk->ignore_merges);
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  int ok = vocab != NULL;
  for (size_t id = 0; id < tk->n_ids && ok; id++) {
    if (!(tk->flags[id] & TK_TOK_MODEL)) continue;
    ok = !token_string(tk, id, &s) && cJSON_AddNumberToObject(vocab, s.data, (double)id);
  }
  cJSON *merges = cJSON_AddArrayToObject(model, "merges");
  for (size_t r = 0; r < tk->n_merges && ok && merges; r++) {
    int32_t a = tk->merges[r][0], b = tk->merges[r][1], nid;
    uint32_t rank;
    if (!tk_pairmap_get(&tk->merge_map, a, b, &rank, &nid) || (!tk->mrank && rank != r))
      continue; /* an earlier duplicate: tokenizers keeps the last */
    cJSON *pair = cJSON_CreateArray();
    ok = pair && !token_string(tk, (size_t)a, &s) && !token_string(tk, (size_t)b, &s2);
    if (ok) {
      cJSON_AddItemToArray(pair, cJSON_CreateString(s.data));
      cJSON_AddItemToArray(pair, cJSON_CreateString(s2.data));
      cJSON_AddItemToArray(merges, pair);
    } else {
      cJSON_Delete(pair);
    }
  }
  vklm_bytes_free(&s);
  vklm_bytes_free(&s2);
  if (!ok || !added || !dec || !model || !merges) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

int vklm_tokenizer_save_json(const vklm_tokenizer *tk, const char *path, char *err, size_t errlen) {
  cJSON *root = tokenizer_json(tk);
  if (!root) {
    tk_seterr(err, errlen, "out of memory building tokenizer.json");
    return VKLM_TOK_ERR_NOMEM;
  }
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) {
    tk_seterr(err, errlen, "out of memory printing tokenizer.json");
    return VKLM_TOK_ERR_NOMEM;
  }
  FILE *f = fopen(path, "wb");
  if (!f) {
    tk_seterr(err, errlen, "%s: %s", path, strerror(errno));
    free(text);
    return VKLM_TOK_ERR_IO;
  }
  size_t n = strlen(text);
  int bad = fwrite(text, 1, n, f) != n;
  bad |= fputc('\n', f) == EOF;
  bad |= fclose(f) != 0;
  free(text);
  if (bad) {
    tk_seterr(err, errlen, "%s: write failed", path);
    return VKLM_TOK_ERR_IO;
  }
  return 0;
}

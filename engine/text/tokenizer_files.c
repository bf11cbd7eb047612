/* tokenizer_files.c: the other byte-level BPE formats — GPT-2's vocab.json + merges.txt, and
 * tiktoken rank files ("<base64 token> <rank>" per line, as Llama 3 and OpenAI ship). tiktoken has
 * no merge list: a pair (a, b) may merge when a+b is a token, with the rank of a+b, ties to the
 * leftmost pair, and a piece that is itself a token is taken whole — vklm builds exactly that
 * (every split of every token into two tokens becomes a ranked merge; ignore_merges on). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text/tokenizer_internal.h"

enum { MAX_IDS = 1 << 24 };

static int add_steps(vklm_tokenizer *tk, const char *pattern, char *err, size_t errlen) {
  tk_step st;
  int rc;
  if (!pattern) {
    if ((rc = tk_step_bytelevel(&st, 0, 1, err, errlen))) return rc;
    if ((rc = tk_build_step(tk, &st))) tk_step_free(&st);
    return rc;
  }
  if ((rc = tk_step_split(&st, pattern, 0, TK_SPLIT_ISOLATED, 0, err, errlen))) return rc;
  if ((rc = tk_build_step(tk, &st))) {
    tk_step_free(&st);
    return rc;
  }
  if ((rc = tk_step_bytelevel(&st, 0, 0, err, errlen))) return rc;
  if ((rc = tk_build_step(tk, &st))) tk_step_free(&st);
  return rc;
}

int vklm_tokenizer_load_gpt2(const char *vocab_json, const char *merges_txt, const char *pattern,
                             vklm_tokenizer **out, char *err, size_t errlen) {
  *out = NULL;
  char *vbuf = NULL, *mbuf = NULL;
  size_t vlen, mlen;
  cJSON *root = NULL;
  vklm_tokenizer *tk = NULL;
  tk_strmap names = {0};
  vklm_bytes b = {0};
  int rc = tk_read_file(vocab_json, &vbuf, &vlen, err, errlen);
  if (rc || (rc = tk_read_file(merges_txt, &mbuf, &mlen, err, errlen))) goto done;
  root = cJSON_ParseWithLength(vbuf, vlen);
  rc = VKLM_TOK_ERR_FORMAT;
  if (!cJSON_IsObject(root)) {
    tk_seterr(err, errlen, "%s: not a JSON object of token -> id", vocab_json);
    goto done;
  }
  long max_id = -1;
  const cJSON *it;
  cJSON_ArrayForEach(it, root) {
    double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (!(d >= 0 && d < MAX_IDS) || (double)(long)d != d) {
      tk_seterr(err, errlen, "%s: entry '%.60s' has no valid id", vocab_json, it->string);
      goto done;
    }
    if ((long)d > max_id) max_id = (long)d;
  }
  if ((rc = tk_build_begin(&tk, (size_t)(max_id + 1)))) goto done;
  cJSON_ArrayForEach(it, root) {
    size_t klen = strlen(it->string);
    unsigned fl = TK_TOK_MODEL;
    b.n = 0;
    if (!tk_bytelevel_decode(it->string, klen, &b)) {
      b.n = 0;
      if ((rc = tk_bytes_append(&b, it->string, klen))) goto done;
      fl |= TK_TOK_RAW;
    }
    if ((rc = tk_build_set(tk, (int32_t)it->valuedouble, b.data ? b.data : "", b.n, fl, err, errlen)) ||
        (rc = tk_strmap_put(&names, it->string, klen, (int32_t)it->valuedouble)))
      goto done;
  }
  /* merges.txt: "#version" header, then "a b" per line */
  size_t line_no = 0;
  for (char *p = mbuf, *end = mbuf + mlen; p < end;) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *e = nl ? nl : end;
    line_no++;
    size_t n = (size_t)(e - p);
    if (n && p[n - 1] == '\r') n--;
    if (n && !(line_no == 1 && n >= 8 && !memcmp(p, "#version", 8))) {
      char *sp = memchr(p, ' ', n);
      int32_t a = -1, c = -1;
      if (sp && !memchr(sp + 1, ' ', n - (size_t)(sp + 1 - p))) {
        a = tk_strmap_get(&names, p, (size_t)(sp - p));
        c = tk_strmap_get(&names, sp + 1, n - (size_t)(sp + 1 - p));
      }
      if (a < 0 || c < 0) {
        tk_seterr(err, errlen, "%s:%zu: not \"a b\" with both tokens in the vocabulary",
                  merges_txt, line_no);
        rc = VKLM_TOK_ERR_FORMAT;
        goto done;
      }
      if ((rc = tk_build_merge(tk, a, c, err, errlen))) goto done;
    }
    p = e + 1;
  }
  int32_t eot = tk_strmap_get(&names, "<|endoftext|>", 13);
  if (eot >= 0) {
    tk_added a = {eot, "<|endoftext|>", 13, 1, 0, 0, 0, 0};
    if ((rc = tk_build_added(tk, &a, err, errlen))) goto done;
  }
  if ((rc = add_steps(tk, pattern, err, errlen)) || (rc = tk_build_finish(tk, err, errlen))) goto done;
  *out = tk;
  tk = NULL;
done:
  vklm_tokenizer_destroy(tk);
  cJSON_Delete(root);
  tk_strmap_free(&names);
  vklm_bytes_free(&b);
  free(vbuf);
  free(mbuf);
  return rc;
}

/* The rank of a tiktoken line: the decimal digits after its space (at most a '\r' after them),
 * nothing else (no sign, no blank, no empty rank); -1 when there is none or it is >= MAX_IDS. */
static long parse_rank(const char *s, const char *e) {
  if (e > s && e[-1] == '\r') e--;
  if (s == e) return -1;
  long r = 0;
  for (const char *q = s; q < e; q++) {
    if (*q < '0' || *q > '9') return -1;
    r = r * 10 + (*q - '0');
    if (r >= MAX_IDS) return -1;
  }
  return r;
}

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Standard base64 with optional padding; returns 0 on a bad character. */
static int b64_decode(const char *s, size_t n, vklm_bytes *out) {
  out->n = 0;
  while (n && s[n - 1] == '=') n--;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64val((unsigned char)s[i]);
    if (v < 0) return 0;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      char c = (char)((acc >> bits) & 0xFF);
      if (tk_bytes_append(out, &c, 1)) return 0;
    }
  }
  return tk_bytes_append(out, "", 0) == 0;
}

int vklm_tokenizer_load_tiktoken(const char *path, const char *pattern, const char *const *specials,
                                 const int32_t *special_ids, size_t n_specials,
                                 vklm_tokenizer **out, char *err, size_t errlen) {
  *out = NULL;
  if (!pattern) {
    tk_seterr(err, errlen, "a tiktoken file needs its pre-tokenizer pattern");
    return VKLM_TOK_ERR_ARG;
  }
  char *buf;
  size_t len;
  int rc = tk_read_file(path, &buf, &len, err, errlen);
  if (rc) return rc;
  vklm_tokenizer *tk = NULL;
  vklm_bytes b = {0};
  /* pass 1: the largest rank */
  long max_rank = -1, lines = 0;
  rc = VKLM_TOK_ERR_FORMAT;
  for (char *p = buf, *end = buf + len; p < end;) {
    char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
    lines++;
    char *sp = memchr(p, ' ', (size_t)(e - p));
    if (e > p && !(e == p + 1 && *p == '\r')) {
      long r = sp ? parse_rank(sp + 1, e) : -1;
      if (r < 0) {
        tk_seterr(err, errlen, "%s:%ld: not \"<base64> <rank>\" (the rank: decimal digits, "
                  "below %d)", path, lines, MAX_IDS);
        goto done;
      }
      if (r > max_rank) max_rank = r;
    }
    p = e + 1;
  }
  if (max_rank < 0) {
    tk_seterr(err, errlen, "%s: no tokens", path);
    goto done;
  }
  long n_ids = max_rank + 1;
  for (size_t i = 0; i < n_specials; i++) {
    long id = special_ids ? special_ids[i] : max_rank + 1 + (long)i;
    if (id < 0 || id >= MAX_IDS) {
      tk_seterr(err, errlen, "special token id %ld out of range", id);
      goto done;
    }
    if (id + 1 > n_ids) n_ids = id + 1;
  }
  if ((rc = tk_build_begin(&tk, (size_t)n_ids))) goto done;
  for (char *p = buf, *end = buf + len; p < end;) {
    char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
    char *sp = memchr(p, ' ', (size_t)(e - p));
    if (sp) {
      if (!b64_decode(p, (size_t)(sp - p), &b) || !b.n) {
        tk_seterr(err, errlen, "%s: bad base64 token '%.*s'", path, (int)(sp - p > 60 ? 60 : sp - p), p);
        rc = VKLM_TOK_ERR_FORMAT;
        goto done;
      }
      if ((rc = tk_build_set(tk, (int32_t)parse_rank(sp + 1, e), b.data, b.n, TK_TOK_MODEL, err,
                             errlen)))
        goto done;
    }
    p = e + 1;
  }
  for (size_t i = 0; i < n_specials; i++) {
    tk_added a = {special_ids ? special_ids[i] : (int32_t)(max_rank + 1 + (long)i),
                  (char *)specials[i], strlen(specials[i]), 1, 0, 0, 0, 0};
    if ((rc = tk_build_added(tk, &a, err, errlen))) goto done;
  }
  tk->ignore_merges = 1;
  if ((rc = add_steps(tk, pattern, err, errlen)) || (rc = tk_build_finish(tk, err, errlen))) goto done;
  /* merges: every split of every token (rank order) into two tokens, ranked by the token */
  for (size_t id = 0; id < tk->n_ids; id++) {
    if (!(tk->flags[id] & TK_TOK_MODEL)) continue;
    const char *t = tk->blob + tk->off[id];
    size_t n = tk->off[id + 1] - tk->off[id];
    for (size_t k = 1; k < n; k++) {
      int32_t a = tk_strmap_get(&tk->model_map, t, k), c = tk_strmap_get(&tk->model_map, t + k, n - k);
      if (a < 0 || c < 0) continue;
      if ((rc = tk_build_merge_ranked(tk, a, c, (uint32_t)id)) ||
          (rc = tk_pairmap_put(&tk->merge_map, a, c, (uint32_t)id, (int32_t)id)))
        goto done;
    }
  }
  *out = tk;
  tk = NULL;
done:
  vklm_tokenizer_destroy(tk);
  vklm_bytes_free(&b);
  free(buf);
  return rc;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

int vklm_tokenizer_load(const char *path, vklm_tokenizer **out, char *err, size_t errlen) {
  *out = NULL;
  if (!is_dir(path)) return vklm_tokenizer_load_json(path, out, err, errlen);
  size_t n = strlen(path) + 32;
  char *a = malloc(n), *b = malloc(n);
  int rc = VKLM_TOK_ERR_NOMEM;
  if (a && b) {
    snprintf(a, n, "%s/tokenizer.json", path);
    if (exists(a)) {
      rc = vklm_tokenizer_load_json(a, out, err, errlen);
    } else {
      snprintf(a, n, "%s/vocab.json", path);
      snprintf(b, n, "%s/merges.txt", path);
      if (exists(a) && exists(b)) {
        rc = vklm_tokenizer_load_gpt2(a, b, NULL, out, err, errlen);
      } else {
        tk_seterr(err, errlen, "%s: holds neither tokenizer.json nor vocab.json + merges.txt", path);
        rc = VKLM_TOK_ERR_IO;
      }
    }
  }
  free(a);
  free(b);
  return rc;
}

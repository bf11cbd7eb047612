/* Encoding a rendered chat prompt so that only the template's own text becomes control
 * tokens. Before rendering, every string value of the caller's variables (JSON object keys
 * excepted) is searched for the text of the tokenizer's special tokens and for the private-use
 * characters the placeholders are made of; each occurrence becomes a placeholder U+E000,
 * hexadecimal digits as U+E010..U+E01F, U+E001. After rendering, the text between placeholders
 * is encoded with special tokens on, each placeholder's original text with them off. No
 * occurrence (the usual case): one encode of the whole prompt, as Hugging Face does it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "chat/chat.h"

typedef struct sp_list { /* special-token texts, longest first */
  const char **s;
  size_t *len, n;
  uint8_t first[256];
} sp_list;

typedef struct orig {
  const char *s;
  size_t n;
} orig;

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int fail;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->fail) return;
  if (b->n + n + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + n + 1) c *= 2;
    char *p = realloc(b->p, c);
    if (!p) {
      b->fail = 1;
      return;
    }
    b->p = p;
    b->cap = c;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

/* the placeholder characters, as pseudo-specials so user text cannot forge them */
static const char *const pua[] = {
    "\xee\x80\x80", "\xee\x80\x81", "\xee\x80\x90", "\xee\x80\x91", "\xee\x80\x92",
    "\xee\x80\x93", "\xee\x80\x94", "\xee\x80\x95", "\xee\x80\x96", "\xee\x80\x97",
    "\xee\x80\x98", "\xee\x80\x99", "\xee\x80\x9a", "\xee\x80\x9b", "\xee\x80\x9c",
    "\xee\x80\x9d", "\xee\x80\x9e", "\xee\x80\x9f"};
#define NPUA (sizeof pua / sizeof pua[0])

static int collect(vklm_tokenizer *tk, sp_list *L) {
  size_t V = vklm_tokenizer_vocab_size(tk), cap = NPUA;
  for (size_t id = 0; id < V; id++) cap += vklm_tokenizer_is_special(tk, (int32_t)id) != 0;
  L->s = malloc(cap * sizeof *L->s);
  L->len = malloc(cap * sizeof *L->len);
  if (!L->s || !L->len) return -1;
  L->n = 0;
  memset(L->first, 0, sizeof L->first);
  for (size_t id = 0; id < V; id++) {
    size_t n;
    const char *b;
    if (!vklm_tokenizer_is_special(tk, (int32_t)id) ||
        !(b = vklm_tokenizer_token_bytes(tk, (int32_t)id, &n)) || !n)
      continue;
    L->s[L->n] = b;
    L->len[L->n++] = n;
  }
  for (size_t i = 0; i < NPUA; i++) {
    L->s[L->n] = pua[i];
    L->len[L->n++] = 3;
  }
  for (size_t i = 1; i < L->n; i++) /* longest first (insertion sort; a few hundred at most) */
    for (size_t j = i; j > 0 && L->len[j] > L->len[j - 1]; j--) {
      const char *s = L->s[j];
      size_t l = L->len[j];
      L->s[j] = L->s[j - 1];
      L->len[j] = L->len[j - 1];
      L->s[j - 1] = s;
      L->len[j - 1] = l;
    }
  for (size_t i = 0; i < L->n; i++) L->first[(uint8_t)L->s[i][0]] = 1;
  return 0;
}

static size_t match(const sp_list *L, const char *s, size_t n, size_t i, size_t *which) {
  if (!L->first[(uint8_t)s[i]]) return 0;
  for (size_t k = 0; k < L->n; k++)
    if (L->len[k] <= n - i && !memcmp(s + i, L->s[k], L->len[k])) {
      *which = k;
      return L->len[k];
    }
  return 0;
}


static int hex4(const char *s, uint32_t *v) {
  *v = 0;
  for (int k = 0; k < 4; k++) {
    char c = s[k];
    int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (h < 0) return -1;
    *v = *v * 16 + (uint32_t)h;
  }
  return 0;
}

/* Decodes the JSON string literal at s[i] ('"'); returns the index past it, or 0 if bad. */
static size_t json_string(const char *s, size_t n, size_t i, sbuf *o) {
  size_t k = i + 1, run = k;
  while (k < n && s[k] != '"') {
    if (s[k] != '\\') {
      k++;
      continue;
    }
    sb_put(o, s + run, k - run);
    if (k + 1 >= n) return 0;
    char c = s[k + 1];
    const char *m = strchr("\"\\/bfnrt", c);
    if (m && c) {
      sb_put(o, &"\"\\/\b\f\n\r\t"[m - "\"\\/bfnrt"], 1);
      k += 2;
    } else if (c == 'u') {
      uint32_t cp, lo;
      if (k + 6 > n || hex4(s + k + 2, &cp)) return 0;
      k += 6;
      if (cp >= 0xD800 && cp < 0xDC00 && k + 6 <= n && s[k] == '\\' && s[k + 1] == 'u' &&
          !hex4(s + k + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        k += 6;
      }
      char e[4];
      sb_put(o, e, (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)e));
    } else {
      return 0;
    }
    run = k;
  }
  if (k >= n) return 0;
  sb_put(o, s + run, k - run);
  return k + 1;
}

static void put_json_str(sbuf *b, const char *s, size_t n) {
  sb_put(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    char e[8];
    sb_put(b, s + run, i - run);
    snprintf(e, sizeof e, ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : "\\u%04x", ch);
    sb_put(b, e, strlen(e));
    run = i + 1;
  }
  sb_put(b, s + run, n - run);
  sb_put(b, "\"", 1);
}

static void put_placeholder(sbuf *b, size_t id) {
  char d[24];
  int nd = 0;
  do {
    d[nd++] = (char)(id % 16);
    id /= 16;
  } while (id);
  sb_put(b, pua[0], 3);
  while (nd--) sb_put(b, pua[2 + d[nd]], 3);
  sb_put(b, pua[1], 3);
}

/* The variables with special-token text in their string values swapped for placeholders.
 * *origs / *norig: what each placeholder stands for. Returns NULL (with err) on bad JSON. */
static char *defang(const char *vars, const sp_list *L, orig **origs, size_t *norig,
                    char *err, size_t errlen) {
  sbuf out = {0}, str = {0}, rep = {0};
  size_t n = strlen(vars), cap = 0;
  *origs = NULL;
  *norig = 0;
  for (size_t i = 0; i < n;) {
    if (vars[i] != '"') {
      sb_put(&out, vars + i, 1);
      i++;
      continue;
    }
    str.n = 0;
    size_t e = json_string(vars, n, i, &str);
    if (!e) {
      snprintf(err, errlen, "the template variables: a malformed JSON string at byte %zu", i);
      goto fail;
    }
    size_t j = e;
    while (j < n && (vars[j] == ' ' || vars[j] == '\t' || vars[j] == '\n' || vars[j] == '\r')) j++;
    int key = j < n && vars[j] == ':', any = 0;
    rep.n = 0;
    for (size_t k = 0; !key && k < str.n;) {
      size_t which, m = str.p ? match(L, str.p, str.n, k, &which) : 0;
      if (!m) {
        sb_put(&rep, str.p + k, 1);
        k++;
        continue;
      }
      if (*norig == cap) {
        cap = cap ? 2 * cap : 16;
        orig *no = realloc(*origs, cap * sizeof *no);
        if (!no) goto oom;
        *origs = no;
      }
      (*origs)[*norig] = (orig){L->s[which], m};
      put_placeholder(&rep, (*norig)++);
      any = 1;
      k += m;
    }
    if (any) put_json_str(&out, rep.p, rep.n);
    else sb_put(&out, vars + i, e - i);
    i = e;
  }
  if (out.fail || str.fail || rep.fail) goto oom;
  free(str.p);
  free(rep.p);
  if (!out.p) sb_put(&out, "", 0);
  return out.p;
oom:
  snprintf(err, errlen, "out of memory");
fail:
  free(out.p);
  free(str.p);
  free(rep.p);
  free(*origs);
  *origs = NULL;
  return NULL;
}

/* Is s[i..] one of the placeholder characters? */
static int is_pua(const char *s, size_t n, size_t i) {
  if (i + 3 > n || (unsigned char)s[i] != 0xEE || (unsigned char)s[i + 1] != 0x80) return 0;
  unsigned char c = (unsigned char)s[i + 2];
  return c == 0x80 || c == 0x81 || (c >= 0x90 && c <= 0x9F);
}

/* A placeholder at s[i]: its id and the index past it; 0 if s[i] does not start a whole one. */
static size_t placeholder(const char *s, size_t n, size_t i, size_t norig, size_t *id) {
  if (i + 3 > n || memcmp(s + i, pua[0], 3)) return 0;
  size_t k = i + 3;
  int nd = 0;
  *id = 0;
  while (nd < 12 && is_pua(s, n, k) && (unsigned char)s[k + 2] >= 0x90) {
    *id = *id * 16 + ((unsigned char)s[k + 2] - 0x90);
    k += 3;
    nd++;
  }
  if (!nd || k + 3 > n || memcmp(s + k, pua[1], 3) || *id >= norig) return 0;
  return k + 3;
}

/* Encodes rendered text, placeholders as their originals without special tokens. */
static vklm_status encode_pieces(vklm_tokenizer *tk, const char *s, size_t n, const orig *origs,
                                 size_t norig, vklm_token_ids *ids, char *err, size_t errlen) {
  size_t seg = 0;
  for (size_t i = 0; norig && i < n;) {
    if (!is_pua(s, n, i)) {
      i++;
      continue;
    }
    size_t id, e = placeholder(s, n, i, norig, &id);
    if (!e) {
      snprintf(err, errlen, "a message holds special-token text that the template cut apart, "
               "so it cannot be encoded safely");
      return VKLM_ERROR_INVALID;
    }
    if ((seg < i && vklm_tokenizer_encode(tk, s + seg, i - seg, VKLM_ENCODE_SPECIALS, ids)) ||
        vklm_tokenizer_encode(tk, origs[id].s, origs[id].n, 0, ids))
      goto tok;
    i = seg = e;
  }
  if (seg < n && vklm_tokenizer_encode(tk, s + seg, n - seg, VKLM_ENCODE_SPECIALS, ids)) goto tok;
  return VKLM_OK;
tok:
  snprintf(err, errlen, "the rendered prompt cannot be tokenized");
  return VKLM_ERROR_INVALID;
}

/* the rendered text with placeholders put back as their originals (what --show prints) */
static char *restore(const char *s, size_t n, const orig *origs, size_t norig) {
  sbuf b = {0};
  for (size_t i = 0; i < n;) {
    size_t id, e = norig ? placeholder(s, n, i, norig, &id) : 0;
    if (e) {
      sb_put(&b, origs[id].s, origs[id].n);
      i = e;
    } else {
      sb_put(&b, s + i, 1);
      i++;
    }
  }
  if (!b.p) sb_put(&b, "", 0);
  if (b.fail) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

vklm_status vklm_chat_template_encode(const vklm_chat_template *t, vklm_tokenizer *tk,
                                      const char *vars_json, int add_generation_prompt,
                                      int64_t now, vklm_token_ids *ids, char **text, char *err,
                                      size_t errlen) {
  if (text) *text = NULL;
  sp_list L = {0};
  orig *origs = NULL;
  size_t norig = 0;
  char *vars = NULL, *out = NULL;
  size_t outlen = 0, n0 = ids->n;
  vklm_status st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  snprintf(err, errlen, "out of memory");
  if (collect(tk, &L)) goto done;
  if (vars_json && !(vars = defang(vars_json, &L, &origs, &norig, err, errlen))) {
    st = VKLM_ERROR_INVALID;
    goto done;
  }
  st = vklm_chat_template_apply(t, vars, add_generation_prompt, now, &out, &outlen, err, errlen);
  if (st) goto done;
  st = encode_pieces(tk, out, outlen, origs, norig, ids, err, errlen);
  if (st) ids->n = n0;
  if (!st && text && !(*text = restore(out, outlen, origs, norig))) {
    snprintf(err, errlen, "out of memory");
    st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
done:
  free(L.s);
  free(L.len);
  free(origs);
  free(vars);
  free(out);
  return st;
}

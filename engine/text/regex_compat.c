/* regex_compat.c: pre-tokenizer patterns. Files (tokenizer.json, tiktoken) carry patterns written
 * for Oniguruma's Ruby syntax (what Hugging Face tokenizers compiles them with); vklm runs them
 * with PCRE2. The differences that matter, each checked against tokenizers:
 *   \s \S      Oniguruma: Unicode White_Space (U+0085 included) -> \p{White_Space}
 *   \h \H      Oniguruma: hex digit (PCRE2: horizontal space)   -> [0-9a-fA-F]
 *   \w \W      Alphabetic, marks, Nd, Pc, and ¹²³¼½¾ (PCRE2: letters, numbers, _)
 *   X{n,m}+    Ruby: (?:X{n,m})+ (PCRE2: possessive)             -> wrapped
 *   {,n}       Ruby: {0,n}
 *   ^ $        Ruby: always line anchors                         -> PCRE2_MULTILINE
 *   (?m)       Ruby: dot matches newline                         -> (?s)
 *   \uHHHH     -> \x{HHHH}
 *   \C         one code unit (not a character): refused (PCRE2_NEVER_BACKSLASH_C), as it could
 *              split a UTF-8 character
 * Not bridged: Unicode versions (PCRE2 10.42 knows Unicode 14, tokenizers' Oniguruma a newer one:
 * letters assigned since 2022, mostly CJK extensions H/I, are \p{Cn} to vklm). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

static const char *const builtin[VKLM_PRETOK_COUNT] = {
    /* GPT-2 (encoder.py; HF ByteLevel's regex) */
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    /* tiktoken cl100k_base, with \p{N}{1,3}+ written \p{N}{1,3}: the same split under tiktoken's
     * engine and under Oniguruma, which reads {1,3}+ as a repeated group */
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]++"
    "[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s",
    /* Llama 3 (tokenizer.json, = the original cl100k pattern) */
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    /* tiktoken o200k_base */
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
static const char *const builtin_names[VKLM_PRETOK_COUNT] = {"gpt2", "cl100k", "llama3", "o200k"};

const char *vklm_pretok_pattern_regex(vklm_pretok_pattern p) {
  return (unsigned)p < VKLM_PRETOK_COUNT ? builtin[p] : NULL;
}

int vklm_pretok_pattern_from_name(const char *name) {
  for (int i = 0; i < VKLM_PRETOK_COUNT; i++)
    if (!strcmp(name, builtin_names[i])) return i;
  return -1;
}

/* Oniguruma's \w: Alphabetic, marks, Nd, Pc, and from its Latin-1 table the digits/fractions
 * ¹²³¼½¾ (checked code point by code point against tokenizers) */
#define WORD_CLASS "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{b2}\\x{b3}\\x{b9}\\x{bc}-\\x{be}"

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of the UTF-8 character at s (1 for a stray byte). */
static size_t char_len(const char *s, size_t avail) {
  int l = tk_utf8_seq_len((const unsigned char *)s, avail);
  return l ? (size_t)l : 1;
}

/* Parses "{n}", "{n,}", "{n,m}", "{,m}" at p; returns its length or 0 if not a quantifier. */
static size_t quantifier_len(const char *p, size_t avail, int *lower_missing) {
  size_t i = 1;
  size_t d1 = 0, d2 = 0;
  int comma = 0;
  while (i < avail && is_digit(p[i])) i++, d1++;
  if (i < avail && p[i] == ',') {
    comma = 1;
    i++;
    while (i < avail && is_digit(p[i])) i++, d2++;
  }
  if (i >= avail || p[i] != '}') return 0;
  if (!d1 && !d2) return 0;
  *lower_missing = !d1 && comma;
  return i + 1;
}

int tk_regex_translate(const char *in, size_t len, vklm_bytes *out) {
  size_t gstack[256];
  size_t depth = 0;
  long last_atom = -1; /* output offset where the latest complete atom starts */
  int in_class = 0;
  size_t class_start = 0;
  int rc = 0;
  out->n = 0;
  if ((rc = tk_bytes_append(out, "", 0))) return rc;
#define EMIT(s, n)                                  \
  do {                                              \
    if ((rc = tk_bytes_append(out, (s), (n)))) return rc; \
  } while (0)
#define EMITS(s) EMIT((s), strlen(s))
  size_t i = 0;
  while (i < len) {
    char c = in[i];
    if (c == '\\') {
      if (i + 1 >= len) return VKLM_TOK_ERR_REGEX;
      char d = in[i + 1];
      size_t atom = out->n;
      i += 2;
      switch (d) {
      case 's': EMITS("\\p{White_Space}"); break;
      case 'S': EMITS("\\P{White_Space}"); break;
      case 'h': EMITS(in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"); break;
      case 'H':
        EMITS(in_class ? "\\x{0}-\\x{2f}\\x{3a}-\\x{40}\\x{47}-\\x{60}\\x{67}-\\x{10ffff}"
                       : "[^0-9a-fA-F]");
        break;
      case 'w': EMITS(in_class ? WORD_CLASS : "[" WORD_CLASS "]"); break;
      case 'W':
        if (in_class) EMITS("\\W"); /* approximation inside a class */
        else EMITS("[^" WORD_CLASS "]");
        break;
      case 'u':
        if (i + 4 <= len && strspn(in + i, "0123456789abcdefABCDEF") >= 4) {
          EMITS("\\x{");
          EMIT(in + i, 4);
          EMITS("}");
          i += 4;
        } else if (i < len && in[i] == '{') {
          EMITS("\\x");
          size_t j = i;
          while (j < len && in[j] != '}') j++;
          if (j >= len) return VKLM_TOK_ERR_REGEX;
          EMIT(in + i, j + 1 - i);
          i = j + 1;
        } else {
          EMITS("u");
        }
        break;
      case 'p':
      case 'P':
      case 'x':
      case 'k':
      case 'g':
        EMIT(in + i - 2, 2);
        if (i < len && (in[i] == '{' || in[i] == '<')) {
          char close = in[i] == '{' ? '}' : '>';
          size_t j = i;
          while (j < len && in[j] != close) j++;
          if (j >= len) return VKLM_TOK_ERR_REGEX;
          EMIT(in + i, j + 1 - i);
          i = j + 1;
        } else if (d == 'x') {
          size_t k = 0;
          while (k < 2 && i + k < len && strchr("0123456789abcdefABCDEF", in[i + k]) && in[i + k])
            k++;
          EMIT(in + i, k);
          i += k;
        } else if (i < len) {
          size_t l = char_len(in + i, len - i);
          EMIT(in + i, l);
          i += l;
        }
        break;
      default: {
        EMIT(in + i - 2, 1);
        size_t l = char_len(in + i - 1, len - (i - 1));
        EMIT(in + i - 1, l);
        i += l - 1;
      }
      }
      if (!in_class) last_atom = (long)atom;
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < len && in[i + 1] == ':') { /* POSIX class [:alpha:] */
        size_t j = i + 2;
        while (j + 1 < len && !(in[j] == ':' && in[j + 1] == ']')) j++;
        if (j + 1 >= len) return VKLM_TOK_ERR_REGEX;
        EMIT(in + i, j + 2 - i);
        i = j + 2;
        continue;
      }
      if (c == '[') { /* Ruby nested class: PCRE2 10.42 has none */
        EMITS("\\[");
        i++;
        continue;
      }
      size_t l = char_len(in + i, len - i);
      EMIT(in + i, l);
      i += l;
      if (c == ']') {
        in_class = 0;
        last_atom = (long)class_start;
      }
      continue;
    }
    switch (c) {
    case '[':
      class_start = out->n;
      in_class = 1;
      EMITS("[");
      i++;
      if (i < len && in[i] == '^') {
        EMITS("^");
        i++;
      }
      if (i < len && in[i] == ']') {
        EMITS("\\]");
        i++;
      }
      break;
    case '(':
      if (depth == sizeof gstack / sizeof gstack[0]) return VKLM_TOK_ERR_REGEX;
      gstack[depth++] = out->n;
      EMITS("(");
      i++;
      if (i < len && in[i] == '?') {
        size_t j = i + 1;
        while (j < len && strchr("imx-", in[j]) && in[j]) j++;
        if (j > i + 1 && j < len && (in[j] == ')' || in[j] == ':')) {
          EMITS("?");
          for (size_t k = i + 1; k < j; k++) EMIT(in[k] == 'm' ? "s" : in + k, 1);
          i = j;
        }
      }
      last_atom = -1;
      break;
    case ')':
      if (!depth) return VKLM_TOK_ERR_REGEX;
      EMITS(")");
      i++;
      last_atom = (long)gstack[--depth];
      break;
    case '{': {
      int lower_missing = 0;
      size_t q = quantifier_len(in + i, len - i, &lower_missing);
      if (!q) {
        EMITS("\\{");
        i++;
        last_atom = (long)out->n - 2;
        break;
      }
      if (lower_missing) {
        EMITS("{0");
        EMIT(in + i + 1, q - 1);
      } else {
        EMIT(in + i, q);
      }
      i += q;
      if (i < len && in[i] == '+' && last_atom >= 0) { /* Ruby: (?:X{n,m})+ */
        if ((rc = tk_bytes_append(out, "   ", 3))) return rc;
        memmove(out->data + last_atom + 3, out->data + last_atom, out->n - 3 - (size_t)last_atom);
        memcpy(out->data + last_atom, "(?:", 3);
        EMITS(")+");
        i++;
      } else {
        if (i < len && in[i] == '?') {
          EMITS("?");
          i++;
        }
        last_atom = -1;
      }
      break;
    }
    case '*':
    case '+':
    case '?':
      EMIT(&c, 1);
      i++;
      if (i < len && (in[i] == '+' || in[i] == '?')) {
        EMIT(in + i, 1);
        i++;
      }
      last_atom = -1;
      break;
    case '|':
      EMITS("|");
      i++;
      last_atom = -1;
      break;
    default: {
      size_t l = char_len(in + i, len - i);
      last_atom = (long)out->n;
      EMIT(in + i, l);
      i += l;
    }
    }
  }
  if (in_class || depth) return VKLM_TOK_ERR_REGEX;
  return 0;
#undef EMIT
#undef EMITS
}

pcre2_code *tk_regex_compile(const char *pattern, int literal, char *err, size_t errlen) {
  vklm_bytes tr = {0};
  const char *src = pattern;
  size_t n = strlen(pattern);
  uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  if (literal) {
    opts |= PCRE2_LITERAL;
  } else {
    if (tk_regex_translate(pattern, n, &tr)) {
      tk_seterr(err, errlen, "pre-tokenizer pattern cannot be translated: %.200s", pattern);
      vklm_bytes_free(&tr);
      return NULL;
    }
    src = tr.data;
    n = tr.n;
    /* \C matches one code unit, so a match could end inside a UTF-8 character (and, with
     * invalid UTF-8, a piece end before it starts): such patterns are refused at compile time */
    opts |= PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C;
  }
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, n, opts, &ec, &eo, NULL);
  if (!re) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(ec, msg, sizeof msg);
    tk_seterr(err, errlen, "pre-tokenizer pattern does not compile (%s at offset %zu): %.200s",
              (const char *)msg, (size_t)eo, pattern);
  } else {
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter remains if JIT is unavailable */
  }
  vklm_bytes_free(&tr);
  return re;
}

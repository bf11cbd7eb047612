/* A vklm tokenizer from GGUF metadata (llama.cpp's tokenizer.ggml.* keys): byte-level BPE only
 * (tokenizer.ggml.model "gpt2"). The tokens (already in GPT-2's byte-level alphabet, as in HF's
 * vocab), the merges ("a b") and the token types (1 normal, 3 control, 4 user-defined, 6 byte)
 * are rewritten as a Hugging Face tokenizer.json in memory and loaded by the JSON loader, so the
 * encoder is the same one as for tokenizer.json files. Control and user-defined tokens become
 * added tokens as well (control ones special); unused (5) tokens are left as holes. The pre-tokenizer
 * comes from tokenizer.ggml.pre: "gpt-2"/"default" (or missing) -> GPT-2's regex, "llama-bpe" /
 * "llama3" / "smaug-bpe" -> Llama 3's; another name falls back to GPT-2's and says so. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "text/tokenizer.h"

#define MAX_TOKENS (1u << 24)

static char *dupn(const char *s, uint64_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

int vklm_tokenizer_from_gguf(const struct vklm_gguf *g, vklm_tokenizer **out, int32_t *bos,
                             int32_t *eos, char *note, size_t notelen) {
  *out = NULL;
  uint32_t v;
  if (bos && vklm_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v) == 0) *bos = (int32_t)v;
  if (eos && vklm_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &v) == 0) *eos = (int32_t)v;
  const char *model = NULL, *pre = NULL;
  uint64_t ml = 0, pl = 0;
  if (vklm_gguf_get_str(g, "tokenizer.ggml.model", &model, &ml) != 0) {
    snprintf(note, notelen, "the GGUF has no tokenizer (tokenizer.ggml.model)");
    return VKLM_TOK_ERR_FORMAT;
  }
  if (strcmp(model, "gpt2")) {
    snprintf(note, notelen, "tokenizer.ggml.model '%.40s' is not supported (byte-level BPE 'gpt2' "
             "only)", model);
    return VKLM_TOK_ERR_FORMAT;
  }
  vklm_gguf_array toks, merges, types = {0};
  if (vklm_gguf_get_array(g, "tokenizer.ggml.tokens", &toks) != 0 ||
      toks.type != VKLM_GGUF_TYPE_STRING || toks.n == 0 || toks.n > MAX_TOKENS) {
    snprintf(note, notelen, "tokenizer.ggml.tokens missing or not 1..%u strings", MAX_TOKENS);
    return VKLM_TOK_ERR_FORMAT;
  }
  /* present means right: an array of the wrong type or length is an error, never ignored */
  int have_merges = vklm_gguf_get_array(g, "tokenizer.ggml.merges", &merges) == 0;
  if (have_merges && merges.type != VKLM_GGUF_TYPE_STRING) {
    snprintf(note, notelen, "tokenizer.ggml.merges is not an array of strings");
    return VKLM_TOK_ERR_FORMAT;
  }
  int have_types = vklm_gguf_get_array(g, "tokenizer.ggml.token_type", &types) == 0;
  if (have_types && types.n != toks.n) {
    snprintf(note, notelen, "tokenizer.ggml.token_type has %llu entries for %llu tokens",
             (unsigned long long)types.n, (unsigned long long)toks.n);
    return VKLM_TOK_ERR_FORMAT;
  }
  const char *pattern = vklm_pretok_pattern_regex(VKLM_PRETOK_GPT2);
  int gpt2_pat = 1;
  if (vklm_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pl) == 0 && strcmp(pre, "gpt-2") &&
      strcmp(pre, "default")) {
    if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "smaug-bpe")) {
      pattern = vklm_pretok_pattern_regex(VKLM_PRETOK_LLAMA3);
      gpt2_pat = 0;
    } else
      snprintf(note, notelen, "tokenizer.ggml.pre '%.40s' unknown: GPT-2's pre-tokenizer assumed",
               pre);
  }
  cJSON *root = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(root, "added_tokens");
  cJSON_AddNullToObject(root, "normalizer");
  cJSON *pt = cJSON_AddObjectToObject(root, "pre_tokenizer");
  if (gpt2_pat) {
    cJSON_AddStringToObject(pt, "type", "ByteLevel");
    cJSON_AddBoolToObject(pt, "add_prefix_space", 0);
    cJSON_AddBoolToObject(pt, "trim_offsets", 1);
    cJSON_AddBoolToObject(pt, "use_regex", 1);
  } else {
    cJSON_AddStringToObject(pt, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pt, "pretokenizers"), *sp = cJSON_CreateObject();
    cJSON_AddStringToObject(sp, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "pattern"), "Regex", pattern);
    cJSON_AddStringToObject(sp, "behavior", "Isolated");
    cJSON_AddBoolToObject(sp, "invert", 0);
    cJSON_AddItemToArray(list, sp);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(list, bl);
  }
  cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
  cJSON_AddStringToObject(dec, "type", "ByteLevel");
  cJSON *m = cJSON_AddObjectToObject(root, "model");
  cJSON_AddStringToObject(m, "type", "BPE");
  cJSON_AddBoolToObject(m, "ignore_merges", !gpt2_pat); /* as llama.cpp and HF do for Llama 3 */
  cJSON *vocab = cJSON_AddObjectToObject(m, "vocab"), *mg = cJSON_AddArrayToObject(m, "merges");
  int rc = VKLM_TOK_ERR_NOMEM;
  for (uint64_t i = 0; i < toks.n; i++) {
    const char *s;
    uint64_t len;
    int64_t ty = 1;
    if (vklm_gguf_array_str(&toks, i, &s, &len) != 0) goto fail;
    if (have_types && (vklm_gguf_array_int(&types, i, &ty) != 0 || ty < 1 || ty > 6)) {
      snprintf(note, notelen, "tokenizer.ggml.token_type[%llu] is not a token type (1..6)",
               (unsigned long long)i);
      cJSON_Delete(root);
      return VKLM_TOK_ERR_FORMAT;
    }
    char *z = dupn(s, len);
    if (!z) goto fail;
    if (ty == 3 || ty == 4) {
      cJSON *a = cJSON_CreateObject();
      cJSON_AddNumberToObject(a, "id", (double)i);
      cJSON_AddStringToObject(a, "content", z);
      cJSON_AddBoolToObject(a, "single_word", 0);
      cJSON_AddBoolToObject(a, "lstrip", 0);
      cJSON_AddBoolToObject(a, "rstrip", 0);
      cJSON_AddBoolToObject(a, "normalized", ty == 4);
      cJSON_AddBoolToObject(a, "special", ty == 3);
      cJSON_AddItemToArray(added, a);
    }
    if (ty != 5) cJSON_AddNumberToObject(vocab, z, (double)i); /* HF keeps added ones there too */
    free(z);
  }
  for (uint64_t i = 0; have_merges && i < merges.n; i++) {
    const char *s;
    uint64_t len;
    if (vklm_gguf_array_str(&merges, i, &s, &len) != 0) goto fail;
    char *z = dupn(s, len);
    if (!z) goto fail;
    cJSON_AddItemToArray(mg, cJSON_CreateString(z));
    free(z);
  }
  char *js = cJSON_PrintUnformatted(root);
  if (!js) goto fail;
  char e[256];
  rc = vklm_tokenizer_load_json_buffer(js, strlen(js), out, e, sizeof e);
  if (rc) snprintf(note, notelen, "the GGUF tokenizer does not load: %s", e);
  cJSON_free(js);
  cJSON_Delete(root);
  return rc;
fail:
  cJSON_Delete(root);
  snprintf(note, notelen, "the GGUF tokenizer metadata is unreadable");
  return rc;
}

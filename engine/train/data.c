/* Token sources for training (shards or an in-memory array) and the batch reader: sequential, or
 * shuffled windows in the order of a keyed permutation per epoch (docs/training.md). */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/shard.h"
#include "text/tokenizer.h"
#include "train/train.h"

struct vklm_tokens {
  /* shards (owned), concatenated; or ids (owned) when nshards == 0 */
  vklm_shard **shards;
  uint64_t *starts; /* global index of each shard's first token */
  size_t nshards;
  int32_t *ids;
  uint64_t n, vocab;
  /* examples (vklm_tokens_from_examples): example e is ids[off[e], off[e+1]); target[j] says
   * whether token j is predicted (counts in the loss); nex 0 for plain token streams */
  uint64_t *off;
  uint8_t *target;
  uint64_t nex;
  uint32_t max_len; /* the longest example */
  uint32_t *scratch; /* shard reads */
  size_t scratch_n;
};

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

vklm_status vklm_tokens_open_shards(const char *pattern, const char *prefix, vklm_tokens **out,
                                    char *err, size_t errlen) {
  *out = NULL;
  char pat[4096];
  struct stat sb;
  if (stat(pattern, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(pat, sizeof pat, "%s/%s*.bin", pattern, prefix ? prefix : "");
  else
    snprintf(pat, sizeof pat, "%s", pattern);
  glob_t g;
  memset(&g, 0, sizeof g);
  int gr = glob(pat, 0, NULL, &g);
  if (gr != 0 || g.gl_pathc == 0) {
    snprintf(err, errlen, "no token shards match '%s'", pat);
    globfree(&g);
    return VKLM_ERROR_IO;
  }
  qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), cmp_str);
  vklm_tokens *t = calloc(1, sizeof *t);
  t->shards = calloc(g.gl_pathc, sizeof *t->shards);
  t->starts = calloc(g.gl_pathc, sizeof *t->starts);
  vklm_status st = VKLM_OK;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    if (vklm_shard_open(g.gl_pathv[i], &t->shards[i], err, errlen) != 0) {
      st = VKLM_ERROR_IO;
      break;
    }
    t->nshards++;
    t->starts[i] = t->n;
    t->n += vklm_shard_count(t->shards[i]);
    uint64_t v = vklm_shard_vocab_size(t->shards[i]);
    if (v > t->vocab) t->vocab = v;
  }
  globfree(&g);
  if (st != VKLM_OK) {
    vklm_tokens_destroy(t);
    return st;
  }
  *out = t;
  return VKLM_OK;
}

vklm_status vklm_tokens_from_array(const int32_t *ids, uint64_t n, uint64_t vocab,
                                   vklm_tokens **out) {
  vklm_tokens *t = calloc(1, sizeof *t);
  t->ids = malloc((n ? n : 1) * sizeof(int32_t));
  if (!t->ids) {
    free(t);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  if (n) memcpy(t->ids, ids, n * sizeof(int32_t));
  t->n = n;
  t->vocab = vocab;
  *out = t;
  return VKLM_OK;
}

vklm_status vklm_tokens_from_examples(const int32_t *ids, const uint8_t *target,
                                      const uint64_t *off, uint64_t nex, uint64_t vocab,
                                      vklm_tokens **out) {
  *out = NULL;
  if (nex == 0 || off[0] != 0) return VKLM_ERROR_INVALID;
  for (uint64_t e = 0; e < nex; e++)
    if (off[e + 1] < off[e] + 2) return VKLM_ERROR_INVALID; /* an input and a target at least */
  uint64_t n = off[nex];
  vklm_tokens *t = NULL;
  vklm_status st = vklm_tokens_from_array(ids, n, vocab, &t);
  if (st != VKLM_OK) return st;
  t->off = malloc((nex + 1) * sizeof *t->off);
  t->target = malloc(n);
  if (!t->off || !t->target) {
    vklm_tokens_destroy(t);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  memcpy(t->off, off, (nex + 1) * sizeof *t->off);
  memcpy(t->target, target, n);
  t->nex = nex;
  for (uint64_t e = 0; e < nex; e++)
    if (off[e + 1] - off[e] > t->max_len) t->max_len = (uint32_t)(off[e + 1] - off[e]);
  *out = t;
  return VKLM_OK;
}

uint64_t vklm_tokens_examples(const vklm_tokens *t) { return t->nex; }

uint64_t vklm_tokens_batches(const vklm_tokens *t, uint32_t B, uint32_t T) {
  if (!t || !B || !T) return 0;
  if (t->nex) return t->nex / B;
  return t->n > 0 ? (t->n - 1) / ((uint64_t)B * T) : 0;
}

vklm_status vklm_tokens_from_text(const char *text_path, const char *tokenizer_path,
                                  double val_fraction, vklm_tokens **train, vklm_tokens **val,
                                  char *err, size_t errlen) {
  *train = NULL;
  if (val) *val = NULL;
  if (val_fraction < 0 || val_fraction >= 1) {
    snprintf(err, errlen, "validation fraction %g is not in [0, 1)", val_fraction);
    return VKLM_ERROR_INVALID;
  }
  FILE *f = fopen(text_path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open text file '%s'", text_path);
    return VKLM_ERROR_IO;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)(len > 0 ? len : 1));
  size_t got = len > 0 ? fread(text, 1, (size_t)len, f) : 0;
  fclose(f);
  if (len < 0 || got != (size_t)len) {
    free(text);
    snprintf(err, errlen, "cannot read text file '%s'", text_path);
    return VKLM_ERROR_IO;
  }
  vklm_tokenizer *tk = NULL;
  char terr[512] = "";
  if (vklm_tokenizer_load(tokenizer_path, &tk, terr, sizeof terr) != VKLM_TOK_OK) {
    free(text);
    snprintf(err, errlen, "cannot load tokenizer '%s': %s", tokenizer_path, terr);
    return VKLM_ERROR_IO;
  }
  vklm_token_ids ids = {0};
  int r = vklm_tokenizer_encode(tk, text, (size_t)len, 0, &ids);
  uint64_t vocab = vklm_tokenizer_vocab_size(tk);
  vklm_tokenizer_destroy(tk);
  free(text);
  if (r != VKLM_TOK_OK) {
    vklm_token_ids_free(&ids);
    snprintf(err, errlen, "cannot encode '%s' (tokenizer error %d)", text_path, r);
    return VKLM_ERROR_INVALID;
  }
  uint64_t nval = val ? (uint64_t)((double)ids.n * val_fraction) : 0;
  uint64_t ntrain = ids.n - nval;
  vklm_status st = vklm_tokens_from_array(ids.ids, ntrain, vocab, train);
  if (st == VKLM_OK && val && nval > 0) st = vklm_tokens_from_array(ids.ids + ntrain, nval, vocab, val);
  vklm_token_ids_free(&ids);
  if (st != VKLM_OK) {
    vklm_tokens_destroy(*train);
    *train = NULL;
    snprintf(err, errlen, "out of host memory for %zu tokens", ids.n);
  }
  return st;
}

void vklm_tokens_destroy(vklm_tokens *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nshards; i++) vklm_shard_close(t->shards[i]);
  free(t->shards);
  free(t->starts);
  free(t->ids);
  free(t->off);
  free(t->target);
  free(t->scratch);
  free(t);
}

uint64_t vklm_tokens_count(const vklm_tokens *t) { return t->n; }
uint64_t vklm_tokens_vocab(const vklm_tokens *t) { return t->vocab; }

vklm_status vklm_tokens_read(const vklm_tokens *t, uint64_t start, uint64_t n, uint32_t V,
                             int32_t *dst, char *err, size_t errlen) {
  if (start > t->n || n > t->n - start) {
    snprintf(err, errlen, "token range [%llu, +%llu) is outside the data (%llu tokens)",
             (unsigned long long)start, (unsigned long long)n, (unsigned long long)t->n);
    return VKLM_ERROR_INVALID;
  }
  if (t->nshards == 0) {
    memcpy(dst, t->ids + start, n * sizeof(int32_t));
  } else {
    vklm_tokens *mt = (vklm_tokens *)t; /* scratch only */
    if (mt->scratch_n < n) {
      free(mt->scratch);
      mt->scratch = malloc(n * sizeof(uint32_t));
      mt->scratch_n = mt->scratch ? n : 0;
      if (!mt->scratch) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    uint64_t done = 0;
    size_t lo = 0, hi = t->nshards - 1; /* the last shard starting at or before `start` */
    while (lo < hi) {
      size_t mid = lo + (hi - lo + 1) / 2;
      if (t->starts[mid] <= start) lo = mid;
      else hi = mid - 1;
    }
    size_t i = lo;
    while (done < n && i < t->nshards) {
      uint64_t at = start + done, local = at - t->starts[i];
      uint64_t avail = vklm_shard_count(t->shards[i]) - local;
      uint64_t k = n - done < avail ? n - done : avail;
      if (k > 0 && vklm_shard_read(t->shards[i], local, (size_t)k, mt->scratch + done) != 0) {
        snprintf(err, errlen, "cannot read tokens [%llu, +%llu) of shard %zu (corrupt or an id "
                 ">= its vocabulary)", (unsigned long long)local, (unsigned long long)k, i);
        return VKLM_ERROR_IO;
      }
      done += k;
      i++;
    }
    for (uint64_t j = 0; j < n; j++) dst[j] = (int32_t)mt->scratch[j];
  }
  for (uint64_t j = 0; j < n; j++)
    if (dst[j] < 0 || (uint32_t)dst[j] >= V) {
      snprintf(err, errlen, "token id %u at data position %llu is outside the model's vocabulary "
               "(V = %u): the data and the model do not match", (uint32_t)dst[j],
               (unsigned long long)(start + j), V);
      return VKLM_ERROR_INVALID;
    }
  return VKLM_OK;
}

vklm_status vklm_batcher_init(vklm_batcher *b, const vklm_tokens *src, uint32_t B, uint32_t T,
                              char *err, size_t errlen) {
  memset(b, 0, sizeof *b);
  b->src = src;
  b->B = B;
  b->T = T;
  if (src && src->nex) { /* examples: one per row, each at most T+1 tokens */
    if (B == 0 || T == 0 || src->nex < B) {
      snprintf(err, errlen, "too few examples: a batch of B=%u needs at least %u, the data has "
               "%llu", B, B, (unsigned long long)src->nex);
      return VKLM_ERROR_INVALID;
    }
    if (src->max_len > (uint64_t)T + 1) {
      snprintf(err, errlen, "an example of %u tokens does not fit T=%u (at most T+1 tokens)",
               src->max_len, T);
      return VKLM_ERROR_INVALID;
    }
    b->nwin = src->nex;
    return VKLM_OK;
  }
  uint64_t need = (uint64_t)B * T + 1;
  if (!src || B == 0 || T == 0 || src->n < need) {
    snprintf(err, errlen, "too little data: a batch of B=%u x T=%u needs at least %llu tokens, the "
             "data has %llu", B, T, (unsigned long long)need,
             (unsigned long long)(src ? src->n : 0));
    return VKLM_ERROR_INVALID;
  }
  b->nwin = (src->n - 1) / T; /* >= B */
  return VKLM_OK;
}

void vklm_batcher_seek(vklm_batcher *b, vklm_data_order order, uint64_t seed, uint64_t pos,
                       uint64_t epoch) {
  b->order = order == VKLM_DATA_SHUFFLED ? VKLM_DATA_SHUFFLED : VKLM_DATA_SEQUENTIAL;
  b->seed = seed;
  b->pos = b->order == VKLM_DATA_SHUFFLED || (b->src && b->src->nex) ? pos / b->T * b->T : pos;
  b->epoch = epoch;
}

const char *vklm_data_order_name(vklm_data_order o) {
  return o == VKLM_DATA_SHUFFLED ? "shuffled" : "sequential";
}

static uint64_t mix64(uint64_t z) { /* splitmix64's finaliser */
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* A Feistel network over 2^(2h) >= n values (6 rounds keyed by (seed, epoch)) is a bijection of
 * that domain; cycle-walking (re-applying it until the value is < n) restricts it to a bijection
 * of [0, n): the cycle through i returns to i, so the walk ends, on average within 4 rounds. */
uint64_t vklm_data_permute(uint64_t i, uint64_t n, uint64_t seed, uint64_t epoch) {
  VKLM_ASSERT(i < n, "permute: index %llu outside [0, %llu)", (unsigned long long)i,
              (unsigned long long)n);
  if (n <= 1) return i;
  unsigned bits = 1;
  while (bits < 64 && (1ull << bits) < n) bits++;
  bits += bits & 1;
  unsigned h = bits / 2;
  uint64_t mask = h >= 64 ? ~0ull : (1ull << h) - 1;
  uint64_t key = mix64(seed ^ mix64(epoch ^ 0x5368756666ull));
  uint64_t x = i;
  do {
    uint64_t L = x >> h, R = x & mask;
    for (uint64_t r = 0; r < 6; r++) {
      uint64_t f = mix64(R ^ mix64(key + r * 0x9E3779B97F4A7C15ull)) & mask;
      uint64_t t = L ^ f;
      L = R;
      R = t;
    }
    x = (L << h) | R;
  } while (x >= n);
  return x;
}

/* Row r of a batch from example e: its tokens right-padded to T (inputs 0 there), targets the
 * next token where that token is a target, VKLM_IGNORE_INDEX elsewhere (prompt, padding). */
static vklm_status example_row(const vklm_tokens *t, uint64_t e, uint32_t T, uint32_t V,
                               int32_t *inputs, int32_t *targets, char *err, size_t errlen) {
  uint64_t s = t->off[e], len = t->off[e + 1] - s;
  for (uint32_t j = 0; j < T; j++) {
    inputs[j] = j + 1 < len ? t->ids[s + j] : 0;
    targets[j] = j + 1 < len && t->target[s + j + 1] ? t->ids[s + j + 1] : VKLM_IGNORE_INDEX;
  }
  for (uint64_t j = 0; j < len; j++)
    if (t->ids[s + j] < 0 || (uint32_t)t->ids[s + j] >= V) {
      snprintf(err, errlen, "token id %d of example %llu is outside the model's vocabulary "
               "(V = %u)", t->ids[s + j], (unsigned long long)e, V);
      return VKLM_ERROR_INVALID;
    }
  return VKLM_OK;
}

void vklm_batcher_skip(vklm_batcher *b) {
  if (b->src->nex || b->order == VKLM_DATA_SHUFFLED) { /* as vklm_batcher_next: windows */
    uint64_t k = b->pos / b->T;
    if (k > b->nwin - b->B) {
      k = 0;
      b->epoch++;
    }
    b->pos = (k + b->B) * b->T;
    return;
  }
  uint64_t bt = (uint64_t)b->B * b->T;
  if (b->pos > b->src->n - (bt + 1)) {
    b->pos = 0;
    b->epoch++;
  }
  b->pos += bt;
}

vklm_status vklm_batcher_next(vklm_batcher *b, uint32_t V, int32_t *buf, int32_t *inputs,
                              int32_t *targets, char *err, size_t errlen) {
  uint64_t bt = (uint64_t)b->B * b->T, n = b->src->n;
  vklm_status st;
  if (b->src->nex) { /* examples: B per batch; pos counts examples drawn times T */
    uint64_t k = b->pos / b->T;
    if (k > b->nwin - b->B) {
      k = 0;
      b->epoch++;
    }
    for (uint32_t r = 0; r < b->B; r++) {
      uint64_t e = b->order == VKLM_DATA_SHUFFLED
                       ? vklm_data_permute(k + r, b->nwin, b->seed, b->epoch) : k + r;
      if ((st = example_row(b->src, e, b->T, V, inputs + (size_t)r * b->T,
                            targets + (size_t)r * b->T, err, errlen)) != VKLM_OK)
        return st;
    }
    b->pos = (k + b->B) * b->T;
    return VKLM_OK;
  }
  if (b->order == VKLM_DATA_SHUFFLED) {
    uint64_t k = b->pos / b->T;
    if (k > b->nwin - b->B) { /* not B windows left in this epoch: the next one */
      k = 0;
      b->epoch++;
    }
    for (uint32_t r = 0; r < b->B; r++) {
      uint64_t w = vklm_data_permute(k + r, b->nwin, b->seed, b->epoch);
      if ((st = vklm_tokens_read(b->src, w * b->T, (uint64_t)b->T + 1, V, buf, err, errlen)) !=
          VKLM_OK)
        return st;
      memcpy(inputs + (size_t)r * b->T, buf, b->T * sizeof(int32_t));
      memcpy(targets + (size_t)r * b->T, buf + 1, b->T * sizeof(int32_t));
    }
    b->pos = (k + b->B) * b->T;
    return VKLM_OK;
  }
  if (b->pos > n - (bt + 1)) { /* n >= bt + 1 (vklm_batcher_init) */
    b->pos = 0;
    b->epoch++;
  }
  if ((st = vklm_tokens_read(b->src, b->pos, bt + 1, V, buf, err, errlen)) != VKLM_OK) return st;
  memcpy(inputs, buf, bt * sizeof(int32_t));
  memcpy(targets, buf + 1, bt * sizeof(int32_t));
  b->pos += bt;
  return VKLM_OK;
}

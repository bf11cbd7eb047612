/* Near-duplicate detection: MinHash signatures, LSH banding, verified pairs, union-find. */
#include <stdlib.h>
#include <string.h>

#include "data/dedup.h"
#include "data/steps.h"

void vklm_minhash_default(vklm_minhash_opts *o) {
  *o = (vklm_minhash_opts){.enabled = 1,
                           .bands = 20, /* 1-(1-J^6)^20: 99.8% at J = 0.8 (docs/data.md) */
                           .rows = 6,
                           .ngram = 5,
                           .threshold = 0.7,
                           .seed = 1,
                           .max_checks = 32};
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int word_byte(unsigned char c) {
  return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
}

/* Per-hash parameters: h_i(x) = f(a_i * x + b_i mod 2^32) for the 32-bit shingle hash x, with
 * a_i odd and f a fixed xorshift-multiply finaliser; plain 32-bit lanes, so the loop below
 * vectorises. */
static void params(const vklm_minhash_opts *o, uint32_t *a, uint32_t *b, int k) {
  uint64_t st = o->seed;
  for (int i = 0; i < k; i++) {
    uint64_t r = splitmix(&st);
    a[i] = (uint32_t)r | 1;
    b[i] = (uint32_t)(r >> 32);
  }
}

static void update(uint32_t *restrict sig, const uint32_t *restrict a, const uint32_t *restrict b,
                   int k, uint64_t x64) {
  uint32_t x = (uint32_t)(x64 ^ (x64 >> 32));
  int i = 0;
  for (; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; j++) {
      uint32_t v = a[i + j] * x + b[i + j];
      v ^= v >> 16;
      v *= 0x85ebca6bu;
      v ^= v >> 13;
      sig[i + j] = v < sig[i + j] ? v : sig[i + j];
    }
  for (; i < k; i++) {
    uint32_t v = a[i] * x + b[i];
    v ^= v >> 16;
    v *= 0x85ebca6bu;
    v ^= v >> 13;
    sig[i] = v < sig[i] ? v : sig[i];
  }
}

void vklm_minhash_signature(const vklm_minhash_opts *o, const char *s, size_t n, uint32_t *sig) {
  int k = vklm_minhash_count(o), ng = o->ngram > 0 ? o->ngram : 1;
  uint32_t a[1024], b[1024];
  uint64_t ring[64];
  if (k > 1024) k = 1024;
  if (ng > 64) ng = 64;
  params(o, a, b, k);
  for (int i = 0; i < k; i++)
    sig[i] = UINT32_MAX;
  char word[64];
  long nw = 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && !word_byte((unsigned char)s[i]))
      i++;
    if (i >= n) break;
    size_t b0 = i, wl = 0;
    uint64_t wh;
    while (i < n && word_byte((unsigned char)s[i])) {
      unsigned char c = (unsigned char)s[i];
      if (wl < sizeof word) word[wl++] = (char)(c < 0x80 && c >= 'A' && c <= 'Z' ? c + 32 : c);
      i++;
    }
    wh = vklm_hash64(word, wl, 5) ^ (i - b0 > sizeof word ? vklm_hash64(s + b0, i - b0, 9) : 0);
    ring[nw % ng] = wh;
    nw++;
    if (nw >= ng) {
      uint64_t x = 0x51ed270b27ac4d3fULL;
      for (int j = 0; j < ng; j++) { /* oldest to newest */
        x = (x ^ ring[(nw - ng + j) % ng]) * 0xff51afd7ed558ccdULL;
        x ^= x >> 31;
      }
      update(sig, a, b, k, x);
    }
  }
  if (nw > 0 && nw < ng) { /* short text: one shingle of all its words */
    uint64_t x = 0x51ed270b27ac4d3fULL;
    for (long j = 0; j < nw; j++) {
      x = (x ^ ring[j]) * 0xff51afd7ed558ccdULL;
      x ^= x >> 31;
    }
    update(sig, a, b, k, x);
  }
}

double vklm_minhash_jaccard(const uint32_t *a, const uint32_t *b, int count) {
  int eq = 0;
  for (int i = 0; i < count; i++)
    eq += a[i] == b[i];
  return count ? (double)eq / count : 0;
}

/* ---- clustering ------------------------------------------------------------------------- */

typedef struct entry {
  uint64_t h;
  uint64_t id;
} entry;

static int cmp_entry(const void *x, const void *y) {
  const entry *a = x, *b = y;
  if (a->h != b->h) return a->h < b->h ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

static uint64_t root(uint64_t *parent, uint64_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

int vklm_minhash_cluster(const vklm_minhash_opts *o, const uint32_t *sigs, uint64_t ndocs,
                         uint8_t *keep, vklm_minhash_result *res) {
  int k = vklm_minhash_count(o);
  memset(res, 0, sizeof *res);
  if (!ndocs) return 0;
  entry *e = malloc(ndocs * sizeof *e);
  uint64_t *parent = malloc(ndocs * sizeof *parent);
  if (!e || !parent) {
    free(e);
    free(parent);
    return -1;
  }
  for (uint64_t i = 0; i < ndocs; i++)
    parent[i] = i;
  for (int band = 0; band < o->bands; band++) {
    for (uint64_t i = 0; i < ndocs; i++) {
      e[i].h = vklm_hash64(sigs + i * k + band * o->rows, (size_t)o->rows * 4, (uint64_t)band);
      e[i].id = i;
    }
    qsort(e, ndocs, sizeof *e, cmp_entry);
    for (uint64_t g = 0; g < ndocs;) {
      uint64_t end = g + 1;
      while (end < ndocs && e[end].h == e[g].h)
        end++;
      for (uint64_t m = g + 1; m < end; m++) {
        int checks = 0;
        for (uint64_t p = m; p-- > g && checks < o->max_checks;) {
          uint64_t ra = root(parent, e[m].id), rb = root(parent, e[p].id);
          if (ra == rb) break; /* already together: nothing left to learn in this bucket */
          checks++;
          res->candidates++;
          const uint32_t *sa = sigs + e[m].id * k, *sb = sigs + e[p].id * k;
          if (vklm_minhash_jaccard(sa, sb, k) >= o->threshold) {
            if (ra < rb)
              parent[rb] = ra;
            else
              parent[ra] = rb;
            res->merged++;
            break;
          }
        }
      }
      g = end;
    }
  }
  for (uint64_t i = 0; i < ndocs; i++) {
    keep[i] = root(parent, i) == i;
    res->removed += !keep[i];
  }
  free(e);
  free(parent);
  return 0;
}

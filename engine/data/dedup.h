/* dedup: exact and near-duplicate detection for the prepare step. Only hashes and signatures are
 * kept, never texts. Exact: a set of 128-bit hashes of the cleaned text; the first document with
 * a given hash is kept. Near: MinHash signatures over word n-gram shingles (Broder 1997),
 * LSH banding (bands x rows = hashes) to find candidate pairs, candidates confirmed by the
 * Jaccard similarity the signatures estimate, union-find clusters, and the document with the
 * smallest index kept per cluster. Signatures live in a file the clustering maps into memory,
 * so resident memory is about 16 bytes per document per band pass plus 4 for the clusters. */
#ifndef VKLM_DATA_DEDUP_H
#define VKLM_DATA_DEDUP_H

#include <stddef.h>
#include <stdint.h>

/* ---- exact (dedup.c) --------------------------------------------------------------------- */
typedef struct vklm_dedup_set vklm_dedup_set;
int vklm_dedup_set_create(vklm_dedup_set **out);
void vklm_dedup_set_destroy(vklm_dedup_set *s);
/* Inserts h; returns 1 if it was new, 0 if already present, -1 when memory runs out. */
int vklm_dedup_set_insert(vklm_dedup_set *s, const uint64_t h[2]);
uint64_t vklm_dedup_set_count(const vklm_dedup_set *s);

/* ---- near (minhash.c) -------------------------------------------------------------------- */
typedef struct vklm_minhash_opts {
  int enabled;
  int bands, rows;  /* 20 x 6 = 120 hashes */
  int ngram;        /* words per shingle: 5 */
  double threshold; /* minimum estimated Jaccard to merge a candidate pair: 0.7 */
  uint64_t seed;
  int max_checks; /* per document and bucket, comparisons with earlier members: 32 */
} vklm_minhash_opts;

void vklm_minhash_default(vklm_minhash_opts *o);
static inline int vklm_minhash_count(const vklm_minhash_opts *o) { return o->bands * o->rows; }
/* Signature of a text: sig[i] = min over shingles of hash_i(shingle), for i < bands*rows.
 * Words are lower-cased ASCII, split at whitespace and punctuation. A text shorter than one
 * shingle uses its whole word sequence as its single shingle. */
void vklm_minhash_signature(const vklm_minhash_opts *o, const char *s, size_t n, uint32_t *sig);
/* Estimated Jaccard similarity: the share of equal positions. */
double vklm_minhash_jaccard(const uint32_t *a, const uint32_t *b, int count);

typedef struct vklm_minhash_result {
  uint64_t candidates; /* pairs compared (from shared buckets) */
  uint64_t merged;     /* pairs above the threshold that joined two clusters */
  uint64_t removed;    /* documents that are not the first of their cluster */
} vklm_minhash_result;

/* Clusters ndocs signatures (ndocs * bands*rows uint32, row-major, e.g. a mapped file);
 * writes keep[i] = 1 for the document kept of each cluster, 0 for the others.
 * Returns 0, or -1 when memory runs out. */
int vklm_minhash_cluster(const vklm_minhash_opts *o, const uint32_t *sigs, uint64_t ndocs,
                         uint8_t *keep, vklm_minhash_result *res);

#endif

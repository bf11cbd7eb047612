/* blocklist: word/phrase lists, URL/domain lists and keyword topic maps for `vklm data prepare`.
 * Formats (plain UTF-8 text, one entry per line; blank lines and lines starting with '#' are
 * ignored; docs/data.md has examples):
 *   word list   a word or phrase per line ("bad word", "phrase of several words")
 *   URL list    a domain per line ("example.com" blocks it and every subdomain), or a domain
 *               and path prefix ("example.com/forum/" blocks URLs under it); a scheme, "www."
 *               and a port are ignored
 *   topic map   "TOPIC<whitespace>keyword or phrase" per line; a topic may have many lines
 * Matching is by whole words after normalisation: text and entries go through Unicode NFKC and
 * case folding (utf8proc), then split into words (runs of letters, marks and digits; everything
 * else separates), and an entry matches where its word sequence occurs in the document's.
 * "ass" matches "Ass!" but not "class" or "assistant". Entries longer than VKLM_PHRASE_MAX_WORDS
 * words are rejected when the list is read.
 * Lists are read once and shared read-only by the worker threads. */
#ifndef VKLM_DATA_BLOCKLIST_H
#define VKLM_DATA_BLOCKLIST_H

#include <stddef.h>
#include <stdint.h>

#include "data/buf.h"
#include "data/steps.h"

#define VKLM_PHRASE_MAX_WORDS 8
#define VKLM_BLOCK_MAX_LISTS 32
#define VKLM_TOPIC_MAX 64
#define VKLM_TOPIC_NAME_MAX 32

/* Normalises text (NFKC + case fold) and splits it into words: spans into norm (cleared first).
 * Returns the number of words, or -1 when memory runs out or the text is not valid UTF-8. */
long vklm_norm_words(const char *s, size_t n, vklm_buf *norm, vklm_span **w, size_t *cap);

/* A set of phrases, each mapped to a small value (the list or topic it came from). */
typedef struct vklm_phrases vklm_phrases;
int vklm_phrases_create(vklm_phrases **out);
void vklm_phrases_destroy(vklm_phrases *p); /* accepts NULL */
/* Adds a phrase (raw text, normalised here) with a value >= 0. Returns 1 when added, 0 when it
 * has no words, -1 when it has too many words or memory runs out. */
int vklm_phrases_add(vklm_phrases *p, const char *s, size_t n, int value);
uint64_t vklm_phrases_count(const vklm_phrases *p);
/* Counts matches per value in a document already split by vklm_norm_words: counts[v] is
 * incremented for every occurrence (word position) of a phrase of value v; nvalues bounds v. */
void vklm_phrases_match(const vklm_phrases *p, const char *norm, const vklm_span *w, long nw,
                        uint32_t *counts, int nvalues);

/* The block lists of a prepare run. */
typedef struct vklm_blocklists vklm_blocklists;
int vklm_blocklists_create(vklm_blocklists **out);
void vklm_blocklists_destroy(vklm_blocklists *b); /* accepts NULL */
/* Reads a word list. spec: "FILE" (every language) or "LANG:FILE" (documents detected as LANG).
 * Returns 0, or -1 with a message (unreadable file, empty list, bad line, too many lists). */
int vklm_blocklists_add_words(vklm_blocklists *b, const char *spec, char *err, size_t errlen);
/* Reads a URL/domain list. Returns 0 or -1 with a message. */
int vklm_blocklists_add_urls(vklm_blocklists *b, const char *path, char *err, size_t errlen);
int vklm_blocklists_count(const vklm_blocklists *b);
const char *vklm_blocklists_name(const vklm_blocklists *b, int i); /* "words:FILE" or "urls:FILE" */
/* The list that removes the document, or -1 when none does. A word list removes a document when
 * its entries occur min_matches times or more; a URL list when url matches an entry. lang and
 * url may be NULL. Returns -2 when memory runs out. *why: VKLM_DROP_BLOCK_WORDS or _URL. */
int vklm_blocklists_check(const vklm_blocklists *b, const char *lang, const char *url,
                          const char *s, size_t n, long min_matches, vklm_drop *why);

/* A keyword topic map. */
typedef struct vklm_topics vklm_topics;
int vklm_topics_read(const char *path, vklm_topics **out, char *err, size_t errlen);
void vklm_topics_destroy(vklm_topics *t);
int vklm_topics_count(const vklm_topics *t);
const char *vklm_topics_name(const vklm_topics *t, int i);
/* The topic with the most keyword occurrences (ties: the one first named in the file), or -1
 * ("other") when none occurs. -2 when memory runs out. */
int vklm_topics_classify(const vklm_topics *t, const char *s, size_t n);

#endif

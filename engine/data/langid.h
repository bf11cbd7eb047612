/* langid: language identification for `vklm data prepare`, on libexttextcat's n-gram
 * fingerprints (Cavnar & Trenkle's out-of-place distance; the .lm models ship in Debian's
 * libexttextcat-data package under /usr/share/libexttextcat, nothing is downloaded).
 * A detector holds the fingerprints of its candidate languages (all models in the directory,
 * or a chosen list) and is read-only once built: one detector serves every worker thread.
 * Only the first max_bytes of a document are looked at (a few hundred bytes suffice).
 * The score is the relative margin of the best language over the runner-up,
 * (d2 - d1) / d2 for out-of-place distances d1 <= d2: 0 means a tie, larger is surer; typical
 * prose of a few sentences scores 0.05 to 0.3 (docs/data.md has the measured distribution).
 * Codes are the model file names without ".lm": ISO 639-1 where one exists ("en", "de"),
 * else ISO 639-3, with a script suffix where the models have one ("sr-Latn", "zh-Hans").
 * The choice of libexttextcat over CLD2 and the measurements behind it are in docs/data.md. */
#ifndef VKLM_DATA_LANGID_H
#define VKLM_DATA_LANGID_H

#include <stddef.h>

#define VKLM_LANGID_DEFAULT_DIR "/usr/share/libexttextcat"
#define VKLM_LANG_CODE_MAX 16

typedef struct vklm_langid vklm_langid;

typedef struct vklm_lang_result {
  char code[VKLM_LANG_CODE_MAX]; /* "und" when the text has no letters to judge */
  double score;                  /* margin in [0, 1]; 0 for "und" */
  int index;                     /* into the detector's languages; -1 for "und" */
} vklm_lang_result;

/* models_dir: a directory of <code>.lm files (NULL: VKLM_LANGID_DEFAULT_DIR). candidates: a
 * comma-separated list of codes to consider (NULL or "": every model in the directory).
 * max_bytes: bytes of each document looked at (0: 2048). Returns 0, or -1 with a message (a
 * missing directory, an unknown code, an unreadable model). */
int vklm_langid_create(const char *models_dir, const char *candidates, size_t max_bytes,
                       vklm_langid **out, char *err, size_t errlen);
void vklm_langid_destroy(vklm_langid *l); /* accepts NULL */
int vklm_langid_count(const vklm_langid *l);
const char *vklm_langid_code(const vklm_langid *l, int i);
/* The index of a code among the detector's languages, or -1. */
int vklm_langid_find(const vklm_langid *l, const char *code, size_t n);
/* Detects the language of UTF-8 text. Returns 0, or -1 when memory runs out. Thread-safe. */
int vklm_langid_detect(const vklm_langid *l, const char *s, size_t n, vklm_lang_result *r);

/* 1 when the code is a well-formed language code (letters, digits, '-', 1..15 chars). */
int vklm_lang_code_valid(const char *s, size_t n);

#endif

/* Language-dependent thresholds of the quality filters: stop words and mean word length per
 * language, and the scripts written without spaces between words (where the word-based rules
 * cannot apply). Stop words are the most frequent function words of each language, lower case,
 * compared as whole tokens (as the English list of the Gopher rules). Word-length bounds widen
 * for languages with long compounds or rich inflection; the figures are rough and documented in
 * docs/data.md. A language missing here gets the English word-length bounds and no stop-word
 * rule. */
#include <string.h>

#include "data/steps.h"

#define W(...) (const char *const[]){__VA_ARGS__, NULL}

static const vklm_lang_rules rules[] = {
    {"en", W("the", "be", "to", "of", "and", "that", "have", "with"), 3, 10, 0},
    {"de", W("der", "die", "und", "das", "ist", "mit", "den", "nicht", "zu", "von", "ein", "eine"), 3, 12, 0},
    {"fr", W("le", "la", "les", "de", "des", "et", "est", "un", "une", "que", "du", "en"), 3, 10, 0},
    {"es", W("el", "la", "de", "que", "y", "en", "los", "las", "un", "una", "por", "con"), 3, 10, 0},
    {"it", W("il", "la", "di", "che", "e", "un", "una", "per", "con", "del", "non", "in"), 3, 10, 0},
    {"pt", W("o", "a", "de", "que", "e", "do", "da", "em", "um", "uma", "para", "com"), 3, 10, 0},
    {"nl", W("de", "het", "een", "en", "van", "in", "is", "dat", "op", "te", "met", "niet"), 3, 11, 0},
    {"sv", W("och", "att", "det", "som", "en", "på", "är", "av", "för", "med", "till", "i"), 3, 11, 0},
    {"da", W("og", "at", "det", "som", "en", "på", "er", "af", "til", "med", "den", "i"), 3, 11, 0},
    {"nb", W("og", "i", "det", "som", "en", "på", "er", "av", "til", "med", "å", "den"), 3, 11, 0},
    {"nn", W("og", "i", "det", "som", "ein", "på", "er", "av", "til", "med", "å", "den"), 3, 11, 0},
    {"pl", W("i", "w", "na", "się", "z", "nie", "że", "do", "to", "jest", "a", "o"), 3, 11, 0},
    {"cs", W("a", "v", "se", "na", "je", "že", "to", "s", "z", "do", "i", "o"), 3, 11, 0},
    {"sk", W("a", "v", "sa", "na", "je", "že", "to", "s", "z", "do", "aj", "o"), 3, 11, 0},
    {"fi", W("ja", "on", "ei", "että", "se", "oli", "kun", "mutta", "hän", "myös", "ovat", "joka"), 3, 14, 0},
    {"et", W("ja", "on", "ei", "et", "see", "oli", "kui", "aga", "ta", "ka", "mis", "või"), 3, 13, 0},
    {"hu", W("a", "az", "és", "hogy", "nem", "is", "egy", "van", "meg", "de", "ez", "volt"), 3, 13, 0},
    {"tr", W("ve", "bir", "bu", "da", "de", "için", "ile", "çok", "ne", "gibi", "daha", "o"), 3, 12, 0},
    {"ru", W("и", "в", "не", "на", "что", "с", "как", "по", "это", "он", "к", "а"), 3, 12, 0},
    {"uk", W("і", "в", "не", "на", "що", "з", "як", "до", "це", "у", "та", "й"), 3, 12, 0},
    {"ro", W("și", "în", "de", "la", "a", "nu", "că", "cu", "o", "pe", "un", "se"), 3, 10, 0},
    {"ca", W("el", "la", "de", "i", "que", "en", "els", "les", "un", "una", "per", "amb"), 3, 10, 0},
    {"zh-Hans", NULL, 0, 0, 1},
    {"zh-Hant", NULL, 0, 0, 1},
    {"ja", NULL, 0, 0, 1},
    {"th", NULL, 0, 0, 1},
    {"lo", NULL, 0, 0, 1},
    {"km", NULL, 0, 0, 1},
    {"my", NULL, 0, 0, 1},
    {"bo", NULL, 0, 0, 1},
};

const vklm_lang_rules *vklm_lang_rules_get(const char *code) {
  if (!code) return &rules[0];
  for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
    if (!strcmp(rules[i].code, code)) return &rules[i];
  return NULL;
}

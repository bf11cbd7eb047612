/* Tests of the language, block-list and topic steps of the text pipeline (engine/data/langid.c,
 * langrules.c, blocklist.c and their use in prepare.c): accuracy of language identification on
 * a labelled set of 14 languages written for the project (tests/data/langid, printed), thresholds
 * that follow the detected language, --languages / --min-lang-score and the per-language
 * statistics, block lists removing planted documents and nothing else (words, phrases, a
 * per-language list, URLs and domains) with per-list counts, keyword topics and source tags,
 * and bad input reported before any work. CPU only. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "data/blocklist.h"
#include "data/langid.h"
#include "data/prepare.h"
#include "data/steps.h"

#include "check_util.h"

static char fixtures[512], tmpdir[256];

static void fixture(char *out, size_t n, const char *rel) { snprintf(out, n, "%s/%s", fixtures, rel); }

typedef struct sample {
  char lang[8];
  char *text;
} sample;

static sample samples[256];
static int nsamples;

static void load_samples(void) {
  char path[600];
  fixture(path, sizeof path, "langid/texts.tsv");
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t cap = 0;
  while (f && getline(&line, &cap, f) > 0 && nsamples < 256) {
    line[strcspn(line, "\n")] = 0;
    char *tab = strchr(line, '\t');
    if (!tab || tab - line >= 8) continue;
    *tab = 0;
    strcpy(samples[nsamples].lang, line);
    samples[nsamples++].text = strdup(tab + 1);
  }
  free(line);
  if (f) fclose(f);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- language identification ------------------------------------------------------------- */

static void test_langid(void) {
  char err[512] = "";
  vklm_langid *l = NULL;
  int rc = vklm_langid_create(NULL, NULL, 0, &l, err, sizeof err);
  expect(rc == 0 && l && vklm_langid_count(l) >= 100, "langid: %d models from %s %s",
         l ? vklm_langid_count(l) : 0, VKLM_LANGID_DEFAULT_DIR, err);
  if (rc) return;
  expect(nsamples >= 30, "langid: %d labelled texts loaded", nsamples);
  int ok = 0, langs = 0;
  char seen[64][8];
  double score_sum = 0, t0 = now();
  for (int i = 0; i < nsamples; i++) {
    vklm_lang_result r;
    vklm_langid_detect(l, samples[i].text, strlen(samples[i].text), &r);
    int hit = !strcmp(r.code, samples[i].lang);
    ok += hit;
    score_sum += r.score;
    if (!hit) printf("     miss: %s detected as %s (score %.3f)\n", samples[i].lang, r.code, r.score);
    int k = 0;
    while (k < langs && strcmp(seen[k], samples[i].lang))
      k++;
    if (k == langs && langs < 64) strcpy(seen[langs++], samples[i].lang);
  }
  double dt = now() - t0, acc = (double)ok / nsamples;
  printf("     language identification: accuracy %.1f%% (%d/%d) over %d languages, all %d "
         "models; mean score %.3f; %.0f docs/s on one core\n",
         100 * acc, ok, nsamples, langs, vklm_langid_count(l), score_sum / nsamples, nsamples / dt);
  expect(langs >= 10 && acc >= 0.9, "langid: accuracy %.3f >= 0.9 on %d languages", acc, langs);
  vklm_langid_destroy(l);

  /* restricted to a list of candidates: every text of the set right */
  rc = vklm_langid_create(NULL, "cs,da,de,en,es,fi,fr,it,nl,pl,pt,ru,sv,tr,nb,sk,hu,ro", 0, &l, err,
                          sizeof err);
  ok = 0;
  for (int i = 0; !rc && i < nsamples; i++) {
    vklm_lang_result r;
    vklm_langid_detect(l, samples[i].text, strlen(samples[i].text), &r);
    ok += !strcmp(r.code, samples[i].lang);
  }
  printf("     with 18 candidate languages: accuracy %.1f%% (%d/%d)\n", 100.0 * ok / nsamples, ok,
         nsamples);
  expect(!rc && ok == nsamples, "langid: candidates restricted to 18 languages, %d/%d right", ok,
         nsamples);
  vklm_lang_result r;
  vklm_langid_detect(l, "12345 ... !!! 678", 17, &r);
  expect(!strcmp(r.code, "und") && r.score == 0 && r.index == -1,
         "langid: digits and punctuation only -> und (%s)", r.code);
  vklm_langid_detect(l, "", 0, &r);
  expect(!strcmp(r.code, "und"), "langid: empty text -> und");
  vklm_langid_destroy(l);

  l = NULL;
  rc = vklm_langid_create(NULL, "en,xx-nope", 0, &l, err, sizeof err);
  expect(rc == -1 && !l && strstr(err, "xx-nope"), "langid: unknown code refused: %s", err);
  rc = vklm_langid_create(NULL, "en,de;rm", 0, &l, err, sizeof err);
  expect(rc == -1 && strstr(err, "bad language code"), "langid: malformed code refused: %s", err);
  rc = vklm_langid_create("/nonexistent/models", NULL, 0, &l, err, sizeof err);
  expect(rc == -1 && strstr(err, "/nonexistent/models"), "langid: missing directory: %s", err);
}

/* ---- thresholds by language -------------------------------------------------------------- */

static void repeat_text(vklm_buf *b, const char *s, int times) {
  vklm_buf_clear(b);
  for (int i = 0; i < times; i++) {
    if (i) vklm_buf_putc(b, ' ');
    vklm_buf_append(b, s, strlen(s));
  }
}

static void test_lang_rules(void) {
  vklm_gopher_quality_opts o;
  vklm_gopher_quality_default(&o);
  vklm_buf b = {0};
  /* German prose: no English stop word, so the English rule drops it; German's list keeps it */
  const char *de = NULL, *fi = NULL;
  for (int i = 0; i < nsamples; i++) {
    if (!de && !strcmp(samples[i].lang, "de")) de = samples[i].text;
    if (!fi && !strcmp(samples[i].lang, "fi")) fi = samples[i].text;
  }
  repeat_text(&b, de, 2);
  vklm_drop en = vklm_gopher_quality(&o, b.p, b.n), dd = vklm_gopher_quality_lang(&o, "de", b.p, b.n);
  expect(en == VKLM_DROP_GOPHER_STOP_WORDS && dd == VKLM_DROP_NONE,
         "lang rules: German text fails the English stop words (%s), passes as de (%s)",
         vklm_drop_name(en), vklm_drop_name(dd));
  /* Finnish: long words. Mean word length over English's 10, under Finnish's 14 */
  const char *longw = "Kaupunginvaltuusto hyväksyi ympäristönsuojelusuunnitelman ja "
                      "liikennejärjestelyt yksimielisesti kokouksessaan, että kunnallistekniikka "
                      "uudistetaan.";
  repeat_text(&b, longw, 8);
  en = vklm_gopher_quality(&o, b.p, b.n);
  vklm_drop ff = vklm_gopher_quality_lang(&o, "fi", b.p, b.n);
  expect(en == VKLM_DROP_GOPHER_WORDLEN_HIGH && ff == VKLM_DROP_NONE,
         "lang rules: long Finnish words fail English bounds (%s), pass as fi (%s)",
         vklm_drop_name(en), vklm_drop_name(ff));
  (void)fi;
  /* a language without a list: no stop-word rule; English text as "en" unchanged */
  repeat_text(&b, de, 2);
  expect(vklm_gopher_quality_lang(&o, "sw", b.p, b.n) == VKLM_DROP_NONE,
         "lang rules: no stop-word rule for a language without a list");
  /* unspaced scripts: no word-count rule for a short Chinese text */
  const char *zh = "今天早上我们去市场买了新鲜的蔬菜和水果，然后在公园里散步，天气很好。";
  repeat_text(&b, zh, 3);
  expect(vklm_gopher_quality(&o, b.p, b.n) == VKLM_DROP_GOPHER_SHORT &&
             vklm_gopher_quality_lang(&o, "zh-Hans", b.p, b.n) == VKLM_DROP_NONE,
         "lang rules: Chinese has no word-count rule as zh-Hans (dropped as short in English)");
  vklm_buf_free(&b);
}

/* ---- normalised matching and lists ------------------------------------------------------- */

static int check(const vklm_blocklists *b, const char *lang, const char *url, const char *s,
                 vklm_drop *why) {
  *why = VKLM_DROP_NONE;
  return vklm_blocklists_check(b, lang, url, s, strlen(s), 1, why);
}

static void test_blocklists_unit(void) {
  char err[512] = "", p1[600], p2[600], p3[600], spec[700];
  vklm_blocklists *b = NULL;
  vklm_blocklists_create(&b);
  fixture(p1, sizeof p1, "blocklists/words_en.txt");
  fixture(p2, sizeof p2, "blocklists/words_de.txt");
  fixture(p3, sizeof p3, "blocklists/urls.txt");
  snprintf(spec, sizeof spec, "de:%s", p2);
  int rc = vklm_blocklists_add_words(b, p1, err, sizeof err) |
           vklm_blocklists_add_words(b, spec, err, sizeof err) |
           vklm_blocklists_add_urls(b, p3, err, sizeof err);
  expect(rc == 0 && vklm_blocklists_count(b) == 3, "block: three example lists read %s", err);
  vklm_drop why;
  struct {
    const char *lang, *url, *text;
    int want;
  } cases[] = {
      {"en", NULL, "Get your SPAMWORD today.", 0},
      {"en", NULL, "Ｓｐａｍｗｏｒｄ in full-width letters.", 0}, /* NFKC + case fold */
      {"en", NULL, "A spamwords plural is another word.", -1},    /* whole words only */
      {"en", NULL, "notaspamword glued", -1},
      {"en", NULL, "The Casino   Bonus, for real.", 0},          /* phrase across spaces */
      {"en", NULL, "casino; bonus", 0},                          /* punctuation separates */
      {"en", NULL, "The casino paid a bonus.", -1},              /* not adjacent */
      {"en", NULL, "An ordinary text about a library.", -1},
      {"de", NULL, "Dieses Wundermittel hilft sofort.", 1},
      {"en", NULL, "Dieses Wundermittel hilft sofort.", -1},     /* the German list only for de */
      {"en", "https://spam.example/x", "clean text", 2},
      {"en", "http://sub.spam.example:8080/a?b", "clean text", 2},
      {"en", "https://notspam.example/", "clean text", -1},
      {"en", "https://ads.example.org", "clean text", 2},
      {"en", "https://forum.example.net/off-topic/thread/1", "clean text", 2},
      {"en", "https://forum.example.net/on-topic/thread/1", "clean text", -1},
      {"en", "https://example.net/off-topic/", "clean text", -1},
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int got = check(b, cases[i].lang, cases[i].url, cases[i].text, &why);
    int ok = got == cases[i].want &&
             (got < 0 || why == (got == 2 ? VKLM_DROP_BLOCK_URL : VKLM_DROP_BLOCK_WORDS));
    if (!ok) {
      bad++;
      printf("     case %zu [%s] url %s: list %d, want %d\n", i, cases[i].text,
             cases[i].url ? cases[i].url : "-", got, cases[i].want);
    }
  }
  expect(!bad, "block: %zu matching cases (normalisation, whole words, phrases, per-language "
               "list, domains, subdomains, path prefixes)", sizeof cases / sizeof *cases);
  /* min_matches */
  vklm_drop w2;
  int once = vklm_blocklists_check(b, "en", NULL, "one spamword here", 17, 2, &w2);
  int twice = vklm_blocklists_check(b, "en", NULL, "spamword and spamword", 21, 2, &w2);
  expect(once == -1 && twice == 0, "block: min_matches 2 needs two occurrences");
  vklm_blocklists_destroy(b);

  /* bad lists */
  vklm_blocklists_create(&b);
  rc = vklm_blocklists_add_words(b, "/nonexistent/list.txt", err, sizeof err);
  expect(rc == -1 && strstr(err, "/nonexistent/list.txt"), "block: unreadable list: %s", err);
  char path[512];
  snprintf(path, sizeof path, "%s/empty.txt", tmpdir);
  FILE *f = fopen(path, "w");
  fputs("# only a comment\n\n", f);
  fclose(f);
  rc = vklm_blocklists_add_words(b, path, err, sizeof err);
  expect(rc == -1 && strstr(err, "no entries"), "block: empty list refused: %s", err);
  snprintf(path, sizeof path, "%s/long.txt", tmpdir);
  f = fopen(path, "w");
  fputs("ok\none two three four five six seven eight nine\n", f);
  fclose(f);
  rc = vklm_blocklists_add_words(b, path, err, sizeof err);
  expect(rc == -1 && strstr(err, ":2:"), "block: a 9-word phrase refused with its line: %s", err);
  vklm_blocklists_destroy(b);

  vklm_topics *t = NULL;
  fixture(p1, sizeof p1, "blocklists/topics.txt");
  err[0] = 0;
  rc = vklm_topics_read(p1, &t, err, sizeof err);
  expect(rc == 0 && vklm_topics_count(t) == 3, "topics: 3 topics read %s", err);
  if (!rc) {
    const char *a = "Knead the flour into bread, bake in the oven.";
    const char *c = "The City Hall and the council met at the library.";
    const char *n = "Nothing to see here.";
    int ta = vklm_topics_classify(t, a, strlen(a)), tc = vklm_topics_classify(t, c, strlen(c)),
        tn = vklm_topics_classify(t, n, strlen(n));
    expect(ta == 0 && tc == 1 && tn == -1, "topics: cooking %d, civic %d, other %d", ta, tc, tn);
  }
  vklm_topics_destroy(t);
}

/* ---- prepare, end to end ------------------------------------------------------------------- */

static void json_escape(FILE *f, const char *s) {
  for (; *s; s++)
    if (*s == '"' || *s == '\\')
      fprintf(f, "\\%c", *s);
    else
      fputc(*s, f);
}

/* Reads the output: for each line, text, lang, source, topic into arrays. */
typedef struct outdoc {
  char text[1024], lang[16], source[16], topic[16];
  double score;
} outdoc;

static int read_out(const char *path, outdoc *d, int max) {
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t cap = 0;
  int n = 0;
  while (f && getline(&line, &cap, f) > 0 && n < max) {
    cJSON *j = cJSON_Parse(line);
    cJSON *t = cJSON_GetObjectItem(j, "text"), *l = cJSON_GetObjectItem(j, "lang"),
          *s = cJSON_GetObjectItem(j, "source"), *tp = cJSON_GetObjectItem(j, "topic"),
          *sc = cJSON_GetObjectItem(j, "lang_score");
    memset(&d[n], 0, sizeof d[n]);
    if (cJSON_IsString(t)) snprintf(d[n].text, sizeof d[n].text, "%s", t->valuestring);
    if (cJSON_IsString(l)) snprintf(d[n].lang, sizeof d[n].lang, "%s", l->valuestring);
    if (cJSON_IsString(s)) snprintf(d[n].source, sizeof d[n].source, "%s", s->valuestring);
    if (cJSON_IsString(tp)) snprintf(d[n].topic, sizeof d[n].topic, "%s", tp->valuestring);
    d[n].score = cJSON_IsNumber(sc) ? sc->valuedouble : -1;
    cJSON_Delete(j);
    n++;
  }
  free(line);
  if (f) fclose(f);
  return n;
}

static void base_opts(vklm_prepare_opts *o) {
  vklm_prepare_default(o);
  o->threads = 2;
  o->gopher_quality.enabled = o->gopher_rep.enabled = o->c4.enabled = o->fineweb.enabled = 0;
  o->near.enabled = 0;
  o->stats_path = "";
}

static void test_prepare_lang(void) {
  char in[512], out[512], err[512] = "";
  snprintf(in, sizeof in, "%s/multi.jsonl", tmpdir);
  snprintf(out, sizeof out, "%s/multi.out.jsonl", tmpdir);
  FILE *f = fopen(in, "w");
  for (int i = 0; i < nsamples; i++) {
    fputs("{\"text\": \"", f);
    json_escape(f, samples[i].text);
    fputs("\"}\n", f);
  }
  fclose(f);
  vklm_prepare_opts o;
  base_opts(&o);
  const char *inputs[] = {in};
  o.inputs = inputs;
  o.ninputs = 1;
  o.output = out;
  o.lang_candidates = "cs,da,de,en,es,fi,fr,it,nl,pl,pt,ru,sv,tr,nb,sk,hu,ro";
  vklm_prepare_stats *st = calloc(1, sizeof *st);
  int rc = vklm_prepare_run(&o, st, err, sizeof err);
  static outdoc d[256];
  int n = read_out(out, d, 256), tagged = 0;
  for (int i = 0; i < n; i++)
    tagged += d[i].lang[0] && d[i].score >= 0 && d[i].score <= 1;
  expect(rc == 0 && n == nsamples && tagged == n, "prepare: %d/%d kept documents carry lang and "
         "lang_score %s", tagged, n, err);
  uint64_t de_docs = 0, de_bytes = 0, sum = 0;
  for (int i = 0; i < st->nlangs; i++) {
    sum += st->langs[i].docs;
    if (!strcmp(st->langs[i].name, "de")) de_docs = st->langs[i].docs, de_bytes = st->langs[i].bytes;
  }
  uint64_t want_bytes = 0;
  for (int i = 0; i < nsamples; i++)
    if (!strcmp(samples[i].lang, "de")) want_bytes += strlen(samples[i].text);
  expect(sum == st->docs_out && de_docs == 3 && de_bytes == want_bytes,
         "prepare: per-language stats: de %llu docs, %llu bytes (want 3, %llu); sum %llu",
         (unsigned long long)de_docs, (unsigned long long)de_bytes, (unsigned long long)want_bytes,
         (unsigned long long)sum);

  /* --languages de,fr keeps exactly those */
  o.languages = "de,fr";
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  n = read_out(out, d, 256);
  int only = 1;
  for (int i = 0; i < n; i++)
    only &= !strcmp(d[i].lang, "de") || !strcmp(d[i].lang, "fr");
  expect(rc == 0 && n == 6 && only && st->drops[VKLM_DROP_LANG] == (uint64_t)nsamples - 6,
         "prepare: --languages de,fr keeps %d documents, all de/fr; %llu dropped", n,
         (unsigned long long)st->drops[VKLM_DROP_LANG]);
  /* --min-lang-score: the documents under the threshold go, and only they */
  o.languages = NULL;
  o.min_lang_score = 0.07;
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  n = read_out(out, d, 256);
  int low = 0;
  for (int i = 0; i < n; i++)
    low += d[i].score < 0.07 - 1e-4;
  expect(rc == 0 && n > 0 && n < nsamples && !low &&
             st->drops[VKLM_DROP_LANG_SCORE] == (uint64_t)(nsamples - n),
         "prepare: --min-lang-score 0.07 keeps %d, drops %llu, none kept below", n,
         (unsigned long long)st->drops[VKLM_DROP_LANG_SCORE]);
  /* bad options, before any work */
  o.min_lang_score = 0;
  o.languages = "de,zz";
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  expect(rc == -1 && strstr(err, "zz") && st->docs_read == 0, "prepare: --languages with an "
         "unknown code refused before reading: %s", err);
  o.languages = "de";
  o.langid = 0;
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  expect(rc == -1 && st->docs_read == 0, "prepare: --languages without langid refused: %s", err);
  free(st);
}

static void test_prepare_block(void) {
  char in[512], out[512], err[512] = "", p1[600], p2[600], p3[600], spec[700], topics[600];
  snprintf(in, sizeof in, "%s/block.jsonl", tmpdir);
  snprintf(out, sizeof out, "%s/block.out.jsonl", tmpdir);
  /* every sample, some with a planted entry or URL; remember which */
  int planted[256] = {0}, nplanted[3] = {0};
  FILE *f = fopen(in, "w");
  for (int i = 0; i < nsamples; i++) {
    const char *add = "", *url = NULL;
    int which = -1;
    if (i % 7 == 1) add = " Win a Casino bonus now!", which = 0;
    if (i % 7 == 3 && !strcmp(samples[i].lang, "de")) add = " Das WUNDERMITTEL!", which = 1;
    if (i % 7 == 5) url = "https://www.sub.spam.example/page", which = 2;
    if (i % 7 == 6) url = "https://forum.example.net/on-topic/1"; /* not blocked */
    if (i % 7 == 3 && strcmp(samples[i].lang, "de")) add = " Wundermittel."; /* kept: not German */
    planted[i] = which;
    if (which >= 0) nplanted[which]++;
    fputs("{\"text\": \"", f);
    json_escape(f, samples[i].text);
    fputs(add, f);
    fputs("\"", f);
    if (url) fprintf(f, ", \"url\": \"%s\"", url);
    fputs("}\n", f);
  }
  fclose(f);
  fixture(p1, sizeof p1, "blocklists/words_en.txt");
  fixture(p2, sizeof p2, "blocklists/words_de.txt");
  fixture(p3, sizeof p3, "blocklists/urls.txt");
  fixture(topics, sizeof topics, "blocklists/topics.txt");
  snprintf(spec, sizeof spec, "de:%s", p2);
  const char *words[] = {p1, spec}, *urls[] = {p3};
  vklm_prepare_opts o;
  base_opts(&o);
  const char *inputs[] = {in}, *sources[] = {"web"};
  o.inputs = inputs;
  o.ninputs = 1;
  o.output = out;
  o.block_words = words;
  o.nblock_words = 2;
  o.block_urls = urls;
  o.nblock_urls = 1;
  o.lang_candidates = "cs,da,de,en,es,fi,fr,it,nl,pl,pt,ru,sv,tr,nb,sk,hu,ro";
  o.sources = sources;
  o.topics = topics;
  vklm_prepare_stats *st = calloc(1, sizeof *st);
  int rc = vklm_prepare_run(&o, st, err, sizeof err);
  static outdoc d[256];
  int n = read_out(out, d, 256);
  /* the kept ones are exactly the unplanted ones, in order */
  int j = 0, exact = 1;
  for (int i = 0; i < nsamples; i++) {
    if (planted[i] >= 0) continue;
    if (j >= n || strncmp(d[j].text, samples[i].text, strlen(samples[i].text))) exact = 0;
    j++;
  }
  int want_kept = j;
  expect(rc == 0 && exact && n == want_kept, "block: %d documents kept = the %d unplanted ones "
         "(planted: %d words, %d German words, %d URLs) %s", n, want_kept, nplanted[0], nplanted[1],
         nplanted[2], err);
  expect(st->nblock == 3 && st->block_removed[0] == (uint64_t)nplanted[0] &&
             st->block_removed[1] == (uint64_t)nplanted[1] &&
             st->block_removed[2] == (uint64_t)nplanted[2],
         "block: per-list counts %llu %llu %llu (want %d %d %d)",
         (unsigned long long)st->block_removed[0], (unsigned long long)st->block_removed[1],
         (unsigned long long)st->block_removed[2], nplanted[0], nplanted[1], nplanted[2]);
  int src_ok = 1, topic_ok = 1, cooking = 0;
  for (int i = 0; i < n; i++) {
    src_ok &= !strcmp(d[i].source, "web");
    topic_ok &= d[i].topic[0] != 0;
    cooking += !strcmp(d[i].topic, "cooking");
  }
  expect(src_ok && topic_ok && cooking >= 1 && st->nsources == 1 &&
             st->sources[0].docs == (uint64_t)n,
         "tags: every kept line has source web and a topic (%d cooking)", cooking);
  /* an unreadable list: a clear error before any document is read */
  const char *bad[] = {"/nonexistent/words.txt"};
  o.block_words = bad;
  o.nblock_words = 1;
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  struct stat sb;
  expect(rc == -1 && strstr(err, "/nonexistent/words.txt") && st->docs_read == 0,
         "block: unreadable list refused before reading: %s", err);
  /* a named source with no documents, or missing: an error, no output */
  char empty[512], ins[2][512];
  snprintf(empty, sizeof empty, "%s/empty-source", tmpdir);
  mkdir(empty, 0700);
  const char *in2[] = {in, empty}, *src2[] = {"web", "news"};
  o.nblock_words = 0;
  o.inputs = in2;
  o.ninputs = 2;
  o.sources = src2;
  unlink(out);
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  expect(rc == -1 && strstr(err, "news") && stat(out, &sb) != 0,
         "sources: a source with no documents is an error, no output: %s", err);
  snprintf(ins[0], sizeof ins[0], "%s/missing-dir", tmpdir);
  in2[1] = ins[0];
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  expect(rc == -1 && strstr(err, "missing-dir") && st->docs_read == 0,
         "sources: a missing source refused before reading: %s", err);
  free(st);
}

/* ---- the scorer hook of prepare (the GPU classifier's; here a plain C one) ------------------ */

static int calls;
static int fake_score(void *user, const char *const *texts, const size_t *lens, int n, float *out,
                      char *err, size_t errlen) {
  calls++;
  if (user) {
    snprintf(err, errlen, "device lost (planted)");
    return -1;
  }
  for (int i = 0; i < n; i++)
    out[i] = memmem(texts[i], lens[i], "ie", 2) ? 0.9f : 0.1f;
  return 0;
}

static void test_prepare_scorer(void) {
  char in[512], out[512], err[512] = "";
  snprintf(in, sizeof in, "%s/multi.jsonl", tmpdir); /* written by test_prepare_lang */
  snprintf(out, sizeof out, "%s/scored.jsonl", tmpdir);
  int want_flagged = 0;
  for (int i = 0; i < nsamples; i++)
    want_flagged += strstr(samples[i].text, "ie") != NULL;
  vklm_doc_scorer sc = {fake_score, NULL, 0.5, 1};
  vklm_prepare_opts o;
  base_opts(&o);
  const char *inputs[] = {in};
  o.inputs = inputs;
  o.ninputs = 1;
  o.output = out;
  o.langid = 0;
  o.scorer = &sc;
  vklm_prepare_stats *st = calloc(1, sizeof *st);
  int rc = vklm_prepare_run(&o, st, err, sizeof err);
  FILE *f = fopen(out, "r");
  char *line = NULL;
  size_t cap = 0;
  int n = 0, flagged = 0, scored = 0;
  while (f && getline(&line, &cap, f) > 0) {
    cJSON *j = cJSON_Parse(line);
    n++;
    scored += cJSON_IsNumber(cJSON_GetObjectItem(j, "classifier_score"));
    flagged += cJSON_IsTrue(cJSON_GetObjectItem(j, "classifier_flagged"));
    cJSON_Delete(j);
  }
  if (f) fclose(f);
  expect(rc == 0 && n == nsamples && scored == n && flagged == want_flagged &&
             st->flagged == (uint64_t)want_flagged && st->scored == (uint64_t)n,
         "scorer, tag: %d kept, all scored, %d flagged (want %d) %s", n, flagged, want_flagged, err);
  sc.tag = 0;
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  n = 0;
  f = fopen(out, "r");
  while (f && getline(&line, &cap, f) > 0) {
    cJSON *j = cJSON_Parse(line), *t = cJSON_GetObjectItem(j, "text");
    n += cJSON_IsString(t) && !strstr(t->valuestring, "ie");
    cJSON_Delete(j);
  }
  if (f) fclose(f);
  expect(rc == 0 && n == nsamples - want_flagged &&
             st->drops[VKLM_DROP_CLASSIFIER] == (uint64_t)want_flagged,
         "scorer, drop: %d kept, %llu removed as classifier", n,
         (unsigned long long)st->drops[VKLM_DROP_CLASSIFIER]);
  sc.user = &sc; /* the fake scorer fails */
  unlink(out);
  struct stat sb;
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  expect(rc == -1 && strstr(err, "device lost") && stat(out, &sb) != 0,
         "scorer failure: an error, no output: %s", err);
  sc.user = NULL;
  sc.threshold = 1.5;
  rc = vklm_prepare_run(&o, st, err, sizeof err);
  expect(rc == -1 && st->docs_read == 0, "scorer threshold 1.5 refused before work: %s", err);
  free(line);
  free(st);
}

int main(void) {
  snprintf(fixtures, sizeof fixtures, "%s", __FILE__);
  char *slash = strrchr(fixtures, '/');
  snprintf(slash ? slash + 1 : fixtures, sizeof fixtures - (size_t)(slash ? slash + 1 - fixtures : 0),
           "data");
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vklm-test-data-lang-XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  load_samples();
  test_langid();
  test_lang_rules();
  test_blocklists_unit();
  test_prepare_lang();
  test_prepare_block();
  test_prepare_scorer();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd)) printf("could not remove %s\n", tmpdir);
  for (int i = 0; i < nsamples; i++)
    free(samples[i].text);
  printf("%d/%d checks passed\n", checks - failures, checks);
  return failures ? 1 : 0;
}

/* Tests of the text pipeline (engine/data/): every filter rule on documents crafted to trip it
 * and to pass it, HTML extraction, UTF-8 repair and NFC, exact and near dedup (planted
 * near-duplicate pairs), scrubbing, bad input (malformed JSONL, binary, empty, oversize, gzip),
 * token shards (round trip, corrupt and truncated files), and end-to-end runs of prepare and
 * tokenize on a temp directory. CPU only; no network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dedup.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/steps.h"
#include "data/tokenize.h"
#include "data_fixtures.h"
#include "text/tokenizer.h"

/* ---- html, clean --------------------------------------------------------------------------- */

static void test_html(void) {
  const char *html = "<html><head><title>T</title><style>p{color:red}</style>"
                     "<script>var x = 'hidden script';</script></head><body>"
                     "<nav><a href='/'>Home</a> | <a href='/about'>About us</a></nav>"
                     "<header>Site banner</header>"
                     "<div role=\"navigation\">Menu entry</div>"
                     "<p>Caf&eacute; &amp; cr&egrave;me &lt;tag&gt; &#8217;quoted&#8217;.</p>"
                     "<p>Second   paragraph\nwith a<br>line break.</p>"
                     "<form>Subscribe here</form><aside>Related links</aside>"
                     "<footer>Copyright footer</footer></body></html>";
  vklm_buf raw = {0}, txt = {0};
  vklm_html_init();
  int rc = vklm_html_extract(html, strlen(html), &raw);
  vklm_clean_whitespace(raw.p, raw.n, &txt);
  const char *want = "Caf\xC3\xA9 & cr\xC3\xA8me <tag> \xE2\x80\x99quoted\xE2\x80\x99.\n\n"
                     "Second paragraph with a\nline break.";
  expect(rc == 0 && streq(&txt, want), "html: extracted text is [%s]", txt.p ? txt.p : "");
  const char *gone[] = {"hidden script", "color",   "Home",      "banner", "Menu",
                        "Subscribe",     "Related", "Copyright", NULL};
  int leak = 0;
  for (int i = 0; gone[i]; i++)
    leak |= txt.p && strstr(txt.p, gone[i]) != NULL;
  expect(!leak, "html: script, style, nav, header, role=navigation, form, aside, footer dropped");
  vklm_buf_clear(&raw);
  rc = vklm_html_extract("<<<>>>&&&\x01\xff", 10, &raw);
  expect(rc == 0 || rc == -1, "html: garbage input does not crash (rc %d)", rc);
  vklm_buf_free(&raw);
  vklm_buf_free(&txt);
}

static void test_clean(void) {
  /* a, invalid lead 0xFF, overlong C0 80, surrogate ED A0 80, truncated E2 82 then 'b',
   * F5 (never valid), NUL, valid U+20AC, truncated F0 9F at the end */
  const char in[] = "a\xFF\xC0\x80\xED\xA0\x80\xE2\x82"
                    "b\xF5\0\xE2\x82\xAC\xF0\x9F";
  vklm_buf out = {0};
  vklm_clean_counts c = {0};
  vklm_clean_utf8(in, sizeof in - 1, &out, &c);
  const char *R = "\xEF\xBF\xBD";
  char want[128];
  snprintf(want, sizeof want, "a%s%s%s%s%s%s%sb%s\xE2\x82\xAC%s", R, R, R, R, R, R, R, R, R);
  /* C0 and 80 are two errors, ED A0 80 three (ED cannot take A0), E2 82 one, F5 one, F0 9F one */
  expect(streq(&out, want) && c.nul_bytes == 1,
         "utf8: repaired to U+FFFD per maximal subpart (%llu invalid, %llu NUL)",
         (unsigned long long)c.invalid_sequences, (unsigned long long)c.nul_bytes);
  vklm_buf_clear(&out);
  const char nfd[] = "Cafe\xCC\x81 A\xCC\x8A"; /* e + combining acute, A + combining ring */
  vklm_clean_nfc(nfd, sizeof nfd - 1, &out);
  expect(streq(&out, "Caf\xC3\xA9 \xC3\x85"), "nfc: e+U+0301 -> U+00E9, A+U+030A -> U+00C5");
  vklm_buf_clear(&out);
  const char ws[] = "  a \t b\xC2\xA0"
                    "c\r\n\r\n\r\n\r\nd  \x01\xE2\x80\x8B"
                    "e \n f\n";
  vklm_clean_whitespace(ws, sizeof ws - 1, &out);
  expect(streq(&out, "a b c\n\nd e\nf"), "whitespace: [%s]", out.p);
  vklm_buf_free(&out);
}

/* ---- filters ------------------------------------------------------------------------------- */

static void gq_case(const char *what, const vklm_gopher_quality_opts *o, const char *trip,
                    const char *pass, vklm_drop want) {
  vklm_drop a = vklm_gopher_quality(o, trip, strlen(trip));
  vklm_drop b = vklm_gopher_quality(o, pass, strlen(pass));
  expect(a == want && b == VKLM_DROP_NONE, "gopher quality %s: trip -> %s, pass -> %s", what,
         vklm_drop_name(a), vklm_drop_name(b));
}

/* Appends n copies of s (with a space) to b. */
static void test_gopher_quality(void) {
  vklm_gopher_quality_opts o;
  vklm_gopher_quality_default(&o);
  vklm_buf good = {0}, t = {0};
  good_doc(&good, 4);
  expect(vklm_gopher_quality(&o, good.p, good.n) == VKLM_DROP_NONE,
         "gopher quality: good doc kept");
  rep(&t, "the cat and the dog.", 8); /* 40 words */
  gq_case("min words (40 < 50)", &o, t.p, good.p, VKLM_DROP_GOPHER_SHORT);
  vklm_buf_clear(&t);
  rep(&t, "the river and the mountain.", 20001); /* 100005 words */
  gq_case("max words (> 100000)", &o, t.p, good.p, VKLM_DROP_GOPHER_LONG);
  vklm_buf_clear(&t);
  rep(&t, "to be or to go at it of me.", 10); /* mean 2 */
  gq_case("mean word length < 3", &o, t.p, good.p, VKLM_DROP_GOPHER_WORDLEN_LOW);
  vklm_buf_clear(&t);
  rep(&t, "internationalization responsibilities characterization.", 20);
  gq_case("mean word length > 10", &o, t.p, good.p, VKLM_DROP_GOPHER_WORDLEN_HIGH);
  vklm_buf_clear(&t);
  vklm_buf_append(&t, good.p, good.n);
  rep(&t, "#news #river", 12);
  gq_case("hash symbols per word > 0.1", &o, t.p, good.p, VKLM_DROP_GOPHER_HASHES);
  vklm_buf_clear(&t);
  vklm_buf_append(&t, good.p, good.n);
  rep(&t, "and so on... and \xE2\x80\xA6", 30);
  gq_case("ellipses per word > 0.1", &o, t.p, good.p, VKLM_DROP_GOPHER_ELLIPSES);
  vklm_buf_clear(&t);
  for (int i = 0; i < 10; i++) {
    const char *l = "\xE2\x80\xA2 The summer of the river and the mountain market.\n";
    vklm_buf_append(&t, l, strlen(l));
  }
  vklm_buf near_ok = {0};
  for (int i = 0; i < 10; i++) {
    const char *l = i >= 8 ? "The summer of the river and the mountain village market.\n"
                           : "- The summer of the river and the mountain market stalls.\n";
    vklm_buf_append(&near_ok, l, strlen(l));
  }
  gq_case("bullet lines > 90% (100% trips, 80% passes)", &o, t.p, near_ok.p,
          VKLM_DROP_GOPHER_BULLETS);
  vklm_buf_clear(&t);
  for (int i = 0; i < 10; i++) {
    const char *l = i < 4 ? "The summer of the river and the mountain village market and more...\n"
                          : "The summer of the river and the mountain village market and more.\n";
    vklm_buf_append(&t, l, strlen(l));
  }
  vklm_buf_clear(&near_ok);
  for (int i = 0; i < 10; i++) {
    const char *l = i < 3 ? "The summer of the river and the mountain village market and more...\n"
                          : "The summer of the river and the mountain village market and more.\n";
    vklm_buf_append(&near_ok, l, strlen(l));
  }
  gq_case("ellipsis-ending lines > 30% (40% trips, 30% passes)", &o, t.p, near_ok.p,
          VKLM_DROP_GOPHER_END_ELLIPSIS);
  vklm_buf_clear(&t);
  vklm_buf_append(&t, good.p, good.n);
  rep(&t, "1999 2024 3.14 42", 30);
  gq_case("words with a letter < 80%", &o, t.p, good.p, VKLM_DROP_GOPHER_ALPHA);
  vklm_buf_clear(&t);
  rep(&t, "Rivers flow past mountain villages near markets.", 10);
  vklm_buf_clear(&near_ok);
  rep(&near_ok, "Rivers flow past mountain villages near markets.", 10);
  vklm_buf_append(&near_ok, " Walk with the people.", 22);
  gq_case("stop words < 2 (0 trips, 'the'+'with' pass)", &o, t.p, near_ok.p,
          VKLM_DROP_GOPHER_STOP_WORDS);
  vklm_buf_free(&good);
  vklm_buf_free(&t);
  vklm_buf_free(&near_ok);
}

/* Repetition: each rule alone (the others set to 0 = off), a crafted text to trip it and a
 * plain text to pass it. */
static void rep_case(const char *what, vklm_gopher_rep_opts *o, const char *trip, const char *pass,
                     vklm_drop want) {
  vklm_drop a = vklm_gopher_repetition(o, trip, strlen(trip));
  vklm_drop b = vklm_gopher_repetition(o, pass, strlen(pass));
  expect(a == want && b == VKLM_DROP_NONE, "gopher repetition %s: trip -> %s, pass -> %s", what,
         vklm_drop_name(a), vklm_drop_name(b));
}

static void test_gopher_repetition(void) {
  vklm_gopher_rep_opts def, o;
  vklm_gopher_rep_default(&def);
  vklm_buf good = {0}, t = {0};
  uint32_t w[400];
  good_doc(&good, 5);
  expect(vklm_gopher_repetition(&def, good.p, good.n) == VKLM_DROP_NONE,
         "gopher repetition: good doc kept with all rules on");
  vklm_gopher_rep_opts off = {.enabled = 1};
  o = off;
  o.dup_para_frac = def.dup_para_frac;
  rep_case("dup paragraph fraction (2 of 4 > 0.3)", &o,
           "First words here.\n\nRepeated block of text.\n\nRepeated block of text.\n\n"
           "Repeated block of text.",
           "One.\n\nTwo.\n\nThree.\n\nFour.", VKLM_DROP_REP_DUP_PARA);
  o = off;
  o.dup_para_char_frac = def.dup_para_char_frac;
  rep_case("dup paragraph chars (> 0.2)", &o,
           "A long paragraph that is repeated later on in the text.\n\nShort.\n\n"
           "A long paragraph that is repeated later on in the text.",
           "A long paragraph that is not repeated.\n\nShort.\n\nAnother one.",
           VKLM_DROP_REP_DUP_PARA_CHAR);
  o = off;
  o.dup_line_frac = def.dup_line_frac;
  rep_case("dup line fraction (4 of 10 > 0.3)", &o, "x\na\nx\nb\nx\nc\nx\nd\nx\ne",
           "x\na\nx\nb\nc\nd\ne\nf\ng\nh", VKLM_DROP_REP_DUP_LINE);
  o = off;
  o.dup_line_char_frac = def.dup_line_char_frac;
  rep_case("dup line chars (> 0.2)", &o,
           "a line that will come back again\nb\nc\na line that will come back again",
           "a line that will not come back\nb\nc\nd", VKLM_DROP_REP_DUP_LINE_CHAR);
  random_words(w, 400);
  vklm_buf pass = {0};
  words_text(&pass, w, 400);
  for (int g = 0; g < 3; g++) { /* top n-gram: one n-gram of long words, repeated */
    o = off;
    o.top_ngram[g] = def.top_ngram[g];
    vklm_buf_clear(&t);
    const char *ng[] = {"alphabetical ordering", "alphabetical ordering principles",
                        "alphabetical ordering principles everywhere"};
    for (int i = 0; i < 40; i++) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%sw%u ", i ? " " : "", w[i]);
      vklm_buf_append(&t, tmp, strlen(tmp));
      vklm_buf_append(&t, ng[g], strlen(ng[g]));
    }
    char what[64];
    snprintf(what, sizeof what, "top %d-gram chars", g + 2);
    rep_case(what, &o, t.p, pass.p, (vklm_drop)(VKLM_DROP_REP_TOP_2GRAM + g));
  }
  for (int g = 0; g < 6; g++) { /* duplicated n-grams: the first 60 words twice */
    o = off;
    o.dup_ngram[g] = def.dup_ngram[g];
    uint32_t w2[200];
    random_words(w2, 200);
    memcpy(w2 + 100, w2, 60 * sizeof *w2);
    words_text(&t, w2, 200);
    char what[64];
    snprintf(what, sizeof what, "duplicated %d-gram chars", g + 5);
    rep_case(what, &o, t.p, pass.p, (vklm_drop)(VKLM_DROP_REP_DUP_5GRAM + g));
  }
  vklm_buf_free(&good);
  vklm_buf_free(&t);
  vklm_buf_free(&pass);
}

static void test_c4(void) {
  vklm_c4_opts o;
  vklm_c4_default(&o);
  vklm_buf out = {0};
  const char *in = "This line has a citation[1] and ends well.\n"
                   "This line has no terminal punctuation\n"
                   "Too short.\n"
                   "Please enable JavaScript in your browser settings.\n"
                   "This site uses cookies to improve the experience.\n"
                   "A line that trails off into an ellipsis...\n"
                   "Another good line is here. It has two sentences!\n"
                   "The third good line asks a question?\n"
                   "The fourth good line ends with a quote \"like this.\"\n"
                   "Edited content[edit] with a needed citation[citation needed].\n";
  vklm_c4_counts c = {0};
  vklm_drop d = vklm_c4_filter(&o, in, strlen(in), &out, &c);
  const char *want = "This line has a citation and ends well.\n"
                     "Another good line is here. It has two sentences!\n"
                     "The third good line asks a question?\n"
                     "The fourth good line ends with a quote \"like this.\"\n"
                     "Edited content with a needed citation.";
  expect(d == VKLM_DROP_NONE && streq(&out, want) && c.lines_in == 10 && c.lines_kept == 5,
         "c4: line rules (no punct, < 3 words, javascript, policy, ellipsis, citations) -> [%s]",
         out.p ? out.p : "");
  vklm_buf_clear(&out);
  const char *few = "One sentence here.\nTwo sentences here.\nThree sentences here.\n"
                    "Four sentences here.";
  d = vklm_c4_filter(&o, few, strlen(few), &out, NULL);
  expect(d == VKLM_DROP_C4_FEW_SENTENCES, "c4: 4 sentences < 5 -> %s", vklm_drop_name(d));
  vklm_buf_clear(&out);
  const char *lorem = "Good line number one here.\nLorem ipsum dolor sit amet, consectetur.\n";
  d = vklm_c4_filter(&o, lorem, strlen(lorem), &out, NULL);
  expect(d == VKLM_DROP_C4_LOREM_IPSUM, "c4: lorem ipsum drops the doc -> %s", vklm_drop_name(d));
  vklm_buf_clear(&out);
  const char *curly = "Good line number one here.\nThe function f(x) { return x; } is fine.\n";
  d = vklm_c4_filter(&o, curly, strlen(curly), &out, NULL);
  expect(d == VKLM_DROP_C4_CURLY_BRACKET, "c4: '{' drops the doc -> %s", vklm_drop_name(d));
  vklm_buf_clear(&out);
  vklm_buf lw = {0};
  vklm_buf_append(&lw, "Good line one is here.\nA very long word ", 39);
  for (int i = 0; i < 1001; i++)
    vklm_buf_putc(&lw, 'x');
  vklm_buf_append(&lw, " ends it.\nGood line two. Three. Four. Five.", 43);
  d = vklm_c4_filter(&o, lw.p, lw.n, &out, NULL);
  expect(d == VKLM_DROP_NONE &&
             streq(&out, "Good line one is here.\nGood line two. Three. Four. Five."),
         "c4: line with a word over 1000 chars dropped -> %s", vklm_drop_name(d));
  vklm_buf_free(&lw);
  vklm_buf_free(&out);
}

static void fw_case(const char *what, const char *trip, const char *pass, vklm_drop want) {
  vklm_fineweb_opts o;
  vklm_fineweb_default(&o);
  vklm_drop a = vklm_fineweb_filter(&o, trip, strlen(trip));
  vklm_drop b = vklm_fineweb_filter(&o, pass, strlen(pass));
  expect(a == want && b == VKLM_DROP_NONE, "fineweb %s: trip -> %s, pass -> %s", what,
         vklm_drop_name(a), vklm_drop_name(b));
}

static void test_fineweb(void) {
  vklm_buf good = {0}, t = {0}, p = {0};
  good_doc(&good, 4);
  for (int i = 0; i < 10; i++) { /* 1 of 10 lines ends in punctuation: 0.1 < 0.12 */
    char l[128];
    snprintf(l, sizeof l, "Line %d of a list of market prices and village news%s\n", i,
             i == 0 ? "." : "");
    vklm_buf_append(&t, l, strlen(l));
  }
  for (int i = 0; i < 8; i++) { /* 2 of 8 = 0.25 */
    char l[128];
    snprintf(l, sizeof l, "Line %d of a list of market prices and village news%s\n", i,
             i < 2 ? "." : "");
    vklm_buf_append(&p, l, strlen(l));
  }
  fw_case("line punctuation share < 0.12", t.p, p.p, VKLM_DROP_FW_LINE_PUNCT);
  vklm_buf_clear(&t);
  vklm_buf_clear(&p);
  for (int i = 0; i < 10; i++) { /* 7 of 10 short lines: 0.7 > 0.67 */
    char l[160];
    snprintf(l, sizeof l,
             i < 7 ? "Short line %d here.\n"
                   : "A much longer line number %d that has many words in it and "
                     "more than thirty characters.\n",
             i);
    vklm_buf_append(&t, l, strlen(l));
    snprintf(l, sizeof l,
             i < 6 ? "Short line %d here.\n"
                   : "A much longer line number %d that has many words in it and "
                     "more than thirty characters.\n",
             i);
    vklm_buf_append(&p, l, strlen(l));
  }
  fw_case("short line share > 0.67 (0.7 trips, 0.6 passes)", t.p, p.p, VKLM_DROP_FW_SHORT_LINES);
  vklm_buf_clear(&t);
  vklm_buf_append(&t, good.p, good.n);
  const char *dl = "\nThis exact sentence appears twice in the document.\n"
                   "This exact sentence appears twice in the document.";
  vklm_buf_append(&t, dl, strlen(dl));
  fw_case("duplicated line chars > 0.01", t.p, good.p, VKLM_DROP_FW_CHAR_DUP);
  vklm_buf_clear(&t);
  for (int i = 0; i < 20; i++) { /* 3 words per line: newlines/words ~ 0.33 > 0.3 */
    char l[128];
    snprintf(l, sizeof l, "Item internationalization-responsibility-%s-%d.\n", vocab[8 + i], i);
    vklm_buf_append(&t, l, strlen(l));
  }
  fw_case("newlines per word > 0.3 (list-like)", t.p, good.p, VKLM_DROP_FW_LIST);
  vklm_buf_free(&good);
  vklm_buf_free(&t);
  vklm_buf_free(&p);
}

static void test_scrub(void) {
  vklm_scrubber *sc = NULL;
  vklm_buf out = {0};
  uint64_t e = 0, ip = 0;
  int rc = vklm_scrub_create(1, 1, &sc);
  const char *in = "Mail john.doe+x@mail.example.org or ADMIN@host.co.uk; server 192.168.1.20 "
                   "and 2001:0db8:85a3:0000:0000:8a2e:0370:7334; version 1.2.3.4.5 and 999.1.1.1 "
                   "and user@localhost stay.";
  if (!rc) rc = vklm_scrub_apply(sc, in, strlen(in), &out, &e, &ip);
  const char *want = "Mail email@example.com or email@example.com; server 0.0.0.0 and ::; "
                     "version 1.2.3.4.5 and 999.1.1.1 and user@localhost stay.";
  expect(!rc && streq(&out, want) && e == 2 && ip == 2, "scrub: %llu e-mails, %llu IPs -> [%s]",
         (unsigned long long)e, (unsigned long long)ip, out.p ? out.p : "");
  vklm_scrub_destroy(sc);
  vklm_buf_free(&out);
}

/* ---- dedup --------------------------------------------------------------------------------- */

static void test_exact(void) {
  vklm_dedup_set *s = NULL;
  vklm_dedup_set_create(&s);
  int fresh = 0, dup = 0;
  for (int i = 0; i < 20000; i++) { /* 10000 distinct texts, each twice */
    char t[32];
    snprintf(t, sizeof t, "document %d", i % 10000);
    uint64_t h[2];
    vklm_hash128(t, strlen(t), h);
    int r = vklm_dedup_set_insert(s, h);
    fresh += r == 1;
    dup += r == 0;
  }
  expect(fresh == 10000 && dup == 10000 && vklm_dedup_set_count(s) == 10000,
         "exact dedup: 10000 new, 10000 duplicates (got %d, %d)", fresh, dup);
  vklm_dedup_set_destroy(s);
}

/* True Jaccard of the word 5-gram sets of two word arrays (small sizes: quadratic is fine). */
static double true_jaccard(const uint32_t *a, int na, const uint32_t *b, int nb) {
  int inter = 0, ua = na - 4, ub = nb - 4;
  for (int i = 0; i < ua; i++)
    for (int j = 0; j < ub; j++)
      if (!memcmp(a + i, b + j, 5 * sizeof *a)) {
        inter++;
        break;
      }
  return (double)inter / (ua + ub - inter);
}

/* Plants npairs near-duplicate pairs (edits substitutions into a copy) among ndistinct random
 * documents; returns the share of pairs found, and counts distinct documents lost. */
static double near_run(const vklm_minhash_opts *o, int edits, int npairs, int ndistinct, int *lost,
                       double *mean_j) {
  enum { NW = 300 };
  int ndocs = 2 * npairs + ndistinct, k = vklm_minhash_count(o);
  uint32_t *sigs = malloc((size_t)ndocs * k * sizeof *sigs);
  uint8_t *keep = malloc((size_t)ndocs);
  uint32_t a[NW], b[NW];
  vklm_buf t = {0};
  double js = 0;
  for (int p = 0; p < npairs; p++) {
    random_words(a, NW);
    memcpy(b, a, sizeof a);
    for (int e = 0; e < edits; e++)
      b[rnd() % NW] = (uint32_t)(20000 + rnd() % 20000);
    js += true_jaccard(a, NW, b, NW);
    words_text(&t, a, NW);
    vklm_minhash_signature(o, t.p, t.n, sigs + (size_t)(2 * p) * k);
    words_text(&t, b, NW);
    vklm_minhash_signature(o, t.p, t.n, sigs + (size_t)(2 * p + 1) * k);
  }
  for (int d = 0; d < ndistinct; d++) {
    random_words(a, NW);
    words_text(&t, a, NW);
    vklm_minhash_signature(o, t.p, t.n, sigs + (size_t)(2 * npairs + d) * k);
  }
  vklm_minhash_result res;
  vklm_minhash_cluster(o, sigs, (uint64_t)ndocs, keep, &res);
  int found = 0;
  *lost = 0;
  for (int p = 0; p < npairs; p++) {
    found += keep[2 * p] && !keep[2 * p + 1];
    *lost += !keep[2 * p]; /* the first of a pair must survive */
  }
  for (int d = 0; d < ndistinct; d++)
    *lost += !keep[2 * npairs + d];
  *mean_j = js / npairs;
  free(sigs);
  free(keep);
  vklm_buf_free(&t);
  return (double)found / npairs;
}

static void test_near(void) {
  vklm_minhash_opts o;
  vklm_minhash_default(&o);
  int lost;
  double j;
  /* 5 edits in 300 words: 5-gram Jaccard ~0.84; the defaults (20 bands x 6 rows) catch a pair
   * with probability 1-(1-J^6)^20 ~ 0.999 */
  double r = near_run(&o, 5, 200, 400, &lost, &j);
  expect(r >= 0.95 && lost == 0,
         "near dedup %dx%d: %.1f%% of 200 pairs at mean Jaccard %.3f found (>= 95%%), %d of 400 "
         "distinct + 200 originals lost (0)",
         o.bands, o.rows, 100 * r, j, lost);
  /* ~0.8 Jaccard (7 edits): the defaults catch 99.8% in theory (1-(1-0.8^6)^20); the former
   * 14x8 ~92% (1-(1-0.8^8)^14) */
  double r8 = near_run(&o, 7, 200, 400, &lost, &j);
  expect(r8 >= 0.95 && lost == 0,
         "near dedup defaults %dx%d at mean Jaccard %.3f: %.1f%% found (>= 95%%), %d lost (0)",
         o.bands, o.rows, j, 100 * r8, lost);
  o.bands = 14;
  o.rows = 8;
  r8 = near_run(&o, 7, 200, 400, &lost, &j);
  printf("info near dedup 14x8 at mean Jaccard %.3f: %.1f%% found (theory at 0.80: 92.4%%)\n", j,
         100 * r8);
  o.bands = 28;
  o.rows = 4;
  r = near_run(&o, 7, 200, 400, &lost, &j);
  expect(r >= 0.95 && lost == 0,
         "near dedup 28x4: %.1f%% of 200 pairs at mean Jaccard %.3f found (>= 95%%), %d distinct "
         "lost (0)",
         100 * r, j, lost);
}

static void test_reader_bad_input(void) {
  vklm_buf g = {0}, j = {0};
  good_doc(&g, 3);
  jsonl_line(&j, &g);
  const char *bad = "{not json}\n[1, 2, 3]\n{\"text\": 5}\n{\"body\": \"no text field\"}\n"
                    "   \n{\"text\": \"trunc\n";
  vklm_buf_append(&j, bad, strlen(bad));
  jsonl_line(&j, &g);
  write_file("bad/a.jsonl", j.p, j.n);
  write_gz("bad/b.jsonl.gz", j.p);
  const unsigned char badgz[] = {0x1f, 0x8b, 0x09, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4}; /* method 9 */
  write_file("bad/corrupt.jsonl.gz", badgz, sizeof badgz);
  write_file("bad/empty.txt", "", 0);
  char bin[4096];
  for (size_t i = 0; i < sizeof bin; i++)
    bin[i] = (char)(i % 7 ? i * 13 : 0);
  write_file("bad/binary.txt", bin, sizeof bin);
  write_file("bad/image.png", bin, sizeof bin);
  vklm_buf big = {0}; /* a 2 MB single line, over the 1 MB limit */
  for (int i = 0; i < (2 << 20) / 8; i++)
    vklm_buf_append(&big, "abcdefg ", 8);
  write_file("bad/big.txt", big.p, big.n);
  write_file("bad/big.jsonl", big.p, big.n);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/bad", tmpdir);
  const char *paths[] = {dir};
  vklm_reader *r = NULL;
  vklm_reader_create(paths, 1, "text", 1 << 20, &r);
  vklm_buf text = {0};
  int html, docs = 0, same = 1;
  while (vklm_reader_next(r, &text, &html) == 1) {
    docs++;
    same &= text.n == g.n && !memcmp(text.p, g.p, g.n);
  }
  const vklm_reader_counts *c = vklm_reader_counts_get(r);
  expect(docs == 4 && same, "reader: 4 good JSONL docs from plain and gzip files (got %d)", docs);
  expect(c->lines_malformed == 10 && c->lines_blank == 2,
         "reader: 10 malformed JSONL lines (5 per file), 2 blank (got %llu, %llu)",
         (unsigned long long)c->lines_malformed, (unsigned long long)c->lines_blank);
  expect(c->files_empty == 1 && c->files_binary == 1 && c->files_skipped == 1 &&
             c->docs_oversize == 2 && c->files_unreadable == 1,
         "reader: empty %llu, binary %llu, skipped %llu, oversize %llu, corrupt gzip %llu (want 1, "
         "1, 1, 2, 1)",
         (unsigned long long)c->files_empty, (unsigned long long)c->files_binary,
         (unsigned long long)c->files_skipped, (unsigned long long)c->docs_oversize,
         (unsigned long long)c->files_unreadable);
  vklm_reader_destroy(r);
  vklm_buf_free(&g);
  vklm_buf_free(&j);
  vklm_buf_free(&big);
  vklm_buf_free(&text);
}

static void test_shard(void) {
  char path[512], err[256] = "";
  for (int pass = 0; pass < 2; pass++) {
    uint64_t vocab = pass ? 100000 : 50257;
    snprintf(path, sizeof path, "%s/s%d.bin", tmpdir, pass);
    uint32_t t[1000], back[1000];
    for (int i = 0; i < 1000; i++)
      t[i] = (uint32_t)(rnd() % vocab);
    t[0] = (uint32_t)vocab - 1;
    vklm_shard_writer *w = NULL;
    int rc = vklm_shard_writer_create(path, vocab, 50256, &w, err, sizeof err);
    if (!rc) rc = vklm_shard_writer_append(w, t, 600) || vklm_shard_writer_append(w, t + 600, 400);
    int bad = !rc && vklm_shard_writer_append(w, (uint32_t[]){(uint32_t)vocab}, 1) == -1;
    if (!rc) {
      vklm_shard_writer_add_docs(w, 3);
      rc = vklm_shard_writer_finish(w, err, sizeof err);
    }
    vklm_shard *s = NULL;
    if (!rc) rc = vklm_shard_open(path, &s, err, sizeof err);
    int ok = !rc && vklm_shard_count(s) == 1000 && vklm_shard_width(s) == (pass ? 4u : 2u) &&
             vklm_shard_vocab_size(s) == vocab && vklm_shard_eot(s) == 50256 &&
             vklm_shard_docs(s) == 3 && !vklm_shard_read(s, 0, 1000, back) &&
             !memcmp(t, back, sizeof t) && !vklm_shard_read(s, 990, 10, back) &&
             back[0] == t[990] && vklm_shard_read(s, 995, 10, back) == -1;
    struct stat st;
    stat(path, &st);
    expect(
        ok && bad && st.st_size == 64 + 1000 * (pass ? 4 : 2),
        "shard: round trip of 1000 tokens, vocab %llu, width %u, %lld bytes; out-of-range id and "
        "range rejected %s",
        (unsigned long long)vocab, s ? vklm_shard_width(s) : 0, (long long)st.st_size, err);
    vklm_shard_close(s);
  }
  /* corrupt copies of the 2-byte shard */
  snprintf(path, sizeof path, "%s/s0.bin", tmpdir);
  FILE *f = fopen(path, "rb");
  unsigned char buf[64 + 2000 + 1] = {0}; /* one spare byte for the trailing-bytes case */
  size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f) fclose(f);
  struct {
    const char *what;
    size_t len;
    int off;
    unsigned char val;
  } cases[] = {{"truncated body", n - 1, -1, 0}, {"truncated header", 40, -1, 0},
               {"trailing bytes", n + 1, -1, 0}, {"bad magic", n, 0, 'X'},
               {"bad version", n, 8, 9},         {"bad width", n, 12, 3},
               {"count too large", n, 17, 0x7f}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    unsigned char c[sizeof buf] = {0};
    memcpy(c, buf, n);
    if (cases[i].off >= 0) c[cases[i].off] = cases[i].val;
    write_file("corrupt.bin", c, cases[i].len);
    char p2[512];
    snprintf(p2, sizeof p2, "%s/corrupt.bin", tmpdir);
    vklm_shard *s = NULL;
    err[0] = 0;
    int rc = vklm_shard_open(p2, &s, err, sizeof err);
    expect(rc == -1 && !s && err[0], "shard: %s rejected: %s", cases[i].what, err);
  }
}

/* End to end: a directory of mixed inputs through the whole pipeline. */
static void test_prepare_e2e(void) {
  vklm_buf d = {0}, j = {0}, h = {0};
  char name[600];
  good_doc(&d, 4);
  write_file("in/a.txt", d.p, d.n);
  write_file("in/sub/a_copy.md", d.p, d.n); /* exact duplicate */
  vklm_buf_clear(&h);
  const char *head = "<html><body><nav>Menu</nav><p>Salt &amp; pepper are on the table. ";
  vklm_buf_append(&h, head, strlen(head));
  good_doc(&d, 4);
  for (size_t i = 0; i < d.n; i++) {
    if (d.p[i] == '\n' && i + 1 < d.n && d.p[i + 1] == '\n') {
      vklm_buf_append(&h, "</p>\n<p>", 8);
      i++;
    } else
      vklm_buf_putc(&h, d.p[i]);
  }
  vklm_buf_append(&h, "</p><script>alert('x')</script></body></html>", 46);
  write_file("in/page.html", h.p, h.n);
  for (int i = 0; i < 30; i++) { /* 30 distinct JSONL docs, the 10th twice, the 20th near-copied */
    good_doc(&d, 4);
    jsonl_line(&j, &d);
    if (i == 10) jsonl_line(&j, &d);
    if (i == 20) {
      /* one word changed at the end: a near duplicate, not an exact one */
      memcpy(d.p + d.n - 6, "zzzzz", 5);
      jsonl_line(&j, &d);
    }
  }
  vklm_buf_append(&j, "{broken\n", 8);
  vklm_buf_append(&j, "{\"text\": \"Too short to pass.\"}\n", 31);
  write_gz("in/docs.jsonl.gz", j.p);
  write_file("in/empty.md", "", 0);
  write_file("in/notes.bin", "xx", 2);
  char in[512], out[512], stats[512], loop[600];
  snprintf(in, sizeof in, "%s/in", tmpdir);
  snprintf(loop, sizeof loop, "%s/sub/loop", in);
  int linked = symlink(in, loop) == 0; /* a directory loop: walked once, then skipped */
  snprintf(out, sizeof out, "%s/out.jsonl", tmpdir);
  snprintf(stats, sizeof stats, "%s/out.jsonl.stats.json", tmpdir);
  vklm_prepare_opts o;
  vklm_prepare_default(&o);
  const char *inputs[] = {in};
  o.inputs = inputs;
  o.ninputs = 1;
  o.output = out;
  o.threads = 2;
  vklm_prepare_stats st;
  char err[256] = "";
  int rc = vklm_prepare_run(&o, &st, err, sizeof err);
  vklm_prepare_stats_print(&st, stdout);
  long lines = count_lines(out);
  /* 1 txt + 1 md copy + 1 html + 33 jsonl docs read; kept: txt, html, 30 distinct jsonl */
  expect(rc == 0 && st.docs_read == 36 && lines == 32 && st.docs_out == 32,
         "prepare e2e: rc %d (%s), %llu docs read (36), %ld lines written (32)", rc, err,
         (unsigned long long)st.docs_read, lines);
  expect(st.drops[VKLM_DROP_EXACT_DUP] == 2 && st.drops[VKLM_DROP_NEAR_DUP] == 1 &&
             st.input.lines_malformed == 1 && st.input.files_empty == 1 &&
             st.input.files_skipped == 1u + linked && st.drops[VKLM_DROP_GOPHER_SHORT] == 1,
         "prepare e2e: 2 exact dups, 1 near dup, 1 malformed line, 1 empty file, 1 skipped file + "
         "1 symlink loop, 1 short "
         "(got %llu %llu %llu %llu %llu %llu)",
         (unsigned long long)st.drops[VKLM_DROP_EXACT_DUP],
         (unsigned long long)st.drops[VKLM_DROP_NEAR_DUP],
         (unsigned long long)st.input.lines_malformed, (unsigned long long)st.input.files_empty,
         (unsigned long long)st.input.files_skipped,
         (unsigned long long)st.drops[VKLM_DROP_GOPHER_SHORT]);
  FILE *f = fopen(out, "rb");
  char line[1 << 14];
  int html_ok = 0, no_nav = 1;
  while (f && fgets(line, sizeof line, f)) {
    html_ok |= strstr(line, "Salt & pepper") != NULL;
    no_nav &= !strstr(line, "Menu") && !strstr(line, "alert");
  }
  if (f) fclose(f);
  struct stat sb = {0};
  int have_stats = !stat(stats, &sb);
  expect(html_ok && no_nav && have_stats && sb.st_size > 100,
         "prepare e2e: HTML entity decoded, nav/script gone, stats JSON written (%lld bytes)",
         (long long)sb.st_size);
  snprintf(name, sizeof name, "%s.tmp", out);
  expect(access(name, F_OK) != 0, "prepare e2e: no temp file left behind");
  vklm_buf_free(&d);
  vklm_buf_free(&j);
  vklm_buf_free(&h);
}

static void test_tokenize_e2e(void) {
  char out[512], tok[512], dir[512], err[256] = "";
  snprintf(out, sizeof out, "%s/out.jsonl", tmpdir);
  snprintf(tok, sizeof tok, "%s/tok.json", tmpdir);
  snprintf(dir, sizeof dir, "%s/shards", tmpdir);
  const char *specials[] = {"<|endoftext|>"};
  vklm_bpe_train_config cfg = {.vocab_size = 400, .specials = specials, .n_specials = 1};
  vklm_bpe_trainer *tr = NULL;
  vklm_tokenizer *tk = NULL;
  int rc = vklm_bpe_trainer_create(&cfg, &tr, err, sizeof err);
  if (!rc) rc = vklm_bpe_trainer_feed_file(tr, out, err, sizeof err);
  if (!rc) rc = vklm_bpe_trainer_finish(tr, &tk, err, sizeof err);
  vklm_bpe_trainer_destroy(tr);
  if (!rc) rc = vklm_tokenizer_save_json(tk, tok, err, sizeof err);
  expect(rc == 0, "tokenize: trained a 400-token BPE on the prepared output %s", err);
  if (rc) {
    vklm_tokenizer_destroy(tk);
    return;
  }
  vklm_tokenize_opts o;
  vklm_tokenize_default(&o);
  const char *inputs[] = {out};
  o.tokenizer = tok;
  o.inputs = inputs;
  o.ninputs = 1;
  o.outdir = dir;
  o.shard_tokens = 4000;
  o.val_fraction = 0.2;
  o.threads = 2;
  vklm_tokenize_stats st;
  rc = vklm_tokenize_run(&o, &st, err, sizeof err);
  uint64_t total = 0, eots = 0, docs = 0, shards = 0, short_shards = 0;
  int ok = rc == 0, decoded = 0;
  vklm_bytes first = {0};
  for (int s = 0; s < 2 && ok; s++)
    for (int i = 0;; i++) {
      char p[600];
      snprintf(p, sizeof p, "%s/%s_%06d.bin", dir, s ? "val" : "train", i);
      vklm_shard *sh = NULL;
      if (vklm_shard_open(p, &sh, err, sizeof err)) break;
      uint64_t n = vklm_shard_count(sh);
      uint32_t *t = malloc(n * sizeof *t);
      ok &= !vklm_shard_read(sh, 0, n, t) && vklm_shard_width(sh) == 2;
      short_shards += n < o.shard_tokens;
      for (uint64_t k = 0; k < n; k++)
        eots += t[k] == (uint32_t)vklm_shard_eot(sh);
      if (!s && !i) { /* the first document of the first train shard, decoded */
        uint64_t e = 1;
        while (e < n && t[e] != (uint32_t)vklm_shard_eot(sh))
          e++;
        int32_t *ids = malloc(e * sizeof *ids);
        for (uint64_t k = 1; k < e; k++)
          ids[k - 1] = (int32_t)t[k];
        ok &= t[0] == (uint32_t)vklm_shard_eot(sh) && e < n &&
              vklm_tokenizer_decode(tk, ids, e - 1, 0, &first) == 0;
        free(ids);
      }
      total += n;
      docs += vklm_shard_docs(sh);
      shards++;
      free(t);
      vklm_shard_close(sh);
    }
  /* the decoded document is one of the prepared documents */
  const char *paths[] = {out};
  vklm_reader *r = NULL;
  vklm_buf text = {0};
  int html;
  vklm_reader_create(paths, 1, "text", 1 << 20, &r);
  while (r && vklm_reader_next(r, &text, &html) == 1)
    decoded |= text.n == first.n && !memcmp(text.p, first.data, first.n);
  vklm_reader_destroy(r);
  vklm_buf_free(&text);
  vklm_bytes_free(&first);
  expect(
      ok && total == st.tokens_train + st.tokens_val && eots == st.docs && docs == st.docs &&
          shards == st.shards_train + st.shards_val && st.docs == 32 && st.docs_val > 0 &&
          st.docs_train > st.docs_val && short_shards <= 2 && decoded,
      "tokenize: %llu docs (%llu train, %llu val) -> %llu tokens in %llu shards (%llu not full), "
      "%llu EOT tokens, first train doc decodes to a prepared doc: %d %s",
      (unsigned long long)st.docs, (unsigned long long)st.docs_train,
      (unsigned long long)st.docs_val, (unsigned long long)total, (unsigned long long)shards,
      (unsigned long long)short_shards, (unsigned long long)eots, decoded, rc ? err : "");
  vklm_tokenizer_destroy(tk);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vklm_test_data.XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  char sub[600];
  const char *dirs[] = {"bad", "in", "in/sub"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    snprintf(sub, sizeof sub, "%s/%s", tmpdir, dirs[i]);
    mkdir(sub, 0777);
  }
  test_html();
  test_clean();
  test_gopher_quality();
  test_gopher_repetition();
  test_c4();
  test_fineweb();
  test_scrub();
  test_exact();
  test_near();
  test_reader_bad_input();
  test_shard();
  test_prepare_e2e();
  test_tokenize_e2e();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (!failures && system(cmd)) printf("note: could not remove %s\n", tmpdir);
  printf("test_data: %d of %d checks passed\n", checks - failures, checks);
  return failures ? 1 : 0;
}

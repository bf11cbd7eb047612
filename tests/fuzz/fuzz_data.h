/* fuzz_data: what the data-pipeline harnesses do with a document: the cleaning steps, the
 * quality filters and the scrubber of `vklm data prepare`, in pipeline order. */
#ifndef VKLM_FUZZ_DATA_H
#define VKLM_FUZZ_DATA_H

#include "data/steps.h"
#include "fuzz_util.h"

static inline void fuzz_data_steps(const char *s, size_t n) {
  static vklm_scrubber *sc;
  if (!sc && vklm_scrub_create(1, 1, &sc) != 0) abort();
  vklm_buf a = {0}, b = {0}, c = {0}, d = {0};
  vklm_clean_counts cc = {0};
  if (vklm_clean_utf8(s, n, &a, &cc) == 0 && vklm_clean_nfc(a.p ? a.p : "", a.n, &b) == 0 &&
      vklm_clean_whitespace(b.p ? b.p : "", b.n, &c) == 0) {
    const char *t = c.p ? c.p : "";
    vklm_gopher_quality_opts gq;
    vklm_gopher_rep_opts gr;
    vklm_c4_opts c4;
    vklm_fineweb_opts fw;
    vklm_gopher_quality_default(&gq);
    vklm_gopher_rep_default(&gr);
    vklm_c4_default(&c4);
    vklm_fineweb_default(&fw);
    (void)vklm_gopher_quality(&gq, t, c.n);
    (void)vklm_gopher_repetition(&gr, t, c.n);
    (void)vklm_fineweb_filter(&fw, t, c.n);
    (void)vklm_c4_filter(&c4, t, c.n, &d, NULL);
    uint64_t em = 0, ip = 0;
    d.n = 0;
    (void)vklm_scrub_apply(sc, t, c.n, &d, &em, &ip);
  }
  free(a.p);
  free(b.p);
  free(c.p);
  free(d.p);
}

#endif

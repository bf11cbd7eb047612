/* K responses per prompt, sampled with batched generation (continuous batching over a session
 * that borrows the model's weights on the device; tokens chosen on the GPU). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "align/align.h"
#include "infer/infer.h"
#include "infer/sample.h"

typedef struct job {
  uint64_t item;
  uint32_t j;       /* response index */
  int slot;         /* -1: waiting or done */
  int32_t *out;     /* generated tokens */
  uint32_t n, done;
  int32_t next;
  vklm_sampler *smp;
} job;

/* A copy of b[0..n) as valid UTF-8: a byte sequence that is not (a token cut a character, or
 * the model wrote bytes that form none) becomes U+FFFD. */
static char *valid_utf8(const char *b, size_t n) {
  char *out = malloc(3 * n + 1), *w = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n;) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)b + i, (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0 || cp == 0) {
      if (cp != 0 || k <= 0) memcpy(w, "\xEF\xBF\xBD", 3), w += 3;
      i += k > 0 ? (size_t)k : 1;
    } else {
      memcpy(w, b + i, (size_t)k);
      w += k;
      i += (size_t)k;
    }
  }
  *w = 0;
  return out;
}

static void set_response(vklm_pref_item *it, uint32_t j, const vklm_tokenizer *tk, job *jb) {
  vklm_bytes b = {0};
  if (vklm_tokenizer_decode(tk, jb->out, jb->n, VKLM_DECODE_SKIP_SPECIALS, &b) != VKLM_TOK_OK)
    b.data = NULL;
  it->response[j] = b.data ? valid_utf8(b.data, b.n) : NULL;
  if (!it->response[j]) it->response[j] = strdup("");
  free(b.data);
  it->resp_ids[j] = jb->out;
  it->nr[j] = jb->n;
  jb->out = NULL;
}

vklm_status vklm_rollout(vklm_model *m, vklm_tokenizer *tk, vklm_pref_set *data,
                         const vklm_rollout_options *o, char *err, size_t errlen) {
  const vklm_model_config *cfg = vklm_model_get_config(m);
  uint32_t k = o->k ? o->k : 1, slots = o->slots ? o->slots : k;
  uint64_t njobs = data->n * k;
  uint32_t longest = 0;
  for (uint64_t i = 0; i < data->n; i++)
    if (data->items[i].np > longest) longest = data->items[i].np;
  if (longest == 0) {
    snprintf(err, errlen, "an empty prompt: nothing to condition a response on");
    return VKLM_ERROR_INVALID;
  }
  uint32_t n_ctx = longest + o->max_tokens;
  if (n_ctx > cfg->max_seq) {
    snprintf(err, errlen, "a prompt of %u tokens and %u new ones pass the model's context (%u)",
             longest, o->max_tokens, cfg->max_seq);
    return VKLM_ERROR_INVALID;
  }
  if (slots > njobs) slots = (uint32_t)njobs;
  vklm_infer_options io = {.n_seq = slots};
  vklm_infer *s = NULL;
  char e2[1024];
  vklm_status st = vklm_infer_create_for(m, n_ctx, &io, &s, e2, sizeof e2);
  if (st != VKLM_OK) {
    snprintf(err, errlen, "generation session: %s", e2);
    return st;
  }
  job *jobs = calloc(njobs, sizeof *jobs);
  vklm_infer_req *reqs = calloc(slots, sizeof *reqs);
  uint64_t *active = calloc(slots, sizeof *active);
  int32_t *next = calloc(slots, sizeof *next);
  if (!jobs || !reqs || !active || !next) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  /* the items' old responses go; k new ones each */
  for (uint64_t i = 0; i < data->n && st == VKLM_OK; i++) {
    vklm_pref_item *it = &data->items[i];
    for (uint32_t j = 0; j < it->k; j++) {
      free(it->response[j]);
      free(it->resp_ids[j]);
    }
    free(it->response), free(it->resp_ids), free(it->nr), free(it->group);
    it->k = k;
    it->response = calloc(k, sizeof *it->response);
    it->resp_ids = calloc(k, sizeof *it->resp_ids);
    it->nr = calloc(k, sizeof *it->nr);
    it->group = malloc(k * sizeof *it->group);
    if (!it->response || !it->resp_ids || !it->nr || !it->group) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    else
      for (uint32_t j = 0; j < k; j++) it->group[j] = -1;
  }
  for (uint64_t q = 0; q < njobs && st == VKLM_OK; q++) {
    jobs[q].item = q / k, jobs[q].j = (uint32_t)(q % k), jobs[q].slot = -1;
    jobs[q].out = malloc((o->max_tokens + 1) * sizeof(int32_t));
    vklm_sampler_params sp;
    vklm_sampler_params_default(&sp);
    sp.temp = o->temp, sp.top_k = o->top_k, sp.top_p = o->top_p, sp.min_p = 0;
    sp.seed = o->seed * 0x9E3779B97F4A7C15ull + q + 1;
    jobs[q].smp = vklm_sampler_create(&sp, cfg->vocab_size);
    if (!jobs[q].out || !jobs[q].smp) st = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  if (st != VKLM_OK) snprintf(err, errlen, "out of host memory");
  if (st == VKLM_OK && o->max_tokens == 0) {
    snprintf(err, errlen, "no room for a response (max_tokens 0)");
    st = VKLM_ERROR_INVALID;
  }
  uint64_t started = 0, finished = 0;
  uint32_t nactive = 0;
  while (st == VKLM_OK && finished < njobs) {
    /* sequences join while slots are free */
    uint32_t nr = 0;
    while (started < njobs && nactive < slots) {
      int slot = vklm_infer_seq_open(s);
      if (slot < 0) break;
      job *jb = &jobs[started];
      jb->slot = slot;
      const vklm_pref_item *it = &data->items[jb->item];
      for (uint32_t t = 0; t < it->np; t++) vklm_sampler_accept(jb->smp, it->prompt_ids[t]);
      reqs[nr] = (vklm_infer_req){.slot = (uint32_t)slot, .tokens = it->prompt_ids, .n = it->np,
                                  .want = 1, .sampler = jb->smp};
      active[nr++] = started++;
      nactive++;
    }
    for (uint64_t q = 0; q < started; q++) { /* the others decode their last token */
      job *jb = &jobs[q];
      if (jb->slot < 0 || jb->done || jb->n == 0) continue;
      reqs[nr] = (vklm_infer_req){.slot = (uint32_t)jb->slot, .tokens = &jb->out[jb->n - 1],
                                  .n = 1, .want = 1, .sampler = jb->smp};
      active[nr++] = q;
    }
    if ((st = vklm_infer_step(s, reqs, nr, next, NULL)) != VKLM_OK) {
      snprintf(err, errlen, "generation: %s", vklm_infer_error(s));
      break;
    }
    for (uint32_t i = 0; i < nr; i++) {
      job *jb = &jobs[active[i]];
      int32_t t = next[i];
      jb->out[jb->n++] = t;
      vklm_sampler_accept(jb->smp, t);
      if ((o->eos >= 0 && t == o->eos) || jb->n >= o->max_tokens) {
        jb->done = 1;
        vklm_infer_seq_close(s, (uint32_t)jb->slot);
        jb->slot = -1;
        nactive--;
        finished++;
        set_response(&data->items[jb->item], jb->j, tk, jb);
      }
    }
  }
  for (uint64_t q = 0; jobs && q < njobs; q++) {
    free(jobs[q].out);
    vklm_sampler_destroy(jobs[q].smp);
  }
  free(jobs), free(reqs), free(active), free(next);
  vklm_infer_destroy(s);
  return st;
}

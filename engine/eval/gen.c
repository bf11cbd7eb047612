/* eval generation: answers to many prompts at once through one inference session
 * (engine/infer: vklm_infer_create with n_seq slots, vklm_infer_step running every live
 * sequence together; a finished sequence's slot takes the next prompt), greedy on the GPU or
 * sampled with a per-prompt seed; an answer ends at the task's stop string, the end-of-sequence
 * token or max_new tokens. Generation tasks are scored by exact match after normalisation
 * (metrics.c), of the regex's capture when the task has one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "eval/eval.h"
#include "eval/eval_internal.h"
#include "infer/infer.h"

typedef struct slot {
  int item;        /* -1: free */
  int32_t *gen;    /* generated ids */
  uint32_t ngen;
  int32_t last;
  int fresh;       /* the prompt is still to be fed */
  vklm_sampler *smp;
} slot;

/* the length of the valid UTF-8 sequence at p (0: invalid) */
static size_t utf8_seq(const unsigned char *p, size_t left) {
  size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 && p[0] >= 0xC2 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3
           : (p[0] & 0xF8) == 0xF0 && p[0] <= 0xF4 ? 4 : 0;
  if (!n || n > left) return 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return n;
}

/* the text of ids (special tokens left out), invalid UTF-8 (a character cut by max_new)
 * replaced by U+FFFD so that answers are valid JSON strings */
static char *decode(const vklm_eval_model *em, const int32_t *ids, uint32_t n) {
  vklm_bytes b = {0};
  if (n && vklm_tokenizer_decode(em->tk, ids, n, VKLM_DECODE_SKIP_SPECIALS, &b)) return NULL;
  char *o = malloc(3 * b.n + 1);
  size_t k = 0;
  for (size_t i = 0; o && i < b.n;) {
    size_t q = utf8_seq((const unsigned char *)b.data + i, b.n - i);
    if (q) memcpy(o + k, b.data + i, q), k += q, i += q;
    else memcpy(o + k, "\xEF\xBF\xBD", 3), k += 3, i++;
  }
  if (o) o[k] = 0;
  vklm_bytes_free(&b);
  return o;
}

int vklm_eval_generate(const vklm_eval_model *em, const char *const *prompts, uint32_t n,
                       const char *stop, uint32_t max_new, const vklm_eval_options *o,
                       char **answers, char *err, size_t errlen) {
  uint32_t nseq = o->gen_seqs ? o->gen_seqs : 8, n_ctx = em->cfg->max_seq, V = em->cfg->vocab_size;
  if (nseq > n) nseq = n ? n : 1;
  if (max_new == 0) max_new = 32;
  if (max_new >= n_ctx) max_new = n_ctx / 2;
  vklm_infer_options io = {.n_seq = nseq};
  vklm_infer *s = NULL;
  vklm_token_ids *ps = calloc(n + 1, sizeof *ps);
  slot *sl = calloc(nseq, sizeof *sl);
  vklm_infer_req *rq = calloc(nseq, sizeof *rq);
  int32_t *next = calloc(nseq, sizeof(int32_t));
  uint32_t *ri = calloc(nseq, sizeof(uint32_t));
  int rc = -1;
  if (!ps || !sl || !rq || !next || !ri) { snprintf(err, errlen, "out of memory"); goto done; }
  for (uint32_t i = 0; i < n; i++) {
    answers[i] = NULL;
    if (vklm_tokenizer_encode(em->tk, prompts[i], strlen(prompts[i]), 0, &ps[i])) {
      snprintf(err, errlen, "prompt %u: the tokenizer cannot encode it", i);
      goto done;
    }
    if (ps[i].n == 0) {
      if (em->eos < 0) { snprintf(err, errlen, "prompt %u is empty (and there is no end-of-sequence token to start from)", i); goto done; }
      ps[i].ids = malloc(sizeof(int32_t)), ps[i].cap = 1;
      if (!ps[i].ids) { snprintf(err, errlen, "out of memory"); goto done; }
      ps[i].ids[ps[i].n++] = em->eos;
    }
  }
  if (vklm_infer_create(em->ctx, em->cfg, n_ctx, &io, em->get, em->user, &s, err, errlen)) goto done;
  for (uint32_t k = 0; k < nseq; k++) {
    sl[k].item = -1;
    (void)vklm_infer_seq_open(s); /* slot 0 is open from the start; the others open here */
    if (!(sl[k].gen = malloc(sizeof(int32_t) * (max_new + 1)))) { snprintf(err, errlen, "out of memory"); goto done; }
  }
  vklm_eval_progress pr;
  vklm_eval_progress_start(&pr, o->progress ? "vklm eval: generating" : NULL, n);
  uint32_t taken = 0, finished = 0;
  while (finished < n) {
    uint32_t nr = 0;
    for (uint32_t k = 0; k < nseq; k++) {
      if (sl[k].item < 0 && taken < n) { /* a free slot takes the next prompt */
        vklm_infer_seq_rewind(s, k, 0);
        sl[k].item = (int)taken++, sl[k].ngen = 0, sl[k].fresh = 1;
        vklm_sampler_destroy(sl[k].smp);
        sl[k].smp = NULL;
        if (o->temp > 0) {
          vklm_sampler_params sp;
          vklm_sampler_params_default(&sp);
          sp.temp = o->temp, sp.top_k = o->top_k, sp.top_p = o->top_p, sp.min_p = 0;
          sp.seed = o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)sl[k].item + 1;
          if (!(sl[k].smp = vklm_sampler_create(&sp, V))) { snprintf(err, errlen, "out of memory"); goto done; }
        }
      }
      if (sl[k].item < 0) continue;
      vklm_token_ids *p = &ps[sl[k].item];
      uint32_t keep = n_ctx - max_new; /* the prompt's last tokens that leave room to answer */
      const int32_t *tok = sl[k].fresh ? p->ids + (p->n > keep ? p->n - keep : 0) : &sl[k].last;
      uint32_t nt = sl[k].fresh ? (uint32_t)(p->n > keep ? keep : p->n) : 1;
      if (sl[k].fresh && sl[k].smp)
        for (uint32_t j = 0; j < nt; j++) vklm_sampler_accept(sl[k].smp, tok[j]);
      rq[nr] = (vklm_infer_req){.slot = k, .tokens = tok, .n = nt, .want = 1, .sampler = sl[k].smp};
      ri[nr++] = k;
    }
    if (vklm_infer_step(s, rq, nr, next, NULL) != VKLM_OK) {
      snprintf(err, errlen, "%s", vklm_infer_error(s));
      goto done;
    }
    for (uint32_t q = 0; q < nr; q++) {
      slot *z = &sl[ri[q]];
      z->fresh = 0;
      int32_t t = next[q];
      int end = t == em->eos;
      if (!end) {
        z->gen[z->ngen++] = t, z->last = t;
        if (z->smp) vklm_sampler_accept(z->smp, t);
      }
      char *txt = NULL;
      if (!end && stop && *stop) {
        if (!(txt = decode(em, z->gen, z->ngen))) { snprintf(err, errlen, "a generated token cannot be decoded"); goto done; }
        end = strstr(txt, stop) != NULL;
      }
      end |= z->ngen >= max_new || vklm_infer_seq_pos(s, ri[q]) + 1 >= n_ctx;
      if (end) {
        if (!txt && !(txt = decode(em, z->gen, z->ngen))) { snprintf(err, errlen, "a generated token cannot be decoded"); goto done; }
        answers[z->item] = txt, txt = NULL;
        z->item = -1;
        finished++;
        vklm_eval_progress_update(&pr, finished);
      }
      free(txt);
    }
  }
  rc = 0;
done:
  if (rc) for (uint32_t i = 0; i < n; i++) free(answers[i]), answers[i] = NULL;
  for (uint32_t i = 0; ps && i < n; i++) vklm_token_ids_free(&ps[i]);
  for (uint32_t k = 0; sl && k < nseq; k++) free(sl[k].gen), vklm_sampler_destroy(sl[k].smp);
  free(ps), free(sl), free(rq), free(next), free(ri);
  vklm_infer_destroy(s);
  return rc;
}

int vklm_eval_run_gen(const vklm_eval_model *em, const vklm_eval_task *t,
                      const vklm_eval_options *o, const char *variant, vklm_eval_result *out,
                      char *err, size_t errlen);
int vklm_eval_run_gen(const vklm_eval_model *em, const vklm_eval_task *t,
                      const vklm_eval_options *o, const char *variant, vklm_eval_result *out,
                      char *err, size_t errlen) {
  uint32_t ni = o->limit && o->limit < t->n ? o->limit : t->n;
  const char **prompts = calloc(ni + 1, sizeof(char *));
  char **ans = calloc(ni + 1, sizeof(char *));
  double *em_ = calloc(ni + 1, sizeof(double));
  int rc = -1;
  if (!prompts || !ans || !em_) { snprintf(err, errlen, "out of memory"); goto done; }
  for (uint32_t i = 0; i < ni; i++) prompts[i] = t->items[i].context;
  if (vklm_eval_generate(em, prompts, ni, t->stop, t->max_new, o, ans, err, errlen)) goto done;
  for (uint32_t i = 0; i < ni; i++) {
    const vklm_eval_item *it = &t->items[i];
    char *got = NULL, *ng = NULL;
    if (vklm_eval_extract(ans[i], t->stop, t->regex, &got, err, errlen)) goto done;
    ng = got ? vklm_eval_normalize(got) : NULL;
    for (uint32_t j = 0; ng && j < it->nanswers && !em_[i]; j++) {
      char *na = vklm_eval_normalize(it->answers[j]);
      em_[i] = na && !strcmp(na, ng);
      free(na);
    }
    if (o->samples) {
      cJSON *js = cJSON_CreateObject();
      cJSON_AddStringToObject(js, "task", t->name);
      cJSON_AddStringToObject(js, "variant", variant);
      cJSON_AddNumberToObject(js, "line", it->line);
      cJSON_AddStringToObject(js, "prompt", it->context);
      cJSON_AddStringToObject(js, "generation", ans[i]);
      if (got) cJSON_AddStringToObject(js, "answer", got);
      cJSON_AddStringToObject(js, "gold", it->answers[0]);
      cJSON_AddBoolToObject(js, "exact_match", em_[i] != 0);
      char *s = cJSON_PrintUnformatted(js);
      if (s) fprintf(o->samples, "%s\n", s);
      free(s);
      cJSON_Delete(js);
    }
    free(got), free(ng);
  }
  double m, se;
  vklm_eval_mean_stderr(em_, ni, &m, &se);
  vklm_eval_metric *mt = &out->m[out->nm++];
  snprintf(mt->name, sizeof mt->name, "exact_match");
  mt->value = m, mt->se = se, mt->n = ni;
  rc = 0;
done:
  for (uint32_t i = 0; ans && i < ni; i++) free(ans[i]);
  free(prompts), free(ans), free(em_);
  return rc;
}

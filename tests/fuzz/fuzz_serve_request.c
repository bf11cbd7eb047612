/* fuzz_serve_request: the bodies of `vklm serve`'s OpenAI requests (srv_parse in
 * engine/serve/oai.c), which come from the network. The first byte picks the endpoint (even:
 * /v1/chat/completions, odd: /v1/completions); the rest is the body. The server's side is what
 * vklm_serve_ready sets up, without a device: a byte-level BPE trained here once (with ChatML's
 * special tokens), the ChatML template and its stop strings, a context of 256 tokens. A request
 * is accepted with a job whose every choice has its sampler and stream, or refused with an
 * HTTP status and an OpenAI error object; nothing else. */
#include <pthread.h>
#include <string.h>

#include "chat/chat.h"
#include "fuzz_util.h"
#include "serve/serve_internal.h"
#include "text/tokenizer.h"

static vklm_serve sv;

static void setup(void) {
  static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  vklm_bpe_train_config cfg = {.vocab_size = 400, .specials = specials, .n_specials = 3};
  vklm_bpe_trainer *tr = NULL;
  char err[256];
  if (vklm_bpe_trainer_create(&cfg, &tr, err, sizeof err)) abort();
  for (int i = 0; i < 20; i++)
    vklm_bpe_trainer_feed(tr, fuzz_sample_text, FUZZ_SAMPLE_LEN);
  if (vklm_bpe_trainer_finish(tr, &sv.m.tk, err, sizeof err)) abort();
  vklm_bpe_trainer_destroy(tr);
  vklm_chat_template *tpl = NULL;
  if (vklm_chat_template_builtin("chatml", NULL, "<|endoftext|>", &tpl, err, sizeof err)) abort();
  sv.m.tpl = tpl;
  sv.m.eos = vklm_tokenizer_special_id(sv.m.tk, "<|endoftext|>");
  const char *marks[SRV_MAX_ENDS];
  size_t nm = vklm_chat_template_stops(sv.m.tpl, marks, SRV_MAX_ENDS);
  for (size_t k = 0; k < nm && k < SRV_MAX_ENDS; k++)
    if (*marks[k]) sv.tpl_stops[sv.ntpl_stops++] = marks[k];
  sv.n_ctx = 256;
  sv.vocab = (uint32_t)vklm_tokenizer_vocab_size(sv.m.tk);
  pthread_mutex_init(&sv.tk_mu, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) setup(), ready = 1;
  if (size < 1) return 0;
  int kind = data[0] & 1 ? SRV_COMPLETION : SRV_CHAT;
  srv_job *job = NULL;
  char err[1024] = "", param[128] = "";
  int st = srv_parse(&sv, kind, (const char *)data + 1, size - 1, &job, err, sizeof err, param,
                     sizeof param);
  if (st == 0) {
    if (!job || !job->nch) abort();
    for (uint32_t i = 0; i < job->nch; i++)
      if (!job->ch[i].smp || !job->ch[i].stream || job->ch[i].np == 0 ||
          job->ch[i].np >= sv.n_ctx)
        abort(); /* an accepted choice has its sampler, its stream and a prompt that fits */
  } else if (job || st < 400 || st > 599 || !err[0]) {
    abort(); /* a refusal is an HTTP error status with a message, and no job */
  }
  srv_job_free(job);
  return 0;
}

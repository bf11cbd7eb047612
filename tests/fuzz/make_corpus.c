/* make_corpus: writes the binary seeds of tests/fuzz/corpus (small valid files of each format,
 * made by vklm's own writers) so the fuzzers start behind the magic numbers, CRCs and table
 * checks. The text seeds (JSONL, HTML, templates, GPT-2, tiktoken) are written by hand.
 * Usage: make_corpus <corpus dir>   (scripts/fuzz.sh --seeds runs it) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/shard.h"
#include "formats/model_load.h"
#include "formats/quant.h"
#include "model/model_params.h"
#include "text/tokenizer.h"
#include "train/train.h"

static const char *root;

static void die(const char *what, const char *err) {
  fprintf(stderr, "make_corpus: %s: %s\n", what, err);
  exit(1);
}

static const char *out(const char *dir, const char *name) {
  static char p[1024];
  snprintf(p, sizeof p, "%s/%s", root, dir);
  if (mkdir(p, 0755) != 0 && errno != EEXIST) die(p, strerror(errno));
  snprintf(p, sizeof p, "%s/%s/%s", root, dir, name);
  return p;
}

static void copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  if (!a || !b) die(from, "cannot copy");
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  fclose(a);
  if (fclose(b) != 0) die(to, "cannot write");
}

typedef struct model {
  vklm_model_config cfg;
  vklm_param_info *tab;
  uint32_t nt;
  uint64_t np;
  float *p;
} model;

static void model_make(model *m, vklm_arch arch, uint32_t V, uint32_t C, uint32_t NH, uint32_t NKV,
                       uint32_t F) {
  memset(m, 0, sizeof *m);
  m->cfg = (vklm_model_config){arch, V, 8, 1, NH, NKV, C, F, 1e-5f, 10000.0f,
                               arch == VKLM_ARCH_GPT2};
  char err[512];
  if (vklm_model_config_check(&m->cfg, err, sizeof err) != VKLM_OK) die("config", err);
  m->tab = calloc(vklm_model_table_max(&m->cfg), sizeof *m->tab);
  m->np = vklm_model_table(&m->cfg, m->tab, NULL, NULL, &m->nt);
  m->p = calloc(m->np, sizeof *m->p);
  for (uint64_t i = 0; i < m->np; i++) m->p[i] = (float)((int)(i * 7919 % 23) - 11) * 0.01f;
}

static void model_free(model *m) {
  free(m->tab);
  free(m->p);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_corpus <corpus dir>\n");
    return 2;
  }
  root = argv[1];
  char err[1024], tmp[1024];

  /* a byte-level BPE of 280 ids trained on a few sentences */
  static const char *const specials[] = {"<|endoftext|>"};
  vklm_bpe_train_config tc = {.vocab_size = 281, .specials = specials, .n_specials = 1};
  vklm_bpe_trainer *tr = NULL;
  vklm_tokenizer *tk = NULL;
  if (vklm_bpe_trainer_create(&tc, &tr, err, sizeof err)) die("trainer", err);
  static const char text[] =
      "The quick brown fox jumps over the lazy dog. the theme of the thesis: then there.\n"
      "Caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac 12345 don't we'll it's   \t\n";
  for (int i = 0; i < 4; i++) vklm_bpe_trainer_feed(tr, text, sizeof text - 1);
  if (vklm_bpe_trainer_finish(tr, &tk, err, sizeof err)) die("train", err);
  vklm_bpe_trainer_destroy(tr);
  snprintf(tmp, sizeof tmp, "%s", out("tokenizer_json", "trained.json"));
  if (vklm_tokenizer_save_json(tk, tmp, err, sizeof err)) die("save tokenizer", err);
  uint32_t V = (uint32_t)vklm_tokenizer_vocab_size(tk);
  vklm_tokenizer_destroy(tk);
  char tokjson[1024];
  snprintf(tokjson, sizeof tokjson, "%s", tmp);

  /* GGUF models: GPT-2 with the tokenizer (F32), Llama in Q4_0, GPT-2 in Q8_0 */
  struct {
    const char *name;
    vklm_arch arch;
    uint32_t V, C, NH, NKV, F, type;
    int tok;
  } gg[] = {{"gpt2_tok_f32.gguf", VKLM_ARCH_GPT2, 0, 8, 2, 2, 32, VKLM_GGML_TYPE_F32, 1},
            {"llama_q4_0.gguf", VKLM_ARCH_LLAMA, 16, 32, 2, 1, 64, VKLM_GGML_TYPE_Q4_0, 0},
            {"gpt2_q8_0.gguf", VKLM_ARCH_GPT2, 16, 32, 2, 2, 64, VKLM_GGML_TYPE_Q8_0, 0}};
  for (size_t i = 0; i < sizeof gg / sizeof gg[0]; i++) {
    model m;
    model_make(&m, gg[i].arch, gg[i].V ? gg[i].V : V, gg[i].C, gg[i].NH, gg[i].NKV, gg[i].F);
    snprintf(tmp, sizeof tmp, "%s", out("gguf", gg[i].name));
    if (vklm_export_gguf(tmp, &m.cfg, m.tab, m.nt, m.p, gg[i].type, gg[i].tok ? tokjson : NULL,
                         err, sizeof err))
      die("export gguf", err);
    copy_file(tmp, out("model_import", gg[i].name));
    if (gg[i].tok) copy_file(tmp, out("gguf_tokenizer", gg[i].name));
    model_free(&m);
  }

  /* checkpoints (GPT-2 and Llama, moments included) and their safetensors exports */
  for (int arch = 0; arch <= 1; arch++) {
    model m;
    model_make(&m, arch, 16, 8, 2, arch ? 1 : 2, 16);
    vklm_ckpt_state st = {0};
    st.model = m.cfg;
    st.B = 2, st.T = 8, st.grad_accum = 1, st.step = 3, st.total_steps = 10, st.warmup = 2;
    st.lr = 1e-3f, st.min_lr = 1e-4f, st.seed = 1, st.rng = 12345;
    st.opt.beta1 = 0.9f, st.opt.beta2 = 0.95f, st.opt.eps = 1e-8f, st.opt.weight_decay = 0.1f;
    st.mask_id = -1;
    snprintf(tmp, sizeof tmp, "%s", out("checkpoint", arch ? "llama.ckpt" : "gpt2.ckpt"));
    if (vklm_ckpt_write(tmp, &st, m.tab, m.nt, m.p, m.p, m.p, m.np, err, sizeof err))
      die("checkpoint", err);
    vklm_ckpt *c = NULL;
    if (vklm_ckpt_read(tmp, 0, &c, err, sizeof err)) die("checkpoint read back", err);
    snprintf(tmp, sizeof tmp, "%s",
             out("safetensors", arch ? "llama.safetensors" : "gpt2.safetensors"));
    if (vklm_export_safetensors(c, tmp, NULL, err, sizeof err)) die("safetensors", err);
    vklm_ckpt_free(c);
    model_free(&m);
  }

  /* token shards: 16-bit and 32-bit tokens */
  for (int w = 0; w < 2; w++) {
    vklm_shard_writer *sw = NULL;
    uint64_t vocab = w ? 70000 : 300;
    snprintf(tmp, sizeof tmp, "%s", out("shard", w ? "u32.bin" : "u16.bin"));
    if (vklm_shard_writer_create(tmp, vocab, (int32_t)vocab - 1, &sw, err, sizeof err))
      die("shard", err);
    uint32_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = (uint32_t)((i * 37) % vocab);
    toks[19] = toks[39] = (uint32_t)vocab - 1;
    vklm_shard_writer_append(sw, toks, 40);
    vklm_shard_writer_add_docs(sw, 2);
    if (vklm_shard_writer_finish(sw, err, sizeof err)) die("shard", err);
  }
  printf("make_corpus: seeds written under %s\n", root);
  return 0;
}

/* Tests of engine/train: the learning-rate schedule, the checkpoint format (round trip; bad
 * magic, bad CRC, truncation, an unknown data order rejected; a version-1 file read as
 * sequential order), the shuffle (a bijection for many sizes, different per epoch and seed), the
 * batcher (shuffled windows of T+1 tokens, each window once per epoch, a new order per epoch;
 * sequential order as before; a change of B on resume continues exactly, a change of T keeps the
 * place in the epoch), the resolution of a resume's settings (flags override the checkpoint,
 * the rest come from it, contradicting model flags and a new seed refused), bit-identical resume
 * (6 steps straight against 3 + resume 3, GPT-2 causal shuffled and sequential, Llama MLM with
 * gradient accumulation, losses compared bitwise), a resume with overriding flags, an init run
 * from a checkpoint's weights (its step-0 validation loss equals the source run's last one),
 * gradient accumulation (B=4 against 2 micro-batches of B=2 over the same windows), a NaN
 * stopping the run with the last good checkpoint kept, a corrupt checkpoint refused with nothing
 * overwritten, and data errors (too short, vocabulary mismatch, missing shards, a model too big
 * for the device). Tiny models and few steps: fast on lavapipe. VKLM_TEST_GPU */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard.h"
#include "model/model_params.h"
#include "testutil.h"
#include "train/train.h"

static vt_env env;
static char tmpdir[256];

static void path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static unsigned char *slurp(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  if (!f) { *n = 0; return NULL; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

static void spit(const char *p, const unsigned char *b, size_t n) {
  FILE *f = fopen(p, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
}

/* ---- schedule -------------------------------------------------------------------------- */
static void test_schedule(void) {
  struct { uint32_t step; float want; } cases[] = {
      {1, 1e-4f}, {5, 5e-4f}, {10, 1e-3f},                 /* linear warmup to lr */
      {55, 1e-4f + 0.5f * (1e-3f - 1e-4f)},                /* cosine midpoint */
      {100, 1e-4f}, {150, 1e-4f},                          /* min_lr at and after the end */
  };
  double worst = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    float got = vklm_train_lr(cases[i].step, 10, 100, 1e-3f, 1e-4f);
    double e = fabs(got - cases[i].want) / cases[i].want;
    if (e > worst) worst = e;
    vt_expect(&env, e < 1e-5, "lr(step %u) = %g, want %g", cases[i].step, got, cases[i].want);
  }
  /* monotone decay after warmup */
  int mono = 1;
  for (uint32_t s = 11; s <= 100; s++)
    mono &= vklm_train_lr(s, 10, 100, 1e-3f, 1e-4f) <= vklm_train_lr(s - 1, 10, 100, 1e-3f, 1e-4f);
  vt_expect(&env, mono, "lr decays monotonically after warmup");
  printf("schedule: %zu values, worst relative error %.2e\n", sizeof cases / sizeof cases[0], worst);
}

/* ---- checkpoint format ----------------------------------------------------------------- */
static void test_ckpt_roundtrip(void) {
  vklm_ckpt_state st = {.objective = VKLM_OBJ_MLM, .B = 3, .T = 17, .grad_accum = 2, .step = 41,
                        .total_steps = 99, .warmup = 7, .data_pos = 123456789012ull,
                        .data_epoch = 3, .rng = 0xDEADBEEFCAFEF00Dull, .seed = 5,
                        .tokens_seen = 999, .elapsed_s = 12.5, .lr = 3e-4f, .min_lr = 3e-5f,
                        .mask_id = 63};
  vklm_model_config_preset("llama-tiny", &st.model);
  /* the reader requires the config's own table (vklm_model_table_check) */
  uint32_t nt = 0;
  vklm_param_info *tab = calloc(vklm_model_table_max(&st.model), sizeof *tab);
  uint64_t n = vklm_model_table(&st.model, tab, NULL, NULL, &nt);
  float *p = vt_randf(n, 1, -1, 1), *m = vt_randf(n, 2, -1, 1), *v = vt_randf(n, 3, 0, 1);
  p[3] = -0.0f;
  st.opt = (vklm_optim_config){2e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  char f[512], err[512];
  path(f, sizeof f, "rt.bin");
  vklm_status s = vklm_ckpt_write(f, &st, tab, nt, p, m, v, n, err, sizeof err);
  vt_expect(&env, s == VKLM_OK, "checkpoint write: %s", s ? err : "ok");
  vklm_ckpt *c = NULL;
  s = vklm_ckpt_read(f, 1, &c, err, sizeof err);
  vt_expect(&env, s == VKLM_OK, "checkpoint read: %s", s ? err : "ok");
  if (!c) return;
  int same = c->nparams == n && c->ntensors == nt && !memcmp(c->params, p, n * 4) &&
             !memcmp(c->m, m, n * 4) && !memcmp(c->v, v, n * 4);
  for (uint32_t i = 0; i < nt; i++)
    same &= !strcmp(c->table[i].name, tab[i].name) && c->table[i].offset == tab[i].offset &&
            c->table[i].shape[0] == tab[i].shape[0] && c->table[i].decay == tab[i].decay &&
            c->table[i].layer == tab[i].layer;
  same &= c->st.step == 41 && c->st.data_pos == st.data_pos && c->st.rng == st.rng &&
          c->st.model.n_kv_head == st.model.n_kv_head && c->st.model.arch == VKLM_ARCH_LLAMA &&
          c->st.opt.lr == st.opt.lr && c->st.elapsed_s == 12.5 && c->st.mask_id == 63 &&
          c->st.objective == VKLM_OBJ_MLM && c->st.T == 17 && c->st.grad_accum == 2;
  vt_expect(&env, same, "checkpoint round trip is bit-exact (table, state, params, m, v)");
  printf("checkpoint round trip: %u tensors, %llu floats x 3, state fields: %s\n", nt,
         (unsigned long long)n, same ? "identical" : "DIFFERENT");
  vklm_ckpt_free(c);

  /* corruptions: each rejected with a message */
  size_t len;
  unsigned char *b = slurp(f, &len);
  struct { const char *what; size_t at; int trunc; const char *needle; } bad[] = {
      {"bad magic", 0, 0, "magic"},
      {"payload bit flip", len - 5, 0, "CRC"},
      {"header bit flip", 100, 0, "CRC"},
      {"truncated", 0, 1, "truncated"},
  };
  char g[512];
  path(g, sizeof g, "bad.bin");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    unsigned char *cb = malloc(len);
    memcpy(cb, b, len);
    size_t cl = len;
    if (bad[i].trunc) cl = len - 7;
    else cb[bad[i].at] ^= 0x10;
    spit(g, cb, cl);
    free(cb);
    vklm_ckpt *cc = NULL;
    err[0] = 0;
    s = vklm_ckpt_read(g, 1, &cc, err, sizeof err);
    vt_expect(&env, s != VKLM_OK && cc == NULL && strstr(err, bad[i].needle),
              "%s rejected: %s", bad[i].what, err);
    printf("  %-17s -> %s\n", bad[i].what, err);
  }
  spit(g, b, 100);
  s = vklm_ckpt_read(g, 0, &c, err, sizeof err);
  vt_expect(&env, s != VKLM_OK, "100-byte file rejected: %s", err);
  free(b);
  free(tab);
  free(p);
  free(m);
  free(v);
}

/* ---- checkpoint versions ---------------------------------------------------------------- */
static uint32_t crc32_bits(const unsigned char *p, size_t n) { /* zlib's crc32, bit by bit */
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The header's CRC (offset 220) recomputed after an edit. */
static void rehash(unsigned char *h) {
  put_le32(h + 220, 0);
  put_le32(h + 220, crc32_bits(h, 256));
}

static void test_ckpt_versions(void) {
  vklm_ckpt_state st = {.B = 2, .T = 8, .grad_accum = 1, .step = 3, .total_steps = 9,
                        .data_pos = 48, .data_epoch = 1, .data_order = VKLM_DATA_SHUFFLED,
                        .data_tokens = 4000, .seed = 7, .lr = 1e-3f};
  vklm_model_config_preset("gpt2-tiny", &st.model);
  uint32_t nt = 0;
  vklm_param_info *tab = calloc(vklm_model_table_max(&st.model), sizeof *tab);
  uint64_t np = vklm_model_table(&st.model, tab, NULL, NULL, &nt);
  float *p = calloc(np, sizeof *p);
  for (int i = 0; i < 6; i++) p[i] = (float)(i + 1);
  char f[512], err[512] = "";
  path(f, sizeof f, "v2.bin");
  vklm_status s = vklm_ckpt_write(f, &st, tab, nt, p, p, p, np, err, sizeof err);
  free(tab);
  vklm_ckpt *c = NULL;
  s = s ? s : vklm_ckpt_read(f, 0, &c, err, sizeof err);
  size_t len;
  unsigned char *b = slurp(f, &len);
  vt_expect(&env, s == VKLM_OK && c && b && b[8] == 3 && c->st.data_order == VKLM_DATA_SHUFFLED &&
                      c->st.data_tokens == 4000 && c->st.data_pos == 48 &&
                      c->st.precision == VKLM_DTYPE_F32 && c->st.loss_scale == 1.0f,
            "version 3 written and read back (data order shuffled, 4000 data tokens, f32 with "
            "loss scale 1): %s",
            s ? err : "ok");
  vklm_ckpt_free(c);
  c = NULL;
  if (!b) {
    free(p);
    return;
  }
  /* a version-1 file: the reserved bytes zero, read as sequential order */
  unsigned char *v1 = malloc(len);
  memcpy(v1, b, len);
  put_le32(v1 + 8, 1);
  memset(v1 + 224, 0, 32);
  rehash(v1);
  spit(f, v1, len);
  s = vklm_ckpt_read(f, 1, &c, err, sizeof err);
  vt_expect(&env, s == VKLM_OK && c && c->st.data_order == VKLM_DATA_SEQUENTIAL &&
                      c->st.data_pos == 48 && c->st.step == 3 && c->m && c->m[5] == 6,
            "a version-1 checkpoint reads as sequential order: %s", s ? err : "ok");
  vklm_ckpt_free(c);
  c = NULL;
  /* hostile fields with a valid CRC */
  struct { const char *what; size_t at; uint32_t v; uint32_t version; const char *needle; } bad[] = {
      {"data order 7", 224, 7, 2, "data order 7"},
      {"objective 9", 20, 9, 2, "objective 9"},
      {"version 4", 8, 4, 4, "version 4"},
      {"precision 2 (q8_0)", 240, 2, 3, "precision 2"},
      {"loss scale 3", 244, 0x40400000u, 3, "loss scale 3"},
      {"loss scale 2 in f32", 244, 0x40000000u, 3, "loss scale 2"},
      {"more skipped steps than steps", 252, 4, 3, "4 skipped steps of 3"},
      {"version 0", 8, 0, 0, "version 0"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memcpy(v1, b, len);
    put_le32(v1 + bad[i].at, bad[i].v);
    rehash(v1);
    spit(f, v1, len);
    err[0] = 0;
    s = vklm_ckpt_read(f, 0, &c, err, sizeof err);
    vt_expect(&env, s != VKLM_OK && !c && strstr(err, bad[i].needle), "%s rejected: %s",
              bad[i].what, err);
  }
  free(v1);
  free(b);
  free(p);
}

/* ---- the shuffle and the batcher ------------------------------------------------------- */
static void test_permute(void) {
  uint64_t sizes[] = {1, 2, 3, 5, 16, 17, 1000, 4097, 65537};
  int ok = 1;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    uint64_t n = sizes[k];
    unsigned char *seen = calloc(n, 1);
    for (uint64_t i = 0; i < n; i++) {
      uint64_t p = vklm_data_permute(i, n, 7, 3);
      if (p >= n || seen[p]) ok = 0;
      else seen[p] = 1;
      if (p != vklm_data_permute(i, n, 7, 3)) ok = 0; /* deterministic */
    }
    free(seen);
  }
  vt_expect(&env, ok, "vklm_data_permute is a deterministic bijection of [0, n) for n in "
            "{1, 2, 3, 5, 16, 17, 1000, 4097, 65537}");
  uint64_t n = 1000, same_epoch = 0, same_seed = 0, fixed = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t p = vklm_data_permute(i, n, 7, 0);
    same_epoch += p == vklm_data_permute(i, n, 7, 1);
    same_seed += p == vklm_data_permute(i, n, 8, 0);
    fixed += p == i;
  }
  /* independent permutations agree at ~1 place in expectation */
  vt_expect(&env, same_epoch < 10 && same_seed < 10 && fixed < 10,
            "n=1000: epochs 0 and 1 agree at %llu places, seeds 7 and 8 at %llu, fixed points %llu "
            "(each < 10)", (unsigned long long)same_epoch, (unsigned long long)same_seed,
            (unsigned long long)fixed);
}

/* Checks that row r of (inputs, targets) is window w: tokens[w*T, +T+1) of ids[i] = i. */
static int row_window(const int32_t *in, const int32_t *tg, uint32_t T, uint64_t *w) {
  if (in[0] % (int32_t)T) return 0;
  *w = (uint64_t)in[0] / T;
  for (uint32_t j = 0; j < T; j++)
    if (in[j] != in[0] + (int32_t)j || tg[j] != in[0] + (int32_t)j + 1) return 0;
  return 1;
}

static void test_batcher(void) {
  const uint32_t T = 16, B = 3, NW = 40;
  uint64_t n = (uint64_t)NW * T + 1;
  int32_t *ids = malloc(n * sizeof *ids);
  for (uint64_t i = 0; i < n; i++) ids[i] = (int32_t)i;
  vklm_tokens *src = NULL;
  vklm_tokens_from_array(ids, n, n, &src);
  int32_t buf[8 * 16 + 1], in[8 * 16], tg[8 * 16];
  char err[512];
  vklm_batcher b;
  vklm_batcher_init(&b, src, B, T, err, sizeof err);
  vklm_batcher_seek(&b, VKLM_DATA_SHUFFLED, 5, 0, 0);
  /* epoch 0: 13 micro-batches of 3 windows, all distinct; then epoch 1 */
  unsigned char seen[40] = {0};
  int ok = b.nwin == NW, distinct = 1;
  uint64_t first0 = 0, first1 = 0, w = 0;
  for (uint32_t k = 0; k < NW / B && ok; k++) {
    ok = vklm_batcher_next(&b, (uint32_t)n, buf, in, tg, err, sizeof err) == VKLM_OK;
    for (uint32_t r = 0; r < B && ok; r++) {
      ok = row_window(in + r * T, tg + r * T, T, &w) && w < NW &&
           w == vklm_data_permute(k * B + r, NW, 5, 0);
      if (ok && seen[w]) distinct = 0;
      if (ok) seen[w] = 1;
      if (k == 0 && r == 0) first0 = w;
    }
  }
  ok = ok && vklm_batcher_next(&b, (uint32_t)n, buf, in, tg, err, sizeof err) == VKLM_OK &&
       b.epoch == 1 && row_window(in, tg, T, &first1) &&
       first1 == vklm_data_permute(0, NW, 5, 1);
  vt_expect(&env, ok && distinct, "shuffled: 13 micro-batches of 3 distinct windows of T+1 "
            "tokens at stride T in epoch 0 (first window %llu), then epoch 1 (first window %llu)",
            (unsigned long long)first0, (unsigned long long)first1);
  /* sequential: the old order */
  vklm_batcher_seek(&b, VKLM_DATA_SEQUENTIAL, 5, 0, 0);
  ok = vklm_batcher_next(&b, (uint32_t)n, buf, in, tg, err, sizeof err) == VKLM_OK;
  for (uint32_t j = 0; j < B * T; j++) ok &= in[j] == (int32_t)j && tg[j] == (int32_t)j + 1;
  ok &= b.pos == (uint64_t)B * T;
  vt_expect(&env, ok, "sequential: rows are consecutive, position advances by B*T");
  /* B changes on resume: 3 micro-batches of B=2 drew windows 0..5 of the order; B=3 goes on
   * with windows 6, 7, 8 */
  vklm_batcher b2;
  vklm_batcher_init(&b2, src, 2, T, err, sizeof err);
  vklm_batcher_seek(&b2, VKLM_DATA_SHUFFLED, 5, 0, 0);
  for (int k = 0; k < 3; k++) vklm_batcher_next(&b2, (uint32_t)n, buf, in, tg, err, sizeof err);
  vklm_batcher_init(&b, src, 3, T, err, sizeof err);
  vklm_batcher_seek(&b, VKLM_DATA_SHUFFLED, 5, b2.pos, b2.epoch);
  ok = vklm_batcher_next(&b, (uint32_t)n, buf, in, tg, err, sizeof err) == VKLM_OK;
  for (uint32_t r = 0; r < 3 && ok; r++)
    ok = row_window(in + r * T, tg + r * T, T, &w) && w == vklm_data_permute(6 + r, NW, 5, 0);
  vt_expect(&env, ok && b2.pos == 6 * T, "B 2 -> 3 on resume: the next windows are the order's "
            "6, 7, 8 (position %llu tokens)", (unsigned long long)b2.pos);
  /* T changes: the position (tokens of the epoch) is kept, rounded to whole windows */
  vklm_batcher_init(&b, src, 2, 12, err, sizeof err);
  vklm_batcher_seek(&b, VKLM_DATA_SHUFFLED, 5, 100, 2);
  vt_expect(&env, b.pos == 96 && b.epoch == 2 && b.nwin == 53,
            "T 16 -> 12 on resume: position 100 -> %llu (8 windows of 12 of %llu), epoch %llu",
            (unsigned long long)b.pos, (unsigned long long)b.nwin, (unsigned long long)b.epoch);
  /* positions past the end (a hostile checkpoint) start the next epoch */
  vklm_batcher_seek(&b, VKLM_DATA_SHUFFLED, 5, UINT64_MAX, 0);
  ok = vklm_batcher_next(&b, (uint32_t)n, buf, in, tg, err, sizeof err) == VKLM_OK && b.epoch == 1;
  vklm_batcher_seek(&b, VKLM_DATA_SEQUENTIAL, 5, UINT64_MAX - 3, 0);
  ok &= vklm_batcher_next(&b, (uint32_t)n, buf, in, tg, err, sizeof err) == VKLM_OK &&
        b.epoch == 1 && in[0] == 0;
  vt_expect(&env, ok, "a position past the end starts the next epoch (shuffled and sequential)");
  vklm_tokens_destroy(src);
  free(ids);
}

/* ---- where a resume's settings come from ------------------------------------------------ */
static int same_state(const vklm_ckpt_state *a, const vklm_ckpt_state *b) {
  const vklm_model_config *x = &a->model, *y = &b->model;
  return x->arch == y->arch && x->vocab_size == y->vocab_size && x->max_seq == y->max_seq &&
         x->n_layer == y->n_layer && x->n_head == y->n_head && x->n_kv_head == y->n_kv_head &&
         x->n_embd == y->n_embd && x->ffn_hidden == y->ffn_hidden && x->norm_eps == y->norm_eps &&
         x->rope_theta == y->rope_theta && x->tie_embeddings == y->tie_embeddings &&
         a->objective == b->objective && a->B == b->B && a->T == b->T &&
         a->grad_accum == b->grad_accum && a->step == b->step &&
         a->total_steps == b->total_steps && a->warmup == b->warmup &&
         a->data_pos == b->data_pos && a->data_epoch == b->data_epoch &&
         a->data_order == b->data_order && a->data_tokens == b->data_tokens && a->rng == b->rng &&
         a->seed == b->seed && a->tokens_seen == b->tokens_seen && a->elapsed_s == b->elapsed_s &&
         a->lr == b->lr && a->min_lr == b->min_lr && a->opt.lr == b->opt.lr &&
         a->opt.beta1 == b->opt.beta1 && a->opt.beta2 == b->opt.beta2 &&
         a->opt.eps == b->opt.eps && a->opt.weight_decay == b->opt.weight_decay &&
         a->opt.grad_clip == b->opt.grad_clip && a->mask_id == b->mask_id;
}

static void test_resolve(void) {
  vklm_ckpt_state ck = {.objective = VKLM_OBJ_CAUSAL, .B = 2, .T = 16, .grad_accum = 1, .step = 3,
                        .total_steps = 6, .warmup = 2, .data_pos = 96, .data_epoch = 1,
                        .data_order = VKLM_DATA_SHUFFLED, .data_tokens = 4000, .rng = 77,
                        .seed = 1337, .tokens_seen = 96, .lr = 3e-3f, .min_lr = 3e-4f,
                        .mask_id = 63};
  vklm_model_config_preset("gpt2-tiny", &ck.model);
  ck.model.vocab_size = 64;
  ck.opt = (vklm_optim_config){3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  vklm_train_options o;
  vklm_train_options_default(&o);
  vklm_ckpt_state out;
  char sum[2600], err[1024] = "";
  /* no flags: the checkpoint's state as it is (bit-identical continuation) */
  vklm_status s = vklm_train_resolve(&o, &ck, NULL, 64, 4000, &out, sum, sizeof sum, err,
                                     sizeof err);
  vt_expect(&env, s == VKLM_OK && same_state(&out, &ck), "resume without flags keeps "
            "every value of the checkpoint: %s", s ? err : sum);
  /* flags override; min-lr follows --lr */
  o.given = VKLM_GIVEN_B | VKLM_GIVEN_LR | VKLM_GIVEN_STEPS | VKLM_GIVEN_DATA_ORDER;
  o.B = 4;
  o.lr = 1e-3f;
  o.steps = 10;
  o.data_order = VKLM_DATA_SEQUENTIAL;
  s = vklm_train_resolve(&o, &ck, NULL, 64, 4000, &out, sum, sizeof sum, err, sizeof err);
  printf("resolve: %s\n", s ? err : sum);
  vt_expect(&env, s == VKLM_OK && out.B == 4 && out.T == 16 && out.lr == 1e-3f &&
                      out.min_lr == 1e-3f / 10 && out.total_steps == 10 && out.warmup == 2 &&
                      out.step == 3 && out.data_pos == 96 && out.rng == 77 &&
                      out.data_order == VKLM_DATA_SEQUENTIAL && out.opt.weight_decay == 0.1f,
            "resume with -b 4 --lr 1e-3 --steps 10 --data-order sequential: B, lr, min-lr "
            "(lr/10), steps, order from flags; T, warmup, wd, step, position, rng from the "
            "checkpoint");
  vt_expect(&env, s == VKLM_OK && strstr(sum, "from flags: B=4 steps=10 lr=0.001 min-lr=0.0001 "
                                         "(lr/10) data-order=sequential") &&
                      strstr(sum, "from the checkpoint: seed=1337") && strstr(sum, "T=16"),
            "the summary says where each value came from");
  /* refusals */
  struct { uint32_t bit; const char *needle; } bad[] = {
      {VKLM_GIVEN_LAYERS, "--layers 5 (the model has 2)"},
      {VKLM_GIVEN_SEED, "--seed cannot change on --resume (4 given"},
      {VKLM_GIVEN_OBJECTIVE, "--objective cannot change on --resume (mlm given"},
      {VKLM_GIVEN_T, "exceeds the model's"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    vklm_train_options_default(&o);
    o.given = bad[i].bit;
    o.model.n_layer = 5;
    o.seed = 4;
    o.objective = VKLM_OBJ_MLM;
    o.T = 1000;
    err[0] = 0;
    s = vklm_train_resolve(&o, &ck, NULL, 64, 4000, &out, sum, sizeof sum, err, sizeof err);
    vt_expect(&env, s != VKLM_OK && strstr(err, bad[i].needle), "refused: %s", err);
  }
  vklm_ckpt_state hostile = ck;
  hostile.B = 0;
  vklm_train_options_default(&o);
  s = vklm_train_resolve(&o, &hostile, NULL, 64, 4000, &out, sum, sizeof sum, err, sizeof err);
  vt_expect(&env, s != VKLM_OK && strstr(err, "invalid"), "a checkpoint with B=0: %s", err);
  /* init: the model from the init model, the rest from the options, a fresh state */
  vklm_train_options_default(&o);
  o.given = VKLM_GIVEN_STEPS;
  o.steps = 5;
  s = vklm_train_resolve(&o, NULL, &ck.model, 64, 4000, &out, sum, sizeof sum, err, sizeof err);
  printf("resolve (init): %s\n", s ? err : sum);
  vt_expect(&env, s == VKLM_OK && out.step == 0 && out.total_steps == 5 && out.B == 4 &&
                      out.T == 64 && out.data_pos == 0 && out.model.vocab_size == 64 &&
                      strstr(sum, "from flags: steps=5") && strstr(sum, "defaults: seed=1337"),
            "init: model from the init model, steps from flags, the rest defaults, step 0");
}

static void expect_fail(const char *what, vklm_status s, const char *err, const char *needle) {
  vt_expect(&env, s != VKLM_OK && strstr(err, needle), "%s: %s", what, err);
  printf("%-22s -> %s\n", what, err);
}

/* ---- training runs --------------------------------------------------------------------- */
/* A learnable synthetic stream over V ids: a repeating pattern with a little seeded noise. */
static vklm_tokens *make_tokens(uint64_t n, uint32_t V, uint64_t seed) {
  int32_t *ids = malloc(n * sizeof(int32_t));
  uint64_t s = seed;
  for (uint64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    ids[i] = (s >> 60) == 0 ? (int32_t)((s >> 33) % V) : (int32_t)((i * 7 + i / 13) % V);
  }
  vklm_tokens *t = NULL;
  vklm_tokens_from_array(ids, n, V, &t);
  free(ids);
  return t;
}

static void opts(vklm_train_options *o, const char *preset, const char *out) {
  vklm_train_options_default(o);
  vklm_model_config_preset(preset, &o->model);
  o->model.vocab_size = 64;
  o->B = 2;
  o->T = 16;
  o->steps = 6;
  o->warmup = 2;
  o->lr = 3e-3f;
  o->min_lr = 3e-4f;
  o->val_every = 3;
  o->val_batches = 2;
  o->ckpt_every = 100;
  o->out_dir = out;
  o->progress = 0;
  o->plot = 0;
  o->force = 1;
}

static void test_resume(const char *preset, vklm_objective obj, uint32_t ga,
                        vklm_data_order order) {
  vklm_tokens *tr = make_tokens(4000, 64, 1), *va = make_tokens(600, 64, 2);
  char da[512], db[512], err[1024], ck[600];
  snprintf(da, sizeof da, "%s/%s_%d_%d_a", tmpdir, preset, obj, order);
  snprintf(db, sizeof db, "%s/%s_%d_%d_b", tmpdir, preset, obj, order);
  vklm_train_options o;
  vklm_train_result ra, rb1, rb2;
  opts(&o, preset, da);
  o.objective = obj;
  o.grad_accum = ga;
  o.data_order = order;
  vklm_status s = vklm_train_run(env.ctx, &o, tr, va, &ra, err, sizeof err);
  vt_expect(&env, s == VKLM_OK, "%s straight run: %s", preset, s ? err : "ok");
  o.out_dir = db;
  o.stop_at = 3;
  s = vklm_train_run(env.ctx, &o, tr, va, &rb1, err, sizeof err);
  vt_expect(&env, s == VKLM_OK && rb1.last_step == 3, "%s first half: %s", preset, s ? err : "ok");
  snprintf(ck, sizeof ck, "%s/checkpoint.bin", db);
  o.stop_at = 0;
  o.resume = ck;
  o.seed = 999; /* ignored on resume: the checkpoint's state rules */
  s = vklm_train_run(env.ctx, &o, tr, va, &rb2, err, sizeof err);
  vt_expect(&env, s == VKLM_OK && rb2.first_step == 4 && rb2.last_step == 6, "%s resume: %s",
            preset, s ? err : "ok");
  if (s == VKLM_OK && ra.losses && rb1.losses && rb2.losses) {
    int same = 1;
    printf("resume %s %s ga=%u %s: step  straight      3+resume\n", preset,
           obj == VKLM_OBJ_MLM ? "mlm" : "causal", ga, vklm_data_order_name(order));
    for (uint32_t i = 1; i <= 6; i++) {
      float b = i <= 3 ? rb1.losses[i] : rb2.losses[i];
      same &= !memcmp(&ra.losses[i], &b, sizeof b) && isfinite(b);
      printf("  %u  %.9g  %.9g%s\n", i, ra.losses[i], b,
             memcmp(&ra.losses[i], &b, sizeof b) ? "  DIFFERENT" : "");
    }
    same &= !memcmp(&ra.last_val_loss, &rb2.last_val_loss, sizeof(float));
    vt_expect(&env, same, "%s: resumed losses are bitwise identical to the straight run", preset);
    vt_expect(&env, ra.losses[6] < ra.losses[1], "%s: loss falls (%g -> %g)", preset,
              ra.losses[1], ra.losses[6]);
    /* the final checkpoints agree past the header (which holds the elapsed time) */
    char pa[600];
    snprintf(pa, sizeof pa, "%s/checkpoint.bin", da);
    size_t na, nb;
    unsigned char *a = slurp(pa, &na), *b = slurp(ck, &nb);
    vt_expect(&env, a && b && na == nb && na > 256 && !memcmp(a + 256, b + 256, na - 256),
              "%s: final checkpoints' payloads are identical", preset);
    free(a);
    free(b);
  }
  vklm_train_result_free(&ra);
  vklm_train_result_free(&rb1);
  vklm_train_result_free(&rb2);
  vklm_tokens_destroy(tr);
  vklm_tokens_destroy(va);
}

/* A resume with flags: B, grad-accum, lr and steps change; the rest continues. */
static void test_resume_override(void) {
  vklm_tokens *tr = make_tokens(4000, 64, 1);
  char d[512], err[1024] = "", ck[600];
  snprintf(d, sizeof d, "%s/override", tmpdir);
  snprintf(ck, sizeof ck, "%s/checkpoint.bin", d);
  vklm_train_options o;
  vklm_train_result r1, r2;
  opts(&o, "gpt2-tiny", d);
  o.stop_at = 3;
  vklm_status s = vklm_train_run(env.ctx, &o, tr, NULL, &r1, err, sizeof err);
  opts(&o, "gpt2-tiny", d);
  o.resume = ck;
  o.given = VKLM_GIVEN_B | VKLM_GIVEN_GRAD_ACCUM | VKLM_GIVEN_LR | VKLM_GIVEN_STEPS;
  o.B = 3;
  o.grad_accum = 2;
  o.lr = 1e-3f;
  o.steps = 8;
  s = s ? s : vklm_train_run(env.ctx, &o, tr, NULL, &r2, err, sizeof err);
  vklm_ckpt *c = NULL;
  if (s == VKLM_OK) s = vklm_ckpt_read(ck, 0, &c, err, sizeof err);
  /* 3 steps of 2 windows, then 5 steps of 2 x 3 windows: 36 windows of 16 tokens */
  int ok = s == VKLM_OK && r2.first_step == 4 && r2.last_step == 8 && c->st.B == 3 &&
           c->st.grad_accum == 2 && c->st.T == 16 && c->st.lr == 1e-3f &&
           c->st.min_lr == 1e-3f / 10 && c->st.total_steps == 8 && c->st.warmup == 2 &&
           c->st.data_pos == 36 * 16 && c->st.data_epoch == 0 &&
           c->st.tokens_seen == 3 * 32 + 5 * 96 && c->st.data_order == VKLM_DATA_SHUFFLED;
  vt_expect(&env, ok, "resume with -b 3 --grad-accum 2 --lr 1e-3 --steps 8: steps %u..%u, "
            "checkpoint B=%u GA=%u lr=%g min-lr=%g steps=%llu, position %llu (36 windows x 16), "
            "%s", r2.first_step, r2.last_step, c ? c->st.B : 0, c ? c->st.grad_accum : 0,
            c ? c->st.lr : 0, c ? c->st.min_lr : 0,
            c ? (unsigned long long)c->st.total_steps : 0ull,
            c ? (unsigned long long)c->st.data_pos : 0ull, s ? err : "ok");
  vklm_ckpt_free(c);
  vklm_train_result_free(&r1);
  vklm_train_result_free(&r2);
  vklm_tokens_destroy(tr);
}

/* An init run: a new run (step 1, fresh schedule and moments) from a checkpoint's weights. */
static void test_init(void) {
  vklm_tokens *tr = make_tokens(4000, 64, 1), *va = make_tokens(600, 64, 2);
  char da[512], di[512], err[1024] = "", p[600];
  snprintf(da, sizeof da, "%s/init_src", tmpdir);
  snprintf(di, sizeof di, "%s/init_run", tmpdir);
  vklm_train_options o;
  vklm_train_result ra, ri;
  opts(&o, "llama-tiny", da);
  vklm_status s = vklm_train_run(env.ctx, &o, tr, va, &ra, err, sizeof err);
  opts(&o, "gpt2-tiny", di); /* the model comes from the init model, not from o.model */
  o.init = da;               /* a run directory: its checkpoint.bin */
  o.steps = 3;
  s = s ? s : vklm_train_run(env.ctx, &o, tr, va, &ri, err, sizeof err);
  vklm_metrics h = {0};
  snprintf(p, sizeof p, "%s/metrics.jsonl", di);
  if (s == VKLM_OK) s = vklm_metrics_load(&h, p, 100, err, sizeof err);
  float v0 = h.n && h.rows[0].step == 0 ? h.rows[0].val_loss : NAN;
  vklm_ckpt *c = NULL;
  snprintf(p, sizeof p, "%s/checkpoint.bin", di);
  if (s == VKLM_OK) s = vklm_ckpt_read(p, 0, &c, err, sizeof err);
  vt_expect(&env, s == VKLM_OK && ri.first_step == 1 && ri.last_step == 3 &&
                      !memcmp(&v0, &ra.last_val_loss, sizeof v0) && c && c->st.step == 3 &&
                      c->st.total_steps == 3 && c->st.model.arch == VKLM_ARCH_LLAMA,
            "init from a llama run's directory: steps 1..3, llama model, step-0 validation loss "
            "%.7f == the source run's last %.7f: %s", v0, ra.last_val_loss, s ? err : "ok");
  vklm_ckpt_free(c);
  vklm_metrics_free(&h);
  vklm_train_result_free(&ri);
  /* a contradicting model flag, and --resume with --init */
  snprintf(di, sizeof di, "%s/init_bad", tmpdir);
  opts(&o, "gpt2-tiny", di);
  o.init = da;
  o.given = VKLM_GIVEN_ARCH;
  err[0] = 0;
  s = vklm_train_run(env.ctx, &o, tr, va, &ri, err, sizeof err);
  vklm_train_result_free(&ri);
  expect_fail("init, --arch gpt2", s, err, "--arch gpt2 (the model is llama)");
  o.given = 0;
  o.resume = p;
  s = vklm_train_run(env.ctx, &o, tr, va, &ri, err, sizeof err);
  vklm_train_result_free(&ri);
  expect_fail("init and resume", s, err, "give one of them");
  o.resume = NULL;
  snprintf(p, sizeof p, "%s/nothing_here.gguf", tmpdir);
  o.init = p;
  s = vklm_train_run(env.ctx, &o, tr, va, &ri, err, sizeof err);
  vklm_train_result_free(&ri);
  expect_fail("init, missing model", s, err, "cannot load the init model");
  struct stat sb;
  vt_expect(&env, stat(di, &sb) != 0, "no output directory created by the refused init runs");
  vklm_train_result_free(&ra);
  vklm_tokens_destroy(tr);
  vklm_tokens_destroy(va);
}

/* Gradient accumulation: 2 micro-batches of B=2 read the same windows as one of B=4, so the
 * losses agree up to rounding. */
static void test_grad_accum(void) {
  vklm_tokens *tr = make_tokens(4000, 64, 1);
  char d[512], err[1024] = "ok";
  snprintf(d, sizeof d, "%s/ga", tmpdir);
  vklm_train_options o;
  vklm_train_result r1, r2;
  opts(&o, "gpt2-tiny", d);
  o.steps = 4;
  o.B = 4;
  vklm_status s1 = vklm_train_run(env.ctx, &o, tr, NULL, &r1, err, sizeof err);
  o.B = 2;
  o.grad_accum = 2;
  vklm_status s2 = vklm_train_run(env.ctx, &o, tr, NULL, &r2, err, sizeof err);
  vt_expect(&env, s1 == VKLM_OK && s2 == VKLM_OK, "grad-accum runs: %s", err);
  double worst = 0;
  for (uint32_t i = 1; s1 == VKLM_OK && s2 == VKLM_OK && i <= 4; i++) {
    double e = fabs(r1.losses[i] - r2.losses[i]) / fabs(r1.losses[i]);
    if (!(e <= worst)) worst = e;
  }
  vt_expect(&env, worst < 1e-4, "B=4 vs B=2 x grad-accum 2: worst relative loss difference %.2e",
            worst);
  printf("grad accumulation: B=4 vs 2x2 over 4 steps, worst relative loss difference %.2e\n", worst);
  vklm_train_result_free(&r1);
  vklm_train_result_free(&r2);
  vklm_tokens_destroy(tr);
}

static void test_nan_stop(void) {
  vklm_tokens *tr = make_tokens(4000, 64, 1);
  char d[512], err[1024], ck[600];
  snprintf(d, sizeof d, "%s/nan", tmpdir);
  vklm_train_options o;
  opts(&o, "gpt2-tiny", d);
  o.ckpt_every = 2;
  o.nan_step = 4;
  vklm_train_result r;
  err[0] = 0;
  vklm_status s = vklm_train_run(env.ctx, &o, tr, NULL, &r, err, sizeof err);
  vt_expect(&env, s != VKLM_OK && strstr(err, "loss is NaN") && strstr(err, "step 4") &&
                      strstr(err, "step 2"), "NaN stops the run naming the step: %s", err);
  printf("NaN stop: %s\n", err);
  snprintf(ck, sizeof ck, "%s/checkpoint.bin", d);
  vklm_ckpt *c = NULL;
  s = vklm_ckpt_read(ck, 0, &c, err, sizeof err);
  int finite = 1;
  for (uint64_t i = 0; c && i < c->nparams; i++) finite &= isfinite(c->params[i]);
  vt_expect(&env, s == VKLM_OK && c && c->st.step == 2 && finite,
            "the last good checkpoint (step 2, finite) is kept");
  vklm_ckpt_free(c);
  vklm_train_result_free(&r);
  /* an absurd learning rate: AdamW's first step moves every weight by about 1e30, so the next
   * forward overflows; the run must stop there, naming the step, and write no checkpoint */
  opts(&o, "gpt2-tiny", d);
  o.lr = 1e30f;
  o.min_lr = 1e30f;
  o.grad_clip = 0;
  o.steps = 6;
  char ckp[600];
  snprintf(ckp, sizeof ckp, "%s/checkpoint.bin", d);
  remove(ckp);
  s = vklm_train_run(env.ctx, &o, tr, NULL, &r, err, sizeof err);
  FILE *cf = fopen(ckp, "rb");
  int ok = s != VKLM_OK && strstr(err, "at step 2") &&
           (strstr(err, "NaN") || strstr(err, "infinite")) && !cf;
  if (cf) fclose(cf);
  vt_expect(&env, ok, "lr 1e30: the run stops at step 2 with no checkpoint: %s",
            s ? err : "it did not stop");
  printf("lr 1e30: %s\n", s ? err : "stayed finite");
  vklm_train_result_free(&r);
  vklm_tokens_destroy(tr);
}

static void test_corrupt_resume(void) {
  vklm_tokens *tr = make_tokens(4000, 64, 1);
  char d[512], err[1024], ck[600], log[600];
  snprintf(d, sizeof d, "%s/corrupt", tmpdir);
  vklm_train_options o;
  opts(&o, "gpt2-tiny", d);
  o.steps = 2;
  vklm_train_result r;
  vklm_status s = vklm_train_run(env.ctx, &o, tr, NULL, &r, err, sizeof err);
  vt_expect(&env, s == VKLM_OK, "short run: %s", s ? err : "ok");
  vklm_train_result_free(&r);
  snprintf(ck, sizeof ck, "%s/checkpoint.bin", d);
  snprintf(log, sizeof log, "%s/metrics.jsonl", d);
  size_t n, nl;
  unsigned char *b = slurp(ck, &n), *lb = slurp(log, &nl);
  b[n / 2] ^= 1;
  spit(ck, b, n);
  o.resume = ck;
  o.steps = 4;
  err[0] = 0;
  s = vklm_train_run(env.ctx, &o, tr, NULL, &r, err, sizeof err);
  vt_expect(&env, s != VKLM_OK && strstr(err, "CRC"), "resume from a corrupt checkpoint: %s", err);
  vklm_train_result_free(&r);
  size_t n2, nl2;
  unsigned char *b2 = slurp(ck, &n2), *lb2 = slurp(log, &nl2);
  vt_expect(&env, n2 == n && !memcmp(b, b2, n) && nl2 == nl && !memcmp(lb, lb2, nl),
            "nothing overwritten (checkpoint and metrics log unchanged)");
  printf("corrupt resume: %s; files unchanged\n", err);
  /* a fresh run does not replace an existing checkpoint without force */
  o.resume = NULL;
  o.force = 0;
  s = vklm_train_run(env.ctx, &o, tr, NULL, &r, err, sizeof err);
  vt_expect(&env, s != VKLM_OK && strstr(err, "exists"), "fresh run over a checkpoint: %s", err);
  vklm_train_result_free(&r);
  free(b);
  free(b2);
  free(lb);
  free(lb2);
  vklm_tokens_destroy(tr);
}

static void test_data_errors(void) {
  char d[512], err[1024];
  snprintf(d, sizeof d, "%s/dataerr", tmpdir);
  vklm_train_options o;
  vklm_train_result r;
  opts(&o, "gpt2-tiny", d);
  vklm_tokens *small = make_tokens(20, 64, 1); /* B*T+1 = 33 needed */
  vklm_status s = vklm_train_run(env.ctx, &o, small, NULL, &r, err, sizeof err);
  vklm_train_result_free(&r);
  expect_fail("too-short data", s, err, "too little data");
  vklm_tokens_destroy(small);

  vklm_tokens *wide = make_tokens(4000, 100, 1); /* ids up to 99, model V = 64 */
  s = vklm_train_run(env.ctx, &o, wide, NULL, &r, err, sizeof err);
  vklm_train_result_free(&r);
  expect_fail("vocabulary mismatch", s, err, "do not match");
  vklm_tokens_destroy(wide);

  /* a shard whose ids exceed the model's vocabulary, read through the shard reader */
  char sp[600];
  snprintf(sp, sizeof sp, "%s/train_000000.bin", tmpdir);
  vklm_shard_writer *w = NULL;
  uint32_t ids[200];
  for (int i = 0; i < 200; i++) ids[i] = (uint32_t)(i * 37 % 300);
  if (vklm_shard_writer_create(sp, 300, -1, &w, err, sizeof err) == 0) {
    vklm_shard_writer_append(w, ids, 200);
    vklm_shard_writer_finish(w, err, sizeof err);
  }
  vklm_tokens *sh = NULL;
  s = vklm_tokens_open_shards(tmpdir, "train_", &sh, err, sizeof err);
  vt_expect(&env, s == VKLM_OK && sh && vklm_tokens_count(sh) == 200, "shard directory opens");
  if (sh) {
    int32_t buf[10];
    s = vklm_tokens_read(sh, 0, 10, 64, buf, err, sizeof err);
    expect_fail("shard id >= V", s, err, "outside the model's vocabulary");
    s = vklm_train_run(env.ctx, &o, sh, NULL, &r, err, sizeof err);
    vklm_train_result_free(&r);
    expect_fail("shard vocab > V", s, err, "do not match");
    vklm_tokens_destroy(sh);
  }
  char pat[600];
  snprintf(pat, sizeof pat, "%s/nothing_*.bin", tmpdir);
  s = vklm_tokens_open_shards(pat, "train_", &sh, err, sizeof err);
  expect_fail("missing shards", s, err, "no token shards");

  /* a model far larger than the device */
  vklm_tokens *tr = make_tokens(4000, 64, 1);
  opts(&o, "gpt2-tiny", d);
  o.model.n_embd = 16384;
  o.model.ffn_hidden = 65536;
  o.model.n_layer = 64;
  o.model.n_head = 128;
  o.model.n_kv_head = 128;
  s = vklm_train_run(env.ctx, &o, tr, NULL, &r, err, sizeof err);
  vklm_train_result_free(&r);
  expect_fail("model too big", s, err, "GiB");
  vklm_tokens_destroy(tr);
  struct stat sb;
  vt_expect(&env, stat(d, &sb) != 0, "no output directory created by failed runs");
}

int main(void) {
  vt_init(&env, "train");
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vklm_test_train_XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  test_schedule();
  test_ckpt_roundtrip();
  test_permute();
  test_batcher();
  test_ckpt_versions();
  test_resolve();
  test_resume("gpt2-tiny", VKLM_OBJ_CAUSAL, 1, VKLM_DATA_SHUFFLED);
  test_resume("gpt2-tiny", VKLM_OBJ_CAUSAL, 1, VKLM_DATA_SEQUENTIAL);
  test_resume("llama-tiny", VKLM_OBJ_MLM, 2, VKLM_DATA_SHUFFLED);
  test_resume_override();
  test_init();
  test_grad_accum();
  test_nan_stop();
  test_corrupt_resume();
  test_data_errors();
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return vt_finish(&env);
}

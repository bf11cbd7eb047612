/* Tests of engine/train: the learning-rate schedule, the checkpoint format (round trip; bad
 * magic, bad CRC, truncation rejected), bit-identical resume (6 steps straight against 3 +
 * resume 3, GPT-2 causal and Llama MLM, losses compared bitwise), gradient accumulation
 * (B=4 against 2 micro-batches of B=2 over the same windows), a NaN stopping the run with
 * the last good checkpoint kept, a corrupt checkpoint refused with nothing overwritten, and data
 * errors (too short, vocabulary mismatch, missing shards, a model too big for the device).
 * Tiny models and few steps: fast on lavapipe. VKLM_TEST_GPU */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard.h"
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
  vklm_param_info tab[3] = {{"a.weight", 2, {4, 5}, 0, 20, 1, -1},
                            {"h.0.b", 1, {7}, 20, 7, 0, 0},
                            {"c", 1, {3}, 27, 3, 0, -1}};
  uint64_t n = 30;
  float *p = vt_randf(n, 1, -1, 1), *m = vt_randf(n, 2, -1, 1), *v = vt_randf(n, 3, 0, 1);
  p[3] = -0.0f;
  vklm_ckpt_state st = {.objective = VKLM_OBJ_MLM, .B = 3, .T = 17, .grad_accum = 2, .step = 41,
                        .total_steps = 99, .warmup = 7, .data_pos = 123456789012ull,
                        .data_epoch = 3, .rng = 0xDEADBEEFCAFEF00Dull, .seed = 5,
                        .tokens_seen = 999, .elapsed_s = 12.5, .lr = 3e-4f, .min_lr = 3e-5f,
                        .mask_id = 63};
  vklm_model_config_preset("llama-tiny", &st.model);
  st.opt = (vklm_optim_config){2e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
  char f[512], err[512];
  path(f, sizeof f, "rt.bin");
  vklm_status s = vklm_ckpt_write(f, &st, tab, 3, p, m, v, n, err, sizeof err);
  vt_expect(&env, s == VKLM_OK, "checkpoint write: %s", s ? err : "ok");
  vklm_ckpt *c = NULL;
  s = vklm_ckpt_read(f, 1, &c, err, sizeof err);
  vt_expect(&env, s == VKLM_OK, "checkpoint read: %s", s ? err : "ok");
  if (!c) return;
  int same = c->nparams == n && c->ntensors == 3 && !memcmp(c->params, p, n * 4) &&
             !memcmp(c->m, m, n * 4) && !memcmp(c->v, v, n * 4);
  for (int i = 0; i < 3; i++)
    same &= !strcmp(c->table[i].name, tab[i].name) && c->table[i].offset == tab[i].offset &&
            c->table[i].shape[0] == tab[i].shape[0] && c->table[i].decay == tab[i].decay &&
            c->table[i].layer == tab[i].layer;
  same &= c->st.step == 41 && c->st.data_pos == st.data_pos && c->st.rng == st.rng &&
          c->st.model.n_kv_head == st.model.n_kv_head && c->st.model.arch == VKLM_ARCH_LLAMA &&
          c->st.opt.lr == st.opt.lr && c->st.elapsed_s == 12.5 && c->st.mask_id == 63 &&
          c->st.objective == VKLM_OBJ_MLM && c->st.T == 17 && c->st.grad_accum == 2;
  vt_expect(&env, same, "checkpoint round trip is bit-exact (table, state, params, m, v)");
  printf("checkpoint round trip: 3 tensors, %llu floats x 3, state fields: %s\n",
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
  free(p);
  free(m);
  free(v);
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

static void test_resume(const char *preset, vklm_objective obj, uint32_t ga) {
  vklm_tokens *tr = make_tokens(4000, 64, 1), *va = make_tokens(600, 64, 2);
  char da[512], db[512], err[1024], ck[600];
  snprintf(da, sizeof da, "%s/%s_%d_a", tmpdir, preset, obj);
  snprintf(db, sizeof db, "%s/%s_%d_b", tmpdir, preset, obj);
  vklm_train_options o;
  vklm_train_result ra, rb1, rb2;
  opts(&o, preset, da);
  o.objective = obj;
  o.grad_accum = ga;
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
    printf("resume %s %s ga=%u: step  straight      3+resume\n", preset,
           obj == VKLM_OBJ_MLM ? "mlm" : "causal", ga);
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
  /* an absurd learning rate: a real divergence must stop too, or stay finite */
  opts(&o, "gpt2-tiny", d);
  o.lr = 1e30f;
  o.min_lr = 1e30f;
  o.grad_clip = 0;
  o.steps = 6;
  s = vklm_train_run(env.ctx, &o, tr, NULL, &r, err, sizeof err);
  int ok = s == VKLM_OK ? 1 : (strstr(err, "at step") != NULL);
  for (uint32_t i = 1; s == VKLM_OK && i <= r.last_step; i++) ok &= isfinite(r.losses[i]);
  vt_expect(&env, ok, "lr 1e30: %s", s ? err : "finite losses");
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

static void expect_fail(const char *what, vklm_status s, const char *err, const char *needle) {
  vt_expect(&env, s != VKLM_OK && strstr(err, needle), "%s: %s", what, err);
  printf("%-22s -> %s\n", what, err);
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
  test_resume("gpt2-tiny", VKLM_OBJ_CAUSAL, 1);
  test_resume("llama-tiny", VKLM_OBJ_MLM, 2);
  test_grad_accum();
  test_nan_stop();
  test_corrupt_resume();
  test_data_errors();
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return vt_finish(&env);
}

/* Checkpoints: a 256-byte little-endian header, the parameter table, the flat parameters and the
 * AdamW moments, CRC32-checked; written atomically (version 2; version 1 is read as sequential
 * data order). Layout: docs/checkpoint.md. */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model/model_params.h"
#include "train/train.h"

#define HDR 256u
#define ENTRY 112u

_Static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE sizes");

static int host_le(void) {
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 1;
}

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void putf(uint8_t *p, float f) { uint32_t u; memcpy(&u, &f, 4); put32(p, u); }
static void putd(uint8_t *p, double d) { uint64_t u; memcpy(&u, &d, 8); put64(p, u); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
static float getf(const uint8_t *p) { uint32_t u = get32(p); float f; memcpy(&f, &u, 4); return f; }
static double getd(const uint8_t *p) { uint64_t u = get64(p); double d; memcpy(&d, &u, 8); return d; }

static uint32_t crc_update(uint32_t crc, const void *data, uint64_t n) {
  const uint8_t *p = data;
  while (n > 0) {
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    crc = (uint32_t)crc32(crc, p, k);
    p += k;
    n -= k;
  }
  return crc;
}

static void encode_header(uint8_t *h, const vklm_ckpt_state *s, uint32_t ntensors,
                          uint64_t nparams, uint64_t payload, uint32_t payload_crc) {
  memset(h, 0, HDR);
  memcpy(h, VKLM_CKPT_MAGIC, 8);
  put32(h + 8, VKLM_CKPT_VERSION);
  put32(h + 12, HDR);
  const vklm_model_config *c = &s->model;
  put32(h + 16, (uint32_t)c->arch);
  put32(h + 20, (uint32_t)s->objective);
  put32(h + 24, c->vocab_size);
  put32(h + 28, c->max_seq);
  put32(h + 32, c->n_layer);
  put32(h + 36, c->n_head);
  put32(h + 40, c->n_kv_head);
  put32(h + 44, c->n_embd);
  put32(h + 48, c->ffn_hidden);
  putf(h + 52, c->norm_eps);
  putf(h + 56, c->rope_theta);
  put32(h + 60, (uint32_t)c->tie_embeddings);
  put32(h + 64, s->B);
  put32(h + 68, s->T);
  put32(h + 72, s->grad_accum);
  put32(h + 76, (uint32_t)s->mask_id);
  put64(h + 80, s->step);
  put64(h + 88, s->total_steps);
  put64(h + 96, s->warmup);
  put64(h + 104, s->data_pos);
  put64(h + 112, s->data_epoch);
  put64(h + 120, s->rng);
  put64(h + 128, s->seed);
  put64(h + 136, s->tokens_seen);
  putd(h + 144, s->elapsed_s);
  putf(h + 152, s->lr);
  putf(h + 156, s->min_lr);
  putf(h + 160, s->opt.lr);
  putf(h + 164, s->opt.beta1);
  putf(h + 168, s->opt.beta2);
  putf(h + 172, s->opt.eps);
  putf(h + 176, s->opt.weight_decay);
  putf(h + 180, s->opt.grad_clip);
  put32(h + 184, ntensors);
  put32(h + 188, 1u); /* flags: bit 0 = moments present */
  put64(h + 192, nparams);
  put64(h + 200, (uint64_t)ntensors * ENTRY);
  put64(h + 208, payload);
  put32(h + 216, payload_crc);
  put32(h + 224, (uint32_t)s->data_order); /* version 2 */
  put64(h + 232, s->data_tokens);
  put32(h + 240, (uint32_t)s->precision); /* version 3 */
  putf(h + 244, s->loss_scale > 0.0f ? s->loss_scale : 1.0f); /* a zeroed state: scale 1 */
  put32(h + 248, s->scale_good);
  put32(h + 252, s->skipped);
  put32(h + 220, (uint32_t)crc32(0L, h, HDR)); /* with its own field still zero */
}

static void decode_header(const uint8_t *h, uint32_t version, vklm_ckpt_state *s) {
  memset(s, 0, sizeof *s);
  vklm_model_config *c = &s->model;
  c->arch = (vklm_arch)get32(h + 16);
  s->objective = (vklm_objective)get32(h + 20);
  c->vocab_size = get32(h + 24);
  c->max_seq = get32(h + 28);
  c->n_layer = get32(h + 32);
  c->n_head = get32(h + 36);
  c->n_kv_head = get32(h + 40);
  c->n_embd = get32(h + 44);
  c->ffn_hidden = get32(h + 48);
  c->norm_eps = getf(h + 52);
  c->rope_theta = getf(h + 56);
  c->tie_embeddings = (int)get32(h + 60);
  s->B = get32(h + 64);
  s->T = get32(h + 68);
  s->grad_accum = get32(h + 72);
  s->mask_id = (int32_t)get32(h + 76);
  s->step = get64(h + 80);
  s->total_steps = get64(h + 88);
  s->warmup = get64(h + 96);
  s->data_pos = get64(h + 104);
  s->data_epoch = get64(h + 112);
  s->rng = get64(h + 120);
  s->seed = get64(h + 128);
  s->tokens_seen = get64(h + 136);
  s->elapsed_s = getd(h + 144);
  s->lr = getf(h + 152);
  s->min_lr = getf(h + 156);
  s->opt.lr = getf(h + 160);
  s->opt.beta1 = getf(h + 164);
  s->opt.beta2 = getf(h + 168);
  s->opt.eps = getf(h + 172);
  s->opt.weight_decay = getf(h + 176);
  s->opt.grad_clip = getf(h + 180);
  if (version >= 2) {
    s->data_order = (vklm_data_order)get32(h + 224);
    s->data_tokens = get64(h + 232);
  } else {
    s->data_order = VKLM_DATA_SEQUENTIAL; /* version 1: reserved zeros */
  }
  s->precision = VKLM_DTYPE_F32;
  s->loss_scale = 1.0f;
  if (version >= 3) {
    s->precision = (vklm_dtype)get32(h + 240);
    s->loss_scale = getf(h + 244);
    s->scale_good = get32(h + 248);
    s->skipped = get32(h + 252);
  }
}

static void encode_entry(uint8_t *e, const vklm_param_info *p) {
  memset(e, 0, ENTRY);
  memcpy(e, p->name, strnlen(p->name, 63));
  put32(e + 64, p->ndim);
  for (int i = 0; i < 4; i++) put32(e + 68 + 4 * i, p->shape[i]);
  put64(e + 84, p->offset);
  put64(e + 92, p->count);
  put32(e + 100, (uint32_t)p->decay);
  put32(e + 104, (uint32_t)p->layer);
}

static void decode_entry(const uint8_t *e, vklm_param_info *p) {
  memset(p, 0, sizeof *p);
  memcpy(p->name, e, 63);
  p->ndim = get32(e + 64);
  for (int i = 0; i < 4; i++) p->shape[i] = get32(e + 68 + 4 * i);
  p->offset = get64(e + 84);
  p->count = get64(e + 92);
  p->decay = (int)get32(e + 100);
  p->layer = (int)get32(e + 104);
}

static int write_all(FILE *f, const void *p, uint64_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    size_t k = n > (1u << 28) ? (1u << 28) : (size_t)n;
    if (fwrite(b, 1, k, f) != k) return -1;
    b += k;
    n -= k;
  }
  return 0;
}

vklm_status vklm_ckpt_write(const char *path, const vklm_ckpt_state *st,
                            const vklm_param_info *table, uint32_t ntensors, const float *params,
                            const float *m, const float *v, uint64_t nparams, char *err,
                            size_t errlen) {
  VKLM_ASSERT(host_le(), "checkpoints assume a little-endian host");
  uint8_t *tab = calloc(ntensors ? ntensors : 1, ENTRY);
  if (!tab) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  for (uint32_t i = 0; i < ntensors; i++) {
    VKLM_ASSERT(table[i].count <= nparams && table[i].offset <= nparams - table[i].count,
                "tensor %s outside the vector", table[i].name);
    encode_entry(tab + (size_t)i * ENTRY, &table[i]);
  }
  uint64_t tbytes = (uint64_t)ntensors * ENTRY, abytes = nparams * 4;
  uint64_t payload = tbytes + 3 * abytes;
  uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
  crc = crc_update(crc, tab, tbytes);
  crc = crc_update(crc, params, abytes);
  crc = crc_update(crc, m, abytes);
  crc = crc_update(crc, v, abytes);
  uint8_t h[HDR];
  encode_header(h, st, ntensors, nparams, payload, crc);

  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  vklm_status rc = VKLM_ERROR_IO;
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
    free(tab);
    return VKLM_ERROR_IO;
  }
  int bad = write_all(f, h, HDR) || write_all(f, tab, tbytes) || write_all(f, params, abytes) ||
            write_all(f, m, abytes) || write_all(f, v, abytes) || fflush(f) != 0 ||
            fsync(fileno(f)) != 0;
  int e = errno;
  if (fclose(f) != 0 && !bad) {
    bad = 1;
    e = errno;
  }
  free(tab);
  if (bad) {
    snprintf(err, errlen, "cannot write '%s' (%llu bytes): %s", tmp,
             (unsigned long long)(HDR + payload), strerror(e));
    unlink(tmp);
    return rc;
  }
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    unlink(tmp);
    return rc;
  }
  /* The rename is durable once the directory is synced. */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return VKLM_OK;
}

static int read_all(FILE *f, void *p, uint64_t n) {
  uint8_t *b = p;
  while (n > 0) {
    size_t k = n > (1u << 28) ? (1u << 28) : (size_t)n;
    if (fread(b, 1, k, f) != k) return -1;
    b += k;
    n -= k;
  }
  return 0;
}

int vklm_ckpt_sniff(const char *path) {
  FILE *f = fopen(path, "rb");
  char m[8] = {0};
  int ok = f && fread(m, 1, 8, f) == 8 && !memcmp(m, VKLM_CKPT_MAGIC, 8);
  if (f) fclose(f);
  return ok;
}

void vklm_ckpt_free(vklm_ckpt *c) {
  if (!c) return;
  free(c->table);
  free(c->params);
  free(c->m);
  free(c->v);
  free(c);
}

vklm_status vklm_ckpt_read(const char *path, int with_moments, vklm_ckpt **out, char *err,
                           size_t errlen) {
  VKLM_ASSERT(host_le(), "checkpoints assume a little-endian host");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open checkpoint '%s': %s", path, strerror(errno));
    return VKLM_ERROR_IO;
  }
  struct stat sb;
  fstat(fileno(f), &sb);
  uint64_t size = (uint64_t)sb.st_size;
  uint8_t h[HDR];
  vklm_ckpt *c = NULL;
  vklm_status rc = VKLM_ERROR_INVALID;
  if (size < HDR || read_all(f, h, HDR) != 0) {
    snprintf(err, errlen, "'%s' is not a vklm checkpoint: %llu bytes, shorter than the %u-byte "
             "header", path, (unsigned long long)size, HDR);
    goto done;
  }
  if (memcmp(h, VKLM_CKPT_MAGIC, 8) != 0) {
    snprintf(err, errlen, "'%s' is not a vklm checkpoint (bad magic)", path);
    goto done;
  }
  uint32_t version = get32(h + 8);
  if (version < 1 || version > VKLM_CKPT_VERSION || get32(h + 12) != HDR) {
    snprintf(err, errlen, "checkpoint '%s' has version %u (header %u bytes); this vklm reads "
             "versions 1 to %u", path, version, get32(h + 12), VKLM_CKPT_VERSION);
    goto done;
  }
  uint32_t hcrc = get32(h + 220);
  uint8_t h0[HDR];
  memcpy(h0, h, HDR);
  put32(h0 + 220, 0);
  if ((uint32_t)crc32(0L, h0, HDR) != hcrc) {
    snprintf(err, errlen, "checkpoint '%s' is corrupt: header CRC mismatch", path);
    goto done;
  }
  uint32_t ntensors = get32(h + 184);
  uint64_t nparams = get64(h + 192), tbytes = get64(h + 200), payload = get64(h + 208);
  uint32_t pcrc = get32(h + 216);
  uint32_t arch = get32(h + 16), obj = get32(h + 20), order = version >= 2 ? get32(h + 224) : 0;
  if (arch > VKLM_ARCH_LLAMA || obj > VKLM_OBJ_MLM || order > VKLM_DATA_SHUFFLED) {
    snprintf(err, errlen, "checkpoint '%s' is corrupt: unknown architecture %u, objective %u or "
             "data order %u", path, arch, obj, order);
    goto done;
  }
  if (tbytes != (uint64_t)ntensors * ENTRY || nparams > (1ull << 40) ||
      payload != tbytes + 3 * nparams * 4) {
    snprintf(err, errlen, "checkpoint '%s' is corrupt: inconsistent sizes", path);
    goto done;
  }
  /* What the CRCs cannot vouch for (anyone can recompute them): the model config must be valid
   * and within bounds, and imply exactly the file's tensor and parameter counts (with or without
   * the two tensors of a scalar head), before anything is allocated. */
  vklm_ckpt_state hs;
  decode_header(h, version, &hs);
  char why[768];
  {
    int e;
    float S = hs.loss_scale;
    if ((hs.precision != VKLM_DTYPE_F32 && hs.precision != VKLM_DTYPE_F16 &&
         hs.precision != VKLM_DTYPE_BF16) ||
        !(S > 0.0f) || !isfinite(S) || frexpf(S, &e) != 0.5f ||
        (hs.precision != VKLM_DTYPE_F16 && S != 1.0f) || hs.skipped > hs.step) {
      snprintf(err, errlen, "checkpoint '%s' is corrupt: precision %u, loss scale %g, %u "
               "skipped steps of %llu", path, (unsigned)hs.precision, (double)S, hs.skipped,
               (unsigned long long)hs.step);
      goto done;
    }
  }
  if (vklm_model_config_check(&hs.model, why, sizeof why) != VKLM_OK) {
    snprintf(err, errlen, "checkpoint '%s' is corrupt: %s", path, why);
    goto done;
  }
  {
    vklm_model_config c0 = hs.model, c1 = hs.model;
    c0.scalar_head = 0;
    c1.scalar_head = 1;
    uint32_t n0 = 0, n1 = 0;
    uint64_t p0 = vklm_model_table(&c0, NULL, NULL, NULL, &n0);
    uint64_t p1 = vklm_model_table(&c1, NULL, NULL, NULL, &n1);
    if (!((ntensors == n0 && nparams == p0) || (ntensors == n1 && nparams == p1))) {
      snprintf(err, errlen, "checkpoint '%s' is corrupt: it holds %u tensors and %llu parameters, "
               "its model config (%s, V %u, ctx %u, L %u, NH %u, NKV %u, C %u, F %u, tied %d) "
               "has %u tensors and %llu parameters (%u and %llu with a scalar head)", path,
               ntensors, (unsigned long long)nparams, arch ? "llama" : "gpt2",
               hs.model.vocab_size, hs.model.max_seq, hs.model.n_layer, hs.model.n_head,
               hs.model.n_kv_head, hs.model.n_embd, hs.model.ffn_hidden,
               hs.model.tie_embeddings, n0, (unsigned long long)p0, n1,
               (unsigned long long)p1);
      goto done;
    }
  }
  if (size != HDR + payload) {
    snprintf(err, errlen, "checkpoint '%s' is truncated or has trailing bytes: %llu bytes, the "
             "header promises %llu", path, (unsigned long long)size,
             (unsigned long long)(HDR + payload));
    goto done;
  }
  c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "out of host memory reading '%s'", path);
    rc = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    goto done;
  }
  decode_header(h, version, &c->st);
  c->ntensors = ntensors;
  c->nparams = nparams;
  uint8_t *tab = malloc(tbytes ? tbytes : 1);
  c->table = calloc(ntensors ? ntensors : 1, sizeof *c->table);
  c->params = malloc(nparams * 4 + 4);
  float *mv = malloc(nparams * 4 + 4); /* m, then v, read through the same scratch if unwanted */
  float *vv = with_moments ? malloc(nparams * 4 + 4) : mv;
  if (!tab || !c->table || !c->params || !mv || !vv) {
    free(tab);
    free(mv);
    if (vv != mv) free(vv);
    snprintf(err, errlen, "out of host memory reading '%s'", path);
    rc = VKLM_ERROR_OUT_OF_HOST_MEMORY;
    goto done;
  }
  uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
  int bad = read_all(f, tab, tbytes);
  crc = crc_update(crc, tab, tbytes);
  bad = bad || read_all(f, c->params, nparams * 4);
  crc = crc_update(crc, c->params, nparams * 4);
  bad = bad || read_all(f, mv, nparams * 4);
  crc = crc_update(crc, mv, nparams * 4);
  bad = bad || read_all(f, vv, nparams * 4);
  crc = crc_update(crc, vv, nparams * 4);
  for (uint32_t i = 0; i < ntensors; i++) decode_entry(tab + (size_t)i * ENTRY, &c->table[i]);
  vklm_model_config_from_table(&c->st.model, c->table, ntensors); /* the scalar head */
  free(tab);
  if (with_moments) {
    c->m = mv;
    c->v = vv;
  } else {
    free(mv);
  }
  if (bad) {
    snprintf(err, errlen, "cannot read checkpoint '%s'", path);
    rc = VKLM_ERROR_IO;
    goto done;
  }
  if (crc != pcrc) {
    snprintf(err, errlen, "checkpoint '%s' is corrupt: payload CRC32 %08x, the header says %08x",
             path, crc, pcrc);
    goto done;
  }
  /* The table must be the config's own, entry by entry (names, shapes, offsets, counts; each
   * shape's product its count, each tensor inside the parameters): every consumer (load, export,
   * generate) relies on it. */
  if (vklm_model_table_check(&c->st.model, c->table, ntensors, nparams, why, sizeof why) !=
      VKLM_OK) {
    snprintf(err, errlen, "checkpoint '%s' is corrupt: its parameter table does not match its "
             "model config: %s", path, why);
    goto done;
  }
  rc = VKLM_OK;
done:
  fclose(f);
  if (rc == VKLM_OK) *out = c;
  else vklm_ckpt_free(c);
  return rc;
}

vklm_status vklm_ckpt_save_model(const char *path, vklm_model *m, const vklm_ckpt_state *st,
                                 char *err, size_t errlen) {
  uint64_t n = vklm_model_num_params(m);
  uint32_t nt = vklm_model_param_count(m);
  vklm_param_info *tab = malloc((nt ? nt : 1) * sizeof *tab);
  float *p = malloc(n * 4 + 4), *mm = malloc(n * 4 + 4), *vv = malloc(n * 4 + 4);
  vklm_status rc = VKLM_ERROR_OUT_OF_HOST_MEMORY;
  if (!tab || !p || !mm || !vv) {
    snprintf(err, errlen, "out of host memory for a checkpoint of %llu parameters",
             (unsigned long long)n);
    goto done;
  }
  for (uint32_t i = 0; i < nt; i++) tab[i] = *vklm_model_param(m, i);
  if ((rc = vklm_model_get_params(m, p)) != VKLM_OK ||
      (rc = vklm_model_get_moments(m, mm, vv)) != VKLM_OK) {
    snprintf(err, errlen, "cannot download the parameters for the checkpoint");
    goto done;
  }
  rc = vklm_ckpt_write(path, st, tab, nt, p, mm, vv, n, err, errlen);
done:
  free(tab);
  free(p);
  free(mm);
  free(vv);
  return rc;
}

vklm_status vklm_ckpt_load_model(const vklm_ckpt *c, vklm_model *m, char *err, size_t errlen) {
  uint32_t nt = vklm_model_param_count(m);
  if (c->nparams != vklm_model_num_params(m) || c->ntensors != nt) {
    snprintf(err, errlen, "the checkpoint has %u tensors / %llu parameters, the model %u / %llu",
             c->ntensors, (unsigned long long)c->nparams, nt,
             (unsigned long long)vklm_model_num_params(m));
    return VKLM_ERROR_INVALID;
  }
  for (uint32_t i = 0; i < nt; i++) {
    const vklm_param_info *a = &c->table[i], *b = vklm_model_param(m, i);
    int same = !strcmp(a->name, b->name) && a->ndim == b->ndim && a->offset == b->offset &&
               a->count == b->count;
    for (uint32_t d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
    if (!same) {
      snprintf(err, errlen, "checkpoint tensor %u ('%s') does not match the model's ('%s')", i,
               a->name, b->name);
      return VKLM_ERROR_INVALID;
    }
  }
  vklm_status st = vklm_model_set_params(m, c->params);
  if (st == VKLM_OK && c->m) st = vklm_model_set_moments(m, c->m, c->v);
  if (st != VKLM_OK) snprintf(err, errlen, "cannot upload the checkpoint's parameters");
  return st;
}

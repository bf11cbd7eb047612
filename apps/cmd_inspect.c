/* vklm inspect: a GGUF or safetensors file's metadata and tensor table (text or --json), one
 * tensor dumped as raw little-endian values (fp32, or converted with --dump-as), and
 * --write-test-gguf, which writes the fixed GGUF file tests/test_formats_py.py checks with PyPI
 * gguf's reader. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flags.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

/* ---- the fixed test file: tests/test_formats_py.py mirrors every value here ---- */
/* Values in [-2, 2) that are exact in fp32: a 32-bit LCG's top 24 bits over 2^22. */
static void lcg_fill(float *x, size_t n, uint32_t seed) {
  uint32_t s = seed;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((int32_t)(s >> 8) - (1 << 23)) / (float)(1 << 22);
  }
}

static int write_test_gguf(const char *out) {
  static const char *strs[] = {"a", "", "tok\xc3\xa9n", "<|eot|>"};
  static const uint8_t au8[] = {0, 1, 255};
  static const int32_t ai32[] = {-1, 0, 7, 2147483647};
  static const float af32[] = {0.5f, -2.25f, 1e-3f};
  static const uint8_t abool[] = {1, 0, 1};
  static const int64_t ai64[] = {INT64_MIN, -5, INT64_MAX};
  static const double af64[] = {0.1, -1e300};
  static const uint16_t au16[] = {65535, 3};
  /* rounding ties: Q8_0 with max 127 (d = 1) and Q4_0 with max -8 (d = 1), then a zero block */
  static const float tie8[32] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -126.5f, 3};
  static const float tie4[32] = {-8, 2.5f, -2.5f, 0.5f, -0.5f, 7.5f, -7.5f, 3.5f, -3.5f, 1, 6.5f};
  static const struct {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[2];
    uint32_t seed; /* 0: the tie data above, then zeros */
  } ts[] = {
      {"token_embd.weight", VKLM_GGML_TYPE_F32, 2, {64, 5}, 1},
      {"blk.0.attn_q.weight", VKLM_GGML_TYPE_F16, 2, {32, 3}, 2},
      {"blk.0.ffn_up.weight", VKLM_GGML_TYPE_Q8_0, 2, {96, 4}, 3},
      {"blk.0.ffn_down.weight", VKLM_GGML_TYPE_Q4_0, 2, {64, 6}, 4},
      {"blk.0.attn_k.weight", VKLM_GGML_TYPE_BF16, 2, {16, 2}, 5},
      {"output_norm.weight", VKLM_GGML_TYPE_F32, 1, {7, 1}, 6},
      {"ties.q8_0", VKLM_GGML_TYPE_Q8_0, 2, {32, 2}, 0},
      {"ties.q4_0", VKLM_GGML_TYPE_Q4_0, 2, {32, 2}, 0},
  };
  vklm_gguf_writer *w;
  if (vklm_gguf_writer_create(0, &w)) return 1;
  int bad = vklm_gguf_writer_add_str(w, "general.architecture", "vklm-test") ||
            vklm_gguf_writer_add_str(w, "general.name", "tiny \xc3\xbc" "n\xc3\xaf" "code \xe2\x9c\x93") ||
            vklm_gguf_writer_add_u8(w, "test.u8", 200) || vklm_gguf_writer_add_i8(w, "test.i8", -100) ||
            vklm_gguf_writer_add_u16(w, "test.u16", 60000) ||
            vklm_gguf_writer_add_i16(w, "test.i16", -30000) ||
            vklm_gguf_writer_add_u32(w, "test.u32", 4000000000u) ||
            vklm_gguf_writer_add_i32(w, "test.i32", -2000000000) ||
            vklm_gguf_writer_add_u64(w, "test.u64", 9223372036854775813ull) ||
            vklm_gguf_writer_add_i64(w, "test.i64", -4611686018427387907ll) ||
            vklm_gguf_writer_add_f32(w, "test.f32", 3.14159274f) ||
            vklm_gguf_writer_add_f64(w, "test.f64", 2.718281828459045) ||
            vklm_gguf_writer_add_bool(w, "test.bool", 1) ||
            vklm_gguf_writer_add_str(w, "test.str", "hello") ||
            vklm_gguf_writer_add_array(w, "test.arr.u8", VKLM_GGUF_TYPE_UINT8, au8, 3) ||
            vklm_gguf_writer_add_array(w, "test.arr.i32", VKLM_GGUF_TYPE_INT32, ai32, 4) ||
            vklm_gguf_writer_add_array(w, "test.arr.f32", VKLM_GGUF_TYPE_FLOAT32, af32, 3) ||
            vklm_gguf_writer_add_array(w, "test.arr.bool", VKLM_GGUF_TYPE_BOOL, abool, 3) ||
            vklm_gguf_writer_add_array(w, "test.arr.i64", VKLM_GGUF_TYPE_INT64, ai64, 3) ||
            vklm_gguf_writer_add_array(w, "test.arr.f64", VKLM_GGUF_TYPE_FLOAT64, af64, 2) ||
            vklm_gguf_writer_add_array(w, "test.arr.u16", VKLM_GGUF_TYPE_UINT16, au16, 2) ||
            vklm_gguf_writer_add_array(w, "test.arr.empty", VKLM_GGUF_TYPE_INT32, NULL, 0) ||
            vklm_gguf_writer_add_array_str(w, "test.arr.str", strs, 4);
  float buf[96 * 6];
  for (size_t i = 0; !bad && i < sizeof ts / sizeof ts[0]; i++) {
    size_t n = (size_t)(ts[i].ne[0] * ts[i].ne[1]);
    if (ts[i].seed) {
      lcg_fill(buf, n, ts[i].seed);
    } else {
      memset(buf, 0, n * sizeof *buf);
      memcpy(buf, ts[i].type == VKLM_GGML_TYPE_Q8_0 ? tie8 : tie4, sizeof tie8);
    }
    bad = vklm_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, buf);
  }
  char err[512];
  if (bad) {
    vklm_gguf_writer_destroy(w);
    fprintf(stderr, "vklm inspect: building the test file failed\n");
    return 1;
  }
  if (vklm_gguf_writer_finish(w, out, err, sizeof err)) {
    fprintf(stderr, "vklm inspect: %s\n", err);
    return 1;
  }
  return 0;
}

/* ---- printing ---- */
/* A JSON node holding the number's exact text (integers beyond 2^53, floats round-trip). */
static cJSON *raw_u(uint64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%" PRIu64, v);
  return cJSON_CreateRaw(b);
}
static cJSON *raw_i(int64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%" PRId64, v);
  return cJSON_CreateRaw(b);
}
static cJSON *raw_f(double v, int f32) {
  char b[40];
  if (v != v) return cJSON_CreateRaw("NaN");
  if (v > 1e308 * 10) return cJSON_CreateRaw("Infinity");
  if (v < -1e308 * 10) return cJSON_CreateRaw("-Infinity");
  snprintf(b, sizeof b, f32 ? "%.9g" : "%.17g", v);
  return cJSON_CreateRaw(b);
}
static cJSON *str_n(const char *s, uint64_t len) { /* a view: NUL-terminated copy */
  char *c = malloc((size_t)len + 1);
  if (!c) return cJSON_CreateNull();
  memcpy(c, s, (size_t)len);
  c[len] = 0;
  cJSON *j = cJSON_CreateString(c);
  free(c);
  return j;
}

/* One scalar (type t) of a value or array element as JSON. */
static cJSON *scalar_json(uint32_t t, const vklm_gguf_value *v) {
  switch (t) {
  case VKLM_GGUF_TYPE_BOOL: return cJSON_CreateBool(v->u != 0);
  case VKLM_GGUF_TYPE_FLOAT32: return raw_f(v->f, 1);
  case VKLM_GGUF_TYPE_FLOAT64: return raw_f(v->f, 0);
  case VKLM_GGUF_TYPE_INT8: case VKLM_GGUF_TYPE_INT16: case VKLM_GGUF_TYPE_INT32:
  case VKLM_GGUF_TYPE_INT64: return raw_i(v->i);
  default: return raw_u(v->u);
  }
}

static cJSON *elem_json(const vklm_gguf_array *a, uint64_t i) {
  if (a->type == VKLM_GGUF_TYPE_STRING) {
    const char *s;
    uint64_t len;
    vklm_gguf_array_str(a, i, &s, &len);
    return str_n(s, len);
  }
  vklm_gguf_value v = {0};
  int64_t iv;
  double dv;
  if (a->type == VKLM_GGUF_TYPE_UINT64) { /* may exceed INT64_MAX: read the bytes */
    for (int k = 7; k >= 0; k--) v.u = v.u << 8 | a->data[i * 8 + (uint64_t)k];
  } else if (a->type == VKLM_GGUF_TYPE_FLOAT32 || a->type == VKLM_GGUF_TYPE_FLOAT64) {
    vklm_gguf_array_num(a, i, &dv);
    v.f = dv;
  } else {
    vklm_gguf_array_int(a, i, &iv);
    v.i = iv;
    v.u = (uint64_t)iv;
  }
  return scalar_json(a->type, &v);
}

static void print_value_text(const vklm_gguf_value *v) {
  char *s = NULL;
  if (v->type == VKLM_GGUF_TYPE_STRING) {
    printf("\"%.200s\"%s", v->str, v->len > 200 ? "..." : "");
    return;
  }
  if (v->type == VKLM_GGUF_TYPE_ARRAY) {
    printf("[%s x %" PRIu64 "]", vklm_gguf_type_name(v->arr.type), v->arr.n);
    for (uint64_t i = 0; i < v->arr.n && i < 8; i++) {
      cJSON *j = elem_json(&v->arr, i);
      s = cJSON_PrintUnformatted(j);
      printf("%s%s", i ? ", " : " ", s ? s : "?");
      free(s);
      cJSON_Delete(j);
    }
    if (v->arr.n > 8) printf(", ...");
    return;
  }
  cJSON *j = scalar_json(v->type, v);
  s = cJSON_PrintUnformatted(j);
  printf("%s", s ? s : "?");
  free(s);
  cJSON_Delete(j);
}

static int inspect_gguf(const vklm_gguf *g, int json) {
  size_t nkv = vklm_gguf_kv_count(g), nt = vklm_gguf_tensor_count(g);
  if (!json) {
    printf("GGUF version %" PRIu32 ", alignment %" PRIu32 ", data at offset %" PRIu64
           ", %zu metadata entries, %zu tensors\n\nmetadata:\n",
           vklm_gguf_version(g), vklm_gguf_alignment(g), vklm_gguf_data_offset(g), nkv, nt);
    for (size_t i = 0; i < nkv; i++) {
      const char *key;
      vklm_gguf_value v;
      vklm_gguf_kv_get(g, i, &key, &v);
      printf("  %-40s %-8s ", key, vklm_gguf_type_name(v.type));
      print_value_text(&v);
      printf("\n");
    }
    printf("\ntensors (dims in GGUF order, ne[0] = row length):\n  %-40s %-8s %-24s %12s %12s\n",
           "name", "type", "dims", "offset", "bytes");
    for (size_t i = 0; i < nt; i++) {
      const vklm_gguf_tensor *t = vklm_gguf_tensor_get(g, i);
      char dims[96] = "", *p = dims;
      for (uint32_t d = 0; d < t->n_dims; d++)
        p += snprintf(p, (size_t)(dims + sizeof dims - p), "%s%" PRId64, d ? " x " : "", t->ne[d]);
      const char *tn = vklm_ggml_type_name(t->type);
      printf("  %-40s %-8s %-24s %12" PRIu64 " %12" PRIu64 "%s\n", t->name, tn, t->n_dims ? dims : "scalar",
             t->offset, t->nbytes, vklm_ggml_type_supported(t->type) ? "" : "  (unsupported type)");
    }
    return 0;
  }
  cJSON *root = cJSON_CreateObject(), *md = cJSON_AddArrayToObject(root, "metadata");
  cJSON *tj = cJSON_AddArrayToObject(root, "tensors");
  cJSON_AddStringToObject(root, "format", "gguf");
  cJSON_AddItemToObject(root, "version", raw_u(vklm_gguf_version(g)));
  cJSON_AddItemToObject(root, "alignment", raw_u(vklm_gguf_alignment(g)));
  cJSON_AddItemToObject(root, "data_offset", raw_u(vklm_gguf_data_offset(g)));
  for (size_t i = 0; i < nkv; i++) {
    const char *key;
    vklm_gguf_value v;
    vklm_gguf_kv_get(g, i, &key, &v);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "key", key);
    cJSON_AddStringToObject(e, "type", vklm_gguf_type_name(v.type));
    if (v.type == VKLM_GGUF_TYPE_ARRAY) {
      cJSON_AddStringToObject(e, "elem_type", vklm_gguf_type_name(v.arr.type));
      cJSON *a = cJSON_AddArrayToObject(e, "value");
      for (uint64_t k = 0; k < v.arr.n; k++) cJSON_AddItemToArray(a, elem_json(&v.arr, k));
    } else if (v.type == VKLM_GGUF_TYPE_STRING) {
      cJSON_AddItemToObject(e, "value", str_n(v.str, v.len));
    } else {
      cJSON_AddItemToObject(e, "value", scalar_json(v.type, &v));
    }
    cJSON_AddItemToArray(md, e);
  }
  for (size_t i = 0; i < nt; i++) {
    const vklm_gguf_tensor *t = vklm_gguf_tensor_get(g, i);
    cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray();
    cJSON_AddStringToObject(e, "name", t->name);
    cJSON_AddStringToObject(e, "type", vklm_ggml_type_name(t->type));
    cJSON_AddItemToObject(e, "type_id", raw_u(t->type));
    for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(sh, raw_i(t->ne[d]));
    cJSON_AddItemToObject(e, "ne", sh);
    cJSON_AddItemToObject(e, "offset", raw_u(t->offset));
    cJSON_AddItemToObject(e, "nbytes", raw_u(t->nbytes));
    cJSON_AddBoolToObject(e, "supported", vklm_ggml_type_supported(t->type));
    cJSON_AddItemToArray(tj, e);
  }
  char *s = cJSON_Print(root);
  if (s) printf("%s\n", s);
  free(s);
  cJSON_Delete(root);
  return 0;
}

static int inspect_st(const vklm_safetensors *st, int json) {
  size_t nm = vklm_safetensors_meta_count(st), nt = vklm_safetensors_count(st);
  cJSON *root = json ? cJSON_CreateObject() : NULL, *md = NULL, *tj = NULL;
  if (json) {
    cJSON_AddStringToObject(root, "format", "safetensors");
    md = cJSON_AddObjectToObject(root, "metadata");
    tj = cJSON_AddArrayToObject(root, "tensors");
  } else {
    printf("safetensors, %zu metadata entries, %zu tensors\n\nmetadata:\n", nm, nt);
  }
  for (size_t i = 0; i < nm; i++) {
    const char *k, *v;
    vklm_safetensors_meta_get(st, i, &k, &v);
    if (json) cJSON_AddStringToObject(md, k, v);
    else printf("  %-40s \"%.200s\"\n", k, v);
  }
  if (!json) printf("\ntensors (shape row-major, outermost first):\n  %-40s %-8s %-24s %12s %12s\n",
                    "name", "dtype", "shape", "offset", "bytes");
  for (size_t i = 0; i < nt; i++) {
    const vklm_st_tensor *t = vklm_safetensors_get(st, i);
    if (json) {
      cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray();
      cJSON_AddStringToObject(e, "name", t->name);
      cJSON_AddStringToObject(e, "dtype", t->dtype);
      for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(sh, raw_u(t->shape[d]));
      cJSON_AddItemToObject(e, "shape", sh);
      cJSON_AddItemToObject(e, "offset", raw_u(t->offset));
      cJSON_AddItemToObject(e, "nbytes", raw_u(t->nbytes));
      cJSON_AddBoolToObject(e, "supported", t->supported);
      cJSON_AddItemToArray(tj, e);
      continue;
    }
    char dims[128] = "", *p = dims;
    for (uint32_t d = 0; d < t->n_dims && p < dims + sizeof dims - 24; d++)
      p += snprintf(p, (size_t)(dims + sizeof dims - p), "%s%" PRIu64, d ? " x " : "", t->shape[d]);
    printf("  %-40s %-8s %-24s %12" PRIu64 " %12" PRIu64 "%s\n", t->name, t->dtype,
           t->n_dims ? dims : "scalar", t->offset, t->nbytes, t->supported ? "" : "  (unsupported dtype)");
  }
  if (json) {
    char *s = cJSON_Print(root);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(root);
  }
  return 0;
}

/* Writes n fp32 values as `as` (a ggml type) to stdout. */
static int dump(const float *x, size_t n, uint32_t as) {
  int64_t bytes = vklm_ggml_row_bytes(as, (int64_t)n);
  if (bytes < 0) {
    fprintf(stderr, "vklm inspect: %zu elements are not a whole number of %s blocks\n", n,
            vklm_ggml_type_name(as));
    return 1;
  }
  void *out = malloc(bytes ? (size_t)bytes : 1);
  if (!out || vklm_ggml_from_f32(as, out, x, n)) {
    fprintf(stderr, "vklm inspect: cannot convert to %s (out of memory or a non-finite value)\n",
            vklm_ggml_type_name(as));
    free(out);
    return 1;
  }
  int rc = fwrite(out, 1, (size_t)bytes, stdout) == (size_t)bytes && fflush(stdout) == 0 ? 0 : 1;
  free(out);
  return rc;
}

int cmd_inspect(int argc, char **argv) {
  const char *file = NULL, *tensor = NULL, *write_test = NULL;
  int json = 0, do_dump = 0;
  uint32_t as = VKLM_GGML_TYPE_F32;
  int dump_as = 0;
  const app_flag flags[] = {
      AF_BOOL("--json", &json, "the metadata and tensor table as JSON"),
      AF_STRING("--tensor", NULL, &tensor, "NAME", "the tensor --dump writes"),
      AF_BOOL("--dump", &do_dump,
              "the tensor, converted to fp32 (then to the --dump-as type), raw\n"
              "little-endian to stdout"),
      AF_FLAG("--dump-as", NULL, AF_CHOICE, &dump_as, 0, 0, "f32|f16|bf16|q8_0|q4_0",
              "--dump's type (f32)"),
      AF_STRING("--write-test-gguf", NULL, &write_test, "OUT",
                "write the fixed test file (every metadata type; F32, F16, BF16,\n"
                "Q8_0, Q4_0 tensors)"),
      AF_LAST};
  const app_command c = {"inspect", "inspect FILE [--json] | FILE --tensor NAME --dump [--dump-as T]"
                         " | --write-test-gguf OUT",
                         "Metadata and tensor table of a GGUF or safetensors file.", flags, 0, 1, 0};
  const char *pos[1] = {NULL};
  int npos = 0, pr = app_flags_parse(&c, argc, argv, NULL, pos, &npos);
  if (pr) return pr == 1 ? 0 : pr;
  file = pos[0];
  static const uint32_t types[] = {VKLM_GGML_TYPE_F32, VKLM_GGML_TYPE_F16, VKLM_GGML_TYPE_BF16,
                                   VKLM_GGML_TYPE_Q8_0, VKLM_GGML_TYPE_Q4_0};
  as = types[dump_as];
  if (write_test) return write_test_gguf(write_test);
  if (!file || do_dump != (tensor != NULL)) {
    return app_flags_missing(&c, "give FILE, and --tensor NAME with --dump");
  }
  FILE *f = fopen(file, "rb");
  char magic[4] = {0}, err[768];
  if (!f) {
    perror(file);
    return 1;
  }
  size_t got = fread(magic, 1, 4, f);
  fclose(f);
  int is_gguf = got == 4 && !memcmp(magic, "GGUF", 4), rc = 1;
  size_t fl = strlen(file);
  if (!is_gguf && fl > 5 && !strcmp(file + fl - 5, ".gguf")) { /* not safetensors' errors */
    fprintf(stderr, "vklm inspect: %s: not a GGUF file (it does not start with \"GGUF\")\n", file);
    return 1;
  }
  vklm_gguf *g = NULL;
  vklm_safetensors *st = NULL;
  if (is_gguf ? vklm_gguf_open(file, &g, err, sizeof err)
              : vklm_safetensors_open(file, &st, err, sizeof err)) {
    fprintf(stderr, "vklm inspect: %s\n", err);
    return 1;
  }
  if (!do_dump) {
    rc = g ? inspect_gguf(g, json) : inspect_st(st, json);
  } else {
    const vklm_gguf_tensor *gt = g ? vklm_gguf_tensor_find(g, tensor) : NULL;
    const vklm_st_tensor *stt = st ? vklm_safetensors_find(st, tensor) : NULL;
    uint64_t n = gt ? (uint64_t)gt->nelem : stt ? stt->nelem : 0;
    float *x = (gt || stt) ? malloc(n ? (size_t)n * sizeof *x : 1) : NULL;
    if (!gt && !stt) {
      fprintf(stderr, "vklm inspect: %s: no tensor named '%s'\n", file, tensor);
    } else if (!x) {
      fprintf(stderr, "vklm inspect: out of memory for %" PRIu64 " floats\n", n);
    } else if (gt ? vklm_gguf_tensor_to_f32(gt, x, err, sizeof err)
                  : vklm_safetensors_to_f32(stt, x, err, sizeof err)) {
      fprintf(stderr, "vklm inspect: %s\n", err);
    } else {
      rc = dump(x, (size_t)n, as);
    }
    free(x);
  }
  vklm_gguf_close(g);
  vklm_safetensors_close(st);
  return rc;
}

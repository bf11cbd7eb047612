/* test_model_load: engine/formats/model_load (no GPU). For GPT-2 and Llama tiny configs with random
 * parameters: vklm_export_gguf (F32, F16, Q8_0, Q4_0 linear weights) then vklm_model_load
 * (a) with keep_quant = 0: every tensor equals the exported values after the GGUF's own
 *     quantization round trip (vklm_ggml_from_f32 + vklm_ggml_to_f32), bit-exact, the Llama Q/K
 *     permutation undone;
 * (b) with keep_quant = 1: linear weights come back in their GGUF type (ffn_down of llama-tiny,
 *     row length 172, falls back to F16 in a quantized export), and dequantizing the raw bytes
 *     gives (a) bit-exactly; norms and embeddings are F32.
 * Also the RoPE row maps are inverse permutations of each head. Python-side tests against tools
 * vklm did not write are in test_import.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/hf_names.h"
#include "formats/model_load.h"
#include "model/model_params.h"

static int fails = 0;
#define CHECK(c, ...)                                                                              \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fails++;                                                                                     \
      printf("  FAIL ");                                                                           \
    } else                                                                                         \
      printf("  ok   ");                                                                           \
    printf(__VA_ARGS__);                                                                           \
    printf("\n");                                                                                  \
  } while (0)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int is_linear(const vklm_param_info *p) {
  return p->ndim == 2 && strcmp(p->name, "wte.weight") && strcmp(p->name, "wpe.weight");
}

static void run_case(const char *preset, uint32_t type, const char *tname) {
  vklm_model_config cfg;
  vklm_model_config_preset(preset, &cfg);
  uint32_t nt = 0, tmax = vklm_model_table_max(&cfg);
  vklm_param_info *tab = calloc(tmax, sizeof *tab);
  uint8_t *init = malloc(tmax), *ids = malloc(tmax);
  uint64_t np = vklm_model_table(&cfg, tab, init, ids, &nt);
  float *p = malloc(np * 4), *want = malloc(np * 4), *got = malloc(np * 4);
  for (uint64_t i = 0; i < np; i++) p[i] = 0.1f * frand();
  /* what the file holds: each tensor through its GGUF type */
  for (uint32_t i = 0; i < nt; i++) {
    const vklm_param_info *t = &tab[i];
    uint32_t ty = VKLM_GGML_TYPE_F32;
    if (is_linear(t)) {
      ty = type;
      if ((ty == VKLM_GGML_TYPE_Q8_0 || ty == VKLM_GGML_TYPE_Q4_0) && t->shape[1] % 32)
        ty = VKLM_GGML_TYPE_F16;
    }
    int64_t rb = vklm_ggml_row_bytes(ty, (int64_t)t->count);
    uint8_t *tmp = malloc((size_t)rb);
    vklm_ggml_from_f32(ty, tmp, p + t->offset, t->count);
    vklm_ggml_to_f32(ty, want + t->offset, tmp, t->count);
    free(tmp);
  }
  char path[256], err[1024];
  snprintf(path, sizeof path, "/tmp/vklm_test_import_%d_%s_%s.gguf", (int)getpid(), preset, tname);
  vklm_status st = vklm_export_gguf(path, &cfg, tab, nt, p, type, NULL, err, sizeof err);
  CHECK(st == VKLM_OK, "%s %s: export (%s)", preset, tname, st == VKLM_OK ? "ok" : err);
  for (int keep = 0; keep <= 1 && st == VKLM_OK; keep++) {
    vklm_loaded_model *m = NULL;
    st = vklm_model_load(path, keep, &m, err, sizeof err);
    CHECK(st == VKLM_OK, "%s %s: load keep_quant=%d (%s)", preset, tname, keep,
          st == VKLM_OK ? "ok" : err);
    if (st != VKLM_OK) break;
    int same_cfg = m->cfg.arch == cfg.arch && m->cfg.vocab_size == cfg.vocab_size &&
                   m->cfg.n_layer == cfg.n_layer && m->cfg.n_kv_head == cfg.n_kv_head &&
                   m->cfg.ffn_hidden == cfg.ffn_hidden && m->cfg.tie_embeddings == cfg.tie_embeddings &&
                   m->cfg.max_seq == cfg.max_seq && m->nparams == np && m->ntensors == nt;
    CHECK(same_cfg, "%s %s: hyperparameters and table read back", preset, tname);
    int types_ok = 1, kept = 0;
    for (uint32_t i = 0; i < nt && same_cfg; i++) {
      vklm_dtype wt = VKLM_DTYPE_F32;
      if (keep && is_linear(&tab[i]) && type != VKLM_GGML_TYPE_F32) {
        uint32_t ty = type;
        if ((ty == VKLM_GGML_TYPE_Q8_0 || ty == VKLM_GGML_TYPE_Q4_0) && tab[i].shape[1] % 32)
          ty = VKLM_GGML_TYPE_F16;
        vklm_dtype_from_ggml(ty, &wt);
      }
      types_ok &= m->t[i].type == wt;
      kept += m->t[i].type != VKLM_DTYPE_F32;
    }
    CHECK(types_ok, "%s %s keep_quant=%d: tensor types as expected (%d kept raw)", preset, tname,
          keep, kept);
    double worst = 0;
    if (same_cfg && vklm_loaded_model_params(m, got, err, sizeof err) == VKLM_OK)
      for (uint64_t i = 0; i < np; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    else worst = INFINITY;
    CHECK(worst == 0.0, "%s %s keep_quant=%d: max |loaded - file values| = %g", preset, tname, keep,
          worst);
    vklm_loaded_model_free(m);
  }
  remove(path);
  free(tab);
  free(init);
  free(ids);
  free(p);
  free(want);
  free(got);
}

int main(void) {
  int perm_ok = 1;
  for (uint32_t HS = 2; HS <= 128; HS += 2) {
    uint8_t seen[128] = {0};
    for (uint32_t r = 0; r < HS; r++) {
      uint32_t g = vklm_rope_row_to_gguf(r, HS);
      perm_ok &= g < HS && !seen[g] && vklm_rope_row_from_gguf(g, HS) == r;
      if (g < HS) seen[g] = 1;
    }
  }
  /* HS = 8: rotate_half rows (0..3 | 4..7) -> interleaved (0,4,1,5,2,6,3,7) */
  perm_ok &= vklm_rope_row_to_gguf(4, 8) == 1 && vklm_rope_row_to_gguf(1, 8) == 2 &&
             vklm_rope_row_from_gguf(7, 8) == 7 && vklm_rope_row_from_gguf(5, 8) == 6;
  CHECK(perm_ok, "RoPE row maps: inverse permutations, HF row i*HS/2+j <-> GGUF row 2j+i");
  const char *presets[] = {"gpt2-tiny", "llama-tiny"};
  const uint32_t types[] = {VKLM_GGML_TYPE_F32, VKLM_GGML_TYPE_F16, VKLM_GGML_TYPE_Q8_0,
                            VKLM_GGML_TYPE_Q4_0};
  const char *tn[] = {"f32", "f16", "q8_0", "q4_0"};
  for (int a = 0; a < 2; a++)
    for (int t = 0; t < 4; t++) run_case(presets[a], types[t], tn[t]);
  printf("%s\n", fails ? "FAILED" : "all passed");
  return fails ? 1 : 0;
}

/* sample: choosing the next token from a row of logits on the host, llama.cpp's semantics, and
 * the per-row parameters that the GPU sampler (sample_gpu.h) reads.
 *
 * The chain, in llama.cpp's default order: repetition penalty over the distinct tokens of the
 * last repeat_last_n (a positive logit is divided by the penalty, a negative one multiplied),
 * then top-k, top-p (the smallest set of most likely tokens whose probability reaches top_p,
 * probabilities from the penalised logits at temperature 1), min-p (drop tokens whose
 * probability is below min_p times the largest), then the temperature, then a draw from the
 * remaining distribution with a seeded generator (splitmix64: the same seed and logits give the
 * same tokens on every machine). temp <= 0 means greedy: the argmax after the penalty (the
 * lowest id on ties). top_k 0, top_p 1 and min_p 0 disable their step; penalty 1 disables it.
 * Candidates are ordered by (logit descending, id ascending). NaN logits are never chosen (a row
 * of NaN gives id 0); when the largest logit is infinite the argmax is chosen.
 *
 * Randomness: every non-greedy sample (temp > 0) consumes exactly one 64-bit word w of the
 * generator and draws u = (w >> 11) * 2^-53; greedy consumes none. vklm_sampler_fill_row hands
 * that word to the GPU instead, advancing the generator in the same way, so that a sampler used
 * on the host or through the GPU produces the same stream of ids.
 *
 * Owns the recent-token history. The host path runs over a downloaded (V) row; sample_gpu.h
 * samples many rows on the device from the vklm_sample_row records filled here. */
#ifndef VKLM_INFER_SAMPLE_H
#define VKLM_INFER_SAMPLE_H

#include <stdint.h>

#include "vklm_runtime.h"

typedef struct vklm_sampler_params {
  float temp;              /* 0.8; <= 0: greedy */
  uint32_t top_k;          /* 40; 0: off */
  float top_p;             /* 0.95; 1: off */
  float min_p;             /* 0.05; 0: off */
  float repeat_penalty;    /* 1.0 (off) */
  uint32_t repeat_last_n;  /* 64; tokens of history the penalty looks at */
  uint64_t seed;
} vklm_sampler_params;

/* llama.cpp's defaults (seed 0: the caller picks one). */
void vklm_sampler_params_default(vklm_sampler_params *p);
/* Whether p samples greedily with no penalty (then the GPU argmax decides alone). */
int vklm_sampler_is_greedy(const vklm_sampler_params *p);

typedef struct vklm_sampler vklm_sampler;
/* NULL when out of memory. */
vklm_sampler *vklm_sampler_create(const vklm_sampler_params *p, uint32_t V);
void vklm_sampler_destroy(vklm_sampler *s); /* accepts NULL */
/* Adds a token to the history (prompt tokens too, as llama.cpp does). */
void vklm_sampler_accept(vklm_sampler *s, int32_t token);
/* The next token from logits (V); logits are modified (penalised) in place. */
int32_t vklm_sampler_sample(vklm_sampler *s, float *logits);
/* The same with a given uniform u in [0,1) for the draw; the generator does not advance. */
int32_t vklm_sampler_sample_u(vklm_sampler *s, float *logits, double u);
/* The uniform a generator word gives: (w >> 11) * 2^-53. */
double vklm_sampler_uniform(uint64_t w);
/* The probabilities the draw would use (V; zero for removed tokens), for tests: the same chain
 * without the draw. logits are modified in place. */
void vklm_sampler_probs(vklm_sampler *s, float *logits, float *probs);

/* ---- GPU rows ----
 * One row's sampling parameters as the GPU sampler reads them (std430, 64 bytes; the shader
 * shaders/sample_rows_f32.comp declares the same struct). The first fields are the user's; the
 * rest are derived on the host, in double, so that the shader needs no log or division:
 * inv_temp = 1/temp and ln_min_p = ln(min_p), each as a pair of floats hi + lo (lo the rounding
 * remainder of hi), top_p_fx = floor(top_p * 2^32) for 0 <= top_p < 1. */
typedef struct vklm_sample_row {
  float temp;          /* <= 0: greedy (argmax after the penalty) */
  uint32_t top_k;      /* 0: off */
  float top_p;         /* >= 1: off */
  float min_p;         /* <= 0: off */
  float penalty;       /* 1: off */
  uint32_t n_pen;      /* ids in this row's penalty list: distinct, in [0, V) */
  uint32_t u_hi, u_lo; /* the draw's generator word w (u = (w >> 11) * 2^-53); GPU uses u_hi */
  float inv_temp[2];
  float ln_min_p[2];
  uint32_t top_p_fx;
  uint32_t reserved[3];
} vklm_sample_row;

/* A row from parameters (p's seed and repeat_last_n are not used), the generator word w and the
 * penalty list's length. A NaN temp, top_p or min_p is stored as what the chain treats it as
 * (1, 1, 0). */
void vklm_sample_row_set(vklm_sample_row *row, const vklm_sampler_params *p, uint64_t w,
                         uint32_t n_pen);
/* Fills row and its penalty list pen[0..max_pen) (the distinct valid tokens of s's history when
 * the penalty is on) from s, and takes the draw's word from s's generator exactly as
 * vklm_sampler_sample would (none when greedy). VKLM_ERROR_INVALID, with nothing changed, when
 * the list does not fit in max_pen. */
vklm_status vklm_sampler_fill_row(vklm_sampler *s, vklm_sample_row *row, int32_t *pen,
                                  uint32_t max_pen);
/* The host chain on one row with the row's parameters, penalty list and draw word: the id the
 * GPU sampler must choose. logits (V) are penalised in place. */
int32_t vklm_sample_row_host(const vklm_sample_row *row, const int32_t *pen, float *logits,
                             uint32_t V);

#endif

/* sample: choosing the next token from a row of logits on the host, llama.cpp's semantics.
 *
 * The chain, in llama.cpp's default order: repetition penalty over the distinct tokens of the
 * last repeat_last_n (a positive logit is divided by the penalty, a negative one multiplied),
 * then top-k, top-p (the smallest set of most likely tokens whose probability reaches top_p,
 * probabilities from the penalised logits at temperature 1), min-p (drop tokens whose
 * probability is below min_p times the largest), then the temperature, then a draw from the
 * remaining distribution with a seeded generator (splitmix64: the same seed and logits give the
 * same tokens on every machine). temp <= 0 means greedy: the argmax after the penalty (the
 * lowest id on ties). top_k 0, top_p 1 and min_p 0 disable their step; penalty 1 disables it.
 *
 * Owns the recent-token history. Runs on the host over a downloaded (V) row: V floats per token
 * is small next to a forward pass; greedy decoding without a penalty skips the download and uses
 * the GPU argmax (infer.h). */
#ifndef VKLM_INFER_SAMPLE_H
#define VKLM_INFER_SAMPLE_H

#include <stdint.h>

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
/* The probabilities the draw would use (V; zero for removed tokens), for tests: the same chain
 * without the draw. logits are modified in place. */
void vklm_sampler_probs(vklm_sampler *s, float *logits, float *probs);

#endif

/* The learning-rate schedule (linear warmup, cosine decay), the seeded generator and the clock. */
#include <math.h>
#include <time.h>

#include "train/train.h"

float vklm_train_lr(uint32_t step, uint32_t warmup, uint32_t total, float lr, float min_lr) {
  if (warmup > 0 && step <= warmup) return lr * (float)step / (float)warmup;
  if (step >= total || total <= warmup) return step >= total ? min_lr : lr;
  double ratio = (double)(step - warmup) / (double)(total - warmup); /* (0, 1) */
  double coeff = 0.5 * (1.0 + cos(M_PI * ratio));                    /* 1 -> 0 */
  return (float)(min_lr + coeff * (lr - min_lr));
}

uint64_t vklm_train_rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double vklm_train_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

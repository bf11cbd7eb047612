/* The alignment losses on per-sequence scalars (rewards, sequence log-probs) and their
 * derivatives: the ranking loss of a reward model and DPO's sigmoid / IPO / hinge losses. */
#include <math.h>

#include "align/align.h"

/* log sigmoid(x) without overflow: -softplus(-x). */
static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double vklm_rank_loss(const float *r, const int32_t *group, uint32_t k, float margin, float scale,
                      float *dr, uint32_t *pairs, uint32_t *correct) {
  uint32_t np = 0, nc = 0;
  for (uint32_t w = 0; w < k; w++)
    for (uint32_t l = 0; l < k; l++)
      if (group[w] >= 0 && group[l] >= 0 && group[w] < group[l]) np++;
  if (pairs) *pairs = np;
  if (correct) *correct = 0;
  if (!np) return 0;
  double loss = 0;
  for (uint32_t w = 0; w < k; w++)
    for (uint32_t l = 0; l < k; l++) {
      if (group[w] < 0 || group[l] < 0 || group[w] >= group[l]) continue;
      double d = (double)r[w] - (double)r[l] - margin;
      loss -= log_sigmoid(d);
      nc += r[w] > r[l];
      /* d/dd of -log sigmoid(d) = -(1 - sigmoid(d)) = -sigmoid(-d) */
      double g = -sigmoid(-d) / np * scale;
      dr[w] += (float)g;
      dr[l] -= (float)g;
    }
  if (correct) *correct = nc;
  return loss / np;
}

double vklm_dpo_loss(vklm_dpo_kind kind, float beta, double pc, double pr, double rc, double rr,
                     double *dc, double *dr) {
  double h = (pc - rc) - (pr - rr), g, loss;
  switch (kind) {
  case VKLM_DPO_IPO: {
    double t = h - 1.0 / (2.0 * beta);
    loss = t * t;
    g = 2 * t; /* dloss/dh */
    break;
  }
  case VKLM_DPO_HINGE:
    loss = 1 - beta * h > 0 ? 1 - beta * h : 0;
    g = 1 - beta * h > 0 ? -beta : 0;
    break;
  default:
    loss = -log_sigmoid(beta * h);
    g = -beta * sigmoid(-beta * h);
    break;
  }
  *dc = g;
  *dr = -g;
  return loss;
}

const char *vklm_dpo_kind_name(vklm_dpo_kind k) {
  return k == VKLM_DPO_IPO ? "ipo" : k == VKLM_DPO_HINGE ? "hinge" : "sigmoid";
}

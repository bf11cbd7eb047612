/* The training pass in parts, for data-parallel training: the gradient reduction of the layers the
 * backward has finished runs on the host while the device computes the layers below
 * (vklm_model_forward_backward_parts in model.h).
 *
 * The pass is CMD_FB's commands cut at layer boundaries into command buffers submitted together,
 * in order, on the one queue; each ends with the runtime's closing barrier, so each part sees the
 * previous one's writes, and each has its own fence, so the host knows when a part is done. The
 * flat parameter vector lists the embeddings, then the layers in order, then the final norm and
 * the heads (model_params.h), so when the backward has gone down to layer l, the gradients of
 * [start of layer l, n) are final: each part finishes a suffix of the vector, and the parts'
 * ranges come in decreasing order. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_internal.h"

/* At most this many parts: more give a finer overlap and cost a fence and a host wake-up each. */
#define MAX_PARTS 16

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static vklm_status vkfail(vklm_model *m, vklm_status st, const char *what) {
  return vklm_model_fail(m, st, "model: %s failed: %s", what, vklm_context_error(m->ctx));
}

void vklm_model_parts_free(vklm_model *m) {
  for (uint32_t k = m->nparts; k-- > 0;) vklm_cmd_destroy(m->parts ? m->parts[k] : NULL);
  vklm_arena_destroy(m->rb_arena);
  free(m->parts);
  free(m->part_lo);
  free(m->rb);
  m->parts = NULL;
  m->part_lo = NULL;
  m->rb = NULL;
  m->rb_arena = NULL;
  m->nparts = 0;
}

/* The flat offset where layer l's tensors start. */
static uint64_t layer_start(const vklm_model *m, uint32_t l) {
  uint64_t lo = m->nparams;
  for (uint32_t i = 0; i < m->ntensors; i++)
    if (m->info[i].layer == (int)l && m->info[i].offset < lo) lo = m->info[i].offset;
  return lo;
}

/* Host buffers for the gradients the host cannot read where they are. */
static vklm_status readback_create(vklm_model *m) {
  vklm_status st;
  m->rb = calloc(m->nslots, sizeof *m->rb);
  if (!m->rb) return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  for (uint32_t s = 0; s < m->nslots; s++) {
    if (!m->g[s].block || vklm_buffer_host(m->g[s])) continue;
    if (!m->rb_arena && (st = vklm_arena_create_host(m->ctx, 0, &m->rb_arena)) != VKLM_OK)
      return vkfail(m, st, "creating the gradient read-back memory");
    if ((st = vklm_arena_alloc(m->rb_arena, m->g[s].size, &m->rb[s])) != VKLM_OK)
      return vkfail(m, st, "allocating the gradient read-back memory");
  }
  return VKLM_OK;
}

/* Part k's commands end by copying the gradients it finished, [lo, hi), where they are read. */
static vklm_status record_copies(vklm_model *m, vklm_cmd *c, uint64_t lo, uint64_t hi) {
  for (uint32_t s = 0; s < m->nslots; s++)
    if (m->rb[s].block && m->slot_off[s] >= lo && m->slot_off[s] < hi)
      VKLM_MODEL_TRY(m, vklm_cmd_copy(c, m->g[s], m->rb[s], m->g[s].size));
  return VKLM_OK;
}

static vklm_status parts_record(vklm_model *m) {
  vklm_status st;
  uint32_t L = m->cfg.n_layer;
  uint32_t lowest = m->lowest_layer < 0 ? 0 : (uint32_t)m->lowest_layer;
  uint32_t layers = L - lowest;
  /* layer groups: part k covers layers [bound[k+1], bound[k]) */
  uint32_t groups = layers == 0 ? 1 : layers < MAX_PARTS ? layers : MAX_PARTS;
  for (uint32_t i = 0; i < m->ntensors; i++)
    if (m->dtype[i] != VKLM_DTYPE_F32)
      return vklm_model_fail(m, VKLM_ERROR_UNSUPPORTED, "model: %s is held in %s: no fp32 "
                             "gradients to read", m->info[i].name, vklm_dtype_name(m->dtype[i]));
  m->parts = calloc(groups, sizeof *m->parts);
  m->part_lo = calloc(groups, sizeof *m->part_lo);
  if (!m->parts || !m->part_lo)
    return vklm_model_fail(m, VKLM_ERROR_OUT_OF_HOST_MEMORY, "model: out of memory");
  if ((st = readback_create(m)) != VKLM_OK) return st;
  uint64_t prev = m->nparams;
  for (uint32_t k = 0; k < groups; k++) {
    uint32_t hi = L - (uint32_t)((uint64_t)layers * k / groups);
    uint32_t lo = L - (uint32_t)((uint64_t)layers * (k + 1) / groups);
    int last = k + 1 == groups;
    if ((st = vklm_cmd_create(m->ctx, &m->parts[k])) != VKLM_OK)
      return vkfail(m, st, "creating a command buffer");
    m->nparts = k + 1;
    vklm_cmd *c = m->parts[k];
    if ((st = vklm_cmd_begin(c)) != VKLM_OK) return vkfail(m, st, "begin");
    if (k == 0 && ((st = vklm_model_record_forward(m, c)) != VKLM_OK ||
                   (st = vklm_model_record_lm_head(m, c, 1, 0)) != VKLM_OK))
      return st;
    if ((st = vklm_model_record_backward_part(m, c, k == 0, hi, lo,
                                              last && m->lowest_layer < 0)) != VKLM_OK)
      return st;
    /* finished: every layer from lo up and what follows them; the last part finishes the rest
     * (the embeddings, and the gradients of frozen layers, which are zero) */
    m->part_lo[k] = last ? 0 : layer_start(m, lo);
    if ((st = record_copies(m, c, m->part_lo[k], prev)) != VKLM_OK) return st;
    prev = m->part_lo[k];
    if ((st = vklm_cmd_end(c)) != VKLM_OK) return vkfail(m, st, "end");
  }
  return VKLM_OK;
}

/* grads[lo, hi) <- the device's gradients there (zeros for tensors that do not train). */
static void read_range(vklm_model *m, float *grads, uint64_t lo, uint64_t hi) {
  for (uint32_t s = 0; s < m->nslots; s++) {
    uint64_t off = m->slot_off[s];
    if (off < lo || off >= hi) continue;
    size_t bytes = (size_t)m->slot_count[s] * 4;
    const void *src = !m->g[s].block ? NULL
                      : m->rb[s].block ? vklm_buffer_host(m->rb[s])
                                       : vklm_buffer_host(m->g[s]);
    if (src) memcpy(grads + off, src, bytes);
    else memset(grads + off, 0, bytes);
  }
}

vklm_status vklm_model_forward_backward_parts(vklm_model *m, const int32_t *inputs,
                                              const int32_t *targets, float grad_scale,
                                              float *loss, float *grads,
                                              vklm_grads_ready_fn ready, void *user,
                                              vklm_overlap_stats *stats) {
  vklm_status st;
  vklm_overlap_stats sx = {0};
  if ((st = vklm_model_fb_prepare(m, inputs, targets, grad_scale)) != VKLM_OK) return st;
  if (!m->parts && (st = parts_record(m)) != VKLM_OK) {
    vklm_model_parts_free(m);
    return st;
  }
  uint32_t submitted = 0;
  for (; submitted < m->nparts; submitted++)
    if ((st = vklm_cmd_submit(m->parts[submitted])) != VKLM_OK) break;
  uint64_t prev = m->nparams;
  vklm_status rst = VKLM_OK;
  for (uint32_t k = 0; k < submitted; k++) {
    double t0 = now_s();
    vklm_status w = vklm_cmd_wait(m->parts[k]);
    sx.wait_s += now_s() - t0;
    if (w != VKLM_OK && st == VKLM_OK) st = w;
    if (st != VKLM_OK || rst != VKLM_OK) continue; /* wait for the rest, then fail */
    read_range(m, grads, m->part_lo[k], prev);
    sx.parts++;
    if (k + 1 < m->nparts && !vklm_cmd_done(m->parts[m->nparts - 1])) sx.early++;
    t0 = now_s();
    if (ready) rst = ready(user, grads, m->part_lo[k], prev);
    sx.ready_s += now_s() - t0;
    prev = m->part_lo[k];
  }
  if (stats) *stats = sx;
  if (st != VKLM_OK) return vkfail(m, st, "running the training pass");
  if (rst != VKLM_OK) return rst;
  return loss ? vklm_model_read_loss(m, loss) : VKLM_OK;
}

/* AdamW, global gradient norm and clipping (shaders/adamw_update_f32.comp,
 * grad_norm_partial_f32.comp, grad_norm_final_f32.comp, grad_clip_f32.comp), and their
 * multi-tensor forms (adamw_update_multi_f32.comp, grad_norm_partial_multi_f32.comp) with the
 * gradient zeroing. See optim.h. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

typedef struct adamw_push {
  uint32_t n, apply_wd, use_clip;
} adamw_push;
_Static_assert(sizeof(adamw_push) == 12, "adamw_update_f32.comp push constants");

typedef struct norm_partial_push {
  uint32_t n;      /* elements of this tensor */
  uint32_t groups; /* workgroups = partial sums written */
  uint32_t slots;  /* floats of this tensor's scratch slice (groups rounded up; the rest zeroed) */
} norm_partial_push;
_Static_assert(sizeof(norm_partial_push) == 12, "grad_norm_partial_f32.comp push constants");

typedef struct norm_final_push {
  uint32_t P; /* partial sums in the scratch buffer */
  float max_norm;
  uint32_t unscale; /* norm_out[2] holds 1/S (loss scaling) */
} norm_final_push;
_Static_assert(sizeof(norm_final_push) == 12, "grad_norm_final_f32.comp push constants");

typedef struct clip_push {
  uint32_t n;
} clip_push;
_Static_assert(sizeof(clip_push) == 4, "grad_clip_f32.comp push constants");

/* ---- AdamW ----------------------------------------------------------------------------------- */

void vklm_adamw_step_fill(vklm_adamw_step *s, float lr, float beta1, float beta2, float eps,
                          float weight_decay, uint32_t t) {
  VKLM_ASSERT(t >= 1, "adamw: step numbers start at 1 (got %u)", t);
  double bc1 = 1.0 - pow((double)beta1, (double)t), bc2 = 1.0 - pow((double)beta2, (double)t);
  *s = (vklm_adamw_step){
      .lr = lr,
      .beta1 = beta1,
      .beta2 = beta2,
      .eps = eps,
      .weight_decay = weight_decay,
      .decay = (float)(1.0 - (double)lr * (double)weight_decay),
      .one_m_beta1 = (float)(1.0 - (double)beta1),
      .one_m_beta2 = (float)(1.0 - (double)beta2),
      .step_size = (float)((double)lr / bc1),
      .bc2_sqrt = (float)sqrt(bc2),
      .t = t,
  };
}

vklm_status vklm_adamw(vklm_cmd *cmd, vklm_buffer params, vklm_buffer m, vklm_buffer v,
                       vklm_buffer grads, uint32_t n, vklm_buffer step_buf, vklm_buffer clip_buf,
                       int apply_wd) {
  uint64_t bytes = (uint64_t)n * 4;
  VKLM_ASSERT(params.size >= bytes && m.size >= bytes && v.size >= bytes && grads.size >= bytes,
              "adamw: a buffer holds fewer than n = %u floats", n);
  VKLM_ASSERT(step_buf.size >= sizeof(vklm_adamw_step), "adamw: step buffer of %llu bytes < %zu",
              (unsigned long long)step_buf.size, sizeof(vklm_adamw_step));
  int use_clip = clip_buf.size > 0;
  VKLM_ASSERT(!use_clip || clip_buf.size >= 8, "adamw: clip buffer of %llu bytes < 2 floats",
              (unsigned long long)clip_buf.size);
  if (n == 0) return VKLM_OK;
  adamw_push pc = {n, apply_wd ? 1u : 0u, (uint32_t)use_clip};
  /* Without a clip buffer the step buffer stands in at binding 5 (read-only, never read). */
  vklm_buffer bufs[6] = {params, m, v, grads, step_buf, use_clip ? clip_buf : step_buf};
  return vklm_op_dispatch_1d(cmd, "adamw_update_f32", bufs, 6, &pc, sizeof pc, n);
}

void vklm_adamw_ref(float *params, float *m, float *v, const float *grads, uint32_t n,
                    const vklm_adamw_step *s, float clip, int apply_wd) {
  for (uint32_t i = 0; i < n; i++) {
    float g = grads[i] * clip;
    float p = params[i];
    if (apply_wd) p *= s->decay;
    float mm = s->beta1 * m[i] + s->one_m_beta1 * g;
    float vv = s->beta2 * v[i] + s->one_m_beta2 * g * g;
    float denom = sqrtf(vv) / s->bc2_sqrt + s->eps;
    m[i] = mm;
    v[i] = vv;
    params[i] = p - s->step_size * (mm / denom);
  }
}

/* ---- gradient norm --------------------------------------------------------------------------- */

/* Each workgroup of the partial pass covers at least ITEMS elements per thread, and a tensor gets
 * at most MAX_GROUPS partial sums (enough to fill a large GPU; per-thread runs stay short, which
 * keeps the fp32 sums accurate). */
enum { NORM_ITEMS = 16, NORM_MAX_GROUPS = 1024 };

static uint32_t norm_groups(uint32_t n, uint32_t wg) {
  uint64_t g = ((uint64_t)n + (uint64_t)wg * NORM_ITEMS - 1) / ((uint64_t)wg * NORM_ITEMS);
  return (uint32_t)(g < NORM_MAX_GROUPS ? g : NORM_MAX_GROUPS);
}

/* Each tensor's partials start at an aligned offset, so every partial dispatch binds its own
 * disjoint slice (no barriers between them) and the final pass sums the whole prefix. */
static uint32_t norm_slots(const vklm_context *ctx, uint32_t groups) {
  uint32_t a = vklm_buffer_alignment(ctx) / 4;
  if (a == 0) a = 1;
  return (groups + a - 1) / a * a;
}

/* Floats of partial sums for these tensors. */
static uint64_t norm_partials(const vklm_context *ctx, const uint32_t *counts, uint32_t ntensors) {
  uint32_t wg = vklm_op_wg1d(ctx);
  uint64_t total = 0;
  for (uint32_t i = 0; i < ntensors; i++) total += norm_slots(ctx, norm_groups(counts[i], wg));
  return total;
}

/* The scratch layout: partial sums at 0; the multi-tensor tables (TABLE_ENTRY bytes per slot) of
 * the norm at *norm_tab and of AdamW at *adamw_tab, each at an aligned offset. */
enum { TABLE_ENTRY = 32 };
static uint64_t scratch_layout(const vklm_context *ctx, const uint32_t *counts, uint32_t ntensors,
                               uint64_t *norm_tab, uint64_t *adamw_tab) {
  uint64_t a = vklm_buffer_alignment(ctx), tab = (uint64_t)ntensors * TABLE_ENTRY;
  uint64_t part = norm_partials(ctx, counts, ntensors) * 4;
  uint64_t t0 = (part + a - 1) / a * a, t1 = t0 + (tab + a - 1) / a * a;
  if (norm_tab) *norm_tab = t0;
  if (adamw_tab) *adamw_tab = t1;
  return t1 + tab ? t1 + tab : 4;
}

uint64_t vklm_grad_norm_scratch_size(const vklm_context *ctx, const uint32_t *counts,
                                     uint32_t ntensors) {
  return scratch_layout(ctx, counts, ntensors, NULL, NULL);
}

vklm_status vklm_grad_norm(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                           const vklm_buffer *grads, const uint32_t *counts, uint32_t ntensors,
                           float max_norm) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t wg = vklm_op_wg1d(ctx);
  VKLM_ASSERT((wg & (wg - 1)) == 0, "grad norm: workgroup size %u is not a power of two", wg);
  VKLM_ASSERT(norm_out.size >= 8, "grad norm: norm_out of %llu bytes < 2 floats",
              (unsigned long long)norm_out.size);
  uint64_t need = vklm_grad_norm_scratch_size(ctx, counts, ntensors);
  VKLM_ASSERT(scratch.size >= need, "grad norm: scratch of %llu bytes < %llu (vklm_grad_norm_scratch_size)",
              (unsigned long long)scratch.size, (unsigned long long)need);
  vklm_status st;
  uint64_t at = 0; /* floats of scratch used so far */
  for (uint32_t i = 0; i < ntensors; i++) {
    uint32_t n = counts[i];
    if (n == 0) continue;
    VKLM_ASSERT(grads[i].size >= (uint64_t)n * 4, "grad norm: tensor %u has %llu bytes < %u floats", i,
                (unsigned long long)grads[i].size, n);
    uint32_t groups = norm_groups(n, wg), slots = norm_slots(ctx, groups), gx, gy;
    norm_partial_push pc = {n, groups, slots};
    vklm_buffer bufs[2] = {grads[i], vklm_buffer_slice(scratch, at * 4, (uint64_t)slots * 4)};
    vklm_groups_1d(ctx, groups, &gx, &gy);
    st = vklm_op_dispatch(cmd, "grad_norm_partial_f32", &wg, 1, bufs, 2, &pc, sizeof pc, gx, gy, 1);
    if (st != VKLM_OK) return st;
    at += slots;
  }
  norm_final_push pf = {(uint32_t)at, max_norm, 0};
  vklm_buffer bufs[2] = {norm_out, vklm_buffer_slice(scratch, 0, at ? at * 4 : 4)};
  return vklm_op_dispatch(cmd, "grad_norm_final_f32", &wg, 1, bufs, 2, &pf, sizeof pf, 1, 1, 1);
}

vklm_status vklm_grad_clip(vklm_cmd *cmd, vklm_buffer grads, uint32_t n, vklm_buffer norm_out) {
  VKLM_ASSERT(grads.size >= (uint64_t)n * 4, "grad clip: buffer of %llu bytes < %u floats",
              (unsigned long long)grads.size, n);
  VKLM_ASSERT(norm_out.size >= 8, "grad clip: norm_out of %llu bytes < 2 floats",
              (unsigned long long)norm_out.size);
  if (n == 0) return VKLM_OK;
  clip_push pc = {n};
  vklm_buffer bufs[2] = {grads, norm_out};
  return vklm_op_dispatch_1d(cmd, "grad_clip_f32", bufs, 2, &pc, sizeof pc, n);
}

void vklm_grad_norm_ref(float norm_out[2], const float *const *grads, const uint32_t *counts,
                        uint32_t ntensors, float max_norm) {
  double ss = 0;
  for (uint32_t i = 0; i < ntensors; i++)
    for (uint32_t j = 0; j < counts[i]; j++) ss += (double)grads[i][j] * grads[i][j];
  double norm = sqrt(ss), scale = 1;
  if (max_norm > 0) {
    double coef = (double)max_norm / (norm + 1e-6);
    scale = coef >= 1 ? 1 : coef; /* a NaN norm gives a NaN scale, as PyTorch */
  }
  norm_out[0] = (float)norm;
  norm_out[1] = (float)scale;
}

void vklm_grad_clip_ref(float *grads, uint32_t n, const float norm_out[2]) {
  for (uint32_t i = 0; i < n; i++) grads[i] *= norm_out[1];
}

/* ---- multi-tensor forms ---------------------------------------------------------------------- */

/* One table entry (TABLE_ENTRY bytes, mirrored in the multi shaders): element offsets of a slot
 * within the dispatch's bindings, its count, and its first workgroup within the dispatch. */
typedef struct adamw_entry {
  uint32_t p, m, v, g, n, apply_wd, first, pad;
} adamw_entry;
_Static_assert(sizeof(adamw_entry) == TABLE_ENTRY, "adamw_update_multi_f32.comp table entry");
typedef struct norm_entry {
  uint32_t g, n, groups, slots, part, first, pad0, pad1;
} norm_entry;
_Static_assert(sizeof(norm_entry) == TABLE_ENTRY, "grad_norm_partial_multi_f32.comp table entry");

typedef struct multi_push {
  uint32_t first;   /* the dispatch's first table entry */
  uint32_t count;   /* its entries */
  uint32_t groups;  /* its workgroups */
  uint32_t items;   /* AdamW: elements (pairs, with 16-bit copies) per thread */
  uint32_t use_clip; /* 0 none, 1 clip_buf[1], 2 that and skip when clip_buf[0] is not finite */
} multi_push;
_Static_assert(sizeof(multi_push) == 20, "adamw_update_multi_f32.comp push constants");
/* adamw_entry.apply_wd: bit 0 apply_wd, bits 1-2 the 16-bit copy's format (0: none), its word
 * offset in .pad */
typedef struct norm_multi_push {
  uint32_t first, count, groups;
} norm_multi_push;
_Static_assert(sizeof(norm_multi_push) == 12, "grad_norm_partial_multi_f32.comp push constants");

/* AdamW elements per thread: short runs on GPUs (many resident workgroups), longer ones on CPU
 * devices, where each workgroup (and its table search) has a fixed cost: on lavapipe one element
 * per thread ran at half the per-tensor kernel's speed, 8 to 128 at about its speed. Elementwise:
 * any split gives the same bits. */
static uint32_t adamw_items(const vklm_context *ctx) {
  return vklm_context_cpu_kernels(ctx) ? 32 : 4;
}

/* Views of one role of a slot list (grads of a buffer array, or p/m/v/g of vklm_optim_slot). */
typedef struct roles {
  const vklm_buffer *grads;    /* the norm: grads[k] */
  const vklm_optim_slot *slot; /* AdamW: slot[k].p, .m, .v, .g */
} roles;
static vklm_buffer role_buf(const roles *r, uint32_t k, int role) {
  if (r->grads) return r->grads[k];
  const vklm_optim_slot *s = &r->slot[k];
  return role == 0 ? s->p : role == 1 ? s->m : role == 2 ? s->v : role == 3 ? s->g : s->h;
}

/* The range of one block that spans role `role` of slots idx[0..n) (each counts[k] floats): its
 * view, and each slot's element offset within it (off[j] for idx[j]). */
static vklm_buffer span(const roles *r, int role, const uint32_t *idx, uint32_t n,
                        const uint32_t *counts, uint32_t *off) {
  uint64_t lo = UINT64_MAX, hi = 0;
  vklm_block *blk = NULL;
  for (uint32_t j = 0; j < n; j++) {
    vklm_buffer b = role_buf(r, idx[j], role);
    if (!b.block) continue; /* a slot without a 16-bit copy (role 4) */
    uint64_t end = b.offset + (role == 4 ? ((uint64_t)counts[idx[j]] + 1) / 2 : counts[idx[j]]) * 4;
    if (b.offset < lo) lo = b.offset;
    if (end > hi) hi = end;
    blk = b.block;
  }
  if (!blk) { /* no slot has one: nothing is bound for the role */
    for (uint32_t j = 0; j < n; j++) off[j] = 0;
    return (vklm_buffer){0};
  }
  for (uint32_t j = 0; j < n; j++) {
    if (!role_buf(r, idx[j], role).block) {
      off[j] = 0;
      continue;
    }
    uint64_t d = role_buf(r, idx[j], role).offset - lo;
    VKLM_ASSERT(d % 4 == 0 && d / 4 <= UINT32_MAX,
                "optim multi: buffer offset %llu is not a float offset within one binding",
                (unsigned long long)d);
    off[j] = (uint32_t)(d / 4);
  }
  return (vklm_buffer){blk, lo, hi - lo};
}

/* Orders the slots idx[0..n) group by group, a group being the slots whose buffers of roles
 * 0..nroles-1 lie in the same blocks, groups in order of first appearance and slots in their
 * order within a group. start[0..ng] are the groups' bounds; returns ng. tmp: n + n words. */
static uint32_t group_slots(const roles *r, int role0, int nroles, uint32_t *idx, uint32_t n,
                            uint32_t *start, uint32_t *tmp) {
  uint32_t *sorted = tmp, *done = tmp + n, ng = 0, out = 0;
  memset(done, 0, (size_t)n * sizeof *done);
  for (uint32_t j = 0; j < n; j++) {
    if (done[j]) continue;
    start[ng++] = out;
    vklm_block *h = NULL; /* role 4 (16-bit copies, optional per slot): the group's block */
    for (uint32_t k = j; k < n; k++) {
      int same = !done[k];
      for (int q = role0; same && q < role0 + nroles; q++) {
        vklm_block *bk = role_buf(r, idx[k], q).block;
        if (q == 4)
          same = !bk || !h || bk == h;
        else
          same = bk == role_buf(r, idx[j], q).block;
      }
      if (same) {
        sorted[out++] = idx[k], done[k] = 1;
        if (role0 + nroles > 4 && !h) h = role_buf(r, idx[k], 4).block;
      }
    }
  }
  start[ng] = out;
  memcpy(idx, sorted, (size_t)n * sizeof *idx);
  return ng;
}

/* Host memory for the grouping: idx, start, tmp (2n), off and part words, and n table entries. */
typedef struct multi_mem {
  uint32_t *idx, *start, *tmp, *off, *part;
  void *table;
} multi_mem;
static int multi_alloc(multi_mem *mm, uint32_t n) {
  size_t w = 6 * (size_t)n + 1;
  mm->idx = malloc(w * sizeof(uint32_t));
  mm->table = malloc(((size_t)n ? n : 1) * TABLE_ENTRY);
  if (!mm->idx || !mm->table) {
    free(mm->idx);
    free(mm->table);
    return 0;
  }
  mm->start = mm->idx + n;
  mm->tmp = mm->start + n + 1;
  mm->off = mm->tmp + 2 * (size_t)n;
  mm->part = mm->off + n;
  return 1;
}
static void multi_free(multi_mem *mm) {
  free(mm->idx);
  free(mm->table);
}

vklm_status vklm_grad_norm_multi(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                                 const vklm_buffer *grads, const uint32_t *counts,
                                 uint32_t ntensors, float max_norm) {
  return vklm_grad_norm_multi_ex(cmd, norm_out, scratch, grads, counts, ntensors, max_norm, 0);
}

vklm_status vklm_grad_norm_multi_ex(vklm_cmd *cmd, vklm_buffer norm_out, vklm_buffer scratch,
                                    const vklm_buffer *grads, const uint32_t *counts,
                                    uint32_t ntensors, float max_norm, int unscale) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  VKLM_ASSERT(!unscale || norm_out.size >= 12, "grad norm: unscaling reads norm_out[2]: %llu "
              "bytes", (unsigned long long)norm_out.size);
  uint32_t wg = vklm_op_wg1d(ctx), gx, gy;
  VKLM_ASSERT((wg & (wg - 1)) == 0, "grad norm: workgroup size %u is not a power of two", wg);
  VKLM_ASSERT(norm_out.size >= 8, "grad norm: norm_out of %llu bytes < 2 floats",
              (unsigned long long)norm_out.size);
  uint64_t tab_at, need = scratch_layout(ctx, counts, ntensors, &tab_at, NULL);
  VKLM_ASSERT(scratch.size >= need, "grad norm: scratch of %llu bytes < %llu (vklm_grad_norm_scratch_size)",
              (unsigned long long)scratch.size, (unsigned long long)need);
  multi_mem mm;
  if (!multi_alloc(&mm, ntensors)) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  /* vklm_grad_norm's partial-sum layout: tensor i's slice starts at part[i] floats */
  uint32_t n = 0;
  uint64_t at = 0;
  for (uint32_t i = 0; i < ntensors; i++) {
    uint32_t c = counts[i];
    mm.part[i] = (uint32_t)at;
    if (c == 0) continue;
    VKLM_ASSERT(grads[i].size >= (uint64_t)c * 4, "grad norm: tensor %u has %llu bytes < %u floats",
                i, (unsigned long long)grads[i].size, c);
    at += norm_slots(ctx, norm_groups(c, wg));
    mm.idx[n++] = i;
  }
  roles r = {.grads = grads};
  uint32_t ng = group_slots(&r, 0, 1, mm.idx, n, mm.start, mm.tmp);
  norm_entry *tab = mm.table;
  vklm_buffer table = vklm_buffer_slice(scratch, tab_at, (uint64_t)(n ? n : 1) * TABLE_ENTRY);
  vklm_status st = VKLM_OK;
  for (uint32_t g = 0; g < ng && st == VKLM_OK; g++) {
    uint32_t a = mm.start[g], b = mm.start[g + 1], groups = 0, plo = UINT32_MAX, phi = 0;
    vklm_buffer gv = span(&r, 0, mm.idx + a, b - a, counts, mm.off + a);
    for (uint32_t j = a; j < b; j++) {
      uint32_t i = mm.idx[j], ng_i = norm_groups(counts[i], wg), slots = norm_slots(ctx, ng_i);
      if (mm.part[i] < plo) plo = mm.part[i];
      if (mm.part[i] + slots > phi) phi = mm.part[i] + slots;
      tab[j] = (norm_entry){.g = mm.off[j], .n = counts[i], .groups = ng_i, .slots = slots,
                            .part = mm.part[i], .first = groups};
      groups += ng_i;
    }
    for (uint32_t j = a; j < b; j++) tab[j].part -= plo;
    /* every slice starts at a multiple of the alignment, so plo's offset is aligned */
    vklm_buffer bufs[3] = {gv, vklm_buffer_slice(scratch, (uint64_t)plo * 4, (uint64_t)(phi - plo) * 4),
                           table};
    norm_multi_push pc = {a, b - a, groups};
    vklm_groups_1d(ctx, groups, &gx, &gy);
    st = vklm_op_dispatch(cmd, "grad_norm_partial_multi_f32", &wg, 1, bufs, 3, &pc, sizeof pc, gx,
                          gy, 1);
  }
  if (st == VKLM_OK && n) st = vklm_buffer_upload(ctx, scratch, tab_at, tab, (uint64_t)n * TABLE_ENTRY);
  multi_free(&mm);
  if (st != VKLM_OK) return st;
  norm_final_push pf = {(uint32_t)at, max_norm, unscale ? 1u : 0u};
  vklm_buffer bufs[2] = {norm_out, vklm_buffer_slice(scratch, 0, at ? at * 4 : 4)};
  return vklm_op_dispatch(cmd, "grad_norm_final_f32", &wg, 1, bufs, 2, &pf, sizeof pf, 1, 1, 1);
}

vklm_status vklm_adamw_multi(vklm_cmd *cmd, const vklm_optim_slot *slots, uint32_t nslots,
                             vklm_buffer scratch, vklm_buffer step_buf, vklm_buffer clip_buf,
                             uint32_t *dispatches) {
  return vklm_adamw_multi_ex(cmd, slots, nslots, scratch, step_buf, clip_buf, 0, dispatches);
}

vklm_status vklm_adamw_multi_ex(vklm_cmd *cmd, const vklm_optim_slot *slots, uint32_t nslots,
                                vklm_buffer scratch, vklm_buffer step_buf, vklm_buffer clip_buf,
                                int skip_nonfinite, uint32_t *dispatches) {
  vklm_context *ctx = vklm_cmd_context(cmd);
  uint32_t wg = vklm_op_wg1d(ctx), items = adamw_items(ctx), gx, gy;
  if (dispatches) *dispatches = 0;
  VKLM_ASSERT(step_buf.size >= sizeof(vklm_adamw_step), "adamw: step buffer of %llu bytes < %zu",
              (unsigned long long)step_buf.size, sizeof(vklm_adamw_step));
  int use_clip = clip_buf.size > 0;
  VKLM_ASSERT(!use_clip || clip_buf.size >= 8, "adamw: clip buffer of %llu bytes < 2 floats",
              (unsigned long long)clip_buf.size);
  VKLM_ASSERT(!skip_nonfinite || use_clip, "adamw: skipping on a non-finite norm needs the norm");
  multi_mem mm;
  if (!multi_alloc(&mm, nslots)) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  uint32_t *counts = mm.part, n = 0;
  for (uint32_t i = 0; i < nslots; i++) {
    const vklm_optim_slot *s = &slots[i];
    uint64_t bytes = (uint64_t)s->count * 4;
    counts[i] = s->count;
    if (s->count == 0) continue;
    VKLM_ASSERT(s->p.size >= bytes && s->m.size >= bytes && s->v.size >= bytes && s->g.size >= bytes,
                "adamw: a buffer of slot %u holds fewer than its %u floats", i, s->count);
    VKLM_ASSERT(!s->h.block || ((s->h_fmt == VKLM_OPTIM_F16 || s->h_fmt == VKLM_OPTIM_BF16) &&
                                s->h.size >= ((uint64_t)s->count + 1) / 2 * 4),
                "adamw: slot %u's 16-bit copy: format %d, %llu bytes for %u elements", i,
                s->h_fmt, (unsigned long long)s->h.size, s->count);
    mm.idx[n++] = i;
  }
  uint64_t tab_at, need = scratch_layout(ctx, counts, nslots, NULL, &tab_at);
  VKLM_ASSERT(scratch.size >= need, "adamw: scratch of %llu bytes < %llu (vklm_grad_norm_scratch_size)",
              (unsigned long long)scratch.size, (unsigned long long)need);
  roles r = {.slot = slots};
  uint32_t ng = group_slots(&r, 0, 5, mm.idx, n, mm.start, mm.tmp);
  adamw_entry *tab = mm.table;
  vklm_buffer table = vklm_buffer_slice(scratch, tab_at, (uint64_t)(n ? n : 1) * TABLE_ENTRY);
  vklm_status st = VKLM_OK;
  for (uint32_t g = 0; g < ng && st == VKLM_OK; g++) {
    uint32_t a = mm.start[g], b = mm.start[g + 1], pairs = 0;
    for (uint32_t j = a; j < b; j++) pairs |= slots[mm.idx[j]].h.block != NULL;
    /* with 16-bit copies each thread updates pairs of elements and writes their word */
    uint64_t per_group = (uint64_t)wg * items * (pairs ? 2 : 1);
    vklm_buffer v[5];
    uint64_t groups = 0;
    for (uint32_t j = a; j < b; j++) {
      const vklm_optim_slot *s = &slots[mm.idx[j]];
      uint32_t flags = (s->apply_wd ? 1u : 0u) | (s->h.block ? (uint32_t)s->h_fmt << 1 : 0u);
      tab[j] = (adamw_entry){.n = s->count, .apply_wd = flags, .first = (uint32_t)groups};
      groups += (s->count + per_group - 1) / per_group;
    }
    for (int q = 0; q < 5; q++) {
      v[q] = span(&r, q, mm.idx + a, b - a, counts, mm.off + a);
      for (uint32_t j = a; j < b; j++) {
        uint32_t *f[5] = {&tab[j].p, &tab[j].m, &tab[j].v, &tab[j].g, &tab[j].pad};
        *f[q] = mm.off[j];
      }
    }
    VKLM_ASSERT(groups <= UINT32_MAX, "adamw: %llu workgroups in one dispatch",
                (unsigned long long)groups);
    /* Without a clip buffer the step buffer stands in at binding 5, without 16-bit copies the
     * params at binding 7 (bound, never read or written). */
    vklm_buffer bufs[8] = {v[0], v[1], v[2], v[3], step_buf, use_clip ? clip_buf : step_buf, table,
                           pairs ? v[4] : v[0]};
    multi_push pc = {a, b - a, (uint32_t)groups, items,
                     use_clip ? (skip_nonfinite ? 2u : 1u) : 0u};
    uint32_t spec[2] = {wg, pairs};
    vklm_groups_1d(ctx, groups, &gx, &gy);
    st = vklm_op_dispatch(cmd, "adamw_update_multi_f32", spec, 2, bufs, 8, &pc, sizeof pc, gx, gy, 1);
    if (st == VKLM_OK && dispatches) (*dispatches)++;
  }
  if (st == VKLM_OK && n) st = vklm_buffer_upload(ctx, scratch, tab_at, tab, (uint64_t)n * TABLE_ENTRY);
  multi_free(&mm);
  return st;
}

void vklm_adamw_multi_ref(float *const *params, float *const *m, float *const *v,
                          const float *const *grads, const uint32_t *counts, const int *apply_wd,
                          uint32_t nslots, const vklm_adamw_step *s, float clip) {
  for (uint32_t i = 0; i < nslots; i++)
    vklm_adamw_ref(params[i], m[i], v[i], grads[i], counts[i], s, clip, apply_wd[i]);
}

static int cmp_range(const void *pa, const void *pb) {
  const vklm_buffer *a = pa, *b = pb;
  if (a->block != b->block) return (uintptr_t)a->block < (uintptr_t)b->block ? -1 : 1;
  return a->offset < b->offset ? -1 : a->offset > b->offset;
}

vklm_status vklm_grad_zero(vklm_cmd *cmd, const vklm_buffer *bufs, uint32_t n, uint32_t *fills) {
  uint64_t align = vklm_buffer_alignment(vklm_cmd_context(cmd));
  if (fills) *fills = 0;
  vklm_buffer *b = malloc(((size_t)n ? n : 1) * sizeof *b);
  if (!b) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++)
    if (bufs[i].block && bufs[i].size) b[k++] = bufs[i];
  qsort(b, k, sizeof *b, cmp_range);
  vklm_status st = VKLM_OK;
  for (uint32_t i = 0; i < k && st == VKLM_OK;) {
    vklm_buffer run = b[i];
    uint64_t end = run.offset + run.size;
    /* the next buffer starts within the padding after this run's end (or overlaps it) */
    for (i++; i < k && b[i].block == run.block && b[i].offset < end + align; i++)
      if (b[i].offset + b[i].size > end) end = b[i].offset + b[i].size;
    run.size = end - run.offset;
    st = vklm_cmd_fill_words(cmd, run, 0);
    if (st == VKLM_OK && fills) (*fills)++;
  }
  free(b);
  return st;
}

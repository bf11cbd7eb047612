#version 450
// sample_rows_f32: samples one token per row of logits (n, V) with per-row parameters, llama.cpp's
// chain exactly as the host's engine/infer/sample.c: repetition penalty, top-k, top-p, min-p,
// temperature, draw (or greedy argmax when temp <= 0). Nothing is sorted: every cut-off is a
// radix select (8-bit digits over the 32-bit key of the logit, then over the id for ties) of the
// smallest (logit desc, id asc) rank whose cumulative weight reaches a target: a count for top-k,
// a probability mass for top-p and for the draw. Masses are exact 64-bit integer sums of
// per-token weights in 2^-44 fixed point (sample_math.glsl), so they do not depend on the order
// of summation or the workgroup size, and the result is deterministic.
//
// Bindings: 0 ids (n) int writeonly: the chosen ids
//           1 logits (n, V) f32: penalised in place (the penalty's tokens only)
//           2 rows (n) vklm_sample_row (16 words, engine/infer/sample.h) readonly
//           3 pen (n, max_pen) int readonly: row r's penalty list is pen[r*max_pen, +n_pen)
//           4 list (n, V) uvec2 scratch: the row's surviving candidates (key, id)
// Push constants: uint n, V, max_pen, id_passes (8-bit digits that cover the ids: ceil(bits/8)).
// Dispatch: (n, 1, 1) workgroups, one per row; local_size_x = spec constant 0 (a power of two,
//   >= 64). Shared memory: 5 KiB of histograms + 8 bytes per invocation.
//
// Per row: (1) the penalty on its list; (2) argmax and count of non-NaN logits; greedy rows and
// degenerate ones (one candidate, top_k 1, min_p > 1, an infinite largest logit) end here with the
// argmax; (3) top-k: select the top_k-th rank by count, compact the survivors into the list;
// (4) top-p: weights w = exp(l - mx), S = their sum, select the first rank whose cumulative
// weight reaches ceil(top_p * S); min-p keeps l - mx >= ln(min_p) (compared in double-float);
// compact; (5) the draw: weights exp((l - mx) / temp), Q their sum, select the first rank whose
// cumulative weight exceeds floor(u * Q), u = u_hi / 2^32.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "sample_math.glsl"

struct Row {
  float temp;
  uint top_k;
  float top_p;
  float min_p;
  float penalty;
  uint n_pen;
  uint u_hi, u_lo;
  float inv_temp_hi, inv_temp_lo;
  float ln_min_p_hi, ln_min_p_lo;
  uint top_p_fx;
  uint r0, r1, r2;
};

layout(std430, binding = 0) writeonly buffer Ids { int ids[]; };
layout(std430, binding = 1) coherent buffer Logits { float lg[]; };
layout(std430, binding = 2) readonly buffer Rows { Row rows[]; };
layout(std430, binding = 3) readonly buffer Pen { int pen[]; };
layout(std430, binding = 4) coherent buffer List { uvec2 list[]; };
layout(push_constant) uniform Push { uint n, V, max_pen, id_passes; } pc;

const uint WG = gl_WorkGroupSize.x;
const uint W_UNIT = 0u, W_TEMP1 = 1u, W_TEMP = 2u;     // weights: count, exp(d), exp(d / temp)
const uint T_COUNT = 0u, T_TOP_P = 1u, T_DRAW = 2u;    // targets

shared uint h_cnt[256], h_lo[256], h_hi[256], h_mink[256], h_mini[256];
shared uvec2 red[WG];
shared uint s_m, s_list, s_count, s_valid;
shared uint s_kpref, s_kmask, s_ipref, s_imask, s_key, s_id, s_done, s_nbelow, s_shrink;
shared uvec2 s_below, s_tgt;

uint tid;
uint lb;   // the row's first element in logits and list
Row P;
float mx;  // the largest logit (finite past step 2)

// Element i of the current source: the list, or the row itself (id = i; NaN is SAMPLE_DEAD).
uvec2 src(uint i, bool fromlist) {
  if (fromlist) return list[lb + i];
  return uvec2(sample_key(lg[lb + i]), i);
}

// The weight of a candidate with key k, in 2^-44 units.
uvec2 weight(uint k, uint mode) {
  if (mode == W_UNIT) return uvec2(1u, 0u);
  float l = sample_unkey(k);
  if (sample_isinf(l)) return uvec2(0u); // -inf: mx is finite here
  float s, e;
  sample_two_sum(l, -mx, s, e); // s + e = l - mx exactly
  if (!(s > (P.temp > 1.0 ? -31.0 * P.temp : -31.0))) return uvec2(0u);
  if (s == 0.0 && e == 0.0) return uvec2(0u, 1u << 12); // exp(0) = 1 = 2^44
  if (mode == W_TEMP1) return sample_fx44(sample_exp(s, e));
  float p = s * P.inv_temp_hi;
  if (!(p > -31.0)) return uvec2(0u);
  float pe;
  sample_two_prod(s, P.inv_temp_hi, p, pe);
  return sample_fx44(sample_exp(p, pe + (s * P.inv_temp_lo + e * P.inv_temp_hi)));
}

// min-p: l - mx >= ln(min_p), both sides as double-float.
bool minp_ok(uint k) {
  float l = sample_unkey(k);
  if (sample_isinf(l)) return false;
  float s, e;
  sample_two_sum(l, -mx, s, e);
  if (!(s > -1e30)) return false;
  return (s - P.ln_min_p_hi) + (e - P.ln_min_p_lo) >= 0.0;
}

// Adds a run of c candidates of weight w (64-bit), smallest key k and id i, to bucket b (the
// carry out of the low word is seen by the adder alone). The smallest key and id serve to name
// a bucket of one; a first pass rarely isolates one candidate and skips them (it goes on).
void hist_flush(uint b, uint c, uvec2 w, uint k, uint i, bool mins) {
  atomicAdd(h_cnt[b], c);
  if (mins) {
    atomicMin(h_mink[b], k);
    atomicMin(h_mini[b], i);
  }
  if (w.x != 0u) {
    uint old = atomicAdd(h_lo[b], w.x);
    if (old + w.x < old) w.y += 1u;
  }
  if (w.y != 0u) atomicAdd(h_hi[b], w.y);
}

// Keeps the source's candidates with (key, id) <= (ck, ci) (and min-p when asked) in the list,
// in place when the source is the list: each chunk of WG is read before any of it is written,
// and writes land below the chunk's end. The list's order is arbitrary (nothing depends on it).
void compact(uint ck, uint ci, bool minp) {
  barrier();
  bool fromlist = s_list != 0u;
  uint m = s_m;
  if (tid == 0u) s_count = 0u;
  barrier();
  if (!fromlist) { // from the row: no overlap, no chunks
    for (uint i = tid; i < m; i += WG) {
      uvec2 e = src(i, false);
      if (e.x != SAMPLE_DEAD && (e.x < ck || (e.x == ck && e.y <= ci)) && (!minp || minp_ok(e.x)))
        list[lb + atomicAdd(s_count, 1u)] = e;
    }
  } else {
    for (uint base = 0u; base < m; base += WG) {
      uint i = base + tid;
      uvec2 e = uvec2(SAMPLE_DEAD, 0u);
      bool keep = false;
      if (i < m) {
        e = src(i, true);
        keep = e.x != SAMPLE_DEAD && (e.x < ck || (e.x == ck && e.y <= ci)) &&
               (!minp || minp_ok(e.x));
      }
      barrier();
      if (keep) list[lb + atomicAdd(s_count, 1u)] = e;
    }
  }
  memoryBarrierBuffer();
  barrier();
  if (tid == 0u) {
    s_m = s_count;
    s_list = 1u;
  }
  barrier();
}

// Finds R* = (s_key, s_id), the smallest candidate of the source in (key, id) order whose
// cumulative weight W(<= R*) reaches the target. Pass by pass, the candidates in buckets below
// the chosen one are settled (their weight goes to s_below) and the chosen bucket is refined;
// when the candidates up to the chosen bucket are at most half of the source, they are compacted
// into the list, so that later passes read fewer (those above can never be kept: every step
// keeps a prefix in this order).
void select_rank(uint mode, uint tkind, uint count) {
  barrier();
  if (tid == 0u) {
    s_kpref = 0u, s_kmask = 0u, s_ipref = 0u, s_imask = 0u;
    s_below = uvec2(0u), s_nbelow = 0u, s_done = 0u, s_shrink = 0u;
    s_tgt = uvec2(count, 0u);
  }
  uint npass = 4u + pc.id_passes;
  for (uint step = 0u; step < npass; step++) {
    for (uint b = tid; b < 256u; b += WG) {
      h_cnt[b] = 0u, h_lo[b] = 0u, h_hi[b] = 0u;
      h_mink[b] = SAMPLE_DEAD, h_mini[b] = SAMPLE_DEAD;
    }
    barrier();
    bool fromlist = s_list != 0u, idp = step >= 4u;
    uint m = s_m, shift = idp ? 8u * (npass - 1u - step) : 8u * (3u - step);
    uint kp = s_kpref, km = s_kmask, ip = s_ipref, im = s_imask;
    // a run of candidates in the same bucket is added up before it goes to shared memory
    uint rb = 256u, rc = 0u, rk = SAMPLE_DEAD, ri = SAMPLE_DEAD;
    uvec2 rw = uvec2(0u);
    for (uint i = tid; i < m; i += WG) {
      uvec2 e = src(i, fromlist);
      if (e.x == SAMPLE_DEAD) continue;
      uint b;
      if (!idp) {
        if ((e.x & km) != kp) continue;
        b = (e.x >> shift) & 255u;
      } else {
        if (e.x != kp || (e.y & im) != ip) continue;
        b = (e.y >> shift) & 255u;
      }
      if (b != rb) {
        if (rc != 0u) hist_flush(rb, rc, rw, rk, ri, step != 0u);
        rb = b, rc = 0u, rw = uvec2(0u), rk = SAMPLE_DEAD, ri = SAMPLE_DEAD;
      }
      rc++;
      rk = min(rk, e.x), ri = min(ri, e.y);
      if (mode != W_UNIT) rw = u64_add(rw, weight(e.x, mode));
    }
    if (rc != 0u) hist_flush(rb, rc, rw, rk, ri, step != 0u);
    barrier();
    if (tid == 0u) {
      if (step == 0u && tkind != T_COUNT) {
        uvec2 tot = uvec2(0u);
        for (uint b = 0u; b < 256u; b++) tot = u64_add(tot, uvec2(h_lo[b], h_hi[b]));
        bool inexact;
        if (tkind == T_TOP_P) { // ceil(top_p * S)
          uvec2 t = u64_mul_frac(P.top_p_fx, tot, inexact);
          s_tgt = u64_add(t, uvec2(inexact ? 1u : 0u, 0u));
        } else { // floor(u * Q) + 1
          s_tgt = u64_add(u64_mul_frac(P.u_hi, tot, inexact), uvec2(1u, 0u));
        }
      }
      uvec2 below = s_below, tgt = s_tgt;
      uint nbelow = s_nbelow, b = 0u;
      for (; b < 255u; b++) {
        uvec2 w = mode == W_UNIT ? uvec2(h_cnt[b], 0u) : uvec2(h_lo[b], h_hi[b]);
        uvec2 nb = u64_add(below, w);
        if (h_cnt[b] != 0u && u64_ge(nb, tgt)) break;
        below = nb;
        nbelow += h_cnt[b];
      }
      s_below = below;
      s_nbelow = nbelow;
      if (!idp) {
        s_kpref |= b << shift;
        s_kmask |= 255u << shift;
      } else {
        s_ipref |= b << shift;
        s_imask |= 255u << shift;
      }
      if ((h_cnt[b] <= 1u && step != 0u) || step == npass - 1u) {
        s_done = 1u;
        s_key = h_mink[b];
        s_id = h_mini[b];
      } else {
        s_shrink = 2u * (nbelow + h_cnt[b]) <= m ? 1u : 0u;
      }
    }
    barrier();
    if (s_done != 0u) break;
    if (s_shrink != 0u) { // keep the settled candidates and the chosen bucket
      if (step < 4u) compact(s_kpref | ~s_kmask, SAMPLE_DEAD, false);
      else compact(s_kpref, s_ipref | ~s_imask, false);
    }
  }
  barrier();
}

void main() {
  tid = gl_LocalInvocationID.x;
  uint r = gl_WorkGroupID.x;
  if (r >= pc.n) return;
  lb = r * pc.V;
  P = rows[r];

  // (1) the penalty, on distinct ids
  uint np = min(P.n_pen, pc.max_pen);
  if (P.penalty != 1.0)
    for (uint i = tid; i < np; i += WG) {
      int t = pen[r * pc.max_pen + i];
      if (t >= 0 && uint(t) < pc.V) lg[lb + uint(t)] = sample_penalize(lg[lb + uint(t)], P.penalty);
    }
  if (tid == 0u) s_valid = 0u;
  memoryBarrierBuffer();
  barrier();

  // (2) the smallest (key, id) = the argmax, lowest id on ties; the non-NaN count
  uvec2 best = uvec2(SAMPLE_DEAD);
  uint nv = 0u;
  for (uint j = tid; j < pc.V; j += WG) {
    uint k = sample_key(lg[lb + j]);
    if (k == SAMPLE_DEAD) continue;
    nv++;
    if (k < best.x) best = uvec2(k, j); // j ascends: the first of equal keys stays
  }
  atomicAdd(s_valid, nv);
  red[tid] = best;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      uvec2 o = red[tid + s];
      if (o.x < red[tid].x || (o.x == red[tid].x && o.y < red[tid].y)) red[tid] = o;
    }
    barrier();
  }
  best = red[0];
  uint valid = s_valid;
  mx = sample_unkey(best.x);
  uint amax = best.x == SAMPLE_DEAD ? 0u : best.y;
  if (P.temp <= 0.0 || valid <= 1u || P.top_k == 1u || sample_isinf(mx) ||
      (P.min_p > 1.0)) {
    if (tid == 0u) ids[r] = int(amax);
    return;
  }

  if (tid == 0u) {
    s_m = pc.V;
    s_list = 0u;
  }
  // (3) top-k
  if (P.top_k > 0u && P.top_k < valid) {
    select_rank(W_UNIT, T_COUNT, P.top_k);
    compact(s_key, s_id, false);
  }
  // (4) top-p, min-p
  bool topp = P.top_p < 1.0, minp = P.min_p > 0.0;
  if (topp || minp) {
    uint ck = SAMPLE_DEAD - 1u, ci = SAMPLE_DEAD;
    if (topp) {
      select_rank(W_TEMP1, T_TOP_P, 0u);
      ck = s_key, ci = s_id;
    }
    compact(ck, ci, minp);
  }
  // (5) the draw
  select_rank(P.inv_temp_hi == 1.0 && P.inv_temp_lo == 0.0 ? W_TEMP1 : W_TEMP, T_DRAW, 0u);
  if (tid == 0u) ids[r] = int(s_id);
}

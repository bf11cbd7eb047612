// Body of attention_prefill_f32.comp / attention_prefill_f16.comp (the includer defines KV_T, the
// cache's element type, and KV(x), its conversion to float): the tiled (flash-attention) form of
// attention_decode_one.glsl for passes of many rows (prefill). Same result: query row i, at
// position pos_i of sequence slot_i (rows[i] = (pos_i, slot_i)), head h attends to that
// sequence's cache rows [0, pos_i] (key/value head h / (NH/NKV)):
//   out[i, h*HS + d] = sum_j p_j v[j, d], p = softmax_j(q_i,h . k_j * scale).
// A workgroup serves BQ (row, head) pairs: RQ = BQ/GH consecutive query rows i0 .. i0+RQ-1 times
// GH consecutive query heads of one KV head (pair r is row i0 + r/GH, head h0 + r%GH), so each key
// and value tile, loaded once into shared memory, feeds GH heads of RQ rows. Tiles of BK cache
// rows, an online softmax (running max m, sum l, output accumulator per pair) as in
// attention_forward_f32.comp: thread (g, c), c < TPR = NT/(BQ/RM), owns pairs g*RM .. g*RM+RM-1,
// scoring them against keys c, c+TPR, .. of a tile and accumulating their output dims c, c+TPR, ..
// Rows of several sequences: the workgroup serves the distinct slots among its rows in turn
// (normally one), in increasing slot order; for slot s it walks the keys [0, 1 + the largest
// position of its rows of slot s), masking pairs of other slots and keys past each row's
// position. Positions are clamped to maxT-1; rows of a slot >= S get zeros.
// Bindings: 0 out (n, NH*HS) f32 writeonly; 1 q (n, QS) f32 readonly (query head h of row i at
//           q[i*QS + h*HS]: the packed qkv); 2 kc, 3 vc (S*maxT, NKV, HS) KV_T readonly (the
//           cache: slot s at rows s*maxT ..); 4 rows (n) uvec2 (position, slot) readonly.
// Push constants: uint n, NH, NKV, QS; float scale (1/sqrt(HS)); uint maxT, S.
// Spec constants: 0 workgroup size NT, 1 BQ (row, head) pairs per workgroup, 2 BK keys per tile,
//   3 HS head size, 4 RM pairs per thread, 5 GH heads per workgroup (divides NH/NKV and BQ).
// Shared memory: (BQ + 2*BK) * (HS+1) + BQ*(BK+1) floats + 2 uints.
// Dispatch: (ceil(n/RQ), NH/GH, 1). Fixed order throughout: deterministic.
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(constant_id = 1) const uint BQ = 64;
layout(constant_id = 2) const uint BK = 32;
layout(constant_id = 3) const uint HS = 64;
layout(constant_id = 4) const uint RM = 4;
layout(constant_id = 5) const uint GH = 1;
const uint NT = gl_WorkGroupSize.x;
const uint TPR = NT / (BQ / RM);
const uint KPT = (BK + TPR - 1) / TPR; // keys per thread in the score tile
const uint DPT = (HS + TPR - 1) / TPR; // output dims per thread
const uint LD = HS + 1, SLD = BK + 1;
const uint RQ = BQ / GH; // query rows per workgroup
const float MASKED = -3.0e38;
const uint NONE = 0xffffffffu;

#include "attention_prefill_io.glsl"

shared float sQ[BQ * LD];
shared float sK[BK * LD];
shared float sV[BK * LD];
shared float sS[BQ * SLD];
shared uint sPass[2]; // the slot served in this pass (NONE: all served) and its end key

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint r0 = (tid / TPR) * RM, c = tid % TPR;
  const uint i0 = gl_WorkGroupID.x * RQ, h0 = gl_WorkGroupID.y * GH;
  const uint rowstride = pc.NKV * HS, kvoff = (h0 / (pc.NH / pc.NKV)) * HS;
  const uint iend = min(pc.n, i0 + RQ);

  for (uint x = tid; x < BQ * HS; x += NT) {
    uint rr = x / HS, d = x % HS, i = i0 + rr / GH;
    sQ[rr * LD + d] = i < pc.n ? q_[i * pc.QS + (h0 + rr % GH) * HS + d] : 0.0;
  }
  // this thread's pairs: their rows' positions and slots (NONE past n)
  uint rpos[RM], rslot[RM];
  float m[RM], l[RM], acc[RM * DPT];
  for (uint k = 0; k < RM; k++) {
    uint i = i0 + (r0 + k) / GH;
    uvec2 rw = i < pc.n ? rows[i] : uvec2(0u, NONE);
    rpos[k] = min(rw.x, pc.maxT - 1u);
    rslot[k] = rw.y;
    m[k] = MASKED;
    l[k] = 0.0;
  }
  for (uint x = 0; x < RM * DPT; x++) acc[x] = 0.0;

  uint prev = NONE; // the last slot served (NONE: none yet)
  for (;;) {
    if (tid == 0u) { // the next slot: the smallest above prev among the rows, and its last key
      uint best = NONE, last = 0u;
      for (uint i = i0; i < iend; i++) {
        uvec2 rw = rows[i];
        if (rw.y >= pc.S || (prev != NONE && rw.y <= prev) || rw.y > best) continue;
        uint p = min(rw.x, pc.maxT - 1u);
        last = rw.y < best ? p : max(last, p);
        best = rw.y;
      }
      sPass[0] = best;
      sPass[1] = last + 1u;
    }
    barrier(); // sPass (and, the first time, sQ) written
    const uint cur = sPass[0], kend = sPass[1];
    if (cur == NONE) break;
    prev = cur;
    const uint base = cur * pc.maxT;
    for (uint k0 = 0; k0 < kend; k0 += BK) {
      barrier(); // the previous tile (and sPass) consumed
      for (uint x = tid; x < BK * HS; x += NT) {
        uint kk = x / HS, d = x % HS, t = k0 + kk;
        bool in_ = t < kend;
        uint src = (base + t) * rowstride + kvoff + d;
        sK[kk * LD + d] = in_ ? KV(kc[src]) : 0.0;
        sV[kk * LD + d] = in_ ? KV(vc[src]) : 0.0;
      }
      barrier();
      // scores of pairs r0.. against keys c + j*TPR (indices past BK read a valid row, unused)
      float s[RM * KPT];
      for (uint x = 0; x < RM * KPT; x++) s[x] = 0.0;
      for (uint d = 0; d < HS; d++) {
        float a[RM];
        for (uint k = 0; k < RM; k++) a[k] = sQ[(r0 + k) * LD + d];
        for (uint j = 0; j < KPT; j++) {
          float kv = sK[min(c + j * TPR, BK - 1u) * LD + d];
          for (uint k = 0; k < RM; k++) s[k * KPT + j] += a[k] * kv;
        }
      }
      for (uint j = 0; j < KPT; j++) {
        uint kk = c + j * TPR, key = k0 + kk;
        if (kk < BK)
          for (uint k = 0; k < RM; k++) {
            bool ok = rslot[k] == cur && key <= rpos[k];
            sS[(r0 + k) * SLD + kk] = ok ? s[k * KPT + j] * pc.scale : MASKED;
          }
      }
      barrier();
      // online softmax update of pairs r0.. and their output dims c + j*TPR
      for (uint k = 0; k < RM; k++) {
        float mnew = m[k];
        for (uint kk = 0; kk < BK; kk++) mnew = max(mnew, sS[(r0 + k) * SLD + kk]);
        float corr = exp(m[k] - mnew);
        l[k] *= corr;
        for (uint j = 0; j < DPT; j++) acc[k * DPT + j] *= corr;
        m[k] = mnew;
      }
      for (uint kk = 0; kk < BK; kk++) {
        float p[RM];
        for (uint k = 0; k < RM; k++) {
          float sv = sS[(r0 + k) * SLD + kk];
          p[k] = sv == MASKED ? 0.0 : exp(sv - m[k]);
          l[k] += p[k];
        }
        for (uint j = 0; j < DPT; j++) {
          float v = sV[kk * LD + min(c + j * TPR, HS - 1u)];
          for (uint k = 0; k < RM; k++) acc[k * DPT + j] += p[k] * v;
        }
      }
    }
    barrier(); // every thread has read sPass before thread 0 writes the next
  }

  for (uint k = 0; k < RM; k++) {
    uint rr = r0 + k, i = i0 + rr / GH;
    if (i < pc.n) {
      float inv = l[k] > 0.0 ? 1.0 / l[k] : 0.0;
      uint o = i * pc.NH * HS + (h0 + rr % GH) * HS;
      for (uint j = 0; j < DPT; j++) {
        uint d = c + j * TPR;
        if (d < HS) outp[o + d] = acc[k * DPT + j] * inv;
      }
    }
  }
}

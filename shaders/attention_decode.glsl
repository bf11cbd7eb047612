// Shared by attention_decode_{f32,f16}[_split].comp: the tiled online-softmax attention of one
// query row against the cache rows [j_begin, j_end) of one sequence. Include after common.glsl
// and after declaring the buffers q, kc, vc, the macro KV(x) that turns a cache element into a
// float (the cache is fp32 or fp16), and the push constants pc (n, NH, NKV, HS, QS, scale,
// maxT, ...). Uses (256 + 2*WG) floats of shared memory.
const uint WG = gl_WorkGroupSize.x;
shared float qs[256];
shared float ps[WG];
shared float red[WG];

float reduce_max(uint tid, float v) {
  red[tid] = v;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) red[tid] = max(red[tid], red[tid + s]);
    barrier();
  }
  float r = red[0];
  barrier();
  return r;
}

float reduce_sum(uint tid, float v) {
  red[tid] = v;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) red[tid] = red[tid] + red[tid + s];
    barrier();
  }
  float r = red[0];
  barrier();
  return r;
}

// Query row i, head h against keys [jb, je) of the sequence whose cache rows start at row
// `base` (slot * maxT): on return acc[c] (channel tid + c*WG) holds the UNNORMALISED sum of
// exp(s_j - m) v_j, m the running max and l the sum of exp(s_j - m).
// Every thread of the workgroup must call it (barriers).
void attend(uint h, uint i, uint base, uint jb, uint je, out float acc[4], out float m,
            out float l) {
  uint tid = gl_LocalInvocationID.x;
  uint HS = pc.HS, kvh = h / (pc.NH / pc.NKV);
  for (uint d = tid; d < HS; d += WG) qs[d] = q[i * pc.QS + h * HS + d];
  barrier();
  for (uint c = 0u; c < 4u; c++) acc[c] = 0.0;
  m = -1.0e30;
  l = 0.0;
  uint rowstride = pc.NKV * HS;
  for (uint j0 = jb; j0 < je; j0 += WG) {
    uint j = j0 + tid;
    float s = -1.0e30;
    if (j < je) {
      uint kb = (base + j) * rowstride + kvh * HS;
      float dot = 0.0;
      for (uint d = 0u; d < HS; d++) dot += qs[d] * KV(kc[kb + d]);
      s = dot * pc.scale;
    }
    float mt = reduce_max(tid, s);
    float mn = max(m, mt);
    float p = j < je ? exp(s - mn) : 0.0;
    ps[tid] = p;
    float corr = exp(m - mn);
    float lt = reduce_sum(tid, p); // its barriers also publish ps
    l = l * corr + lt;
    m = mn;
    uint cnt = min(WG, je - j0);
    for (uint c = 0u; c < 4u; c++) {
      uint d = tid + c * WG;
      if (d < HS) {
        float a = acc[c] * corr;
        for (uint t = 0u; t < cnt; t++)
          a += ps[t] * KV(vc[(base + j0 + t) * rowstride + kvh * HS + d]);
        acc[c] = a;
      }
    }
    barrier();
  }
}

// Shared by attention_decode_{f32,f16}[_split].comp: the tiled online-softmax attention of one
// query row against the cache rows [j_begin, j_end) of one sequence. Include after common.glsl
// and after declaring the buffers q, kc, vc, the macro KV(x) that turns a cache element into a
// float (the cache is fp32 or fp16), and the push constants pc (n, NH, NKV, HS, QS, scale,
// maxT, ...). Uses G * (256 + 2*WG) floats of shared memory. With VKLM_DECODE_SUBGROUP defined
// (the *_sg variants, for devices with subgroup arithmetic; the includer enables
// GL_KHR_shader_subgroup_arithmetic) the max and sum reductions go through subgroupMax and
// subgroupAdd: two barriers per reduction instead of log2(WG) + 2.
const uint WG = gl_WorkGroupSize.x;
// G query heads of one KV head per workgroup (grouped-query attention): each key and value row
// is read once for all G heads. Spec constant 1; the includer's dispatch covers NH/G heads.
layout(constant_id = 1) const uint G = 1u;
const uint MAXG = 8u; // G <= MAXG (kvcache.c chooses G)
shared float qs[G * 256u];
shared float ps[G * WG];
shared float red[G * WG];

#ifdef VKLM_DECODE_SUBGROUP
// Subgroup reductions of G values per thread at once: each subgroup reduces its lanes, its first
// active lane writes the result to red[g*WG + subgroup id], and every thread combines the
// gl_NumSubgroups partial results in subgroup order (a fixed order: deterministic for a given
// subgroup size). v[g] <- the max / sum over the workgroup of every thread's v[g].
void reduce_max_g(uint tid, inout float v[MAXG]) {
  for (uint g = 0u; g < G; g++) v[g] = subgroupMax(v[g]);
  if (subgroupElect())
    for (uint g = 0u; g < G; g++) red[g * WG + gl_SubgroupID] = v[g];
  barrier();
  for (uint g = 0u; g < G; g++) {
    float r = red[g * WG];
    for (uint s = 1u; s < gl_NumSubgroups; s++) r = max(r, red[g * WG + s]);
    v[g] = r;
  }
  barrier();
}

void reduce_sum_g(uint tid, inout float v[MAXG]) {
  for (uint g = 0u; g < G; g++) v[g] = subgroupAdd(v[g]);
  if (subgroupElect())
    for (uint g = 0u; g < G; g++) red[g * WG + gl_SubgroupID] = v[g];
  barrier();
  for (uint g = 0u; g < G; g++) {
    float r = red[g * WG];
    for (uint s = 1u; s < gl_NumSubgroups; s++) r += red[g * WG + s];
    v[g] = r;
  }
  barrier();
}
#else
// Tree reductions of G values per thread at once (one set of barriers for all heads):
// v[g] <- the max / sum over the workgroup of every thread's v[g].
void reduce_max_g(uint tid, inout float v[MAXG]) {
  for (uint g = 0u; g < G; g++) red[g * WG + tid] = v[g];
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s)
      for (uint g = 0u; g < G; g++)
        red[g * WG + tid] = max(red[g * WG + tid], red[g * WG + tid + s]);
    barrier();
  }
  for (uint g = 0u; g < G; g++) v[g] = red[g * WG];
  barrier();
}

void reduce_sum_g(uint tid, inout float v[MAXG]) {
  for (uint g = 0u; g < G; g++) red[g * WG + tid] = v[g];
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s)
      for (uint g = 0u; g < G; g++) red[g * WG + tid] = red[g * WG + tid] + red[g * WG + tid + s];
    barrier();
  }
  for (uint g = 0u; g < G; g++) v[g] = red[g * WG];
  barrier();
}
#endif

// Query row i, heads h0 .. h0+G-1 (one KV head) against keys [jb, je) of the sequence whose
// cache rows start at row `base` (slot * maxT): on return acc[g*4 + c] (channel tid + c*WG of
// head h0+g) holds the UNNORMALISED sum of exp(s_j - m[g]) v_j, m[g] the running max and l[g]
// the sum of exp(s_j - m[g]). Each thread scores one key of a tile for every head (the key read
// once), and accumulates its channels over the tile with each value read once for every head.
// Every thread of the workgroup must call it (barriers).
void attend(uint h0, uint i, uint base, uint jb, uint je, out float acc[MAXG * 4u],
            out float m[MAXG], out float l[MAXG]) {
  uint tid = gl_LocalInvocationID.x;
  uint HS = pc.HS, kvh = h0 / (pc.NH / pc.NKV);
  for (uint g = 0u; g < G; g++)
    for (uint d = tid; d < HS; d += WG) qs[g * 256u + d] = q[i * pc.QS + (h0 + g) * HS + d];
  barrier();
  for (uint c = 0u; c < MAXG * 4u; c++) acc[c] = 0.0;
  for (uint g = 0u; g < MAXG; g++) {
    m[g] = -1.0e30;
    l[g] = 0.0;
  }
  uint rowstride = pc.NKV * HS;
  for (uint j0 = jb; j0 < je; j0 += WG) {
    uint j = j0 + tid;
    float sc[MAXG];
    for (uint g = 0u; g < MAXG; g++) sc[g] = -1.0e30;
    if (j < je) {
      uint kb = (base + j) * rowstride + kvh * HS;
      float dot[MAXG];
      for (uint g = 0u; g < G; g++) dot[g] = 0.0;
      for (uint d = 0u; d < HS; d++) {
        float k = KV(kc[kb + d]);
        for (uint g = 0u; g < G; g++) dot[g] += qs[g * 256u + d] * k;
      }
      for (uint g = 0u; g < G; g++) sc[g] = dot[g] * pc.scale;
    }
    float mt[MAXG];
    for (uint g = 0u; g < G; g++) mt[g] = sc[g];
    reduce_max_g(tid, mt);
    float corr[MAXG];
    for (uint g = 0u; g < G; g++) {
      float mn = max(m[g], mt[g]);
      float p = j < je ? exp(sc[g] - mn) : 0.0;
      ps[g * WG + tid] = p;
      corr[g] = exp(m[g] - mn);
      m[g] = mn;
      mt[g] = p;
    }
    reduce_sum_g(tid, mt); // its barriers also publish ps
    for (uint g = 0u; g < G; g++) l[g] = l[g] * corr[g] + mt[g];
    uint cnt = min(WG, je - j0);
    for (uint c = 0u; c < 4u; c++) {
      uint d = tid + c * WG;
      if (d < HS) {
        float a[MAXG];
        for (uint g = 0u; g < G; g++) a[g] = acc[g * 4u + c] * corr[g];
        for (uint t = 0u; t < cnt; t++) {
          float v = KV(vc[(base + j0 + t) * rowstride + kvh * HS + d]);
          for (uint g = 0u; g < G; g++) a[g] += ps[g * WG + t] * v;
        }
        for (uint g = 0u; g < G; g++) acc[g * 4u + c] = a[g];
      }
    }
    barrier();
  }
}

// quant.glsl: reading weights that stay quantized in device memory, in ggml's block layouts
// (engine/ops/quant.h), from a uint buffer by byte-offset arithmetic (no 8/16-bit storage
// features). The including file declares `readonly buffer ... { uint w_[]; }` first.
//   Q8_0: blocks of 32 elements, 34 bytes each: fp16 scale d, then 32 int8 quants; x = d*q.
//   Q4_0: blocks of 32 elements, 18 bytes each: fp16 scale d, then 16 bytes; byte j holds element
//         j in its low nibble and element j+16 in its high nibble; x = d*(nibble - 8).
// Blocks start at even byte offsets (34 and 18 are even), so an fp16 scale never straddles a
// word and a 4-byte read starts either on a word or half-way through one. Byte offsets are 32-bit
// (the host asserts a weight matrix is under 4 GiB).
#ifndef VKLM_QUANT_GLSL
#define VKLM_QUANT_GLSL

// The fp16 value at an even byte offset.
float wq_half(uint off) { return unpackHalf2x16(w_[off >> 2])[(off >> 1) & 1u]; }

// The 4 bytes at an even byte offset, little-endian (the word past the end is read only when
// off is not a multiple of 4, and then it holds bytes of the data).
uint wq_word(uint off) {
  uint w0 = w_[off >> 2];
  if ((off & 3u) == 0u) return w0;
  return (w0 >> 16) | (w_[(off >> 2) + 1u] << 16);
}

// Byte b (0..3) of word w as a signed / unsigned integer.
int wq_s8(uint w, uint b) { return bitfieldExtract(int(w), int(8u * b), 8); }
uint wq_u8(uint w, uint b) { return bitfieldExtract(w, int(8u * b), 8); }

// Element i of a flat Q8_0 / Q4_0 array (a row-major (N,K) matrix with K a multiple of 32 is
// the flat array n*K + k: blocks never straddle rows).
float dq_q8_0(uint i) {
  uint off = (i >> 5) * 34u;
  uint b = off + 2u + (i & 31u);
  return wq_half(off) * float(wq_s8(w_[b >> 2], b & 3u));
}
float dq_q4_0(uint i) {
  uint off = (i >> 5) * 18u, j = i & 31u;
  uint b = off + 2u + (j & 15u);
  uint q = (wq_u8(w_[b >> 2], b & 3u) >> (j < 16u ? 0u : 4u)) & 15u;
  return wq_half(off) * (float(q) - 8.0);
}

#endif

// Loads of an input held in fp32 or in 16 bits (mixed-precision training's saved activations),
// the counterpart of store16.glsl: fmt 0 fp32 (the float's bits), 1 fp16, 2 bf16 (the high half
// of an fp32), 16-bit elements packed two to a word, element i in word i/2, low half first
// (matmul.h's VKLM_GEMM_* numbering, tensor.h). The buffer is declared `uint name[]`.
#ifndef VKLM_LOAD16_GLSL
#define VKLM_LOAD16_GLSL
// Element i's half of its word w (fmt 1 or 2).
float vklm_unpack16(uint w, uint i, uint fmt) {
  if (fmt == 2u) return uintBitsToFloat((i & 1u) != 0u ? w & 0xffff0000u : w << 16);
  return unpackHalf2x16(w)[i & 1u];
}
// Element i of arr in format fmt.
#define VKLM_LOAD_FMT(arr, i, fmt) \
  ((fmt) == 0u ? uintBitsToFloat(arr[i]) : vklm_unpack16(arr[(i) >> 1], (i), (fmt)))
#endif

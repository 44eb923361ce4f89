// Helpers of the AVX-512 quantize and bitpack files (F/BW/VL/DQ only).
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/common/bits.h"

namespace pplx {
namespace avx512 {
namespace {

// Lanes i < n of 16 or 64.
inline __mmask16 tail_mask16(size_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
inline __mmask64 tail_mask64(size_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// Lanes that hold NaN or +-Inf.
inline __mmask16 not_finite(__m512 x) {
  return _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(INFINITY), _CMP_NLT_UQ);
}

// Writes the packed bytes of `n` elements whose x >= 0 bits are in `little`
// (element i at bit i).
inline void store_bits(uint8_t* out, uint64_t little, size_t n, BitOrder order) {
  uint64_t w = order == BitOrder::big ? reverse_bits_in_bytes(little) : little;
  std::memcpy(out, &w, packed_bytes(n));
}

}  // namespace
}  // namespace avx512
}  // namespace pplx

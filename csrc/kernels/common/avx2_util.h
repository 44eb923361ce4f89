// Helpers for the AVX2 translation units only (compiled with AVX2 flags; the
// anonymous namespace keeps them out of other files' symbol tables).
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/common/bits.h"

namespace pplx {
namespace avx2 {
namespace {

// 8 int32 lanes in [-127, 127] to 8 int8 stored at out.
inline void store_i32_as_i8(__m256i v, int8_t* out) {
  __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packs_epi16(p16, p16));
}

// Lanes i < n set, for masked loads of a row's tail.
inline __m256i tail_mask(size_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), idx);
}

// Bit i of the result is lane i's sign test x >= 0 (little order in a byte).
inline uint32_t nonneg_mask(__m256 x) {
  return uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ)));
}

inline uint8_t order_byte(uint32_t little_bits, BitOrder order) {
  return uint8_t(order == BitOrder::big ? reverse_bits_in_bytes(little_bits) : little_bits);
}

// Lanes that hold NaN or +-Inf.
inline __m256 not_finite(__m256 x) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  return _mm256_cmp_ps(_mm256_and_ps(x, abs_mask), _mm256_set1_ps(INFINITY), _CMP_NLT_UQ);
}

}  // namespace
}  // namespace avx2
}  // namespace pplx

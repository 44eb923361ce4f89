// Helpers of the AVX-512 search units (cosine/avx512_vnni.cpp,
// hamming/avx512_vpopcntdq.cpp), compiled with AVX-512 flags; the anonymous
// namespace keeps each unit's copy out of the others' symbols.
#pragma once
// GCC 12 flags the deliberately undefined upper halves inside its own
// reduce/extract intrinsics as uninitialized: a false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common/unroll.h"

namespace pplx {
namespace {

// std::min is a template: an out-of-line copy built here could be shared
// with baseline code by the linker.
inline size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

// Byte lanes i < n set (n <= 64).
inline __mmask64 byte_mask(size_t n) { return n >= 64 ? ~__mmask64(0) : _bzhi_u64(~0ull, unsigned(n)); }

// Lane i of the result is the sum of the 16 int32 lanes of v[i]: a transpose
// tree of 15 adds instead of 16 separate horizontal sums.
inline __attribute__((always_inline)) __m512i reduce16_epi32(const __m512i (&v)[16]) {
  __m512i t[8], u[4], w[2];
  unroll<8>([&](auto j) {  // 128-bit lane L: [a0+a2, b0+b2, a1+a3, b1+b3]
    t[j] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * j], v[2 * j + 1]),
                            _mm512_unpackhi_epi32(v[2 * j], v[2 * j + 1]));
  });
  unroll<4>([&](auto j) {  // lane L: sums over lane L of v[4j .. 4j+3]
    u[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * j], t[2 * j + 1]),
                            _mm512_unpackhi_epi64(t[2 * j], t[2 * j + 1]));
  });
  unroll<2>([&](auto j) {  // pairs of 128-bit lanes folded
    w[j] = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2 * j], u[2 * j + 1], 0x88),
                            _mm512_shuffle_i32x4(u[2 * j], u[2 * j + 1], 0xDD));
  });
  return _mm512_add_epi32(_mm512_shuffle_i32x4(w[0], w[1], 0x88),
                          _mm512_shuffle_i32x4(w[0], w[1], 0xDD));
}

// Tile kernels indexed by their (rows of q, rows of x) shape, 1..4 each.
template <typename Fn, template <int, int> class Tile>
struct TileTable {
  Fn fns[4][4] = {
      {Tile<1, 1>::run, Tile<1, 2>::run, Tile<1, 3>::run, Tile<1, 4>::run},
      {Tile<2, 1>::run, Tile<2, 2>::run, Tile<2, 3>::run, Tile<2, 4>::run},
      {Tile<3, 1>::run, Tile<3, 2>::run, Tile<3, 3>::run, Tile<3, 4>::run},
      {Tile<4, 1>::run, Tile<4, 2>::run, Tile<4, 3>::run, Tile<4, 4>::run},
  };
};

// Writes the QT x RT sums of acc (row-major) to out, less corr[a] in row a.
template <int QT, int RT>
inline __attribute__((always_inline)) void store_sums(const __m512i (&acc)[QT * RT],
                                                      const int32_t* corr, int32_t* out,
                                                      size_t out_stride) {
  alignas(64) int32_t s[16];
  if constexpr (QT * RT == 16) {
    _mm512_store_si512(s, reduce16_epi32(acc));
  } else {
    unroll<QT * RT>([&](auto i) { s[i] = _mm512_reduce_add_epi32(acc[i]); });
  }
  for (int a = 0; a < QT; ++a)
    for (int r = 0; r < RT; ++r) out[a * out_stride + r] = s[a * RT + r] - (corr ? corr[a] : 0);
}

}  // namespace
}  // namespace pplx

// Hamming distances, AVX-512 with VPOPCNTDQ: xor, per-lane popcount and add
// on 64-byte chunks, in register tiles of 4 queries x 4 codes whose 16
// accumulators are reduced together by one transpose tree.
#include <algorithm>

#include "kernels/common/avx512_util.h"
#include "pplx/hamming.h"

namespace pplx {
namespace avx512 {
namespace {

using TileFn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, size_t, const int32_t*,
                        int32_t*, size_t);

template <int QT, int RT>
struct HammingTile {
  static void run(const uint8_t* q, size_t qs, const uint8_t* x, size_t xs, size_t bytes,
                  const int32_t*, int32_t* out, size_t os) {
    __m512i acc[QT * RT];
    unroll<QT * RT>([&](auto t) { acc[t] = _mm512_setzero_si512(); });
    for (size_t i = 0; i < bytes; i += 64) {
      const __mmask64 m = byte_mask(bytes - i);  // zero lanes xor to zero
      __m512i xv[RT];
      unroll<RT>([&](auto r) { xv[r] = _mm512_maskz_loadu_epi8(m, x + r * xs + i); });
      unroll<QT>([&](auto a) {
        const __m512i qv = _mm512_maskz_loadu_epi8(m, q + a * qs + i);
        unroll<RT>([&](auto r) {
          acc[a * RT + r] = _mm512_add_epi32(acc[a * RT + r],
                                             _mm512_popcnt_epi32(_mm512_xor_si512(xv[r], qv)));
        });
      });
    }
    store_sums<QT, RT>(acc, nullptr, out, os);
  }
};

const TileTable<TileFn, HammingTile> kTiles;

void hamming_u1(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  for (size_t a = 0; a < nq; a += 4) {
    size_t qt = std::min<size_t>(4, nq - a);
    const uint8_t* qa = q + a * q_stride;
    int32_t* oa = out + a * out_stride;
    size_t j = 0;
    for (; j + 4 <= nx; j += 4)
      kTiles.fns[qt - 1][3](qa, q_stride, x + j * x_stride, x_stride, bytes, nullptr, oa + j,
                            out_stride);
    if (j < nx)
      kTiles.fns[qt - 1][nx - j - 1](qa, q_stride, x + j * x_stride, x_stride, bytes, nullptr,
                                     oa + j, out_stride);
  }
}

size_t first_at_most(const int32_t* d, size_t n, int32_t threshold) {
  const __m512i t = _mm512_set1_epi32(threshold);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    __mmask16 hit = _mm512_mask_cmple_epi32_mask(m, _mm512_maskz_loadu_epi32(m, d + i), t);
    if (hit) return i + size_t(__builtin_ctz(hit));
  }
  return n;
}

}  // namespace

const HammingKernels hamming = {hamming_u1, first_at_most};

}  // namespace avx512
}  // namespace pplx

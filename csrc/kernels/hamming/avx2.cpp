// Hamming distances, AVX2, in register tiles of 4 queries x 2 codes.
// Long codes: nibble-lookup popcount (pshufb) of xor-ed 32-byte chunks, byte
// counts summed by sad_epu8 into 64-bit lanes. Codes up to 64 bytes: scalar
// POPCNT on 64-bit words, which measured faster there (Xeon, AVX2 build:
// 365 vs 352 M pairs/s at 64 bytes, 434 vs 355 at 48; pshufb 202 vs 186 at
// 128 bytes, 57 vs 44 at 512; see benchmarks/README.md).
#include <algorithm>
#include <cstring>

#include "kernels/common/avx2_util.h"
#include "kernels/common/prefetch.h"
#include "kernels/common/unroll.h"
#include "pplx/hamming.h"

namespace pplx {
namespace avx2 {
namespace {

constexpr int kQT = 4, kRT = 2;

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline __m256i load_tail(const uint8_t* p, size_t n) {
  alignas(32) uint8_t buf[32] = {};
  std::memcpy(buf, p, n);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

// Per-byte popcount of v.
inline __m256i popcount_bytes(__m256i v) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0F);
  __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low));
  __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_add_epi8(lo, hi);
}

inline int32_t hsum64(__m256i v) {
  __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return int32_t(_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1));
}

template <int QT, int RT>
void tile_pshufb(const uint8_t* q, size_t qs, const uint8_t* x, size_t xs, size_t bytes,
                 int32_t* out, size_t os) {
  __m256i acc[QT * RT];
  unroll<QT * RT>([&](auto t) { acc[t] = _mm256_setzero_si256(); });
  const __m256i zero = _mm256_setzero_si256();
  auto step = [&](auto load, size_t i) {
    __m256i xv[RT];
    unroll<RT>([&](auto r) { xv[r] = load(x + r * xs + i); });
    unroll<QT>([&](auto a) {
      __m256i qv = load(q + a * qs + i);
      unroll<RT>([&](auto r) {
        __m256i c = popcount_bytes(_mm256_xor_si256(qv, xv[r]));
        acc[a * RT + r] = _mm256_add_epi64(acc[a * RT + r], _mm256_sad_epu8(c, zero));
      });
    });
  };
  size_t i = 0;
  for (; i + 32 <= bytes; i += 32) step([](const uint8_t* p) { return load32(p); }, i);
  if (i < bytes) {
    size_t n = bytes - i;
    step([n](const uint8_t* p) { return load_tail(p, n); }, i);
  }
  unroll<QT>([&](auto a) { unroll<RT>([&](auto r) { out[a * os + r] = hsum64(acc[a * RT + r]); }); });
}

inline uint64_t load_word(const uint8_t* p, size_t n) {
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  return w;
}

template <int QT, int RT>
void tile_popcnt(const uint8_t* q, size_t qs, const uint8_t* x, size_t xs, size_t bytes,
                 int32_t* out, size_t os) {
  uint64_t acc[QT * RT] = {};
  auto step = [&](size_t i, size_t n) {
    unroll<QT>([&](auto a) {
      const uint64_t u = load_word(q + a * qs + i, n);
      unroll<RT>([&](auto r) { acc[a * RT + r] += _mm_popcnt_u64(u ^ load_word(x + r * xs + i, n)); });
    });
  };
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) step(i, 8);
  if (i < bytes) step(i, bytes - i);
  unroll<QT>([&](auto a) { unroll<RT>([&](auto r) { out[a * os + r] = int32_t(acc[a * RT + r]); }); });
}

using TileFn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, size_t, int32_t*, size_t);
template <template <int, int> class T>
struct Tiles {
  TileFn fns[kQT][kRT] = {{T<1, 1>::run, T<1, 2>::run}, {T<2, 1>::run, T<2, 2>::run},
                          {T<3, 1>::run, T<3, 2>::run}, {T<4, 1>::run, T<4, 2>::run}};
};
template <int QT, int RT>
struct Pshufb { static constexpr TileFn run = tile_pshufb<QT, RT>; };
template <int QT, int RT>
struct Popcnt { static constexpr TileFn run = tile_popcnt<QT, RT>; };
const Tiles<Pshufb> kPshufbTiles;
const Tiles<Popcnt> kPopcntTiles;

constexpr size_t kPopcntMaxBytes = 64;

void hamming_u1(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  const auto& tiles = bytes <= kPopcntMaxBytes ? kPopcntTiles.fns : kPshufbTiles.fns;
  for (size_t a = 0; a < nq; a += kQT) {
    size_t qt = std::min<size_t>(kQT, nq - a);
    for (size_t j = 0; j < nx; j += kRT) {
      size_t rt = std::min<size_t>(kRT, nx - j);
      prefetch_ahead(x + j * x_stride, rt * x_stride);
      tiles[qt - 1][rt - 1](q + a * q_stride, q_stride, x + j * x_stride, x_stride, bytes,
                            out + a * out_stride + j, out_stride);
    }
  }
}

size_t first_at_most(const int32_t* d, size_t n, int32_t threshold) {
  const __m256i t = _mm256_set1_epi32(threshold);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + i));
    int hit = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(v, t)));
    if (hit != 0xFF) return i + size_t(__builtin_ctz(unsigned(~hit & 0xFF)));
  }
  for (; i < n; ++i)
    if (d[i] <= threshold) return i;
  return n;
}

}  // namespace

const HammingKernels hamming = {hamming_u1, first_at_most};

}  // namespace avx2
}  // namespace pplx

// int8 dots and cosine scores, AVX2.
//
// AVX2 has no signed x signed byte dot product. maddubs multiplies unsigned
// by signed bytes and adds pairs into int16 with saturation; with inputs in
// [-127, 127], maddubs(|x|, sign(q, x)) = pairs of q * x, each pair at most
// 2 * 127 * 127 = 32258 in magnitude, so nothing saturates. madd_epi16 with
// ones then widens the pairs to int32. Measured against sign extension to
// int16 + madd_epi16 (same tiles, Xeon, AVX2 build): 54 vs 44 GMAC/s at
// D = 1024, 49 vs 42 at D = 384 (benchmarks/README.md).
//
// Register tiles of 4 queries x 2 rows (8 accumulators, reduced together).
// Tails of a row go through a zero-padded 32-byte copy.
#include <algorithm>
#include <cstring>

#include "kernels/common/avx2_util.h"
#include "kernels/common/prefetch.h"
#include "kernels/common/unroll.h"
#include "pplx/cosine.h"
#include "pplx/tuning.h"

namespace pplx {
namespace avx2 {
namespace {

constexpr int kQT = 4, kRT = 2;

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline __m256i load_tail(const int8_t* p, size_t n) {
  alignas(32) int8_t buf[32] = {};
  std::memcpy(buf, p, n);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Lane i of the result is the sum of the 8 lanes of v[i].
inline __m256i reduce8(const __m256i (&v)[8]) {
  __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
  __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
  __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                          _mm256_permute2x128_si256(u0, u1, 0x31));
}

// With Check, also returns whether a row byte was -128 (the signed minimum
// of the rows); only a call's first query tile checks.
template <bool Check, int QT, int RT>
bool tile(const int8_t* q, size_t qs, const int8_t* x, size_t xs, size_t dim, int32_t* out,
          size_t os, size_t pf) {
  __m256i acc[QT * RT];
  unroll<QT * RT>([&](auto t) { acc[t] = _mm256_setzero_si256(); });
  __m256i low = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  auto step = [&](auto load, size_t i) {
    __m256i xv[RT], ax[RT];
    unroll<RT>([&](auto r) {
      xv[r] = load(x + r * xs + i);
      ax[r] = _mm256_abs_epi8(xv[r]);
      if (Check) {  // first pass over these rows: also fetch rows pf bytes ahead
        low = _mm256_min_epi8(low, xv[r]);
        if (i % 64 == 0) prefetch_ahead(x + r * xs + i, 32, pf);
      }
    });
    unroll<QT>([&](auto a) {
      __m256i qv = load(q + a * qs + i);
      unroll<RT>([&](auto r) {
        __m256i pairs = _mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(qv, xv[r]));
        acc[a * RT + r] = _mm256_add_epi32(acc[a * RT + r], _mm256_madd_epi16(pairs, ones));
      });
    });
  };
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) step([](const int8_t* p) { return load32(p); }, i);
  if (i < dim) {
    size_t n = dim - i;
    step([n](const int8_t* p) { return load_tail(p, n); }, i);
  }
  alignas(32) int32_t s[8];
  if constexpr (QT * RT == 8) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(s), reduce8(acc));
  } else {
    unroll<QT * RT>([&](auto k) { s[k] = hsum(acc[k]); });
  }
  for (int a = 0; a < QT; ++a)
    for (int r = 0; r < RT; ++r) out[a * os + r] = s[a * RT + r];
  return Check && _mm256_movemask_epi8(_mm256_cmpeq_epi8(low, _mm256_set1_epi8(-128))) != 0;
}

using TileFn = bool (*)(const int8_t*, size_t, const int8_t*, size_t, size_t, int32_t*, size_t,
                        size_t);
template <bool C>
struct Tiles {
  TileFn fns[kQT][kRT] = {{tile<C, 1, 1>, tile<C, 1, 2>}, {tile<C, 2, 1>, tile<C, 2, 2>},
                          {tile<C, 3, 1>, tile<C, 3, 2>}, {tile<C, 4, 1>, tile<C, 4, 2>}};
};
const Tiles<true> kCheckedTiles;
const Tiles<false> kPlainTiles;

bool dots_i8(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
             size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  const size_t pf = knob(Knob::cosine_prefetch);
  // One query: with the row-order knob, one row at a time (a single
  // sequential stream for the hardware prefetcher) instead of 1 x 2 tiles.
  const size_t row_tile = nq == 1 && knob(Knob::cosine_row_order) ? 1 : kRT;
  // Rows outer, queries inner: a tile of rows comes from memory once and
  // stays in L1 while every query tile runs over it (the first one checks it).
  for (size_t j = 0; j < nx; j += row_tile) {
    size_t rt = std::min<size_t>(row_tile, nx - j);
    for (size_t a = 0; a < nq; a += kQT) {
      size_t qt = std::min<size_t>(kQT, nq - a);
      const auto& tiles = a == 0 ? kCheckedTiles.fns : kPlainTiles.fns;
      if (tiles[qt - 1][rt - 1](q + a * q_stride, q_stride, x + j * x_stride, x_stride, dim,
                                out + a * out_stride + j, out_stride, pf))
        return true;
    }
  }
  return false;
}

int32_t sumsq_i8(const int8_t* x, size_t dim) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m256i a = _mm256_abs_epi8(load32(x + i));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, a), ones));
  }
  int32_t s = hsum(acc);
  for (; i < dim; ++i) s += int32_t(x[i]) * int32_t(x[i]);
  return s;
}

bool has_min_i8(const int8_t* x, size_t rows, size_t stride, size_t dim) {
  __m256i lo = _mm256_setzero_si256();
  bool found = false;
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* row = x + r * stride;
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) lo = _mm256_min_epi8(lo, load32(row + i));
    for (; i < dim; ++i) found |= row[i] == -128;
  }
  return found || _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, _mm256_set1_epi8(-128))) != 0;
}

void cos_scores(const int32_t* dots, const float* rx, float rq, size_t n, float* out) {
  const __m256 vq = _mm256_set1_ps(rq), lo = _mm256_set1_ps(-1.0f), hi = _mm256_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 d = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dots + i)));
    __m256 s = _mm256_mul_ps(_mm256_mul_ps(d, vq), _mm256_loadu_ps(rx + i));
    _mm256_storeu_ps(out + i, _mm256_min_ps(hi, _mm256_max_ps(lo, s)));
  }
  for (; i < n; ++i) out[i] = std::min(1.0f, std::max(-1.0f, (float(dots[i]) * rq) * rx[i]));
}

size_t first_at_least(const float* s, size_t n, float threshold) {
  const __m256 t = _mm256_set1_ps(threshold);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + i), t, _CMP_GE_OQ));
    if (hit) return i + size_t(__builtin_ctz(unsigned(hit)));
  }
  for (; i < n; ++i)
    if (s[i] >= threshold) return i;
  return n;
}

}  // namespace

const CosineKernels cosine = {dots_i8, sumsq_i8, has_min_i8, cos_scores, first_at_least};

}  // namespace avx2
}  // namespace pplx

// int8 dots and cosine scores, AVX2.
//
// AVX2 has no signed x signed byte dot product. maddubs multiplies unsigned
// by signed bytes and adds pairs into int16 with saturation, so both
// kernels feed it |x| and a signed byte that carries the sign of x; with
// inputs in [-127, 127] no pair saturates. madd_epi16 with ones then widens
// the pairs to int32. Two microkernels (the choice is the speed-only knob
// cosine_packed_min_queries, pplx/tuning.h):
//
// - Row-wise (fewer queries): maddubs(|x|, sign(q, x)), pairs at most
//   2 * 127 * 127 = 32258. Register tiles of 4 queries x 2 rows over the
//   rows in place (8 accumulators, reduced together); tails of a row go
//   through a zero-padded 32-byte copy. Measured against sign extension to
//   int16 + madd_epi16 (same tiles, Xeon): 54 vs 44 GMAC/s at D = 1024.
// - Packed (from cosine_packed_min_queries queries): the rows are repacked
//   16 at a time so that a vector holds the same 4-byte group of 8 rows,
//   stored as |x| and as the mask x < 0. A broadcast 4-byte group of a query
//   then meets 8 rows at once, and the accumulators hold 8 finished dots
//   each: no horizontal sums. Instead of vpsignb it flips the query bytes
//   where x < 0 with a plain xor: for x < 0, |x| * ~q = x * q - |x|, so
//     dot(q, x) = sum |x| * (q ^ m) + sum over x < 0 of |x|,
//   the second sum a per-row constant found while packing (pairs at most
//   2 * 127 * 128 = 32512: no saturation). On Zen 4 vpsignb, vpabsb and
//   both multiplies share two pipes while xor and add run on all four:
//   3 of the 4 instructions per 32 MACs on two pipes (row-wise) against 2
//   of 4 (packed); benchmarks/README.md has the measurements.
#include <algorithm>
#include <cstring>

#include "kernels/common/avx2_util.h"
#include "kernels/common/prefetch.h"
#include "kernels/common/scratch.h"
#include "kernels/cosine/padded_queries.h"
#include "kernels/common/unroll.h"
#include "pplx/cosine.h"
#include "pplx/tuning.h"

namespace pplx {
namespace avx2 {
namespace {

constexpr int kQT = 4, kRT = 2;

inline __m256i load32(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

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

bool dots_rowwise(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
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

// ---- packed path

constexpr size_t kPackRows = 16;  // rows per packed tile: two vectors of 8
// Bytes per 4-byte group of a tile: |x| of rows 0-7 and 8-15, then the
// masks (0xFF where x < 0) of the same rows.
constexpr size_t kGroupBytes = 4 * kPackRows * 2;
constexpr int kPackQT = 4;  // queries per register tile: 8 accumulators

// Transposes 8 vectors of 8 dwords in place: r[i][j] becomes r[j][i].
inline __attribute__((always_inline)) void transpose8(__m256i (&r)[8]) {
  __m256i t[8], u[8];
  unroll<4>([&](auto i) {
    t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  });
  unroll<2>([&](auto i) {  // u[4i + j]: in each 128-bit lane L, column 4L + j of rows 4i..4i+3
    u[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  });
  unroll<4>([&](auto j) {
    r[j] = _mm256_permute2x128_si256(u[j], u[4 + j], 0x20);
    r[j + 4] = _mm256_permute2x128_si256(u[j], u[4 + j], 0x31);
  });
}

// Packs `rows` rows (at most 8; the others are zero) x `cols` bytes from x
// (at most 32, zero-padded) into groups 0 .. n-1 of dst, one group every
// kGroupBytes: |x| at dst, the masks 2 * 32 bytes further. Folds the bytes
// into `low` (for the -128 check) and returns, per row (dword lane), pairs
// of the |x| of its negative bytes (at most 8 x 2 x 127 per pair).
inline __attribute__((always_inline)) __m256i pack_block(const int8_t* x, size_t rows, size_t xs,
                                                         size_t cols, size_t n, uint8_t* dst,
                                                         __m256i& low) {
  const __m256i zero = _mm256_setzero_si256(), ones8 = _mm256_set1_epi8(1);
  __m256i r[8];
  if (rows == 8 && cols == 32) {
    unroll<8>([&](auto i) { r[i] = load32(x + i * xs); });
  } else {
    unroll<8>([&](auto i) { r[i] = size_t(i) < rows ? load_tail(x + i * xs, cols) : zero; });
  }
  // The column-wise walk over 8 rows is not a pattern the hardware
  // prefetcher follows well: fetch the same bytes of the next tile's rows,
  // into L2 (the tile is packed and reread meanwhile; into L1, topk M = 16
  // from DRAM on Zen 4 ran at 61 M pairs per CPU-second, into L2 at 71).
  unroll<8>([&](auto i) {
    _mm_prefetch(reinterpret_cast<const char*>(x) + (i + kPackRows) * xs, _MM_HINT_T2);
    low = _mm256_min_epi8(low, r[i]);
  });
  transpose8(r);
  __m256i pairs = zero;
  unroll<8>([&](auto g) {
    if (size_t(g) < n) {
      const __m256i ax = _mm256_abs_epi8(r[g]), m = _mm256_cmpgt_epi8(zero, r[g]);
      pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(_mm256_and_si256(ax, m), ones8));
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + g * kGroupBytes), ax);
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + g * kGroupBytes + 64), m);
    }
  });
  return pairs;
}

// Packs rows x [rows <= 16, dim] into one tile (64-byte aligned, (dim + 3)
// / 4 groups; bytes past dim and rows past `rows` are 0) and writes each
// row's sum of |x| over its negative bytes to corr[16]. Returns whether
// any byte of x was -128.
bool pack_tile(const int8_t* x, size_t rows, size_t xs, size_t dim, uint8_t* tile, int32_t* corr) {
  const size_t groups = (dim + 3) / 4;
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i low = _mm256_setzero_si256(), neg[2] = {low, low};
  for (size_t c = 0; c < dim; c += 32) {
    const size_t n = std::min<size_t>(8, groups - c / 4), cols = std::min<size_t>(32, dim - c);
    for (size_t v = 0; v < 2; ++v) {  // rows 8v .. 8v + 7
      const size_t r = rows > 8 * v ? std::min<size_t>(8, rows - 8 * v) : 0;
      const __m256i pairs = pack_block(x + 8 * v * xs + c, r, xs, cols, n,
                                       tile + (c / 4) * kGroupBytes + 32 * v, low);
      neg[v] = _mm256_add_epi32(neg[v], _mm256_madd_epi16(pairs, ones16));
    }
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(corr), neg[0]);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(corr + 8), neg[1]);
  return _mm256_movemask_epi8(_mm256_cmpeq_epi8(low, _mm256_set1_epi8(-128))) != 0;
}

// Dots of QT queries (1..4) with one packed tile of 16 rows, written to 16
// columns of each query's row of out. Query rows must hold a whole number
// of 4-byte groups (the caller pads them). The accumulators start at the
// rows' corrections.
template <int QT>
void packed_tile(const int8_t* q, size_t qs, const uint8_t* tile, size_t groups,
                 const int32_t* corr, int32_t* out, size_t os) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr));
  const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr + 8));
  __m256i acc[2 * QT];
  unroll<QT>([&](auto a) { acc[2 * a] = c0, acc[2 * a + 1] = c1; });
  for (size_t k = 0; k < groups; ++k) {
    const uint8_t* g = tile + k * kGroupBytes;
    const __m256i ax0 = load32(g), ax1 = load32(g + 32), m0 = load32(g + 64), m1 = load32(g + 96);
    unroll<QT>([&](auto a) {
      int32_t w;
      std::memcpy(&w, q + a * qs + 4 * k, 4);
      const __m256i qv = _mm256_set1_epi32(w);
      acc[2 * a] = _mm256_add_epi32(
          acc[2 * a], _mm256_madd_epi16(_mm256_maddubs_epi16(ax0, _mm256_xor_si256(qv, m0)), ones));
      acc[2 * a + 1] = _mm256_add_epi32(
          acc[2 * a + 1], _mm256_madd_epi16(_mm256_maddubs_epi16(ax1, _mm256_xor_si256(qv, m1)), ones));
    });
  }
  unroll<QT>([&](auto a) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + a * os), acc[2 * a]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + a * os + 8), acc[2 * a + 1]);
  });
}

using PackedTileFn = void (*)(const int8_t*, size_t, const uint8_t*, size_t, const int32_t*,
                              int32_t*, size_t);
const PackedTileFn kPackedTiles[kPackQT] = {packed_tile<1>, packed_tile<2>, packed_tile<3>,
                                            packed_tile<4>};

// Tile by tile: 16 rows are packed (into a buffer that stays in L1/L2) and
// every query tile runs over them before the next 16.
bool dots_packed(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
                 size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  thread_local Scratch64 packed, padded;
  const size_t groups = (dim + 3) / 4;
  uint8_t* tile = packed.get(groups * kGroupBytes);
  if (!tile) return dots_rowwise(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
  if (!pad_queries_to_groups(padded, q, q_stride, nq, dim))
    return dots_rowwise(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
  alignas(32) int32_t corr[kPackRows];
  for (size_t j = 0; j < nx; j += kPackRows) {
    const size_t rows = std::min(kPackRows, nx - j);
    if (pack_tile(x + j * x_stride, rows, x_stride, dim, tile, corr)) return true;
    for (size_t a = 0; a < nq; a += kPackQT) {
      const size_t qt = std::min<size_t>(kPackQT, nq - a);
      int32_t* o = out + a * out_stride + j;
      if (rows == kPackRows) {
        kPackedTiles[qt - 1](q + a * q_stride, q_stride, tile, groups, corr, o, out_stride);
      } else {  // the last, partial tile: through a full-width buffer
        int32_t buf[kPackQT * kPackRows];
        kPackedTiles[qt - 1](q + a * q_stride, q_stride, tile, groups, corr, buf, kPackRows);
        for (size_t i = 0; i < qt; ++i) std::memcpy(o + i * out_stride, buf + i * kPackRows, rows * 4);
      }
    }
  }
  return false;
}

bool dots_i8(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
             size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  const bool one_row_order = nq == 1 && knob(Knob::cosine_row_order);
  if (!one_row_order && nq >= knob(Knob::cosine_packed_min_queries) && nx >= kPackRows)
    return dots_packed(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
  return dots_rowwise(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
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

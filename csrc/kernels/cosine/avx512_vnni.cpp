// int8 dots and cosine scores, AVX-512 with VNNI (built with F/BW/VL/DQ +
// VNNI only; chosen at run time only where CPUID reports AVX512_VNNI).
//
// vpdpbusd multiplies unsigned by signed bytes, so a signed x signed dot
// cannot go in directly (SimSIMD issue 91). Flipping the top bit of the row
// bytes gives x + 128 in [1, 255] as unsigned, and
//   dot(q, x) = sum (x + 128) * q - 128 * sum(q),
// where sum(q) is computed once per query. With |q| <= 127 and dim <= 65536
// every partial sum fits int32 (65536 * 255 * 127 < 2^31).
//
// Three microkernels (the choice between them is a speed-only knob,
// pplx/tuning.h):
// - Packed (from cosine_packed_min_queries, 8 by default): the rows of a call are first repacked, 32 at
//   a time, so that each 64-byte vector holds the same 4-byte group of 16
//   rows (a 16 x 16 dword transpose, flipped on the way). A broadcast 4-byte
//   group of a query then feeds vpdpbusd against 16 rows at once, and the
//   accumulators hold 16 finished dots each: no horizontal sums. Tiles of
//   8 queries x 32 rows, 16 accumulators; the repacking costs about one
//   shuffle per 4 bytes, paid once for all queries of the call.
// - Row-wise (fewer queries, where the scan is memory bound): tiles of up to
//   4 queries x 4 rows over the rows in place, reduced by a transpose tree.
// - One query with cosine_row_order (the default): rows one at a time in
//   memory order, a single stream for the hardware prefetcher; on a Zen 4
//   core 10 GB/s with 1 x 4 tiles, 20-23 GB/s this way.
#include <cstring>

#include "kernels/common/avx512_util.h"
#include "kernels/common/scratch.h"
#include "kernels/cosine/padded_queries.h"
#include "pplx/cosine.h"
#include "pplx/tuning.h"

namespace pplx {
namespace avx512_vnni {
namespace {

using TileFn = bool (*)(const int8_t*, size_t, const int8_t*, size_t, size_t, const int32_t*,
                        int32_t*, size_t, size_t);

// With Check, also returns whether a row byte was -128: flipped, it is 0,
// so the unsigned minimum of the flipped rows is 0 (masked-off lanes flip to
// 0x80). Only a call's first query tile checks (the others see the same
// rows); it also prefetches the rows pf bytes ahead (0: none).
template <bool Check, int QT, int RT>
struct DotTile {
  static bool run(const int8_t* q, size_t qs, const int8_t* x, size_t xs, size_t dim,
                  const int32_t* corr, int32_t* out, size_t os, size_t pf) {
    __m512i acc[QT * RT];
    unroll<QT * RT>([&](auto t) { acc[t] = _mm512_setzero_si512(); });
    __m512i low = _mm512_set1_epi8(char(0xFF));
    const __m512i flip = _mm512_set1_epi8(char(0x80));
    // One loop with a mask on every load (free on AVX-512) instead of a
    // separate tail step.
    for (size_t i = 0; i < dim; i += 64) {
      const __mmask64 m = byte_mask(dim - i);  // zero lanes: (0 + 128) * 0
      __m512i xv[RT];
      unroll<RT>([&](auto r) {
        xv[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + r * xs + i), flip);
        if (Check) {
          low = _mm512_min_epu8(low, xv[r]);
          if (pf) _mm_prefetch(reinterpret_cast<const char*>(x + r * xs + i + pf), _MM_HINT_T0);
        }
      });
      unroll<QT>([&](auto a) {
        const __m512i qv = _mm512_maskz_loadu_epi8(m, q + a * qs + i);
        unroll<RT>([&](auto r) {
          acc[a * RT + r] = _mm512_dpbusd_epi32(acc[a * RT + r], xv[r], qv);
        });
      });
    }
    store_sums<QT, RT>(acc, corr, out, os);
    return Check && _mm512_cmpeq_epi8_mask(low, _mm512_setzero_si512()) != 0;
  }
};

template <int QT, int RT>
using CheckedTile = DotTile<true, QT, RT>;
template <int QT, int RT>
using PlainTile = DotTile<false, QT, RT>;
const TileTable<TileFn, CheckedTile> kCheckedTiles;
const TileTable<TileFn, PlainTile> kPlainTiles;

// 128 * sum(q): vpdpbusd of 0x80 bytes (unsigned 128) with q.
int32_t offset_correction(const int8_t* q, size_t dim) {
  const __m512i c128 = _mm512_set1_epi8(char(0x80));
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < dim; i += 64)
    acc = _mm512_dpbusd_epi32(acc, c128, _mm512_maskz_loadu_epi8(byte_mask(dim - i), q + i));
  return _mm512_reduce_add_epi32(acc);
}

// ---- one query, rows in memory order

// One query against rows read front to back, one row at a time, with four
// accumulators: a single sequential stream, which the hardware prefetcher
// follows best (a 1 x 4 tile reads four rows in turn). Checks for -128 like
// the checked tiles.
bool dots_one_query(const int8_t* q, const int8_t* x, size_t nx, size_t xs, size_t dim,
                    int32_t* out, size_t pf) {
  const int32_t corr = offset_correction(q, dim);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m512i low = _mm512_set1_epi8(char(0xFF));
  for (size_t j = 0; j < nx; ++j) {
    const int8_t* row = x + j * xs;
    __m512i acc[4];
    unroll<4>([&](auto u) { acc[u] = _mm512_setzero_si512(); });
    size_t i = 0;
    for (; i + 256 <= dim; i += 256) {
      unroll<4>([&](auto u) {
        if (pf) _mm_prefetch(reinterpret_cast<const char*>(row + i + 64 * u + pf), _MM_HINT_T0);
        const __m512i xv = _mm512_xor_si512(_mm512_loadu_si512(row + i + 64 * u), flip);
        low = _mm512_min_epu8(low, xv);
        acc[u] = _mm512_dpbusd_epi32(acc[u], xv, _mm512_loadu_si512(q + i + 64 * u));
      });
    }
    for (; i < dim; i += 64) {
      const __mmask64 m = byte_mask(dim - i);
      if (pf) _mm_prefetch(reinterpret_cast<const char*>(row + i + pf), _MM_HINT_T0);
      const __m512i xv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, row + i), flip);
      low = _mm512_min_epu8(low, xv);
      acc[0] = _mm512_dpbusd_epi32(acc[0], xv, _mm512_maskz_loadu_epi8(m, q + i));
    }
    out[j] = _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]),
                                                      _mm512_add_epi32(acc[2], acc[3]))) - corr;
  }
  return _mm512_cmpeq_epi8_mask(low, _mm512_setzero_si512()) != 0;
}

// ---- row-wise path

bool dots_rowwise(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
                  size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  int32_t corr[4];
  const size_t pf = knob(Knob::cosine_prefetch);
  // Rows outer, queries inner: a tile of 4 rows comes from memory once and
  // stays in L1 while every query tile runs over it (the first one checks it).
  for (size_t j = 0; j < nx; j += 4) {
    size_t rt = min_size(4, nx - j);
    for (size_t a = 0; a < nq; a += 4) {
      size_t qt = min_size(4, nq - a);
      if (j == 0 || nq > 4)
        for (size_t i = 0; i < qt; ++i) corr[i] = offset_correction(q + (a + i) * q_stride, dim);
      const auto& tiles = a == 0 ? kCheckedTiles.fns : kPlainTiles.fns;
      if (tiles[qt - 1][rt - 1](q + a * q_stride, q_stride, x + j * x_stride, x_stride, dim,
                                corr, out + a * out_stride + j, out_stride, pf))
        return true;
    }
  }
  return false;
}

// ---- packed path

constexpr size_t kPackRows = 32;  // rows per packed tile: two vectors of 16

// Transposes 16 vectors of 16 dwords in place: r[i][j] becomes r[j][i].
inline __attribute__((always_inline)) void transpose16(__m512i (&r)[16]) {
  __m512i t[16], u[16];
  unroll<8>([&](auto i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  });
  unroll<4>([&](auto i) {  // u[4i + j]: in each 128-bit lane L, column 4L + j of rows 4i..4i+3
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  });
  unroll<4>([&](auto j) {
    __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);       // cols j, j+8; rows 0-7
    __m512i v4 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);       // cols j+4, j+12
    __m512i v8 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);  // rows 8-15
    __m512i v12 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_i32x4(v0, v8, 0x88);
    r[j + 8] = _mm512_shuffle_i32x4(v0, v8, 0xDD);
    r[j + 4] = _mm512_shuffle_i32x4(v4, v12, 0x88);
    r[j + 12] = _mm512_shuffle_i32x4(v4, v12, 0xDD);
  });
}

// Packs rows x [nx, dim] into tiles of 32 rows: for 4-byte group k, tile t
// holds at packed + (t * groups + k) * 128 the 32 rows' groups as unsigned
// x + 128; bytes past dim and rows past nx are 0. Returns whether any byte
// of x was -128.
bool pack_rows(const int8_t* x, size_t nx, size_t xs, size_t dim, uint8_t* packed) {
  const size_t groups = (dim + 3) / 4;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m512i low = _mm512_setzero_si512();
  for (size_t r0 = 0; r0 < nx; r0 += 16) {
    uint8_t* tile = packed + (r0 / kPackRows) * groups * 128 + (r0 % kPackRows) * 4;
    for (size_t c = 0; c < dim; c += 64) {  // 16 groups per step
      const __mmask64 m = byte_mask(dim - c);
      __m512i r[16];
      unroll<16>([&](auto i) {
        if (r0 + i < nx) {
          // Fetch the next 16 rows meanwhile: the column-wise walk over 16
          // rows is not a pattern the hardware prefetcher follows well.
          _mm_prefetch(reinterpret_cast<const char*>(x + (r0 + 16 + i) * xs + c), _MM_HINT_T0);
          __m512i v = _mm512_maskz_loadu_epi8(m, x + (r0 + i) * xs + c);
          low = _mm512_min_epi8(low, v);
          r[i] = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(v, flip));
        } else {
          r[i] = _mm512_setzero_si512();
        }
      });
      transpose16(r);
      const size_t n = min_size(16, groups - c / 4);
      for (size_t g = 0; g < n; ++g)
        _mm512_storeu_si512(tile + (c / 4 + g) * 128, r[g]);
    }
  }
  return _mm512_cmpeq_epi8_mask(low, _mm512_set1_epi8(-128)) != 0;
}

// Dots of QT queries (1..8) with one packed tile of 32 rows, written to 32
// columns of each query's row of out. Query rows must hold a whole number
// of 4-byte groups (the caller pads them). The accumulators start at the
// offset correction and end in plain stores: a tail step, a subtraction or
// masked stores after the loop each make GCC 12 shuffle the accumulators
// between registers on every step.
template <int QT>
void packed_tile(const int8_t* q, size_t qs, const uint8_t* tile, size_t groups,
                 const int32_t* corr, int32_t* out, size_t os) {
  __m512i acc[2 * QT];
  unroll<QT>([&](auto a) { acc[2 * a] = acc[2 * a + 1] = _mm512_set1_epi32(-corr[a]); });
  for (size_t k = 0; k < groups; ++k) {
    const __m512i x0 = _mm512_loadu_si512(tile + k * 128);
    const __m512i x1 = _mm512_loadu_si512(tile + k * 128 + 64);
    unroll<QT>([&](auto a) {
      int32_t g;
      std::memcpy(&g, q + a * qs + 4 * k, 4);
      const __m512i qv = _mm512_set1_epi32(g);
      acc[2 * a] = _mm512_dpbusd_epi32(acc[2 * a], x0, qv);
      acc[2 * a + 1] = _mm512_dpbusd_epi32(acc[2 * a + 1], x1, qv);
    });
  }
  unroll<QT>([&](auto a) {
    _mm512_storeu_si512(out + a * os, acc[2 * a]);
    _mm512_storeu_si512(out + a * os + 16, acc[2 * a + 1]);
  });
}

using PackedTileFn = void (*)(const int8_t*, size_t, const uint8_t*, size_t, const int32_t*,
                              int32_t*, size_t);
const PackedTileFn kPackedTiles[8] = {packed_tile<1>, packed_tile<2>, packed_tile<3>,
                                      packed_tile<4>, packed_tile<5>, packed_tile<6>,
                                      packed_tile<7>, packed_tile<8>};

bool dots_packed(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
                 size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  thread_local Scratch64 packed, padded;
  const size_t groups = (dim + 3) / 4, tiles = (nx + kPackRows - 1) / kPackRows;
  uint8_t* tiles_base = packed.get(tiles * groups * 128);
  if (!tiles_base) return dots_rowwise(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
  if (pack_rows(x, nx, x_stride, dim, tiles_base)) return true;
  if (!pad_queries_to_groups(padded, q, q_stride, nq, dim))
    return dots_rowwise(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
  for (size_t a = 0; a < nq; a += 8) {
    const size_t qt = min_size(8, nq - a);
    int32_t corr[8];
    for (size_t i = 0; i < qt; ++i) corr[i] = offset_correction(q + (a + i) * q_stride, dim);
    for (size_t t = 0; t < tiles; ++t) {
      const size_t rows = min_size(kPackRows, nx - t * kPackRows);
      int32_t* o = out + a * out_stride + t * kPackRows;
      if (rows == kPackRows) {
        kPackedTiles[qt - 1](q + a * q_stride, q_stride, tiles_base + t * groups * 128, groups,
                             corr, o, out_stride);
      } else {  // the last, partial tile: through a full-width buffer
        int32_t buf[8 * kPackRows];
        kPackedTiles[qt - 1](q + a * q_stride, q_stride, tiles_base + t * groups * 128, groups,
                             corr, buf, kPackRows);
        for (size_t i = 0; i < qt; ++i) std::memcpy(o + i * out_stride, buf + i * kPackRows, rows * 4);
      }
    }
  }
  return false;
}

bool dots_i8(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
             size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  if (nq == 1 && knob(Knob::cosine_row_order)) return dots_one_query(q, x, nx, x_stride, dim, out, knob(Knob::cosine_prefetch));
  if (nq >= knob(Knob::cosine_packed_min_queries) && nx >= 16)
    return dots_packed(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
  return dots_rowwise(q, nq, q_stride, x, nx, x_stride, dim, out, out_stride);
}

int32_t sumsq_i8(const int8_t* x, size_t dim) {
  // |x| <= 127 is a valid unsigned and signed byte: x * x = |x| * |x|.
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < dim; i += 64) {
    __m512i v = _mm512_abs_epi8(_mm512_maskz_loadu_epi8(byte_mask(dim - i), x + i));
    acc = _mm512_dpbusd_epi32(acc, v, v);
  }
  return _mm512_reduce_add_epi32(acc);
}

bool has_min_i8(const int8_t* x, size_t rows, size_t stride, size_t dim) {
  __m512i lo = _mm512_setzero_si512();
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* row = x + r * stride;
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) lo = _mm512_min_epi8(lo, _mm512_loadu_si512(row + i));
    if (i < dim) lo = _mm512_min_epi8(lo, _mm512_maskz_loadu_epi8(byte_mask(dim - i), row + i));
  }
  return _mm512_cmpeq_epi8_mask(lo, _mm512_set1_epi8(-128)) != 0;
}

void cos_scores(const int32_t* dots, const float* rx, float rq, size_t n, float* out) {
  const __m512 vq = _mm512_set1_ps(rq), lo = _mm512_set1_ps(-1.0f), hi = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    __m512 d = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, dots + i));
    __m512 s = _mm512_mul_ps(_mm512_mul_ps(d, vq), _mm512_maskz_loadu_ps(m, rx + i));
    _mm512_mask_storeu_ps(out + i, m, _mm512_min_ps(hi, _mm512_max_ps(lo, s)));
  }
}

size_t first_at_least(const float* s, size_t n, float threshold) {
  const __m512 t = _mm512_set1_ps(threshold);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    __mmask16 hit = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, s + i), t, _CMP_GE_OQ);
    if (hit) return i + size_t(__builtin_ctz(hit));
  }
  return n;
}

}  // namespace

const CosineKernels cosine = {dots_i8, sumsq_i8, has_min_i8, cos_scores, first_at_least};

}  // namespace avx512_vnni
}  // namespace pplx

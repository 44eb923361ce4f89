// Hamming distances, AVX-512 with VPOPCNTDQ: xor, per-lane popcount, add
// (built with F/BW/VL/DQ + VPOPCNTDQ only; chosen at run time only where
// CPUID reports AVX512_VPOPCNTDQ).
//
// Three microkernels (the choice between them is a speed-only knob,
// pplx/tuning.h):
// - Packed (from hamming_packed_min_queries, 4 or 8 by default): the codes of a call are first repacked, 32
//   at a time, so that each 64-byte vector holds the same 8-byte word of 8
//   codes (an 8 x 8 qword transpose). A query word broadcast against it
//   gives 8 distances' worth of popcounts per instruction, and the
//   accumulators end as finished distances: no horizontal sums, which
//   otherwise cost as much as the popcounts for 1024-bit codes. Tiles of 4
//   queries x 32 codes, 16 accumulators.
// - Row-wise (fewer queries): 64-byte chunks of a code against the same
//   chunk of up to 4 queries, 4 x 4 tiles reduced by one transpose tree.
// - One query with hamming_row_order (the default): 16 codes each read
//   whole, in memory order, sharing one transpose tree; on a Zen 4 core
//   27 GB/s against 10 for the 1 x 16 tile that reads them column-wise.
#include <cstring>

#include "kernels/common/avx512_util.h"
#include "kernels/common/prefetch.h"
#include "kernels/common/scratch.h"
#include "pplx/hamming.h"
#include "pplx/tuning.h"

namespace pplx {
namespace avx512_vpopcntdq {
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
      unroll<RT>([&](auto r) {
        // Fetch the next codes meanwhile: the row-wise path serves 1-3
        // queries, where the scan waits on memory.
        _mm_prefetch(reinterpret_cast<const char*>(x + (RT + r) * xs + i), _MM_HINT_T0);
        xv[r] = _mm512_maskz_loadu_epi8(m, x + r * xs + i);
      });
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

// One query against 16 codes read in memory order (each code whole before
// the next: one sequential stream for the hardware prefetcher), their 16
// sums reduced by one transpose tree. Prefetches pf bytes ahead (0: none).
void one_query_16(const uint8_t* q, const uint8_t* x, size_t xs, size_t bytes, int32_t* out,
                  size_t pf) {
  __m512i acc[16];
  unroll<16>([&](auto r) {
    acc[r] = _mm512_setzero_si512();
    const uint8_t* row = x + r * xs;
    for (size_t i = 0; i < bytes; i += 64) {
      const __mmask64 m = byte_mask(bytes - i);
      if (pf) _mm_prefetch(reinterpret_cast<const char*>(row + i + pf), _MM_HINT_T0);
      const __m512i d = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, row + i), _mm512_maskz_loadu_epi8(m, q + i));
      acc[r] = _mm512_add_epi32(acc[r], _mm512_popcnt_epi32(d));
    }
  });
  store_sums<1, 16>(acc, nullptr, out, 16);
}

// ---- row-wise path

void hamming_rowwise(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                     size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  for (size_t a = 0; a < nq; a += 4) {
    size_t qt = min_size(4, nq - a);
    const uint8_t* qa = q + a * q_stride;
    int32_t* oa = out + a * out_stride;
    size_t j = 0;
    if (qt == 1 && knob(Knob::hamming_row_order)) {
      const size_t pf = knob(Knob::hamming_prefetch);
      for (; j + 16 <= nx; j += 16) one_query_16(qa, x + j * x_stride, x_stride, bytes, oa + j, pf);
    }
    if (qt == 1)  // one query: 1 x 16 tiles, whose 16 sums share one reduction tree
      for (; j + 16 <= nx; j += 16)
        HammingTile<1, 16>::run(qa, q_stride, x + j * x_stride, x_stride, bytes, nullptr, oa + j,
                                out_stride);
    for (; j < nx; j += 4)
      kTiles.fns[qt - 1][min_size(4, nx - j) - 1](qa, q_stride, x + j * x_stride, x_stride,
                                                          bytes, nullptr, oa + j, out_stride);
  }
}

// ---- packed path

constexpr size_t kPackCodes = 32;  // codes per packed tile: 4 vectors of 8

// Transposes 8 vectors of 8 qwords in place: r[i][j] becomes r[j][i].
inline __attribute__((always_inline)) void transpose8(__m512i (&r)[8]) {
  __m512i t[8], u[8];
  unroll<4>([&](auto i) {  // 128-bit lane L: word 2L (lo) or 2L+1 (hi) of rows 2i, 2i+1
    t[2 * i] = _mm512_unpacklo_epi64(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi64(r[2 * i], r[2 * i + 1]);
  });
  u[0] = _mm512_shuffle_i64x2(t[0], t[2], 0x88);  // words 0, 4 of rows 0-3
  u[1] = _mm512_shuffle_i64x2(t[0], t[2], 0xDD);  // words 2, 6
  u[2] = _mm512_shuffle_i64x2(t[4], t[6], 0x88);  // words 0, 4 of rows 4-7
  u[3] = _mm512_shuffle_i64x2(t[4], t[6], 0xDD);
  u[4] = _mm512_shuffle_i64x2(t[1], t[3], 0x88);  // words 1, 5
  u[5] = _mm512_shuffle_i64x2(t[1], t[3], 0xDD);  // words 3, 7
  u[6] = _mm512_shuffle_i64x2(t[5], t[7], 0x88);
  u[7] = _mm512_shuffle_i64x2(t[5], t[7], 0xDD);
  r[0] = _mm512_shuffle_i64x2(u[0], u[2], 0x88);
  r[4] = _mm512_shuffle_i64x2(u[0], u[2], 0xDD);
  r[2] = _mm512_shuffle_i64x2(u[1], u[3], 0x88);
  r[6] = _mm512_shuffle_i64x2(u[1], u[3], 0xDD);
  r[1] = _mm512_shuffle_i64x2(u[4], u[6], 0x88);
  r[5] = _mm512_shuffle_i64x2(u[4], u[6], 0xDD);
  r[3] = _mm512_shuffle_i64x2(u[5], u[7], 0x88);
  r[7] = _mm512_shuffle_i64x2(u[5], u[7], 0xDD);
}

// Packs codes x [nx, bytes] into tiles of 32: for 8-byte word k, tile t
// holds at packed + (t * words + k) * 256 the 32 codes' words; bytes past
// the code and codes past nx are 0.
void pack_codes(const uint8_t* x, size_t nx, size_t xs, size_t bytes, uint8_t* packed) {
  const size_t words = (bytes + 7) / 8;
  for (size_t r0 = 0; r0 < nx; r0 += 8) {
    uint8_t* tile = packed + (r0 / kPackCodes) * words * 256 + (r0 % kPackCodes) * 8;
    for (size_t c = 0; c < bytes; c += 64) {  // 8 words per step
      const __mmask64 m = byte_mask(bytes - c);
      __m512i r[8];
      unroll<8>([&](auto i) {
        if (r0 + i < nx) {
          _mm_prefetch(reinterpret_cast<const char*>(x + (r0 + 8 + i) * xs + c), _MM_HINT_T0);
          r[i] = _mm512_maskz_loadu_epi8(m, x + (r0 + i) * xs + c);
        } else {
          r[i] = _mm512_setzero_si512();
        }
      });
      transpose8(r);
      const size_t n = min_size(8, words - c / 8);
      for (size_t w = 0; w < n; ++w) _mm512_storeu_si512(tile + (c / 8 + w) * 256, r[w]);
    }
  }
}

// Distances of QT queries (1..4) to one packed tile of 32 codes, written to
// 32 columns of each query's row of out. Query rows must hold a whole
// number of 8-byte words (the caller pads them); plain stores only (see
// cosine/avx512_vnni.cpp on what makes GCC shuffle the accumulators).
template <int QT>
void packed_tile(const uint8_t* q, size_t qs, const uint8_t* tile, size_t words, int32_t* out,
                 size_t os) {
  __m512i acc[4 * QT];
  unroll<4 * QT>([&](auto t) { acc[t] = _mm512_setzero_si512(); });
  for (size_t k = 0; k < words; ++k) {
    __m512i xv[4];
    unroll<4>([&](auto v) { xv[v] = _mm512_loadu_si512(tile + k * 256 + 64 * v); });
    unroll<QT>([&](auto a) {
      int64_t w;
      std::memcpy(&w, q + a * qs + 8 * k, 8);
      const __m512i qv = _mm512_set1_epi64(w);
      unroll<4>([&](auto v) {
        acc[4 * a + v] = _mm512_add_epi64(acc[4 * a + v],
                                          _mm512_popcnt_epi64(_mm512_xor_si512(xv[v], qv)));
      });
    });
  }
  unroll<4>([&](auto v) {
    unroll<QT>([&](auto a) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + a * os + 8 * v),
                          _mm512_cvtepi64_epi32(acc[4 * a + v]));
    });
  });
}

using PackedTileFn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int32_t*, size_t);
const PackedTileFn kPackedTiles[4] = {packed_tile<1>, packed_tile<2>, packed_tile<3>,
                                      packed_tile<4>};

void hamming_packed(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                    size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  thread_local Scratch64 packed, padded;
  const size_t words = (bytes + 7) / 8, tiles = (nx + kPackCodes - 1) / kPackCodes;
  uint8_t* tiles_base = packed.get(tiles * words * 256);
  uint8_t* qpad = bytes % 8 ? padded.get(nq * words * 8) : nullptr;
  if (!tiles_base || (bytes % 8 && !qpad))
    return hamming_rowwise(q, nq, q_stride, x, nx, x_stride, bytes, out, out_stride);
  pack_codes(x, nx, x_stride, bytes, tiles_base);
  if (bytes % 8) {  // zero-padded copy of the queries: whole words only
    std::memset(qpad, 0, nq * words * 8);
    for (size_t i = 0; i < nq; ++i) std::memcpy(qpad + i * words * 8, q + i * q_stride, bytes);
    q = qpad;
    q_stride = words * 8;
  }
  for (size_t a = 0; a < nq; a += 4) {
    const size_t qt = min_size(4, nq - a);
    for (size_t t = 0; t < tiles; ++t) {
      const size_t rows = min_size(kPackCodes, nx - t * kPackCodes);
      int32_t* o = out + a * out_stride + t * kPackCodes;
      if (rows == kPackCodes) {
        kPackedTiles[qt - 1](q + a * q_stride, q_stride, tiles_base + t * words * 256, words, o,
                             out_stride);
      } else {  // the last, partial tile: through a full-width buffer
        int32_t buf[4 * kPackCodes];
        kPackedTiles[qt - 1](q + a * q_stride, q_stride, tiles_base + t * words * 256, words,
                             buf, kPackCodes);
        for (size_t i = 0; i < qt; ++i) std::memcpy(o + i * out_stride, buf + i * kPackCodes, rows * 4);
      }
    }
  }
}

// ---- queries packed (codes read in place)

// Word k of queries 8g .. 8g+7 at qp + (g * words + k) * 8, zero past the
// query or its bytes. Packing the few queries instead of the many codes
// leaves the codes to be read once, front to back, straight from memory.
void pack_queries(const uint8_t* q, size_t nq, size_t qs, size_t bytes, uint64_t* qp) {
  const size_t words = (bytes + 7) / 8, groups = (nq + 7) / 8;
  std::memset(qp, 0, groups * words * 64);
  for (size_t a = 0; a < nq; ++a)
    for (size_t k = 0; k < words; ++k)
      std::memcpy(&qp[((a / 8) * words + k) * 8 + a % 8], q + a * qs + 8 * k, min_size(8, bytes - 8 * k));
}

// Distances of RC codes (1 or 8) to G groups of 8 packed queries: each code
// word is broadcast against the queries' words. nq_left: queries of the
// tile that exist (the rest of the lanes are padding, not written).
template <int RC, int G>
void qpacked_tile(const uint64_t* qp, size_t words, const uint8_t* x, size_t xs, size_t bytes,
                  size_t nq_left, int32_t* out, size_t os) {
  __m512i acc[RC * G];
  unroll<RC * G>([&](auto t) { acc[t] = _mm512_setzero_si512(); });
  const size_t full = bytes / 8;
  auto step = [&](size_t k, auto load_word) {
    __m512i qv[G];
    unroll<G>([&](auto g) { qv[g] = _mm512_load_si512(qp + (g * words + k) * 8); });
    unroll<RC>([&](auto r) {
      const __m512i b = _mm512_set1_epi64(load_word(x + r * xs + 8 * k));
      unroll<G>([&](auto g) {
        acc[r * G + g] = _mm512_add_epi64(acc[r * G + g], _mm512_popcnt_epi64(_mm512_xor_si512(b, qv[g])));
      });
    });
  };
  for (size_t k = 0; k < full; ++k)
    step(k, [](const uint8_t* p) { int64_t w; std::memcpy(&w, p, 8); return w; });
  if (full < words) {
    const size_t n = bytes - 8 * full;
    step(full, [n](const uint8_t* p) { int64_t w = 0; std::memcpy(&w, p, n); return w; });
  }
  unroll<G>([&](auto g) {
    const size_t lanes = min_size(8, nq_left > 8 * size_t(g) ? nq_left - 8 * g : 0);
    if (RC == 8) {
      __m512i r[8];
      unroll<8>([&](auto i) { r[i] = acc[i * G + g]; });
      transpose8(r);  // r[i] lane c: query 8g + i, code c
      for (size_t i = 0; i < lanes; ++i)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (8 * g + i) * os), _mm512_cvtepi64_epi32(r[i]));
    } else {
      alignas(64) int64_t d[8];
      _mm512_store_si512(d, acc[g]);
      for (size_t i = 0; i < lanes; ++i) out[(8 * g + i) * os] = int32_t(d[i]);
    }
  });
}

// Returns false (nothing written) when the scratch memory is not available.
bool hamming_qpacked(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                     size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  thread_local Scratch64 buf;
  const size_t words = (bytes + 7) / 8, groups = (nq + 7) / 8;
  uint64_t* qp = reinterpret_cast<uint64_t*>(buf.get(groups * words * 64));
  if (!qp) return false;
  pack_queries(q, nq, q_stride, bytes, qp);
  // The 8 codes of a tile are one sequential read; fetching the codes pf
  // bytes ahead meanwhile (from L3 or memory) keeps the popcounts fed (Zen
  // 4, M=16 over 25.6 MB, one core: 829 -> 938 M pairs/s at 2048 bytes).
  const size_t pf = knob(Knob::hamming_qpacked_prefetch);
  for (size_t g = 0; g < groups; g += 2) {
    const uint64_t* qg = qp + g * words * 8;
    const size_t left = nq - 8 * g;
    int32_t* o = out + 8 * g * out_stride;
    size_t j = 0;
    if (groups - g >= 2) {
      for (; j + 8 <= nx; j += 8) {
        prefetch_ahead(x + j * x_stride, 8 * x_stride, pf);
        qpacked_tile<8, 2>(qg, words, x + j * x_stride, x_stride, bytes, left, o + j, out_stride);
      }
      for (; j < nx; ++j) qpacked_tile<1, 2>(qg, words, x + j * x_stride, x_stride, bytes, left, o + j, out_stride);
    } else {
      for (; j + 8 <= nx; j += 8) {
        prefetch_ahead(x + j * x_stride, 8 * x_stride, pf);
        qpacked_tile<8, 1>(qg, words, x + j * x_stride, x_stride, bytes, left, o + j, out_stride);
      }
      for (; j < nx; ++j) qpacked_tile<1, 1>(qg, words, x + j * x_stride, x_stride, bytes, left, o + j, out_stride);
    }
  }
  return true;
}

void hamming_u1(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  if (nq >= knob(Knob::hamming_packed_min_queries) && nq < knob(Knob::hamming_code_packing_min_queries) &&
      hamming_qpacked(q, nq, q_stride, x, nx, x_stride, bytes, out, out_stride))
    return;
  if (nq >= knob(Knob::hamming_packed_min_queries) && nx >= 16)
    hamming_packed(q, nq, q_stride, x, nx, x_stride, bytes, out, out_stride);
  else
    hamming_rowwise(q, nq, q_stride, x, nx, x_stride, bytes, out, out_stride);
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

}  // namespace avx512_vpopcntdq
}  // namespace pplx

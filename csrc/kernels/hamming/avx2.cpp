// Hamming distances, AVX2.
//
// Packed (from the hamming_packed_min_queries knob, 8 by default, and 32 or
// more codes): codes are repacked into
// nibble planes, 16 codes per 32-byte vector (see pack_codes), and one
// pshufb per query byte, with a table made from that byte, turns 32 code
// nibbles into their distances to the query's nibbles: 2 instructions per
// 16 codes x 8 bits, against about 9 per 32 bytes of one pair for the
// row-wise lookup below.
//
// Row-wise (fewer queries): register tiles of 4 queries x 2 codes (one
// query: 1 x 1 in memory order with the hamming_row_order knob). Codes up
// to hamming_popcnt_max_bytes (64 by default): scalar POPCNT on 64-bit
// words; longer: nibble-lookup popcount (pshufb) of xor-ed 32-byte chunks,
// byte counts summed by sad_epu8 into 64-bit lanes (Xeon, AVX2 build: 365
// vs 352 M pairs/s at 64 bytes, 434 vs 355 at 48; pshufb 202 vs 186 at 128
// bytes, 57 vs 44 at 512; see benchmarks/README.md). The tuner measures
// the crossing on each CPU.
#include <algorithm>
#include <cstring>

#include "kernels/common/avx2_util.h"
#include "kernels/common/prefetch.h"
#include "kernels/common/scratch.h"
#include "kernels/common/unroll.h"
#include "pplx/hamming.h"
#include "pplx/tuning.h"

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


// ---- packed path

// kNibble.t[v]: the pshufb table of query byte v. Low 16 bytes:
// popcount(u ^ (v & 15)) at index u; high 16: popcount(u ^ (v >> 4)).
// constexpr, so it is constant data: no initializer compiled with AVX2
// flags runs at load time.
struct NibbleTables {
  alignas(32) uint8_t t[256][32];
};
constexpr int popcount4(unsigned u) { return int((u & 1) + ((u >> 1) & 1) + ((u >> 2) & 1) + ((u >> 3) & 1)); }
constexpr NibbleTables make_nibble_tables() {
  NibbleTables n{};
  for (unsigned v = 0; v < 256; ++v)
    for (unsigned u = 0; u < 16; ++u) {
      n.t[v][u] = uint8_t(popcount4(u ^ (v & 15)));
      n.t[v][16 + u] = uint8_t(popcount4(u ^ (v >> 4)));
    }
  return n;
}
constexpr NibbleTables kNibble = make_nibble_tables();

constexpr size_t kPackCodes = 32;  // codes per packed tile: two groups of 16
constexpr size_t kByteSteps = 63;  // byte counters gain at most 4 per step
constexpr size_t kWordSteps = 63 * 130;  // 16-bit sums gain at most 8 per byte

// Two 16 x 16 byte transposes at once, one per 128-bit lane: r[i][j]
// becomes r[j][i] within each lane. Each round interleaves vector i with
// vector i + 8; four rounds rotate the 8-bit (vector, byte) index by 4,
// which swaps rows and columns.
inline __attribute__((always_inline)) void transpose16x16x2(__m256i (&r)[16]) {
  unroll<4>([&](auto) {
    __m256i t[16];
    unroll<8>([&](auto i) {
      t[2 * i] = _mm256_unpacklo_epi8(r[i], r[i + 8]);
      t[2 * i + 1] = _mm256_unpackhi_epi8(r[i], r[i + 8]);
    });
    unroll<16>([&](auto i) { r[i] = t[i]; });
  });
}

// Packs codes x [nx, bytes] into tiles of 32 codes over bp = bytes rounded
// up to 16: at packed + (t * bp + b) * 64 + 32 * g, code byte b of group g
// (16 codes) of tile t as [low nibbles | high nibbles]. Bytes past the code
// and codes past nx are 0.
void pack_codes(const uint8_t* x, size_t nx, size_t xs, size_t bytes, size_t bp, uint8_t* packed) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (size_t r0 = 0; r0 < nx; r0 += 16) {
    uint8_t* group = packed + (r0 / kPackCodes) * bp * 64 + ((r0 / 16) % 2) * 32;
    const size_t rows = std::min<size_t>(16, nx - r0);
    // The column-wise walk over 16 codes is not a stream the hardware
    // prefetcher follows: fetch the codes a page ahead meanwhile.
    prefetch_ahead(x + r0 * xs, rows * xs);
    for (size_t c = 0; c < bp; c += 32) {  // bytes c .. c+15 in the low lanes, c+16 .. in the high
      __m256i r[16];
      const size_t n = c < bytes ? std::min<size_t>(32, bytes - c) : 0;
      for (size_t i = 0; i < 16; ++i) {
        if (i < rows && n == 32) {
          r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + (r0 + i) * xs + c));
        } else {
          alignas(32) uint8_t buf[32] = {};
          if (i < rows) std::memcpy(buf, x + (r0 + i) * xs + c, n);
          r[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
        }
      }
      transpose16x16x2(r);
      const size_t lanes = c + 16 < bp ? 2 : 1;
      for (size_t b = 0; b < 16; ++b) {
        const __m256i lo = _mm256_and_si256(r[b], low);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(r[b], 4), low);
        _mm256_store_si256(reinterpret_cast<__m256i*>(group + (c + b) * 64), _mm256_permute2x128_si256(lo, hi, 0x20));
        if (lanes == 2)
          _mm256_store_si256(reinterpret_cast<__m256i*>(group + (c + 16 + b) * 64),
                             _mm256_permute2x128_si256(lo, hi, 0x31));
      }
    }
  }
}

// Query tables of a group of qt queries: at tables + (b * qt + a) * 32,
// kNibble's table of byte b of query a (of byte 0 past the code's bytes:
// the packed codes are 0 there, so those steps add nothing). They spare the
// tile loop a scalar load and a shift per query and byte (37 -> 30
// instructions per step; the tile kernel alone on Zen 4, 16 queries in
// L2: 2.05 -> 1.55 ns per pair).
void build_query_tables(const uint8_t* q, size_t qs, size_t qt, size_t bytes, size_t bp,
                        uint8_t* tables) {
  for (size_t b = 0; b < bp; ++b)
    for (size_t a = 0; a < qt; ++a) {
      const uint8_t v = b < bytes ? q[a * qs + b] : 0;
      _mm256_store_si256(reinterpret_cast<__m256i*>(tables + (b * qt + a) * 32),
                         _mm256_load_si256(reinterpret_cast<const __m256i*>(kNibble.t[v])));
    }
}

// The tables of every group of 4 queries of a call (group a / 4 at tables
// + a * bp * 32), kept per thread: a scan scores the same queries block
// after block, so they are built once per call rather than once per block
// (64 KB of stores per 480-code block at 16 queries). Reused only when the
// query bytes are equal to those they were built from. Kept only while
// they fit well inside L2: past that (256 queries of 128 bytes: 1 MB, in
// blocks of 128 codes), reading a group's tables back from L3, or
// rebuilding them for the 4 tiles of a block, costs more than looking them
// up by query byte (M=256, all kept: 449 -> 411 M pairs per CPU-second;
// looked up: 455).
class QueryTableCache {
 public:
  // Null when they would take more than kMaxBytes (or memory is short):
  // the tiles then look the tables up by query byte.
  const uint8_t* get(const uint8_t* q, size_t nq, size_t qs, size_t bytes, size_t bp) {
    const size_t n = nq * bp * 32;
    if (n > kMaxBytes) return nullptr;
    if (nq == nq_ && bytes == bytes_ && bp == bp_ && same(q, qs)) return tables_.data;
    uint8_t* key = key_.get(nq * bytes);
    uint8_t* tables = tables_.get(n);
    nq_ = 0;
    if (!key || !tables) return nullptr;
    for (size_t a = 0; a < nq; ++a) std::memcpy(key + a * bytes, q + a * qs, bytes);
    for (size_t a = 0; a < nq; a += 4)
      build_query_tables(q + a * qs, qs, std::min<size_t>(4, nq - a), bytes, bp, tables + a * bp * 32);
    nq_ = nq, bytes_ = bytes, bp_ = bp;
    return tables;
  }

 private:
  static constexpr size_t kMaxBytes = size_t(256) << 10;
  bool same(const uint8_t* q, size_t qs) const {
    for (size_t a = 0; a < nq_; ++a)
      if (std::memcmp(key_.data + a * bytes_, q + a * qs, bytes_) != 0) return false;
    return true;
  }
  Scratch64 key_, tables_;
  size_t nq_ = 0, bytes_ = 0, bp_ = 0;
};

// Distances of QT queries to one packed tile of 32 codes; out gets 32
// columns per query. The tables of query a at byte i come from `tables`
// (build_query_tables: at tables + (i * QT + a) * 32), or with tables =
// null from kNibble, looked up by the query bytes (q, stride qs, padded to
// bp): a scalar load and a shift more per query and byte, for query sets
// whose tables are not kept. Byte counters are folded into 16-bit sums
// every kByteSteps bytes (the lanes of low and high nibbles added: 4
// instructions per counter where the 32-bit sums took 10), those into
// 32-bit ones every kWordSteps.
template <int QT, bool kTables>
void packed_tile(const uint8_t* tables, const uint8_t* q, size_t qs, const uint8_t* tile, size_t bp,
                 int32_t* out, size_t os) {
  // Sums over several word steps (codes past kWordSteps bytes), or the
  // zero distances of empty codes.
  alignas(32) int32_t wide[QT][kPackCodes];
  if (bp > kWordSteps || bp == 0) std::memset(wide, 0, sizeof(wide));
  for (size_t w0 = 0; w0 < bp; w0 += kWordSteps) {
    const size_t w1 = std::min(bp, w0 + kWordSteps);
    __m256i sums[2 * QT];  // query t / 2, codes 16 (t % 2) + lane
    unroll<2 * QT>([&](auto t) { sums[t] = _mm256_setzero_si256(); });
    for (size_t b0 = w0; b0 < w1; b0 += kByteSteps) {
      const size_t n = std::min(w1, b0 + kByteSteps) - b0;
      __m256i acc[2 * QT];
      unroll<2 * QT>([&](auto t) { acc[t] = _mm256_setzero_si256(); });
      const uint8_t* xp = tile + b0 * 64;
      for (size_t i = b0; i < b0 + n; ++i, xp += 64) {
        __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xp));
        __m256i x1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xp + 32));
        // The empty asm statements pin each value to one register: without
        // them GCC folds the loads into the shuffles (two loads per table
        // and per code vector) or adds into a fresh register and copies it
        // back.
        asm("" : "+x"(x0), "+x"(x1));
        unroll<QT>([&](auto a) {
          const uint8_t* table = kTables ? tables + (i * QT + a) * 32 : kNibble.t[q[a * qs + i]];
          __m256i t = _mm256_load_si256(reinterpret_cast<const __m256i*>(table));
          asm("" : "+x"(t));
          acc[2 * a] = _mm256_add_epi8(acc[2 * a], _mm256_shuffle_epi8(t, x0));
          acc[2 * a + 1] = _mm256_add_epi8(acc[2 * a + 1], _mm256_shuffle_epi8(t, x1));
        });
        unroll<2 * QT>([&](auto t) { asm("" : "+x"(acc[t])); });
      }
      unroll<2 * QT>([&](auto t) {
        sums[t] = _mm256_add_epi16(sums[t], _mm256_add_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(acc[t])),
                                                             _mm256_cvtepu8_epi16(_mm256_extracti128_si256(acc[t], 1))));
      });
    }
    if (bp <= kWordSteps) {  // one word step (codes up to 8176 bytes): its sums are the distances
      unroll<2 * QT>([&](auto t) {
        int32_t* o = out + (t / 2) * os + 16 * (t % 2);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_cvtepu16_epi32(_mm256_castsi256_si128(sums[t])));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8),
                            _mm256_cvtepu16_epi32(_mm256_extracti128_si256(sums[t], 1)));
      });
      return;
    }
    unroll<2 * QT>([&](auto t) {
      int32_t* w = &wide[t / 2][16 * (t % 2)];
      __m256i* w0v = reinterpret_cast<__m256i*>(w);
      __m256i* w1v = reinterpret_cast<__m256i*>(w + 8);
      _mm256_store_si256(w0v, _mm256_add_epi32(_mm256_load_si256(w0v),
                                               _mm256_cvtepu16_epi32(_mm256_castsi256_si128(sums[t]))));
      _mm256_store_si256(w1v, _mm256_add_epi32(_mm256_load_si256(w1v),
                                               _mm256_cvtepu16_epi32(_mm256_extracti128_si256(sums[t], 1))));
    });
  }
  for (int a = 0; a < QT; ++a) std::memcpy(out + a * os, wide[a], sizeof(wide[a]));
}

using PackedTileFn = void (*)(const uint8_t*, const uint8_t*, size_t, const uint8_t*, size_t, int32_t*, size_t);
// [kTables][queries - 1]
const PackedTileFn kPackedTiles[2][4] = {
    {packed_tile<1, false>, packed_tile<2, false>, packed_tile<3, false>, packed_tile<4, false>},
    {packed_tile<1, true>, packed_tile<2, true>, packed_tile<3, true>, packed_tile<4, true>}};

// Returns false (nothing written) when the scratch memory is not available.
bool hamming_packed(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                    size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  thread_local Scratch64 packed, padded;
  thread_local QueryTableCache table_cache;
  const size_t bp = (bytes + 15) / 16 * 16, tiles = (nx + kPackCodes - 1) / kPackCodes;
  uint8_t* tiles_base = packed.get(tiles * bp * 64);
  if (!tiles_base) return false;
  const uint8_t* tables = table_cache.get(q, nq, q_stride, bytes, bp);
  if (!tables && bp != bytes) {  // looked up by query byte: zeros past the code (distance 0 to the codes' padding)
    uint8_t* qpad = padded.get(nq * bp);
    if (!qpad) return false;
    std::memset(qpad, 0, nq * bp);
    for (size_t a = 0; a < nq; ++a) std::memcpy(qpad + a * bp, q + a * q_stride, bytes);
    q = qpad;
    q_stride = bp;
  }
  pack_codes(x, nx, x_stride, bytes, bp, tiles_base);
  // The scans hand out consecutive blocks: with the knob, the rows after
  // this block are prefetched into L2 a few lines per tile while the first
  // half of its tiles is scored (the last lines then have the second half
  // to arrive), so that packing them next waits on L2 rather than on
  // memory (Zen 4, M=16 over 25.6 MB: packing 17 -> 7.4 ns per 128-byte
  // code). Prefetch never faults: past the array's end it is only wasted.
  const char* next = reinterpret_cast<const char*>(x + nx * x_stride);
  const size_t next_lines = knob(Knob::hamming_packed_next_prefetch) ? (nx * x_stride + 63) / 64 : 0;
  const size_t calls = std::max<size_t>(1, tiles * ((nq + 3) / 4) / 2);
  const size_t lines_per_call = (next_lines + calls - 1) / calls;
  size_t line = 0;
  for (size_t a = 0; a < nq; a += 4) {
    const size_t qt = std::min<size_t>(4, nq - a);
    const uint8_t* group_tables = tables ? tables + a * bp * 32 : nullptr;
    const PackedTileFn tile_fn = kPackedTiles[tables != nullptr][qt - 1];
    for (size_t t = 0; t < tiles; ++t) {
      const size_t lines = std::min(lines_per_call, next_lines - line);
      prefetch_l2(next + line * 64, lines * 64);
      line += lines;
      const size_t rows = std::min(kPackCodes, nx - t * kPackCodes);
      int32_t* o = out + a * out_stride + t * kPackCodes;
      const uint8_t* tile = tiles_base + t * bp * 64;
      if (rows == kPackCodes) {
        tile_fn(group_tables, q + a * q_stride, q_stride, tile, bp, o, out_stride);
      } else {  // the last, partial tile: through a full-width buffer
        int32_t buf[4 * kPackCodes];
        tile_fn(group_tables, q + a * q_stride, q_stride, tile, bp, buf, kPackCodes);
        for (size_t i = 0; i < qt; ++i) std::memcpy(o + i * out_stride, buf + i * kPackCodes, rows * 4);
      }
    }
  }
  return true;
}

// ---- row-wise path

void hamming_rowwise(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  const auto& tiles = bytes <= knob(Knob::hamming_popcnt_max_bytes) ? kPopcntTiles.fns : kPshufbTiles.fns;
  const size_t pf = knob(Knob::hamming_prefetch);
  // One query: with the row-order knob, one code at a time (a single
  // sequential stream) instead of 1 x 2 tiles.
  const size_t row_tile = nq == 1 && knob(Knob::hamming_row_order) ? 1 : kRT;
  for (size_t a = 0; a < nq; a += kQT) {
    size_t qt = std::min<size_t>(kQT, nq - a);
    for (size_t j = 0; j < nx; j += row_tile) {
      size_t rt = std::min<size_t>(row_tile, nx - j);
      prefetch_ahead(x + j * x_stride, rt * x_stride, pf);
      tiles[qt - 1][rt - 1](q + a * q_stride, q_stride, x + j * x_stride, x_stride, bytes,
                            out + a * out_stride + j, out_stride);
    }
  }
}

void hamming_u1(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  if (nq >= knob(Knob::hamming_packed_min_queries) && nx >= kPackCodes &&
      hamming_packed(q, nq, q_stride, x, nx, x_stride, bytes, out, out_stride))
    return;
  hamming_rowwise(q, nq, q_stride, x, nx, x_stride, bytes, out, out_stride);
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

// int8 dots and cosine scores, AVX-512 with VNNI.
//
// vpdpbusd multiplies unsigned by signed bytes, so a signed x signed dot
// cannot go in directly (SimSIMD issue 91). Flipping the top bit of the row
// bytes gives x + 128 in [1, 255] as unsigned, and
//   dot(q, x) = sum (x + 128) * q - 128 * sum(q),
// where sum(q) is computed once per query. With |q| <= 127 and dim <= 65536
// every partial sum fits int32 (65536 * 255 * 127 < 2^31).
//
// Register tiles of 4 queries x 4 rows: each loaded 64-byte chunk serves 4
// dot products, 16 accumulators are reduced together by one transpose tree.
#include <algorithm>

#include "kernels/common/avx512_util.h"
#include "pplx/cosine.h"

namespace pplx {
namespace avx512 {
namespace {

using TileFn = void (*)(const int8_t*, size_t, const int8_t*, size_t, size_t, const int32_t*,
                        int32_t*, size_t);

template <int QT, int RT>
struct DotTile {
  static void run(const int8_t* q, size_t qs, const int8_t* x, size_t xs, size_t dim,
                  const int32_t* corr, int32_t* out, size_t os) {
    __m512i acc[QT * RT];
    unroll<QT * RT>([&](auto t) { acc[t] = _mm512_setzero_si512(); });
    const __m512i flip = _mm512_set1_epi8(char(0x80));
    // One loop with a mask on every load (free on AVX-512) instead of a
    // separate tail step.
    for (size_t i = 0; i < dim; i += 64) {
      const __mmask64 m = byte_mask(dim - i);  // zero lanes: (0 + 128) * 0
      __m512i xv[RT];
      unroll<RT>([&](auto r) {
        xv[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + r * xs + i), flip);
      });
      unroll<QT>([&](auto a) {
        const __m512i qv = _mm512_maskz_loadu_epi8(m, q + a * qs + i);
        unroll<RT>([&](auto r) {
          acc[a * RT + r] = _mm512_dpbusd_epi32(acc[a * RT + r], xv[r], qv);
        });
      });
    }
    store_sums<QT, RT>(acc, corr, out, os);
  }
};

const TileTable<TileFn, DotTile> kTiles;

// 128 * sum(q): vpdpbusd of 0x80 bytes (unsigned 128) with q.
int32_t offset_correction(const int8_t* q, size_t dim) {
  const __m512i c128 = _mm512_set1_epi8(char(0x80));
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < dim; i += 64)
    acc = _mm512_dpbusd_epi32(acc, c128, _mm512_maskz_loadu_epi8(byte_mask(dim - i), q + i));
  return _mm512_reduce_add_epi32(acc);
}

void dots_i8(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
             size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  for (size_t a = 0; a < nq; a += 4) {
    size_t qt = std::min<size_t>(4, nq - a);
    int32_t corr[4];
    for (size_t i = 0; i < qt; ++i) corr[i] = offset_correction(q + (a + i) * q_stride, dim);
    const int8_t* qa = q + a * q_stride;
    int32_t* oa = out + a * out_stride;
    size_t j = 0;
    for (; j + 4 <= nx; j += 4)
      kTiles.fns[qt - 1][3](qa, q_stride, x + j * x_stride, x_stride, dim, corr, oa + j, out_stride);
    if (j < nx)
      kTiles.fns[qt - 1][nx - j - 1](qa, q_stride, x + j * x_stride, x_stride, dim, corr, oa + j,
                                     out_stride);
  }
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

}  // namespace avx512
}  // namespace pplx

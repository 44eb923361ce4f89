// Mean pooling, AVX-512 (F + BW + VL: zmm adds, masked tails, 16-lane
// binary16 conversion). Same summation order as the scalar reference: for
// each output lane, tokens are added one by one starting from +0.0, then one
// division by the count, so the results are bit-identical. Masked tokens
// are never read.
#include <immintrin.h>

#include <cstring>

#include "kernels/pooling/token_groups.h"
#include "pplx/pooling.h"

namespace pplx {
namespace avx512 {
namespace {

// Tokens in groups of kTokenGroup, the next group prefetched
// (token_groups.h); column blocks of 64 floats: 4 zmm accumulators.
constexpr size_t kBlock = 64;

inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// Lanes outside m read nothing (no fault past the row's end) and give +0.0.
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

// out[h] += rows[0][h] + ... + rows[g-1][h], added left to right.
template <typename T>
void add_group(const T* const* group, size_t g, const T* const* next, size_t g_next, size_t dim,
               float* out) {
  size_t h = 0;
  for (; h + kBlock <= dim; h += kBlock) {
    for (size_t k = 0; k < g_next; ++k) prefetch_l2(next[k] + h, kBlock * sizeof(T));
    __m512 acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = _mm512_loadu_ps(out + h + 16 * i);
    for (size_t k = 0; k < g; ++k)
      for (int i = 0; i < 4; ++i) acc[i] = _mm512_add_ps(acc[i], load16(group[k] + h + 16 * i));
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(out + h + 16 * i, acc[i]);
  }
  for (; h < dim; h += 16) {
    const size_t left = dim - h;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    __m512 acc = _mm512_maskz_loadu_ps(m, out + h);
    for (size_t k = 0; k < g; ++k) acc = _mm512_add_ps(acc, load16(group[k] + h, m));
    _mm512_mask_storeu_ps(out + h, m, acc);
  }
}

template <typename T>
void mean_pool(const T* rows, size_t n_rows, size_t row_stride, size_t dim, const uint8_t* mask,
               float* out) {
  std::memset(out, 0, dim * sizeof(float));
  const size_t count = for_each_token_group(
      rows, n_rows, row_stride, mask,
      [&](const T* const* group, size_t g, const T* const* next, size_t g_next) {
        add_group(group, g, next, g_next, dim, out);
      });
  if (count == 0) return;  // zeros
  const __m512 n = _mm512_set1_ps(float(count));
  for (size_t h = 0; h < dim; h += 16) {
    const size_t left = dim - h;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    _mm512_mask_storeu_ps(out + h, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, out + h), n));
  }
}

void mean_pool_f32(const float* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(rows, n_rows, row_stride, dim, mask, out);
}

void mean_pool_f16(const uint16_t* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(rows, n_rows, row_stride, dim, mask, out);
}

}  // namespace

const PoolingKernels pooling = {mean_pool_f32, mean_pool_f16};

}  // namespace avx512
}  // namespace pplx

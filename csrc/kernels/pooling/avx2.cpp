// Mean pooling, AVX2 (+F16C for half input). Same summation order as the
// scalar reference: for each output lane, tokens are added one by one, so
// the results are bit-identical. Masked tokens are never read.
#include <immintrin.h>

#include <cstring>

#include "kernels/common/f16.h"
#include "kernels/pooling/token_groups.h"
#include "pplx/pooling.h"

namespace pplx {
namespace avx2 {
namespace {

// Tokens in groups of kTokenGroup, the next group prefetched
// (token_groups.h); column blocks of 32 floats: 4 ymm accumulators.
constexpr size_t kBlock = 32;

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float load1(float v) { return v; }
inline float load1(uint16_t v) { return f16_to_f32(v); }

// out[h] += rows[0][h] + ... + rows[g-1][h], added left to right.
template <typename T>
void add_group(const T* const* group, size_t g, const T* const* next, size_t g_next, size_t dim,
               float* out) {
  size_t h = 0;
  for (; h + kBlock <= dim; h += kBlock) {
    for (size_t k = 0; k < g_next; ++k) prefetch_l2(next[k] + h, kBlock * sizeof(T));
    __m256 acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = _mm256_loadu_ps(out + h + 8 * i);
    for (size_t k = 0; k < g; ++k)
      for (int i = 0; i < 4; ++i) acc[i] = _mm256_add_ps(acc[i], load8(group[k] + h + 8 * i));
    for (int i = 0; i < 4; ++i) _mm256_storeu_ps(out + h + 8 * i, acc[i]);
  }
  for (; h + 8 <= dim; h += 8) {
    __m256 acc = _mm256_loadu_ps(out + h);
    for (size_t k = 0; k < g; ++k) acc = _mm256_add_ps(acc, load8(group[k] + h));
    _mm256_storeu_ps(out + h, acc);
  }
  for (; h < dim; ++h)
    for (size_t k = 0; k < g; ++k) out[h] += load1(group[k][h]);
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
  const __m256 n = _mm256_set1_ps(float(count));
  size_t h = 0;
  for (; h + 8 <= dim; h += 8) _mm256_storeu_ps(out + h, _mm256_div_ps(_mm256_loadu_ps(out + h), n));
  for (; h < dim; ++h) out[h] /= float(count);
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

}  // namespace avx2
}  // namespace pplx

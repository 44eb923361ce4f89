// Mean pooling, AVX2 (+F16C for half input). Same summation order as the
// scalar reference: for each output lane, tokens are added one by one, so
// the results are bit-identical. The output row stays in L1 while token
// rows stream through once; masked tokens are never read.
#include <immintrin.h>

#include <cstring>

#include "kernels/common/f16.h"
#include "pplx/pooling.h"

namespace pplx {
namespace avx2 {
namespace {

// Columns handled per sweep over the tokens: 64 floats = 8 ymm accumulators.
constexpr size_t kBlock = 64;

template <typename T, typename LoadVec, typename LoadOne>
void mean_pool(const T* rows, size_t n_rows, size_t row_stride, size_t dim, const uint8_t* mask,
               float* out, LoadVec load8, LoadOne load1) {
  size_t count = 0;
  for (size_t t = 0; t < n_rows; ++t) count += (!mask || mask[t]) ? 1 : 0;
  if (count == 0) {
    std::memset(out, 0, dim * sizeof(float));
    return;
  }
  const __m256 n = _mm256_set1_ps(float(count));
  size_t h = 0;
  for (; h + kBlock <= dim; h += kBlock) {
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (size_t t = 0; t < n_rows; ++t) {
      if (mask && !mask[t]) continue;
      const T* row = rows + t * row_stride + h;
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_add_ps(acc[i], load8(row + 8 * i));
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + h + 8 * i, _mm256_div_ps(acc[i], n));
  }
  for (; h + 8 <= dim; h += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t t = 0; t < n_rows; ++t) {
      if (mask && !mask[t]) continue;
      acc = _mm256_add_ps(acc, load8(rows + t * row_stride + h));
    }
    _mm256_storeu_ps(out + h, _mm256_div_ps(acc, n));
  }
  for (; h < dim; ++h) {
    float acc = 0.0f;
    for (size_t t = 0; t < n_rows; ++t) {
      if (mask && !mask[t]) continue;
      acc += load1(rows[t * row_stride + h]);
    }
    out[h] = acc / float(count);
  }
}

void mean_pool_f32(const float* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(
      rows, n_rows, row_stride, dim, mask, out, [](const float* p) { return _mm256_loadu_ps(p); },
      [](float v) { return v; });
}

void mean_pool_f16(const uint16_t* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(
      rows, n_rows, row_stride, dim, mask, out,
      [](const uint16_t* p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      },
      [](uint16_t v) { return f16_to_f32(v); });
}

}  // namespace

const PoolingKernels pooling = {mean_pool_f32, mean_pool_f16};

}  // namespace avx2
}  // namespace pplx

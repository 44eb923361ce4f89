// Mean pooling, AVX2 (+F16C for half input). Same summation order as the
// scalar reference: for each output lane, tokens are added one by one, so
// the results are bit-identical. Masked tokens are never read.
#include <immintrin.h>

#include <cstring>

#include "kernels/common/f16.h"
#include "pplx/pooling.h"

namespace pplx {
namespace avx2 {
namespace {

// Tokens go in groups of kGroup: for each 32-column block, the block's
// running sums are loaded from out, the group's rows added in token order
// and the sums stored back. Each row is read front to back (kGroup
// sequential streams, which the hardware prefetcher follows), and out is
// touched once per group rather than once per token: a store to out and a
// later load from a row 4 KB apart look alike to the store-forwarding check
// (4K aliasing), which a load/add/store per token ran into. Sweeping column
// blocks over all tokens instead reads every row in 256-byte pieces at a
// 4 KB stride: 67% of the read bandwidth on a Zen 4 (issue 10).
constexpr size_t kGroup = 8;

template <typename T, typename LoadVec, typename LoadOne>
void mean_pool(const T* rows, size_t n_rows, size_t row_stride, size_t dim, const uint8_t* mask,
               float* out, LoadVec load8, LoadOne load1) {
  size_t count = 0;
  std::memset(out, 0, dim * sizeof(float));
  const T* group[kGroup];
  size_t g = 0;
  auto add_group = [&] {
    size_t h = 0;
    for (; h + 32 <= dim; h += 32) {
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
    g = 0;
  };
  for (size_t t = 0; t < n_rows; ++t) {
    if (mask && !mask[t]) continue;
    ++count;
    group[g++] = rows + t * row_stride;
    if (g == kGroup) add_group();
  }
  if (g) add_group();
  if (count == 0) return;  // zeros
  const __m256 n = _mm256_set1_ps(float(count));
  size_t h = 0;
  for (; h + 8 <= dim; h += 8) _mm256_storeu_ps(out + h, _mm256_div_ps(_mm256_loadu_ps(out + h), n));
  for (; h < dim; ++h) out[h] /= float(count);
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

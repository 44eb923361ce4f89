// Mean pooling, scalar reference. Sums token by token in float32 (the order
// every SIMD twin keeps), then divides once by the token count.
#include <cstring>

#include "kernels/common/f16.h"
#include "pplx/pooling.h"

namespace pplx {
namespace scalar {
namespace {

template <typename T, typename Load>
void mean_pool(const T* rows, size_t n_rows, size_t row_stride, size_t dim, const uint8_t* mask,
               float* out, Load load) {
  std::memset(out, 0, dim * sizeof(float));
  size_t count = 0;
  for (size_t t = 0; t < n_rows; ++t) {
    if (mask && !mask[t]) continue;
    const T* row = rows + t * row_stride;
    for (size_t h = 0; h < dim; ++h) out[h] += load(row[h]);
    ++count;
  }
  if (count == 0) return;
  const float n = float(count);
  for (size_t h = 0; h < dim; ++h) out[h] /= n;
}

void mean_pool_f32(const float* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(rows, n_rows, row_stride, dim, mask, out, [](float v) { return v; });
}

void mean_pool_f16(const uint16_t* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(rows, n_rows, row_stride, dim, mask, out, [](uint16_t v) { return f16_to_f32(v); });
}

}  // namespace

const PoolingKernels pooling = {mean_pool_f32, mean_pool_f16};

}  // namespace scalar
}  // namespace pplx

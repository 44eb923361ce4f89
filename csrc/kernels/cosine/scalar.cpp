// int8 dots and cosine scores, scalar reference: plain loops with int32
// accumulation, the definition every SIMD twin is tested against.
#include <algorithm>

#include "pplx/cosine.h"

namespace pplx {
namespace scalar {
namespace {

int32_t dot(const int8_t* a, const int8_t* b, size_t dim) {
  int32_t s = 0;
  for (size_t i = 0; i < dim; ++i) s += int32_t(a[i]) * int32_t(b[i]);
  return s;
}

bool has_min_i8(const int8_t* x, size_t rows, size_t stride, size_t dim) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t i = 0; i < dim; ++i)
      if (x[r * stride + i] == -128) return true;
  return false;
}

bool dots_i8(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
             size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
  if (has_min_i8(x, nx, x_stride, dim)) return true;
  for (size_t i = 0; i < nq; ++i)
    for (size_t j = 0; j < nx; ++j) out[i * out_stride + j] = dot(q + i * q_stride, x + j * x_stride, dim);
  return false;
}

int32_t sumsq_i8(const int8_t* x, size_t dim) { return dot(x, x, dim); }

void cos_scores(const int32_t* dots, const float* rx, float rq, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    float s = (float(dots[i]) * rq) * rx[i];
    out[i] = std::min(1.0f, std::max(-1.0f, s));
  }
}

size_t first_at_least(const float* s, size_t n, float threshold) {
  for (size_t i = 0; i < n; ++i)
    if (s[i] >= threshold) return i;
  return n;
}

}  // namespace

const CosineKernels cosine = {dots_i8, sumsq_i8, has_min_i8, cos_scores, first_at_least};

}  // namespace scalar
}  // namespace pplx

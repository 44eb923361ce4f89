#include "search/int8_rows.hpp"

#include <cmath>

namespace pplx {

float norm_from_sumsq(int32_t sumsq) { return float(std::sqrt(double(sumsq))); }

float reciprocal_norm(float norm) { return norm > 0.0f ? float(1.0 / double(norm)) : 0.0f; }

const int8_t* checked_rows(const CosineKernels& k, const int8_t* x, size_t n, size_t* stride,
                           size_t dim, bool clamp, const char* name, const int64_t* ids,
                           size_t first_row, std::vector<int8_t>& scratch) {
  if (n == 0 || !k.has_min_i8(x, n, *stride, dim)) return x;
  if (!clamp) {
    size_t r = 0;
    while (r + 1 < n && !k.has_min_i8(x + r * *stride, 1, *stride, dim)) ++r;
    throw Int8RangeError(std::string(name) + ": row " + std::to_string(ids ? size_t(ids[r]) : first_row + r) +
                         " holds -128; int8 vectors must lie in [-127, 127] (pass clamp=True "
                         "to clamp -128 to -127)");
  }
  scratch.resize(n * dim);
  for (size_t r = 0; r < n; ++r)
    for (size_t i = 0; i < dim; ++i) {
      int8_t v = x[r * *stride + i];
      scratch[r * dim + i] = v == -128 ? int8_t(-127) : v;
    }
  *stride = dim;
  return scratch.data();
}

void reciprocal_norms(const CosineKernels& k, const int8_t* x, size_t n, size_t stride,
                      size_t dim, const float* norms, const int64_t* ids, size_t first_id,
                      float* rx) {
  for (size_t i = 0; i < n; ++i) {
    float norm = norms ? norms[ids ? size_t(ids[i]) : first_id + i]
                       : norm_from_sumsq(k.sumsq_i8(x + i * stride, dim));
    rx[i] = reciprocal_norm(norm);
  }
}

}  // namespace pplx

// Validation of caller-supplied norms (see check_norms in pplx/search.h).
#include <cstdio>
#include <stdexcept>
#include <string>

#include "pplx/search.h"

namespace pplx {

void check_norms(const float* norms, size_t n, size_t dim, const char* name) {
  const float top = norm_from_sumsq(int32_t(127 * 127 * dim));  // dim <= 65536: no overflow
  for (size_t i = 0; i < n; ++i) {
    float v = norms[i];
    if (v == 0.0f || (v >= 1.0f && v <= top)) continue;  // NaN fails both
    char value[32];
    std::snprintf(value, sizeof(value), "%.6g", double(v));
    throw std::invalid_argument(std::string(name) + ": norms of int8 vectors with " + std::to_string(dim) +
                                " elements are 0 or in [1, 127 * sqrt(" + std::to_string(dim) + ")]; row " +
                                std::to_string(i) + " holds " + value);
  }
}

}  // namespace pplx

// Hamming distances, scalar reference: 64-bit words xor-ed and counted,
// then the tail bytes.
#include <cstring>

#include "pplx/hamming.h"

namespace pplx {
namespace scalar {
namespace {

int32_t distance(const uint8_t* a, const uint8_t* b, size_t bytes) {
  int32_t d = 0;
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t u, v;
    std::memcpy(&u, a + i, 8);
    std::memcpy(&v, b + i, 8);
    d += __builtin_popcountll(u ^ v);
  }
  for (; i < bytes; ++i) d += __builtin_popcount(unsigned(a[i] ^ b[i]));
  return d;
}

void hamming_u1(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  for (size_t i = 0; i < nq; ++i)
    for (size_t j = 0; j < nx; ++j)
      out[i * out_stride + j] = distance(q + i * q_stride, x + j * x_stride, bytes);
}

size_t first_at_most(const int32_t* d, size_t n, int32_t threshold) {
  for (size_t i = 0; i < n; ++i)
    if (d[i] <= threshold) return i;
  return n;
}

}  // namespace

const HammingKernels hamming = {hamming_u1, first_at_most};

}  // namespace scalar
}  // namespace pplx

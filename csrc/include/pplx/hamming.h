// Hamming distances between packed bit codes: popcount(a xor b), int32.
#pragma once
#include "pplx/types.h"

namespace pplx {

// out[i * out_stride + j] = popcount(q row i xor x row j) over `bytes` bytes.
using HammingU1Fn = void (*)(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x,
                             size_t nx, size_t x_stride, size_t bytes, int32_t* out,
                             size_t out_stride);
// First i with d[i] <= threshold, or n.
using FirstAtMostI32Fn = size_t (*)(const int32_t* d, size_t n, int32_t threshold);

struct HammingKernels {
  HammingU1Fn hamming_u1;
  FirstAtMostI32Fn first_at_most;
};

namespace scalar { extern const HammingKernels hamming; }
namespace avx2 { extern const HammingKernels hamming; }
// Needs AVX512_VPOPCNTDQ beyond the avx512 level (its own unit and CPUID bit).
namespace avx512_vpopcntdq { extern const HammingKernels hamming; }

}  // namespace pplx

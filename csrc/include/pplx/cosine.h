// int8 dot products and the cosine scores built from them.
//
// Inputs lie in [-127, 127]; callers check for -128 with has_min_i8 first
// (the AVX-512 kernel's unsigned trick and the AVX2 kernel's maddubs rely on
// it). For dim <= 65536 every dot and partial sum fits int32, so dots are
// exact and all variants agree bit for bit.
//
// Cosine score of a dot d against reciprocal norms rq (query) and rx (row):
//   s = min(1, max(-1, (float(d) * rq) * rx))        in float32,
// where r = float32(1 / double(norm)) and norm = float32(sqrt(double(sum x^2))),
// r = 0 for a zero norm. Within a few float32 ulps of d / (|q| |x|).
#pragma once
#include "pplx/types.h"

namespace pplx {

// out[i * out_stride + j] = dot(q row i, x row j) for i < nq, j < nx.
// q must be free of -128 (checked once by the caller). Returns true when an
// element of x is -128; out is then unspecified. Checking x here, while its
// rows are loaded anyway, saves a second pass over the database.
using DotsI8Fn = bool (*)(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x,
                          size_t nx, size_t x_stride, size_t dim, int32_t* out,
                          size_t out_stride);
// Sum of squares of one row (exact for dim <= 65536).
using SumSqI8Fn = int32_t (*)(const int8_t* x, size_t dim);
// Whether any of rows x [rows, dim] (row stride `stride`) holds -128.
using HasMinI8Fn = bool (*)(const int8_t* x, size_t rows, size_t stride, size_t dim);
// out[i] = cosine score of dots[i] with rq and rx[i] (formula above); out may alias dots.
using CosScoresFn = void (*)(const int32_t* dots, const float* rx, float rq, size_t n, float* out);
// First i with s[i] >= threshold, or n.
using FirstAtLeastF32Fn = size_t (*)(const float* s, size_t n, float threshold);

struct CosineKernels {
  DotsI8Fn dots_i8;
  SumSqI8Fn sumsq_i8;
  HasMinI8Fn has_min_i8;
  CosScoresFn cos_scores;
  FirstAtLeastF32Fn first_at_least;
};

namespace scalar { extern const CosineKernels cosine; }
namespace avx2 { extern const CosineKernels cosine; }
// Needs AVX512_VNNI beyond the avx512 level (its own unit and CPUID bit).
namespace avx512_vnni { extern const CosineKernels cosine; }

}  // namespace pplx

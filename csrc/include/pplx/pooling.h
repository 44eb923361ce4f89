// Mean pooling of token rows: out[h] = mean of rows[t][h] over the tokens t
// whose mask byte is non-zero (every token when mask is null). No token gives
// zeros. Sums run token by token in float32 in the same order in every ISA,
// then one division by the count, so all variants agree bit for bit.
#pragma once
#include "pplx/types.h"

namespace pplx {

using MeanPoolF32Fn = void (*)(const float* rows, size_t n_rows, size_t row_stride,
                               size_t dim, const uint8_t* mask, float* out);
// rows hold IEEE binary16 values.
using MeanPoolF16Fn = void (*)(const uint16_t* rows, size_t n_rows, size_t row_stride,
                               size_t dim, const uint8_t* mask, float* out);

struct PoolingKernels {
  MeanPoolF32Fn mean_pool_f32;
  MeanPoolF16Fn mean_pool_f16;
};

namespace scalar { extern const PoolingKernels pooling; }
namespace avx2 { extern const PoolingKernels pooling; }
namespace avx512 { extern const PoolingKernels pooling; }
namespace neon { extern const PoolingKernels pooling; }

}  // namespace pplx

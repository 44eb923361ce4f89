// Batch operations: the row loops around the single-vector kernels, cut into
// tasks for the worker pool and dispatched through kernels(). Shapes here are
// trusted: the bindings check them first. Strides are in elements.
#pragma once
#include <cstdint>
#include <functional>

#include "pplx/types.h"

namespace pplx {

enum class Int8Scheme : int { tanh = 0, absmax = 1 };

// hidden [B, S, H] (float32, or binary16 when f16), mask [B, S] bytes
// (non-zero = token) or null; out [B, H] contiguous.
void mean_pool_batch(const void* hidden, bool f16, size_t batch, size_t seq, size_t dim,
                     size_t stride_b, size_t stride_s, const uint8_t* mask, float* out,
                     size_t threads);

// One sequence [S, H]; spans [n, 2] of [start, end) token rows, checked by
// the caller to lie in [0, S] with start <= end; out [n, H].
void mean_pool_spans(const void* hidden, bool f16, size_t dim, size_t stride_s,
                     const int64_t* spans, size_t n_spans, float* out, size_t threads);

// x [N, D] with row stride; codes [N, D] and bits [N, ceil(D/8)] contiguous,
// either may be null (not both for quantize_i8: codes is required).
// Each returns the first row holding NaN or Inf, or -1.
int64_t quantize_i8_batch(Int8Scheme scheme, const float* x, size_t rows, size_t dim,
                          size_t stride, int8_t* codes, uint8_t* bits, BitOrder order,
                          size_t threads);
int64_t sign_i8_batch(const float* x, size_t rows, size_t dim, size_t stride, int8_t* codes,
                      size_t threads);
int64_t pack_f32_batch(const float* x, size_t rows, size_t dim, size_t stride, uint8_t* bits,
                       BitOrder order, size_t threads);
void pack_i8_batch(const int8_t* x, size_t rows, size_t dim, size_t stride, uint8_t* bits,
                   BitOrder order, size_t threads);
void pack_bool_batch(const uint8_t* x, size_t rows, size_t dim, size_t stride, uint8_t* bits,
                     BitOrder order, size_t threads);
void unpack_batch(const uint8_t* bits, size_t rows, size_t dim, size_t stride, int8_t* out,
                  BitOrder order, bool signed_values, size_t threads);

// Splits `rows` rows of `row_cost` elements into tasks of about 64K elements
// each (a size that depends on the problem alone, never on the thread count)
// and runs body(begin, end) for each on the pool.
void for_row_blocks(size_t rows, size_t row_cost, size_t threads,
                    const std::function<void(size_t, size_t)>& body);

}  // namespace pplx

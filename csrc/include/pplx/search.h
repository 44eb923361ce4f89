// Blocked scans and top-k search over int8 and packed-bit rows, cut into
// tasks for the worker pool and dispatched through kernels(). Shapes are
// trusted: the bindings check them first. Strides are in elements.
//
// Top-k order is a strict total order on (score, id): cosine descending,
// Hamming ascending, ties to the lower id. Scores are exact functions of the
// data (integer dots), so the result does not depend on how work is split or
// on the thread count.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "pplx/types.h"

namespace pplx {

template <typename T>
struct Rows {
  const T* data;
  size_t rows, dim, stride;  // dim: int8 elements or packed bytes
};
using I8Rows = Rows<int8_t>;
using U8Rows = Rows<uint8_t>;

// Thrown when an int8 input holds -128 and clamping was not asked for; the
// message names the argument.
struct Int8RangeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// What the errors call each input.
struct ArgNames {
  const char* queries;
  const char* database;
};

// The norm every path uses: float32(sqrt(double(sum x^2))), and the
// reciprocal float32(1 / double(norm)), 0 for a zero norm.
float norm_from_sumsq(int32_t sumsq);
float reciprocal_norm(float norm);

// Norms a caller passes in are not trusted: an int8 vector of `dim` elements
// has norm 0 or one in [1, 127 sqrt(dim)]. Anything else (a tiny positive
// value whose reciprocal overflows, NaN, Inf) throws std::invalid_argument
// naming `name` and the first bad row.
void check_norms(const float* norms, size_t n, size_t dim, const char* name);

// x_norms may be null (computed). clamp: -128 counts as -127 instead of
// raising Int8RangeError.
void cosine_matrix(I8Rows q, I8Rows x, const float* x_norms, bool clamp, float* out,
                   size_t threads, ArgNames names);
void hamming_matrix(U8Rows q, U8Rows x, int32_t* out, size_t threads);
void norms_i8(I8Rows x, bool clamp, float* out, size_t threads, const char* name);

// Top-k: scores and ids are [q.rows, k] with k <= x.rows (or <= n_cand).
// candidates (may be null): [q.rows, n_cand] row ids per query, each -1
// (skipped) or in [0, x.rows) (checked by the caller); duplicates count once.
// row_mask (may be null; not with candidates): [x.rows] bytes, non-zero
// where a row may be returned; the scan passes the others by.
// Columns no candidate or allowed row fills get id -1 and score -inf
// (cosine) or INT32_MAX (Hamming).
void topk_cosine(I8Rows q, I8Rows x, const float* x_norms, size_t k, const int64_t* candidates,
                 size_t n_cand, const uint8_t* row_mask, bool clamp, float* scores, int64_t* ids,
                 size_t threads, ArgNames names);
void topk_hamming(U8Rows q, U8Rows x, size_t k, const int64_t* candidates, size_t n_cand,
                  const uint8_t* row_mask, int32_t* scores, int64_t* ids, size_t threads);

}  // namespace pplx

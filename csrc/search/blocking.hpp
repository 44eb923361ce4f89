// Block sizes of the scans. They depend only on the problem's sizes, so the
// way work is cut never depends on the thread count.
#pragma once
#include <algorithm>
#include <cstddef>

namespace pplx {

// Rows of x per block: about 128 KB, so a block stays in L2 while every
// query of a query block runs over it; a multiple of 32 (the packed tiles).
inline size_t row_block(size_t row_bytes) {
  size_t rows = (size_t(128) << 10) / std::max<size_t>(1, row_bytes);
  return std::max<size_t>(32, std::min<size_t>(512, (rows + 16) / 32 * 32));
}

// Queries per block: about 256 KB of queries, a multiple of 8 (the tiles).
inline size_t query_block(size_t row_bytes) {
  size_t rows = (size_t(256) << 10) / std::max<size_t>(1, row_bytes);
  return std::max<size_t>(8, std::min<size_t>(256, rows / 8 * 8));
}

inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

}  // namespace pplx

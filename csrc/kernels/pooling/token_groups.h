// The walk over token rows shared by the AVX2 and AVX-512 pooling units
// (internal linkage: each unit gets its own copy, built with its flags).
//
// Tokens go in groups of kTokenGroup: for each column block a kernel loads
// the block's running sums from out, adds the group's rows in token order
// and stores the sums back, so out is touched once per group (a load/add/
// store per token ran into 4K-aliasing stalls between out's stores and the
// rows' loads). Each token row is one stream the group reads front to back,
// and a row of 1024 float32 is exactly one 4 KB page: the hardware
// prefetcher, which stops at page ends, retrains on every row and keeps too
// few lines in flight (67% of the read bandwidth on a Zen 4 in float32,
// about 50% in float16). So the kernel is also handed the next group, whose
// rows it prefetches into L2 at the column block it sums: one group ahead,
// every line once (into L1, 32 KB ahead evicted the group being summed).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common/prefetch.h"

namespace pplx {
namespace {

constexpr size_t kTokenGroup = 8;

// The next (up to kTokenGroup) unmasked rows from token t on; t moves past them.
template <typename T>
size_t next_token_group(const T* rows, size_t n_rows, size_t row_stride, const uint8_t* mask,
                        size_t& t, const T** group) {
  size_t g = 0;
  for (; t < n_rows && g < kTokenGroup; ++t)
    if (!mask || mask[t]) group[g++] = rows + t * row_stride;
  return g;
}

// Calls add(group, g, next, g_next) for the groups of unmasked rows in
// token order (next: the group after, g_next = 0 at the end); returns the
// number of unmasked rows.
template <typename T, typename Add>
size_t for_each_token_group(const T* rows, size_t n_rows, size_t row_stride, const uint8_t* mask,
                            Add add) {
  const T* groups[2][kTokenGroup];
  const T** group = groups[0];
  const T** next = groups[1];
  size_t t = 0, count = 0;
  size_t g = next_token_group(rows, n_rows, row_stride, mask, t, group);
  while (g) {
    const size_t g_next = next_token_group(rows, n_rows, row_stride, mask, t, next);
    add(static_cast<const T* const*>(group), g, static_cast<const T* const*>(next), g_next);
    count += g;
    const T** done = group;
    group = next, next = done, g = g_next;
  }
  return count;
}

}  // namespace
}  // namespace pplx

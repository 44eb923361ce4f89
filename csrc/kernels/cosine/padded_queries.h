// Queries in whole 4-byte groups, for the packed cosine kernels (which
// broadcast a query 4 bytes at a time). Internal linkage: included by ISA
// units, it must not give the linker a copy built with their flags.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/common/scratch.h"

namespace pplx {
namespace {

// Points q at a zero-padded copy of rows q [nq, dim] in buf whose rows are
// whole 4-byte groups (stride updated), when dim is not a multiple of 4.
// Returns false when out of memory.
inline bool pad_queries_to_groups(Scratch64& buf, const int8_t*& q, size_t& q_stride, size_t nq,
                                  size_t dim) {
  if (dim % 4 == 0) return true;
  const size_t width = (dim + 3) / 4 * 4;
  int8_t* p = reinterpret_cast<int8_t*>(buf.get(nq * width));
  if (!p) return false;
  std::memset(p, 0, nq * width);
  for (size_t i = 0; i < nq; ++i) std::memcpy(p + i * width, q + i * q_stride, dim);
  q = p;
  q_stride = width;
  return true;
}

}  // namespace
}  // namespace pplx

// Shared steps of the int8 scans: rejecting (or clamping) -128 and the
// reciprocal norms of a block of rows.
#pragma once
#include <string>
#include <vector>

#include "pplx/cosine.h"
#include "pplx/search.h"

namespace pplx {

// Rows [n, dim] at x, checked for -128. Returns x itself when clean; with
// clamp, a copy in `scratch` where -128 became -127 (and sets *stride to
// dim); otherwise throws Int8RangeError naming `name` and the row (row i
// is ids[i] in that argument, or first_row + i when ids is null).
const int8_t* checked_rows(const CosineKernels& k, const int8_t* x, size_t n, size_t* stride,
                           size_t dim, bool clamp, const char* name, const int64_t* ids,
                           size_t first_row, std::vector<int8_t>& scratch);

// rx[i] = reciprocal norm of row i: from norms[ids[i]] when norms is given
// (ids null: ids[i] = i), else from the rows themselves.
void reciprocal_norms(const CosineKernels& k, const int8_t* x, size_t n, size_t stride,
                      size_t dim, const float* norms, const int64_t* ids, size_t first_id,
                      float* rx);

}  // namespace pplx

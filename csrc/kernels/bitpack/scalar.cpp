// Bit packing, scalar reference: one bit per element, element 0 at the most
// (big) or least (little) significant bit of byte 0.
#include <cmath>
#include <cstring>

#include "kernels/common/bits.h"
#include "pplx/bitpack.h"

namespace pplx {
namespace scalar {
namespace {

bool pack_f32(const float* x, size_t dim, uint8_t* bits, BitOrder order) {
  bool finite = true;
  for (size_t i = 0; i < dim; ++i) finite &= std::isfinite(x[i]);
  pack_signs(x, dim, bits, order);
  return finite;
}

void pack_i8(const int8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  std::memset(bits, 0, packed_bytes(dim));
  for (size_t i = 0; i < dim; ++i)
    if (x[i] >= 0) bits[i >> 3] |= bit_of(i, order);
}

void pack_bool(const uint8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  std::memset(bits, 0, packed_bytes(dim));
  for (size_t i = 0; i < dim; ++i)
    if (x[i] != 0) bits[i >> 3] |= bit_of(i, order);
}

void unpack(const uint8_t* bits, size_t dim, int8_t* out, BitOrder order, bool signed_values) {
  const int8_t off = signed_values ? -1 : 0, on = 1;
  for (size_t i = 0; i < dim; ++i) out[i] = (bits[i >> 3] & bit_of(i, order)) ? on : off;
}

}  // namespace

const BitpackKernels bitpack = {pack_f32, pack_i8, pack_bool, unpack};

}  // namespace scalar
}  // namespace pplx

// Packing of signs and booleans into bits, and the inverse. Output rows hold
// ceil(dim / 8) bytes; the padding bits of the last byte are zero.
#pragma once
#include "pplx/types.h"

namespace pplx {

// Bit set where x >= 0. Returns false when x holds NaN or Inf.
using PackF32Fn = bool (*)(const float* x, size_t dim, uint8_t* bits, BitOrder order);
// Bit set where x >= 0.
using PackI8Fn = void (*)(const int8_t* x, size_t dim, uint8_t* bits, BitOrder order);
// Bit set where x != 0.
using PackBoolFn = void (*)(const uint8_t* x, size_t dim, uint8_t* bits, BitOrder order);
// Element i becomes +1/-1 (signed) or 1/0 from its bit.
using UnpackFn = void (*)(const uint8_t* bits, size_t dim, int8_t* out, BitOrder order,
                          bool signed_values);

struct BitpackKernels {
  PackF32Fn pack_f32;
  PackI8Fn pack_i8;
  PackBoolFn pack_bool;
  UnpackFn unpack;
};

namespace scalar { extern const BitpackKernels bitpack; }
namespace avx2 { extern const BitpackKernels bitpack; }
namespace avx512 { extern const BitpackKernels bitpack; }
namespace neon { extern const BitpackKernels bitpack; }

}  // namespace pplx

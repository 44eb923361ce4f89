// Small helpers shared by the scalar kernels of several families, and
// constants every ISA must agree on.
#pragma once
#include <cstdint>
#include <cstring>

#include "pplx/types.h"

namespace pplx {
namespace {

// absmax: vectors whose largest |x| is below kAbsmaxTiny are multiplied by
// kAbsmaxPrescale (exact, a power of two) before scaling to 127.
constexpr float kAbsmaxTiny = 0x1p-100f;
constexpr float kAbsmaxPrescale = 0x1p100f;

// Position of element i's bit in its byte.
inline uint8_t bit_of(size_t i, BitOrder order) {
  return order == BitOrder::big ? uint8_t(0x80u >> (i & 7)) : uint8_t(1u << (i & 7));
}

// bits = packbits(x >= 0), padding bits zero.
inline void pack_signs(const float* x, size_t dim, uint8_t* bits, BitOrder order) {
  std::memset(bits, 0, packed_bytes(dim));
  for (size_t i = 0; i < dim; ++i)
    if (x[i] >= 0.0f) bits[i >> 3] |= bit_of(i, order);
}

// Reverses the bit order inside each byte of a word (bytes stay put):
// turns movemask's little order into numpy's big order.
inline uint64_t reverse_bits_in_bytes(uint64_t w) {
  w = ((w >> 1) & 0x5555555555555555ull) | ((w & 0x5555555555555555ull) << 1);
  w = ((w >> 2) & 0x3333333333333333ull) | ((w & 0x3333333333333333ull) << 2);
  w = ((w >> 4) & 0x0F0F0F0F0F0F0F0Full) | ((w & 0x0F0F0F0F0F0F0F0Full) << 4);
  return w;
}

}  // namespace
}  // namespace pplx

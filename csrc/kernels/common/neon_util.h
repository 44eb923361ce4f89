// Helpers of the NEON (AArch64 Advanced SIMD) translation units only. The
// anonymous namespace keeps each file's copy out of the others' symbols, so
// no NEON code can be picked by the linker for a baseline caller (there is
// none: Advanced SIMD is mandatory on AArch64, but the dotprod files are not).
#pragma once
#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pplx/types.h"

// Packed bits are stored as little-endian words (byte k = elements 8k..8k+7);
// CMakeLists.txt builds NEON files for aarch64 only, never aarch64_be.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "NEON kernels assume little-endian AArch64");

namespace pplx {
namespace neon {
namespace {

// Byte lane i holds the bit of element i (mod 8) in its packed byte.
inline uint8x16_t bit_weights(BitOrder order) {
  static const uint8_t big[16] = {0x80, 0x40, 0x20, 0x10, 8, 4, 2, 1,
                                  0x80, 0x40, 0x20, 0x10, 8, 4, 2, 1};
  static const uint8_t little[16] = {1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80,
                                     1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80};
  return vld1q_u8(order == BitOrder::big ? big : little);
}

// Packs four 16-lane byte masks (0xFF = bit set; elements 0..63 in order)
// into 8 bytes, with w = bit_weights(order). Pairwise adds of disjoint bits
// are ors.
inline uint64_t pack64(uint8x16_t m0, uint8x16_t m1, uint8x16_t m2, uint8x16_t m3,
                       uint8x16_t w) {
  uint8x16_t a = vpaddq_u8(vandq_u8(m0, w), vandq_u8(m1, w));  // 2 lanes per byte
  uint8x16_t b = vpaddq_u8(vandq_u8(m2, w), vandq_u8(m3, w));
  uint8x16_t c = vpaddq_u8(a, b);                               // 4 lanes per byte
  uint8x16_t d = vpaddq_u8(c, c);                               // 8 lanes per byte
  return vgetq_lane_u64(vreinterpretq_u64_u8(d), 0);
}

// Packs one 16-lane byte mask into 2 bytes.
inline uint16_t pack16(uint8x16_t m, uint8x16_t w) {
  uint8x16_t a = vandq_u8(m, w);
  a = vpaddq_u8(a, a);
  a = vpaddq_u8(a, a);
  a = vpaddq_u8(a, a);
  return vgetq_lane_u16(vreinterpretq_u16_u8(a), 0);
}

// Four 4-lane float masks (elements 0..15 in order) as one 16-lane byte mask.
inline uint8x16_t narrow_mask(uint32x4_t m0, uint32x4_t m1, uint32x4_t m2, uint32x4_t m3) {
  uint16x8_t lo = vcombine_u16(vmovn_u32(m0), vmovn_u32(m1));
  uint16x8_t hi = vcombine_u16(vmovn_u32(m2), vmovn_u32(m3));
  return vcombine_u8(vmovn_u16(lo), vmovn_u16(hi));
}

// Four int32x4 with values in [-128, 127] as 16 int8 (elements in order).
inline int8x16_t narrow_i32_to_i8(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  int16x8_t lo = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
  int16x8_t hi = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
  return vcombine_s8(vmovn_s16(lo), vmovn_s16(hi));
}

// Lanes x >= 0 (NaN false, -0.0 true), as in the scalar reference.
inline uint32x4_t nonneg(float32x4_t x) { return vcgeq_f32(x, vdupq_n_f32(0.0f)); }

// Lanes that hold NaN or +-Inf: not |x| < Inf.
inline uint32x4_t not_finite(float32x4_t x) {
  return vmvnq_u32(vcaltq_f32(x, vdupq_n_f32(INFINITY)));
}

// Whether any lane of a mask is set.
inline bool any(uint32x4_t m) { return vmaxvq_u32(m) != 0; }
inline bool any(uint8x16_t m) { return vmaxvq_u8(m) != 0; }

// Index of the first set lane of a 4-lane mask (one must be set).
inline size_t first_lane(uint32x4_t m) {
  uint64_t w = vget_lane_u64(vreinterpret_u64_u16(vmovn_u32(m)), 0);  // 16 bits per lane
  return size_t(__builtin_ctzll(w) / 16);
}

}  // namespace
}  // namespace neon
}  // namespace pplx

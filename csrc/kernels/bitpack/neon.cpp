// Bit packing, NEON (plain ARMv8-A). NEON has no movemask: compares give
// 0xFF bytes, which are anded with each lane's bit weight (big or little
// order) and folded by pairwise adds (disjoint bits, so adds are ors) into
// 8 bytes per 64 elements. Unpacking spreads each byte over 8 lanes (TBL)
// and tests one bit per lane.
#include "kernels/common/bits.h"
#include "kernels/common/neon_util.h"
#include "pplx/bitpack.h"

namespace pplx {
namespace neon {
namespace {

// word(p) packs elements p[0..63]. The last dim % 64 elements go through a
// copy padded with `pad` (an element whose bit is clear), so every byte is
// written by the same code and padding bits come out zero.
template <typename T, typename Word>
void pack(const T* x, size_t dim, uint8_t* bits, T pad, Word word) {
  size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    uint64_t w = word(x + i);
    std::memcpy(bits + i / 8, &w, 8);
  }
  if (i < dim) {
    size_t n = dim - i;
    T tail[64];
    for (size_t j = 0; j < 64; ++j) tail[j] = j < n ? x[i + j] : pad;
    uint64_t w = word(tail);
    std::memcpy(bits + i / 8, &w, packed_bytes(n));
  }
}

bool pack_f32(const float* x, size_t dim, uint8_t* bits, BitOrder order) {
  const uint8x16_t wt = bit_weights(order);
  uint32x4_t bad = vdupq_n_u32(0);
  pack(x, dim, bits, -1.0f, [&](const float* p) {
    uint8x16_t m[4];
    for (int k = 0; k < 4; ++k) {
      float32x4_t v0 = vld1q_f32(p + 16 * k), v1 = vld1q_f32(p + 16 * k + 4);
      float32x4_t v2 = vld1q_f32(p + 16 * k + 8), v3 = vld1q_f32(p + 16 * k + 12);
      bad = vorrq_u32(bad, vorrq_u32(vorrq_u32(not_finite(v0), not_finite(v1)),
                                     vorrq_u32(not_finite(v2), not_finite(v3))));
      m[k] = narrow_mask(nonneg(v0), nonneg(v1), nonneg(v2), nonneg(v3));
    }
    return pack64(m[0], m[1], m[2], m[3], wt);
  });
  return !any(bad);
}

void pack_i8(const int8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  const uint8x16_t wt = bit_weights(order);
  pack(x, dim, bits, int8_t(-1), [&](const int8_t* p) {
    return pack64(vcgezq_s8(vld1q_s8(p)), vcgezq_s8(vld1q_s8(p + 16)),
                  vcgezq_s8(vld1q_s8(p + 32)), vcgezq_s8(vld1q_s8(p + 48)), wt);
  });
}

void pack_bool(const uint8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  const uint8x16_t wt = bit_weights(order);
  auto nonzero = [](const uint8_t* p) {
    uint8x16_t v = vld1q_u8(p);
    return vtstq_u8(v, v);
  };
  pack(x, dim, bits, uint8_t(0), [&](const uint8_t* p) {
    return pack64(nonzero(p), nonzero(p + 16), nonzero(p + 32), nonzero(p + 48), wt);
  });
}

void unpack(const uint8_t* bits, size_t dim, int8_t* out, BitOrder order, bool signed_values) {
  const uint8x16_t wt = bit_weights(order);
  // Output lanes 16k .. 16k+15 test bits of bytes 2k and 2k+1.
  static const uint8_t spread[4][16] = {
      {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
      {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
      {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}};
  uint8x16_t idx[4];
  for (int k = 0; k < 4; ++k) idx[k] = vld1q_u8(spread[k]);
  const uint8x16_t one = vdupq_n_u8(1), two = vdupq_n_u8(2);
  auto expand = [&](uint64_t word, int8_t* dst) {
    uint8x16_t v = vreinterpretq_u8_u64(vdupq_n_u64(word));
    for (int k = 0; k < 4; ++k) {
      uint8x16_t set = vtstq_u8(vqtbl1q_u8(v, idx[k]), wt);  // 0xFF where set
      uint8x16_t r = signed_values ? vsubq_u8(vandq_u8(set, two), one)  // +1 / -1
                                   : vandq_u8(set, one);                 // 1 / 0
      vst1q_s8(dst + 16 * k, vreinterpretq_s8_u8(r));
    }
  };
  size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    uint64_t word;
    std::memcpy(&word, bits + i / 8, 8);
    expand(word, out + i);
  }
  if (i < dim) {
    size_t n = dim - i;
    uint64_t word = 0;
    std::memcpy(&word, bits + i / 8, packed_bytes(n));
    int8_t tail[64];
    expand(word, tail);
    std::memcpy(out + i, tail, n);
  }
}

}  // namespace

const BitpackKernels bitpack = {pack_f32, pack_i8, pack_bool, unpack};

}  // namespace neon
}  // namespace pplx

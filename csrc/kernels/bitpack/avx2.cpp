// Bit packing, AVX2: compare + movemask yields the bits of 32 elements in
// little order at once; big order reverses the bits inside each byte.
// Unpacking broadcasts bytes and tests one bit per lane.
#include <cstring>

#include "kernels/common/avx2_util.h"
#include "kernels/common/prefetch.h"
#include "pplx/bitpack.h"

namespace pplx {
namespace avx2 {
namespace {

inline void store_word(uint8_t* out, uint32_t little_bits, BitOrder order) {
  uint32_t w = order == BitOrder::big ? reverse_bits_in_bytes(little_bits) : little_bits;
  std::memcpy(out, &w, 4);
}

// The last dim % 32 elements go through a zero-padded copy, so every byte
// is written by the same code and padding bits come out zero.
template <typename T, typename Word>
void pack(const T* x, size_t dim, uint8_t* bits, BitOrder order, T pad, Word word) {
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    prefetch_ahead(x + i, 32 * sizeof(T));
    store_word(bits + i / 8, word(x + i), order);
  }
  if (i < dim) {
    size_t n = dim - i;
    T tail[32];
    for (size_t j = 0; j < 32; ++j) tail[j] = j < n ? x[i + j] : pad;
    uint32_t w = word(tail) & (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1));
    uint8_t out[4];
    store_word(out, w, order);
    std::memcpy(bits + i / 8, out, packed_bytes(n));
  }
}

bool pack_f32(const float* x, size_t dim, uint8_t* bits, BitOrder order) {
  __m256 bad = _mm256_setzero_ps();
  pack(x, dim, bits, order, 0.0f, [&](const float* p) {
    uint32_t w = 0;
    for (int j = 0; j < 4; ++j) {
      __m256 v = _mm256_loadu_ps(p + 8 * j);
      bad = _mm256_or_ps(bad, not_finite(v));
      w |= nonneg_mask(v) << (8 * j);
    }
    return w;
  });
  return _mm256_movemask_ps(bad) == 0;
}

void pack_i8(const int8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  pack(x, dim, bits, order, int8_t(0), [](const int8_t* p) {
    // movemask takes the sign bits: negative lanes. The bit wanted is x >= 0.
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return ~uint32_t(_mm256_movemask_epi8(v));
  });
}

void pack_bool(const uint8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  pack(x, dim, bits, order, uint8_t(0), [](const uint8_t* p) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return ~uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_setzero_si256())));
  });
}

void unpack(const uint8_t* bits, size_t dim, int8_t* out, BitOrder order, bool signed_values) {
  // Byte j of the 4 loaded goes to lanes 8j..8j+7; lane l tests bit (l % 8).
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i big = _mm256_setr_epi8(
      char(0x80), 0x40, 0x20, 0x10, 8, 4, 2, 1, char(0x80), 0x40, 0x20, 0x10, 8, 4, 2, 1,
      char(0x80), 0x40, 0x20, 0x10, 8, 4, 2, 1, char(0x80), 0x40, 0x20, 0x10, 8, 4, 2, 1);
  const __m256i little = _mm256_setr_epi8(1, 2, 4, 8, 0x10, 0x20, 0x40, char(0x80), 1, 2, 4, 8,
                                          0x10, 0x20, 0x40, char(0x80), 1, 2, 4, 8, 0x10, 0x20,
                                          0x40, char(0x80), 1, 2, 4, 8, 0x10, 0x20, 0x40, char(0x80));
  const __m256i select = order == BitOrder::big ? big : little;
  const __m256i one = _mm256_set1_epi8(1), two = _mm256_set1_epi8(2);
  auto expand = [&](uint32_t word) {
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(word)), spread);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(v, select), select);  // -1 where set
    return signed_values ? _mm256_sub_epi8(_mm256_and_si256(set, two), one)  // +1 / -1
                         : _mm256_and_si256(set, one);                        // 1 / 0
  };
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    uint32_t word;
    std::memcpy(&word, bits + i / 8, 4);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), expand(word));
  }
  if (i < dim) {
    size_t n = dim - i;
    uint32_t word = 0;
    std::memcpy(&word, bits + i / 8, packed_bytes(n));
    int8_t tail[32];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tail), expand(word));
    std::memcpy(out + i, tail, n);
  }
}

}  // namespace

const BitpackKernels bitpack = {pack_f32, pack_i8, pack_bool, unpack};

}  // namespace avx2
}  // namespace pplx

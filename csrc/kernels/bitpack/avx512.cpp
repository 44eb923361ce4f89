// Bit packing, AVX-512 (F/BW): compares produce mask registers holding the
// bits directly (64 int8 or 16 float lanes per instruction); unpacking is a
// masked blend. Tails use masked loads and stores.
#include "kernels/common/avx512_bits.h"
#include "kernels/common/prefetch.h"
#include "pplx/bitpack.h"

namespace pplx {
namespace avx512 {
namespace {

bool pack_f32(const float* x, size_t dim, uint8_t* bits, BitOrder order) {
  __mmask16 bad = 0;
  for (size_t i = 0; i < dim; i += 64) {
    size_t n = dim - i < 64 ? dim - i : 64;
    prefetch_ahead(x + i, 64 * sizeof(float));
    uint64_t w = 0;
    for (size_t j = 0; 16 * j < n; ++j) {
      __mmask16 k = tail_mask16(n - 16 * j);
      __m512 v = _mm512_maskz_loadu_ps(k, x + i + 16 * j);
      bad |= not_finite(v);
      w |= uint64_t(_mm512_mask_cmp_ps_mask(k, v, _mm512_setzero_ps(), _CMP_GE_OQ)) << (16 * j);
    }
    store_bits(bits + i / 8, w, n, order);
  }
  return bad == 0;
}

template <typename Bits>
void pack_bytes(const uint8_t* x, size_t dim, uint8_t* bits, BitOrder order, Bits to_bits) {
  for (size_t i = 0; i < dim; i += 64) {
    size_t n = dim - i < 64 ? dim - i : 64;
    __mmask64 k = tail_mask64(n);
    __m512i v = _mm512_maskz_loadu_epi8(k, x + i);
    store_bits(bits + i / 8, uint64_t(to_bits(v) & k), n, order);
  }
}

void pack_i8(const int8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  pack_bytes(reinterpret_cast<const uint8_t*>(x), dim, bits, order,
             [](__m512i v) { return ~_mm512_movepi8_mask(v); });  // not negative
}

void pack_bool(const uint8_t* x, size_t dim, uint8_t* bits, BitOrder order) {
  pack_bytes(x, dim, bits, order, [](__m512i v) { return _mm512_test_epi8_mask(v, v); });
}

void unpack(const uint8_t* bits, size_t dim, int8_t* out, BitOrder order, bool signed_values) {
  const __m512i on = _mm512_set1_epi8(1), off = _mm512_set1_epi8(signed_values ? -1 : 0);
  for (size_t i = 0; i < dim; i += 64) {
    size_t n = dim - i < 64 ? dim - i : 64;
    uint64_t w = 0;
    std::memcpy(&w, bits + i / 8, packed_bytes(n));
    if (order == BitOrder::big) w = reverse_bits_in_bytes(w);
    __m512i v = _mm512_mask_blend_epi8(__mmask64(w), off, on);
    _mm512_mask_storeu_epi8(out + i, tail_mask64(n), v);
  }
}

}  // namespace

const BitpackKernels bitpack = {pack_f32, pack_i8, pack_bool, unpack};

}  // namespace avx512
}  // namespace pplx

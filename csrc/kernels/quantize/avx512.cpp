// Quantization, AVX-512 (F/BW/VL/DQ). Same method as the AVX2 twin: an
// accurate estimate of 127*tanh(|x|) (piecewise cubic) is rounded, and the rare lanes within
// kTieBand of a .5 boundary are settled by the exact threshold, read from a
// 128-entry table held in eight registers (vpermt2ps, no gather).
#include "kernels/common/avx512_bits.h"
#include "kernels/common/prefetch.h"
#include "pplx/quantize.h"

namespace pplx {
namespace avx512 {
namespace {

// 127 * tanh(a) for a >= 0 from tanh127_pieces(32, 3): the piece index
// picks each cubic coefficient out of a 32-entry table in two registers
// (vpermt2ps), so the estimate takes 3 FMAs and no division. Absolute error
// below 3e-5. t is capped at 31, the constant piece; the cap also sends NaN
// (min returns its second operand) and Inf there.
struct TanhEstimate {
  __m512 scale;
  __m512 coef[4][2];
  TanhEstimate() {
    const TanhPieces& p = tanh127_pieces(32, 3);
    scale = _mm512_set1_ps(p.scale);
    for (int j = 0; j < 4; ++j)
      for (int h = 0; h < 2; ++h) coef[j][h] = _mm512_loadu_ps(p.coef + 32 * j + 16 * h);
  }
  __m512 operator()(__m512 a) const {
    __m512 t = _mm512_min_ps(_mm512_mul_ps(a, scale), _mm512_set1_ps(31.0f));
    __m512i i = _mm512_cvttps_epi32(t);
    __m512 y = _mm512_permutex2var_ps(coef[0][0], i, coef[0][1]);
    y = _mm512_fmadd_ps(y, t, _mm512_permutex2var_ps(coef[1][0], i, coef[1][1]));
    y = _mm512_fmadd_ps(y, t, _mm512_permutex2var_ps(coef[2][0], i, coef[2][1]));
    return _mm512_fmadd_ps(y, t, _mm512_permutex2var_ps(coef[3][0], i, coef[3][1]));
  }
};

// Lanes whose estimate lies this close to a .5 boundary are decided by the
// exact threshold instead of by rounding (the estimate error is ~30x smaller).
constexpr float kTieBand = 1e-3f;

struct Thresholds {
  __m512 t[8];  // T[0..127]
  explicit Thresholds(const float* table) {
    for (int i = 0; i < 8; ++i) t[i] = _mm512_loadu_ps(table + 16 * i);
  }
  // T[idx] for idx in [0, 128)
  __m512 lookup(__m512i idx) const {
    __m512 l01 = _mm512_permutex2var_ps(t[0], idx, t[1]);
    __m512 l23 = _mm512_permutex2var_ps(t[2], idx, t[3]);
    __m512 l45 = _mm512_permutex2var_ps(t[4], idx, t[5]);
    __m512 l67 = _mm512_permutex2var_ps(t[6], idx, t[7]);
    __mmask16 b5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    __mmask16 b6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
    __m512 lo = _mm512_mask_blend_ps(b5, l01, l23), hi = _mm512_mask_blend_ps(b5, l45, l67);
    return _mm512_mask_blend_ps(b6, lo, hi);
  }
};

// Exact tanh codes of 16 lanes: the estimate rounded, except near a .5
// boundary, where it is replaced by m = floor(estimate), plus one if
// a >= T[m + 1]. vreduceps gives estimate - round(estimate) in one
// instruction. The estimate takes x's sign bit and is rounded (half to even,
// whatever MXCSR says) in the conversion. *nonfinite turns NaN for good once
// a lane held NaN or Inf (a * 0 is NaN exactly for those): one instruction
// instead of a compare per vector.
inline __m512i tanh_codes(__m512 x, const TanhEstimate& tanh127, const Thresholds& th,
                          __m512* nonfinite) {
  const __m512i sign_bit = _mm512_set1_epi32(int(0x80000000u));
  __m512 a = _mm512_abs_ps(x);
  *nonfinite = _mm512_fmadd_ps(a, _mm512_setzero_ps(), *nonfinite);
  __m512 y = tanh127(a);  // within 3e-5 of [0, 127], so the code never passes 127
  __m512 off = _mm512_reduce_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __mmask16 near_tie = _mm512_cmp_ps_mask(_mm512_abs_ps(off), _mm512_set1_ps(0.5f - kTieBand), _CMP_GT_OQ);
  if (near_tie) {
    __m512 m = _mm512_min_ps(_mm512_roundscale_ps(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC),
                             _mm512_set1_ps(126.0f));
    __m512 threshold = th.lookup(_mm512_add_epi32(_mm512_cvttps_epi32(m), _mm512_set1_epi32(1)));
    __mmask16 up = _mm512_cmp_ps_mask(a, threshold, _CMP_GE_OQ);
    y = _mm512_mask_mov_ps(y, near_tie, _mm512_mask_add_ps(m, up, m, _mm512_set1_ps(1.0f)));
  }
  // y | (x & sign): +-y, and a negative zero or tiny value converts to 0
  __m512i signed_y = _mm512_ternarylogic_epi32(_mm512_castps_si512(y), _mm512_castps_si512(x), sign_bit, 0xF8);
  return _mm512_cvt_roundps_epi32(_mm512_castsi512_ps(signed_y), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Writes code(x) for the whole row. Four vectors of int32 codes are packed
// to 64 bytes with two saturating packs and one dword permute (5 uops
// where four vpmovsdb stores take 8).
template <typename CodeFn>
void store_codes(const float* x, size_t dim, int8_t* codes, CodeFn code) {
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    prefetch_ahead(x + i, 64 * sizeof(float));
    __m512i c0 = code(_mm512_loadu_ps(x + i)), c1 = code(_mm512_loadu_ps(x + i + 16));
    __m512i c2 = code(_mm512_loadu_ps(x + i + 32)), c3 = code(_mm512_loadu_ps(x + i + 48));
    __m512i bytes = _mm512_packs_epi16(_mm512_packs_epi32(c0, c1), _mm512_packs_epi32(c2, c3));
    _mm512_storeu_si512(codes + i, _mm512_permutexvar_epi32(order, bytes));
  }
  for (; i + 16 <= dim; i += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm512_cvtsepi32_epi8(code(_mm512_loadu_ps(x + i))));
  if (i < dim) {
    __mmask16 k = tail_mask16(dim - i);
    _mm512_mask_cvtsepi32_storeu_epi8(codes + i, k, code(_mm512_maskz_loadu_ps(k, x + i)));
  }
}

void pack_nonneg(const float* x, size_t dim, uint8_t* bits, BitOrder order) {
  size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    uint64_t w = 0;
    for (int j = 0; j < 4; ++j)
      w |= uint64_t(_mm512_cmp_ps_mask(_mm512_loadu_ps(x + i + 16 * j), _mm512_setzero_ps(), _CMP_GE_OQ)) << (16 * j);
    store_bits(bits + i / 8, w, 64, order);
  }
  if (i < dim) {
    size_t n = dim - i;
    uint64_t w = 0;
    for (size_t j = 0; 16 * j < n; ++j) {
      __mmask16 k = tail_mask16(n - 16 * j);
      w |= uint64_t(_mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, x + i + 16 * j), _mm512_setzero_ps(), _CMP_GE_OQ)) << (16 * j);
    }
    store_bits(bits + i / 8, w, n, order);
  }
}

bool tanh_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  const TanhEstimate tanh127;
  const Thresholds th(tanh_i8_thresholds());
  __m512 nonfinite = _mm512_setzero_ps();
  store_codes(x, dim, codes, [&](__m512 v) { return tanh_codes(v, tanh127, th, &nonfinite); });
  if (bits) pack_nonneg(x, dim, bits, order);  // the row is in L1 now
  return _mm512_cmp_ps_mask(nonfinite, nonfinite, _CMP_UNORD_Q) == 0;
}

bool absmax_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  __m512 max_abs = _mm512_setzero_ps();
  __mmask16 bad = 0;
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    prefetch_ahead(x + i, 16 * sizeof(float));
    __m512 v = _mm512_loadu_ps(x + i);
    bad |= not_finite(v);
    max_abs = _mm512_max_ps(max_abs, _mm512_abs_ps(v));
  }
  if (i < dim) {
    __m512 v = _mm512_maskz_loadu_ps(tail_mask16(dim - i), x + i);
    bad |= not_finite(v);
    max_abs = _mm512_max_ps(max_abs, _mm512_abs_ps(v));
  }
  if (bits) pack_nonneg(x, dim, bits, order);
  if (bad) return false;
  const float m = _mm512_reduce_max_ps(max_abs);
  if (m == 0.0f) {
    std::memset(codes, 0, dim);
    return true;
  }
  const float pre_s = m < kAbsmaxTiny ? kAbsmaxPrescale : 1.0f;
  const __m512 pre = _mm512_set1_ps(pre_s), scale = _mm512_set1_ps(127.0f / (m * pre_s));
  store_codes(x, dim, codes, [&](__m512 v) {
    __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_mul_ps(v, pre), scale),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512i c = _mm512_cvtps_epi32(q);
    return _mm512_max_epi32(_mm512_min_epi32(c, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
  });
  return true;
}

bool sign_i8(const float* x, size_t dim, int8_t* codes) {
  __mmask16 bad = 0;
  store_codes(x, dim, codes, [&](__m512 v) {
    bad |= not_finite(v);
    __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_blend_epi32(neg, _mm512_set1_epi32(1), _mm512_set1_epi32(-1));
  });
  return bad == 0;
}

}  // namespace

const QuantizeKernels quantize = {tanh_i8, absmax_i8, sign_i8};

}  // namespace avx512
}  // namespace pplx

// Quantization, AVX2. tanh_i8 is exact, not approximate: an accurate
// estimate of 127*tanh(|x|) (piecewise polynomial) is rounded, and the rare lanes within kTieBand
// of a .5 boundary are settled by the exact threshold from
// tanh_i8_thresholds(), so the code is the one the float64 formula gives. absmax_i8 and sign_i8 compute the same float32
// operations as the scalar reference, so every variant agrees bit for bit.
#include <cmath>

#include "kernels/common/avx2_util.h"
#include "kernels/common/prefetch.h"
#include "pplx/quantize.h"

namespace pplx {
namespace avx2 {
namespace {

// 127 * tanh(a) for a >= 0 from tanh127_pieces(8, 5): the piece index picks
// each coefficient out of an 8-entry table in one register (vpermps), so the
// estimate takes 5 FMAs and no division. Absolute error below 1e-4. t is
// capped at 7, the constant piece; the cap also sends NaN (min returns its
// second operand) and Inf there.
struct TanhEstimate {
  __m256 scale;
  __m256 coef[6];
  TanhEstimate() {
    const TanhPieces& p = tanh127_pieces(8, 5);
    scale = _mm256_set1_ps(p.scale);
    for (int j = 0; j < 6; ++j) coef[j] = _mm256_loadu_ps(p.coef + 8 * j);
  }
  __m256 operator()(__m256 a) const {
    __m256 t = _mm256_min_ps(_mm256_mul_ps(a, scale), _mm256_set1_ps(7.0f));
    __m256i i = _mm256_cvttps_epi32(t);
    __m256 y = _mm256_permutevar8x32_ps(coef[0], i);
    for (int j = 1; j < 6; ++j) y = _mm256_fmadd_ps(y, t, _mm256_permutevar8x32_ps(coef[j], i));
    return y;
  }
};

// Lanes whose estimate lies this close to a .5 boundary are decided by the
// exact threshold instead of by rounding (the estimate error is ~20x smaller).
constexpr float kTieBand = 2e-3f;

// Exact tanh codes of 8 lanes: the rounded estimate, except near a .5
// boundary, where m = floor(estimate) gets one more if a >= T[m + 1] (a
// gather, taken for few vectors). *nonfinite turns NaN for good once a lane
// held NaN or Inf (a * 0 is NaN exactly for those).
inline __m256i tanh_codes(__m256 x, const TanhEstimate& tanh127, const float* thresholds,
                          __m256* nonfinite) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 a = _mm256_and_ps(x, abs_mask);
  *nonfinite = _mm256_fmadd_ps(a, _mm256_setzero_ps(), *nonfinite);
  __m256 y = tanh127(a);  // at most 127 + 1e-4, so the code never passes 127
  __m256 k = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 near_tie = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(y, k), abs_mask),
                                  _mm256_set1_ps(0.5f - kTieBand), _CMP_GT_OQ);
  __m256i q = _mm256_cvtps_epi32(k);
  if (_mm256_movemask_ps(near_tie)) {
    __m256i m = _mm256_min_epi32(_mm256_cvttps_epi32(y), _mm256_set1_epi32(126));
    __m256 next = _mm256_i32gather_ps(thresholds + 1, m, 4);
    // the compare mask is -1 where true
    __m256i exact = _mm256_sub_epi32(m, _mm256_castps_si256(_mm256_cmp_ps(a, next, _CMP_GE_OQ)));
    q = _mm256_blendv_epi8(q, exact, _mm256_castps_si256(near_tie));
  }
  return _mm256_sign_epi32(q, _mm256_castps_si256(x));
}

// Four vectors of int32 codes in [-127, 127] to 32 bytes: two saturating
// packs and one dword permute instead of four narrow stores.
inline void store_4x8_codes(__m256i c0, __m256i c1, __m256i c2, __m256i c3, int8_t* out) {
  __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
  bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), bytes);
}

bool tanh_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  const TanhEstimate tanh127;
  const float* thresholds = tanh_i8_thresholds();
  __m256 nonfinite = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    prefetch_ahead(x + i, 32 * sizeof(float));
    __m256 v[4];
    __m256i c[4];
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(x + i + 8 * j);
      c[j] = tanh_codes(v[j], tanh127, thresholds, &nonfinite);
    }
    store_4x8_codes(c[0], c[1], c[2], c[3], codes + i);
    if (bits)
      for (int j = 0; j < 4; ++j) bits[(i >> 3) + j] = order_byte(nonneg_mask(v[j]), order);
  }
  for (; i + 8 <= dim; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    store_i32_as_i8(tanh_codes(v, tanh127, thresholds, &nonfinite), codes + i);
    if (bits) bits[i >> 3] = order_byte(nonneg_mask(v), order);
  }
  if (i < dim) {
    size_t n = dim - i;
    __m256 v = _mm256_maskload_ps(x + i, tail_mask(n));
    int8_t tail[8];
    store_i32_as_i8(tanh_codes(v, tanh127, thresholds, &nonfinite), tail);
    std::memcpy(codes + i, tail, n);
    if (bits) bits[i >> 3] = order_byte(nonneg_mask(v) & ((1u << n) - 1), order);
  }
  return _mm256_movemask_ps(_mm256_cmp_ps(nonfinite, nonfinite, _CMP_UNORD_Q)) == 0;
}

bool absmax_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 max_abs = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    prefetch_ahead(x + i, 8 * sizeof(float));
    __m256 v = _mm256_loadu_ps(x + i);
    bad = _mm256_or_ps(bad, not_finite(v));
    max_abs = _mm256_max_ps(max_abs, _mm256_and_ps(v, abs_mask));
    if (bits) bits[i >> 3] = order_byte(nonneg_mask(v), order);
  }
  const size_t n_tail = dim - i;
  const __m256i tmask = tail_mask(n_tail);
  if (n_tail) {
    __m256 v = _mm256_maskload_ps(x + i, tmask);  // masked-off lanes read as 0
    bad = _mm256_or_ps(bad, not_finite(v));
    max_abs = _mm256_max_ps(max_abs, _mm256_and_ps(v, abs_mask));
    if (bits) bits[i >> 3] = order_byte(nonneg_mask(v) & ((1u << n_tail) - 1), order);
  }
  if (_mm256_movemask_ps(bad)) return false;
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(max_abs), _mm256_extractf128_ps(max_abs, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  const float m = _mm_cvtss_f32(m4);
  if (m == 0.0f) {
    std::memset(codes, 0, dim);
    return true;
  }
  const float pre_s = m < kAbsmaxTiny ? kAbsmaxPrescale : 1.0f;
  const __m256 pre = _mm256_set1_ps(pre_s);
  const __m256 scale = _mm256_set1_ps(127.0f / (m * pre_s));
  const __m256i lim = _mm256_set1_epi32(127), neg_lim = _mm256_set1_epi32(-127);
  auto code = [&](__m256 v) {
    __m256 q = _mm256_round_ps(_mm256_mul_ps(_mm256_mul_ps(v, pre), scale),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(q), lim), neg_lim);
  };
  for (i = 0; i + 8 <= dim; i += 8) store_i32_as_i8(code(_mm256_loadu_ps(x + i)), codes + i);
  if (n_tail) {
    int8_t tail[8];
    store_i32_as_i8(code(_mm256_maskload_ps(x + i, tmask)), tail);
    std::memcpy(codes + i, tail, n_tail);
  }
  return true;
}

bool sign_i8(const float* x, size_t dim, int8_t* codes) {
  __m256 bad = _mm256_setzero_ps();
  const __m256i one = _mm256_set1_epi32(1);
  auto code = [&](__m256 v) {
    bad = _mm256_or_ps(bad, not_finite(v));
    __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_or_si256(one, neg);  // 1, or -1 where negative
  };
  size_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    prefetch_ahead(x + i, 8 * sizeof(float));
    store_i32_as_i8(code(_mm256_loadu_ps(x + i)), codes + i);
  }
  if (i < dim) {
    size_t n = dim - i;
    int8_t tail[8];
    store_i32_as_i8(code(_mm256_maskload_ps(x + i, tail_mask(n))), tail);
    std::memcpy(codes + i, tail, n);
  }
  return _mm256_movemask_ps(bad) == 0;
}

}  // namespace

const QuantizeKernels quantize = {tanh_i8, absmax_i8, sign_i8};

}  // namespace avx2
}  // namespace pplx

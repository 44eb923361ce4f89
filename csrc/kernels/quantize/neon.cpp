// Quantization, NEON (plain ARMv8-A). Same method as the AVX2 and AVX-512
// twins. tanh_i8 is exact, not approximate: an accurate estimate of
// 127*tanh(|x|) is rounded, and the rare lanes within kTieBand of a .5
// boundary are settled by the exact threshold from tanh_i8_thresholds()
// (NEON has no gather; those lanes read the table one by one, which happens
// for a few vectors in a thousand). absmax_i8 and sign_i8 compute the same
// float32 operations as the scalar reference (FRINTN rounds half to even),
// so every variant agrees bit for bit. 16 elements per step: 16 codes, or
// 2 bytes of packed sign bits.
#include "kernels/common/bits.h"
#include "kernels/common/neon_util.h"
#include "pplx/quantize.h"

namespace pplx {
namespace neon {
namespace {

// 127 * tanh(a) for 0 <= a <= 64, absolute error far below 1e-4:
// tanh(a) = 1 - 2 / (2^t + 1), t = 2 a log2(e), 2^t from a degree-6
// polynomial on [-0.5, 0.5] times 2^round(t), then an exact division.
inline float32x4_t tanh127(float32x4_t a) {
  float32x4_t t = vminq_f32(vmulq_f32(a, vdupq_n_f32(2.8853900817779268f)), vdupq_n_f32(40.0f));
  float32x4_t n = vrndnq_f32(t);
  float32x4_t f = vsubq_f32(t, n);
  float32x4_t p = vfmaq_f32(vdupq_n_f32(1.339887440266574e-3f), f, vdupq_n_f32(1.535336188319500e-4f));
  p = vfmaq_f32(vdupq_n_f32(9.618437357674640e-3f), f, p);
  p = vfmaq_f32(vdupq_n_f32(5.550332471162809e-2f), f, p);
  p = vfmaq_f32(vdupq_n_f32(2.402264791363012e-1f), f, p);
  p = vfmaq_f32(vdupq_n_f32(6.931472028550421e-1f), f, p);
  p = vfmaq_f32(vdupq_n_f32(1.0f), f, p);
  int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);  // 2^n
  float32x4_t d = vfmaq_f32(vdupq_n_f32(1.0f), p, vreinterpretq_f32_s32(e));
  return vsubq_f32(vdupq_n_f32(127.0f), vdivq_f32(vdupq_n_f32(254.0f), d));
}

// Lanes whose estimate lies this close to a .5 boundary are decided by the
// exact threshold instead of by rounding (the estimate error is far smaller).
constexpr float kTieBand = 2e-3f;

// Exact tanh codes of 4 lanes; *bad gathers the lanes that are not finite.
// The rounded estimate, except near a .5 boundary, where m = floor(estimate)
// gets one more if a >= T[m + 1].
inline int32x4_t tanh_codes(float32x4_t x, const float* thresholds, uint32x4_t* bad) {
  float32x4_t a = vabsq_f32(x);
  *bad = vorrq_u32(*bad, not_finite(x));
  float32x4_t a_safe = vminnmq_f32(a, vdupq_n_f32(64.0f));  // also maps NaN to 64
  float32x4_t y = tanh127(a_safe);
  float32x4_t k = vrndnq_f32(y);
  uint32x4_t near_tie = vcgtq_f32(vabdq_f32(y, k), vdupq_n_f32(0.5f - kTieBand));
  int32x4_t q = vminq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127));
  if (any(near_tie)) {
    int32x4_t m = vminq_s32(vcvtq_s32_f32(y), vdupq_n_s32(126));  // truncates: floor, y >= 0
    int32_t mi[4];
    vst1q_s32(mi, m);
    float next_f[4];
    for (int l = 0; l < 4; ++l) next_f[l] = thresholds[mi[l] < 0 ? 1 : mi[l] + 1];
    uint32x4_t up = vcgeq_f32(a_safe, vld1q_f32(next_f));
    int32x4_t exact = vsubq_s32(m, vreinterpretq_s32_u32(up));  // up is -1 where true
    q = vbslq_s32(near_tie, exact, q);
  }
  uint32x4_t negative = vcltq_s32(vreinterpretq_s32_f32(x), vdupq_n_s32(0));
  return vbslq_s32(negative, vnegq_s32(q), q);
}

// Stores code16(p) -> int8x16 over x in steps of 16; the last dim % 16
// elements go through a padded copy.
template <typename Code16>
void store_codes(const float* x, size_t dim, int8_t* codes, Code16 code16) {
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) vst1q_s8(codes + i, code16(x + i));
  if (i < dim) {
    size_t n = dim - i;
    float tail[16] = {};
    std::memcpy(tail, x + i, n * sizeof(float));
    int8_t out[16];
    vst1q_s8(out, code16(tail));
    std::memcpy(codes + i, out, n);
  }
}

// bits = packbits(x >= 0), padding bits zero: the tail is padded with -1.
void pack_nonneg(const float* x, size_t dim, uint8_t* bits, BitOrder order) {
  const uint8x16_t w = bit_weights(order);
  auto bits16 = [&](const float* p) {
    return pack16(narrow_mask(nonneg(vld1q_f32(p)), nonneg(vld1q_f32(p + 4)),
                              nonneg(vld1q_f32(p + 8)), nonneg(vld1q_f32(p + 12))),
                  w);
  };
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    uint16_t b = bits16(x + i);
    std::memcpy(bits + i / 8, &b, 2);
  }
  if (i < dim) {
    size_t n = dim - i;
    float tail[16];
    for (size_t j = 0; j < 16; ++j) tail[j] = j < n ? x[i + j] : -1.0f;
    uint16_t b = bits16(tail);
    std::memcpy(bits + i / 8, &b, packed_bytes(n));
  }
}

bool tanh_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  const float* thresholds = tanh_i8_thresholds();
  uint32x4_t bad = vdupq_n_u32(0);
  store_codes(x, dim, codes, [&](const float* p) {
    return narrow_i32_to_i8(tanh_codes(vld1q_f32(p), thresholds, &bad),
                            tanh_codes(vld1q_f32(p + 4), thresholds, &bad),
                            tanh_codes(vld1q_f32(p + 8), thresholds, &bad),
                            tanh_codes(vld1q_f32(p + 12), thresholds, &bad));
  });
  if (bits) pack_nonneg(x, dim, bits, order);  // the row is in L1 now
  return !any(bad);
}

bool absmax_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  float32x4_t max_abs = vdupq_n_f32(0.0f);
  uint32x4_t bad = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    float32x4_t v = vld1q_f32(x + i);
    bad = vorrq_u32(bad, not_finite(v));
    max_abs = vmaxq_f32(max_abs, vabsq_f32(v));
  }
  float m = vmaxvq_f32(max_abs);
  for (; i < dim; ++i) {
    bad = vorrq_u32(bad, not_finite(vdupq_n_f32(x[i])));
    m = std::fmax(m, std::fabs(x[i]));
  }
  if (bits) pack_nonneg(x, dim, bits, order);
  if (any(bad)) return false;
  if (m == 0.0f) {
    std::memset(codes, 0, dim);
    return true;
  }
  const float pre_s = m < kAbsmaxTiny ? kAbsmaxPrescale : 1.0f;
  const float32x4_t pre = vdupq_n_f32(pre_s), scale = vdupq_n_f32(127.0f / (m * pre_s));
  const int32x4_t lim = vdupq_n_s32(127), neg_lim = vdupq_n_s32(-127);
  auto code = [&](float32x4_t v) {
    float32x4_t q = vrndnq_f32(vmulq_f32(vmulq_f32(v, pre), scale));
    return vmaxq_s32(vminq_s32(vcvtq_s32_f32(q), lim), neg_lim);
  };
  store_codes(x, dim, codes, [&](const float* p) {
    return narrow_i32_to_i8(code(vld1q_f32(p)), code(vld1q_f32(p + 4)), code(vld1q_f32(p + 8)),
                            code(vld1q_f32(p + 12)));
  });
  return true;
}

bool sign_i8(const float* x, size_t dim, int8_t* codes) {
  uint32x4_t bad = vdupq_n_u32(0);
  const int32x4_t one = vdupq_n_s32(1);
  auto code = [&](float32x4_t v) {
    bad = vorrq_u32(bad, not_finite(v));
    int32x4_t neg = vreinterpretq_s32_u32(vcltq_f32(v, vdupq_n_f32(0.0f)));
    return vorrq_s32(one, neg);  // 1, or -1 where negative
  };
  store_codes(x, dim, codes, [&](const float* p) {
    return narrow_i32_to_i8(code(vld1q_f32(p)), code(vld1q_f32(p + 4)), code(vld1q_f32(p + 8)),
                            code(vld1q_f32(p + 12)));
  });
  return !any(bad);
}

}  // namespace

const QuantizeKernels quantize = {tanh_i8, absmax_i8, sign_i8};

}  // namespace neon
}  // namespace pplx

// Mean pooling, NEON (plain ARMv8-A: FCVTL widens binary16 without the
// optional FP16 arithmetic extension). Same summation order as the scalar
// reference: for each output lane, tokens are added one by one starting from
// +0.0, then one division by the count, so the results are bit-identical.
// The output block stays in registers while token rows stream through once;
// masked tokens are never read.
#include <arm_neon.h>

#include <cstring>

#include "kernels/common/f16.h"
#include "pplx/pooling.h"

namespace pplx {
namespace neon {
namespace {

// Columns handled per sweep over the tokens: 64 floats = 16 q registers.
constexpr size_t kBlock = 64;

inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
inline float load1(float v) { return v; }
inline float load1(uint16_t v) { return f16_to_f32(v); }

template <typename T>
void mean_pool(const T* rows, size_t n_rows, size_t row_stride, size_t dim, const uint8_t* mask,
               float* out) {
  size_t count = 0;
  for (size_t t = 0; t < n_rows; ++t) count += (!mask || mask[t]) ? 1 : 0;
  if (count == 0) {
    std::memset(out, 0, dim * sizeof(float));
    return;
  }
  const float32x4_t n = vdupq_n_f32(float(count));
  size_t h = 0;
  for (; h + kBlock <= dim; h += kBlock) {
    float32x4_t acc[16];
    for (int i = 0; i < 16; ++i) acc[i] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < n_rows; ++t) {
      if (mask && !mask[t]) continue;
      const T* row = rows + t * row_stride + h;
      for (int i = 0; i < 16; ++i) acc[i] = vaddq_f32(acc[i], load4(row + 4 * i));
    }
    for (int i = 0; i < 16; ++i) vst1q_f32(out + h + 4 * i, vdivq_f32(acc[i], n));
  }
  for (; h + 4 <= dim; h += 4) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < n_rows; ++t) {
      if (mask && !mask[t]) continue;
      acc = vaddq_f32(acc, load4(rows + t * row_stride + h));
    }
    vst1q_f32(out + h, vdivq_f32(acc, n));
  }
  for (; h < dim; ++h) {
    float acc = 0.0f;
    for (size_t t = 0; t < n_rows; ++t) {
      if (mask && !mask[t]) continue;
      acc += load1(rows[t * row_stride + h]);
    }
    out[h] = acc / float(count);
  }
}

void mean_pool_f32(const float* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(rows, n_rows, row_stride, dim, mask, out);
}

void mean_pool_f16(const uint16_t* rows, size_t n_rows, size_t row_stride, size_t dim,
                   const uint8_t* mask, float* out) {
  mean_pool(rows, n_rows, row_stride, dim, mask, out);
}

}  // namespace

const PoolingKernels pooling = {mean_pool_f32, mean_pool_f16};

}  // namespace neon
}  // namespace pplx

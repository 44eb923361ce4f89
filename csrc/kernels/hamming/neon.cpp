// Hamming distances, NEON (plain ARMv8-A): CNT counts the bits of each
// byte of q xor x, UADALP adds pairs of those counts into uint16 lanes (at
// most 16 per lane per 16-byte step, so a block of 2048 steps cannot wrap),
// and each block's lanes are summed into uint32 totals. Register tiles of
// 4 queries x 4 codes; code tails go through a zero-padded 16-byte copy.
#include <algorithm>

#include "kernels/common/neon_decls.h"
#include "kernels/common/neon_util.h"

namespace pplx {
namespace neon {
namespace {

constexpr int kQT = 4, kRT = 4;
constexpr size_t kBlockBytes = 2048 * 16;

template <int QT, int RT>
void tile(const uint8_t* q, size_t qs, const uint8_t* x, size_t xs, size_t bytes, int32_t* out,
          size_t os) {
  uint32_t total[QT * RT] = {};
  uint16x8_t acc[QT * RT];
  auto step = [&](auto load, size_t i) {
    uint8x16_t xv[RT];
    for (int r = 0; r < RT; ++r) xv[r] = load(x + r * xs + i);
    for (int a = 0; a < QT; ++a) {
      uint8x16_t qv = load(q + a * qs + i);
      for (int r = 0; r < RT; ++r)
        acc[a * RT + r] = vpadalq_u8(acc[a * RT + r], vcntq_u8(veorq_u8(qv, xv[r])));
    }
  };
  size_t i = 0;
  do {
    const size_t end = std::min(bytes, i + kBlockBytes);
    for (auto& a : acc) a = vdupq_n_u16(0);
    for (; i + 16 <= end; i += 16) step([](const uint8_t* p) { return vld1q_u8(p); }, i);
    if (i < end) {  // the last block only: kBlockBytes is a multiple of 16
      size_t n = end - i;
      step(
          [n](const uint8_t* p) {
            uint8_t buf[16] = {};
            std::memcpy(buf, p, n);
            return vld1q_u8(buf);
          },
          i);
      i = end;
    }
    for (int k = 0; k < QT * RT; ++k) total[k] += vaddlvq_u16(acc[k]);
  } while (i < bytes);
  for (int a = 0; a < QT; ++a)
    for (int r = 0; r < RT; ++r) out[a * os + r] = int32_t(total[a * RT + r]);
}

using TileFn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, size_t, int32_t*, size_t);
const TileFn kTiles[kQT][kRT] = {{tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>},
                                 {tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>},
                                 {tile<3, 1>, tile<3, 2>, tile<3, 3>, tile<3, 4>},
                                 {tile<4, 1>, tile<4, 2>, tile<4, 3>, tile<4, 4>}};

void hamming_u1(const uint8_t* q, size_t nq, size_t q_stride, const uint8_t* x, size_t nx,
                size_t x_stride, size_t bytes, int32_t* out, size_t out_stride) {
  for (size_t a = 0; a < nq; a += kQT) {
    size_t qt = std::min<size_t>(kQT, nq - a);
    for (size_t j = 0; j < nx; j += kRT) {
      size_t rt = std::min<size_t>(kRT, nx - j);
      kTiles[qt - 1][rt - 1](q + a * q_stride, q_stride, x + j * x_stride, x_stride, bytes,
                             out + a * out_stride + j, out_stride);
    }
  }
}

size_t first_at_most(const int32_t* d, size_t n, int32_t threshold) {
  const int32x4_t t = vdupq_n_s32(threshold);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint32x4_t m0 = vcleq_s32(vld1q_s32(d + i), t), m1 = vcleq_s32(vld1q_s32(d + i + 4), t);
    uint32x4_t m2 = vcleq_s32(vld1q_s32(d + i + 8), t), m3 = vcleq_s32(vld1q_s32(d + i + 12), t);
    if (any(vorrq_u32(vorrq_u32(m0, m1), vorrq_u32(m2, m3)))) break;
  }
  for (; i + 4 <= n; i += 4) {
    uint32x4_t m = vcleq_s32(vld1q_s32(d + i), t);
    if (any(m)) return i + first_lane(m);
  }
  for (; i < n; ++i)
    if (d[i] <= threshold) return i;
  return n;
}

}  // namespace

const HammingKernels hamming = {hamming_u1, first_at_most};

}  // namespace neon
}  // namespace pplx

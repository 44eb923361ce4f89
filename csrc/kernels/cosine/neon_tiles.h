// The parts of the NEON cosine kernels shared by the plain (neon.cpp) and
// dotprod (neon_dotprod.cpp) files: the register-tiled dot driver, generic
// over the multiply-accumulate step, and the kernels that need no dot
// product at all. Each including file gets its own copy (anonymous
// namespace), compiled with that file's flags.
#pragma once
#include <algorithm>

#include "kernels/common/neon_util.h"
#include "pplx/cosine.h"

namespace pplx {
namespace neon {
namespace {

// Register tiles of 4 queries x 4 rows: 16 int32x4 accumulators, 4 row
// chunks and one query chunk live in the 32 q registers. Mac::step(acc, q, x)
// adds the 16 byte products of q and x into acc's 4 lanes. Row tails go
// through a zero-padded 16-byte copy (zero bytes add nothing).
template <typename Mac>
struct DotTiles {
  static constexpr int kQT = 4, kRT = 4;

  // With Check, also returns whether a row byte was -128 (the minimum of the
  // rows' bytes); only the first query tile of a call checks.
  template <bool Check, int QT, int RT>
  static bool tile(const int8_t* q, size_t qs, const int8_t* x, size_t xs, size_t dim,
                   int32_t* out, size_t os) {
    int32x4_t acc[QT * RT];
    for (auto& a : acc) a = vdupq_n_s32(0);
    int8x16_t low = vdupq_n_s8(0);
    auto step = [&](auto load, size_t i) {
      int8x16_t xv[RT];
      for (int r = 0; r < RT; ++r) {
        xv[r] = load(x + r * xs + i);
        if (Check) low = vminq_s8(low, xv[r]);
      }
      for (int a = 0; a < QT; ++a) {
        int8x16_t qv = load(q + a * qs + i);
        for (int r = 0; r < RT; ++r) acc[a * RT + r] = Mac::step(acc[a * RT + r], qv, xv[r]);
      }
    };
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) step([](const int8_t* p) { return vld1q_s8(p); }, i);
    if (i < dim) {
      size_t n = dim - i;
      step(
          [n](const int8_t* p) {
            int8_t buf[16] = {};
            std::memcpy(buf, p, n);
            return vld1q_s8(buf);
          },
          i);
    }
    for (int a = 0; a < QT; ++a) {
      // Lane r of the sums is the total of acc[a][r] (pairwise adds).
      int32x4_t s[4];
      for (int r = 0; r < 4; ++r) s[r] = r < RT ? acc[a * RT + r] : vdupq_n_s32(0);
      int32x4_t sums = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
      if (RT == 4) {
        vst1q_s32(out + a * os, sums);
      } else {
        int32_t t[4];
        vst1q_s32(t, sums);
        for (int r = 0; r < RT; ++r) out[a * os + r] = t[r];
      }
    }
    return Check && vminvq_s8(low) == -128;
  }

  using TileFn = bool (*)(const int8_t*, size_t, const int8_t*, size_t, size_t, int32_t*, size_t);

  template <bool C>
  struct Tiles {
    TileFn fns[kQT][kRT] = {{tile<C, 1, 1>, tile<C, 1, 2>, tile<C, 1, 3>, tile<C, 1, 4>},
                            {tile<C, 2, 1>, tile<C, 2, 2>, tile<C, 2, 3>, tile<C, 2, 4>},
                            {tile<C, 3, 1>, tile<C, 3, 2>, tile<C, 3, 3>, tile<C, 3, 4>},
                            {tile<C, 4, 1>, tile<C, 4, 2>, tile<C, 4, 3>, tile<C, 4, 4>}};
  };

  // The DotsI8Fn contract: true (out unspecified) when x holds -128.
  static bool dots_i8(const int8_t* q, size_t nq, size_t q_stride, const int8_t* x, size_t nx,
                      size_t x_stride, size_t dim, int32_t* out, size_t out_stride) {
    static constexpr Tiles<true> checked{};
    static constexpr Tiles<false> plain{};
    for (size_t a = 0; a < nq; a += kQT) {
      size_t qt = std::min<size_t>(kQT, nq - a);
      const auto& tiles = a == 0 ? checked.fns : plain.fns;
      bool found = false;
      for (size_t j = 0; j < nx; j += kRT) {
        size_t rt = std::min<size_t>(kRT, nx - j);
        found |= tiles[qt - 1][rt - 1](q + a * q_stride, q_stride, x + j * x_stride, x_stride,
                                       dim, out + a * out_stride + j, out_stride);
      }
      if (found) return true;
    }
    return false;
  }

  static int32_t sumsq_i8(const int8_t* x, size_t dim) {
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0);
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
      int8x16_t a = vld1q_s8(x + i), b = vld1q_s8(x + i + 16);
      acc0 = Mac::step(acc0, a, a);
      acc1 = Mac::step(acc1, b, b);
    }
    int32_t s = vaddvq_s32(vaddq_s32(acc0, acc1));
    for (; i < dim; ++i) s += int32_t(x[i]) * int32_t(x[i]);
    return s;
  }
};

bool has_min_i8(const int8_t* x, size_t rows, size_t stride, size_t dim) {
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* row = x + r * stride;
    int8x16_t lo = vdupq_n_s8(0);
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) lo = vminq_s8(lo, vld1q_s8(row + i));
    bool found = vminvq_s8(lo) == -128;
    for (; i < dim; ++i) found |= row[i] == -128;
    if (found) return true;
  }
  return false;
}

// s = (float(d) * rq) * rx, then min(1, max(-1, s)) with std::min/std::max's
// exact semantics (compare and select), as the scalar reference computes it.
void cos_scores(const int32_t* dots, const float* rx, float rq, size_t n, float* out) {
  const float32x4_t vq = vdupq_n_f32(rq), lo = vdupq_n_f32(-1.0f), hi = vdupq_n_f32(1.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t d = vcvtq_f32_s32(vld1q_s32(dots + i));
    float32x4_t s = vmulq_f32(vmulq_f32(d, vq), vld1q_f32(rx + i));
    s = vbslq_f32(vcltq_f32(lo, s), s, lo);  // std::max(-1, s)
    s = vbslq_f32(vcltq_f32(s, hi), s, hi);  // std::min(1, s)
    vst1q_f32(out + i, s);
  }
  for (; i < n; ++i) out[i] = std::min(1.0f, std::max(-1.0f, (float(dots[i]) * rq) * rx[i]));
}

size_t first_at_least(const float* s, size_t n, float threshold) {
  const float32x4_t t = vdupq_n_f32(threshold);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint32x4_t m0 = vcgeq_f32(vld1q_f32(s + i), t), m1 = vcgeq_f32(vld1q_f32(s + i + 4), t);
    uint32x4_t m2 = vcgeq_f32(vld1q_f32(s + i + 8), t), m3 = vcgeq_f32(vld1q_f32(s + i + 12), t);
    if (any(vorrq_u32(vorrq_u32(m0, m1), vorrq_u32(m2, m3)))) break;
  }
  for (; i + 4 <= n; i += 4) {
    uint32x4_t m = vcgeq_f32(vld1q_f32(s + i), t);
    if (any(m)) return i + first_lane(m);
  }
  for (; i < n; ++i)
    if (s[i] >= threshold) return i;
  return n;
}

}  // namespace
}  // namespace neon
}  // namespace pplx

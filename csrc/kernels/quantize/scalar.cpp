// Quantization, scalar reference: the formulas of DESIGN.md written out in
// the plainest form, tanh in float64 as the pplx reference computes it.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "kernels/common/bits.h"
#include "pplx/quantize.h"

namespace pplx {
namespace scalar {
namespace {

inline int8_t tanh_code(float x) {
  double q = std::nearbyint(127.0 * std::tanh(double(x)));  // round half to even
  return int8_t(q > 127.0 ? 127 : (q < -127.0 ? -127 : q));
}

bool tanh_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  bool finite = true;
  for (size_t i = 0; i < dim; ++i) {
    finite &= std::isfinite(x[i]);
    codes[i] = tanh_code(x[i]);
  }
  if (bits) pack_signs(x, dim, bits, order);
  return finite;
}

bool absmax_i8(const float* x, size_t dim, int8_t* codes, uint8_t* bits, BitOrder order) {
  float max_abs = 0.0f;
  bool finite = true;
  for (size_t i = 0; i < dim; ++i) {
    finite &= std::isfinite(x[i]);
    max_abs = std::fmax(max_abs, std::fabs(x[i]));
  }
  if (bits) pack_signs(x, dim, bits, order);
  if (!finite) return false;
  // Below 2^-100 the scale would overflow float32: scale the vector up by
  // 2^100 first, which is exact.
  const float pre = max_abs < kAbsmaxTiny ? kAbsmaxPrescale : 1.0f;
  if (max_abs == 0.0f) {
    for (size_t i = 0; i < dim; ++i) codes[i] = 0;
    return true;
  }
  const float scale = 127.0f / (max_abs * pre);
  for (size_t i = 0; i < dim; ++i) {
    float q = std::nearbyint((x[i] * pre) * scale);
    codes[i] = int8_t(q > 127.0f ? 127 : (q < -127.0f ? -127 : q));
  }
  return true;
}

bool sign_i8(const float* x, size_t dim, int8_t* codes) {
  bool finite = true;
  for (size_t i = 0; i < dim; ++i) {
    finite &= std::isfinite(x[i]);
    codes[i] = x[i] >= 0.0f ? 1 : -1;
  }
  return finite;
}

}  // namespace

const QuantizeKernels quantize = {tanh_i8, absmax_i8, sign_i8};

}  // namespace scalar

const float* tanh_i8_thresholds() {
  // Binary search over the bit patterns of non-negative floats, which are
  // ordered like the values. The code is monotone in x.
  static const float* table = [] {
    static float t[129];
    auto code_of_bits = [](uint32_t b) {
      float a;
      std::memcpy(&a, &b, sizeof(a));
      return std::nearbyint(127.0 * std::tanh(double(a)));
    };
    t[0] = 0.0f;
    for (int j = 1; j <= 127; ++j) {
      uint32_t lo = 0, hi = 0x41A00000u;  // 20.0f: tanh is 1 in float64 well before
      while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (code_of_bits(mid) >= j) hi = mid; else lo = mid + 1;
      }
      std::memcpy(&t[j], &lo, sizeof(float));
    }
    t[128] = INFINITY;
    return t;
  }();
  return table;
}

namespace {

TanhPieces build_tanh_pieces(size_t pieces, size_t degree) {
  TanhPieces p{pieces, degree, float(double(pieces - 1) / 3.2), {}};
  const size_t n = degree + 1;
  const double pi = std::acos(-1.0);
  for (size_t i = 0; i + 1 < pieces; ++i) {
    // Solve V c = y for the interpolant through n Chebyshev nodes of [i, i + 1]
    // (Gaussian elimination with partial pivoting; n <= 6, t <= 31).
    double v[6][7];
    for (size_t k = 0; k < n; ++k) {
      double t = double(i) + 0.5 + 0.5 * std::cos(pi * (double(k) + 0.5) / double(n));
      for (size_t j = 0; j < n; ++j) v[k][j] = std::pow(t, double(degree - j));
      v[k][n] = 127.0 * std::tanh(t / double(p.scale));
    }
    for (size_t c = 0; c < n; ++c) {
      size_t pivot = c;
      for (size_t r = c + 1; r < n; ++r)
        if (std::fabs(v[r][c]) > std::fabs(v[pivot][c])) pivot = r;
      for (size_t j = 0; j <= n; ++j) std::swap(v[c][j], v[pivot][j]);
      for (size_t r = 0; r < n; ++r) {
        if (r == c) continue;
        double f = v[r][c] / v[c][c];
        for (size_t j = c; j <= n; ++j) v[r][j] -= f * v[c][j];
      }
    }
    for (size_t j = 0; j < n; ++j) p.coef[j * pieces + i] = float(v[j][n] / v[j][j]);
  }
  p.coef[degree * pieces + pieces - 1] = 127.0f;  // the constant last piece
  return p;
}

}  // namespace

const TanhPieces& tanh127_pieces(size_t pieces, size_t degree) {
  static const TanhPieces wide = build_tanh_pieces(32, 3), narrow = build_tanh_pieces(8, 5);
  if (pieces == 32 && degree == 3) return wide;
  if (pieces == 8 && degree == 5) return narrow;
  std::abort();  // a kernel asked for a table that is not built
}

}  // namespace pplx

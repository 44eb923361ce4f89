// Quantization of one float32 vector. Every kernel returns false when the
// vector holds NaN or Inf (its outputs are then unspecified), true otherwise.
//
// tanh_i8:   q = clamp(round_half_even(127 * tanh(x)), -127, 127), the pplx
//            scheme, equal to the float64 formula for every float32 input.
// absmax_i8: s = 127f / max|x| (float32), q = round_half_even(x * s) in
//            float32, clamped to [-127, 127]; all zeros when max|x| == 0.
// sign_i8:   +1 where x >= 0 (also -0.0), else -1.
//
// tanh_i8 and absmax_i8 also write the packed sign bits (x >= 0) when bits is
// not null: the fused pooled-float -> int8 + bits pass.
#pragma once
#include "pplx/types.h"

namespace pplx {

using QuantizeI8Fn = bool (*)(const float* x, size_t dim, int8_t* codes, uint8_t* bits,
                              BitOrder order);
using SignI8Fn = bool (*)(const float* x, size_t dim, int8_t* codes);

struct QuantizeKernels {
  QuantizeI8Fn tanh_i8;
  QuantizeI8Fn absmax_i8;
  SignI8Fn sign_i8;
};

namespace scalar { extern const QuantizeKernels quantize; }
namespace avx2 { extern const QuantizeKernels quantize; }
namespace avx512 { extern const QuantizeKernels quantize; }
namespace neon { extern const QuantizeKernels quantize; }

// Thresholds of the tanh scheme: the smallest float32 a >= 0 with
// round_half_even(127 * tanh(a)) >= j, for j = 1..127, found once from the
// float64 formula. SIMD kernels use them to correct a cheap tanh estimate to
// the exact code. Entry 0 is 0 and entry 128 is +Inf.
const float* tanh_i8_thresholds();

// 127 * tanh(a) for a >= 0 as `pieces` polynomials of degree `degree` in
// t = a * scale, scale = float32((pieces - 1) / 3.2): piece i = min(int(t),
// pieces - 1) covers t in [i, i + 1), and the last piece is the constant 127
// (127 tanh(3.2) = 126.79 lies above the last .5 boundary). Each piece
// interpolates the float64 formula at Chebyshev nodes. coef[j * pieces + i]
// is piece i's coefficient of t^(degree - j), so row j is a lookup table for
// one permute. Built once; (32, 3) and (8, 5) exist.
struct TanhPieces {
  size_t pieces, degree;
  float scale;
  float coef[6 * 32];
};
const TanhPieces& tanh127_pieces(size_t pieces, size_t degree);

}  // namespace pplx

// int8 dots and cosine scores, NEON (plain ARMv8-A, no dot product
// extension; neon_dotprod.cpp is the SDOT twin).
//
// SMULL multiplies 8 signed byte pairs into int16; SMLAL2 adds the products
// of the upper 8 pairs. With inputs in [-127, 127] each int16 lane holds two
// products, at most 2 * 127 * 127 = 32258 in magnitude, so nothing wraps
// (-128 * -128 twice would: callers reject or clamp -128 first). SADALP then
// adds pairs of int16 lanes into the int32 accumulators: exact.
//
// Register tiles of 4 queries x 4 rows (kernels/cosine/neon_tiles.h).
#include "kernels/common/neon_decls.h"
#include "kernels/cosine/neon_tiles.h"

namespace pplx {
namespace neon {
namespace {

struct WideningMac {
  static inline int32x4_t step(int32x4_t acc, int8x16_t a, int8x16_t b) {
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    p = vmlal_high_s8(p, a, b);
    return vpadalq_s16(acc, p);
  }
};

using Dots = DotTiles<WideningMac>;

}  // namespace

const CosineKernels cosine = {Dots::dots_i8, Dots::sumsq_i8, has_min_i8, cos_scores,
                              first_at_least};

}  // namespace neon
}  // namespace pplx

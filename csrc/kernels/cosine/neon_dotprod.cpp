// int8 dots and cosine scores, NEON with the ARMv8.2 dot product extension
// (compiled with +dotprod, chosen at run time only where HWCAP_ASIMDDP is
// set). SDOT adds four signed x signed byte products into each int32 lane:
// no widening steps and no offset trick (unlike x86 VNNI's unsigned x
// signed vpdpbusd, SimSIMD issue 91), exact for any int8 input.
//
// Register tiles of 4 queries x 4 rows (kernels/cosine/neon_tiles.h); the
// kernels without dot products are the same as the plain NEON file's.
#include "kernels/common/neon_decls.h"
#include "kernels/cosine/neon_tiles.h"

namespace pplx {
namespace neon_dotprod {
namespace {

struct DotMac {
  static inline int32x4_t step(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vdotq_s32(acc, a, b);
  }
};

using Dots = neon::DotTiles<DotMac>;

}  // namespace

const CosineKernels cosine = {Dots::dots_i8, Dots::sumsq_i8, neon::has_min_i8, neon::cos_scores,
                              neon::first_at_least};

}  // namespace neon_dotprod
}  // namespace pplx

// Declarations of the NEON search kernel tables (the pooling, quantize and
// bitpack headers declare their own neon tables). neon_dotprod::cosine needs
// the ARMv8.2 dot product extension (HWCAP_ASIMDDP) and is chosen at run
// time only where it is present.
#pragma once
#include "pplx/cosine.h"
#include "pplx/hamming.h"

namespace pplx {
namespace neon {
extern const CosineKernels cosine;
extern const HammingKernels hamming;
}  // namespace neon
namespace neon_dotprod {
extern const CosineKernels cosine;
}  // namespace neon_dotprod
}  // namespace pplx

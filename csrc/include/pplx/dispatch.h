// CPU feature detection and the kernel table chosen from it.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "pplx/bitpack.h"
#include "pplx/cosine.h"
#include "pplx/hamming.h"
#include "pplx/pooling.h"
#include "pplx/quantize.h"
#include "pplx/types.h"

namespace pplx {

struct CpuFeatures {
  // x86: CPUID bits, each also requiring the OS to save the registers (XCR0).
  bool sse42 = false, popcnt = false, avx = false, avx2 = false, fma = false, f16c = false,
       bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false,
       avx512vnni = false, avx512vpopcntdq = false;
  bool os_avx = false, os_avx512 = false;
  // aarch64: HWCAP bits.
  bool neon = false, neon_dotprod = false, neon_fp16 = false;
};

const CpuFeatures& cpu_features();

const char* isa_name(Isa isa);
// Throws std::invalid_argument for an unknown name.
Isa parse_isa(const std::string& name);
// Compiled in, present on this CPU and enabled by the OS.
bool isa_supported(Isa isa);
std::vector<Isa> supported_isas();

// The kernels of every family at one level. A family with no variant at a
// level uses the best one below it; variant_names say which.
struct KernelTable {
  PoolingKernels pooling;
  QuantizeKernels quantize;
  BitpackKernels bitpack;
  CosineKernels cosine;
  HammingKernels hamming;
  Isa level;
  Isa pooling_isa, quantize_isa, bitpack_isa;
  Isa cosine_isa, hamming_isa;
};

// The table of `level` on a CPU with features f (f decides the variants
// beyond the level's guarantees, e.g. VNNI). Tests build the table of a CPU
// without some extension this way.
KernelTable build_table(Isa level, const CpuFeatures& f);

// The active table. At first use it is built from PPLX_KERNELS_ISA (a cap)
// or the best supported level.
const KernelTable& kernels();
// Rebuilds the table at `isa`; throws std::invalid_argument when this
// machine cannot run it.
void set_isa(Isa isa);

// Names of the families added beside the core ones, with the level each
// uses in table t (for cpu_info()).
std::vector<std::pair<std::string, std::string>> extra_kernel_variants(const KernelTable& t);

}  // namespace pplx

// The kernel table: one slot per kernel, filled from the chosen level.
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "pplx/dispatch.h"
#if defined(PPLX_HAVE_NEON)
#include "kernels/common/neon_decls.h"
#endif

namespace pplx {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon})
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument("PPLX_KERNELS_ISA: unknown level '" + name +
                              "', expected one of scalar, avx2, avx512, neon");
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: return true;
#if defined(PPLX_HAVE_X86)
    case Isa::avx2: return f.avx2 && f.fma && f.f16c && f.popcnt && f.bmi2;
    case Isa::avx512:
      return isa_supported(Isa::avx2) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
#endif
#if defined(PPLX_HAVE_NEON)
    case Isa::neon: return f.neon;
#endif
    default: return false;
  }
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

KernelTable build_table(Isa level, const CpuFeatures& f) {
  KernelTable t;
  t.level = level;
  t.pooling = scalar::pooling;
  t.quantize = scalar::quantize;
  t.bitpack = scalar::bitpack;
  t.cosine = scalar::cosine;
  t.hamming = scalar::hamming;
  t.pooling_isa = t.quantize_isa = t.bitpack_isa = Isa::scalar;
  t.cosine_isa = t.hamming_isa = Isa::scalar;
#if defined(PPLX_HAVE_X86)
  if (level >= Isa::avx2 && level != Isa::neon) {
    t.pooling = avx2::pooling;
    t.quantize = avx2::quantize;
    t.bitpack = avx2::bitpack;
    t.pooling_isa = t.quantize_isa = t.bitpack_isa = Isa::avx2;
    t.cosine = avx2::cosine;
    t.hamming = avx2::hamming;
    t.cosine_isa = t.hamming_isa = Isa::avx2;
  }
  // The AVX-512 search kernels need VNNI (cosine) and VPOPCNTDQ (Hamming)
  // beyond the level's F/BW/VL/DQ; without them the AVX2 twins run.
  if (level == Isa::avx512) {
    if (f.avx512vnni) t.cosine = avx512_vnni::cosine, t.cosine_isa = Isa::avx512;
    if (f.avx512vpopcntdq) t.hamming = avx512_vpopcntdq::hamming, t.hamming_isa = Isa::avx512;
  }
  if (level == Isa::avx512) {
    t.pooling = avx512::pooling;
    t.quantize = avx512::quantize;
    t.bitpack = avx512::bitpack;
    t.pooling_isa = t.quantize_isa = t.bitpack_isa = Isa::avx512;
  }
#endif
#if defined(PPLX_HAVE_NEON)
  // Every family has a plain ARMv8-A NEON twin; cosine has a second one
  // with the dot product extension, taken only where HWCAP_ASIMDDP says so.
  if (level == Isa::neon) {
    t.pooling = neon::pooling;
    t.quantize = neon::quantize;
    t.bitpack = neon::bitpack;
    t.cosine = f.neon_dotprod ? neon_dotprod::cosine : neon::cosine;
    t.hamming = neon::hamming;
    t.pooling_isa = t.quantize_isa = t.bitpack_isa = Isa::neon;
    t.cosine_isa = t.hamming_isa = Isa::neon;
  }
#endif
  (void)f;
  return t;
}

namespace {

Isa default_level() {
  const char* env = std::getenv("PPLX_KERNELS_ISA");
  if (env && *env) {
    Isa cap = parse_isa(env);
    if (!isa_supported(cap))
      throw std::invalid_argument(std::string("PPLX_KERNELS_ISA=") + env +
                                  ": this CPU (or its OS) does not support that level");
    return cap;
  }
  Isa best = Isa::scalar;
  for (Isa isa : supported_isas())
    if (isa != Isa::neon || best == Isa::scalar) best = isa;
  return best;
}

// The table is replaced whole; readers load the pointer once per call.
std::atomic<const KernelTable*> g_table{nullptr};
std::mutex g_table_mutex;

}  // namespace

const KernelTable& kernels() {
  const KernelTable* t = g_table.load(std::memory_order_acquire);
  if (t) return *t;
  std::lock_guard<std::mutex> lock(g_table_mutex);
  t = g_table.load(std::memory_order_relaxed);
  if (!t) {
    t = new KernelTable(build_table(default_level(), cpu_features()));
    g_table.store(t, std::memory_order_release);
  }
  return *t;
}

void set_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("isa: '") + isa_name(isa) +
                                "' is not supported on this CPU");
  std::lock_guard<std::mutex> lock(g_table_mutex);
  // Old tables are kept alive: a call running on another thread may hold one.
  g_table.store(new KernelTable(build_table(isa, cpu_features())), std::memory_order_release);
}

std::vector<std::pair<std::string, std::string>> extra_kernel_variants(const KernelTable& t) {
  // The AVX-512 variants are named by the extension they rely on.
  std::string cosine = isa_name(t.cosine_isa), hamming = isa_name(t.hamming_isa);
  if (t.cosine_isa == Isa::avx512) cosine = "avx512_vnni";
  if (t.hamming_isa == Isa::avx512) hamming = "avx512_vpopcntdq";
#if defined(PPLX_HAVE_NEON)
  // The cosine table in use, not the CPU flag, names the variant.
  if (t.cosine.dots_i8 == neon_dotprod::cosine.dots_i8) cosine = "neon_dotprod";
#endif
  return {{"cosine", cosine}, {"hamming", hamming}};
}

}  // namespace pplx

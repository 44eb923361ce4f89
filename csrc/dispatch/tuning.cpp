// Knob storage and the defaults table by vendor and microarchitecture.
#include "pplx/tuning.h"

#include <cstring>
#include <stdexcept>

#if defined(PPLX_HAVE_X86)
#include <cpuid.h>
#endif

namespace pplx {
namespace {

constexpr int kKnobs = int(Knob::count);

struct Defaults {
  const char* family;
  uint32_t values[kKnobs];
};

// Measured defaults (benchmarks/README.md); the tuner refines them per
// machine. Order: cosine_prefetch, hamming_prefetch,
// cosine_packed_min_queries, hamming_packed_min_queries,
// hamming_popcnt_max_bytes, hamming_code_packing_min_queries,
// cosine_row_order, hamming_row_order, scan_chunk_bytes, hamming_qpacked_prefetch,
// hamming_packed_next_prefetch.
const Defaults kDefaults[] = {
    {"generic", {4096, 4096, 8, 8, 64, 16, 1, 1, 4u << 20, 0, 1}},
    {"intel", {4096, 4096, 8, 4, 64, 16, 1, 1, 4u << 20, 0, 1}},
    // queries packed below 64 and the prefetch: benchmarks/README.md
    {"amd-zen4", {4096, 4096, 8, 4, 64, 64, 1, 1, 4u << 20, 2048, 1}},
    {"amd", {4096, 4096, 8, 8, 64, 16, 1, 1, 4u << 20, 0, 1}},
};

const Defaults& defaults_row() {
  const std::string name = cpu_family_name();
  for (const Defaults& d : kDefaults)
    if (name == d.family) return d;
  return kDefaults[0];
}

uint32_t g_knobs[kKnobs];
bool g_init = [] {
  reset_knobs();
  return true;
}();

}  // namespace

std::string cpu_family_name() {
#if defined(PPLX_HAVE_X86)
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return "generic";
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4), std::memcpy(vendor + 4, &edx, 4), std::memcpy(vendor + 8, &ecx, 4);
  __get_cpuid(1, &eax, &ebx, &ecx, &edx);
  const unsigned family = ((eax >> 8) & 0xF) + ((eax >> 8 & 0xF) == 0xF ? (eax >> 20) & 0xFF : 0);
  const unsigned model = ((eax >> 4) & 0xF) | (((eax >> 16) & 0xF) << 4);
  if (!std::strcmp(vendor, "GenuineIntel")) return "intel";
  if (!std::strcmp(vendor, "AuthenticAMD")) {
    // Family 25 (0x19) models 0x10-0x1F and 0x60-0x7F, 0xA0-0xAF are Zen 4.
    if (family == 25 && ((model >= 0x10 && model <= 0x1F) || (model >= 0x60 && model <= 0x7F) ||
                         (model >= 0xA0 && model <= 0xAF)))
      return "amd-zen4";
    return "amd";
  }
#endif
  return "generic";
}

const std::vector<KnobInfo>& knob_infos() {
  static const std::vector<KnobInfo> infos = {
      {"cosine_prefetch", {0, 2048, 4096, 8192}},
      {"hamming_prefetch", {0, 2048, 4096, 8192}},
      {"cosine_packed_min_queries", {4, 8, 16, 32, 64}},
      {"hamming_packed_min_queries", {4, 8, 16, 32, 64}},
      {"hamming_popcnt_max_bytes", {0, 64, 128, 256, 1u << 30}},
      {"hamming_code_packing_min_queries", {8, 16, 32, 64}},
      {"cosine_row_order", {0, 1}},
      {"hamming_row_order", {0, 1}},
      {"scan_chunk_bytes", {64u << 10, 256u << 10, 1u << 20, 4u << 20, 16u << 20}},
      {"hamming_qpacked_prefetch", {0, 1024, 2048, 4096}},
      {"hamming_packed_next_prefetch", {0, 1}},
  };
  return infos;
}

uint32_t knob(Knob k) { return __atomic_load_n(&g_knobs[int(k)], __ATOMIC_RELAXED); }

void set_knob(Knob k, uint32_t value) {
  if (int(k) < 0 || int(k) >= kKnobs) throw std::invalid_argument("knob: out of range");
  __atomic_store_n(&g_knobs[int(k)], value, __ATOMIC_RELAXED);
}

std::vector<uint32_t> default_knobs() {
  const Defaults& d = defaults_row();
  return std::vector<uint32_t>(d.values, d.values + kKnobs);
}

void reset_knobs() {
  const Defaults& d = defaults_row();
  for (int i = 0; i < kKnobs; ++i) __atomic_store_n(&g_knobs[i], d.values[i], __ATOMIC_RELAXED);
}

}  // namespace pplx

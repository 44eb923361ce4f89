// CPU feature detection: CPUID plus XGETBV on x86 (a CPU may have AVX while
// the OS or hypervisor does not save the wide registers), HWCAP on aarch64.
#include <cstdint>

#include "pplx/dispatch.h"

#if defined(PPLX_HAVE_X86)
#include <cpuid.h>
#endif
#if defined(PPLX_HAVE_NEON) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace pplx {
namespace {

#if defined(PPLX_HAVE_X86)
// xgetbv without -mxsave, so this file stays baseline code.
uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.sse42 = ecx & bit_SSE4_2;
  f.popcnt = ecx & bit_POPCNT;
  bool osxsave = ecx & bit_OSXSAVE;
  bool cpu_avx = ecx & bit_AVX, cpu_fma = ecx & bit_FMA, cpu_f16c = ecx & bit_F16C;
  if (osxsave) {
    uint64_t xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;             // SSE and AVX state
    f.os_avx512 = f.os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM
  }
  f.avx = cpu_avx && f.os_avx;
  f.fma = cpu_fma && f.os_avx;
  f.f16c = cpu_f16c && f.os_avx;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    f.avx2 = (ebx & bit_AVX2) && f.os_avx;
    f.bmi2 = ebx & bit_BMI2;
    f.avx512f = (ebx & bit_AVX512F) && f.os_avx512;
    f.avx512dq = (ebx & bit_AVX512DQ) && f.os_avx512;
    f.avx512bw = (ebx & bit_AVX512BW) && f.os_avx512;
    f.avx512vl = (ebx & bit_AVX512VL) && f.os_avx512;
    f.avx512vnni = (ecx & bit_AVX512VNNI) && f.os_avx512;
    f.avx512vpopcntdq = (ecx & bit_AVX512VPOPCNTDQ) && f.os_avx512;
  }
  return f;
}
#elif defined(PPLX_HAVE_NEON)
CpuFeatures detect() {
  CpuFeatures f;
  f.neon = true;  // Advanced SIMD is mandatory on AArch64.
#if defined(__linux__)
  unsigned long hwcap = getauxval(AT_HWCAP);
#ifdef HWCAP_ASIMDDP
  f.neon_dotprod = hwcap & HWCAP_ASIMDDP;
#endif
#ifdef HWCAP_ASIMDHP
  f.neon_fp16 = hwcap & HWCAP_ASIMDHP;
#endif
#endif
  return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace pplx

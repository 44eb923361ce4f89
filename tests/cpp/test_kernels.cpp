// Every SIMD kernel table this CPU supports, compared bit for bit with the
// scalar table on random and adversarial inputs: tails of every length,
// extreme values, .5 ties, zeros and signed zeros, float16 subnormals, NaN
// and Inf, strides, and guard bytes around every output. Links the kernel
// sources directly (no Python); scripts/test_cpp_native.sh builds it for
// x86, scripts/test_neon_qemu.sh cross-builds it for aarch64 and runs it
// under qemu.
//
//   test_kernels [--tanh-sweep] [--verbose]
//
// --tanh-sweep also checks tanh_i8 on every non-negative float32 below 20
// (and a stride of negatives) against the exact thresholds.
// PPLX_TEST_SEED sets the seed; PPLX_TEST_EXPECT_COSINE / _HAMMING name the
// variant that the best level's table must use (what cpu_info() reports).
// Prints "N passed, N failed" and exits non-zero on any failure.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "pplx/dispatch.h"
#include "pplx/tuning.h"
#if defined(PPLX_HAVE_NEON)
#include "kernels/common/neon_decls.h"
#endif

using namespace pplx;

namespace {

// ---------------------------------------------------------------- bookkeeping

struct Variant {
  std::string name;
  KernelTable table;
};

std::map<std::string, std::pair<long, long>> g_counts;  // variant -> (passed, failed)
std::map<std::string, long> g_failed_kernels;             // "variant kernel" -> failures
long g_passed = 0, g_failed = 0;
bool g_verbose = false;
std::mt19937_64 g_rng;

void report(const std::string& variant, bool ok, const std::string& what) {
  auto& c = g_counts[variant];
  if (ok) {
    ++g_passed, ++c.first;
    if (g_verbose) std::printf("ok   [%s] %s\n", variant.c_str(), what.c_str());
  } else {
    ++g_failed, ++c.second;
    ++g_failed_kernels[variant + " " + what.substr(0, what.find(' '))];
    if (c.second <= 40) std::printf("FAIL [%s] %s\n", variant.c_str(), what.c_str());
    if (c.second == 40) std::printf("     [%s] (further failures not shown)\n", variant.c_str());
  }
}

template <typename... A>
std::string fmt(const char* f, A... a) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, a...);
  return buf;
}

// An output buffer with guard bytes on both sides, so writes outside
// [0, n) show up.
template <typename T>
struct Guarded {
  static constexpr size_t kGuard = 64;
  std::vector<uint8_t> raw;
  size_t n;
  uint8_t fill;
  explicit Guarded(size_t n_, uint8_t fill_ = 0xA5)
      : raw(n_ * sizeof(T) + 2 * kGuard, fill_), n(n_), fill(fill_) {}
  T* data() { return reinterpret_cast<T*>(raw.data() + kGuard); }
  const T* data() const { return reinterpret_cast<const T*>(raw.data() + kGuard); }
  bool guards_intact() const {
    for (size_t i = 0; i < kGuard; ++i)
      if (raw[i] != fill || raw[raw.size() - 1 - i] != fill) return false;
    return true;
  }
};

// Bitwise equality, except that any two NaNs are equal: a NaN's payload
// depends on which operand the compiler or the hardware propagates (the
// scalar reference's a + b may be emitted as b + a), which no kernel
// contract covers.
template <typename T>
bool same(const T& a, const T& b) { return std::memcmp(&a, &b, sizeof(T)) == 0; }
bool same(const float& a, const float& b) {
  return std::memcmp(&a, &b, sizeof(float)) == 0 || (std::isnan(a) && std::isnan(b));
}

// First differing element of two arrays of n T, or -1.
template <typename T>
long first_diff(const T* a, const T* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!same(a[i], b[i])) return long(i);
  return -1;
}

std::string show(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return fmt("%.9g (0x%08x)", double(v), b);
}
std::string show(int32_t v) { return fmt("%d", v); }
std::string show(int8_t v) { return fmt("%d", int(v)); }
std::string show(uint8_t v) { return fmt("0x%02x", unsigned(v)); }

// Compares outputs and guards; returns a description of the first problem
// or "" when equal.
template <typename T>
std::string compare(const Guarded<T>& ref, const Guarded<T>& got) {
  if (!got.guards_intact()) return "wrote outside its output";
  long d = first_diff(ref.data(), got.data(), ref.n);
  if (d >= 0)
    return fmt("element %ld: scalar %s, got %s", d, show(ref.data()[d]).c_str(),
               show(got.data()[d]).c_str());
  return "";
}

// --------------------------------------------------------------- input makers

const std::vector<size_t> kDims = {0,  1,  7,  8,  9,   15,   16,   17,   31,  33,
                                   63, 64, 65, 384, 1000, 1024, 2560};

float f32_from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

float normal(float scale) { return float(std::normal_distribution<double>(0.0, scale)(g_rng)); }
size_t uniform(size_t n) { return n ? size_t(g_rng() % n) : 0; }
bool coin(double p = 0.5) { return std::uniform_real_distribution<double>(0, 1)(g_rng) < p; }

// Float vectors of several kinds; kind names go into the failure messages.
const char* const kFloatKinds[] = {"normal",   "small",      "wide",      "zeros",   "signed-zeros",
                                   "subnormal", "huge",      "tiny-max",  "ties",    "tanh-edges",
                                   "bits",      "constant"};

std::vector<float> float_vector(const std::string& kind, size_t dim) {
  std::vector<float> x(dim);
  const float* th = tanh_i8_thresholds();
  for (size_t i = 0; i < dim; ++i) {
    float v;
    if (kind == "normal") v = normal(1.0f);
    else if (kind == "small") v = normal(0.02f);
    else if (kind == "wide") v = normal(1.0f) * std::ldexp(1.0f, int(uniform(60)) - 30);
    else if (kind == "zeros") v = 0.0f;
    else if (kind == "signed-zeros") v = coin() ? -0.0f : 0.0f;
    else if (kind == "subnormal") v = f32_from_bits(uint32_t(1 + uniform(0x7FFFFF)) | (coin() ? 0x80000000u : 0));
    else if (kind == "huge") v = (coin() ? -1.0f : 1.0f) * f32_from_bits(0x7F7FFFFFu - uint32_t(uniform(1 << 20)));
    else if (kind == "tiny-max") v = normal(1.0f) * 0x1p-110f;
    else if (kind == "ties") v = (float(int(uniform(255)) - 127) + 0.5f) * (coin() ? 1.0f : -1.0f);
    else if (kind == "tanh-edges") {
      // Within a few ulps of an exact tanh code boundary.
      uint32_t b = bits_of(th[1 + uniform(127)]) + uint32_t(uniform(9)) - 4;
      v = f32_from_bits(b) * (coin() ? 1.0f : -1.0f);
    } else if (kind == "bits") {
      do v = f32_from_bits(uint32_t(g_rng())); while (!std::isfinite(v));
    } else v = 0.75f;  // constant
    x[i] = v;
  }
  if (kind == "ties" && dim) x[uniform(dim)] = coin() ? 127.0f : -127.0f;  // scale 1: halves stay ties
  return x;
}

std::vector<int8_t> int8_vector(size_t dim, int lo, int hi) {
  std::vector<int8_t> x(dim);
  for (auto& v : x) v = int8_t(lo + int(uniform(size_t(hi - lo + 1))));
  return x;
}

// ------------------------------------------------------------------- pooling

void test_pooling(const KernelTable& ref, const Variant& v) {
  const std::vector<size_t> token_counts = {0, 1, 3, 17};
  for (size_t dim : kDims) {
    for (size_t n_rows : token_counts) {
      for (int mask_kind = 0; mask_kind < 4; ++mask_kind) {
        for (int value_kind = 0; value_kind < 5; ++value_kind) {
          const size_t stride = dim + (value_kind % 2 ? 3 : 0);
          std::vector<uint8_t> mask(n_rows);
          for (size_t t = 0; t < n_rows; ++t)
            mask[t] = mask_kind == 1 ? 1 : mask_kind == 2 ? uint8_t(uniform(3)) : (mask_kind == 3 && t == n_rows - 1);
          const uint8_t* m = mask_kind == 0 ? nullptr : mask.data();
          // float32
          std::vector<float> rows(n_rows * stride + 1);
          for (auto& r : rows) {
            switch (value_kind) {
              case 0: r = normal(1.0f); break;
              case 1: r = normal(1.0f) * std::ldexp(1.0f, int(uniform(40)) - 20); break;
              case 2: r = f32_from_bits(uint32_t(uniform(0x7FFFFF))) * (coin() ? -1.0f : 1.0f); break;  // subnormal
              case 3: r = (coin() ? -1.0f : 1.0f) * 3e38f; break;  // sums overflow to Inf
              default: r = coin(0.9) ? -0.0f : (coin() ? NAN : INFINITY); break;
            }
          }
          Guarded<float> a(dim), b(dim);
          ref.pooling.mean_pool_f32(rows.data(), n_rows, stride, dim, m, a.data());
          v.table.pooling.mean_pool_f32(rows.data(), n_rows, stride, dim, m, b.data());
          report(v.name, compare(a, b).empty(),
                 fmt("mean_pool_f32 dim=%zu rows=%zu mask=%d values=%d: %s", dim, n_rows, mask_kind,
                     value_kind, compare(a, b).c_str()));
          // binary16: every class, subnormals heavily
          std::vector<uint16_t> hrows(n_rows * stride + 1);
          for (auto& r : hrows) {
            switch (value_kind) {
              case 0: r = uint16_t(g_rng()); break;  // any pattern, NaN and Inf included
              case 1: r = uint16_t(uniform(0x400)) | (coin() ? 0x8000 : 0); break;  // subnormal / zero
              case 2: r = uint16_t(0x3C00 + uniform(0x800)) | (coin() ? 0x8000 : 0); break;  // ~1..4
              case 3: r = coin() ? 0x7BFF : 0xFBFF; break;  // +-65504
              default: r = coin(0.8) ? 0x8000 : uint16_t(1 + uniform(3)); break;  // -0 and tiny
            }
          }
          Guarded<float> c(dim), d(dim);
          ref.pooling.mean_pool_f16(hrows.data(), n_rows, stride, dim, m, c.data());
          v.table.pooling.mean_pool_f16(hrows.data(), n_rows, stride, dim, m, d.data());
          report(v.name, compare(c, d).empty(),
                 fmt("mean_pool_f16 dim=%zu rows=%zu mask=%d values=%d: %s", dim, n_rows, mask_kind,
                     value_kind, compare(c, d).c_str()));
        }
      }
    }
  }
  // Every binary16 pattern once, as one row (conversion of each class).
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);
  Guarded<float> a(all.size()), b(all.size());
  ref.pooling.mean_pool_f16(all.data(), 1, all.size(), all.size(), nullptr, a.data());
  v.table.pooling.mean_pool_f16(all.data(), 1, all.size(), all.size(), nullptr, b.data());
  report(v.name, compare(a, b).empty(), "mean_pool_f16 every binary16 value: " + compare(a, b));
}

// ------------------------------------------------------------------ quantize

using QuantFn = bool (*)(const float*, size_t, int8_t*, uint8_t*, BitOrder);

void check_quantizer(const char* name, QuantFn ref_fn, QuantFn fn, const Variant& v,
                     const std::vector<float>& x, const std::string& what) {
  const size_t dim = x.size();
  for (int with_bits = 0; with_bits < 2; ++with_bits) {
    for (BitOrder order : {BitOrder::big, BitOrder::little}) {
      if (!with_bits && order == BitOrder::little) continue;
      Guarded<int8_t> ca(dim), cb(dim);
      Guarded<uint8_t> ba(packed_bytes(dim)), bb(packed_bytes(dim));
      bool ra = ref_fn(x.data(), dim, ca.data(), with_bits ? ba.data() : nullptr, order);
      bool rb = fn(x.data(), dim, cb.data(), with_bits ? bb.data() : nullptr, order);
      std::string err;
      if (ra != rb) err = fmt("finite flag: scalar %d, got %d", ra, rb);
      // Outputs are unspecified for a vector holding NaN or Inf, but must
      // stay inside their buffers.
      else if (!cb.guards_intact() || !bb.guards_intact()) err = "wrote outside its output";
      else if (ra && !(err = compare(ca, cb)).empty()) err = "codes " + err;
      else if (ra && with_bits && !(err = compare(ba, bb)).empty()) err = "bits " + err;
      report(v.name, err.empty(),
             fmt("%s %s dim=%zu bits=%d order=%s: %s", name, what.c_str(), dim, with_bits,
                 order == BitOrder::big ? "big" : "little", err.c_str()));
    }
  }
}

void test_quantize(const KernelTable& ref, const Variant& v) {
  for (size_t dim : kDims) {
    for (const char* kind : kFloatKinds) {
      std::vector<float> x = float_vector(kind, dim);
      check_quantizer("tanh_i8", ref.quantize.tanh_i8, v.table.quantize.tanh_i8, v, x, kind);
      check_quantizer("absmax_i8", ref.quantize.absmax_i8, v.table.quantize.absmax_i8, v, x, kind);
      Guarded<int8_t> a(dim), b(dim);
      bool ra = ref.quantize.sign_i8(x.data(), dim, a.data());
      bool rb = v.table.quantize.sign_i8(x.data(), dim, b.data());
      std::string err = ra != rb ? "finite flag differs" : compare(a, b);
      report(v.name, err.empty(), fmt("sign_i8 %s dim=%zu: %s", kind, dim, err.c_str()));
    }
    // One NaN or Inf anywhere, including the tail: the flag must say so.
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      if (dim == 0) continue;
      std::vector<float> x = float_vector("normal", dim);
      for (size_t pos : {size_t(0), dim / 2, dim - 1}) {
        std::vector<float> y = x;
        y[pos] = bad;
        std::string what = fmt("bad=%g@%zu", double(bad), pos);
        check_quantizer("tanh_i8", ref.quantize.tanh_i8, v.table.quantize.tanh_i8, v, y, what);
        check_quantizer("absmax_i8", ref.quantize.absmax_i8, v.table.quantize.absmax_i8, v, y, what);
        Guarded<int8_t> a(dim), b(dim);
        bool ra = ref.quantize.sign_i8(y.data(), dim, a.data());
        bool rb = v.table.quantize.sign_i8(y.data(), dim, b.data());
        report(v.name, ra == rb && b.guards_intact(),
               fmt("sign_i8 %s dim=%zu: flag scalar %d got %d", what.c_str(), dim, ra, rb));
      }
    }
  }
  // The absmax maximum in every position, so each lane and the tail hold it.
  for (size_t dim : {size_t(17), size_t(65)}) {
    for (size_t pos = 0; pos < dim; ++pos) {
      std::vector<float> x = float_vector("ties", dim);
      for (auto& e : x) e = std::fmod(e, 100.0f);
      x[pos] = coin() ? -127.0f : 127.0f;
      check_quantizer("absmax_i8", ref.quantize.absmax_i8, v.table.quantize.absmax_i8, v, x,
                      fmt("max@%zu", pos));
    }
  }
  // Every tanh code boundary, +-2048 ulps, both signs, in vectors of 1024.
  const float* th = tanh_i8_thresholds();
  std::vector<float> edge;
  for (int j = 1; j <= 127; ++j)
    for (int k = -2048; k < 2048; ++k) {
      float a = f32_from_bits(bits_of(th[j]) + uint32_t(k));
      edge.push_back(a);
      edge.push_back(-a);
    }
  for (size_t i = 0; i < edge.size(); i += 1024) {
    std::vector<float> x(edge.begin() + long(i), edge.begin() + long(std::min(edge.size(), i + 1024)));
    Guarded<int8_t> a(x.size()), b(x.size());
    ref.quantize.tanh_i8(x.data(), x.size(), a.data(), nullptr, BitOrder::big);
    v.table.quantize.tanh_i8(x.data(), x.size(), b.data(), nullptr, BitOrder::big);
    std::string err = compare(a, b);
    if (!err.empty() || i + 1024 >= edge.size() || g_verbose)
      report(v.name, err.empty(), fmt("tanh_i8 thresholds +-2048 ulps block %zu: %s", i / 1024, err.c_str()));
  }
}

// Exhaustive: every float32 a in [0, 20) against the threshold table, and
// every 61st bit pattern of the negatives.
void tanh_sweep(const Variant& v) {
  const float* th = tanh_i8_thresholds();
  auto exact = [&](float x) {
    float a = std::fabs(x);
    int c = int(std::upper_bound(th + 1, th + 128, a) - (th + 1));  // #{j: T[j] <= a}
    return int8_t(std::signbit(x) ? -c : c);
  };
  const size_t kChunk = 1 << 16;
  std::vector<float> x(kChunk);
  std::vector<int8_t> got(kChunk);
  long bad = 0;
  std::string first;
  auto run = [&](size_t n) {
    v.table.quantize.tanh_i8(x.data(), n, got.data(), nullptr, BitOrder::big);
    for (size_t i = 0; i < n; ++i)
      if (got[i] != exact(x[i]) && bad++ == 0)
        first = fmt("x=%s exact %d got %d", show(x[i]).c_str(), exact(x[i]), got[i]);
  };
  const uint32_t end = 0x41A00000u;  // 20.0f
  for (uint32_t b = 0; b < end;) {
    size_t n = 0;
    for (; n < kChunk && b < end; ++n, ++b) x[n] = f32_from_bits(b);
    run(n);
  }
  for (uint64_t b = 0x80000000u; b < 0xFF800000u;) {
    size_t n = 0;
    for (; n < kChunk && b < 0xFF800000u; ++n, b += 61) x[n] = f32_from_bits(uint32_t(b));
    run(n);
  }
  report(v.name, bad == 0, fmt("tanh_i8 sweep of [0, 20) and negatives: %ld wrong; %s", bad, first.c_str()));
}

// ------------------------------------------------------------------- bitpack

void test_bitpack(const KernelTable& ref, const Variant& v) {
  for (size_t dim : kDims) {
    for (BitOrder order : {BitOrder::big, BitOrder::little}) {
      const char* on = order == BitOrder::big ? "big" : "little";
      for (const char* kind : kFloatKinds) {
        std::vector<float> x = float_vector(kind, dim);
        if (std::string(kind) == "bits" && dim) x[uniform(dim)] = coin() ? NAN : -INFINITY;
        Guarded<uint8_t> a(packed_bytes(dim)), b(packed_bytes(dim));
        bool ra = ref.bitpack.pack_f32(x.data(), dim, a.data(), order);
        bool rb = v.table.bitpack.pack_f32(x.data(), dim, b.data(), order);
        std::string err = ra != rb ? "finite flag differs" : compare(a, b);
        report(v.name, err.empty(), fmt("pack_f32 %s dim=%zu %s: %s", kind, dim, on, err.c_str()));
      }
      for (int kind = 0; kind < 3; ++kind) {
        std::vector<int8_t> x = kind == 0 ? int8_vector(dim, -128, 127)
                              : kind == 1 ? int8_vector(dim, -1, 0)
                                          : int8_vector(dim, 127, 127);
        Guarded<uint8_t> a(packed_bytes(dim)), b(packed_bytes(dim));
        ref.bitpack.pack_i8(x.data(), dim, a.data(), order);
        v.table.bitpack.pack_i8(x.data(), dim, b.data(), order);
        report(v.name, compare(a, b).empty(),
               fmt("pack_i8 kind=%d dim=%zu %s: %s", kind, dim, on, compare(a, b).c_str()));
        std::vector<uint8_t> y(dim);
        for (auto& e : y) e = kind == 0 ? uint8_t(g_rng()) : kind == 1 ? uint8_t(uniform(2)) : uint8_t(coin(0.1) ? 0x80 : 0);
        Guarded<uint8_t> c(packed_bytes(dim)), d(packed_bytes(dim));
        ref.bitpack.pack_bool(y.data(), dim, c.data(), order);
        v.table.bitpack.pack_bool(y.data(), dim, d.data(), order);
        report(v.name, compare(c, d).empty(),
               fmt("pack_bool kind=%d dim=%zu %s: %s", kind, dim, on, compare(c, d).c_str()));
      }
      for (bool signed_values : {false, true}) {
        // Random bytes: the padding bits of the last byte may be set and
        // must be ignored.
        std::vector<uint8_t> bits(packed_bytes(dim));
        for (auto& e : bits) e = uint8_t(g_rng());
        Guarded<int8_t> a(dim), b(dim);
        ref.bitpack.unpack(bits.data(), dim, a.data(), order, signed_values);
        v.table.bitpack.unpack(bits.data(), dim, b.data(), order, signed_values);
        report(v.name, compare(a, b).empty(),
               fmt("unpack dim=%zu %s signed=%d: %s", dim, on, signed_values, compare(a, b).c_str()));
      }
    }
  }
}

// -------------------------------------------------------------------- cosine

void test_cosine(const KernelTable& ref, const Variant& v) {
  const CosineKernels& r = ref.cosine;
  const CosineKernels& k = v.table.cosine;
  std::vector<size_t> dims = kDims;
  for (size_t dim : dims) {
    for (int kind = 0; kind < 4; ++kind) {
      // kind 0: random; 1: all +127 (largest sums); 2: +-127 alternating
      // signs per row; 3: small values with many zeros.
      const size_t qs = dim + (kind % 2 ? 5 : 0), xs = dim + (kind == 2 ? 11 : 0);
      // Small tiles of every shape, and (random rows only) blocks large
      // enough for packed multi-query paths (8+ queries, 32+ rows).
      std::vector<std::pair<size_t, size_t>> shapes;
      for (size_t nq : {1, 2, 3, 4, 5, 9})
        for (size_t nx : {1, 2, 3, 4, 5, 7, 13})
          if (!(kind && (nq > 5 || nx > 5) && dim > 100)) shapes.push_back({nq, nx});  // emulation time
      if (kind == 0)
        for (size_t nq : {1, 8, 17})
          for (size_t nx : {16, 17, 32, 33, 70}) shapes.push_back({nq, nx});
      else  // extreme values through the packed paths too
        shapes.push_back({9, 33});
      for (auto [nq, nx] : shapes) {
        {
          auto fill = [&](size_t rows, size_t stride) {
            std::vector<int8_t> m(rows * stride);
            for (size_t i = 0; i < m.size(); ++i) {
              switch (kind) {
                case 0: m[i] = int8_t(int(uniform(255)) - 127); break;
                case 1: m[i] = 127; break;
                case 2: m[i] = (i / stride) % 2 ? -127 : 127; break;
                default: m[i] = coin(0.7) ? 0 : int8_t(int(uniform(5)) - 2); break;
              }
            }
            return m;
          };
          std::vector<int8_t> q = fill(nq, qs), x = fill(nx, xs);
          const size_t os = nx + 3;
          Guarded<int32_t> a(nq * os, 0x5A), b(nq * os, 0x5A);
          bool fa = r.dots_i8(q.data(), nq, qs, x.data(), nx, xs, dim, a.data(), os);
          bool fb = k.dots_i8(q.data(), nq, qs, x.data(), nx, xs, dim, b.data(), os);
          std::string err = fa || fb ? fmt("-128 flag: scalar %d, got %d", fa, fb)
                            : b.guards_intact() ? compare(a, b) : "wrote outside its output";
          // compare() also covers the gaps between rows, which must be untouched
          report(v.name, err.empty(),
                 fmt("dots_i8 kind=%d dim=%zu nq=%zu nx=%zu: %s", kind, dim, nq, nx, err.c_str()));
          // A -128 in x (anywhere, the tail included; the stride gap
          // holds -128 too) must be reported; out is then unspecified.
          if (dim && kind == 0 && ((nq <= 5 && nx <= 5) || (nq == 8 && nx == 33))) {  // row-wise and packed
            std::vector<int8_t> y = x;
            for (size_t rr = 0; rr < nx; ++rr)
              for (size_t c = dim; c < xs; ++c) y[rr * xs + c] = -128;
            fa = r.dots_i8(q.data(), nq, qs, y.data(), nx, xs, dim, a.data(), os);
            fb = k.dots_i8(q.data(), nq, qs, y.data(), nx, xs, dim, b.data(), os);
            report(v.name, !fa && !fb && b.guards_intact(),
                   fmt("dots_i8 -128 only in stride gaps dim=%zu nq=%zu nx=%zu: scalar %d, got %d",
                       dim, nq, nx, fa, fb));
            for (size_t pos : {size_t(0), dim / 2, dim - 1}) {
              size_t row = uniform(nx);
              std::vector<int8_t> z = y;
              z[row * xs + pos] = -128;
              fa = r.dots_i8(q.data(), nq, qs, z.data(), nx, xs, dim, a.data(), os);
              fb = k.dots_i8(q.data(), nq, qs, z.data(), nx, xs, dim, b.data(), os);
              report(v.name, fa && fb && b.guards_intact(),
                     fmt("dots_i8 -128 at row %zu col %zu dim=%zu nq=%zu nx=%zu: scalar %d, got %d",
                         row, pos, dim, nq, nx, fa, fb));
            }
          }
        }
      }
      std::vector<int8_t> row = kind == 1 ? std::vector<int8_t>(dim, -127) : int8_vector(dim, -127, 127);
      int32_t sa = r.sumsq_i8(row.data(), dim), sb = k.sumsq_i8(row.data(), dim);
      report(v.name, sa == sb, fmt("sumsq_i8 kind=%d dim=%zu: scalar %d got %d", kind, dim, sa, sb));
    }
    // has_min_i8: -128 in each of a few positions of each row, or nowhere;
    // bytes between rows (stride padding) hold -128 and must be ignored.
    for (size_t rows : {1, 3}) {
      const size_t stride = dim + 2;
      std::vector<int8_t> m(rows * stride + 2, int8_t(-128));
      for (size_t rr = 0; rr < rows; ++rr)
        for (size_t i = 0; i < dim; ++i) m[rr * stride + i] = int8_t(int(uniform(255)) - 127);
      bool a = r.has_min_i8(m.data(), rows, stride, dim), b = k.has_min_i8(m.data(), rows, stride, dim);
      report(v.name, a == b && !a, fmt("has_min_i8 none dim=%zu rows=%zu: scalar %d got %d", dim, rows, a, b));
      if (dim == 0) continue;
      for (size_t pos : {size_t(0), dim / 3, dim - 1}) {
        for (size_t rr = 0; rr < rows; ++rr) {
          std::vector<int8_t> y = m;
          y[rr * stride + pos] = -128;
          a = r.has_min_i8(y.data(), rows, stride, dim), b = k.has_min_i8(y.data(), rows, stride, dim);
          report(v.name, a == b && a,
                 fmt("has_min_i8 -128 at row %zu col %zu dim=%zu: scalar %d got %d", rr, pos, dim, a, b));
        }
      }
    }
    // cos_scores, in place and not; dots from real rows and wild ones.
    {
      const size_t n = dim;
      std::vector<int32_t> dots(n);
      std::vector<float> rx(n);
      for (size_t i = 0; i < n; ++i) {
        dots[i] = coin(0.1) ? 0 : int32_t(g_rng() % 2000001) - 1000000;
        if (coin(0.05)) dots[i] = coin() ? INT32_MAX : INT32_MIN + 1;
        rx[i] = coin(0.1) ? 0.0f : float(1.0 / (1.0 + std::fabs(normal(3000.0f))));
      }
      for (float rq : {0.0f, 1e-3f, 1.0f / 1000.0f, 0.5f, 3.0f}) {
        Guarded<float> a(n), b(n);
        r.cos_scores(dots.data(), rx.data(), rq, n, a.data());
        k.cos_scores(dots.data(), rx.data(), rq, n, b.data());
        report(v.name, compare(a, b).empty(),
               fmt("cos_scores n=%zu rq=%g: %s", n, double(rq), compare(a, b).c_str()));
        // out aliases dots
        std::vector<int32_t> d2 = dots;
        k.cos_scores(d2.data(), rx.data(), rq, n, reinterpret_cast<float*>(d2.data()));
        long d = first_diff(a.data(), reinterpret_cast<const float*>(d2.data()), n);
        report(v.name, d < 0, fmt("cos_scores in place n=%zu rq=%g: first diff %ld", n, double(rq), d));
      }
    }
    // first_at_least: the first hit in every position class, ties, NaN.
    {
      const size_t n = dim;
      std::vector<float> s(n);
      for (auto& e : s) e = float(normal(0.3f));
      for (auto& e : s) e = std::min(e, 0.4f);
      std::vector<size_t> hits = {n};  // none
      if (n) hits.insert(hits.end(), {size_t(0), n / 2, n - 1, uniform(n)});
      for (size_t h : hits) {
        std::vector<float> y = s;
        if (h < n) y[h] = 0.5f;                     // exactly the threshold
        if (n > 2 && h != 1) y[1] = NAN;            // NaN never counts
        size_t a = r.first_at_least(y.data(), n, 0.5f), b = k.first_at_least(y.data(), n, 0.5f);
        report(v.name, a == b, fmt("first_at_least n=%zu hit=%zu: scalar %zu got %zu", n, h, a, b));
      }
      size_t a = r.first_at_least(s.data(), n, -INFINITY), b = k.first_at_least(s.data(), n, -INFINITY);
      report(v.name, a == b, fmt("first_at_least n=%zu -inf: scalar %zu got %zu", n, a, b));
    }
  }
  // Longest supported rows: 65536 x 127 x 127 sums near 2^30.
  for (size_t nq : {1, 4}) {
    const size_t dim = 65536;
    std::vector<int8_t> q(nq * dim, 127), x(4 * dim, 127);
    for (size_t i = 0; i < dim; i += 7) x[i] = -127;
    Guarded<int32_t> a(nq * 4), b(nq * 4);
    bool fa = r.dots_i8(q.data(), nq, dim, x.data(), 4, dim, dim, a.data(), 4);
    bool fb = k.dots_i8(q.data(), nq, dim, x.data(), 4, dim, dim, b.data(), 4);
    std::string err = fa || fb ? "-128 flag set" : compare(a, b);
    report(v.name, err.empty(), fmt("dots_i8 dim=65536 nq=%zu: %s", nq, err.c_str()));
    int32_t sa = r.sumsq_i8(x.data(), dim), sb = k.sumsq_i8(x.data(), dim);
    report(v.name, sa == sb, fmt("sumsq_i8 dim=65536: scalar %d got %d", sa, sb));
  }
  // The same through the packed paths (8+ queries, 16+ rows).
  {
    const size_t dim = 65536, nq = 9, nx = 33;
    std::vector<int8_t> q(nq * dim, 127), x(nx * dim, 127);
    for (size_t i = 0; i < x.size(); i += 7) x[i] = -127;
    for (size_t i = 0; i < q.size(); i += 11) q[i] = -127;
    Guarded<int32_t> a(nq * nx), b(nq * nx);
    bool fa = r.dots_i8(q.data(), nq, dim, x.data(), nx, dim, dim, a.data(), nx);
    bool fb = k.dots_i8(q.data(), nq, dim, x.data(), nx, dim, dim, b.data(), nx);
    std::string err = fa || fb ? "-128 flag set" : compare(a, b);
    report(v.name, err.empty(), fmt("dots_i8 dim=65536 nq=9 nx=33: %s", err.c_str()));
  }
}

// ------------------------------------------------------------------- hamming

void test_hamming(const KernelTable& ref, const Variant& v) {
  const HammingKernels& r = ref.hamming;
  const HammingKernels& k = v.table.hamming;
  std::vector<size_t> sizes = kDims;  // bytes
  sizes.push_back(128);
  sizes.push_back(320);
  for (size_t bytes : sizes) {
    for (int kind = 0; kind < 3; ++kind) {
      // kind 0: random; 1: q = ~x (every bit differs); 2: equal rows.
      const size_t qs = bytes + (kind == 1 ? 3 : 0), xs = bytes + (kind == 2 ? 0 : 9);
      // Small tiles of every shape, and (random codes only) blocks for
      // row-wise and packed paths (16+ codes, 8+ queries).
      std::vector<std::pair<size_t, size_t>> shapes;
      for (size_t nq : {1, 2, 3, 4, 5, 9})
        for (size_t nx : {1, 2, 3, 4, 5, 7, 13})
          if (!(kind && (nq > 5 || nx > 5) && bytes > 100)) shapes.push_back({nq, nx});
      if (kind == 0)
        for (size_t nq : {1, 8, 17})
          for (size_t nx : {16, 17, 32, 33, 70}) shapes.push_back({nq, nx});
      else  // extreme values through the packed paths too
        shapes.push_back({9, 33});
      for (auto [nq, nx] : shapes) {
        {
          std::vector<uint8_t> x(nx * xs), q(nq * qs);
          for (auto& e : x) e = uint8_t(g_rng());
          for (size_t i = 0; i < nq; ++i)
            for (size_t j = 0; j < bytes; ++j) {
              uint8_t base = x[(i % nx) * xs + j];
              q[i * qs + j] = kind == 0 ? uint8_t(g_rng()) : kind == 1 ? uint8_t(~base) : base;
            }
          const size_t os = nx + 2;
          Guarded<int32_t> a(nq * os, 0x5A), b(nq * os, 0x5A);
          r.hamming_u1(q.data(), nq, qs, x.data(), nx, xs, bytes, a.data(), os);
          k.hamming_u1(q.data(), nq, qs, x.data(), nx, xs, bytes, b.data(), os);
          std::string err = b.guards_intact() ? compare(a, b) : "wrote outside its output";
          report(v.name, err.empty(),
                 fmt("hamming_u1 kind=%d bytes=%zu nq=%zu nx=%zu: %s", kind, bytes, nq, nx, err.c_str()));
        }
      }
    }
    const size_t n = bytes;
    std::vector<int32_t> d(n);
    for (auto& e : d) e = 100 + int32_t(uniform(1000));
    std::vector<size_t> hits = {n};
    if (n) hits.insert(hits.end(), {size_t(0), n / 2, n - 1, uniform(n)});
    for (size_t h : hits) {
      std::vector<int32_t> y = d;
      if (h < n) y[h] = 100 - int32_t(uniform(2));  // at or below the threshold
      size_t a = r.first_at_most(y.data(), n, 100), b = k.first_at_most(y.data(), n, 100);
      report(v.name, a == b, fmt("first_at_most n=%zu hit=%zu: scalar %zu got %zu", n, h, a, b));
    }
    size_t a = r.first_at_most(d.data(), n, INT32_MIN), b = k.first_at_most(d.data(), n, INT32_MIN);
    report(v.name, a == b, fmt("first_at_most n=%zu INT32_MIN: scalar %zu got %zu", n, a, b));
  }
  // Long codes whose per-lane counts would wrap 16-bit counters: 100000
  // bytes (800000 bits) where every bit differs except in every 5th byte.
  for (size_t nq : {1, 4}) {
    const size_t bytes = 100000;
    std::vector<uint8_t> q(nq * bytes, 0xFF), x(4 * bytes, 0x00);
    for (size_t i = 0; i < x.size(); i += 5) x[i] = uint8_t(g_rng());
    Guarded<int32_t> a(nq * 4), b(nq * 4);
    r.hamming_u1(q.data(), nq, bytes, x.data(), 4, bytes, bytes, a.data(), 4);
    k.hamming_u1(q.data(), nq, bytes, x.data(), 4, bytes, bytes, b.data(), 4);
    report(v.name, compare(a, b).empty(), fmt("hamming_u1 bytes=100000 nq=%zu: %s", nq, compare(a, b).c_str()));
  }
  // The same through the packed paths (8+ queries, 32+ codes), past what
  // 16-bit sums hold: 10000 bytes, every bit differing but in every 7th byte.
  {
    const size_t bytes = 10000, nq = 9, nx = 33;
    std::vector<uint8_t> q(nq * bytes, 0xFF), x(nx * bytes, 0x00);
    for (size_t i = 0; i < x.size(); i += 7) x[i] = uint8_t(g_rng());
    Guarded<int32_t> a(nq * nx), b(nq * nx);
    r.hamming_u1(q.data(), nq, bytes, x.data(), nx, bytes, bytes, a.data(), nx);
    k.hamming_u1(q.data(), nq, bytes, x.data(), nx, bytes, bytes, b.data(), nx);
    report(v.name, compare(a, b).empty(), fmt("hamming_u1 bytes=10000 nq=9 nx=33: %s", compare(a, b).c_str()));
  }
}

// ------------------------------------------------------------ page fences

// n elements that end exactly where an inaccessible page begins: a kernel
// that reads or writes one element past the end faults, SIMD loads
// included (ASan does not see NEON loads; page protection does, also under
// qemu).
template <typename T>
struct Fenced {
  uint8_t* base = nullptr;
  size_t len = 0;
  T* ptr = nullptr;
  size_t n;
  explicit Fenced(size_t n_) : n(n_) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t bytes = n * sizeof(T);
    len = (bytes + page - 1) / page * page + page;
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    base = static_cast<uint8_t*>(m);
    if (mprotect(base + len - page, page, PROT_NONE) != 0) std::abort();
    ptr = reinterpret_cast<T*>(base + len - page - bytes);
  }
  Fenced(const Fenced&) = delete;
  Fenced& operator=(const Fenced&) = delete;
  ~Fenced() { munmap(base, len); }
  T* data() { return ptr; }
  T& operator[](size_t i) { return ptr[i]; }
};

template <typename T>
bool equal(const T* a, const T* b, size_t n) { return first_diff(a, b, n) < 0; }

void test_fences(const KernelTable& ref, const Variant& v) {
  std::vector<size_t> dims;
  for (size_t d = 0; d <= 80; ++d) dims.push_back(d);
  for (size_t d : {127, 128, 129, 255, 256, 257, 1000, 1024, 2560}) dims.push_back(d);
  for (size_t dim : dims) {
    std::string fails;
    auto expect = [&](bool ok, const char* what) {
      if (!ok) fails += std::string(fails.empty() ? "" : ", ") + what;
    };
    const size_t rows = 5, bytes = packed_bytes(dim);
    // pooling: the rows end at the fence
    {
      Fenced<float> x(rows * dim);
      Fenced<uint16_t> h(rows * dim);
      for (size_t i = 0; i < rows * dim; ++i) x[i] = normal(1.0f), h[i] = uint16_t(g_rng() & 0x7BFF);
      Fenced<float> a(dim), b(dim);
      ref.pooling.mean_pool_f32(x.data(), rows, dim, dim, nullptr, a.data());
      v.table.pooling.mean_pool_f32(x.data(), rows, dim, dim, nullptr, b.data());
      expect(equal(a.data(), b.data(), dim), "mean_pool_f32");
      ref.pooling.mean_pool_f16(h.data(), rows, dim, dim, nullptr, a.data());
      v.table.pooling.mean_pool_f16(h.data(), rows, dim, dim, nullptr, b.data());
      expect(equal(a.data(), b.data(), dim), "mean_pool_f16");
    }
    // quantize and bitpack: inputs and outputs end at fences
    {
      Fenced<float> x(dim);
      for (size_t i = 0; i < dim; ++i) x[i] = normal(1.0f);
      Fenced<int8_t> ca(dim), cb(dim), xi(dim), ua(dim), ub(dim);
      Fenced<uint8_t> ba(bytes), bb(bytes), xb(dim), bits(bytes);
      for (size_t i = 0; i < dim; ++i) xi[i] = int8_t(g_rng()), xb[i] = uint8_t(g_rng() % 3);
      for (size_t i = 0; i < bytes; ++i) bits[i] = uint8_t(g_rng());
      for (BitOrder order : {BitOrder::big, BitOrder::little}) {
        ref.quantize.tanh_i8(x.data(), dim, ca.data(), ba.data(), order);
        v.table.quantize.tanh_i8(x.data(), dim, cb.data(), bb.data(), order);
        expect(equal(ca.data(), cb.data(), dim) && equal(ba.data(), bb.data(), bytes), "tanh_i8");
        ref.quantize.absmax_i8(x.data(), dim, ca.data(), ba.data(), order);
        v.table.quantize.absmax_i8(x.data(), dim, cb.data(), bb.data(), order);
        expect(equal(ca.data(), cb.data(), dim) && equal(ba.data(), bb.data(), bytes), "absmax_i8");
        ref.bitpack.pack_f32(x.data(), dim, ba.data(), order);
        v.table.bitpack.pack_f32(x.data(), dim, bb.data(), order);
        expect(equal(ba.data(), bb.data(), bytes), "pack_f32");
        ref.bitpack.pack_i8(xi.data(), dim, ba.data(), order);
        v.table.bitpack.pack_i8(xi.data(), dim, bb.data(), order);
        expect(equal(ba.data(), bb.data(), bytes), "pack_i8");
        ref.bitpack.pack_bool(xb.data(), dim, ba.data(), order);
        v.table.bitpack.pack_bool(xb.data(), dim, bb.data(), order);
        expect(equal(ba.data(), bb.data(), bytes), "pack_bool");
        ref.bitpack.unpack(bits.data(), dim, ua.data(), order, true);
        v.table.bitpack.unpack(bits.data(), dim, ub.data(), order, true);
        expect(equal(ua.data(), ub.data(), dim), "unpack");
      }
      ref.quantize.sign_i8(x.data(), dim, ca.data());
      v.table.quantize.sign_i8(x.data(), dim, cb.data());
      expect(equal(ca.data(), cb.data(), dim), "sign_i8");
    }
    // cosine and hamming: queries, rows and outputs end at fences
    {
      Fenced<int8_t> q(rows * dim), x(rows * dim);
      Fenced<uint8_t> qb(rows * bytes), xb(rows * bytes);
      for (size_t i = 0; i < rows * dim; ++i) q[i] = int8_t(int(g_rng() % 255) - 127), x[i] = int8_t(int(g_rng() % 255) - 127);
      for (size_t i = 0; i < rows * bytes; ++i) qb[i] = uint8_t(g_rng()), xb[i] = uint8_t(g_rng());
      Fenced<int32_t> a(rows * rows), b(rows * rows);
      for (size_t nq : {size_t(1), rows}) {
        const int8_t* qp = q.data() + (rows - nq) * dim;
        bool fa = ref.cosine.dots_i8(qp, nq, dim, x.data(), rows, dim, dim, a.data(), rows);
        bool fb = v.table.cosine.dots_i8(qp, nq, dim, x.data(), rows, dim, dim, b.data(), rows);
        expect(!fa && !fb && equal(a.data(), b.data(), nq * rows), "dots_i8");
        const uint8_t* qbp = qb.data() + (rows - nq) * bytes;
        ref.hamming.hamming_u1(qbp, nq, bytes, xb.data(), rows, bytes, bytes, a.data(), rows);
        v.table.hamming.hamming_u1(qbp, nq, bytes, xb.data(), rows, bytes, bytes, b.data(), rows);
        expect(equal(a.data(), b.data(), nq * rows), "hamming_u1");
      }
      const int8_t* last = x.data() + (rows - 1) * dim;
      expect(ref.cosine.sumsq_i8(last, dim) == v.table.cosine.sumsq_i8(last, dim), "sumsq_i8");
      expect(ref.cosine.has_min_i8(x.data(), rows, dim, dim) ==
                 v.table.cosine.has_min_i8(x.data(), rows, dim, dim), "has_min_i8");
      Fenced<int32_t> dots(dim);
      Fenced<float> rx(dim), sa(dim), sb(dim);
      for (size_t i = 0; i < dim; ++i) dots[i] = int32_t(g_rng() % 40001) - 20000, rx[i] = 1e-4f;
      ref.cosine.cos_scores(dots.data(), rx.data(), 0.5f, dim, sa.data());
      v.table.cosine.cos_scores(dots.data(), rx.data(), 0.5f, dim, sb.data());
      expect(equal(sa.data(), sb.data(), dim), "cos_scores");
      expect(ref.cosine.first_at_least(sa.data(), dim, 2.0f) ==
                 v.table.cosine.first_at_least(sa.data(), dim, 2.0f), "first_at_least");
      expect(ref.hamming.first_at_most(dots.data(), dim, -30000) ==
                 v.table.hamming.first_at_most(dots.data(), dim, -30000), "first_at_most");
    }
    report(v.name, fails.empty(), fmt("fences dim=%zu: %s", dim, fails.c_str()));
  }
}

// ---------------------------------------------------------------- dispatch

std::string variant_of(const KernelTable& t, const char* family) {
  for (auto& kv : extra_kernel_variants(t))
    if (kv.first == family) return kv.second;
  return "?";
}

void test_dispatch(Isa default_level) {
  // Without PPLX_KERNELS_ISA the default is the best supported level.
  std::vector<Isa> isas = supported_isas();
  const char* cap = std::getenv("PPLX_KERNELS_ISA");
  if (!cap || !*cap)
    report("dispatch", default_level == isas.back(),
           fmt("default level %s, best supported %s", isa_name(default_level), isa_name(isas.back())));
  set_isa(isas.back());
  const KernelTable& t = kernels();
  for (const char* family : {"cosine", "hamming"}) {
    std::string env = std::string("PPLX_TEST_EXPECT_") + (family[0] == 'c' ? "COSINE" : "HAMMING");
    const char* want = std::getenv(env.c_str());
    if (want && *want)
      report("dispatch", variant_of(t, family) == want,
             fmt("%s variant at level %s: %s, expected %s", family, isa_name(t.level),
                 variant_of(t, family).c_str(), want));
  }
#if defined(PPLX_HAVE_NEON)
  // The neon level runs NEON twins in every family.
  report("dispatch",
         t.level == Isa::neon && t.pooling_isa == Isa::neon && t.quantize_isa == Isa::neon &&
             t.bitpack_isa == Isa::neon && t.cosine_isa == Isa::neon && t.hamming_isa == Isa::neon &&
             t.pooling.mean_pool_f32 == neon::pooling.mean_pool_f32 &&
             t.hamming.hamming_u1 == neon::hamming.hamming_u1 &&
             t.cosine.dots_i8 == (cpu_features().neon_dotprod ? neon_dotprod::cosine.dots_i8
                                                              : neon::cosine.dots_i8),
         "neon level uses the NEON twins (dotprod cosine only with HWCAP_ASIMDDP)");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  bool sweep = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--tanh-sweep")) sweep = true;
    else if (!std::strcmp(argv[i], "--verbose")) g_verbose = true;
    else {
      std::fprintf(stderr, "usage: %s [--tanh-sweep] [--verbose]\n", argv[0]);
      return 2;
    }
  }
  const char* seed_env = std::getenv("PPLX_TEST_SEED");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261128;
  g_rng.seed(seed);

  const Isa default_level = kernels().level;
  const CpuFeatures& f = cpu_features();
  std::printf("seed %" PRIu64 "; default level %s; cpu:", seed, isa_name(default_level));
#if defined(PPLX_HAVE_X86)
  std::printf(" avx2=%d fma=%d f16c=%d avx512f=%d bw=%d vl=%d dq=%d vnni=%d vpopcntdq=%d", f.avx2,
              f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.avx512vnni,
              f.avx512vpopcntdq);
#endif
#if defined(PPLX_HAVE_NEON)
  std::printf(" neon=%d dotprod=%d fp16=%d", f.neon, f.neon_dotprod, f.neon_fp16);
#endif
  std::printf("\n");
  (void)f;

  set_isa(Isa::scalar);
  const KernelTable ref = kernels();
  std::vector<Variant> variants;
  for (Isa isa : supported_isas()) {
    if (isa == Isa::scalar) continue;
    set_isa(isa);
    const KernelTable& t = kernels();
    std::string name = std::string(isa_name(isa)) + "(cosine=" + variant_of(t, "cosine") +
                       ",hamming=" + variant_of(t, "hamming") + ")";
    variants.push_back({name, t});
#if defined(PPLX_HAVE_X86)
    // An AVX-512 CPU without VNNI and VPOPCNTDQ (Skylake-SP): the level's
    // table must fall back to the AVX2 search kernels, and they must pass.
    if (isa == Isa::avx512) {
      CpuFeatures bare = cpu_features();
      bare.avx512vnni = bare.avx512vpopcntdq = false;
      KernelTable b = build_table(Isa::avx512, bare);
      report("dispatch",
             b.cosine.dots_i8 == avx2::cosine.dots_i8 && b.hamming.hamming_u1 == avx2::hamming.hamming_u1 &&
                 b.cosine_isa == Isa::avx2 && b.hamming_isa == Isa::avx2,
             "avx512 level without VNNI/VPOPCNTDQ uses the AVX2 cosine and Hamming");
      variants.push_back({"avx512(no vnni, no vpopcntdq)", b});
      // Pooling needs only the level's F/BW/VL: its AVX-512 twin runs there.
      report("dispatch",
             b.pooling.mean_pool_f32 == avx512::pooling.mean_pool_f32 &&
                 t.pooling.mean_pool_f16 == avx512::pooling.mean_pool_f16 && t.pooling_isa == Isa::avx512,
             "avx512 level uses the AVX-512 pooling kernel");
    }
#endif
#if defined(PPLX_HAVE_NEON)
    // The table takes the dotprod cosine where the CPU has it; the plain
    // NEON cosine is tested here too.
    if (isa == Isa::neon && t.cosine.dots_i8 != neon::cosine.dots_i8) {
      KernelTable plain = t;
      plain.cosine = neon::cosine;
      variants.push_back({"neon(cosine=neon plain)", plain});
    }
#endif
  }
  if (variants.empty()) std::printf("note: only the scalar level runs on this CPU\n");

  for (const Variant& v : variants) {
    std::printf("testing %s\n", v.name.c_str());
    std::fflush(stdout);
    test_pooling(ref, v);
    test_quantize(ref, v);
    test_bitpack(ref, v);
    test_cosine(ref, v);
    test_hamming(ref, v);
    test_fences(ref, v);
    if (sweep) tanh_sweep(v);
  }
  // The speed-only knobs choose between exact variants: the search kernels
  // again under settings that force each path (packed for every query
  // count, queries rather than codes packed, or never packed; popcnt or pshufb for every code length; rows in tiles
  // or in memory order; prefetch off or far ahead).
  const std::vector<std::vector<std::pair<Knob, uint32_t>>> knob_sets = {
      {{Knob::cosine_packed_min_queries, 1}, {Knob::hamming_packed_min_queries, 1},
       {Knob::hamming_popcnt_max_bytes, 1u << 30}, {Knob::cosine_row_order, 0},
       {Knob::hamming_code_packing_min_queries, 1u << 30}, {Knob::hamming_qpacked_prefetch, 4096},
       {Knob::hamming_row_order, 0}, {Knob::cosine_prefetch, 0}, {Knob::hamming_prefetch, 0},
       {Knob::hamming_packed_next_prefetch, 1}},
      {{Knob::cosine_packed_min_queries, 1u << 30}, {Knob::hamming_packed_min_queries, 1u << 30},
       {Knob::hamming_popcnt_max_bytes, 0}, {Knob::cosine_row_order, 1},
       {Knob::hamming_row_order, 1}, {Knob::cosine_prefetch, 16384}, {Knob::hamming_prefetch, 16384},
       {Knob::hamming_packed_next_prefetch, 0}},
  };
  for (size_t s = 0; s < knob_sets.size(); ++s) {
    for (auto [k, value] : knob_sets[s]) set_knob(k, value);
    for (const Variant& v : variants) {
      Variant kv{v.name + " knobs" + std::to_string(s + 1), v.table};
      std::printf("testing %s\n", kv.name.c_str());
      std::fflush(stdout);
      test_cosine(ref, kv);
      test_hamming(ref, kv);
      test_fences(ref, kv);
    }
    reset_knobs();
  }
  test_dispatch(default_level);

  for (auto& kv : g_failed_kernels)
    std::printf("  failures: %-60s %ld\n", kv.first.c_str(), kv.second);
  for (auto& kv : g_counts)
    std::printf("  %-44s %ld passed, %ld failed\n", kv.first.c_str(), kv.second.first, kv.second.second);
  std::printf("%ld passed, %ld failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

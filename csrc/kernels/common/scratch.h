// A per-thread, 64-byte aligned scratch buffer for the ISA units. Plain
// malloc'd memory in a type with internal linkage (anonymous namespace):
// a std::vector here would instantiate weak template code compiled with
// the unit's wide-ISA flags, which the linker may then pick for baseline
// callers of the same template (a SIGILL on an older CPU).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace pplx {
namespace {

struct Scratch64 {
  uint8_t* data = nullptr;
  size_t capacity = 0;

  Scratch64() = default;
  Scratch64(const Scratch64&) = delete;
  Scratch64& operator=(const Scratch64&) = delete;
  ~Scratch64() { std::free(data); }

  // At least n bytes, 64-byte aligned (whole cache lines: a 16-byte aligned
  // buffer would split every 64-byte access in two). Contents are not kept.
  // Returns null when out of memory.
  uint8_t* get(size_t n) {
    if (n > capacity) {
      std::free(data);
      capacity = (n + 63) / 64 * 64;
      data = static_cast<uint8_t*>(std::aligned_alloc(64, capacity));
      if (!data) capacity = 0;
    }
    return data;
  }
};

}  // namespace
}  // namespace pplx

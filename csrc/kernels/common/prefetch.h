// Software prefetch for streaming kernels with enough arithmetic per byte
// that the hardware prefetcher falls behind: tanh int8 over 80 MB took 8.1 ms
// on one core without it and 6.4 ms with it (benchmarks/README.md).
#pragma once
#include <cstddef>

namespace pplx {

// One 4 KB page ahead: the hardware streamer does not cross pages.
constexpr size_t kPrefetchAheadBytes = 4096;

// Prefetches the cache lines of [p, p + bytes) shifted `ahead` bytes forward
// (one page by default): in a loop over a stream, what it will read that
// far ahead. Prefetch never faults, so running past the end of the array is
// harmless. ahead = 0: nothing (the search scans' distance is a knob).
inline void prefetch_ahead(const void* p, size_t bytes, size_t ahead = kPrefetchAheadBytes) {
  if (!ahead) return;
  const char* c = static_cast<const char*>(p) + ahead;
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
}

// Prefetches the cache lines of [p, p + bytes) into L2 (locality 2:
// prefetcht1 on x86): data a kernel reads a while later, kept out of L1
// where it would evict what is being summed.
inline void prefetch_l2(const void* p, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(static_cast<const char*>(p) + off, 0, 2);
}

}  // namespace pplx
